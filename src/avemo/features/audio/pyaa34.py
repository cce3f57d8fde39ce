"""``pyaa34``: the 34 short-term features of pyAudioAnalysis, as paper 003 uses them.

Paper: Cai et al., "Multi-Modal Emotion Recognition From Speech and Facial Expression Based on Deep Learning", section II.A and Table I: "we use
pyAudioAnalysis [2] ... The 34-dimensional features ... Each utterance uses clipping and
padding to make a fixed length of 100 frames" (the 100-frame fit is
:func:`avemo.features.length.fit_length`, not part of this extractor). The paper does not
give the window or step, so we use pyAudioAnalysis's documented defaults, **50 ms windows
every 25 ms** (its README and wiki call ``feature_extraction(x, Fs, 0.050*Fs, 0.025*Fs)``).

The definitions are those of pyAudioAnalysis 0.3.14, ``ShortTermFeatures.feature_extraction``
(Giannakopoulos, "pyAudioAnalysis: An Open-Source Python Library for Audio Signal
Analysis", PLoS ONE 10(12), 2015; https://github.com/tyiannak/pyAudioAnalysis), re-implemented
vectorised over frames (the package itself is not a dependency; when it is installed the
tests compare against it). Column order and names are pyAudioAnalysis's (:data:`FEATURE_NAMES`;
Table I's "Spectral Energy" is pyAudioAnalysis's spectral entropy, the only such feature):

0. ``zcr``: sign changes / (W - 1) (``np.sign``: an exact zero counts half);
1. ``energy``: sum(x^2) / W;
2. ``energy_entropy``: entropy (bits) of the energies of 10 equal sub-frames, normalised by the frame energy;
3. ``spectral_centroid`` and 4. ``spectral_spread`` of |X| (peak-normalised), divided by sr/2;
5. ``spectral_entropy``: entropy of the energies of 10 equal sub-bands of |X|;
6. ``spectral_flux``: squared distance of the sum-normalised |X| to the previous frame's (0 for the first);
7. ``spectral_rolloff``: first bin where the cumulative |X|^2 exceeds 90 %, divided by the bin count;
8-20. ``mfcc_1..13``: DCT-II (orthonormal) of log10 of 40 filter outputs (13 linear + 27
   logarithmic triangles from 133.33 Hz, the scikits.talkbox filterbank), on |X| (not power);
21-32. ``chroma_1..12``: pitch-class energy, classes A, A#, B, C, ..., G#, over the total energy;
33. ``chroma_std``: standard deviation of the 12 chroma values.

Here |X| is the magnitude of the FFT of the raw (rectangular-window) frame, its first
``W // 2`` bins divided by ``W // 2``. As in pyAudioAnalysis, the whole signal is first
made zero-mean and peak-normalised to 1 (``normalize=True``); frames start at
``k * hop`` and only whole frames are used (``1 + (n - W) // hop`` frames).

pyAudioAnalysis quirks reproduced on purpose (so the features are the ones paper 003 fed
its network, and so they agree with the package):

* the spectral centroid, spread and chroma put FFT bin ``k`` at ``(k + 1) * sr / W`` Hz
  (one bin high: a 1 kHz tone has its centroid at 1020 Hz in 50 ms frames at 16 kHz);
* the chroma map, when several bins fall on one semitone, keeps the last bin's energy divided by a count looked
  up at a mismatched index instead of summing; low tones can therefore land one semitone
  high (a 440 Hz tone in 50 ms frames at 16 kHz peaks at A#, an 880 Hz tone at A);
* the MFCC filterbank places bin ``k`` at ``k * sr / (W // 2)`` Hz, i.e. at twice its real
  frequency, so the nominal 133 Hz - 6.4 kHz filters cover 67 Hz - 3.2 kHz of the signal.

Measured consequence: for pure tones in 50 ms frames at 16 kHz, pyAudioAnalysis's chroma
peaks at the right pitch class for only 28 of the 68 semitones from 55 Hz to 2.6 kHz,
and for none below 370 Hz, i.e. not in the range of speech F0. ``pyaa_quirks=False``
computes what the formulas intend instead (bin ``k`` at ``k * sr / W`` Hz for the
centroid, spread, MFCC filterbank and chroma; chroma = mean energy of the bins of each
semitone, summed over octaves, over the total energy); the default keeps the quirks,
because those are the features paper 003 used.

Departure: pyAudioAnalysis crashes when the top semitone index exceeds ``W // 2`` (windows
under ~12 ms at 16 kHz); we reject such configurations with a ConfigError instead.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass

import numpy as np
import scipy  # scipy.fft loads on first use (SciPy's lazy submodules): a faster import

from avemo.errors import ConfigError
from avemo.features.audio.framing import leading_frames, prepare_signal, samples
from avemo.features.audio.spectrogram import BLOCK_FRAMES
from avemo.features.base import AudioExtractor, Features, register_extractor

#: pyAudioAnalysis's epsilon (``sys.float_info.epsilon``)
EPS = sys.float_info.epsilon
N_MFCC = 13
CHROMA_CLASSES = ("A", "A#", "B", "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#")
FEATURE_NAMES: tuple[str, ...] = (
    "zcr",
    "energy",
    "energy_entropy",
    "spectral_centroid",
    "spectral_spread",
    "spectral_entropy",
    "spectral_flux",
    "spectral_rolloff",
    *(f"mfcc_{i}" for i in range(1, N_MFCC + 1)),
    *(f"chroma_{i}" for i in range(1, 13)),
    "chroma_std",
)
_N_BLOCKS = 10  # sub-frames / sub-bands of the two entropies
_ROLLOFF = 0.90


def _semitones(sr: int, n_bins: int) -> np.ndarray:
    """pyAudioAnalysis's semitone number (from A0 = 27.5 Hz) of each FFT bin (one bin high)."""
    freqs = (np.arange(n_bins) + 1) * sr / (2.0 * n_bins)
    return np.round(12.0 * np.log2(freqs / 27.5)).astype(int)


