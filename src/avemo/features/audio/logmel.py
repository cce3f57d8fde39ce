"""``logmel``: a log-mel spectrogram, (frames, n_mels) in dB.

Front end as :mod:`avemo.features.audio.spectrogram` (librosa's definitions): 25 ms Hann
windows every 10 ms centred on ``k * hop``, Slaney mel filters from ``fmin`` to ``fmax``
(Nyquist by default), power in dB ``10 * log10(max(S, 1e-10))``: **the log floor is
-100 dB** (absolute, so that a window of a stream gets the same values as the same
samples inside a whole clip). ``top_db`` (default off) adds librosa's relative floor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avemo.features.audio.spectrogram import check_mel_config, log_mel_db, mel_frame_times
from avemo.features.base import AudioExtractor, Features, register_extractor


@dataclass(frozen=True)
class LogMelConfig:
    """Options of ``logmel`` (times in milliseconds, frequencies in Hz)."""

    sample_rate: int = 16000
    n_mels: int = 64
    win_ms: float = 25.0
    hop_ms: float = 10.0
    fmin: float = 0.0
    #: upper edge of the top filter; ``None`` = sample_rate / 2
    fmax: float | None = None
    #: FFT size; ``None`` = the smallest power of two >= the window (512 at 16 kHz, 25 ms)
    n_fft: int | None = None
    #: ``None``: absolute -100 dB floor only; a number: also floor at (clip maximum - top_db) like librosa
    top_db: float | None = None

    def __post_init__(self):
        check_mel_config("logmel", self)


@register_extractor
class LogMel(AudioExtractor):
    """Log-mel spectrogram: ``"x"`` (frames, n_mels) float32 dB; frame ``k`` is centred at ``k * hop_ms``."""

    name = "logmel"
    Config = LogMelConfig
    version = "1"
    summary = "log-mel spectrogram (T, n_mels) in dB, 25/10 ms Hann frames, -100 dB floor"

    def feature_names(self) -> list[str]:
        """``mel_0`` (the lowest band) .. ``mel_{n_mels-1}``."""
        return [f"mel_{i}" for i in range(self.config.n_mels)]

    def frame_times(self, n_frames: int) -> np.ndarray:
        """Centre time (s) of each output frame."""
        return mel_frame_times(self.config, n_frames)

    def from_signal(self, y: np.ndarray, sr: int) -> Features:
        return {"x": log_mel_db(y, sr, self.config, name=self.name).astype(np.float32)}
