"""Sliding windows over a long media file, with bounded memory.

:func:`iter_windows` walks audio and video side by side (two decoders, each streaming)
and yields :class:`Window` objects of ``window`` seconds every ``hop`` seconds. Only the
samples and frames of the current window (plus one decoding block) are ever in memory,
so a 10-minute video costs what a few seconds cost.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avemo.media.audio import DEFAULT_SAMPLE_RATE, iter_audio
from avemo.media.video import iter_frames


@dataclass
class Window:
    """One analysis window: ``audio`` (mono float32 at ``sample_rate``) and ``frames`` (N, H, W, 3)."""

    index: int
    start: float
    end: float
    audio: np.ndarray | None
    frames: np.ndarray | None
    frame_times: np.ndarray | None
    sample_rate: int


class _AudioBuffer:
    def __init__(self, blocks: Iterator[np.ndarray], sr: int):
        self.blocks, self.sr = blocks, sr
        self.data = np.zeros(0, dtype=np.float32)
        self.offset = 0  # sample index of data[0]
        self.ended = False

    @property
    def end_time(self) -> float:
        return (self.offset + len(self.data)) / self.sr

    def fill_until(self, t: float) -> None:
        while not self.ended and self.end_time < t:
            block = next(self.blocks, None)
            if block is None:
                self.ended = True
            else:
                self.data = np.concatenate([self.data, block])

    def get(self, start: float, end: float) -> np.ndarray:
        a = int(round(start * self.sr)) - self.offset
        b = int(round(end * self.sr)) - self.offset
        return self.data[max(a, 0) : max(b, 0)].copy()

    def drop_before(self, t: float) -> None:
        cut = int(round(t * self.sr)) - self.offset
        if cut > 0:
            self.data = self.data[cut:]
            self.offset += cut


class _FrameBuffer:
    def __init__(self, frames: Iterator[tuple[float, np.ndarray]]):
        self.frames = frames
        self.items: deque[tuple[float, np.ndarray]] = deque()
        self.ended = False
        self.last_time = -np.inf

    def fill_until(self, t: float) -> None:
        while not self.ended and self.last_time < t:
            item = next(self.frames, None)
            if item is None:
                self.ended = True
            else:
                self.items.append(item)
                self.last_time = item[0]

    def get(self, start: float, end: float) -> tuple[np.ndarray | None, np.ndarray | None]:
        sel = [(t, f) for t, f in self.items if start - 1e-6 <= t < end - 1e-6]
        if not sel:
            return None, None
        return np.stack([f for _, f in sel]), np.asarray([t for t, _ in sel])

    def drop_before(self, t: float) -> None:
        while self.items and self.items[0][0] < t - 1e-6:
            self.items.popleft()


def iter_windows(
    path: str | Path,
    *,
    window: float = 1.0,
    hop: float = 0.5,
    audio: bool = True,
    video: bool = True,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    fps: float | None = None,
    size: tuple[int, int] | None = None,
    gray: bool = False,
    min_fraction: float = 0.5,
) -> Iterator[Window]:
    """Yield windows [k*hop, k*hop + window) over ``path``.

    ``audio`` / ``video`` choose which streams to decode (ask only for streams that exist:
    a missing one raises MissingStreamError on first use). The last window may be shorter;
    it is kept if it spans at least ``min_fraction`` of ``window`` (the first window is
    always kept, so a clip shorter than one window yields one window).
    """
    if window <= 0 or hop <= 0:
        raise ValueError("window and hop must be positive")
    if not (audio or video):
        raise ValueError("ask for audio, video or both")
    path = Path(path)
    abuf = _AudioBuffer(iter_audio(path, sample_rate, block_seconds=max(window, 1.0)), sample_rate) if audio else None
    vbuf = _FrameBuffer(iter_frames(path, fps=fps, size=size, gray=gray)) if video else None
    index = 0
    while True:
        start = index * hop
        end = start + window
        if abuf is not None:
            abuf.fill_until(end)
        if vbuf is not None:
            vbuf.fill_until(end)
        ends = []
        if abuf is not None:
            ends.append(abuf.end_time if abuf.ended else np.inf)
        if vbuf is not None:
            ends.append(vbuf.last_time + 1e-3 if vbuf.ended else np.inf)
        total = max(ends)  # the media lasts as long as its longest stream
        if start >= total:
            break
        stop = min(end, total)
        if index > 0 and (stop - start) < min_fraction * window:
            break
        a = abuf.get(start, stop) if abuf is not None else None
        frames, times = vbuf.get(start, stop) if vbuf is not None else (None, None)
        yield Window(index, start, stop, a, frames, times, sample_rate)
        index += 1
        next_start = index * hop
        if abuf is not None:
            abuf.drop_before(next_start)
        if vbuf is not None:
            vbuf.drop_before(next_start)
        if stop < end:
            break
