"""What the tool sees in one file (``avemo info``): streams, duration, faces, parsed labels.

Every stream of the file is listed with ``used`` telling which audio and video streams the
decoders read (of several audio streams, the one that carries sound; :mod:`avemo.media.probe`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from avemo.errors import AvemoError, DatasetError


def describe_file(path: str | Path, *, faces: bool = True, face_frames: int = 8) -> dict[str, Any]:
    """A JSON-compatible description of ``path``; raises MediaError if it cannot be decoded.

    ``faces``: run the face detector on up to ``face_frames`` distinct frames spread over a video
    and report how many had a face and the largest number of faces in one frame.
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
        "streams": [dataclasses.asdict(stream) for stream in info.streams],
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
    import numpy as np

    from avemo.features.face import get_detector
    from avemo.media import sample_frames

    try:
        frames = sample_frames(path, n)
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
