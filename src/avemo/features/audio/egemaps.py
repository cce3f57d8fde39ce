"""``egemaps`` and ``egemaps_lld``: the eGeMAPS v02 acoustic parameter set through openSMILE.

eGeMAPS (Eyben et al., "The Geneva Minimalistic Acoustic Parameter Set (GeMAPS) for Voice
Research and Affective Computing", IEEE Trans. Affective Computing 7(2), 2016) as shipped
in the ``opensmile`` Python package (``FeatureSet.eGeMAPSv02``):

* ``egemaps``: the 88 functionals of a whole signal, ``"x"`` (88,);
* ``egemaps_lld``: the 25 low-level descriptors, ``"x"`` (T, 25), one row every 10 ms
  (openSMILE's frame ``k`` starts at ``k * 10 ms``; its windows are 20-60 ms long
  depending on the descriptor).

Both come from **one** openSMILE run: the eGeMAPSv02 configuration computes the LLDs and
the functionals in the same pass, and we attach openSMILE's external sinks to both levels
(``shared/standard_external_data_output_multi.conf.inc`` of the package). The last result
is memoised by the signal's content, so when a runner calls ``egemaps`` and then
``egemaps_lld`` on the same decoded signal, openSMILE runs once. The numbers are
identical to ``opensmile.Smile(eGeMAPSv02, Functionals / LowLevelDescriptors)
.process_signal`` (tested), which also converts the signal to 16-bit PCM first.

openSMILE needs 60 ms of audio (its F0 window) before it emits anything; shorter input
is a FeatureError ("too short"). Digital silence gives finite values (zeros and openSMILE's
floors).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avemo.errors import ConfigError, FeatureError
from avemo.features.audio.framing import prepare_signal
from avemo.features.base import AudioExtractor, Features, register_extractor

N_FUNCTIONALS = 88
N_LLD = 25
#: openSMILE's LLD frame period (s)
LLD_HOP = 0.01
#: the shortest input for which openSMILE emits LLD frames and functionals: its 60 ms F0
#: window (measured: 960 samples at 16 kHz give 2 LLD frames, 959 give nothing)
MIN_SECONDS = 0.06

_LLD_SINK = "extsinklld"
_FUNC_SINK = "extsinkfunc"
_SOURCE = "extsource"


@dataclass(frozen=True)
class EGeMAPSConfig:
    """Options of ``egemaps`` / ``egemaps_lld``: only the rate the signal is analysed at."""

    sample_rate: int = 16000

    def __post_init__(self):
        if self.sample_rate < 8000:
            raise ConfigError(f"egemaps: sample_rate must be at least 8000 Hz, got {self.sample_rate}")


def _config_root() -> Path:
    import opensmile

    return Path(opensmile.__file__).resolve().parent / "core" / "config"


def _new_smile(sample_rate: int):
    """An initialised openSMILE instance running eGeMAPSv02 with sinks on the LLD and functional levels."""
    from opensmile.core.lib import OpenSMILE

    root = _config_root()
    options = {
        "source": str(root / "shared" / "standard_external_wave_input.conf.inc"),
        "sink": str(root / "shared" / "standard_external_data_output_multi.conf.inc"),
        "bufferModeRbConf": str(root / "shared" / "BufferModeRb.conf.inc"),
        "frameModeFunctionalsConf": str(root / "shared" / "FrameModeFunctionals.conf.inc"),
        "sampleRate": int(sample_rate),
        "nBits": 16,
    }
    smile = OpenSMILE()
    smile.initialize(str(root / "egemaps" / "v02" / "eGeMAPSv02.conf"), options, loglevel=0)
    return smile


@functools.lru_cache(maxsize=1)
def _names() -> tuple[tuple[str, ...], tuple[str, ...]]:
    smile = _new_smile(16000)
    try:
        lld = tuple(
            smile.external_sink_get_element_name(_LLD_SINK, i)
            for i in range(smile.external_sink_get_num_elements(_LLD_SINK))
        )
        func = tuple(
            smile.external_sink_get_element_name(_FUNC_SINK, i)
            for i in range(smile.external_sink_get_num_elements(_FUNC_SINK))
        )
    finally:
        smile.free()
    return lld, func


def lld_names() -> list[str]:
    """The 25 eGeMAPSv02 low-level descriptor names, in column order."""
    return list(_names()[0])


def functional_names() -> list[str]:
    """The 88 eGeMAPSv02 functional names, in order."""
    return list(_names()[1])


def _to_pcm16(y: np.ndarray) -> np.ndarray:
    # as opensmile.Smile does (signal * 32768 -> int16), but clipped instead of wrapping at +1.0
    return np.clip(y * 32768.0, -32768, 32767).astype(np.int16)


@contextlib.contextmanager
def _stop_on_ctrl_c(smile):
    """Ctrl-C during ``smile.run()``: ask openSMILE to stop, and raise KeyboardInterrupt once it has.

    Python's own handler would raise inside a sink callback, where ctypes prints the exception and
    drops it: the run went on, short of the rows that callback was adding (features with a frame
    missing, stored in the cache), and Ctrl-C was lost. Only the main thread receives signals, and
    a process that ignores Ctrl-C (an extraction worker) keeps ignoring it."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    interrupted: list[int] = []

    def stop(signum, _frame) -> None:
        interrupted.append(signum)
        smile.abort()

    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        raise KeyboardInterrupt


