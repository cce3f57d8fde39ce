"""Cut a time span out of a video, crop it, and give it another file's audio: one new media file.

:func:`cut_clip` makes a clip of its own from a long recording: the frames of ``video`` with
``start <= time < end`` (decoded with :func:`~avemo.media.video.decoded_frames`, the decoder under
every frame reader of the toolkit), optionally cropped to a region given as fractions of the frame (the
left half of a split-screen recording is ``(0, 0, 0.5, 1)``), re-encoded, and muxed with the audio
stream of ``audio`` copied packet for packet (no re-encoding: a PCM wav stays bit-exact). The
output is Matroska (``.mkv``: it holds H.264 or MPEG-4 video next to PCM audio); it is written to a
temporary name in the destination folder and renamed when complete, so a failure or an
interruption leaves nothing half-written.

The video encoder is the first of :data:`VIDEO_ENCODERS` that this FFmpeg build has (PyAV's wheels
carry libx264; FFmpeg's own ``mpeg4`` is always there), or the one asked for.

A span that starts or ends outside the video is an error (:class:`~avemo.errors.MediaError` naming
the video), not a shorter clip: the span's end may exceed the last decoded frame's end by at most
:data:`END_TOLERANCE` seconds (rounding of the span's times, a last frame that is cut short).
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from avemo.errors import AvemoError, ConfigError, MediaError, MissingStreamError
from avemo.media.decode import Warn, error_reason
from avemo.media.probe import audio_stream, open_media, probe
from avemo.media.video import decoded_frames

#: video encoders in order of preference (``"auto"`` takes the first this FFmpeg build has)
VIDEO_ENCODERS = ("libx264", "mpeg4")
#: seconds a span's end may lie after the end of the video's last frame
END_TOLERANCE = 0.1
#: the encoders' settings: visually lossless H.264; MPEG-4 at a bit rate that keeps faces sharp at 480p
_ENCODER_OPTIONS = {"libx264": {"preset": "veryfast", "crf": "18"}}
_MPEG4_BIT_RATE = 4_000_000


@functools.cache
def available_encoder(name: str) -> bool:
    """Whether this FFmpeg build can encode video with ``name``."""
    try:
        av.codec.Codec(name, "w")
    except (av.error.FFmpegError, ValueError):  # UnknownCodecError is a ValueError in some PyAV versions
        return False
    return True


def video_encoder(name: str = "auto") -> str:
    """The encoder to use: ``name`` if this FFmpeg build has it, the first available of
    :data:`VIDEO_ENCODERS` for ``"auto"``; ConfigError otherwise."""
    if name == "auto":
        for candidate in VIDEO_ENCODERS:
            if available_encoder(candidate):
                return candidate
        raise ConfigError(f"this FFmpeg build has none of the video encoders {', '.join(VIDEO_ENCODERS)}")
    if name not in VIDEO_ENCODERS:
        raise ConfigError(f"video encoder {name!r} is not one of auto, {', '.join(VIDEO_ENCODERS)}")
    if not available_encoder(name):
        raise ConfigError(f"this FFmpeg build has no {name} encoder (try auto)")
    return name


@dataclass(frozen=True)
class Cut:
    """What :func:`cut_clip` wrote: ``frames`` frames of ``fps``, the source times of the first and
    last one, the pixel box ``crop`` (x, y, width, height) taken from the source frame, the encoder."""

    path: Path
    frames: int
    first_time: float
    last_time: float
    fps: float
    crop: tuple[int, int, int, int]
    codec: str


def crop_box(width: int, height: int, region: tuple[float, float, float, float] | None) -> tuple[int, int, int, int]:
    """The pixel box (x, y, w, h) of ``region`` (left, top, right, bottom as fractions of the frame;
    None: the whole frame), with even corners, width and height (what 4:2:0 video needs)."""
    left, top, right, bottom = region if region is not None else (0.0, 0.0, 1.0, 1.0)
    if not (0.0 <= left < right <= 1.0 and 0.0 <= top < bottom <= 1.0):
        raise ConfigError(f"crop region {region} is not (left, top, right, bottom) fractions with left < right, top < bottom")
    x0, y0 = int(round(left * width)) // 2 * 2, int(round(top * height)) // 2 * 2
    w, h = int(round(right * width)) - x0, int(round(bottom * height)) - y0
    w, h = w - w % 2, h - h % 2
    if w < 2 or h < 2:
        raise ConfigError(f"crop region {region} of a {width}x{height} frame is empty")
    return x0, y0, w, h


def cut_clip(
    video: str | Path,
    out: str | Path,
    *,
    start: float,
    end: float,
    audio: str | Path | None = None,
    region: tuple[float, float, float, float] | None = None,
    codec: str = "auto",
    warn: Warn | None = None,
) -> Cut:
    """Write the frames of ``video`` in [``start``, ``end``) seconds, cropped to ``region``, with the
    audio stream of ``audio`` (copied, not re-encoded) to ``out`` (Matroska); see the module doc.

    Raises MediaError (naming the video, the audio file or ``out``) when a file cannot be read or
    written, the span lies outside the video, or ``audio`` has no audio stream; ConfigError for a bad
    span, region or encoder. Nothing is left at ``out`` or beside it then."""
    video, out = Path(video), Path(out)
    if not (0.0 <= start < end):
        raise ConfigError(f"span [{start} - {end}] is not 0 <= start < end")
    encoder = video_encoder(codec)
    info = probe(video)
    if info.video is None:
        raise MissingStreamError("has no video stream (an audio-only file)", video, stream="video")
    length = info.video.duration or info.duration
    if length is not None and end > length + END_TOLERANCE:
        raise MediaError(f"the span [{start:.2f} - {end:.2f}] s ends after the video ({length:.2f} s)", video)
    box = crop_box(info.video.width, info.video.height, region)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as stack:
            container = stack.enter_context(av.open(str(tmp), mode="w", format="matroska"))
            container.metadata["comment"] = (f"avemo cut of {video.name} [{start:.4f} - {end:.4f}] s, "
                                             f"crop x={box[0]} y={box[1]} {box[2]}x{box[3]}")
            stream = _video_stream(container, encoder, info.video.fps, box)
            sound = _audio_source(stack, container, Path(audio)) if audio is not None else None  # every stream
            first, last, frames = _encode_frames(container, stream, video, start, end, box, warn)  # before muxing
            if sound is not None:
                _copy_audio(container, *sound)
        _check_span(video, start, end, first, last, frames, info.video.fps)
        os.replace(tmp, out)
    except AvemoError:
        raise
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(f"cannot write the cut ({error_reason(exc)})", out) from None
    finally:
        tmp.unlink(missing_ok=True)
    return Cut(out, frames, first, last, info.video.fps, box, encoder)


def _video_stream(container, encoder: str, fps: float, box: tuple[int, int, int, int]):
    rate = Fraction(fps).limit_denominator(1001)
    stream = container.add_stream(encoder, rate=rate)
    stream.width, stream.height = box[2], box[3]
    stream.pix_fmt = "yuv420p"
    stream.codec_context.time_base = 1 / rate
    if encoder in _ENCODER_OPTIONS:
        stream.options = dict(_ENCODER_OPTIONS[encoder])
    if encoder == "mpeg4":
        stream.bit_rate = _MPEG4_BIT_RATE
    return stream


def _cropped(frame: av.VideoFrame, box: tuple[int, int, int, int]) -> av.VideoFrame:
    """``frame`` cropped to ``box``; a 4:2:0 frame (what MPEG-4 and H.264 decode to) is cut plane by
    plane, without a round trip through RGB (the box's corners are even)."""
    x, y, w, h = box
    if frame.format.name != "yuv420p" or frame.width % 2 or frame.height % 2:
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(frame.to_ndarray(format="rgb24")[y:y + h, x:x + w]),
                                          format="rgb24")
    planes = frame.to_ndarray(format="yuv420p")  # (1.5 H, W): Y, then U and V with two rows per line
    height, width = frame.height, frame.width
    luma = planes[:height, x:x + w]
    chroma = [planes[height + k * height // 4:height + (k + 1) * height // 4].reshape(height // 2, width // 2)
              [y // 2:(y + h) // 2, x // 2:(x + w) // 2].reshape(h // 4, w) for k in (0, 1)]
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(np.concatenate([luma[y:y + h], *chroma])), format="yuv420p")


def _encode_frames(container, stream, video: Path, start: float, end: float, box, warn: Warn | None):
    """Encode the cropped frames of [start, end); (first time, last time, count)."""
    rate = float(stream.codec_context.framerate or stream.average_rate)
    first = last = float("nan")
    frames, previous = 0, -1
    for t, source, _ in decoded_frames(video, start, end - start, warn):
        frame = _cropped(source, box)
        previous = frame.pts = max(previous + 1, int(round((t - start) * rate)))  # keeps the source's timing
        for packet in stream.encode(frame):
            container.mux(packet)
        first = t if frames == 0 else first
        last, frames = t, frames + 1
    for packet in stream.encode():
        container.mux(packet)
    return first, last, frames


def _audio_source(stack: contextlib.ExitStack, container, audio: Path):
    """Open ``audio`` (closed with ``stack``) and add a stream like its audio stream to ``container``:
    (source container, its stream, the new stream)."""
    source = stack.enter_context(open_media(audio))
    stream = audio_stream(source)
    if stream is None:
        raise MissingStreamError("has no audio stream", audio, stream="audio")
    return source, stream, container.add_stream_from_template(stream)


def _copy_audio(container, source, stream, target) -> None:
    """Mux the packets of ``stream`` (of ``source``) into ``container`` as ``target``'s."""
    for packet in source.demux(stream):
        if packet.dts is None:  # the demuxer's flush packet
            continue
        packet.stream = target
        container.mux(packet)


def _check_span(video: Path, start: float, end: float, first: float, last: float, frames: int, fps: float) -> None:
    if frames == 0:
        raise MediaError(f"no video frame in the span [{start:.2f} - {end:.2f}] s", video)
    if end > last + 1.0 / fps + END_TOLERANCE:
        raise MediaError(f"the span [{start:.2f} - {end:.2f}] s ends after the video's last frame "
                         f"({last + 1.0 / fps:.2f} s)", video)
