"""Speech recognition as a transcript source for training and evaluation data (``--transcribe`` of
``avemo train`` / ``evaluate`` / ``extract``, ``transcribe = true`` in ``--corpora``)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from avemo.cache import FeatureCache
from avemo.cli import app
from avemo.datasets import read_dataset
from avemo.errors import ConfigError, MediaError
from avemo.features.audio import asr
from avemo.features.audio.asr import Transcript
from avemo.training.transcripts import SOURCE_FIELD, transcribe_clips, transcribe_missing

TEST_CLIP = "03-01-07-02-02-01-01.flac"  # RAVDESS actor 01: "Dogs are sitting by the door"


def words(text: str | None) -> str:
    return " ".join(re.sub(r"[^\w']+", " ", (text or "").lower()).split())


@pytest.fixture
def counting_asr(monkeypatch):
    """The recogniser replaced by one that says ``said[path.name]`` (default: a sentence) and counts its calls."""
    calls: list[Path] = []
    said: dict[str, str] = {}

    def fake(path, **_):
        calls.append(Path(path))
        return Transcript(said.get(Path(path).name, "Kids are talking by the door."), "en")

    monkeypatch.setattr(asr, "transcribe_file", fake)
    return calls, said


def ravdess_like(root: Path, make_clip, names: dict[str, dict]) -> Path:
    """A RAVDESS-layout folder of generated files: ``names`` -> write_clip options."""
    folder = root / "Actor_01"
    folder.mkdir(parents=True)
    for name, spec in names.items():
        shutil.copy(make_clip(name, **spec), folder / name)
    return root


@pytest.mark.shared_data
def test_the_ravdess_clip_gets_its_sentence_through_the_reader(tmp_path, ravdess_speech_root):
    root = tmp_path / "ravdess" / "Actor_01"
    root.mkdir(parents=True)
    (root / TEST_CLIP).symlink_to(ravdess_speech_root / "Actor_01" / TEST_CLIP)
    scan = transcribe_missing(read_dataset("ravdess", root.parent), cache=FeatureCache(tmp_path / "cache"))
    (clip,) = scan.clips
    assert words(clip.text) == "dogs are sitting by the door"
    assert clip.modalities == ("audio", "text") and clip.fields[SOURCE_FIELD] == "asr"
    assert scan.transcripts | {} == {"source": "asr", "recogniser": "whisper_base_ctranslate2", "version": 1,
                                    "transcribed": 1, "cached": 0, "no_speech": 0, "skipped": 0}


def test_a_second_call_reads_the_cache_and_other_settings_do_not(tmp_path, make_clip, counting_asr):
    calls, _ = counting_asr
    root = ravdess_like(tmp_path / "r", make_clip, {f"03-01-0{e}-01-01-01-01.wav": {"duration": 0.5, "seed": e}
                                                   for e in (1, 3, 4)})
    cache = FeatureCache(tmp_path / "cache")
    scan = read_dataset("ravdess", root)
    first = transcribe_clips(scan.clips, cache=cache)
    assert len(calls) == 3 and (first.transcribed, first.cached) == (3, 0)
    second = transcribe_clips(scan.clips, cache=cache)
    assert len(calls) == 3 and (second.transcribed, second.cached) == (0, 3)
    assert [c.text for c in second.clips] == [c.text for c in first.clips] == ["Kids are talking by the door."] * 3
    asr_config = asr.TranscribeConfig(language="en")  # other settings: another transcript
    assert transcribe_clips(scan.clips, cache=cache, config=asr_config).transcribed == 3 and len(calls) == 6
    assert transcribe_clips(scan.clips, cache=cache, config=asr.TranscribeConfig(threads=1)).cached == 3


def test_a_take_is_transcribed_once_and_reader_text_is_kept(tmp_path, make_clip, counting_asr):
    calls, _ = counting_asr
    root = ravdess_like(tmp_path / "r", make_clip, {
        "01-01-03-01-01-01-01.mp4": {"duration": 0.5}, "03-01-03-01-01-01-01.wav": {"duration": 0.5},
        "02-01-04-01-01-01-01.mp4": {"duration": 0.5, "audio": None},  # a silent video: nothing to transcribe
    })
    progress = []
    done = transcribe_clips(read_dataset("ravdess", root).clips, cache=FeatureCache(None, enabled=False),
                            progress=lambda n, total: progress.append((n, total)))
    assert [p.name for p in calls] == ["03-01-03-01-01-01-01.wav"]  # the audio-only file of the take
    assert progress == [(1, 1)]
    texts = {c.path.name: (c.text, c.modalities) for c in done.clips}
    assert texts == {"01-01-03-01-01-01-01.mp4": ("Kids are talking by the door.", ("audio", "video", "text")),
                     "03-01-03-01-01-01-01.wav": ("Kids are talking by the door.", ("audio", "text")),
                     "02-01-04-01-01-01-01.mp4": (None, ("video",))}
    folder = tmp_path / "folder"
    folder.mkdir()
    for name in ("a.wav", "b.wav"):
        shutil.copy(make_clip("t.wav", duration=0.5), folder / name)
    (folder / "labels.csv").write_text("path,emotion,speaker,text\na.wav,happy,s1,What a day!\nb.wav,sad,s1,\n")
    done = transcribe_clips(read_dataset("folder", folder).clips, cache=FeatureCache(None, enabled=False))
    assert [(c.path.name, c.text) for c in done.clips] == [("a.wav", "What a day!"),
                                                           ("b.wav", "Kids are talking by the door.")]
    assert SOURCE_FIELD not in done.clips[0].fields and calls[-1].name == "b.wav"


def test_no_speech_gives_no_text_and_bad_audio_is_skipped(tmp_path, make_clip):
    """The real recogniser: noise has no speech (an empty transcript, cached); a file that does not
    decode is skipped with its reason, like the reader's own skips."""
    root = ravdess_like(tmp_path / "r", make_clip, {"03-01-05-01-01-01-01.wav": {"duration": 1.0, "audio": "noise"}})
    (root / "Actor_01" / "03-01-06-01-01-01-01.wav").write_bytes(b"RIFF not a wave file")
    scan = transcribe_missing(read_dataset("ravdess", root), cache=FeatureCache(tmp_path / "cache"))
    (clip,) = scan.clips
    assert clip.text is None and clip.modalities == ("audio",) and clip.fields[SOURCE_FIELD] == "asr"
    (bad,) = scan.skipped
    assert bad.path.name == "03-01-06-01-01-01-01.wav" and bad.reason.startswith("cannot be transcribed: ")
    assert scan.transcripts["no_speech"] == 1 and scan.transcripts["skipped"] == 1
    assert any("without speech" in w for w in scan.warnings)
    again = transcribe_missing(read_dataset("ravdess", root), cache=FeatureCache(tmp_path / "cache"))
    assert again.transcripts["cached"] == 1 and again.clips[0].text is None


