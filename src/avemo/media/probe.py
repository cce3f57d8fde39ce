"""Open media files with PyAV and describe what they hold.

:func:`open_media` is the single place where files are opened and PyAV/FFmpeg errors become
one-line :class:`~avemo.errors.MediaError` messages; every decoder in this package opens files
through it. It opens a file only when its first bytes are those of a supported container, with
that container's demuxer forced and local files only (:mod:`avemo.media.sniff`): FFmpeg never
guesses, so a playlist or an ``ffconcat`` list named ``clip.mp4`` cannot make it read other files.

When a file holds several audio streams (a silent one and a commentary, two languages...),
:func:`audio_stream` picks the one that carries sound, preferring the default-flagged one
among those; :func:`probe` lists every stream and says which ones are used.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from avemo.errors import MediaError
from avemo.media.decode import (
    TRUNCATED,
    check_complete,
    declared_end,
    demuxed,
    error_reason,
    frame_to_float,
    joined_length,
)
from avemo.media.sniff import describe_supported, sniff_file

# the names phones and browsers give too: Android's .3gp video, Matroska audio (.mka), WebM audio (.weba);
# Windows Media (.wmv, .asf, .wma)
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv", ".3gp", ".ts", ".mts", ".m2ts",
                            ".wmv", ".asf"})
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".mka", ".weba",
                            ".wma"})
MEDIA_SUFFIXES = VIDEO_SUFFIXES | AUDIO_SUFFIXES
#: a stream whose loudest sample stays below this (-60 dBFS) carries no sound
SILENT_PEAK = 1e-3
#: seconds of each audio stream decoded to find the one that carries sound
SOUND_SCAN_SECONDS = 10.0


@dataclass(frozen=True)
class AudioStreamInfo:
    codec: str
    sample_rate: int
    channels: int
    duration: float | None


@dataclass(frozen=True)
class VideoStreamInfo:
    codec: str
    width: int
    height: int
    fps: float
    frames: int | None
    duration: float | None


@dataclass(frozen=True)
class StreamInfo:
    """One stream of a file, as ``avemo info`` lists it: ``used`` if the decoders read it."""

    index: int
    kind: str  # audio, video, subtitle, data, attachment
    codec: str
    language: str | None
    default: bool
    used: bool
    details: str  # e.g. "44100 Hz, 2 channels" or "640x480, 29.97 fps"


@dataclass(frozen=True)
class MediaInfo:
    """What a media file holds: the audio and video streams the decoders use, and every stream."""

    path: Path
    container: str
    size_bytes: int
    duration: float | None
    audio: AudioStreamInfo | None
    video: VideoStreamInfo | None
    streams: tuple[StreamInfo, ...] = ()

    @property
    def has_audio(self) -> bool:
        return self.audio is not None

    @property
    def has_video(self) -> bool:
        return self.video is not None


@contextlib.contextmanager
def open_media(path: str | Path) -> Iterator[av.container.InputContainer]:
    """Open ``path`` for decoding (see the module docstring); errors, also during decoding, become
    one-line MediaErrors."""
    path = Path(path)
    if not path.exists():
        raise MediaError("file not found", path)
    if path.is_dir():
        raise MediaError("is a directory, not a media file", path)
    try:
        if path.stat().st_size == 0:
            raise MediaError("file is empty (0 bytes)", path)
        kind = sniff_file(path)
    except OSError as exc:
        raise MediaError(error_reason(exc), path) from None
    if kind is None:
        raise MediaError(f"not a media file: its first bytes are those of no supported container "
                         f"({describe_supported()})", path)
    try:
        container = av.open(str(path), mode="r", format=kind.demuxer, options={"protocol_whitelist": "file"},
                            metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise MediaError(error_reason(exc), path) from None
    try:
        yield container
    except (av.error.FFmpegError, EOFError) as exc:
        raise MediaError(error_reason(exc), path) from None
    finally:
        container.close()


def video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The first video stream that is real video (not the cover art of an mp3)."""
    for stream in container.streams.video:
        disposition = getattr(stream, "disposition", 0)
        if int(disposition) & int(av.stream.Disposition.attached_pic):
            continue
        return stream
    return None


def _is_default(stream) -> bool:
    return bool(int(getattr(stream, "disposition", 0)) & int(av.stream.Disposition.default))


def audio_stream(container: av.container.InputContainer) -> av.audio.stream.AudioStream | None:
    """The audio stream to decode: the only one; of several, the default-flagged one among those
    that carry sound, else the first that does (the first or default one when none does)."""
    streams = list(container.streams.audio)
    if len(streams) <= 1:
        return streams[0] if streams else None
    path = Path(container.name)
    info = path.stat()
    peaks = _audio_peaks(str(path), info.st_size, info.st_mtime_ns)
    sounding = [s for s in streams if peaks.get(s.index, 0.0) >= SILENT_PEAK] or streams
    return next((s for s in sounding if _is_default(s)), sounding[0])


