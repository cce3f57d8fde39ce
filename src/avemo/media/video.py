"""Decode video frames with PyAV: all frames, frames at a target rate, or N frames spread over a window.

Frames are decoded one by one (multi-threaded in FFmpeg) and only the selected ones are
converted to numpy (RGB ``uint8``, or grayscale), turned upright as the stream's display matrix
says (a phone's portrait video), optionally resized by FFmpeg's scaler on the way. Nothing holds more than the frames asked for; :func:`iter_frames` is a generator
for streaming over long videos.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from avemo.errors import MediaError, MissingStreamError
from avemo.media.decode import Warn, check_complete, declared_end, decode_stream, restarts, warner
from avemo.media.probe import audio_stream, open_media, stream_fps, video_stream


@dataclass
class Frames:
    """Decoded frames: ``images`` (N, H, W, 3) RGB or (N, H, W) gray uint8, ``times`` (N,) seconds."""

    images: np.ndarray
    times: np.ndarray
    fps: float  # the source's frame rate

    def __len__(self) -> int:
        return len(self.times)


def _convert(frame: av.VideoFrame, size: tuple[int, int] | None, gray: bool) -> np.ndarray:
    """The frame as a numpy image, upright: turned as its display matrix says (a phone's portrait
    video is stored sideways, with a 90-degree rotation that every player applies; the face detector
    missed most of its sideways faces), then ``size`` (width, height) of the upright image."""
    fmt = "gray" if gray else "rgb24"
    turns = int(round((frame.rotation or 0) / 90.0)) % 4  # counter-clockwise quarter turns to display it
    if size is not None:
        width, height = size if turns % 2 == 0 else size[::-1]
        image = frame.to_ndarray(width=width, height=height, format=fmt)
    else:
        image = frame.to_ndarray(format=fmt)
    return np.ascontiguousarray(np.rot90(image, k=turns)) if turns else image


def decoded_frames(
    path: Path, start: float, duration: float | None, warn: Warn | None = None,
    ended: Callable[[float], None] | None = None,
) -> Iterator[tuple[float, av.VideoFrame, float]]:
    """(time, decoded frame, source fps) for every frame with start <= time < start + duration.

    Times are seconds from the container's start, as the audio's are (:mod:`avemo.media.audio`): a
    file whose streams start at 5 s (a cut recording, an MPEG-TS capture) has its first frame at 0 s,
    not 5 s after its sound. A damaged file gives the frames that can be decoded; what was skipped,
    and a stream that ends well before its declared length, are told to ``warn`` (see
    :mod:`avemo.media.decode`). When the stream is read to its end, ``ended`` is told where its last
    decoded frame ends (its time plus one frame at the source's rate): a truncated file's video ends there.
    An MPEG-TS or FLV file that was sought (``start`` past 1 s) and gave no frame of the window is read
    again from its start: a joined recording's time stamps restart (a window in it was not found), and
    MPEG-TS, without an index, may land where nothing decodes up to the next key frame."""
    end = None if duration is None else start + duration
    with open_media(path) as container:
        stream = video_stream(container)
        if stream is None:
            raise MissingStreamError("has no video stream (an audio-only file)", path, stream="video")
        stream.thread_type = "AUTO"
        fps = stream_fps(stream)
        origin = container.start_time / av.time_base if container.start_time is not None else 0.0
        retry = False
        if start > 1.0:  # seeking to 0 is the same as not seeking (and FLV refuses it with EPERM)
            try:
                container.seek(int((start - 1.0 + origin) / float(stream.time_base)), stream=stream, backward=True)
                retry = restarts(container)
            except av.error.FFmpegError:
                container.seek(0)  # a container that cannot seek there: decode from the start
        while True:  # an MPEG-TS/FLV file sought where nothing of the window decodes is read from its start
            t, given, past = None, 0, False
            try:
                for t, frame in _timed(container, stream, path, warn, origin, fps):
                    if t < start - 1e-6:
                        continue
                    if end is not None and t >= end - 1e-6:
                        past = True
                        break
                    given += 1
                    yield t, frame, fps
            except MediaError:
                if not retry:
                    raise
            if given or not retry:
                break
            container.seek(0)
            retry = False
        if t is not None and not past:
            check_complete(declared_end(container, stream, origin), t + 1.0 / fps, warner(path, warn), "video")
            if ended is not None:
                ended(t + 1.0 / fps)


def _timed(container, stream, path: Path, warn: Warn | None, origin: float, fps: float):
    """(seconds from the container's start, frame) of the frames of ``stream`` decoded from where
    ``container`` is: a frame without a time stamp is timed by its count at ``fps``."""
    along = lambda: [audio_stream(container)]  # noqa: E731
    for index, frame in enumerate(decode_stream(container, stream, path, warn, "video", along)):
        yield (float(frame.time) - origin if frame.time is not None else index / fps), frame


def _resampled(
    path: Path, fps: float | None, start: float, duration: float | None, size, gray: bool,
    warn: Warn | None = None, ended: Callable[[float], None] | None = None,
) -> Iterator[tuple[float, np.ndarray, float]]:
    if fps is not None and fps <= 0:
        raise ValueError("fps must be positive")
    next_t = start
    for t, frame, src_fps in decoded_frames(path, start, duration, warn, ended):
        if fps is None:
            yield t, _convert(frame, size, gray), src_fps
            continue
        if t + 1e-6 < next_t:
            continue
        image = _convert(frame, size, gray)
        # a source slower than the target rate repeats frames; a faster one skips them
        while next_t <= t + 1e-6:
            yield next_t, image, src_fps
            next_t += 1.0 / fps


def iter_frames(
    path: str | Path,
    *,
    fps: float | None = None,
    start: float = 0.0,
    duration: float | None = None,
    size: tuple[int, int] | None = None,
    gray: bool = False,
    warn: Warn | None = None,
    ended: Callable[[float], None] | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(time, image)`` for the frames of ``path`` (streaming, bounded memory).

    ``fps``: resample to this rate (each output time takes the nearest-earlier source
    frame, so a source slower than ``fps`` gives the same image, the same array, at several
    times; ``None`` keeps every frame). ``size``: (width, height) to resize to. ``gray``:
    one channel instead of RGB. Raises MissingStreamError on audio-only files. ``warn``
    receives what a damaged file made the decoder skip (default: logged); ``ended``, where the
    video ends when it was read to its end (see :func:`decoded_frames`: the frames after the
    last one yielded at ``fps`` count too).
    """
    for t, image, _ in _resampled(Path(path), fps, start, duration, size, gray, warn, ended):
        yield t, image


def read_frames(
    path: str | Path,
    *,
    fps: float | None = None,
    start: float = 0.0,
    duration: float | None = None,
    size: tuple[int, int] | None = None,
    gray: bool = False,
    max_frames: int | None = None,
) -> Frames:
    """All frames (or frames at ``fps``) of a segment, as one :class:`Frames` (see :func:`iter_frames`)."""
    path = Path(path)
    times, images = [], []
    source_fps = 0.0
    for t, image, source_fps in _resampled(path, fps, start, duration, size, gray):  # noqa: B007
        times.append(t)
        images.append(image)
        if max_frames is not None and len(images) >= max_frames:
            break
    if not images:
        raise MediaError("holds no video frames" + (f" after {start:.2f} s" if start else ""), path)
    return Frames(np.stack(images), np.asarray(times, dtype=np.float64), source_fps)


def sample_frames(
    path: str | Path,
    n: int,
    *,
    start: float = 0.0,
    duration: float | None = None,
    size: tuple[int, int] | None = None,
    gray: bool = False,
    warn: Warn | None = None,
) -> Frames:
    """``n`` frames spread uniformly over a window (the whole file by default).

    Target times are the centres of ``n`` equal parts of the window; each takes the decoded
    frame nearest to it. A window with fewer than ``n`` frames repeats frames (temporal
    nearest-neighbour resampling), as 3D-CNN pipelines do for short clips. What the decoder
    skipped goes to ``warn`` (default: logged; see :mod:`avemo.media.decode`).
    """
    path = Path(path)
    if n <= 0:
        raise ValueError("n must be positive")
    if duration is None:
        from avemo.media.probe import probe

        info = probe(path)
        if info.video is None:
            raise MissingStreamError("has no video stream (an audio-only file)", path, stream="video")
        total = info.video.duration or info.duration
        if not total:
            # unknown length: decode all frame times first
            total = max(t for t, _, _ in decoded_frames(path, start, None, warn)) + 1e-3 - start
        duration = max(total - start, 1e-3)
    targets = start + (np.arange(n) + 0.5) * (duration / n)
    chosen: list[np.ndarray | None] = [None] * n
    chosen_dt = np.full(n, np.inf)
    chosen_t = np.zeros(n)
    fps = 0.0
    for t, frame, fps in decoded_frames(path, start, duration, warn):  # noqa: B007 (fps is read after the loop)
        dt = np.abs(targets - t)
        better = dt < chosen_dt
        if not better.any():
            if t > targets[-1]:
                break
            continue
        image = _convert(frame, size, gray)
        for i in np.nonzero(better)[0]:
            chosen[i] = image
            chosen_dt[i] = dt[i]
            chosen_t[i] = t
    if chosen[0] is None:
        raise MediaError("holds no video frames in the requested window", path)
    return Frames(np.stack(chosen), chosen_t, fps)