def test_corpora_file_takes_transcribe(tmp_path):
    from avemo.training.corpora import read_corpora_file

    path = tmp_path / "corpora.toml"
    path.write_text('[[corpora]]\ndataset = "ravdess"\nroot = "r"\ntranscribe = true\n'
                    '[[corpora]]\ndataset = "meld"\nroot = "m"\n')
    assert [s.transcribe for s in read_corpora_file(path)] == [True, False]
    path.write_text('[[corpora]]\ndataset = "ravdess"\nroot = "r"\ntranscribe = "yes"\n')
    with pytest.raises(ConfigError, match="transcribe must be true or false"):
        read_corpora_file(path)


@pytest.mark.shared_data
def test_cli_trains_a_text_model_on_transcripts_and_evaluates_it_the_same_way(tmp_path, ravdess_subset, make_clip):
    """``avemo train --transcribe`` on RAVDESS clips (no transcripts of their own) with a text-only model;
    ``avemo evaluate`` transcribes by default, as the checkpoint records; ``--no-transcribe`` has no text."""
    root = ravdess_subset(("01", "02", "04"), step=30)
    shutil.copy(make_clip("noise.wav", duration=1.0, audio="noise"), root / "Actor_04" / "03-01-05-01-01-01-04.wav")
    runner, run, cache = CliRunner(), tmp_path / "run", ["--cache", str(tmp_path / "cache"), "--workers", "1"]
    config = {"modalities": ["text"], "context": 0, "text_feature": "minilm", "text_kind": "vector",
              "d_model": 8, "heads": 2}
    result = runner.invoke(app, ["train", "--root", str(root), "--model", "gao_dialogue", "--transcribe",
                                 "--model-config", json.dumps(config), "--epochs", "1", "--out", str(run),
                                 "--device", "cpu", *cache])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # the console wraps long lines
    assert "7 takes transcribed, 0 from the cache, 1 without speech" in said
    assert "has no text: speech recognition found no speech in it" in said
    meta = json.loads((run / "checkpoint.json").read_text())
    assert meta["data"]["transcripts"]["transcribed"] == 7 and meta["data"]["n"]["train"] + meta["data"]["n"]["val"] == 6
    out = tmp_path / "eval.json"
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(run), "--root", str(root), "--json", str(out), *cache])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "transcribed the same way" in said and "0 takes transcribed, 7 from the cache" in said
    report = json.loads(out.read_text())
    assert report["n"] == 6 and report["transcripts"]["cached"] == 7
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(run), "--root", str(root), "--no-transcribe", *cache])
    assert result.exit_code != 0 and "the ravdess takes have no text" in str(result.exception)
    assert "--transcribe gives" in str(result.exception)


