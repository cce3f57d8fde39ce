"""Audio perturbation for data augmentation: speed (Ko et al. 2015) and pitch shifts.

:class:`Perturbed` wraps any audio extractor: the decoded signal is perturbed before the
wrapped extractor sees it, and the perturbation is part of the cache key, so augmented
copies are extracted and cached like the originals.

* speed ``f``: the signal is replayed ``f`` times faster (tempo and pitch both scale by ``f``),
  implemented as resampling from ``f * sr`` to ``sr`` with libsoxr, as Kaldi's speed perturbation;
* pitch ``n`` semitones: ``librosa.effects.pitch_shift`` (phase-vocoder time stretch + resampling),
  tempo unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from avemo.errors import ConfigError
from avemo.features.base import AudioExtractor, Features


def perturb_signal(y: np.ndarray, sr: int, *, speed: float = 1.0, pitch: float = 0.0) -> np.ndarray:
    """``y`` sped up by ``speed`` and shifted by ``pitch`` semitones (float32)."""
    if speed <= 0:
        raise ConfigError(f"speed factor must be positive, got {speed}")
    out = np.asarray(y, dtype=np.float32)
    if speed != 1.0:
        import soxr

        out = soxr.resample(out, sr * speed, sr, quality="HQ").astype(np.float32)
    if pitch != 0.0:
        from avemo.cache_dirs import ensure_numba_cache_dir

        ensure_numba_cache_dir()  # librosa's numba functions need a writable cache folder
        import librosa

        out = librosa.effects.pitch_shift(out, sr=sr, n_steps=float(pitch)).astype(np.float32)
    return out


class Perturbed(AudioExtractor):
    """``inner`` applied to the perturbed signal (same name, its own cache key)."""

    def __init__(self, inner: AudioExtractor, *, speed: float = 1.0, pitch: float = 0.0):
        self.inner = inner
        self.name = inner.name
        self.Config = inner.Config
        self.config = inner.config
        self.speed = float(speed)
        self.pitch = float(pitch)
        if self.speed <= 0:
            raise ConfigError(f"speed factor must be positive, got {speed}")

    @property
    def sample_rate(self) -> int:
        return self.inner.sample_rate

    def cache_spec(self) -> dict[str, Any]:
        return {**self.inner.cache_spec(), "perturb": {"speed": self.speed, "pitch": self.pitch}}

    def from_signal(self, y: np.ndarray, sr: int) -> Features:
        return self.inner.from_signal(perturb_signal(y, sr, speed=self.speed, pitch=self.pitch), sr)