def _bin_hz(sr: int, n_bins: int, quirks: bool) -> np.ndarray:
    """Frequency assigned to each of the ``n_bins`` FFT bins (pyAudioAnalysis's one-bin-high or the true one)."""
    return (np.arange(n_bins) + (1 if quirks else 0)) * (sr / (2.0 * n_bins))


@dataclass(frozen=True)
class PyAA34Config:
    """Options of ``pyaa34`` (pyAudioAnalysis's defaults: 50 ms windows, 25 ms step)."""

    sample_rate: int = 16000
    win_ms: float = 50.0
    hop_ms: float = 25.0
    #: remove the mean and scale the whole signal to peak 1 first, as pyAudioAnalysis does
    normalize: bool = True
    #: reproduce pyAudioAnalysis's bin-frequency and chroma quirks (see module docstring)
    pyaa_quirks: bool = True

    def __post_init__(self):
        if self.sample_rate <= 0 or self.win_ms <= 0 or self.hop_ms <= 0:
            raise ConfigError("pyaa34: sample_rate, win_ms and hop_ms must be positive")
        n_bins = samples(self.win_ms, self.sample_rate) // 2
        if n_bins < _N_BLOCKS or (self.pyaa_quirks and _semitones(self.sample_rate, n_bins).max() >= n_bins):
            raise ConfigError(
                f"pyaa34: a {self.win_ms} ms window at {self.sample_rate} Hz is too short for "
                "pyAudioAnalysis's chroma features (its spectrum must have more bins than semitones)"
            )


@functools.lru_cache(maxsize=8)
def mfcc_filterbank(sr: int, n_bins: int, quirks: bool = True) -> np.ndarray:
    """(40, n_bins) pyAudioAnalysis/scikits.talkbox MFCC filterbank (read-only; see module docstring).

    Edges: 13 linearly spaced from 133.33 Hz in steps of 200/3 Hz, then 29 logarithmically
    spaced by a factor 1.0711703; each triangle has area-normalising height
    2 / (upper - lower). With ``quirks`` bin ``k`` is placed at ``k * sr / n_bins`` Hz
    (pyAudioAnalysis's convention), else at its true frequency ``k * sr / (2 * n_bins)``.
    """
    scale = n_bins / sr if quirks else 2.0 * n_bins / sr  # bins per Hz
    n_lin, n_log = 13, 27
    edges = np.empty(n_lin + n_log + 2)
    edges[:n_lin] = 133.33 + np.arange(n_lin) * (200.0 / 3)
    edges[n_lin:] = edges[n_lin - 1] * 1.0711703 ** np.arange(1, n_log + 3)
    heights = 2.0 / (edges[2:] - edges[:-2])
    bin_hz = np.arange(n_bins) / scale
    bank = np.zeros((n_lin + n_log, n_bins))
    for i in range(n_lin + n_log):
        lower, centre, upper = edges[i], edges[i + 1], edges[i + 2]
        a, b, c = (int(np.floor(f * scale)) + 1 for f in (lower, centre, upper))
        rising = np.arange(a, min(b, n_bins))
        falling = np.arange(b, min(c, n_bins))
        bank[i, rising] = heights[i] / (centre - lower) * (bin_hz[rising] - lower)
        bank[i, falling] = heights[i] / (upper - centre) * (upper - bin_hz[falling])
    bank.setflags(write=False)
    return bank


