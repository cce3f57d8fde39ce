"""Short-time power spectra and mel filterbanks (the front end of ``mfcc`` and ``logmel``).

The definitions are librosa's, so that our features can be checked against
``librosa.feature.melspectrogram`` / ``librosa.feature.mfcc`` (tests/test_features_audio.py):

* STFT frames of ``win`` samples centred on ``k * hop`` (zero padding at the edges, as
  ``librosa.stft(center=True, pad_mode="constant")``), a periodic Hann window, an FFT of
  ``n_fft >= win`` points (the window sits in the middle of the ``n_fft`` frame; only the
  magnitude is used, so this equals zero-padding at the end);
* power spectrum ``|X|^2``;
* Slaney's mel scale (linear below 1 kHz, logarithmic above) with triangular filters
  normalised to unit area ("slaney" norm): ``librosa.filters.mel(htk=False, norm="slaney")``;
* decibels ``10 * log10(max(S, amin))`` with ``amin = 1e-10``: the log floor is -100 dB, an
  absolute floor, so a frame's value never depends on the rest of the clip. An optional
  ``top_db`` reproduces ``librosa.power_to_db(top_db=80)`` (floor at the clip maximum minus
  ``top_db``), which does depend on the whole clip.

Everything is vectorised numpy (float64 inside); the filterbank is cached per
(sample rate, n_fft, n_mels, fmin, fmax).
"""

from __future__ import annotations

import functools

import numpy as np
import scipy  # scipy.fft loads on first use (SciPy's lazy submodules): a faster import

from avemo.errors import ConfigError
from avemo.features.audio.framing import centered_frames, periodic_hann, prepare_signal

#: power floor of :func:`power_to_db` (-100 dB)
AMIN = 1e-10
#: frames per block in block-wise computations (bounds scratch memory on long signals)
BLOCK_FRAMES = 4096

_F_SP = 200.0 / 3  # Hz per mel below 1 kHz (Slaney)
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale (Auditory Toolbox; librosa ``hz_to_mel(htk=False)``)."""
    hz = np.asarray(hz, dtype=np.float64)
    lin = hz / _F_SP
    log = _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(hz >= _MIN_LOG_HZ, log, lin)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    lin = mel * _F_SP
    log = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(mel, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(mel >= _MIN_LOG_MEL, log, lin)


@functools.lru_cache(maxsize=32)
def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular mel filters with Slaney area normalisation (read-only)."""
    if not 0 <= fmin < fmax <= sr / 2 + 1e-9:
        raise ConfigError(
            f"mel filterbank: need 0 <= fmin < fmax <= sr/2, got fmin={fmin}, fmax={fmax}, sr={sr}"
        )
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    weights.setflags(write=False)
    return weights


def default_n_fft(win: int) -> int:
    """The smallest power of two that holds a window of ``win`` samples."""
    return 1 << max(0, int(win - 1).bit_length())


def _frames_for_fft(y: np.ndarray, win: int, hop: int, n_fft: int) -> np.ndarray:
    if n_fft < win:
        raise ConfigError(f"n_fft ({n_fft}) must be at least the window length ({win} samples)")
    left = n_fft // 2 - (n_fft - win) // 2  # librosa's placement of the window in the frame
    return centered_frames(y, win, hop, left=left)


def _power(frames: np.ndarray, window: np.ndarray, n_fft: int) -> np.ndarray:
    spectrum = scipy.fft.rfft(frames * window, n=n_fft, axis=1)
    return spectrum.real**2 + spectrum.imag**2


@functools.lru_cache(maxsize=32)
def _sparse_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float):
    import scipy.sparse

    return scipy.sparse.csr_matrix(mel_filterbank(sr, n_fft, n_mels, fmin, fmax))


