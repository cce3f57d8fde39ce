"""Knowing when the model does not know: speech gating and the uncertainty flag.

The rules, configured by :class:`AbstentionConfig` (``model.json``'s ``config.abstention``,
:class:`~avemo.inference.bundle.BundleConfig`):

* **No speech, no audio emotion.** The audio expert runs a voice-activity detector once over the
  file (Silero VAD, :mod:`avemo.features.audio.vad`, with the thresholds ``vad``). A timeline window
  whose speech share is below ``speech_share`` gets no audio term in the fusion (like a window
  without a face gets no video term), and a file without any speech does not use the audio
  modality at all (reason "no speech detected ..."). Silence, hum and noise then say nothing about
  the emotion, instead of being read as one (an untrained input for the audio head, which answered
  "fearful" at about 100 % for the silent first second of a RAVDESS clip).
* **Too little speech, no trust.** A file in which the VAD finds speech, but less than
  ``min_speech`` seconds of it in total, keeps its audio vote, and every answer with that vote (the
  clip's, and each timeline window the audio voted on) is flagged ``uncertain``, with a warning that
  says "too little speech" and how much was heard. From a fraction of a second of speech the audio
  head answers wrongly and as confidently as from a whole sentence (an angry EmoDB clip cut to 0.3 s
  of speech was reported as "fearful" at 99.6 %), which ``tau`` cannot catch. The default, 1.0 s,
  was chosen by ``benchmarks/short_speech.py`` on validation speakers only (RAVDESS actors 22 and
  23, with the bundle's recipe trained without them): the least seconds of speech at which an
  isotonic fit of "the answer is right" reaches 50 %, the rule of ``tau``; on unseen test speakers
  (RAVDESS 20 and 21, EmoDB 08) the answers it flags are right 41-43 % of the time, the others
  66-75 % (``docs/results/short_speech.md``). It flags rather than drops the audio because whole
  short sentences fare better than cuts of long ones: the three CREMA-D sentences of the real
  clips with 0.92-0.99 s of speech were all answered right.
* **A crowd is not a speaker.** With a crowd detector (``crowd``, :mod:`avemo.inference.crowd`), a
  window where several people talk at once gets no audio term, and when most of the speech is such
  windows the audio modality is not used (reason "several people talk at once ...").
* **Uncertain.** A clip or window whose top fused probability is below ``tau`` is flagged
  ``uncertain: true``; so is a clip or window with no emotion at all (no speech and no face).
  With calibrated probabilities (temperature scaling, :mod:`avemo.inference.calibration`), the top
  probability estimates the chance that the answer is right, so the default ``tau = 0.5`` flags an
  answer that is more likely wrong than right. :func:`avemo.inference.calibration.fit_threshold`
  estimates the confidence where held-out accuracy reaches a target, for a bundle to store its own.

Bundles written before this section existed get these defaults, so they load unchanged; a bundle
written before ``min_speech`` existed gets the 1.0 s flag too. A zoo checkpoint (``avemo predict
--model RUN``, :class:`~avemo.inference.backends.ZooBackend`) with an audio input gets the speech
rules with these defaults; it has no crowd detector, and no calibrated ``tau`` of its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from avemo.errors import ConfigError
from avemo.features.audio.vad import VadConfig


@dataclass(frozen=True)
class AbstentionConfig:
    """``tau``: the least top probability of an answer not flagged uncertain; ``speech_share``: the
    least share of a window that must be speech for the audio expert to vote on it; ``min_speech``:
    the least seconds of speech (VAD, over the whole file) for an answer with an audio vote not to
    be flagged uncertain (0: any speech will do; the default, 1.0 s, was chosen on validation
    speakers by ``benchmarks/short_speech.py``, see the module docstring); ``vad``: the
    voice-activity detector's thresholds (the project's, :class:`~avemo.features.audio.vad.VadConfig`);
    ``crowd``: the bundle's crowd detector file, relative to the bundle (:mod:`avemo.inference.crowd`;
    None: no crowd gate)."""

    tau: float = 0.5
    speech_share: float = 0.5
    min_speech: float = 1.0
    vad: VadConfig = field(default_factory=VadConfig)
    crowd: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.tau <= 1.0:
            raise ConfigError(f"abstention tau must lie in [0, 1], got {self.tau}")
        if not 0.0 <= self.speech_share <= 1.0:
            raise ConfigError(f"abstention speech_share must lie in [0, 1], got {self.speech_share}")
        if not (math.isfinite(self.min_speech) and self.min_speech >= 0.0):
            raise ConfigError(f"abstention min_speech must be a number of seconds >= 0, got {self.min_speech}")


def uncertain(probabilities: np.ndarray, tau: float) -> np.ndarray:
    """(...,) True where the top probability of (..., C) ``probabilities`` is below ``tau`` or missing (NaN)."""
    p = np.asarray(probabilities, dtype=np.float64)
    top = np.max(np.nan_to_num(p, nan=-1.0), axis=-1)
    return (top < tau) | np.isnan(p).any(axis=-1)


def speech_gate(shares: np.ndarray, speech_share: float) -> np.ndarray:
    """(K,) True where a window's speech share is at least ``speech_share`` (the audio expert may vote)."""
    return np.asarray(shares, dtype=np.float64) >= speech_share - 1e-9
