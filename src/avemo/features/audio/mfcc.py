"""``mfcc``: mel-frequency cepstral coefficients with deltas, (frames, 3 * n_mfcc).

The steps are the classical ones that paper 004 lists (Srinivas & Mishra, "Human Emotion Recognition by Integrating Facial and Speech Features: An Implementation of Multimodal Framework using CNN",
section III.C.2: frames with a fixed shift and window, FFT, mel scale, logarithm, DCT) and
that paper 000 (``000_f67b687c6beb8162.txt``) feeds to its 1D-CNN; neither gives window,
band or coefficient counts, so the defaults are the common speech ones (25/10 ms, 64 mel
bands, 40 coefficients). The exact definitions are librosa's so that the result can be
checked against ``librosa.feature.mfcc`` (tests/test_features_audio.py):

1. power spectra of 25 ms periodic-Hann frames every 10 ms, centred on ``k * hop``
   (:mod:`avemo.features.audio.spectrogram`);
2. ``n_mels`` (64) Slaney mel filters, ``fmin``..``fmax``;
3. ``10 * log10(max(S, 1e-10))`` (dB, floor -100 dB; ``top_db`` optional as in librosa);
4. orthonormal DCT-II, first ``n_mfcc`` (40) coefficients;
5. with ``deltas``: first and second time derivatives by a Savitzky-Golay fit over
   ``delta_width`` (9) frames, exactly ``librosa.feature.delta(order=1)`` and
   ``delta(order=2)`` (local least-squares polynomials; the edges are fitted, not
   padded). Clips with fewer than ``delta_width`` frames use the largest odd width that
   fits (and zeros below 3 frames), where librosa would raise.

Where it departs from librosa's defaults, and why: ``librosa.feature.mfcc`` floors at
``max - 80 dB`` (``top_db=80``), which makes every frame depend on the loudest frame of
the clip; we use only the absolute -100 dB floor by default so that streaming windows and
whole clips agree. ``top_db=80`` restores librosa's behaviour exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy  # scipy.fft / scipy.signal load on first use (SciPy's lazy submodules): a faster import

from avemo.errors import ConfigError
from avemo.features.audio.spectrogram import check_mel_config, log_mel_db, mel_frame_times
from avemo.features.base import AudioExtractor, Features, register_extractor


@dataclass(frozen=True)
class MFCCConfig:
    """Options of ``mfcc`` (times in milliseconds, frequencies in Hz)."""

    sample_rate: int = 16000
    n_mfcc: int = 40
    n_mels: int = 64
    win_ms: float = 25.0
    hop_ms: float = 10.0
    fmin: float = 0.0
    #: upper edge of the top mel filter; ``None`` = sample_rate / 2
    fmax: float | None = None
    #: append delta and delta-delta coefficients: (T, 3 * n_mfcc) instead of (T, n_mfcc)
    deltas: bool = True
    #: FFT size; ``None`` = the smallest power of two >= the window (512 at 16 kHz, 25 ms)
    n_fft: int | None = None
    #: frames in the Savitzky-Golay delta fit (odd, >= 3)
    delta_width: int = 9
    #: ``None``: absolute -100 dB floor only; 80 reproduces librosa.feature.mfcc's default
    top_db: float | None = None

    def __post_init__(self):
        check_mel_config("mfcc", self)
        if not 1 <= self.n_mfcc <= self.n_mels:
            raise ConfigError(
                f"mfcc: need 1 <= n_mfcc <= n_mels, got n_mfcc={self.n_mfcc}, n_mels={self.n_mels}"
            )
        if self.delta_width < 3 or self.delta_width % 2 == 0:
            raise ConfigError(f"mfcc: delta_width must be an odd integer >= 3, got {self.delta_width}")


def deltas(x: np.ndarray, width: int = 9, order: int = 1) -> np.ndarray:
    """``order``-th time derivative of a (T, D) sequence per frame (librosa.feature.delta along axis 0).

    A Savitzky-Golay filter of polynomial order ``order`` over ``width`` frames, with the
    edges fitted ("interp"). If ``T < width`` the largest odd width <= T is used; if that
    is below 3 frames (or not above ``order``) the result is zeros.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    w = width if n >= width else (n if n % 2 else n - 1)
    if w < 3 or w <= order:
        return np.zeros_like(x)
    return scipy.signal.savgol_filter(x, w, polyorder=order, deriv=order, axis=0, mode="interp")


@register_extractor
class MFCC(AudioExtractor):
    """MFCCs (+ deltas): ``"x"`` (frames, 3 * n_mfcc) float32, columns static | delta | delta-delta.

    Frame ``k`` is centred at ``k * hop_ms``; a signal of ``n`` samples gives ``1 + n // hop``
    frames; the shortest accepted input is one window (25 ms).
    """

    name = "mfcc"
    Config = MFCCConfig
    version = "1"
    summary = "MFCC (T, 3*n_mfcc) with deltas, librosa-compatible, 25/10 ms frames, 64 Slaney mel bands"

    def feature_names(self) -> list[str]:
        """``mfcc_0 .. mfcc_{n-1}``, then with deltas ``delta_mfcc_*`` and ``delta2_mfcc_*``."""
        static = [f"mfcc_{i}" for i in range(self.config.n_mfcc)]
        return static + ([f"delta_{n}" for n in static] + [f"delta2_{n}" for n in static] if self.config.deltas else [])

    def frame_times(self, n_frames: int) -> np.ndarray:
        """Centre time (s) of each output frame."""
        return mel_frame_times(self.config, n_frames)

    def from_signal(self, y: np.ndarray, sr: int) -> Features:
        c = self.config
        log_mel = log_mel_db(y, sr, c, name=self.name)
        coeffs = scipy.fft.dct(log_mel, type=2, norm="ortho", axis=1)[:, : c.n_mfcc]
        if c.deltas:
            coeffs = np.concatenate(
                [coeffs, deltas(coeffs, c.delta_width, 1), deltas(coeffs, c.delta_width, 2)], axis=1
            )
        return {"x": coeffs.astype(np.float32)}
