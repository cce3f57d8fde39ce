"""Open media files with PyAV and describe what they hold.

:func:`open_media` is the single place where PyAV/FFmpeg errors become one-line
:class:`~avemo.errors.MediaError` messages; every decoder in this package opens files
through it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av

from avemo.errors import MediaError

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv"})
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac"})
MEDIA_SUFFIXES = VIDEO_SUFFIXES | AUDIO_SUFFIXES


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
class MediaInfo:
    """What a media file holds (the first audio and the first real video stream)."""

    path: Path
    container: str
    size_bytes: int
    duration: float | None
    audio: AudioStreamInfo | None
    video: VideoStreamInfo | None

    @property
    def has_audio(self) -> bool:
        return self.audio is not None

    @property
    def has_video(self) -> bool:
        return self.video is not None


def _reason(exc: BaseException) -> str:
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


@contextlib.contextmanager
def open_media(path: str | Path) -> Iterator[av.container.InputContainer]:
    """Open ``path`` for decoding; errors (also during decoding) become one-line MediaErrors."""
    path = Path(path)
    if not path.exists():
        raise MediaError("file not found", path)
    if path.is_dir():
        raise MediaError("is a directory, not a media file", path)
    if path.stat().st_size == 0:
        raise MediaError("file is empty (0 bytes)", path)
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise MediaError(_reason(exc), path) from None
    try:
        yield container
    except (av.error.FFmpegError, EOFError) as exc:
        raise MediaError(_reason(exc), path) from None
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


def audio_stream(container: av.container.InputContainer) -> av.audio.stream.AudioStream | None:
    return container.streams.audio[0] if container.streams.audio else None


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


def probe(path: str | Path) -> MediaInfo:
    """Describe ``path``; raises MediaError if it is missing, not media, or holds no audio/video."""
    path = Path(path)
    with open_media(path) as container:
        a = audio_stream(container)
        v = video_stream(container)
        if a is None and v is None:
            raise MediaError("holds no audio or video stream", path)
        duration = container.duration / av.time_base if container.duration else None
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
        return MediaInfo(
            path=path,
            container=container.format.name,
            size_bytes=path.stat().st_size,
            duration=duration,
            audio=audio,
            video=video,
        )
