"""Audio perturbation: speed (Ko et al. 2015) and pitch shifts, and transmission channels.

:class:`Perturbed` wraps any audio extractor: the decoded signal is perturbed before the
wrapped extractor sees it, and the perturbation is part of the cache key, so perturbed
copies are extracted and cached like the originals. It serves data augmentation (speed,
pitch, channels) and the degraded-audio benchmark (channels).

* speed ``f``: the signal is replayed ``f`` times faster (tempo and pitch both scale by ``f``),
  implemented as resampling from ``f * sr`` to ``sr`` with libsoxr, as Kaldi's speed perturbation;
* pitch ``n`` semitones: ``librosa.effects.pitch_shift`` (phase-vocoder time stretch + resampling),
  tempo unchanged;
* channel: a codec, the telephone band, noise, babble, reverberation or a gain
  (:mod:`avemo.media.channels`), applied after speed and pitch, with ``seed``; each signal gets
  its own noise and room under that seed (the channel's ``item`` is a hash of the signal, or
  the ``item`` given: training copies name theirs by clip and slot).
  A babble channel draws its talkers from ``sources``, audio files of other speakers (for a
  benchmark: of the training speakers only). The cache key holds the channel's kind and
  config, the seed and the content hashes of the sources (not their paths).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avemo.errors import AvemoError, ConfigError, FeatureError
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


def signal_item(y: np.ndarray) -> int:
    """A non-negative 63-bit integer naming the content of ``y`` (the per-signal part of a channel's seed)."""
    digest = hashlib.blake2b(np.ascontiguousarray(y, dtype=np.float32).tobytes(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class DecodedSources(Sequence):
    """Audio files as a sequence of mono signals at ``sr`` Hz, decoded when asked for; the
    ``keep`` most recently used are kept in memory."""

    def __init__(self, paths: Sequence[str | Path], sr: int, keep: int = 64):
        self.paths = [str(p) for p in paths]
        self.sr = sr
        self.keep = keep
        self._signals: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):
        if i in self._signals:
            self._signals.move_to_end(i)
            return self._signals[i]
        from avemo.media import load_audio

        try:
            y = load_audio(self.paths[i], sr=self.sr)
        except AvemoError as exc:  # the clip being degraded is fine: say which source is not
            raise FeatureError(f"babble source {self.paths[i]}: {exc.reason}") from None
        self._signals[i] = y
        if len(self._signals) > self.keep:
            self._signals.popitem(last=False)
        return y


class Perturbed(AudioExtractor):
    """``inner`` applied to the perturbed signal (same name, its own cache key)."""

    def __init__(self, inner: AudioExtractor, *, speed: float = 1.0, pitch: float = 0.0,
                 channel: str | None = None, seed: int = 0, sources: Sequence[str | Path] = (),
                 item: int | None = None):
        from avemo.media.channels import parse_channel

        self.inner = inner
        self.name = inner.name
        self.Config = inner.Config
        self.config = inner.config
        self.speed = float(speed)
        self.pitch = float(pitch)
        if self.speed <= 0:
            raise ConfigError(f"speed factor must be positive, got {speed}")
        self.channel = None if channel is None else parse_channel(channel)
        self.seed = int(seed)
        if item is not None and (self.channel is None or int(item) < 0):
            raise ConfigError(f"a channel item must come with a channel and be a non-negative integer, got {item}")
        self.item = None if item is None else int(item)
        if self.channel is not None:
            self.channel.check()  # a codec this machine lacks: refused before any work
        if sources and (self.channel is None or not self.channel.needs_sources):
            raise ConfigError("only a babble channel takes source signals")
        if self.channel is not None and self.channel.needs_sources and not sources:
            raise ConfigError(f"channel {self.channel.name} needs source files of other speakers")
        self._sources = [str(p) for p in sources]
        self._pool: DecodedSources | None = None
        self._digests: list[str] | None = None

    @property
    def sample_rate(self) -> int:
        return self.inner.sample_rate

    def source_digests(self) -> list[str]:
        """Content hashes of the babble sources, sorted (the sources are drawn in that order)."""
        if self._digests is None:
            from avemo.digest import file_digest

            pairs = sorted((file_digest(p), p) for p in self._sources)
            self._digests = [d for d, _ in pairs]
            self._sources = [p for _, p in pairs]
        return list(self._digests)

    def cache_spec(self) -> dict[str, Any]:
        perturb: dict[str, Any] = {"speed": self.speed, "pitch": self.pitch}
        if self.channel is not None:
            perturb.update(channel=self.channel.to_dict(), seed=self.seed)
            if self.item is not None:
                perturb["item"] = self.item
            if self._sources:
                perturb["sources"] = self.source_digests()
        return {**self.inner.cache_spec(), "perturb": perturb}

    def feature_names(self) -> list[str]:
        return self.inner.feature_names()

    def view(self, feats: Features) -> Features:
        """The wrapped extractor's view of a cache entry (e.g. ``whisper_base``'s ``combine``)."""
        return self.inner.view(feats)

    def outdated(self, entry: Features) -> tuple[float, Features] | None:
        """The wrapped extractor's answer, its length limit on the perturbed signal turned into one on the
        file's: a speed change scales it (less 10 ms: the resampler rounds the length; channels and pitch
        keep it)."""
        old = self.inner.outdated(entry)
        return None if old is None else (old[0] * self.speed - (0.01 if self.speed != 1.0 else 0.0), old[1])

    def from_signal(self, y: np.ndarray, sr: int) -> Features:
        y = perturb_signal(y, sr, speed=self.speed, pitch=self.pitch)
        if self.channel is not None:
            from avemo.media.channels import apply_channel

            pool = None
            if self._sources:
                self.source_digests()  # fixes the order of the sources
                if self._pool is None or self._pool.sr != sr:
                    self._pool = DecodedSources(self._sources, sr)
                pool = self._pool
            item = signal_item(y) if self.item is None else self.item
            y = apply_channel(y, sr, self.channel, seed=self.seed, item=item, sources=pool)
        return self.inner.from_signal(y, sr)