def test_cli_extract_embeds_transcripts(tmp_path, make_clip, counting_asr):
    """``avemo extract --features minilm --transcribe`` on a corpus without transcripts: each take's
    transcript is embedded; without --transcribe there is no text to embed, and the error says how to get it."""
    calls, said = counting_asr
    root = ravdess_like(tmp_path / "r", make_clip, {"03-01-03-01-01-01-01.wav": {"duration": 0.5},
                                                   "03-01-04-01-01-01-01.wav": {"duration": 0.5, "seed": 2}})
    said["03-01-04-01-01-01-01.wav"] = "Dogs are sitting by the door."
    runner, cache = CliRunner(), ["--cache", str(tmp_path / "cache")]
    args = ["extract", "--dataset", "ravdess", "--root", str(root), "--features", "minilm", *cache]
    result = runner.invoke(app, args)
    assert result.exit_code != 0 and "--transcribe" in str(result.exception)
    summary = tmp_path / "summary.json"
    result = runner.invoke(app, [*args, "--transcribe", "--summary", str(summary)])
    assert result.exit_code == 0, result.output
    assert len(calls) == 2 and "2 takes transcribed" in " ".join(result.output.split())
    assert json.loads(summary.read_text())["computed"] == 2
    result = runner.invoke(app, [*args, "--transcribe"])  # transcripts and embeddings from the cache
    assert result.exit_code == 0 and len(calls) == 2 and "2 from cache" in result.output


def test_load_data_transcribes_only_the_clips_the_run_keeps(tmp_path, make_clip, counting_asr):
    from avemo.training import load_data

    calls, _ = counting_asr
    root = tmp_path / "r"
    for speaker in ("01", "02"):
        folder = root / f"Actor_{speaker}"
        folder.mkdir(parents=True)
        shutil.copy(make_clip("t.wav", duration=0.5), folder / f"03-01-03-01-01-01-{speaker}.wav")
    data = load_data("ravdess", root, speakers=["02"], transcribe=True, cache=FeatureCache(tmp_path / "cache"))
    assert [p.name for p in calls] == ["03-01-03-01-01-01-02.wav"]
    assert [t["text"].text for t in data.takes] == ["Kids are talking by the door."]
    assert data.transcripts["transcribed"] == 1
    assert load_data("ravdess", root).transcripts is None and len(calls) == 1  # not asked: no recognition


