"""What the tool sees in one file (``avemo info``): streams, duration, faces, parsed labels.

Every stream of the file is listed with ``used`` telling which audio and video streams the
decoders read (of several audio streams, the one that carries sound; :mod:`avemo.media.probe`).
The used streams are read to their end (:func:`~avemo.media.probe.read_through`), so that the
duration is what decodes, as ``avemo predict`` reports it: a file cut short shows both lengths
(``duration_s`` and the header's ``header_duration_s``), both frame counts of its video
(``video.frames``, those that decode, and the header's ``video.header_frames``) and the decoders'
warning in ``warnings``.
The video's size is the picture as shown (a phone's portrait video is stored sideways with a
rotation in its display matrix, which the decoders apply: ``rotation`` says by how much, in degrees
clockwise, as players turn the stored picture and as phones' ``rotate`` tag, ffprobe's ``rotate`` and
exiftool say it: 90 for a phone's usual portrait video; the display matrix's own angle, counter-clockwise,
was shown: 270 for it).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from avemo.errors import AvemoError, DatasetError
from avemo.media.decode import TRUNCATED, wav_declared_seconds


def describe_file(path: str | Path, *, faces: bool = True, face_frames: int = 8) -> dict[str, Any]:
    """A JSON-compatible description of ``path``; raises MediaError if it cannot be decoded.

    ``faces``: run the face detector on up to ``face_frames`` distinct frames spread over a video
    and report how many had a face and the largest number of faces in one frame.
    """
    from avemo.datasets import parse_file_name
    from avemo.media import probe
    from avemo.media.probe import read_through

    path = Path(path)
    info = probe(path)
    readable = read_through(path, info)
    warnings = list(readable.warnings)
    report: dict[str, Any] = {
        "path": str(path),
        "container": info.container,
        "size_bytes": info.size_bytes,
        "duration_s": _seconds(readable.duration),
        "header_duration_s": None,
        "audio": None,
        "video": None,
        "streams": [dataclasses.asdict(stream) for stream in info.streams],
        "warnings": warnings,
    }
    # FFmpeg gives a WAV file the length of what is there; its RIFF header may declare more
    header = wav_declared_seconds(str(path)) if info.container == "wav" else None
    header = info.duration if header is None else header
    if _seconds(header) != report["duration_s"]:
        report["header_duration_s"] = _seconds(header)
    if info.audio is not None:
        report["audio"] = {
            "codec": info.audio.codec,
            "sample_rate": info.audio.sample_rate,
            "channels": info.audio.channels,
        }
    else:
        report["audio"] = {"missing": "no audio track"}
    if info.video is not None:
        sideways = readable.rotation % 180 == 90  # the picture as shown is the stored one turned
        report["video"] = {
            "codec": info.video.codec,
            "width": info.video.height if sideways else info.video.width,
            "height": info.video.width if sideways else info.video.height,
            "rotation": -readable.rotation % 360 or None,  # clockwise (the module docstring)
            "fps": round(info.video.fps, 3),
            "frames": readable.frames,
            # the header's count, where the file is cut short (as header_duration_s): an intact file
            # whose container declares no count (Matroska) has only an estimate, not worth a line
            "header_frames": info.video.frames if report["header_duration_s"] is not None
            and info.video.frames != readable.frames else None,
        }
        if readable.rotation:  # the stream's line gives the stored size: say how it is shown
            shown = report["video"]
            for stream in report["streams"]:
                if stream["kind"] == "video" and stream["used"]:
                    stream["details"] += (f", shown {shown['width']}x{shown['height']} (turned {shown['rotation']} "
                                          "degrees clockwise)")
        if faces:
            report["faces"] = _faces(path, face_frames, warnings)
    try:
        report["labels"] = parse_file_name(path.name)
    except DatasetError as exc:
        report["labels"] = {"unparsed": exc.reason}
    return report


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _faces(path: Path, n: int, warnings: list[str]) -> dict[str, Any]:
    """Faces in ``n`` frames; what the decoder skipped goes to ``warnings`` (a cut end is there already)."""
    import numpy as np

    from avemo.features.face import get_detector
    from avemo.media import sample_frames

    def warn(line: str) -> None:
        if not line.startswith(TRUNCATED) and line not in warnings:
            warnings.append(line)

    try:
        frames = sample_frames(path, n, warn=warn)
    except AvemoError as exc:
        return {"error": exc.reason}
    # a video with fewer than n frames repeats them: each distinct frame is checked once
    _, distinct = np.unique(frames.times, return_index=True)
    detector = get_detector("mediapipe")
    try:
        counts = [len(detector.detect(frames.images[i])) for i in sorted(distinct)]
    finally:
        detector.close()
    return {
        "frames_checked": len(counts),
        "frames_with_face": sum(c > 0 for c in counts),
        "max_faces_in_a_frame": max(counts),
    }
