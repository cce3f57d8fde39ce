"""Knowing when the model does not know: speech gating and the uncertainty flag.

Two rules, configured by :class:`AbstentionConfig` (``model.json``'s ``config.abstention``,
:class:`~avemo.inference.bundle.BundleConfig`):

* **No speech, no audio emotion.** The audio expert runs a voice-activity detector once over the
  file (Silero VAD, :mod:`avemo.features.audio.vad`, with the thresholds ``vad``). A timeline window
  whose speech share is below ``speech_share`` gets no audio term in the fusion (like a window
  without a face gets no video term), and a file without any speech does not use the audio
  modality at all (reason "no speech detected ..."). Silence, hum and noise then say nothing about
  the emotion, instead of being read as one (an untrained input for the audio head, which answered
  "fearful" at about 100 % for the silent first second of a RAVDESS clip).
* **A crowd is not a speaker.** With a crowd detector (``crowd``, :mod:`avemo.inference.crowd`), a
  window where several people talk at once gets no audio term, and when most of the speech is such
  windows the audio modality is not used (reason "several people talk at once ...").
* **Uncertain.** A clip or window whose top fused probability is below ``tau`` is flagged
  ``uncertain: true``; so is a clip or window with no emotion at all (no speech and no face).
  With calibrated probabilities (temperature scaling, :mod:`avemo.inference.calibration`), the top
  probability estimates the chance that the answer is right, so the default ``tau = 0.5`` flags an
  answer that is more likely wrong than right. :func:`avemo.inference.calibration.fit_threshold`
  estimates the confidence where held-out accuracy reaches a target, for a bundle to store its own.

Bundles written before this section existed get these defaults, so they load unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from avemo.errors import ConfigError
from avemo.features.audio.vad import VadConfig


@dataclass(frozen=True)
class AbstentionConfig:
    """``tau``: the least top probability of an answer not flagged uncertain; ``speech_share``: the
    least share of a window that must be speech for the audio expert to vote on it; ``vad``: the
    voice-activity detector's thresholds (the project's, :class:`~avemo.features.audio.vad.VadConfig`);
    ``crowd``: the bundle's crowd detector file, relative to the bundle (:mod:`avemo.inference.crowd`;
    None: no crowd gate)."""

    tau: float = 0.5
    speech_share: float = 0.5
    vad: VadConfig = field(default_factory=VadConfig)
    crowd: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.tau <= 1.0:
            raise ConfigError(f"abstention tau must lie in [0, 1], got {self.tau}")
        if not 0.0 <= self.speech_share <= 1.0:
            raise ConfigError(f"abstention speech_share must lie in [0, 1], got {self.speech_share}")


def uncertain(probabilities: np.ndarray, tau: float) -> np.ndarray:
    """(...,) True where the top probability of (..., C) ``probabilities`` is below ``tau`` or missing (NaN)."""
    p = np.asarray(probabilities, dtype=np.float64)
    top = np.max(np.nan_to_num(p, nan=-1.0), axis=-1)
    return (top < tau) | np.isnan(p).any(axis=-1)


def speech_gate(shares: np.ndarray, speech_share: float) -> np.ndarray:
    """(K,) True where a window's speech share is at least ``speech_share`` (the audio expert may vote)."""
    return np.asarray(shares, dtype=np.float64) >= speech_share - 1e-9
