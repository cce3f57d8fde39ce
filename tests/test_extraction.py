"""Batch extraction: cache hits, per-file failures, shared audio decoding."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from avemo.cache import FeatureCache
from avemo.digest import file_digest
from avemo.errors import CacheError, ConfigError, FeatureError
from avemo.extraction import ExtractorSpec, extract_file, run_extraction
from avemo.features.base import AudioExtractor, VideoExtractor, register_extractor


@dataclass(frozen=True)
class _RmsConfig:
    sample_rate: int = 16000
    frame: int = 400


@register_extractor
class _FrameRms(AudioExtractor):
    """Test extractor: RMS of fixed frames; refuses signals under one frame."""

    name = "test_frame_rms"
    Config = _RmsConfig
    calls = 0

    def feature_names(self):
        return ["rms"]

    def from_signal(self, y, sr):
        type(self).calls += 1
        n = len(y) // self.config.frame
        if n == 0:
            raise FeatureError(f"too short: {len(y) / sr:.2f} s")
        frames = y[: n * self.config.frame].reshape(n, -1)
        return {"x": np.sqrt((frames**2).mean(axis=1, keepdims=True)).astype(np.float32)}


def test_compute_then_cache(tmp_path, make_clip):
    clip = make_clip("a.wav", duration=1.0)
    cache = FeatureCache(tmp_path / "c")
    ex = ExtractorSpec.of("test_frame_rms").build()
    first, feats = extract_file(clip, [ex], cache, keep=True)
    assert first.ok and first.computed == ["test_frame_rms"] and not first.cached
    assert feats["test_frame_rms"]["x"].shape == (40, 1)
    second, again = extract_file(clip, [ex], cache, keep=True)
    assert second.cached == ["test_frame_rms"] and not second.computed
    np.testing.assert_array_equal(again["test_frame_rms"]["x"], feats["test_frame_rms"]["x"])
    # another config is another entry
    other = ExtractorSpec.of("test_frame_rms", frame=800).build()
    third, f3 = extract_file(clip, [other], cache, keep=True)
    assert third.computed == ["test_frame_rms"] and f3["test_frame_rms"]["x"].shape == (20, 1)


def test_audio_decoded_once_for_several_extractors(tmp_path, make_clip, monkeypatch):
    import avemo.media

    clip = make_clip("b.wav", duration=0.5)
    calls = []
    real = avemo.media.load_audio
    monkeypatch.setattr(avemo.media, "load_audio", lambda *a, **k: calls.append(a) or real(*a, **k))
    exs = [ExtractorSpec.of("test_frame_rms").build(), ExtractorSpec.of("test_frame_rms", frame=200).build()]
    outcome, _ = extract_file(clip, exs, FeatureCache(tmp_path / "c"))
    assert outcome.ok and len(outcome.computed) == 2
    assert len(calls) == 1


def test_batch_keeps_going_and_lists_failures(tmp_path, make_clip):
    good = make_clip("good.wav", duration=0.5)
    short = make_clip("short.wav", duration=0.01)
    silent_video = make_clip("noaudio.mp4", audio=None, duration=0.5)
    not_media = tmp_path / "notes.wav"
    not_media.write_text("hello")
    cache = FeatureCache(tmp_path / "c")
    seen = []
    report = run_extraction(
        [good, short, silent_video, not_media, tmp_path / "missing.wav"],
        [ExtractorSpec("test_frame_rms")],
        cache=cache,
        progress=seen.append,
    )
    assert len(seen) == 5
    errors = {o.path: o.errors.get("test_frame_rms") for o in report.outcomes}
    assert errors[str(good)] is None
    assert "too short" in errors[str(short)]
    assert "no audio track" in errors[str(silent_video)]
    assert "not a media file" in errors[str(not_media)]
    assert "file not found" in errors[str(tmp_path / "missing.wav")]
    assert len(report.failed) == 4 and report.n_computed == 1
    # only the good file left an entry, and no temporary file is left anywhere
    entries = [p for p in (tmp_path / "c").rglob("*") if p.is_file()]
    assert len(entries) == 1 and entries[0].suffix == ".npz"


def fill_disk_after(monkeypatch, writes: int) -> None:
    """The disk fills up after ``writes`` cache entries: every later write fails with ENOSPC."""
    import errno

    from avemo.cache import store

    real, done = store.os.fsync, []

    def fsync(fd):
        if len(done) >= writes:
            raise OSError(errno.ENOSPC, "No space left on device")
        done.append(fd)
        return real(fd)

    monkeypatch.setattr(store.os, "fsync", fsync)


def test_a_full_disk_stops_the_run_at_once_and_keeps_what_was_written(tmp_path, make_clip, monkeypatch):
    """A cache that cannot be written is no fault of a file: the run stops with the cache's error at
    the first file that cannot be stored, instead of failing every file after it one by one."""
    clips = [make_clip(f"full{i}.wav", duration=0.3 + 0.1 * i) for i in range(4)]
    fill_disk_after(monkeypatch, 2)
    _FrameRms.calls = 0
    seen = []
    with pytest.raises(CacheError, match=r"cannot write cache entry \(No space left on device\)"):
        run_extraction(clips, [ExtractorSpec("test_frame_rms")], cache=FeatureCache(tmp_path / "c"),
                       progress=seen.append)
    assert [o.path for o in seen] == [str(c) for c in clips[:2]] and all(o.ok for o in seen)
    assert _FrameRms.calls == 3  # the fourth file was not even computed
    cache = FeatureCache(tmp_path / "c")
    files = [p for p in (tmp_path / "c").rglob("*") if p.is_file()]  # the two entries, whole; no temporary file
    assert len(files) == 2 and all(p.suffix == ".npz" and cache.get(p.stem) is not None for p in files)


def test_unknown_extractor_fails_before_work(tmp_path):
    with pytest.raises(ConfigError, match="unknown feature extractor 'nope'"):
        run_extraction([tmp_path / "x.wav"], [ExtractorSpec("nope")], cache=FeatureCache(tmp_path))


def test_bad_executor_options_are_named_as_the_library_takes_them():
    """Called from Python there is no ``--workers`` or ``--address``: the message names the value."""
    from avemo.extraction.executors import get_executor

    with pytest.raises(ConfigError) as err:
        get_executor("local", workers=0)
    assert str(err.value) == "workers must be at least 1, got 0"
    with pytest.raises(ConfigError) as err:
        get_executor("local", address="10.0.0.1:6379")
    assert str(err.value) == "an address (10.0.0.1:6379) is only meaningful with the ray executor, not local"


def test_bad_config_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown option"):
        ExtractorSpec.of("test_frame_rms", n_mfcc=3).build()
    with pytest.raises(ConfigError):
        ExtractorSpec.parse(" , ")
    assert [s.name for s in ExtractorSpec.parse("a, b,a")] == ["a", "b"]
    spec = ExtractorSpec.parse("face_crops:fps=5:n_frames=null:size=[64,64]:detector=haar")[0]
    assert dict(spec.config) == {"fps": 5, "n_frames": None, "size": (64, 64), "detector": "haar"}
    assert spec.build().config.size == (64, 64)
    with pytest.raises(ConfigError, match="not key=value"):
        ExtractorSpec.parse("mfcc:n_mfcc")


@dataclass(frozen=True)
class _FramesConfig:
    fps: float = 5.0


@register_extractor
class _FrameCount(VideoExtractor):
    """Test extractor: the number of frames decoded at ``fps`` (decodes the file itself)."""

    name = "test_frame_count"
    Config = _FramesConfig

    def feature_names(self):
        return ["frames"]

    def extract(self, path):
        from avemo.media import iter_frames

        return {"x": np.array([sum(1 for _ in iter_frames(path, fps=self.config.fps, size=(32, 24)))], np.float32)}


def cut_short(make_clip, folder, name: str, **spec) -> Path:
    """A generated file cut to half its bytes (an interrupted copy): its header still declares the whole."""
    whole = make_clip(name, **spec).read_bytes()
    path = folder / f"cut_{name}"
    path.write_bytes(whole[: len(whole) // 2])
    return path


def test_the_decoders_lines_are_stored_with_the_features_and_said_again_from_the_cache(tmp_path, make_clip, caplog):
    """A truncated WAV warns when its features are computed (once, whatever the number of extractors),
    is stored with them, and a run that reads them from the cache says so in one line; a clean file
    stays silent."""
    cut, clean = cut_short(make_clip, tmp_path, "whole.wav", duration=1.0), make_clip("clean.wav", duration=1.0)
    specs = [ExtractorSpec.of("test_frame_rms"), ExtractorSpec.of("test_frame_rms", frame=200)]
    cache = FeatureCache(tmp_path / "c")
    with caplog.at_level(logging.WARNING):
        first = run_extraction([cut, clean], specs, cache=cache)
    said = f"{cut}: truncated or damaged: the header declares 1.00 s of audio, only 0.50 s could be decoded"
    assert first.n_computed == 4 and first.warnings == [said] and first.to_dict()["warnings"] == [said]
    assert not caplog.records  # said by the caller (the command), not logged where it was decoded
    second = run_extraction([cut, clean], specs, cache=cache)
    assert second.n_cached == 4 and second.warnings == [
        f"1 file(s) have features from the cache that were made from partly decoded audio or video (the decoder "
        f"warned when they were made; the features are of what decoded): {cut}"]
    assert run_extraction([clean], specs, cache=cache).warnings == []
    outcome, feats = extract_file(cut, [specs[0].build()], cache, keep=True)
    assert outcome.cached_warnings == [said.split(": ", 1)[1]]
    assert feats["test_frame_rms"]["x"].shape == (19, 1)  # of the half that decoded (7,980 samples), not 40 frames


def test_an_entry_without_stored_lines_is_clean_and_its_key_is_unchanged(tmp_path, make_clip):
    """Entries written before the decoder's lines were stored (none in their metadata) read as clean;
    storing lines changes no key, so those entries are read, not recomputed."""
    cut = cut_short(make_clip, tmp_path, "old.wav", duration=1.0)
    cache = FeatureCache(tmp_path / "c")
    ex = ExtractorSpec.of("test_frame_rms").build()
    computed, feats = extract_file(cut, [ex], cache, keep=True)
    assert computed.warnings and computed.computed == ["test_frame_rms"]
    key = cache.key(file_digest(cut), ex.cache_spec())
    assert cache.read(key)[1] == computed.warnings
    cache.put(key, feats["test_frame_rms"], ex.cache_spec())  # as written before: no lines
    assert cache.read(key)[1] == []
    again = run_extraction([cut], [ExtractorSpec.of("test_frame_rms")], cache=cache)
    assert again.n_cached == 1 and again.warnings == []


def test_a_video_extractor_that_decodes_the_file_itself_gets_its_lines_stored(tmp_path, make_clip):
    cut = cut_short(make_clip, tmp_path, "v.mkv", duration=2.0, size=(64, 48), audio=None)
    cache = FeatureCache(tmp_path / "c")
    first = run_extraction([cut], [ExtractorSpec("test_frame_count")], cache=cache)
    assert first.n_computed == 1 and len(first.warnings) == 1, first.warnings
    assert first.warnings[0].startswith(f"{cut}: truncated or damaged: the header declares 2.00 s of video")
    assert run_extraction([cut], [ExtractorSpec("test_frame_count")], cache=cache).warnings[0].startswith(
        "1 file(s) have features from the cache that were made from partly decoded audio or video")


def test_extract_warns_of_a_truncated_file_again_when_it_reads_its_features_from_the_cache(tmp_path, make_clip):
    from typer.testing import CliRunner

    from avemo.cli import app

    folder = tmp_path / "clips"
    folder.mkdir()
    cut = cut_short(make_clip, folder, "a.wav", duration=1.0)
    shutil.copy(make_clip("clean.wav", duration=1.0), folder / "clean.wav")
    args = ["extract", str(folder), "-f", "mfcc", "--cache", str(tmp_path / "c")]
    # computed by a process pool (the lines come back from its workers), then read from the cache in-process
    said = [" ".join(CliRunner().invoke(app, [*args, *more]).output.split()) for more in (["-j", "2"], [])]
    assert f"warning: {cut}: truncated or damaged: the header declares 1.00 s of audio" in said[0], said[0]
    assert "2 computed, 0 from cache" in said[0] and "from the cache that were" not in said[0]
    assert "0 computed, 2 from cache" in said[1] and "the header declares" not in said[1], said[1]
    assert ("warning: 1 file(s) have features from the cache that were made from partly decoded audio or video (the "
            f"decoder warned when they were made; the features are of what decoded): {cut}") in said[1], said[1]
    assert "clean.wav" not in " ".join(said)


def test_train_and_evaluate_say_it_too_when_they_gather_features_from_the_cache(tmp_path, make_clip, caplog):
    """``gather`` (train, evaluate, the benchmark) logs the decoder's lines when it extracts, and one line
    when a later run reads the features of the truncated file from the cache; once for all the inputs."""
    from avemo.datasets import read_dataset
    from avemo.datasets.pairing import pair_takes
    from avemo.models.inputs import InputSpec
    from avemo.training.data import gather

    folder = tmp_path / "ravdess" / "Actor_01"
    folder.mkdir(parents=True)
    cut = cut_short(make_clip, folder, "03-01-05-01-01-01-01.wav", duration=1.0)
    cut = cut.rename(folder / "03-01-05-01-01-01-01.wav")
    shutil.copy(make_clip("clean.wav", duration=1.0), folder / "03-01-03-01-01-01-01.wav")
    takes = list(pair_takes(read_dataset("ravdess", folder.parent).clips).values())
    specs = {name: InputSpec("audio", "test_frame_rms", {"frame": frame}, (None, 1), "sequence")
             for name, frame in (("fine", 200), ("coarse", 400))}  # two inputs of the file: said once
    said = []
    for _ in range(2):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="avemo.training.data"):
            got = gather(takes, specs, cache=FeatureCache(tmp_path / "c"))
        assert len(got) == 2
        said.append([r.getMessage() for r in caplog.records])
    assert said[0] == [f"{cut}: truncated or damaged: the header declares 1.00 s of audio, only 0.50 s could be decoded"]
    assert said[1] == ["1 file(s) have features from the cache that were made from partly decoded audio or video (the "
                       f"decoder warned when they were made; the features are of what decoded): {cut}"]


def test_extract_lists_a_stray_copy_of_a_take_as_a_duplicate_not_as_a_file_it_could_not_use(tmp_path, make_clip):
    """A copy of a RAVDESS take outside the Actor_XX layout used to win (it sorts first) and the corpus's
    own file was "skipped", which made `extract` exit 1 with a "Not extracted" table; now the corpus's
    file is read and the copy is listed as a duplicate."""
    from typer.testing import CliRunner

    from avemo.cli import app

    name = "03-01-05-01-01-01-01.wav"
    for folder in ("Actor_01", "0copies"):
        (tmp_path / "ravdess" / folder).mkdir(parents=True)
        shutil.copy(make_clip("clean.wav", duration=1.0), tmp_path / "ravdess" / folder / name)
    summary = tmp_path / "summary.json"
    result = CliRunner().invoke(app, ["extract", "--root", str(tmp_path / "ravdess"), "--dataset", "ravdess", "-f",
                                      "test_frame_rms", "--cache", str(tmp_path / "c"), "--summary", str(summary)])
    said = " ".join(result.output.split())
    assert result.exit_code == 0, said
    assert (f"duplicate {tmp_path / 'ravdess' / '0copies' / name}: a copy of take 01-05-01-01-01-01 (audio), which "
            f"is read from {tmp_path / 'ravdess' / 'Actor_01' / name}") in said
    assert "skipped" not in said and "Not extracted" not in said
    saved = json.loads(summary.read_text())
    assert saved["files"] == 1 and saved["skipped"] == []


def test_extract_model_computes_the_features_the_model_reads(tmp_path, make_clip, avemo_main):
    """`avemo extract --model M` fills the cache with what `avemo train --model M` reads: the documented
    pre-extraction for a frame model (``--features mfcc,face_crops``) computed the extractors' defaults
    (40 MFCCs with deltas, 16 crops of 112x112), which paper 001's model does not read, so that training
    extracted everything again."""
    from avemo.extraction.core import all_cached
    from avemo.models import default_inputs

    clip, cache = make_clip("face.mp4", duration=1.0), tmp_path / "c"
    code, out, err = avemo_main("extract", clip, "--model", "sultana_concat_dense", "--cache", cache)
    assert code == 0, err
    assert "1 file, 2 extractors: 2 computed" in out
    wanted = [ExtractorSpec.of(s.feature, **dict(s.config)).build() for s in default_inputs("sultana_concat_dense").values()]
    assert all_cached(str(clip), wanted, FeatureCache(cache)) is not None
    # with --features: both; a model whose only input is a table has nothing to extract
    code, out, _ = avemo_main("extract", clip, "--model", "sultana_concat_dense", "-f", "mfcc:n_mfcc=20:deltas=false,egemaps",
                              "--cache", cache)
    assert code == 0 and "1 file, 3 extractors: 1 computed, 2 from cache" in out
    code, _, err = avemo_main("extract", clip, "--model", "au_mlp", "--cache", cache)
    assert code == 2 and err.strip() == "avemo: error: model au_mlp reads no extracted feature (only openface_au_means)"
    code, _, err = avemo_main("extract", clip, "--model-config", '{"hidden": 64}', "--cache", cache)
    assert code == 2 and err.strip() == "avemo: error: --model-config needs --model"


def test_export_keeps_each_configuration_of_one_extractor(tmp_path, make_clip, avemo_main):
    """`extract -f mfcc --model M --out DIR` (M reads 20 MFCCs without deltas): both were written to
    DIR/mfcc.npz, the second replacing the first."""
    clip = make_clip("two_mfcc.wav", duration=0.5)
    code, _, err = avemo_main("extract", clip, "-f", "mfcc,mfcc:n_mfcc=20:deltas=false", "--cache", tmp_path / "c",
                              "--out", tmp_path / "out")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "index.csv", "mfcc-deltas=false-n_mfcc=20.npz", "mfcc.npz"]
    assert np.load(tmp_path / "out" / "mfcc.npz")["0"].shape[1] == 120  # 40 MFCCs with deltas
    assert np.load(tmp_path / "out" / "mfcc-deltas=false-n_mfcc=20.npz")["0"].shape[1] == 20
