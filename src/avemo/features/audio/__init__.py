"""Audio feature extractors; importing this package registers them.

=================  =====================================================  ==================
name               what                                                   ``"x"``
=================  =====================================================  ==================
``mfcc``           MFCC + delta + delta-delta (librosa definitions)       (T, 3 * n_mfcc)
``logmel``         log-mel spectrogram in dB (-100 dB floor)              (T, n_mels)
``egemaps``        eGeMAPSv02 functionals (openSMILE)                     (88,)
``egemaps_lld``    eGeMAPSv02 low-level descriptors (openSMILE)           (T, 25)
``pyaa34``         pyAudioAnalysis' 34 short-term features (paper 003)    (T, 34)
``pitch_energy``   ZCR, RMS, autocorrelation F0, voicing (paper 004)      (T, 4)
``whisper_base``   pretrained Whisper-base encoder, layer-averaged mean   (512,)
=================  =====================================================  ==================

All take a mono signal at ``sample_rate`` (16 kHz by default; other rates are resampled)
through ``from_signal(y, sr)``, or a file through ``extract(path)``. Sequence features use
a 10 ms hop except ``pyaa34`` (25 ms, pyAudioAnalysis's default step).
"""

from avemo.features.audio import egemaps, logmel, mfcc, pitch_energy, pyaa34, whisper  # noqa: F401  (registers)
from avemo.features.audio.egemaps import EGeMAPS, EGeMAPSLLD
from avemo.features.audio.logmel import LogMel
from avemo.features.audio.mfcc import MFCC, deltas
from avemo.features.audio.pitch_energy import PitchEnergy
from avemo.features.audio.pyaa34 import PyAA34
from avemo.features.audio.whisper import WhisperBase

__all__ = ["EGeMAPS", "EGeMAPSLLD", "LogMel", "MFCC", "PitchEnergy", "PyAA34", "WhisperBase", "deltas"]
