"""Speaker-level normalisation at prediction time (issue 11 §2): a generated bundle with a
speaker-normalised head, groups of synthetic clips, `avemo predict --group-by-speaker / --speakers`."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from avemo.datasets.labels import LabelSet
from avemo.errors import CheckpointError, ConfigError, DatasetError
from avemo.inference.abstention import AbstentionConfig
from avemo.inference.bundle import BundleConfig, SpeakerNormConfig, write_bundle_meta
from avemo.inference.fusion import FusionConfig

SHARED6 = ("neutral", "happy", "sad", "angry", "fearful", "disgust")
SPK = SpeakerNormConfig(temperature=2.5, tau=0.3, min_clips=3)
FUSION = FusionConfig(audio_weight=1.0, video_weight=0.5, audio_temperature=1.5, video_temperature=1.2)


def _head(folder: Path, seed: int, *, speaker_norm: bool) -> None:
    """A tiny untrained MLP on the Whisper embedding over the six shared labels; global statistics
    that are not the identity, so that a forgotten standardisation would show."""
    import torch

    from avemo.models import create_model
    from avemo.models.checkpoint import save_checkpoint
    from avemo.models.normalization import Normalizer

    torch.manual_seed(seed)
    model = create_model("whisper_mlp", num_classes=len(SHARED6), hidden=[8])
    width = model.inputs["audio"].shape[0]
    rng = np.random.default_rng(seed)
    mean = rng.normal(scale=0.05, size=width).astype(np.float32) if not speaker_norm else np.zeros(width, np.float32)
    std = rng.uniform(0.5, 2.0, size=width).astype(np.float32)
    norm = Normalizer(kinds={"audio": "vector"}, mean={"audio": mean}, std={"audio": std}, speaker_norm=speaker_norm)
    save_checkpoint(folder, model, labels=LabelSet("shared6", SHARED6), normalizer=norm)


def spk_bundle(folder: Path, *, speaker_norm: SpeakerNormConfig | None = SPK,
               abstention: AbstentionConfig = AbstentionConfig(min_speech=0.0)) -> Path:
    """min_speech 0 by default: the 1 s synthetic clips below hold just under 1 s of speech, which the
    bundled model's min_speech would flag (test_abstention.py)."""
    _head(folder / "audio", 0, speaker_norm=False)
    if speaker_norm is not None:
        _head(folder / speaker_norm.audio, 1, speaker_norm=True)
    write_bundle_meta(folder, BundleConfig(name="spk", labels=SHARED6, fusion=FUSION, speaker_norm=speaker_norm,
                                           abstention=abstention), {})
    return folder


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return spk_bundle(tmp_path_factory.mktemp("spk") / "bundle")


@pytest.fixture(scope="module")
def spk_predictor(bundle):
    from avemo import Predictor

    return Predictor.from_bundle(bundle, device="cpu")


@pytest.fixture(scope="module")
def clips(make_clip):
    """Speaker A: three voices and one face with a voice (4 usable clips >= min_clips), a silent clip
    (audio not used) and a broken file; speaker B: two voices (< min_clips); one file of no speaker."""
    a = [make_clip(f"a{i}.wav", duration=1.0, audio="speech", seed=10 + i, pitch=140.0 + 15 * i) for i in range(3)]
    a.append(make_clip("a_face.mp4", duration=1.0, size=(320, 240), fps=25, face=True, audio="speech", seed=20))
    silent = make_clip("a_silent.wav", duration=1.0, audio="silence")
    b = [make_clip(f"b{i}.wav", duration=1.0, audio="speech", seed=30 + i, pitch=200.0 + 20 * i) for i in range(2)]
    alone = make_clip("alone.wav", duration=1.0, audio="speech", seed=40)
    return {"a": a, "silent": silent, "b": b, "alone": alone}


def _batch(clips, tmp_path):
    broken = tmp_path / "a_broken.wav"
    broken.write_bytes(b"not audio")
    paths = [*clips["a"], clips["silent"], broken, *clips["b"], clips["alone"]]
    speakers = {**{p: "A" for p in [*clips["a"], clips["silent"], broken]}, **{str(p): "B" for p in clips["b"]}}
    return paths, speakers


def _by_hand(bundle: Path, predictor, files: list[Path]) -> np.ndarray:
    """The speaker-normalised head's logits of one speaker's files, computed apart from the predictor's
    second pass: the embeddings of a fresh encoder pass, the checkpoint's own Normalizer.transform
    (per-speaker z-normalisation, then the global statistics) and its model."""
    import torch

    from avemo.inference.windows import WindowGrid
    from avemo.models.checkpoint import load_checkpoint
    from avemo.models.normalization import ArraySet

    embeddings = [predictor._backend.audio.embed(f, WindowGrid())[0].astype(np.float32) for f in files]
    ckpt = load_checkpoint(bundle / SPK.audio)
    x = ckpt.normalizer.transform(ArraySet({"audio": embeddings}, ["A"] * len(files)))["audio"]
    with torch.inference_mode():
        return ckpt.model({"audio": torch.from_numpy(np.stack(x))}).numpy()


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def test_the_speaker_normalised_answer_from_too_little_speech_stays_uncertain(clips, tmp_path):
    """The second pass re-decides the clip's answer; the first pass's "too little speech" flag stays."""
    from avemo import Predictor

    folder = spk_bundle(tmp_path / "short", abstention=AbstentionConfig(tau=0.0, min_speech=5.0))
    outcomes = list(Predictor.from_bundle(folder, device="cpu").predict_many(
        clips["a"], speakers={p: "A" for p in clips["a"]}))
    for o in outcomes:
        r = o.prediction
        assert r.modalities["audio"].speaker_normalised and r.emotion is not None  # tau 0: only min_speech flags
        assert r.uncertain and any(w.startswith("too little speech") for w in r.warnings)


