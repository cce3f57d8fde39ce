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
from fractions import Fraction
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
#: a step on by more than this (seconds) in such a container is where a joined recording begins too
#: (FFmpeg's ``-dts_delta_threshold``); a shorter one is a pause, which keeps its times
FORWARD_SECONDS = 10.0
#: the containers (FFmpeg's names) that state no length: FFmpeg's is the span from their first time
#: stamp to their last, which recordings joined in one file make anything (:class:`Continuity`)
SPAN_TIMED = ("mpegts",)


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


def decode_stream(container, stream, path: str | Path, warn: Warn | None, what: str,
                  along: Callable[[], list] | None = None) -> Iterator:
    """Yield the decoded frames of ``stream`` (``what``: "audio" or "video", for messages). ``along``
    gives the other streams the file is read with (their packets are demuxed, not decoded, where
    :class:`Continuity` applies, so that every reader moves a joined recording by the same offset).

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
        read = [stream, *(s for s in along() if s is not None)] if along and restarts(container) else stream
        for packet in demuxed(container, read, stop):
            if packet.stream.index != stream.index:
                continue
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
    ``stop(exc)`` is told why, and the packets end (unless ``stop`` raises). A packet whose time stamp
    jumps comes after its stream's next one is read (which tells a joined recording from a damaged
    time stamp)."""
    continuous = Continuity(container)
    packets = container.demux(streams)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except (av.error.FFmpegError, EOFError) as exc:
            stop(exc)
            break
        yield from continuous.push(packet)
    yield from continuous.flush()


def joined_length(container: str, stated: float, read: float) -> bool:
    """Whether the length ``read`` from the packets of a ``container`` (FFmpeg's name) replaces the
    ``stated`` one: recordings joined in it (:class:`Continuity`) make it longer, or, in a container
    whose stated length is the span of its time stamps (:data:`SPAN_TIMED`), shorter (a recording
    whose clock is later: a day, where FFmpeg took its restart for the 33-bit clock's wrap)."""
    return read > stated + RESTART_SECONDS or (container in SPAN_TIMED and read < stated - RESTART_SECONDS)


def restarts(container) -> bool:
    """Whether ``container``'s format may restart its time stamps (FFmpeg's ``AVFMT_TS_DISCONT``)."""
    return bool(int(container.format.flags) & av.format.Flags.ts_discont.value)


class Continuity:
    """Time stamps made continuous where a container may restart them (FFmpeg's ``AVFMT_TS_DISCONT``:
    MPEG-TS and FLV, whose recordings are often joined end to end: ``cat a.ts b.ts``, a camcorder's
    .MTS segments copied into one file). A packet whose decoding time stamp steps back by more than
    :data:`RESTART_SECONDS`, or on by more than :data:`FORWARD_SECONDS` (a joined recording whose clock
    is later, or one FFmpeg's MPEG-TS demuxer moved 2^33 ticks on as if its clock had wrapped), begins a
    joined recording when the stream's next packet agrees: one offset, for all the streams fed (as
    FFmpeg's command-line tool keeps one per input file), moves it to where the file's packets so far
    end, so that the audio and video of each recording stay in step. When the next packet falls back in
    line instead, the jump was one damaged time stamp: that packet alone is put where its stream goes
    on, and the offset is kept. A step forward of up to :data:`FORWARD_SECONDS` that the next packet
    agrees with is a pause (lost packets): it keeps its times."""

    def __init__(self, container):
        self.active = restarts(container)
        self.offset = Fraction(0)  # seconds added to the time stamps of every stream
        self.last: dict[int, tuple[int, int]] = {}  # stream index -> (last decoding time stamp, end so far)
        self.ends: dict[int, Fraction] = {}  # stream index -> where its packets so far end, in seconds
        self.held: dict[int, object] = {}  # stream index -> a packet that jumped, until the next one says why

    def push(self, packet) -> list:
        """The packets ready to go on after ``packet`` (none while it waits for its stream's next)."""
        if not self.active or packet.dts is None or not packet.time_base:
            if self.active and packet.pts is not None and packet.time_base:
                packet.pts += round(self.offset / packet.time_base)
            return [packet]
        ready = []
        held = self.held.pop(packet.stream.index, None)
        if held is not None:
            ready.append(self._settle(held, packet))
        if _jump(self._step(packet)):
            self.held[packet.stream.index] = packet
        else:
            ready.append(self._placed(packet, 0))
        return ready

    def flush(self) -> list:
        """The packets still held when the file ends (each begins what follows it)."""
        ready = [self._settle(packet, None) for packet in self.held.values()]
        self.held.clear()
        return ready

    def _step(self, packet) -> float:
        """Seconds from the stream's last decoding time stamp to ``packet``'s, offset applied (0: the first)."""
        last = self.last.get(packet.stream.index)
        moved = packet.dts + round(self.offset / packet.time_base)
        return 0.0 if last is None else float((moved - last[0]) * packet.time_base)

    def _settle(self, held, after):
        """``held`` placed by what ``after`` (its stream's next packet; None at the end) says of its jump."""
        step = self._step(held)
        if not _jump(step):  # the offset changed meanwhile (another stream began the recording)
            return self._placed(held, 0)
        if after is not None and not _jump(self._step(after)):  # one damaged time stamp
            end = self.last[held.stream.index][1]
            return self._placed(held, end - held.dts - round(self.offset / held.time_base))
        if step < 0 or step > FORWARD_SECONDS:  # a joined recording begins
            self.offset = max(self.ends.values()) - held.dts * held.time_base
        return self._placed(held, 0)

    def _placed(self, packet, extra: int):
        """``packet`` with the offset (and ``extra`` ticks) added to its time stamps, noted as its stream's last."""
        index, base = packet.stream.index, packet.time_base
        last = self.last.get(index)
        shift = round(self.offset / base) + extra
        packet.dts += shift
        if packet.pts is not None:
            packet.pts += shift
        step = packet.duration or (packet.dts - last[0] if last is not None else 0)
        end = (packet.pts if packet.pts is not None else packet.dts) + max(step, 0)
        end = end if last is None else max(end, last[1])
        self.last[index] = (packet.dts, end)
        self.ends[index] = end * base
        return packet


def _jump(step: float) -> bool:
    """Whether a step between decoding time stamps (seconds) is not the stream going on."""
    return step < -RESTART_SECONDS or step > RESTART_SECONDS


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
    stored, or where FFmpeg's length is only the span of the time stamps (:data:`SPAN_TIMED`). For
    a WAV file, the length its RIFF header gives (FFmpeg reports the length of what is there). The
    container's length is that of its longest stream: an audio track shorter than the video of a
    Matroska or WebM file was called truncated, and the timeline cut to what it held."""
    if container.format.name == "wav":
        return wav_declared_seconds(container.name)
    if container.format.name in SPAN_TIMED:
        return None
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
