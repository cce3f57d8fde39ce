"""Media decoding with PyAV: probing, mono 16 kHz audio, video frames, streaming windows;
realistic transmission channels for audio (codecs, telephone, noise, babble, reverberation, gain).

Files are opened only as the container their first bytes show (:mod:`avemo.media.sniff`), and a
damaged file gives what can be decoded, with warnings (:mod:`avemo.media.decode`)."""

from avemo.media.audio import DEFAULT_SAMPLE_RATE, iter_audio, load_audio
from avemo.media.channels import ChannelUnavailableError, apply_channel, list_channels, parse_channel
from avemo.media.probe import (
    AUDIO_SUFFIXES,
    MEDIA_SUFFIXES,
    VIDEO_SUFFIXES,
    AudioStreamInfo,
    MediaInfo,
    StreamInfo,
    VideoStreamInfo,
    open_media,
    probe,
)
from avemo.media.stream import Window, iter_windows
from avemo.media.video import Frames, iter_frames, read_frames, sample_frames

__all__ = [
    "AUDIO_SUFFIXES",
    "DEFAULT_SAMPLE_RATE",
    "MEDIA_SUFFIXES",
    "VIDEO_SUFFIXES",
    "AudioStreamInfo",
    "ChannelUnavailableError",
    "Frames",
    "MediaInfo",
    "StreamInfo",
    "VideoStreamInfo",
    "Window",
    "apply_channel",
    "iter_audio",
    "iter_frames",
    "iter_windows",
    "list_channels",
    "load_audio",
    "open_media",
    "parse_channel",
    "probe",
    "read_frames",
    "sample_frames",
]