def test_a_speaker_with_enough_clips_gets_the_speaker_normalised_head(bundle, spk_predictor, clips, tmp_path):
    paths, speakers = _batch(clips, tmp_path)
    outcomes = list(spk_predictor.predict_many(paths, speakers=speakers))
    assert [o.ok for o in outcomes] == [True] * 5 + [False] + [True] * 3
    logits = _by_hand(bundle, spk_predictor, clips["a"])
    for k, outcome in enumerate(outcomes[:4]):
        r = outcome.prediction
        alone = spk_predictor.predict(paths[k])
        audio = r.modalities["audio"]
        assert r.speaker == "A" and audio.speaker_normalised and audio.speaker_clips == 4
        own = _softmax(logits[k] / SPK.temperature)  # the head's own temperature, not the main head's
        assert list(audio.probabilities.values()) == pytest.approx(own, abs=1e-5)
        if r.modalities["video"].used:  # re-fused with the video expert's calibrated distribution, weights unchanged
            video = np.array(list(alone.modalities["video"].probabilities.values()))
            fused = _softmax(FUSION.audio_weight * np.log(own) + FUSION.video_weight * np.log(video))
        else:
            fused = own
        assert list(r.probabilities.values()) == pytest.approx(fused, abs=1e-5)
        assert r.emotion == SHARED6[int(np.argmax(fused))] and r.uncertain == bool(fused.max() < SPK.tau)
        assert r.timeline == alone.timeline  # the windows keep the single-clip head
        assert r.modalities["video"] == alone.modalities["video"] and not r.warnings
        data = r.to_dict()
        assert data["speaker"] == "A" and data["modalities"]["audio"]["speaker_normalised"] is True
        assert data["modalities"]["audio"]["speaker_clips"] == 4
    assert any(o.prediction.modalities["video"].used for o in outcomes[:4])


def test_too_few_clips_unused_audio_and_no_speaker_keep_the_single_clip_result(spk_predictor, clips, tmp_path):
    paths, speakers = _batch(clips, tmp_path)
    outcomes = list(spk_predictor.predict_many(paths, speakers=speakers))
    silent, b_results, alone = outcomes[4].prediction, [o.prediction for o in outcomes[6:8]], outcomes[8].prediction
    assert not silent.modalities["audio"].used and silent.modalities["audio"].speaker_normalised is False
    assert silent.speaker == "A" and not any("min_clips" in w for w in silent.warnings)  # A has enough clips
    for path, r in zip(clips["b"], b_results, strict=True):
        single = spk_predictor.predict(path)
        assert r.speaker == "B" and r.modalities["audio"].speaker_normalised is False
        assert r.probabilities == single.probabilities and r.emotion == single.emotion
        assert r.warnings == ("speaker 'B': 2 clips with usable audio, fewer than min_clips = 3: single-clip result",)
    single = spk_predictor.predict(clips["alone"])
    assert alone == single  # not given a speaker: exactly the single-clip prediction
    data = alone.to_dict()
    assert "speaker" not in data and "speaker_normalised" not in data["modalities"]["audio"]


def test_the_statistics_are_the_speakers_own(bundle, spk_predictor, clips):
    """Two speakers in one batch are normalised apart: A's results do not change when B joins."""
    three = clips["a"][:3]
    extra = [*clips["b"], clips["alone"]]
    only_a = list(spk_predictor.predict_many(three, speakers=dict.fromkeys(three, "A")))
    both = list(spk_predictor.predict_many([*three, *extra], speakers={**dict.fromkeys(three, "A"),
                                                                        **dict.fromkeys(extra, "B")}))
    for x, y in zip(only_a, both[:3], strict=True):
        assert x.prediction.probabilities == pytest.approx(y.prediction.probabilities, abs=1e-6)
    assert all(o.prediction.modalities["audio"].speaker_normalised for o in both)
    logits = _by_hand(bundle, spk_predictor, three)
    assert list(only_a[0].prediction.modalities["audio"].probabilities.values()) == pytest.approx(
        _softmax(logits[0] / SPK.temperature), abs=1e-5)


def test_onnx_engine_gives_the_same_speaker_normalised_results(bundle, spk_predictor, clips, tmp_path):
    from avemo import Predictor

    onnx = Predictor.from_bundle(bundle, engine="onnx", onnx_dir=tmp_path / "onnx")
    assert (tmp_path / "onnx" / "audio_spknorm_head.onnx").is_file()
    speakers = dict.fromkeys(clips["a"], "A")
    a = [o.prediction for o in spk_predictor.predict_many(clips["a"], speakers=speakers)]
    b = [o.prediction for o in onnx.predict_many(clips["a"], speakers=speakers)]
    for x, y in zip(a, b, strict=True):
        assert y.modalities["audio"].speaker_normalised and y.emotion == x.emotion
        assert y.probabilities == pytest.approx(x.probabilities, abs=1e-4)
        assert y.modalities["audio"].probabilities == pytest.approx(x.modalities["audio"].probabilities, abs=1e-4)