def mel_power(
    y: np.ndarray, sr: int, *, win: int, hop: int, n_fft: int, n_mels: int, fmin: float, fmax: float
) -> np.ndarray:
    """(frames, n_mels) mel-band power.

    Computed in blocks of :data:`BLOCK_FRAMES` frames, so a 10-minute signal needs no more
    scratch memory than 40 s. The filterbank is applied as a sparse matrix (each FFT bin
    feeds at most two filters): as fast as a dense product and free of BLAS threads, which
    oversubscribe the cores when several extraction processes run side by side.
    """
    frames = _frames_for_fft(y, win, hop, n_fft)
    window = periodic_hann(win)
    bank = _sparse_filterbank(sr, n_fft, n_mels, float(fmin), float(fmax))
    out = np.empty((frames.shape[0], n_mels))
    for start in range(0, frames.shape[0], BLOCK_FRAMES):
        power = _power(frames[start : start + BLOCK_FRAMES], window, n_fft)
        out[start : start + BLOCK_FRAMES] = (bank @ power.T).T
    return out


def power_to_db(power: np.ndarray, *, amin: float = AMIN, top_db: float | None = None) -> np.ndarray:
    """``10 * log10(max(power, amin))``, optionally floored at ``max - top_db`` (librosa's ``power_to_db``)."""
    db = 10.0 * np.log10(np.maximum(power, amin))
    if top_db is not None:
        if top_db < 0:
            raise ConfigError(f"top_db must be non-negative, got {top_db}")
        db = np.maximum(db, db.max() - top_db)
    return db


def check_mel_config(name: str, config) -> None:
    """Raise ConfigError (naming extractor ``name``) if the mel front-end options of ``config`` cannot
    work: the fields ``sample_rate``, ``n_mels``, ``win_ms``, ``hop_ms``, ``fmin``, ``fmax``, ``n_fft``
    that every mel-based extractor's config has (``mfcc``, ``logmel``)."""
    sample_rate, n_mels, fmin, fmax, n_fft = config.sample_rate, config.n_mels, config.fmin, config.fmax, config.n_fft
    win_ms, hop_ms = config.win_ms, config.hop_ms
    if sample_rate <= 0:
        raise ConfigError(f"{name}: sample_rate must be positive, got {sample_rate}")
    if n_mels < 1:
        raise ConfigError(f"{name}: n_mels must be at least 1, got {n_mels}")
    if win_ms <= 0 or hop_ms <= 0:
        raise ConfigError(f"{name}: win_ms and hop_ms must be positive, got {win_ms} and {hop_ms}")
    nyquist = sample_rate / 2
    top = nyquist if fmax is None else fmax
    if not 0 <= fmin < top <= nyquist:
        raise ConfigError(
            f"{name}: need 0 <= fmin < fmax <= sample_rate/2 = {nyquist:g}, got fmin={fmin}, fmax={fmax}"
        )
    win = max(1, int(round(win_ms * sample_rate / 1000.0)))
    if n_fft is not None and n_fft < win:
        raise ConfigError(f"{name}: n_fft={n_fft} is shorter than the {win}-sample window")


def mel_geometry(config) -> tuple[int, int, int, float]:
    """(win, hop, n_fft, fmax) in samples / Hz from a config with the mel front-end fields."""
    sr = config.sample_rate
    win = max(1, int(round(config.win_ms * sr / 1000.0)))
    hop = max(1, int(round(config.hop_ms * sr / 1000.0)))
    n_fft = config.n_fft if config.n_fft is not None else default_n_fft(win)
    fmax = float(sr / 2 if config.fmax is None else config.fmax)
    return win, hop, n_fft, fmax


def log_mel_db(y: np.ndarray, sr: int, config, *, name: str) -> np.ndarray:
    """(frames, n_mels) log-mel power in dB of ``y`` (resampled to ``config.sample_rate``), for a
    config with the mel front-end fields and ``top_db``; ``name`` names the extractor in errors."""
    win, hop, n_fft, fmax = mel_geometry(config)
    y = prepare_signal(y, sr, config.sample_rate, min_seconds=win / config.sample_rate, name=name)
    power = mel_power(
        y, config.sample_rate, win=win, hop=hop, n_fft=n_fft, n_mels=config.n_mels, fmin=config.fmin, fmax=fmax
    )
    return power_to_db(power, top_db=config.top_db)


def mel_frame_times(config, n_frames: int) -> np.ndarray:
    """Centre time (s) of each frame of :func:`log_mel_db`: frame ``k`` at ``k * hop``."""
    return np.arange(n_frames) * mel_geometry(config)[1] / config.sample_rate
