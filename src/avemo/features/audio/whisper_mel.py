"""Whisper's log-mel front end in NumPy: the input of the speech recogniser, without torch or librosa.

The same computation as Whisper's ``log_mel_spectrogram`` (Radford et al. 2022, "Robust Speech
Recognition via Large-Scale Weak Supervision", section 2.2: 80 log-magnitude mel channels of
25 ms windows every 10 ms, each input scaled to about [-1, 1]): a centred STFT with a periodic
Hann window of 400 samples and hop 160 (reflect padding, the last frame dropped), power through
the Slaney-normalised mel filterbank (librosa's default, which Whisper uses), ``log10``
floored at ``max - 8``, then ``(x + 4) / 4``. :class:`~avemo.features.audio.whisper.WhisperEncoder`
computes the same in torch for the emotion embedding (tested equal); this copy lets
transcription run without an encoder instance or librosa (about 1 s to import here), and
fills the padding frames instead of computing them.
"""

from __future__ import annotations

import functools

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
FRAMES_PER_SECOND = SAMPLE_RATE // HOP  # 100 mel frames per second; the encoder halves it


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (librosa ``htk=False``)."""
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    logstep = np.log(6.4) / 27.0
    linear = f / f_sp
    return np.where(f >= min_log_hz, min_log_hz / f_sp + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, linear)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@functools.lru_cache(maxsize=4)
def mel_filterbank(n_mels: int = 80, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters, Slaney scale and area normalisation, 0 Hz to Nyquist.

    Equal to ``librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)`` (tested).
    """
    fft_freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    mel_freqs = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), n_mels + 2))
    widths = np.diff(mel_freqs)
    ramps = mel_freqs[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_freqs[2:] - mel_freqs[:-2]))[:, None]
    weights.setflags(write=False)
    return weights.astype(np.float32)


def log_mel(audio: np.ndarray, n_mels: int = 80, frames: int | None = None) -> np.ndarray:
    """Whisper's (n_mels, frames) log-mel of mono 16 kHz ``audio``; ``frames`` defaults to ``len // 160``.

    With ``frames`` larger than the audio gives, the audio is padded with silence first, as
    Whisper pads every input towards 30 s (the decoder expects to see where speech ends). Frames
    that hold only padding all take the floor value, so they are filled in, not computed: the cost
    follows the length of the audio, not of the padding.
    """
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    total = len(audio) // HOP if frames is None else int(frames)
    if total < 1 or len(audio) < HOP:
        raise ValueError(f"log_mel needs at least {HOP} samples, got {len(audio)}")
    # frames whose window [i * HOP - N_FFT / 2, i * HOP + N_FFT / 2) reaches the audio, plus one
    computed = min(total, len(audio) // HOP + N_FFT // HOP + 1)
    audio = audio[: computed * HOP + N_FFT // 2]  # what the computed frames' windows can see
    if frames is not None:
        audio = np.pad(audio, (0, computed * HOP + N_FFT // 2 - len(audio)))  # the silence appended
    padded = np.pad(audio, N_FFT // 2, mode="reflect")
    strided = np.lib.stride_tricks.as_strided(
        padded, shape=(computed, N_FFT), strides=(padded.strides[0] * HOP, padded.strides[0]), writeable=False
    )
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)
    spectrum = np.fft.rfft(strided * window, axis=1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    log = np.full((n_mels, total), -10.0, dtype=np.float32)  # log10 of the 1e-10 floor: silent frames
    log[:, :computed] = np.log10(np.maximum(mel_filterbank(n_mels) @ power.T, 1e-10))
    log = np.maximum(log, log.max() - 8.0)
    return (log + 4.0) / 4.0