def test_models_without_a_speaker_normalised_head_refuse_grouping(tmp_path, make_clip):
    from avemo import Predictor

    p = Predictor.from_bundle(spk_bundle(tmp_path / "plain", speaker_norm=None), device="cpu")
    assert p.speaker_head is None
    voice = make_clip("a0.wav", duration=1.0, audio="speech", seed=10, pitch=140.0)
    with pytest.raises(ConfigError, match="no speaker-normalised audio head .*config.speaker_norm"):
        list(p.predict_many([voice], speakers={voice: "A"}))


def test_broken_speaker_heads_are_one_line_checkpoint_errors(bundle, tmp_path):
    from avemo import Predictor
    from avemo.inference.predictor import load_predictor

    missing = tmp_path / "missing"
    shutil.copytree(bundle, missing)
    shutil.rmtree(missing / SPK.audio)
    with pytest.raises(CheckpointError, match="speaker-normalised audio head .* is missing") as info:
        Predictor.from_bundle(missing, device="cpu")
    assert "\n" not in str(info.value) and str(missing / SPK.audio) in str(info.value)
    plain = tmp_path / "plain_head"
    shutil.copytree(bundle, plain)
    shutil.rmtree(plain / SPK.audio)
    shutil.copytree(plain / "audio", plain / SPK.audio)  # a head trained without speaker normalisation
    with pytest.raises(CheckpointError, match="not trained with speaker-level normalisation"):
        Predictor.from_bundle(plain, device="cpu")
    with pytest.raises(CheckpointError, match="not trained with speaker-level normalisation"):
        Predictor.from_bundle(plain, engine="onnx", onnx_dir=tmp_path / "onnx_plain")
    with pytest.raises(CheckpointError, match="speaker-level normalisation, which needs many clips"):
        load_predictor(bundle / SPK.audio)  # the main-head path still refuses a speaker_norm checkpoint


def test_speakers_csv(tmp_path, make_clip):
    from avemo.inference.speakers import read_speakers_csv

    voice = make_clip("a0.wav", duration=1.0, audio="speech", seed=10, pitch=140.0)
    folder = tmp_path / "clips"
    folder.mkdir()
    shutil.copy(voice, folder / "x.wav")
    table = folder / "speakers.csv"
    table.write_text(f"file,speaker,notes\nx.wav,p01,first\n{voice},p02,\n")
    assert read_speakers_csv(table) == {(folder / "x.wav").resolve(): "p01", voice.resolve(): "p02"}
    cases = {
        "name,who\nx.wav,p01\n": r"needs the columns file,speaker; column\(s\) \['file', 'speaker'\] missing",
        "file,speaker\nx.wav,p01\ny.wav,p02\n": "row 3: no such file 'y.wav'",
        "file,speaker\nx.wav,\n": "row 2: empty speaker cell",
        "file,speaker\nx.wav,p01\nx.wav,p02\n": "row 3: 'x.wav' is listed with two speakers",
    }
    for text, message in cases.items():
        table.write_text(text)
        with pytest.raises(DatasetError, match=message) as info:
            read_speakers_csv(table)
        assert str(info.value).startswith(str(table)) and "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="no such speakers CSV"):
        read_speakers_csv(folder / "nope.csv")


