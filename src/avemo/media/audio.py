"""Decode the audio track of any media file to mono float32 at a target rate.

Decoding is PyAV (FFmpeg); channels are averaged to mono; the sample rate is converted by
libsoxr's streaming high-quality resampler (a proper anti-aliasing filter, not decimation).
Everything is streamed: :func:`iter_audio` yields fixed-size blocks and never holds the
whole track, :func:`load_audio` concatenates them for short files.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import soxr

from avemo.errors import MediaError, MissingStreamError
from avemo.media.probe import audio_stream, open_media

DEFAULT_SAMPLE_RATE = 16000


def _frame_to_float(frame: av.AudioFrame) -> np.ndarray:
    """(samples, channels) float32 of a decoded frame, whatever its sample format."""
    arr = frame.to_ndarray()
    fmt = frame.format
    channels = len(frame.layout.channels) or 1
    if fmt.is_planar:
        arr = arr.reshape(channels, -1).T
    else:
        arr = arr.reshape(-1, channels)
    name = fmt.name.rstrip("p")
    if name in ("flt", "dbl"):
        return arr.astype(np.float32, copy=False)
    if name == "s16":
        return arr.astype(np.float32) / 32768.0
    if name == "s32":
        return arr.astype(np.float32) / 2147483648.0
    if name == "u8":
        return (arr.astype(np.float32) - 128.0) / 128.0
    if name == "s64":
        return (arr.astype(np.float64) / 9223372036854775808.0).astype(np.float32)
    raise MediaError(f"unsupported audio sample format {fmt.name}")


def iter_audio(
    path: str | Path,
    sr: int = DEFAULT_SAMPLE_RATE,
    *,
    start: float = 0.0,
    duration: float | None = None,
    block_seconds: float = 10.0,
) -> Iterator[np.ndarray]:
    """Yield the mono audio of ``path`` at ``sr`` Hz in blocks of ``block_seconds`` (last one shorter).

    ``start``/``duration`` (seconds) select a segment; decoding seeks close to ``start``.
    Raises MissingStreamError when the file has no audio track.
    """
    path = Path(path)
    if sr <= 0:
        raise ValueError("sample rate must be positive")
    block = max(1, int(round(block_seconds * sr)))
    first = int(round(start * sr))
    last = None if duration is None else first + int(round(duration * sr))
    with open_media(path) as container:
        stream = audio_stream(container)
        if stream is None:
            raise MissingStreamError("has no audio track", path, stream="audio")
        stream.thread_type = "AUTO"
        if start > 0:
            container.seek(max(0, int((start - 1.0) / float(stream.time_base))), stream=stream, backward=True)
        resampler: soxr.ResampleStream | None = None
        in_rate = None
        position = None  # index (at sr) of the next output sample
        pending: list[np.ndarray] = []
        pending_n = 0
        done = False

        def emit(chunk: np.ndarray) -> Iterator[np.ndarray]:
            nonlocal position, pending_n, done
            if chunk.size == 0:
                return
            lo, hi = position, position + chunk.shape[0]
            position = hi
            a = max(lo, first)
            b = hi if last is None else min(hi, last)
            if b > a:
                pending.append(chunk[a - lo : b - lo])
                pending_n += b - a
            if last is not None and hi >= last:
                done = True
            while pending_n >= block:
                buf = np.concatenate(pending)
                yield buf[:block]
                rest = buf[block:]
                pending.clear()
                pending_n = rest.shape[0]
                if pending_n:
                    pending.append(rest)

        for frame in container.decode(stream):
            samples = _frame_to_float(frame)
            if samples.shape[0] == 0:
                continue
            mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
            mono = np.ascontiguousarray(mono, dtype=np.float32)
            if resampler is None:
                in_rate = frame.sample_rate or stream.rate
                t0 = float(frame.time) if frame.time is not None else 0.0
                position = int(round(t0 * sr))
                if in_rate != sr:
                    resampler = soxr.ResampleStream(in_rate, sr, 1, dtype="float32", quality="HQ")
            elif frame.sample_rate and frame.sample_rate != in_rate:
                raise MediaError(f"audio sample rate changes mid-stream ({in_rate} -> {frame.sample_rate} Hz)", path)
            out = resampler.resample_chunk(mono) if resampler is not None else mono
            yield from emit(out)
            if done:
                break
        if resampler is not None and not done:
            yield from emit(resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
        if pending_n:
            yield np.concatenate(pending)


def load_audio(
    path: str | Path,
    sr: int = DEFAULT_SAMPLE_RATE,
    *,
    start: float = 0.0,
    duration: float | None = None,
) -> np.ndarray:
    """The mono float32 audio of ``path`` at ``sr`` Hz (optionally a segment).

    Raises MissingStreamError if there is no audio track and MediaError if it holds no samples.
    """
    blocks = list(iter_audio(path, sr, start=start, duration=duration, block_seconds=60.0))
    if not blocks:
        if start > 0:
            raise MediaError(f"holds no audio after {start:.2f} s", path)
        raise MediaError("the audio track holds no samples", path)
    return np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