@functools.lru_cache(maxsize=8)
def chroma_matrix(sr: int, n_bins: int, quirks: bool = True) -> np.ndarray:
    """(n_bins, 12) matrix M with chroma = (|X|^2 @ M) / sum(|X|^2); classes A, A#, ..., G#.

    Without ``quirks``: bin ``k >= 1`` at ``k * sr / (2 n_bins)`` Hz belongs to semitone
    ``round(12 log2(f / 27.5))``; each semitone gets the mean energy of its bins, and the
    semitones are summed per pitch class. With ``quirks``, pyAudioAnalysis's computation:
    it builds a vector C indexed by semitone: ``C[semitone[k]] = |X_k|^2``
    for k in order (so the last bin of a semitone wins; negative semitones wrap to the
    end of C), then ``C[p] /= count[semitone[p]]`` where ``count[k]`` is the number of bins
    sharing bin k's semitone, then sums C over octaves (position p -> class p mod 12).
    M encodes those three steps as one linear map.
    """
    m = np.zeros((n_bins, 12))
    if not quirks:
        semitone = np.round(12.0 * np.log2(_bin_hz(sr, n_bins, False)[1:] / 27.5)).astype(int)
        _, inverse, counts = np.unique(semitone, return_inverse=True, return_counts=True)
        m[np.arange(1, n_bins), semitone % 12] = 1.0 / counts[inverse]
        m.setflags(write=False)
        return m
    semitone = _semitones(sr, n_bins)
    _, inverse, counts = np.unique(semitone, return_inverse=True, return_counts=True)
    bins_per_semitone = counts[inverse]  # per bin
    last_bin: dict[int, int] = {}
    for k, s in enumerate(semitone):
        last_bin[int(s) % n_bins] = k  # numpy's negative-index wrap; later bins overwrite earlier ones
    for position, k in last_bin.items():
        m[k, position % 12] += 1.0 / bins_per_semitone[semitone[position]]
    m.setflags(write=False)
    return m


@functools.lru_cache(maxsize=16)
def _sparse(make, sr: int, n_bins: int, quirks: bool):
    import scipy.sparse

    return scipy.sparse.csr_matrix(make(sr, n_bins, quirks))