def test_a_speakers_csv_file_not_found_says_where_it_was_looked_for(tmp_path, make_clip, monkeypatch):
    """A relative path of a --speakers CSV is read against the CSV's folder (a labels CSV's, against --root):
    the error said only that rule, not where it looked, nor that the file is where the user stands."""
    from avemo.inference.speakers import read_speakers_csv

    (tmp_path / "tables").mkdir()
    shutil.copy(make_clip("a0.wav", duration=1.0, audio="speech", seed=10, pitch=140.0), tmp_path / "x.wav")
    table = tmp_path / "tables" / "speakers.csv"
    table.write_text("file,speaker\nx.wav,p01\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetError) as info:
        read_speakers_csv(table)
    looked, here = (tmp_path / "tables" / "x.wav").resolve(), (tmp_path / "x.wav").resolve()
    assert str(info.value) == (f"{table}: row 2: no such file 'x.wav' (looked for {looked}: a relative path is read "
                               f"against the CSV's folder, not the current folder, where {here} is)")
    table.write_text(f"file,speaker\n{tmp_path / 'y.wav'},p01\n")
    with pytest.raises(DatasetError, match="looked for .*y.wav\\)$"):
        read_speakers_csv(table)


def test_a_speakers_csv_is_read_as_a_labels_csv_is(tmp_path, make_clip, caplog):
    """``--speakers`` read its CSV with its own reader: UTF-8 and ',' only, columns in lower case. A table
    saved by Excel on Windows (cp1252, ';', ``File;Speaker``) was "cannot read the speakers CSV ('utf-8'
    codec can't decode ...)"; now it is read as a folder's labels CSV is, with the same warning line."""
    from avemo.inference.speakers import read_speakers_csv

    folder = tmp_path / "clips"
    folder.mkdir()
    shutil.copy(make_clip("a0.wav", duration=1.0, audio="speech", seed=10, pitch=140.0), folder / "é.wav")
    table = folder / "speakers.csv"
    table.write_bytes("File;Speaker\né.wav;Zoë\n".encode("cp1252"))
    with caplog.at_level("WARNING", logger="avemo.inference.speakers"):
        assert read_speakers_csv(table) == {(folder / "é.wav").resolve(): "Zoë"}
    assert caplog.messages == [f"{table}: the speakers CSV is not UTF-8 text (byte 13); read as cp1252"]


# ----------------------------------------------------------------------------- the CLI
@pytest.fixture
def cli_predictor(spk_predictor, monkeypatch):
    from avemo.inference.predictor import Predictor

    monkeypatch.setattr(Predictor, "default", classmethod(lambda cls, **_: spk_predictor))
    return spk_predictor


def test_cli_group_by_speaker_and_speakers_csv(cli_predictor, avemo_main, clips, tmp_path):
    code, out, err = avemo_main("predict", *clips["a"], "--group-by-speaker", "--format", "json")
    assert code == 0, err
    results = json.loads(out)
    assert [r["speaker"] for r in results] == ["speaker"] * 4
    assert all(r["modalities"]["audio"]["speaker_normalised"] and r["modalities"]["audio"]["speaker_clips"] == 4
               for r in results)
    table = tmp_path / "speakers.csv"
    with open(table, "w", newline="") as handle:
        csv.writer(handle).writerows([["file", "speaker"], *[[p, "A"] for p in clips["a"]], [clips["b"][0], "B"]])
    code, out, err = avemo_main("predict", *clips["a"], clips["b"][0], clips["alone"], "--speakers", table,
                                "--format", "csv")
    assert code == 0, err
    rows = [r for r in csv.DictReader(out.splitlines()) if r["level"] == "clip"]
    assert [(r["speaker"], r["speaker_normalised"]) for r in rows] == [("A", "True")] * 4 + [("B", "False"), ("", "")]
    assert "speaker 'B': 1 clip with usable audio, fewer than min_clips = 3" in err
    code, out, err = avemo_main("predict", *clips["a"], "--group-by-speaker")
    assert code == 0 and "speaker: speaker (audio normalised with the statistics of its 4 clips)" in out


def test_group_by_speaker_help_says_the_shipped_bundles_min_clips():
    """The help said "its min_clips clips" without the number a user needs to plan a batch."""
    from avemo.cli.predict import GROUP_HELP
    from avemo.inference.bundle import BUNDLE_DIR, read_bundle

    shipped = read_bundle(BUNDLE_DIR)[0].speaker_norm.min_clips
    assert f"its min_clips clips with speech per speaker ({shipped} in the shipped bundle; " in GROUP_HELP


def test_cli_counts_a_file_copied_under_another_name_once(cli_predictor, avemo_main, clips, tmp_path):
    """Speaker B's two clips and a copy of the first under another name (as the REST batch sees it):
    B still has 2 clips (< min_clips); the copy is not predicted again, its result is the first's under
    its own path, with a warning; a copy given another speaker (--speakers) is refused before the work."""
    b = clips["b"]
    copy = tmp_path / "copy.wav"
    copy.write_bytes(b[0].read_bytes())
    calls = []
    real = cli_predictor._predict

    def counting(path, **options):
        calls.append(Path(path).name)
        return real(path, **options)

    cli_predictor._predict = counting
    try:
        code, out, err = avemo_main("predict", b[0], b[1], copy, "--group-by-speaker", "--format", "json")
    finally:
        del cli_predictor._predict
    assert code == 0, err
    results = json.loads(out)
    assert calls == [b[0].name, b[1].name]
    assert [r["modalities"]["audio"]["speaker_clips"] for r in results] == [2, 2, 2]
    assert not any(r["modalities"]["audio"]["speaker_normalised"] for r in results)
    note = f"the same content as {b[0]}: predicted once (a clip counts once toward its speaker's clips)"
    assert results[2] == {**results[0], "path": str(copy), "warnings": [*results[0]["warnings"], note]}
    assert f"avemo: warning: {copy}: {note}" in " ".join(err.split())
    table = tmp_path / "speakers.csv"
    table.write_text(f"file,speaker\n{b[0]},B\n{copy},C\n")
    code, out, err = avemo_main("predict", b[0], copy, "--speakers", table)
    assert code == 2 and out == ""
    assert (f"{b[0]} and {copy} are the same file (the same content) with different speakers (B, C): give each "
            "clip once") in " ".join(err.split())


def test_cli_speaker_option_errors(cli_predictor, avemo_main, clips, tmp_path):
    files = [str(p) for p in clips["a"][:2]]
    table = tmp_path / "speakers.csv"
    table.write_text("file,speaker\n")
    code, _, err = avemo_main("predict", *files, "--group-by-speaker", "--speakers", table)
    assert code == 2 and "--group-by-speaker and --speakers exclude each other" in err
    code, _, err = avemo_main("predict", *files, "--speakers", table, "--model", tmp_path)
    assert code == 2 and "--speakers needs a model with a speaker-normalised audio head" in err
    table.write_text("path,speaker\nx.wav,A\n")
    code, _, err = avemo_main("predict", *files, "--speakers", table)
    assert code == 2 and f"--speakers {table}: the speakers CSV needs the columns file,speaker" in err
    assert len(err.strip().splitlines()) == 1
    table.write_text("file,speaker\nmissing.wav,A\n")
    code, _, err = avemo_main("predict", *files, "--speakers", table)
    assert code == 2 and "row 2: no such file 'missing.wav'" in err
    with pytest.raises(ConfigError, match="does not combine with the text modality"):
        list(cli_predictor.predict_many(files, speakers=dict.fromkeys(files, "A"), modalities="audio,video,text"))


def test_cli_refuses_grouping_with_a_bundle_without_the_head(avemo_main, clips, tmp_path, monkeypatch):
    from avemo import Predictor
    from avemo.inference.predictor import Predictor as P

    plain = Predictor.from_bundle(spk_bundle(tmp_path / "plain", speaker_norm=None), device="cpu")
    monkeypatch.setattr(P, "default", classmethod(lambda cls, **_: plain))
    code, out, err = avemo_main("predict", *clips["a"][:2], "--group-by-speaker")
    assert code == 2 and out == ""
    assert "this model has no speaker-normalised audio head (the bundle's model.json has no config.speaker_norm)" in err


def _interrupt_at(predictor, monkeypatch, stop: Path, error: BaseException | type = KeyboardInterrupt) -> None:
    """Ctrl-C while ``stop`` is analysed: the predictor's own work raises KeyboardInterrupt there (or
    ``error``: a bug). ``stop`` is known by its content, so that its upload to the server is too."""
    real = predictor._predict

    def predict(path, *args, **kwargs):
        if Path(path).read_bytes() == Path(stop).read_bytes():
            raise error
        return real(path, *args, **kwargs)

    monkeypatch.setattr(predictor, "_predict", predict)


BUG = "internal error (TypeError: unsupported operand type(s) for +: 'int' and 'str'); please report it"


def test_a_bug_on_one_file_of_a_grouped_batch_skips_that_file_only(spk_predictor, clips, monkeypatch):
    """An exception that is no AvemoError (a bug) on one file: that file's outcome says so in one line,
    the batch goes on, and the speaker's statistics are those of the other files."""
    a = clips["a"]
    whole = [o.prediction for o in spk_predictor.predict_many(a[:3], speakers=dict.fromkeys(a[:3], "A"))]
    _interrupt_at(spk_predictor, monkeypatch, a[3], TypeError("unsupported operand type(s) for +: 'int' and 'str'"))
    outcomes = list(spk_predictor.predict_many(a, speakers=dict.fromkeys(a, "A")))
    assert [o.ok for o in outcomes] == [True, True, True, False] and [o.internal for o in outcomes][3]
    assert outcomes[3].reason == BUG and outcomes[3].error == f"{a[3]}: {BUG}"
    for got, full in zip(outcomes[:3], whole, strict=True):
        assert got.prediction.modalities["audio"].speaker_clips == 3
        assert got.prediction.probabilities == pytest.approx(full.probabilities, abs=1e-6)


INTERRUPTED_B = "speaker 'B': interrupted after 2 of the speaker's 3 files: single-clip result, not speaker-normalised"


def test_an_interrupted_grouped_batch_yields_the_files_done_then_raises(spk_predictor, clips, monkeypatch):
    """Speaker A's files were all analysed: its results are those of an uninterrupted batch; B's last
    file was being analysed: B's files done keep their single-clip results, marked."""
    a, b = clips["a"][:3], [clips["a"][3], *clips["b"]]
    whole = [o.prediction for o in spk_predictor.predict_many(a, speakers=dict.fromkeys(a, "A"))]
    singles = [spk_predictor.predict(p) for p in b[:2]]
    _interrupt_at(spk_predictor, monkeypatch, b[-1])
    got = []
    with pytest.raises(KeyboardInterrupt):
        for outcome in spk_predictor.predict_many([*a, *b], speakers={**dict.fromkeys(a, "A"), **dict.fromkeys(b, "B")}):
            got.append(outcome.prediction)
    assert [Path(r.path) for r in got] == [*a, *b[:2]]
    for r, full in zip(got[:3], whole, strict=True):
        assert r.modalities["audio"].speaker_normalised and r.modalities["audio"].speaker_clips == 3
        assert r.probabilities == pytest.approx(full.probabilities, abs=1e-6) and r.emotion == full.emotion
    for r, single in zip(got[3:], singles, strict=True):
        assert r.speaker == "B" and r.modalities["audio"].speaker_normalised is False
        assert r.probabilities == single.probabilities and r.warnings == (INTERRUPTED_B,)


def test_cli_an_interrupted_grouped_batch_writes_the_files_done(cli_predictor, avemo_main, clips, tmp_path,
                                                                 monkeypatch):
    a, b = clips["a"][:3], [clips["a"][3], *clips["b"]]
    table = tmp_path / "speakers.csv"
    with open(table, "w", newline="") as handle:
        csv.writer(handle).writerows([["file", "speaker"], *[[p, "A"] for p in a], *[[p, "B"] for p in b]])
    _interrupt_at(cli_predictor, monkeypatch, b[-1])
    out = tmp_path / "results.json"
    code, _, err = avemo_main("predict", *a, *b, "--speakers", table, "--format", "json", "--out", out)
    assert code == 130 and err.rstrip().endswith("avemo: interrupted")
    assert ("interrupted: the results of the 5 files done (of 6) were written; a speaker whose files were not all "
            "done keeps single-clip results, not speaker-normalised") in " ".join(err.split())
    results = json.loads(out.read_text())
    assert [r["speaker"] for r in results] == ["A"] * 3 + ["B"] * 2
    assert [r["modalities"]["audio"]["speaker_normalised"] for r in results] == [True] * 3 + [False] * 2
    assert all(r["warnings"] == [INTERRUPTED_B] for r in results[3:])


@pytest.mark.shared_data
def test_the_kept_embedding_is_the_whisper_feature_the_trainer_reads(spk_predictor, shared_data):
    """What the second pass normalises is the clip vector the audio head read, the whisper_base feature
    the trainer caches (here on a real EmoDB-dev clip)."""
    from avemo.features.base import get_extractor
    from avemo.inference.windows import WindowGrid

    clip = shared_data / "emodb_dev" / "wav" / "03a01Nc.flac"
    audio = spk_predictor._backend.audio
    out = audio.analyse(clip, WindowGrid())
    spec = next(iter(audio.ckpt.inputs.values()))
    reference = get_extractor("whisper_base", **dict(spec.config)).extract(clip)["x"]
    np.testing.assert_allclose(out.clip_embedding, reference, atol=1e-4)
    np.testing.assert_allclose(audio.logits(out.clip_embedding[None])[0], out.clip_logits, atol=1e-6)


_GROUPED_WITHOUT_TORCH = """
import sys
from avemo import Predictor
p = Predictor.from_bundle(sys.argv[1], engine="onnx", onnx_dir=sys.argv[2])
files = sys.argv[3:]
out = [o.prediction for o in p.predict_many(files, speakers=dict.fromkeys(files, "A"))]
print([r.modalities["audio"].speaker_normalised for r in out], "torch" in sys.modules)
"""


def test_grouping_on_the_onnx_engine_imports_no_torch(bundle, clips, tmp_path):
    """The speaker-normalised head on the onnx engine, its per-speaker statistics included, runs
    without torch, as the main head does (a fresh process: this one imported torch long ago)."""
    import os
    import subprocess
    import sys

    from avemo import Predictor

    Predictor.from_bundle(bundle, engine="onnx", onnx_dir=tmp_path / "onnx")  # exports the graphs (with torch)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    done = subprocess.run([sys.executable, "-c", _GROUPED_WITHOUT_TORCH, str(bundle), str(tmp_path / "onnx"),
                           *map(str, clips["a"])], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["[True, True, True, True] False"]


