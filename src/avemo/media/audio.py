"""Decode the audio track of any media file to mono float32 at a target rate.

Decoding is PyAV (FFmpeg); channels are averaged to mono; the sample rate is converted by
libsoxr's streaming high-quality resampler (a proper anti-aliasing filter, not decimation).
Everything is streamed: :func:`iter_audio` yields fixed-size blocks and never holds the
whole track, :func:`load_audio` concatenates them for short files.
"""

from __future__ import annotations

import math
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

    ``start``/``duration`` (seconds from the container's start) select a segment; decoding
    seeks close to ``start`` and the samples equal the same slice of a full decode.
    Raises MissingStreamError when the file has no audio track, and MediaError (at the end)
    when the stream stops well before the duration its header declares (a truncated file).
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
        # times count from the container's start (an mp3's first timestamp is its encoder delay)
        origin = container.start_time / av.time_base if container.start_time is not None else 0.0
        rate = stream.rate or stream.codec_context.sample_rate or 0
        if start > 1.0 and stream.time_base and rate and float(stream.time_base) <= 1.0 / rate:
            # Seek only where timestamps resolve single samples (not FLV / Matroska's 1 ms):
            # the position of the first decoded sample is taken from its timestamp.
            target = int((start - 1.0 + origin) / float(stream.time_base))
            container.seek(max(0, target), stream=stream, backward=True)
        resampler: soxr.ResampleStream | None = None
        in_rate = None
        skip = 0  # input samples still to drop to reach the output grid
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
            if position is None:
                in_rate = frame.sample_rate or stream.rate
                t0 = float(frame.time) - origin if frame.time is not None else 0.0
                first_in = int(round(t0 * in_rate))
                if in_rate != sr:
                    # Start resampling on an input sample that lies on the output grid, so that
                    # output sample m is at exactly m / sr: a decode that seeks (start > 0) then
                    # yields the same samples as a decode from the beginning.
                    skip = (-first_in) % (in_rate // math.gcd(in_rate, sr))
                    first_in += skip
                    resampler = soxr.ResampleStream(in_rate, sr, 1, dtype="float32", quality="HQ")
                position = int(round(first_in * sr / in_rate))
            elif frame.sample_rate and frame.sample_rate != in_rate:
                raise MediaError(f"audio sample rate changes mid-stream ({in_rate} -> {frame.sample_rate} Hz)", path)
            if skip:
                dropped = min(skip, mono.shape[0])
                mono, skip = mono[dropped:], skip - dropped
                if mono.shape[0] == 0:
                    continue
            out = resampler.resample_chunk(mono) if resampler is not None else mono
            yield from emit(out)
            if done:
                break
        if resampler is not None and not done:
            yield from emit(resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
        if not done and position is not None:
            _check_complete(stream, origin, position / sr, path)
        if pending_n:
            yield np.concatenate(pending)


def _check_complete(stream, origin: float, decoded_end: float, path: Path) -> None:
    """Raise MediaError if the stream ended well before the duration its header declares (a truncated file).

    Only containers that store the duration in their header can tell (FLAC, MP4, VBR MP3
    with a Xing header...); a truncated WAV or CBR MP3 simply reads as a shorter file.
    """
    if not stream.duration or not stream.time_base:
        return
    declared_end = float((stream.duration + (stream.start_time or 0)) * stream.time_base) - origin
    if declared_end - decoded_end > max(0.2, 0.02 * declared_end):
        raise MediaError(
            f"truncated or corrupt: the header declares {declared_end:.2f} s of audio, "
            f"only {decoded_end:.2f} s could be decoded",
            path,
        )


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
