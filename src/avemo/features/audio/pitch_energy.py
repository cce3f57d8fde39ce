"""``pitch_energy``: zero-crossing rate, RMS energy and autocorrelation pitch, as in paper 004.

Paper: Srinivas & Mishra, "Human Emotion Recognition by Integrating Facial and Speech Features: An Implementation of Multimodal Framework using CNN", section III.C (audio feature
extraction): 1) zero-crossing rate, eq. (9)-(10); 3) pitch from "the maximum of the
autocorrelation" of windowed frames, eq. (11)-(13); 4) energy as the root mean square,
eq. (14). (Its MFCCs, 2), are the ``mfcc`` extractor.) Output ``"x"`` (frames, 4), columns
:data:`COLUMNS`:

0. ``zcr``: sign changes per sample pair, ``(1 / 2(W-1)) * sum |sgn x(n) - sgn x(n-1)|``,
   with ``sgn x = +1`` for ``x > 0`` and ``-1`` otherwise, so a sinusoid of ``f`` Hz gives
   ``~ 2 f / sr``;
1. ``rms``: ``sqrt(mean(x^2))`` over the frame, eq. (14);
2. ``f0_hz``: fundamental frequency in Hz, **0 for unvoiced or silent frames**;
3. ``voicing``: the height (0..1) of the chosen normalised autocorrelation peak, reported
   for every frame (0 for silence); a frame is voiced when it reaches ``voicing_threshold``.

Frames are ``win_ms`` (40 ms) long every ``hop_ms`` (10 ms), centred on ``k * hop`` with
zero padding, so ``pitch_energy`` rows line up with ``mfcc`` / ``logmel`` rows
(``1 + n // hop`` frames).

Departures from the paper, which gives only the estimator (eq. 12) and its bias (eq. 13)
and no window, range or voicing rule:

* window and bias: the frame is made zero-mean and Hann-windowed and its autocorrelation is
  divided by the window's own autocorrelation (Boersma, "Accurate short-term analysis of
  the fundamental frequency and the harmonics-to-noise ratio of a sampled sound", Proc.
  Institute of Phonetic Sciences 17, 1993). Eq. (13) shows that the plain estimator decays
  as ``(1 - |t| / S)``; this division removes that decay, so peaks at long lags are not
  penalised;
* search range ``fmin``..``fmax`` (75-600 Hz, Praat's defaults for speech), and a window of
  three periods of ``fmin`` (40 ms), Boersma's choice; configurations with a window
  shorter than two periods of ``fmin`` are rejected;
* the "maximum" is taken over local maxima with Boersma's octave cost
  (``r(t) - octave_cost * log2(fmin * t)``), which avoids picking a sub-harmonic, refined
  by parabolic interpolation;
* voicing rule: voiced if the peak reaches ``voicing_threshold`` (0.45, Praat's default)
  and the frame's RMS is above ``silence_db`` dBFS (-60); the threshold is absolute
  (not relative to the clip's peak as in Praat) so that streamed windows agree with clips.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy  # scipy.fft loads on first use (SciPy's lazy submodules): a faster import

from avemo.errors import ConfigError
from avemo.features.audio.framing import centered_frames, prepare_signal, samples
from avemo.features.audio.spectrogram import BLOCK_FRAMES
from avemo.features.base import AudioExtractor, Features, register_extractor

COLUMNS: tuple[str, ...] = ("zcr", "rms", "f0_hz", "voicing")


@dataclass(frozen=True)
class PitchEnergyConfig:
    """Options of ``pitch_energy`` (times in milliseconds, frequencies in Hz)."""

    sample_rate: int = 16000
    win_ms: float = 40.0
    hop_ms: float = 10.0
    fmin: float = 75.0
    fmax: float = 600.0
    #: minimum normalised autocorrelation peak of a voiced frame
    voicing_threshold: float = 0.45
    #: frames quieter than this RMS level (dB re full scale) are unvoiced
    silence_db: float = -60.0
    #: preference for shorter lags, per octave (Boersma 1993)
    octave_cost: float = 0.01

    def __post_init__(self):
        if self.sample_rate <= 0 or self.win_ms <= 0 or self.hop_ms <= 0:
            raise ConfigError("pitch_energy: sample_rate, win_ms and hop_ms must be positive")
        if not 0 < self.fmin < self.fmax < self.sample_rate / 2:
            raise ConfigError(
                f"pitch_energy: need 0 < fmin < fmax < sample_rate/2, got fmin={self.fmin}, fmax={self.fmax}"
            )
        if self.win_ms < 2000.0 / self.fmin:
            raise ConfigError(
                f"pitch_energy: win_ms={self.win_ms} holds less than two periods of fmin={self.fmin} Hz "
                f"(need >= {2000.0 / self.fmin:.1f} ms)"
            )
        if not 0 <= self.voicing_threshold <= 1:
            raise ConfigError(
                f"pitch_energy: voicing_threshold must be in [0, 1], got {self.voicing_threshold}"
            )


@functools.lru_cache(maxsize=8)
def _window_and_acf(win: int, n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """Hann window (symmetric, zero ends excluded) and its normalised autocorrelation (exact up to lag n_fft - win)."""
    window = np.hanning(win + 2)[1:-1]
    spectrum = scipy.fft.rfft(window, n=n_fft)
    acf = scipy.fft.irfft(spectrum.real**2 + spectrum.imag**2, n=n_fft)[:win]
    acf = acf / acf[0]
    window.setflags(write=False)
    acf.setflags(write=False)
    return window, acf


def pitch_energy(y: np.ndarray, sr: int, config: PitchEnergyConfig) -> np.ndarray:
    """(1 + len(y) // hop, 4) float64 columns :data:`COLUMNS` of a signal at ``sr`` = config.sample_rate.

    Frames are processed in blocks of :data:`BLOCK_FRAMES` to bound scratch memory.
    """
    win, hop = samples(config.win_ms, sr), samples(config.hop_ms, sr)
    frames = centered_frames(y, win, hop)
    out = np.empty((frames.shape[0], len(COLUMNS)))
    for start in range(0, frames.shape[0], BLOCK_FRAMES):
        out[start : start + BLOCK_FRAMES] = _frame_block(frames[start : start + BLOCK_FRAMES], sr, config)
    return out


def _frame_block(frames: np.ndarray, sr: int, config: PitchEnergyConfig) -> np.ndarray:
    n_frames, win = frames.shape

    positive = frames > 0
    zcr = np.count_nonzero(positive[:, 1:] != positive[:, :-1], axis=1) / max(win - 1, 1)
    rms = np.sqrt(np.square(frames).mean(axis=1))

    # normalised, window-corrected autocorrelation (Boersma 1993); an FFT of n >= win + lag
    # points gives the exact (non-circular) autocorrelation up to that lag
    lag_min = max(1, int(np.floor(sr / config.fmax)))
    lag_max = min(int(np.ceil(sr / config.fmin)), win // 2)
    n_fft = scipy.fft.next_fast_len(win + lag_max + 2, real=True)
    window, window_acf = _window_and_acf(win, n_fft)
    centred = (frames - frames.mean(axis=1, keepdims=True)) * window
    spectrum = scipy.fft.rfft(centred, n=n_fft, axis=1)
    acf = scipy.fft.irfft(spectrum.real**2 + spectrum.imag**2, n=n_fft, axis=1)[:, : lag_max + 2]
    energy = acf[:, :1]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(energy > 0, acf / np.where(energy > 0, energy, 1.0), 0.0) / window_acf[: lag_max + 2]

    # candidate peaks: local maxima of r at lags lag_min..lag_max, each refined by a parabola
    # through its neighbours (so that peaks between two samples are not under-rated)
    lags = np.arange(lag_min, lag_max + 1)
    before = r[:, lag_min - 1 : lag_max]
    centre = r[:, lag_min : lag_max + 1]
    after = r[:, lag_min + 1 : lag_max + 2]
    is_peak = (centre >= before) & (centre > after) & (centre > 0)
    curvature = before - 2 * centre + after
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = np.where(curvature < 0, 0.5 * (before - after) / curvature, 0.0)
    shift = np.clip(shift, -0.5, 0.5)
    height = centre - 0.25 * (before - after) * shift
    score = np.where(is_peak, height - config.octave_cost * np.log2(config.fmin * lags / sr), -np.inf)
    best = np.argmax(score, axis=1)
    rows = np.arange(n_frames)
    has_peak = np.isfinite(score[rows, best])
    peak_lag = lags[best] + shift[rows, best]
    peak_height = height[rows, best]

    voicing = np.where(has_peak, np.clip(peak_height, 0.0, 1.0), 0.0)
    loud = rms > 10.0 ** (config.silence_db / 20.0)
    voiced = has_peak & loud & (voicing >= config.voicing_threshold)
    f0 = np.where(voiced, sr / np.where(voiced, peak_lag, 1.0), 0.0)
    voicing = np.where(loud, voicing, 0.0)
    return np.stack([zcr, rms, f0, voicing], axis=1)


@register_extractor
class PitchEnergy(AudioExtractor):
    """ZCR, RMS, F0 (Hz, 0 = unvoiced) and voicing strength: ``"x"`` (frames, 4) float32 (paper 004).

    Frame ``k`` is centred at ``k * hop_ms``; the shortest accepted input is one window (40 ms).
    """

    name = "pitch_energy"
    Config = PitchEnergyConfig
    version = "1"
    summary = "zcr, rms, autocorrelation f0 (Hz, 0 = unvoiced), voicing (T, 4), 40/10 ms frames (paper 004)"

    def feature_names(self) -> list[str]:
        return list(COLUMNS)

    def frame_times(self, n_frames: int) -> np.ndarray:
        """Centre time (s) of each output frame."""
        return (
            np.arange(n_frames)
            * samples(self.config.hop_ms, self.config.sample_rate)
            / self.config.sample_rate
        )

    def from_signal(self, y: np.ndarray, sr: int) -> Features:
        c = self.config
        win = samples(c.win_ms, c.sample_rate)
        y = prepare_signal(y, sr, c.sample_rate, min_seconds=win / c.sample_rate, name=self.name)
        return {"x": pitch_energy(y, c.sample_rate, c).astype(np.float32)}