# ----------------------------------------------------------------------------- the REST API
@pytest.fixture(scope="module")
def api(spk_predictor, tmp_path_factory):
    """The FastAPI test client of an app around the speaker-normalising predictor, and its upload folder."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from avemo.serving import ServeSettings, create_app

    uploads = tmp_path_factory.mktemp("uploads")
    settings = ServeSettings(upload_dir=str(uploads), max_batch_files=8, max_duration=60.0)
    with TestClient(create_app(predictor=spk_predictor, settings=settings), raise_server_exceptions=False) as client:
        yield client, uploads


def _post_batch(client, files: list[Path], fields: list[tuple[str, str]] = (), names: list[str] | None = None):
    """POST /v1/predict/batch with ``files`` (in order) and the form ``fields`` (repeated names allowed)."""
    handles = [open(f, "rb") for f in files]
    try:
        parts = [("file", ((names or [f.name for f in files])[k], h, "application/octet-stream"))
                 for k, h in enumerate(handles)]
        return client.post("/v1/predict/batch", files=parts + [(k, (None, v)) for k, v in fields])
    finally:
        for h in handles:
            h.close()


def _api_error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["status"] == status and body["error"]["code"] == code, body
    assert "\n" not in body["error"]["message"] and "/tmp" not in body["error"]["message"]
    return body["error"]["message"]


def test_rest_batch_gives_the_speaker_normalised_json_of_the_library(api, spk_predictor, clips, tmp_path):
    """Files of two speakers (one with too few clips), one file of none and a broken one: the same JSON as
    Predictor.predict_many with the same speakers (the CLI's), each item in the order of the upload."""
    from avemo.serving.schemas import BatchOut

    client, uploads = api
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(40))  # a WAV signature, nothing decodable
    files = [*clips["a"], broken, *clips["b"], clips["alone"]]
    speakers = ["A"] * 4 + ["A"] + ["B"] * 2 + [""]
    response = _post_batch(client, files, [("speaker", s) for s in speakers])
    assert response.status_code == 200, response.text
    BatchOut.model_validate(response.json())
    results = response.json()["results"]
    assert [r["path"] for r in results] == [f.name for f in files]
    expected = list(spk_predictor.predict_many(
        [*clips["a"], *clips["b"], clips["alone"]], speakers={**dict.fromkeys(clips["a"], "A"),
                                                               **dict.fromkeys(clips["b"], "B")}))
    for got, want in zip([*results[:4], *results[5:]], expected, strict=True):
        want = want.prediction.to_dict()
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-6)
        assert {k: v for k, v in got.items() if k not in ("path", "probabilities", "modalities")} == \
               {k: v for k, v in want.items() if k not in ("path", "probabilities", "modalities")}
        for name, modality in want["modalities"].items():
            assert got["modalities"][name]["probabilities"] == pytest.approx(modality["probabilities"], abs=1e-6)
            assert {**got["modalities"][name], "probabilities": None} == {**modality, "probabilities": None}
    assert [r.get("speaker") for r in results] == ["A"] * 4 + [None] + ["B"] * 2 + [None]
    assert all(r["modalities"]["audio"]["speaker_normalised"] and r["modalities"]["audio"]["speaker_clips"] == 4
               for r in results[:4])
    assert results[4]["error"]["code"] == "unreadable_media" and results[4]["error"]["message"].startswith("broken.wav")
    assert results[5]["modalities"]["audio"]["speaker_normalised"] is False and "min_clips = 3" in results[5]["warnings"][0]
    assert "speaker" not in results[7] and "speaker_normalised" not in results[7]["modalities"]["audio"]
    response = _post_batch(client, clips["a"], [("group_by_speaker", "true")])
    assert [r["speaker"] for r in response.json()["results"]] == ["speaker"] * 4
    plain = _post_batch(client, clips["a"][:2]).json()["results"]  # no speakers: single-clip results
    assert plain[0] == {**spk_predictor.predict(clips["a"][0]).to_dict(), "path": clips["a"][0].name}
    assert not any(uploads.iterdir())


