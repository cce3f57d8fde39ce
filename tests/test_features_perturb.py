"""Speed / pitch perturbation of audio inputs (data augmentation)."""

from __future__ import annotations

import numpy as np
import pytest

from avemo.cache import FeatureCache
from avemo.errors import ConfigError
from avemo.extraction import ExtractorSpec, extract_file
from avemo.features.audio.perturb import perturb_signal


def _f0(y, sr):
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return np.fft.rfftfreq(len(y), 1 / sr)[spectrum.argmax()]


def test_speed_and_pitch():
    sr = 16000
    t = np.arange(sr) / sr
    y = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    fast = perturb_signal(y, sr, speed=1.1)
    assert len(fast) == pytest.approx(len(y) / 1.1, abs=2)
    assert _f0(fast, sr) == pytest.approx(440 * 1.1, rel=0.01)
    up = perturb_signal(y, sr, pitch=2.0)
    assert len(up) == len(y)  # tempo unchanged
    assert _f0(up, sr) == pytest.approx(440 * 2 ** (2 / 12), rel=0.01)
    with pytest.raises(ConfigError):
        perturb_signal(y, sr, speed=0)


def test_perturbed_features_are_cached_apart(tmp_path, make_clip):
    clip = make_clip("p.wav", duration=1.0)
    cache = FeatureCache(tmp_path)
    plain = ExtractorSpec.of("mfcc").build()
    fast = ExtractorSpec.of("mfcc", perturb={"speed": 1.25}).build()
    assert fast.name == "mfcc" and fast.cache_spec() != plain.cache_spec()
    _, a = extract_file(clip, [plain], cache, keep=True)
    outcome, b = extract_file(clip, [fast], cache, keep=True)
    assert outcome.computed == ["mfcc"]  # not the plain entry
    assert b["mfcc"]["x"].shape[0] < a["mfcc"]["x"].shape[0]
    with pytest.raises(ConfigError, match="not an audio extractor"):
        ExtractorSpec.of("face_crops", perturb={"speed": 1.1}).build()


def test_channel_perturbation_is_keyed_by_channel_seed_and_source_contents(tmp_path, make_clip):
    import shutil

    from avemo.media.channels import ChannelUnavailableError

    clip = make_clip("c.wav", duration=1.0)
    cache = FeatureCache(tmp_path / "cache")
    plain = ExtractorSpec.of("mfcc").build()
    noisy = ExtractorSpec.of("mfcc", perturb={"channel": "noise_pink_5db", "seed": 0}).build()
    same = ExtractorSpec.of("mfcc", perturb={"channel": "noise:kind=pink:snr=5", "seed": 0}).build()
    other_seed = ExtractorSpec.of("mfcc", perturb={"channel": "noise_pink_5db", "seed": 1}).build()
    keys = [cache.key("f", e.cache_spec()) for e in (plain, noisy, same, other_seed)]
    assert keys[1] == keys[2] and len({keys[0], keys[1], keys[3]}) == 3
    _, a = extract_file(clip, [plain], cache, keep=True)
    outcome, b = extract_file(clip, [noisy], cache, keep=True)
    assert outcome.computed == ["mfcc"] and not np.allclose(a["mfcc"]["x"], b["mfcc"]["x"])
    outcome, c = extract_file(clip, [same], cache, keep=True)
    assert outcome.cached == ["mfcc"] and np.array_equal(b["mfcc"]["x"], c["mfcc"]["x"])

    talkers = [make_clip(f"t{i}.flac", duration=1.0, seed=i + 1, pitch=120.0 + 40 * i) for i in range(3)]
    copy = tmp_path / "copy_of_t0.flac"
    shutil.copy(talkers[0], copy)

    def babble(sources):
        return ExtractorSpec.of("mfcc", perturb={"channel": "babble:snr=5:talkers=2", "seed": 0,
                                                 "sources": [str(s) for s in sources]}).build()

    first = babble(talkers)
    assert first.cache_spec() == babble(talkers[::-1]).cache_spec()  # order-free: sorted by content
    assert first.cache_spec() == babble([copy, *talkers[1:]]).cache_spec()  # contents, not paths
    assert first.cache_spec() != babble(talkers[:2]).cache_spec()
    outcome, d = extract_file(clip, [first], cache, keep=True)
    assert outcome.ok and not np.allclose(d["mfcc"]["x"], a["mfcc"]["x"])
    gone = tmp_path / "gone.flac"
    shutil.copy(talkers[2], gone)
    vanishing = babble([talkers[1], gone])
    vanishing.cache_spec()  # hashed, then deleted before it is decoded
    gone.unlink()
    outcome, _ = extract_file(clip, [vanishing], FeatureCache(tmp_path / "c2"), keep=True)
    assert outcome.errors["mfcc"].startswith(f"babble source {gone}: ")
    with pytest.raises(ConfigError, match="needs source files"):
        ExtractorSpec.of("mfcc", perturb={"channel": "babble_5db"}).build()
    with pytest.raises(ConfigError, match="only a babble channel"):
        ExtractorSpec.of("mfcc", perturb={"channel": "gain_-20db", "sources": [str(clip)]}).build()
    with pytest.raises(ChannelUnavailableError, match="no libnotanencoder encoder"):
        ExtractorSpec.of("mfcc", perturb={"channel": "mp3:encoder=libnotanencoder"}).build()