_memo_lock = threading.Lock()
_memo: dict[str, object] = {}


def compute(y: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """(LLDs (T, 25), functionals (88,)) float32 of a mono float signal in [-1, 1] at ``sr`` Hz.

    One openSMILE run; the last result is memoised by (sr, signal content).
    Raises FeatureError when the signal is too short for openSMILE to emit anything.
    """
    pcm = _to_pcm16(np.asarray(y))
    key = f"{sr}:{pcm.size}:{hashlib.blake2b(pcm.tobytes(), digest_size=16).hexdigest()}"
    with _memo_lock:
        if _memo.get("key") == key:
            lld, func = _memo["value"]
            return lld.copy(), func.copy()
    lld_rows: list[np.ndarray] = []
    func_rows: list[np.ndarray] = []
    smile = _new_smile(sr)
    try:
        smile.external_sink_set_callback_ex(_LLD_SINK, lambda data, meta: lld_rows.append(data.copy()))
        smile.external_sink_set_callback_ex(_FUNC_SINK, lambda data, meta: func_rows.append(data.copy()))
        smile.external_audio_source_write_data(_SOURCE, pcm.tobytes())
        smile.external_audio_source_set_eoi(_SOURCE)
        with _stop_on_ctrl_c(smile):
            smile.run()
    finally:
        smile.free()
    if not lld_rows or not func_rows:
        raise FeatureError(f"egemaps: too short: {pcm.size / sr:.3f} s, need {MIN_SECONDS:.3f} s")
    lld = np.vstack(lld_rows).astype(np.float32).reshape(-1, N_LLD)
    func = np.vstack(func_rows).astype(np.float32).reshape(-1)[:N_FUNCTIONALS]
    with _memo_lock:
        _memo["key"] = key
        _memo["value"] = (lld, func)
    return lld.copy(), func.copy()


class _EGeMAPSBase(AudioExtractor):
    Config = EGeMAPSConfig
    version = "1"

    @staticmethod
    def lld_names() -> list[str]:
        """The 25 low-level descriptor names (the columns of ``egemaps_lld``)."""
        return lld_names()

    @staticmethod
    def functional_names() -> list[str]:
        """The 88 functional names (the entries of ``egemaps``)."""
        return functional_names()

    def _compute(self, y: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
        y = prepare_signal(y, sr, self.config.sample_rate, min_seconds=MIN_SECONDS, name=self.name)
        try:
            return compute(y, self.config.sample_rate)
        except FeatureError as exc:
            exc.reason = exc.reason.replace("egemaps:", f"{self.name}:", 1)
            raise


@register_extractor
class EGeMAPS(_EGeMAPSBase):
    """eGeMAPSv02 functionals of the whole signal: ``"x"`` (88,) float32; names: :meth:`feature_names`."""

    name = "egemaps"
    summary = "eGeMAPSv02 functionals (88,) via openSMILE"

    def feature_names(self) -> list[str]:
        return functional_names()

    def from_signal(self, y: np.ndarray, sr: int) -> Features:
        return {"x": self._compute(y, sr)[1]}


@register_extractor
class EGeMAPSLLD(_EGeMAPSBase):
    """eGeMAPSv02 low-level descriptors: ``"x"`` (T, 25) float32 every 10 ms; names: :meth:`feature_names`."""

    name = "egemaps_lld"
    summary = "eGeMAPSv02 low-level descriptors (T, 25) at a 10 ms hop via openSMILE"

    def feature_names(self) -> list[str]:
        return lld_names()

    def frame_times(self, n_frames: int) -> np.ndarray:
        """Start time (s) of each output frame (openSMILE's frame times)."""
        return np.arange(n_frames) * LLD_HOP

    def from_signal(self, y: np.ndarray, sr: int) -> Features:
        return {"x": self._compute(y, sr)[0]}