def test_rest_batch_refuses_bad_requests_with_one_line_json(api, clips, tmp_path):
    client, uploads = api
    a = clips["a"]
    _api_error(_post_batch(client, [a[0]] * 9), 400, "too_many_files")  # max_batch_files = 8
    message = _api_error(_post_batch(client, a[:3], [("speaker", "A"), ("speaker", "A")]), 422, "invalid_field")
    assert "one speaker field per file" in message and "3 files, 2 speaker fields" in message
    message = _api_error(_post_batch(client, a[:2], [("group_by_speaker", "true"), ("speaker", "A"), ("speaker", "A")]),
                         422, "invalid_field")
    assert "exclude each other" in message
    _api_error(_post_batch(client, a[:1], [("speaker", "A\x07")]), 422, "invalid_field")
    _api_error(_post_batch(client, a[:1], [("group_by_speaker", "maybe")]), 422, "invalid_field")
    _api_error(_post_batch(client, a[:1], [("progress_id", "0" * 32)]), 422, "unknown_field")
    _api_error(_post_batch(client, [], [("group_by_speaker", "true")]), 400, "missing_file")
    with open(a[0], "rb") as one, open(a[1], "rb") as two:  # /v1/predict still takes one file
        _api_error(client.post("/v1/predict", files=[("file", ("a.wav", one)), ("file", ("b.wav", two))]),
                   400, "several_files")
    assert not any(uploads.iterdir())