def test_cli_a_model_that_reads_no_text_transcribes_nothing(tmp_path, make_ravdess, counting_asr):
    """--transcribe with a model that has no text input (egemaps_logreg) ran the recogniser on every
    clip (about half a second each on a CPU, minutes on a corpus) for transcripts nobody read; train,
    evaluate and extract now say so in one line and transcribe nothing."""
    calls, _ = counting_asr
    root = make_ravdess(("01", "05", "07"))
    runner, run, cache = CliRunner(), tmp_path / "run", ["--cache", str(tmp_path / "cache")]
    result = runner.invoke(app, ["train", "--root", str(root), "--model", "egemaps_logreg", "--transcribe",
                                 "--epochs", "1", "--out", str(run), "--device", "cpu", "--workers", "1", *cache])
    assert result.exit_code == 0, result.output
    assert "--transcribe ignored: model egemaps_logreg reads no text (only audio); no clip is transcribed" \
        in " ".join(result.output.split())
    assert calls == [] and "transcripts" not in json.loads((run / "checkpoint.json").read_text())["data"]
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(run), "--root", str(root), "--transcribe", *cache])
    assert result.exit_code == 0, result.output
    assert "--transcribe ignored: the checkpoint's model reads no text (only audio)" in " ".join(result.output.split())
    result = runner.invoke(app, ["extract", "--dataset", "ravdess", "--root", str(root), "--features", "egemaps",
                                 "--transcribe", *cache])
    assert result.exit_code == 0, result.output
    assert "--transcribe ignored: --features egemaps reads no text" in " ".join(result.output.split())
    assert calls == []


def test_corpora_entries_that_ask_for_transcripts_get_none_for_a_model_without_text(tmp_path):
    from avemo.cli.train import _transcribed_specs
    from avemo.training.corpora import CorpusSpec

    specs = [CorpusSpec("ravdess", tmp_path, transcribe=True), CorpusSpec("emodb", tmp_path)]
    assert [s.transcribe for s in _transcribed_specs(specs, False, ("m", {"audio", "text"}))] == [True, False]
    assert [s.transcribe for s in _transcribed_specs(specs, True, ("m", {"audio", "text"}))] == [True, True]
    assert [s.transcribe for s in _transcribed_specs(specs, True, ("m", {"audio", "video"}))] == [False, False]
    assert [s.transcribe for s in _transcribed_specs(specs, False, ("m", {"audio"}))] == [False, False]


