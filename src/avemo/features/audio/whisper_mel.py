"""Whisper's log-mel front end in NumPy: the input of the speech recogniser, without torch or librosa.

The same computation as Whisper's ``log_mel_spectrogram`` (Radford et al. 2022, "Robust Speech
Recognition via Large-Scale Weak Supervision", section 2.2: 80 log-magnitude mel channels of
25 ms windows every 10 ms, each input scaled to about [-1, 1]): a centred STFT with a periodic
Hann window of 400 samples and hop 160 (reflect padding, the last frame dropped), power through
the Slaney-normalised mel filterbank (librosa's default, which Whisper uses; our copy in
:mod:`~avemo.features.audio.spectrogram`), ``log10``
floored at ``max - 8``, then ``(x + 4) / 4``. :class:`~avemo.features.audio.whisper.WhisperEncoder`
computes the same in torch for the emotion embedding (tested equal); this copy lets
transcription run without an encoder instance or librosa (about 1 s to import here), and
fills the padding frames instead of computing them.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from avemo.features.audio.framing import periodic_hann
from avemo.features.audio.spectrogram import mel_filterbank

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
FRAMES_PER_SECOND = SAMPLE_RATE // HOP  # 100 mel frames per second; the encoder halves it


def filterbank(n_mels: int = 80) -> np.ndarray:
    """Whisper's (n_mels, 201) filters: librosa's Slaney mel filterbank from 0 Hz to 8 kHz, float32."""
    return mel_filterbank(SAMPLE_RATE, N_FFT, n_mels, 0.0, SAMPLE_RATE / 2).astype(np.float32)


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
    frames_view = sliding_window_view(padded, N_FFT)[: computed * HOP : HOP]
    spectrum = np.fft.rfft(frames_view * periodic_hann(N_FFT).astype(np.float32), axis=1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    log = np.full((n_mels, total), -10.0, dtype=np.float32)  # log10 of the 1e-10 floor: silent frames
    log[:, :computed] = np.log10(np.maximum(filterbank(n_mels) @ power.T, 1e-10))
    log = np.maximum(log, log.max() - 8.0)
    return (log + 4.0) / 4.0
