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