def test_rest_batch_skips_a_file_that_is_not_media(api, clips, tmp_path, monkeypatch):
    """A text file and an empty one among a speaker's clips: their items say so (the 415 and 400 a single
    upload gets), nothing of them is written to disk, and the speaker's clips are judged without them:
    the same items as the batch without those files. All of a batch refused: 200, error items only."""
    import avemo.serving.app as app_module

    client, uploads = api
    a = clips["a"]
    text, empty = tmp_path / "notes.wav", tmp_path / "empty.wav"
    text.write_text("not audio at all, whatever the name says " * 2000)  # longer than the sniffed head
    empty.write_bytes(b"")
    on_disk: list[list[str]] = []
    real_run_batch = app_module.run_batch

    def spy(predictor, form, *args):
        folder = {u.path.parent for u in form.files if u.path is not None}
        on_disk.append(sorted(p.name for f in folder for p in f.iterdir()))
        return real_run_batch(predictor, form, *args)

    monkeypatch.setattr(app_module, "run_batch", spy)
    response = _post_batch(client, [a[0], text, a[1], empty, a[2], a[3]], [("group_by_speaker", "true")])
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    single = client.post("/v1/predict", files={"file": ("notes.wav", text.read_bytes(), "audio/wav")})
    assert results[1] == {"path": "notes.wav", **single.json()} and single.status_code == 415
    assert results[1]["error"]["code"] == "unsupported_media"
    assert results[3] == {"path": "empty.wav", "error": {"status": 400, "code": "empty_file", "message":
                                                         "empty.wav: the uploaded file is empty (0 bytes)"}}
    assert [[Path(name).stem for name in names] for names in on_disk] == [  # the refused files: not kept
        ["upload-0", "upload-2", "upload-4", "upload-5"]]
    alone = _post_batch(client, a[:4], [("group_by_speaker", "true")]).json()["results"]
    assert [results[k] for k in (0, 2, 4, 5)] == alone
    assert all(r["modalities"]["audio"]["speaker_clips"] == 4 and r["modalities"]["audio"]["speaker_normalised"]
               for r in alone)
    refused = _post_batch(client, [text, empty], [("speaker", "A"), ("speaker", "A")])
    assert refused.status_code == 200, refused.text
    assert [r["error"]["code"] for r in refused.json()["results"]] == ["unsupported_media", "empty_file"]
    assert not any(uploads.iterdir())


