"""Signal checks and framing shared by the audio extractors.

* :func:`prepare_signal` turns whatever reaches ``from_signal`` into a clean 1-D float64
  signal at the extractor's sample rate: it rejects non-mono, empty, non-finite and
  too-short input with a one-line :class:`~avemo.errors.FeatureError`
  (``"too short: 0.010 s, need 0.025 s"``) and resamples with libsoxr (the same HQ
  resampler :func:`avemo.media.load_audio` uses) when the caller's rate differs.
* :func:`centered_frames` cuts frames centred on ``k * hop`` (the STFT convention of
  librosa with ``center=True`` and zero padding), so frame ``k`` describes time
  ``k * hop / sr`` and a signal of ``n`` samples gives ``1 + n // hop`` frames.
* :func:`leading_frames` cuts frames that start at ``k * hop`` and lie wholly inside the
  signal (pyAudioAnalysis's convention): ``1 + (n - win) // hop`` frames.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from avemo.errors import FeatureError


def samples(ms: float, sr: int) -> int:
    """Number of samples in ``ms`` milliseconds at ``sr`` Hz (rounded, at least 1)."""
    return max(1, int(round(ms * sr / 1000.0)))


def prepare_signal(y: np.ndarray, sr: int, target_sr: int, *, min_seconds: float, name: str) -> np.ndarray:
    """A contiguous float64 mono signal at ``target_sr``; raises FeatureError on unusable input.

    ``min_seconds`` is the shortest input the extractor ``name`` can describe (one analysis
    window); shorter input is an error rather than an empty or padded-out result.
    """
    y = np.asarray(y)
    if y.ndim == 2 and 1 in y.shape:
        y = y.reshape(-1)
    if y.ndim != 1:
        raise FeatureError(f"{name}: expected a mono 1-D signal, got an array of shape {y.shape}")
    if not np.issubdtype(y.dtype, np.number) or np.iscomplexobj(y):
        raise FeatureError(f"{name}: expected real audio samples, got dtype {y.dtype}")
    if sr <= 0:
        raise FeatureError(f"{name}: sample rate must be positive, got {sr}")
    y = np.asarray(y, dtype=np.float64)
    if not np.isfinite(y).all():
        raise FeatureError(f"{name}: the signal contains NaN or infinite samples")
    duration = y.size / sr
    if duration + 1e-9 < min_seconds:
        raise FeatureError(f"{name}: too short: {duration:.3f} s, need {min_seconds:.3f} s")
    if sr != target_sr:
        import soxr

        y = soxr.resample(y, sr, target_sr, quality="HQ").astype(np.float64, copy=False)
    return np.ascontiguousarray(y)


def centered_frames(y: np.ndarray, win: int, hop: int, *, left: int | None = None) -> np.ndarray:
    """(1 + len(y) // hop, win) read-only view of frames centred on ``k * hop`` (zero padded).

    Frame ``k`` covers samples ``[k * hop - left, k * hop - left + win)``; ``left`` defaults
    to ``win // 2``. (librosa centres an ``n_fft`` frame and the window inside it, which
    puts the window at ``left = n_fft // 2 - (n_fft - win) // 2``; the spectrogram code
    passes that so that odd sizes line up with librosa too.)
    """
    n_frames = 1 + y.size // hop
    left = win // 2 if left is None else left
    # enough zeros on the right for the last frame to be complete
    right = max(0, (n_frames - 1) * hop + win - left - y.size)
    padded = np.pad(y, (left, right))
    return sliding_window_view(padded, win)[: n_frames * hop : hop]


def leading_frames(y: np.ndarray, win: int, hop: int) -> np.ndarray:
    """(1 + (len(y) - win) // hop, win) read-only view of frames starting at ``k * hop``."""
    if y.size < win:
        return np.zeros((0, win), dtype=y.dtype)
    return sliding_window_view(y, win)[::hop]


def periodic_hann(n: int) -> np.ndarray:
    """The periodic ("DFT-even") Hann window of ``n`` samples, as ``scipy.signal.get_window('hann', n)``."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)