def _block_entropy(a: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Entropy (bits) of the energies of 10 contiguous blocks of each row, over ``total`` (per row)."""
    block = a.shape[1] // _N_BLOCKS
    parts = a[:, : block * _N_BLOCKS].reshape(a.shape[0], _N_BLOCKS, block)
    p = np.square(parts).sum(axis=2) / (total[:, None] + EPS)
    return -(p * np.log2(p + EPS)).sum(axis=1)


def short_term_features(y: np.ndarray, sr: int, win: int, hop: int, quirks: bool = True) -> np.ndarray:
    """(frames, 34) float64 pyAudioAnalysis short-term features of an already normalised signal.

    Frames are processed in blocks of :data:`BLOCK_FRAMES` (each block starts one frame
    early, so that the spectral flux of its first frame sees the true previous frame).
    """
    frames = leading_frames(y, win, hop)
    out = np.empty((frames.shape[0], len(FEATURE_NAMES)))
    for start in range(0, frames.shape[0], BLOCK_FRAMES):
        first = max(start - 1, 0)
        block = _frame_block(frames[first : start + BLOCK_FRAMES], sr, quirks)
        out[start : start + BLOCK_FRAMES] = block[start - first :]
    return out


def _frame_block(frames: np.ndarray, sr: int, quirks: bool) -> np.ndarray:
    n_frames, win = frames.shape
    n_bins = win // 2
    out = np.empty((n_frames, len(FEATURE_NAMES)))

    # time domain
    out[:, 0] = np.abs(np.diff(np.sign(frames), axis=1)).sum(axis=1) / 2.0 / (win - 1.0)
    frame_energy = np.square(frames).sum(axis=1)
    out[:, 1] = frame_energy / win
    out[:, 2] = _block_entropy(frames, frame_energy)

    # magnitude spectrum
    mag = np.abs(scipy.fft.rfft(frames, axis=1)[:, :n_bins]) / n_bins
    power = np.square(mag)

    # centroid and spread of the peak-normalised magnitude
    bin_hz = _bin_hz(sr, n_bins, quirks)
    peak = mag.max(axis=1, keepdims=True)
    weights = np.where(peak == 0, mag / EPS, mag / np.where(peak == 0, 1.0, peak))
    den = weights.sum(axis=1) + EPS
    centroid = (bin_hz * weights).sum(axis=1) / den
    spread = np.sqrt((np.square(bin_hz[None, :] - centroid[:, None]) * weights).sum(axis=1) / den)
    out[:, 3] = centroid / (sr / 2.0)
    out[:, 4] = spread / (sr / 2.0)

    out[:, 5] = _block_entropy(mag, power.sum(axis=1))

    # flux against the previous frame (the first frame is compared with itself)
    normed = mag / (mag + EPS).sum(axis=1, keepdims=True)
    previous = np.concatenate([normed[:1], normed[:-1]], axis=0)
    out[:, 6] = np.square(normed - previous).sum(axis=1)

    # roll-off: first bin whose cumulative energy exceeds 90 % of the total
    above = (np.cumsum(power, axis=1) + EPS) > _ROLLOFF * power.sum(axis=1, keepdims=True)
    out[:, 7] = np.where(above.any(axis=1), above.argmax(axis=1) / float(n_bins), 0.0)

    # MFCCs of the magnitude spectrum (sparse products: no BLAS threads, see spectrogram.mel_power)
    log_bands = np.log10((_sparse(mfcc_filterbank, sr, n_bins, quirks) @ mag.T).T + EPS)
    out[:, 8 : 8 + N_MFCC] = scipy.fft.dct(log_bands, type=2, norm="ortho", axis=1)[:, :N_MFCC]

    # chroma
    chroma = np.ascontiguousarray((_sparse(chroma_matrix, sr, n_bins, quirks).T @ power.T).T)
    total = power.sum(axis=1, keepdims=True)
    chroma /= np.where(total == 0, EPS, total)
    out[:, 8 + N_MFCC : 20 + N_MFCC] = chroma
    out[:, 20 + N_MFCC] = chroma.std(axis=1)
    return out


@register_extractor
class PyAA34(AudioExtractor):
    """pyAudioAnalysis's 34 short-term features: ``"x"`` (frames, 34) float32, names :data:`FEATURE_NAMES`.

    Frame ``k`` covers ``[k * hop_ms, k * hop_ms + win_ms)``; the shortest accepted input is
    one window (50 ms).
    """

    name = "pyaa34"
    Config = PyAA34Config
    version = "1"
    summary = "pyAudioAnalysis 34 short-term features (T, 34), 50/25 ms frames (paper 003)"

    def feature_names(self) -> list[str]:
        return list(FEATURE_NAMES)

    def frame_times(self, n_frames: int) -> np.ndarray:
        """Centre time (s) of each output frame."""
        c = self.config
        win, hop = samples(c.win_ms, c.sample_rate), samples(c.hop_ms, c.sample_rate)
        return (np.arange(n_frames) * hop + win / 2.0) / c.sample_rate

    def from_signal(self, y: np.ndarray, sr: int) -> Features:
        c = self.config
        win, hop = samples(c.win_ms, c.sample_rate), samples(c.hop_ms, c.sample_rate)
        y = prepare_signal(y, sr, c.sample_rate, min_seconds=win / c.sample_rate, name=self.name)
        if c.normalize:
            y = y - y.mean()
            y = y / (np.abs(y).max() + 1e-10)
        return {"x": short_term_features(y, c.sample_rate, win, hop, c.pyaa_quirks).astype(np.float32)}