def test_rest_batch_counts_a_file_sent_twice_once(api, clips, tmp_path):
    """Speaker B's two clips and a copy of the first under another name: B still has 2 clips (< min_clips),
    the copy's item is the first's with duplicate_of; a copy given another speaker is refused."""
    from avemo.serving.schemas import BatchOut

    client, uploads = api
    b = clips["b"]
    response = _post_batch(client, [b[0], b[1], b[0]], [("speaker", "B")] * 3, names=["b0.wav", "b1.wav", "copy.wav"])
    assert response.status_code == 200, response.text
    BatchOut.model_validate(response.json())
    results = response.json()["results"]
    assert [r["modalities"]["audio"]["speaker_clips"] for r in results] == [2, 2, 2]
    assert not any(r["modalities"]["audio"]["speaker_normalised"] for r in results)
    assert results[2] == {**results[0], "path": "copy.wav", "duplicate_of": 0}
    assert "duplicate_of" not in results[0] and "duplicate_of" not in results[1]
    message = _api_error(_post_batch(client, [b[0], b[0]], [("speaker", "B"), ("speaker", "C")], names=["x.wav", "y.wav"]),
                         422, "invalid_field")
    assert message.startswith("x.wav and y.wav are the same file (the same content) with different speakers (B, C)")
    assert not any(uploads.iterdir())


def test_rest_batch_answers_a_bug_on_one_file_in_its_item(api, spk_predictor, clips, monkeypatch, caplog):
    """A bug on one file of a batch: that item is a 500 internal_error (no details to the client, the
    traceback in the server log); the other files are answered."""
    client, uploads = api
    a = clips["a"][:3]
    _interrupt_at(spk_predictor, monkeypatch, a[1], TypeError("unsupported operand type(s) for +: 'int' and 'str'"))
    response = _post_batch(client, a)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results[1] == {"path": a[1].name, "error": {"status": 500, "code": "internal_error", "message":
                          f"{a[1].name}: internal error (details in the server log); please report it"}}
    assert [r["path"] for r in results] == [p.name for p in a] and "probabilities" in results[0] | results[2]
    assert "TypeError: unsupported operand" in caplog.text and not any(uploads.iterdir())


def _stalling_body(clip: Path):
    """A multipart body that sends a few hundred bytes, stalls for 2 s, then sends the rest: far less
    than min_upload_rate (16 KiB/s) on average. (The test client joins the chunks it is given, so the
    stall is caught by the rate check, not by read_timeout.)"""
    import time

    data = clip.read_bytes()
    yield b'--b0\r\nContent-Disposition: form-data; name="file"; filename="one.wav"\r\n\r\n' + data[:150]
    time.sleep(2.0)
    yield data[150:160] + b"\r\n--b0--\r\n"


def test_rest_batch_keeps_the_limits_and_slots_of_a_single_upload(spk_predictor, clips, tmp_path):
    """The files together are held to max_upload_bytes and max_duration; a full pool refuses a batch at
    once; a stalling client is cut off (408); a model without the speaker-normalised head refuses
    grouping, not a plain batch."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from avemo import Predictor
    from avemo.serving import ServeSettings, create_app

    a = clips["a"][:3]  # 1 s WAVs of about 32 KB each
    size = max(p.stat().st_size for p in a)
    settings = ServeSettings(upload_dir=str(tmp_path), max_upload_bytes=2 * size + 100, max_duration=2.5)
    app = create_app(predictor=spk_predictor, settings=settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert _post_batch(client, a[:2]).status_code == 200
        assert "the files together are larger" in _api_error(_post_batch(client, a), 413, "upload_too_large")
        settings_long = ServeSettings(upload_dir=str(tmp_path), max_duration=1.5)
        with TestClient(create_app(predictor=spk_predictor, settings=settings_long),
                        raise_server_exceptions=False) as other:
            message = _api_error(_post_batch(other, a[:2]), 413, "media_too_long")
            assert "the 2 files last 2.0 s together, more than the 1.5 s" in message
        pool = app.state.pool
        taken = [pool.reserve() for _ in range(pool.capacity)]
        _api_error(_post_batch(client, a[:2]), 503, "busy")
        for slot in taken:
            slot.release()
        assert client.get("/healthz").json()["limits"]["max_batch_files"] == settings.max_batch_files
        assert client.get("/v1/models").json()["models"][0]["speaker_norm"]["min_clips"] == SPK.min_clips
    with TestClient(create_app(predictor=spk_predictor, settings=ServeSettings(upload_dir=str(tmp_path),
                                                                             read_timeout=0.5))) as client:
        assert "too slow" in _api_error(client.post("/v1/predict/batch", content=_stalling_body(a[0]),
                                                    headers={"content-type": "multipart/form-data; boundary=b0"}),
                                        408, "upload_timeout")
    with TestClient(create_app(predictor=spk_predictor, settings=ServeSettings(upload_dir=str(tmp_path),
                                                                             read_timeout=0.5))) as client:
        assert "too slow" in _api_error(client.post("/v1/predict/batch", content=_stalling_body(a[0]),
                                                    headers={"content-type": "multipart/form-data; boundary=b0"}),
                                        408, "upload_timeout")
    plain = Predictor.from_bundle(spk_bundle(tmp_path / "plain", speaker_norm=None), device="cpu")
    with TestClient(create_app(predictor=plain, settings=ServeSettings(upload_dir=str(tmp_path))),
                    raise_server_exceptions=False) as client:
        message = _api_error(_post_batch(client, a[:2], [("group_by_speaker", "on")]), 422,
                             "speaker_grouping_unavailable")
        assert "no speaker-normalised audio head" in message
        assert _post_batch(client, a[:2]).status_code == 200
    assert [p.name for p in tmp_path.iterdir()] == ["plain"]  # no upload folder left
