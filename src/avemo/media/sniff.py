"""Recognise a media container from its first bytes, never from a file's name or an upload's MIME type.

Every file is opened (:func:`avemo.media.open_media`) only when its leading bytes carry the
signature of one of the containers the decoders read (:data:`avemo.media.MEDIA_SUFFIXES`), and
with the matching FFmpeg demuxer forced. FFmpeg's own format guessing therefore never runs: text
formats that make FFmpeg open other files or URLs (HLS/DASH playlists, ``ffconcat`` lists, SDP)
can never be selected, whatever the file is called, on the command line as in an upload.

The signatures are the ones FFmpeg's probes (``libavformat/*.c``, ``read_probe``) look for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: bytes needed to recognise every signature below (MPEG-TS: the sync byte of three 192-byte packets)
SNIFF_BYTES = 512


@dataclass(frozen=True)
class Container:
    """A recognised container: a short name, the suffix the upload is saved under, FFmpeg's demuxer."""

    name: str
    suffix: str
    demuxer: str
    video_capable: bool


MP4 = Container("mp4", ".mp4", "mov", True)
MOV = Container("mov", ".mov", "mov", True)
M4A = Container("m4a", ".m4a", "mov", False)
MKV = Container("matroska", ".mkv", "matroska", True)
WEBM = Container("webm", ".webm", "matroska", True)
AVI = Container("avi", ".avi", "avi", True)
FLV = Container("flv", ".flv", "flv", True)
WAV = Container("wav", ".wav", "wav", False)
FLAC = Container("flac", ".flac", "flac", False)
OGG = Container("ogg", ".ogg", "ogg", True)
MP3 = Container("mp3", ".mp3", "mp3", False)
AAC = Container("aac", ".aac", "aac", False)
#: MPEG transport streams: broadcast and screen-capture recordings (.ts), camcorders' AVCHD (.mts, .m2ts:
#: 192-byte packets, a 4-byte time code before each 188-byte one); FFmpeg's demuxer reads both
MPEGTS = Container("mpegts", ".ts", "mpegts", True)
#: Microsoft's Advanced Systems Format: Windows Media audio and video (.wma, .wmv), what Windows' Voice
#: Recorder and older Windows tools save; it was refused as "not a media file"
ASF = Container("asf", ".asf", "asf", True)

CONTAINERS = (MP4, MOV, M4A, MKV, WEBM, AVI, FLV, WAV, FLAC, OGG, MP3, AAC, MPEGTS, ASF)

# ISO BMFF top-level boxes that may come first in a QuickTime/MP4 file
_BMFF_FIRST_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"}
#: the GUID of an ASF file's header object, which starts every ASF file (FFmpeg's ``asf_probe``)
_ASF_HEADER = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")


def _mpeg_audio(head: bytes) -> Container | None:
    """An MPEG audio frame header (mp3) or an ADTS header (raw AAC) at the start."""
    if len(head) < 4 or head[0] != 0xFF or (head[1] & 0xE0) != 0xE0:
        return None
    layer = (head[1] >> 1) & 0b11
    if (head[1] & 0xF6) == 0xF0:  # ADTS: 12-bit sync, layer 00
        return AAC
    bitrate_index = head[2] >> 4
    rate_index = (head[2] >> 2) & 0b11
    version = (head[1] >> 3) & 0b11
    if layer == 0 or version == 1 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    return MP3


def _transport_stream(head: bytes) -> bool:
    """Three MPEG-TS packets in a row: the sync byte 0x47 every 188 bytes, or every 192 bytes after a
    4-byte time code (M2TS), as FFmpeg's ``mpegts_probe`` looks for it (there over more packets)."""
    return any(len(head) > offset + 2 * size and all(head[offset + i * size] == 0x47 for i in range(3))
               for size, offset in ((188, 0), (192, 4)))


def sniff(head: bytes) -> Container | None:
    """The container whose signature ``head`` (the file's first bytes) starts with, or None."""
    if len(head) >= 12 and head[4:8] in _BMFF_FIRST_BOXES:
        brand = head[8:12] if head[4:8] == b"ftyp" else b""
        if brand == b"qt  ":
            return MOV
        if brand in (b"M4A ", b"M4B "):
            return M4A
        return MP4
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML
        return WEBM if b"webm" in head[:SNIFF_BYTES] else MKV
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return WAV
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return AVI
    if head.startswith(b"FLV\x01"):
        return FLV
    if head.startswith(b"fLaC"):
        return FLAC
    if head.startswith(b"OggS\x00"):
        return OGG
    if head.startswith(_ASF_HEADER):
        return ASF
    if head.startswith(b"ID3") and len(head) >= 10 and head[3] < 0xFF and head[4] < 0xFF:
        return MP3  # an ID3v2 tag precedes MPEG audio frames
    if _transport_stream(head):
        return MPEGTS
    return _mpeg_audio(head)


def sniff_file(path: str | Path) -> Container | None:
    """The container of the file at ``path`` by its first bytes (OSError if it cannot be read)."""
    with open(path, "rb") as handle:
        return sniff(handle.read(SNIFF_BYTES))


def describe_supported() -> str:
    """The accepted containers, for error messages."""
    return ", ".join(sorted({c.name for c in CONTAINERS}))


#: what stands for the list of accepted containers in a reason after the first that gives it
SUPPORTED_SAID = "(listed above)"


def supported_said_once(reasons: Sequence[str]) -> list[str]:
    """``reasons`` (one per file, in the order they are shown) with the list of accepted containers that
    ends a "not a media file" reason (:func:`describe_supported`, in parentheses) kept in the first that
    holds it and replaced by :data:`SUPPORTED_SAID` in the others: a folder of 20 files that are no
    media listed the 13 containers 20 times. Each file's own reason stays."""
    full = f"({describe_supported()})"
    out, said = [], False
    for reason in reasons:
        if full in reason:
            reason = reason.replace(full, SUPPORTED_SAID) if said else reason
            said = True
        out.append(reason)
    return out

