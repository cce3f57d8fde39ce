"""Where a signal holds speech: Silero VAD, run from its ONNX file with onnxruntime.

The network is Silero VAD v6 (Silero Team, "Silero VAD: pre-trained enterprise-grade Voice
Activity Detector", github.com/snakers4/silero-vad, MIT), shipped inside the PyPI package
``silero-vad``. We read its "sequence" export (``silero_vad_16k_sequence.onnx``: one call scores
up to 512 frames of 32 ms, the same numbers as the frame-by-frame model) and never import the
package itself: its ``__init__`` imports torch and calls ``torch.set_num_threads(1)``, which
would slow every other torch model of the process.

:func:`speech_regions` turns the per-frame speech probabilities into ``[start, end)`` regions
with the package's own state machine (``get_speech_timestamps``): speech starts at a frame of
probability >= ``threshold``, ends where the probability first fell below ``threshold - 0.15``
and stayed under ``threshold`` for ``min_silence`` seconds; regions not longer than ``min_speech``
are dropped and the rest are widened by ``pad`` on each side (a narrower gap is split in two).
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avemo.errors import CheckpointError, ConfigError

SAMPLE_RATE = 16000
FRAME = 512  # samples per VAD frame (32 ms)
CONTEXT = 64  # samples of the previous frame the model sees with each frame
FRAME_SECONDS = FRAME / SAMPLE_RATE
BLOCK_FRAMES = 512  # frames per ONNX call (16.4 s)
MODEL_FILE = "silero_vad_16k_sequence.onnx"
INSTALL_HINT = "pip install 'silero-vad>=6.2.3'"


@dataclass(frozen=True)
class VadConfig:
    """Speech detection settings (seconds; the defaults are those of ``silero_vad.get_speech_timestamps``).

    ``threshold``: the speech probability that starts a region; it ends below ``threshold - 0.15``.
    ``min_speech``: shorter regions are dropped. ``min_silence``: a shorter pause does not end a
    region. ``pad``: added on each side of a region (within the signal).
    """

    threshold: float = 0.5
    min_speech: float = 0.25
    min_silence: float = 0.1
    pad: float = 0.03

    def __post_init__(self) -> None:
        if not 0.15 < self.threshold < 1.0:
            raise ConfigError(f"vad threshold must lie in (0.15, 1), got {self.threshold!r}")
        for name in ("min_speech", "min_silence", "pad"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"vad {name} must be >= 0 seconds, got {getattr(self, name)!r}")


def model_path() -> Path:
    """The sequence ONNX file inside the installed ``silero-vad`` package (found without importing it)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(f"the package 'silero-vad' (speech detection) is not installed; {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / MODEL_FILE
    if not path.is_file():
        raise CheckpointError(f"silero-vad is installed but lacks data/{MODEL_FILE}; {INSTALL_HINT}")
    return path


_SESSION = None
_SESSION_LOCK = threading.Lock()


def _session():
    """One onnxruntime session per process (``run`` is thread-safe), one thread: the model is tiny."""
    global _SESSION
    with _SESSION_LOCK:
        if _SESSION is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            _SESSION = ort.InferenceSession(str(model_path()), options, providers=["CPUExecutionProvider"])
        return _SESSION


def speech_probabilities(y: np.ndarray) -> np.ndarray:
    """The speech probability of each 32 ms frame of a mono 16 kHz signal (the last frame zero-padded)."""
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    n = -(-len(y) // FRAME)
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    frames = np.zeros((n, FRAME), dtype=np.float32)
    frames.reshape(-1)[: len(y)] = y
    context = np.zeros((n, CONTEXT), dtype=np.float32)
    context[1:] = frames[:-1, -CONTEXT:]
    windows = np.concatenate([context, frames], axis=1)
    session = _session()
    h = np.zeros((1, 1, 128), dtype=np.float32)
    c = np.zeros((1, 1, 128), dtype=np.float32)
    out = []
    for first in range(0, n, BLOCK_FRAMES):
        probs, h, c = session.run(["speech_probs", "hn", "cn"], {"input": windows[first : first + BLOCK_FRAMES], "h": h, "c": c})
        out.append(np.asarray(probs, dtype=np.float32).reshape(-1))
    return np.concatenate(out)


def regions_from_probabilities(probs: np.ndarray, n_samples: int, config: VadConfig = VadConfig()) -> list[tuple[float, float]]:
    """Speech regions ``[(start, end), ...]`` in seconds, sorted and disjoint, of a signal of ``n_samples``
    samples whose frames have speech probabilities ``probs`` (the rules of the module docstring)."""
    off = max(config.threshold - 0.15, 0.01)
    raw: list[list[int]] = []  # [start, end) in samples
    start: int | None = None
    quiet_from: int | None = None
    for i, p in enumerate(np.asarray(probs, dtype=np.float64)):
        at = i * FRAME
        if p >= config.threshold:
            quiet_from = None
            if start is None:
                start = at
            continue
        if start is None or p >= off:
            continue
        quiet_from = at if quiet_from is None else quiet_from
        if at - quiet_from >= config.min_silence * SAMPLE_RATE:
            if quiet_from - start > config.min_speech * SAMPLE_RATE:
                raw.append([start, quiet_from])
            start = quiet_from = None
    if start is not None and n_samples - start > config.min_speech * SAMPLE_RATE:
        raw.append([start, n_samples])
    pad = config.pad * SAMPLE_RATE
    for i, region in enumerate(raw):  # widen; a gap narrower than two pads is shared half and half
        if i == 0:
            region[0] = int(max(0, region[0] - pad))
        if i + 1 < len(raw):
            gap = raw[i + 1][0] - region[1]
            share = gap // 2 if gap < 2 * pad else pad
            region[1] = int(min(n_samples, region[1] + share))
            raw[i + 1][0] = int(max(0, raw[i + 1][0] - share))
        else:
            region[1] = int(min(n_samples, region[1] + pad))
    return [(a / SAMPLE_RATE, b / SAMPLE_RATE) for a, b in raw]


def speech_regions(y: np.ndarray, config: VadConfig = VadConfig()) -> list[tuple[float, float]]:
    """Speech regions ``[(start, end), ...]`` (seconds) of a mono 16 kHz signal; ``[]`` when it holds none."""
    return regions_from_probabilities(speech_probabilities(y), len(y), config)
