"""Batch extraction: cache hits, per-file failures, shared audio decoding."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from avemo.cache import FeatureCache
from avemo.errors import CacheError, ConfigError, FeatureError
from avemo.extraction import ExtractorSpec, extract_file, run_extraction
from avemo.features.base import AudioExtractor, register_extractor


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