def test_cli_extract_transcribe_says_what_the_decoder_cut_short(tmp_path, make_clip):
    """The real decoder on a WAV file cut in half: its warning was collected and never printed by
    extract --transcribe (train and evaluate logged it)."""
    root = ravdess_like(tmp_path / "r", make_clip, {"03-01-05-01-01-01-01.wav": {"duration": 1.0, "audio": "noise"}})
    wav = root / "Actor_01" / "03-01-05-01-01-01-01.wav"
    wav.write_bytes(wav.read_bytes()[: wav.stat().st_size // 2])
    args = ["extract", "--dataset", "ravdess", "--root", str(root), "--features", "minilm", "--transcribe",
            "--cache", str(tmp_path / "cache")]
    result = CliRunner().invoke(app, args)
    said = " ".join(result.output.split())
    assert f"warning: {wav}: truncated or damaged: the header declares" in said, said
    assert "1 take transcribed, 0 from the cache, 1 without speech" in said
    # a second run reads the transcript from the cache: it said nothing of the damage; one line now
    said = " ".join(CliRunner().invoke(app, args).output.split())
    assert "0 takes transcribed, 1 from the cache" in said and "the header declares" not in said, said
    assert (f"warning: 1 transcript(s) from the cache were made from partly decoded audio (the decoder warned when "
            f"they were made; the text is of what decoded): {wav}") in said, said
    scan = transcribe_missing(read_dataset("ravdess", root), cache=FeatureCache(tmp_path / "cache"))  # train, evaluate
    assert scan.transcripts["cached"] == 1 and any("1 transcript(s) from the cache were made from partly decoded "
                                                   "audio" in w for w in scan.warnings), scan.warnings


def test_a_file_without_an_audio_track_is_no_take_without_speech(tmp_path, make_clip, counting_asr):
    """A folder's .mp4 is taken for audio + video; one without an audio track gave the recogniser
    nothing (an empty transcript, as predict does) and was counted and marked as a take without
    speech. It keeps its clip unchanged (its video is of use), without text, counted apart."""
    calls, said = counting_asr
    folder = tmp_path / "folder"
    folder.mkdir()
    shutil.copy(make_clip("v.mp4", duration=0.5, audio=None), folder / "v.mp4")
    shutil.copy(make_clip("a.wav", duration=0.5), folder / "a.wav")
    (folder / "labels.csv").write_text("path,emotion,speaker\nv.mp4,happy,s1\na.wav,sad,s1\n")
    said["v.mp4"] = ""  # what the recogniser says for a file without audio
    clips = read_dataset("folder", folder).clips
    done = transcribe_clips(clips, cache=FeatureCache(tmp_path / "cache"))
    by_name = {c.path.name: c for c in done.clips}
    assert by_name["v.mp4"] == next(c for c in clips if c.path.name == "v.mp4")  # unchanged: no text...
    assert SOURCE_FIELD not in by_name["v.mp4"].fields  # ...and no "asr" source: no speech was looked for
    assert by_name["a.wav"].text == "Kids are talking by the door." and by_name["a.wav"].fields[SOURCE_FIELD] == "asr"
    assert (done.transcribed, done.no_speech, done.no_audio) == (1, 0, 1) and done.summary()["no_audio"] == 1
    again = transcribe_clips(clips, cache=FeatureCache(tmp_path / "cache"))  # the empty transcript from the cache
    assert (again.cached, again.no_speech, again.no_audio) == (1, 0, 1) and len(calls) == 2


def test_cli_extract_says_why_transcribed_clips_have_no_text(tmp_path, make_clip, counting_asr, monkeypatch):
    """--transcribe given, the refusal told the user to give --transcribe; a folder of files none of
    which could be transcribed was refused without naming the folder."""
    _, said = counting_asr
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(make_clip("v.mp4", duration=0.5, audio=None), folder / "v.mp4")
    said["v.mp4"] = ""
    args = ["extract", str(folder), "--features", "minilm", "--transcribe", "--cache", str(tmp_path / "cache")]
    result = CliRunner().invoke(app, args)
    said_out = " ".join(result.output.split())
    assert result.exit_code != 0 and "1 file without an audio track" in said_out, said_out
    assert str(result.exception) == (f"{folder}: no clip has text for minilm (--transcribe found no speech in "
                                     "their audio, or they have none)")
    (folder / "v.mp4").unlink()
    (folder / "bad.wav").write_bytes(b"RIFF not a wave file")

    def undecodable(path, **_):
        raise MediaError("not a media file", path)

    monkeypatch.setattr(asr, "transcribe_file", undecodable)
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0 and str(result.exception) == f"{folder}: no file could be transcribed"


def test_a_cache_that_cannot_be_written_stops_the_run_instead_of_skipping_every_file(tmp_path, make_clip,
                                                                                      counting_asr, monkeypatch):
    """A full disk under the cache made every file 'cannot be transcribed: cannot write cache entry (No
    space left on device)' and skipped it: the run went on with the clips cached before, and failed
    later for another reason (found with a 64 KiB tmpfs as --cache). The cache's one-line error stops it."""
    from avemo.errors import CacheError

    root = ravdess_like(tmp_path / "r", make_clip, {f"03-01-0{e}-01-01-01-01.wav": {"duration": 0.5, "seed": e}
                                                   for e in (1, 3)})
    cache = FeatureCache(tmp_path / "cache")

    def full(key, arrays, spec=None):
        raise CacheError("cannot write cache entry (No space left on device)", cache.entry_path(key))

    monkeypatch.setattr(cache, "put", full)
    with pytest.raises(CacheError, match="No space left on device"):
        transcribe_clips(read_dataset("ravdess", root).clips, cache=cache)
    calls, _ = counting_asr
    assert len(calls) == 1  # stopped at the first file
