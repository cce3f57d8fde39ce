"""Decode one stream packet by packet, going on past the packets that cannot be decoded.

A file with a damaged middle (a bad sector, an interrupted copy, a broken upload) still holds
mostly good packets; FFmpeg's decoders refuse the bad ones with ``InvalidDataError``.
:func:`decode_stream` skips those, stops where the demuxer itself cannot read on, and says what
it skipped through a ``warn`` callback, so the caller decodes what can be decoded and the user is
told. Only a stream in which nothing at all decodes is an error. :func:`check_complete` warns
when a stream ends well before the length its header declares (a truncated file).

``warn`` receives one line without the file name (the caller knows the file); without one,
the line is logged on the ``avemo.media`` logger, file name first, or, within
:func:`collecting_warnings`, collected (batch extraction stores the lines with the features).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path

import av
import numpy as np

from avemo.errors import MediaError

log = logging.getLogger("avemo.media")

#: receives a one-line warning about a file that was only partly decodable
Warn = Callable[[str], None]
#: how a warning about a stream that ends before its declared length begins
TRUNCATED = "truncated or damaged"
#: a step back of more than this (seconds) in a stream's decoding time stamps, in a container that may
#: restart them, is where a recording joined after the one before begins (:class:`Continuity`)
RESTART_SECONDS = 0.5


#: the (file, line) list of the innermost :func:`collecting_warnings` of this thread, or None
_COLLECTED: ContextVar[list[tuple[str, str]] | None] = ContextVar("avemo_decoder_warnings", default=None)


def warner(path: str | Path, warn: Warn | None) -> Warn:
    """``warn`` itself, or a function that logs the line with the file name (within
    :func:`collecting_warnings`: collects it)."""
    if warn is not None:
        return warn

    def report(message: str) -> None:
        collected = _COLLECTED.get()
        if collected is None:
            log.warning("%s: %s", path, message)
        else:
            collected.append((str(path), message))

    return report


@contextlib.contextmanager
def collecting_warnings(path: str | Path) -> Iterator[list[str]]:
    """Within the block, the lines the decoder would log (it was given no ``warn``) go into the list
    yielded instead (filled when the block ends), for whatever code the block runs (an extractor that
    decodes the file itself): a line about ``path`` as it is, one about another file with that file's
    name first."""
    collected: list[tuple[str, str]] = []
    lines: list[str] = []
    token = _COLLECTED.set(collected)
    try:
        yield lines
    finally:
        _COLLECTED.reset(token)
        lines += [line if file == str(path) else f"{file}: {line}" for file, line in collected]


def decode_stream(container, stream, path: str | Path, warn: Warn | None, what: str) -> Iterator:
    """Yield the decoded frames of ``stream`` (``what``: "audio" or "video", for messages).

    Undecodable packets are skipped and counted; a demuxer error after good frames ends the
    stream early. Both are reported through ``warn`` when the generator ends (also when the
    caller stops early). MediaError if not one frame decodes and packets were refused.
    """
    report = warner(path, warn)
    frames = bad = 0
    last_time = 0.0
    stopped = None

    def stop(exc: BaseException) -> None:
        nonlocal stopped
        if frames == 0:
            raise MediaError(error_reason(exc), path) from None
        stopped = error_reason(exc)

    try:
        for packet in demuxed(container, stream, stop):
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:
                bad += 1
                continue
            for frame in decoded:
                frames += 1
                if frame.time is not None:
                    last_time = float(frame.time)
                yield frame
    finally:
        if bad and frames:
            report(f"{bad} {what} packet{'s' if bad > 1 else ''} could not be decoded and "
                   f"{'were' if bad > 1 else 'was'} skipped (a damaged file?)")
        if stopped:
            report(f"the {what} stream could not be read past {last_time:.2f} s ({stopped})")
    if frames == 0 and bad:
        raise MediaError(f"none of its {what} packets can be decoded ({bad} refused by the decoder)", path)


def demuxed(container, streams, stop: Callable[[BaseException], None]) -> Iterator:
    """The packets of ``streams`` (one or a list) of ``container``, their time stamps continuous
    (:class:`Continuity`), until the demuxer cannot read on (a file cut short, a damaged index): then
    ``stop(exc)`` is told why, and the packets end (unless ``stop`` raises)."""
    packets = container.demux(streams)
    continuous = Continuity(container)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except (av.error.FFmpegError, EOFError) as exc:
            stop(exc)
            return
        yield continuous(packet)


class Continuity:
    """Time stamps made continuous where a container may restart them (FFmpeg's ``AVFMT_TS_DISCONT``:
    MPEG-TS and FLV, whose recordings are often joined end to end: ``cat a.ts b.ts``, a camcorder's
    .MTS segments copied into one file). A packet whose decoding time stamp steps back by more than
    :data:`RESTART_SECONDS` begins a joined recording: it and the packets after it are moved to where the
    stream's packets so far end, as FFmpeg's command-line tool does. Without it, a second recording's
    frames were dropped as late, its sound put right after the first's, and the file had the first's length."""

    def __init__(self, container):
        self.active = bool(int(container.format.flags) & av.format.Flags.ts_discont.value)
        self.offset: dict[int, int] = {}  # stream index -> ticks added to its time stamps
        self.last: dict[int, tuple[int, int]] = {}  # stream index -> (last decoding time stamp, end so far)

    def __call__(self, packet):
        if not self.active or packet.dts is None or not packet.time_base:
            return packet
        index = packet.stream.index
        offset = self.offset.get(index, 0)
        last = self.last.get(index)
        if last is not None and float((last[0] - packet.dts - offset) * packet.time_base) > RESTART_SECONDS:
            offset = last[1] - packet.dts
            self.offset[index] = offset
        packet.dts += offset
        if packet.pts is not None:
            packet.pts += offset
        step = packet.duration or (packet.dts - last[0] if last is not None else 0)
        end = (packet.pts if packet.pts is not None else packet.dts) + max(step, 0)
        self.last[index] = (packet.dts, end if last is None else max(end, last[1]))
        return packet


def frame_to_float(frame: av.AudioFrame) -> np.ndarray:
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


def declared_end(container, stream, origin: float) -> float | None:
    """Where the header says ``stream`` ends, in seconds from the container's start: the stream's
    own length, else its Matroska ``DURATION`` tag, else the container's length; None when none is
    stored. For a WAV file, the length its RIFF header gives (FFmpeg reports the length of what is
    there). The container's length is that of its longest stream: an audio track shorter than the
    video of a Matroska or WebM file was called truncated, and the timeline cut to what it held."""
    if container.format.name == "wav":
        return wav_declared_seconds(container.name)
    if stream.duration and stream.time_base:
        return float((stream.duration + (stream.start_time or 0)) * stream.time_base) - origin
    tagged = matroska_duration_tag(stream)
    if tagged is not None:
        return tagged - origin
    if container.duration:
        return container.duration / av.time_base
    return None


def presented_end(container, stream, origin: float) -> float | None:
    """Where ``stream`` is presented to end, in seconds from the container's start, when the container
    says it to the sample: an MP4 / MOV / M4A track's start and duration, which its edit list sets to
    leave out the AAC encoder's padding after the last sample (up to one frame of 1024 samples, which the
    decoder gives back as audio: 8-48 ms past the video and the reported duration). None for the other
    containers: Ogg, WebM and Matroska carry the Opus padding as packet side data, which FFmpeg's decoder
    applies itself; FLAC and WAV hold no padding; MP3 in FLV or alone states no end to the sample (the
    MPEG-4 Part 12 specification, ISO/IEC 14496-12, "Edit List Box", section 8.6.6)."""
    if "mov" not in container.format.name.split(",") or not stream.duration or not stream.time_base:
        return None
    return float((stream.duration + (stream.start_time or 0)) * stream.time_base) - origin


def matroska_duration_tag(stream) -> float | None:
    """A Matroska track's ``DURATION`` tag (``HH:MM:SS.nnnnnnnnn``), in seconds: where FFmpeg's muxer
    saw the track end (mkvmerge writes the track's length, which is no later); None without one."""
    value = stream.metadata.get("DURATION") if stream.metadata else None
    try:
        hours, minutes, seconds = value.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except (AttributeError, ValueError):  # no tag, or not a time
        return None


#: a WAV ``data`` chunk size that says "unknown" (a recorder that never went back to write it)
_WAV_UNKNOWN_SIZES = (0, 0xFFFFFFFF)


def wav_declared_seconds(path: str) -> float | None:
    """The length a WAV file's RIFF header declares: its ``data`` chunk's size over the ``fmt `` chunk's
    byte rate; None when the file cannot be read as RIFF/WAVE, or the header leaves the size open."""
    try:
        with open(path, "rb") as fh:
            if fh.read(4) != b"RIFF" or not fh.read(4) or fh.read(4) != b"WAVE":
                return None
            byte_rate = 0
            while len(head := fh.read(8)) == 8:
                kind, size = head[:4], int.from_bytes(head[4:], "little")
                if kind == b"fmt ":
                    fmt = fh.read(size + size % 2)
                    byte_rate = int.from_bytes(fmt[8:12], "little") if len(fmt) >= 12 else 0
                elif kind == b"data":
                    return size / byte_rate if byte_rate and size not in _WAV_UNKNOWN_SIZES else None
                else:
                    fh.seek(size + size % 2, 1)  # chunks are padded to an even size
    except (OSError, TypeError, ValueError):  # not a file on disk (a buffer), unreadable
        return None
    return None


def check_complete(declared: float | None, decoded_end: float, report: Warn, what: str) -> None:
    """Warn if a stream ended well before the ``declared`` end (a truncated file).

    Only containers that store the length in their header can tell (FLAC, MP4, Matroska, WAV, VBR
    MP3 with a Xing header...); a truncated CBR MP3 or Ogg file simply reads as a shorter file.
    """
    if declared is not None and declared - decoded_end > max(0.2, 0.02 * declared):
        report(f"{TRUNCATED}: the header declares {declared:.2f} s of {what}, "
               f"only {decoded_end:.2f} s could be decoded")


def error_reason(exc: BaseException) -> str:
    """A one-line reason for an exception raised while opening or decoding a file."""
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a media file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, av.error.InvalidDataError):
        return "not a media file, or a corrupt container (FFmpeg: invalid data found when processing input)"
    if isinstance(exc, av.error.FFmpegError):
        msg = getattr(exc, "strerror", None) or str(exc)
        return f"cannot decode ({msg})"
    return f"cannot read ({type(exc).__name__}: {exc})"
