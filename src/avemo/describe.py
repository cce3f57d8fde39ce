"""What the tool sees in one file (``avemo info``): streams, duration, faces, parsed labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from avemo.errors import AvemoError, DatasetError


def describe_file(path: str | Path, *, faces: bool = True, face_frames: int = 8) -> dict[str, Any]:
    """A JSON-compatible description of ``path``; raises MediaError if it cannot be decoded.

    ``faces``: run the face detector on ``face_frames`` frames spread over a video and report
    how many had a face and the largest number of faces in one frame.
    """
    from avemo.datasets import parse_file_name
    from avemo.media import probe

    path = Path(path)
    info = probe(path)
    report: dict[str, Any] = {
        "path": str(path),
        "container": info.container,
        "size_bytes": info.size_bytes,
        "duration_s": None if info.duration is None else round(info.duration, 3),
        "audio": None,
        "video": None,
    }
    if info.audio is not None:
        report["audio"] = {
            "codec": info.audio.codec,
            "sample_rate": info.audio.sample_rate,
            "channels": info.audio.channels,
        }
    else:
        report["audio"] = {"missing": "no audio track"}
    if info.video is not None:
        report["video"] = {
            "codec": info.video.codec,
            "width": info.video.width,
            "height": info.video.height,
            "fps": round(info.video.fps, 3),
            "frames": info.video.frames,
        }
        if faces:
            report["faces"] = _faces(path, face_frames)
    try:
        report["labels"] = parse_file_name(path.name)
    except DatasetError as exc:
        report["labels"] = {"unparsed": exc.reason}
    return report


def _faces(path: Path, n: int) -> dict[str, Any]:
    from avemo.features.face import get_detector
    from avemo.media import sample_frames

    try:
        frames = sample_frames(path, n)
    except AvemoError as exc:
        return {"error": exc.reason}
    detector = get_detector("mediapipe")
    try:
        counts = [len(detector.detect(image)) for image in frames.images]
    finally:
        detector.close()
    return {
        "frames_checked": len(counts),
        "frames_with_face": sum(c > 0 for c in counts),
        "max_faces_in_a_frame": max(counts),
    }