@functools.lru_cache(maxsize=32)
def _audio_peaks(path: str, size: int, mtime_ns: int) -> dict[int, float]:
    """Peak level of the first :data:`SOUND_SCAN_SECONDS` of every audio stream (by stream index);
    cached per file version (size and modification time are part of the key)."""
    with open_media(path) as container:
        streams = list(container.streams.audio)
        peaks = dict.fromkeys((s.index for s in streams), 0.0)
        seconds = dict.fromkeys(peaks, 0.0)
        with contextlib.suppress(av.error.FFmpegError, EOFError):  # a damaged end: keep what was measured
            for packet in container.demux(streams):
                index = packet.stream.index
                if seconds[index] >= SOUND_SCAN_SECONDS:
                    if min(seconds.values()) >= SOUND_SCAN_SECONDS:
                        break
                    continue
                try:
                    frames = packet.decode()
                except av.error.FFmpegError:
                    continue
                for frame in frames:
                    samples = np.abs(frame_to_float(frame))
                    samples = samples[np.isfinite(samples)]
                    if samples.size:
                        peaks[index] = max(peaks[index], float(samples.max()))
                    seconds[index] += frame.samples / (frame.sample_rate or 1)
    return peaks


def stream_fps(stream: av.video.stream.VideoStream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            fps = float(rate)
            if 0.1 < fps < 1000:
                return fps
    return 25.0


def _seconds(value, time_base) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def media_length(container: av.container.InputContainer) -> float | None:
    """The length of the media in seconds: where its streams end minus where they start (None when
    the container stores no length). FFmpeg's demuxers give that length for MP4 (an edit list's
    empty edit included), MPEG-TS and the others; for Matroska and WebM they give the segment's
    ``Duration`` element, which the Matroska specification (RFC 9559, element Segment/Info/Duration:
    "Duration of the Segment") calls a length but FFmpeg's muxer (``matroskaenc``) writes as the end
    *time* of the last packet: a 4 s file whose streams start at 5 s (cut from a longer recording) was
    reported as 9 s long. So where a Matroska file's streams start after 0, the last packets are read
    (from the last keyframe before the end, through the ``Cues`` index) and ``Duration`` is taken for
    an end time when they end nearer to it than to start + ``Duration``."""
    if not container.duration:
        return None
    length = container.duration / av.time_base
    start = container.start_time / av.time_base if container.start_time else 0.0
    if start > 0 and container.format.name.startswith("matroska"):
        end = _last_packet_end(container, container.start_time + container.duration)
        if end is not None and abs(end - length) < abs(end - (start + length)):
            length -= start
    return length


def _last_packet_end(container: av.container.InputContainer, declared_end: int) -> float | None:
    """Where the last packet of ``container`` ends (seconds, on the streams' own time line), read from
    the last keyframe before ``declared_end`` (in ``av.time_base`` units) on; None if it cannot be read."""
    end = None
    with contextlib.suppress(av.error.FFmpegError, EOFError, OverflowError):
        container.seek(declared_end, backward=True, any_frame=False)
        for packet in container.demux():
            if packet.pts is None or packet.time_base is None:
                continue
            packet_end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
            end = packet_end if end is None else max(end, packet_end)
    return end


def probe(path: str | Path) -> MediaInfo:
    """Describe ``path``; raises MediaError if it is missing, not media, or holds no audio/video."""
    path = Path(path)
    with open_media(path) as container:
        a = audio_stream(container)
        v = video_stream(container)
        if a is None and v is None:
            raise MediaError("holds no audio or video stream", path)
        duration = media_length(container)
        audio = None
        if a is not None:
            audio = AudioStreamInfo(
                codec=a.codec_context.name,
                sample_rate=int(a.rate or a.codec_context.sample_rate or 0),
                channels=int(a.channels or 0),
                duration=_seconds(a.duration, a.time_base),
            )
        video = None
        if v is not None:
            fps = stream_fps(v)
            vdur = _seconds(v.duration, v.time_base) or duration
            frames = int(v.frames) if v.frames else (round(vdur * fps) if vdur else None)
            video = VideoStreamInfo(
                codec=v.codec_context.name,
                width=int(v.codec_context.width),
                height=int(v.codec_context.height),
                fps=fps,
                frames=frames,
                duration=vdur,
            )
        if duration is None:
            duration = (audio.duration if audio else None) or (video.duration if video else None)
        used = {s.index for s in (a, v) if s is not None}
        return MediaInfo(
            path=path,
            container=container.format.name,
            size_bytes=path.stat().st_size,
            duration=duration,
            audio=audio,
            video=video,
            streams=tuple(_stream_info(s, s.index in used) for s in container.streams),
        )


@dataclass(frozen=True)
class Readable:
    """What can be read of the streams the decoders use (:func:`read_through`): ``duration``, the
    length that decodes (:attr:`MediaInfo.duration` unless the file is cut short), the ``warnings``
    the decoders would give about the file's end (one line each, without the file name), the
    video's ``rotation``: counter-clockwise degrees its display matrix turns the stored frames by,
    and its ``frames``, those that decode, counted (:attr:`VideoInfo.frames` is the header's, or
    an estimate from the duration where the container declares none; None without a video stream)."""

    duration: float | None
    warnings: tuple[str, ...] = ()
    rotation: int = 0
    frames: int | None = None


def read_through(path: str | Path, info: MediaInfo) -> Readable:
    """Demux the used audio and video streams of ``path`` (``info``: its :func:`probe`) to their end,
    without decoding them (cheap: the file is read once), and decode the first video frame for its
    rotation. The length is where the last readable packet ends: that of a full decode, which also
    stops there (a truncated file: :func:`~avemo.media.decode.check_complete` gives the warning
    ``avemo predict`` gives, and the length is what decodes, as its ``duration`` is); the video's
    frames are its packets read (one frame each), likewise what decodes."""
    warnings: list[str] = []
    with open_media(path) as container:
        streams = [s for s in (audio_stream(container), video_stream(container)) if s is not None]
        origin = container.start_time / av.time_base if container.start_time is not None else 0.0
        ends, rotation, packets = _packet_ends(container, streams, origin, warnings.append)
        for stream in streams:
            if stream.index in ends:
                check_complete(declared_end(container, stream, origin), ends[stream.index], warnings.append,
                               stream.type)
    duration = info.duration
    if ends and (any(w.startswith(TRUNCATED) for w in warnings) or not duration
                 or joined_length(info.container, duration, max(ends.values()))):
        duration = max(ends.values(), default=duration)
    frames = packets if info.video is not None else None
    return Readable(duration=duration, warnings=tuple(warnings), rotation=rotation, frames=frames)


def _packet_ends(container, streams: list, origin: float, warn) -> tuple[dict[int, float], int, int]:
    """{stream index: where its last readable packet ends, in seconds from the container's start},
    the rotation of the first decodable video frame (0 without one) and the video packets read. A
    video packet without a duration (FLV stores none) lasts one frame at the stream's rate, as the
    decoders count a frame (its length was left out: a truncated FLV's video was one frame shorter
    here than in ``avemo predict``'s warning)."""
    ends: dict[int, float] = {}
    frame = {s.index: 1.0 / stream_fps(s) for s in streams if s.type == "video"}
    rotation = None
    video_packets = 0

    def stop(exc: BaseException) -> None:
        warn(f"the file could not be read past {max(ends.values(), default=0.0):.2f} s ({error_reason(exc)})")

    for packet in demuxed(container, streams, stop):
        if packet.pts is None or packet.size == 0:
            continue
        end = float((packet.pts + (packet.duration or 0)) * packet.time_base) - origin
        if not packet.duration:
            end += frame.get(packet.stream.index, 0.0)
        ends[packet.stream.index] = max(ends.get(packet.stream.index, end), end)
        if packet.stream.type == "video":
            video_packets += 1
            if rotation is None:
                with contextlib.suppress(av.error.FFmpegError):
                    rotation = next((int(round(f.rotation or 0)) % 360 for f in packet.decode()), None)
    return ends, rotation or 0, video_packets


def _stream_info(stream, used: bool) -> StreamInfo:
    context = stream.codec_context
    if stream.type == "audio":
        channels = int(getattr(stream, "channels", 0) or 0)
        details = f"{int(stream.rate or context.sample_rate or 0)} Hz, {channels} channel{'s' if channels != 1 else ''}"
    elif stream.type == "video":
        details = f"{context.width}x{context.height}, {stream_fps(stream):.3g} fps"
        if int(getattr(stream, "disposition", 0)) & int(av.stream.Disposition.attached_pic):
            details += ", cover art"
    else:
        details = ""
    language = stream.metadata.get("language") if stream.metadata else None
    return StreamInfo(index=int(stream.index), kind=str(stream.type), codec=context.name if context else "",
                      language=language if language not in (None, "und") else None,
                      default=_is_default(stream), used=used, details=details)
