"""Berlin EmoDB: file names ``SSTTTEV.wav`` -> :class:`~avemo.datasets.records.Clip`.

Naming (Burkhardt et al. 2005, "A database of German emotional speech", and the EmoDB
documentation): two-digit speaker, three-character text code, one emotion letter (German
initial: W Wut/anger, L Langeweile/boredom, E Ekel/disgust, A Angst/fear, F Freude/happiness,
T Trauer/sadness, N neutral) and a version letter. ``03a01Fa.wav`` is speaker 03 saying
text a01 happily, version a. The **take** is the stem; EmoDB is audio only.

The ten speakers and their genders are those of the EmoDB documentation: 03 m, 08 f,
09 f, 10 m, 11 m, 12 m, 13 f, 14 f, 15 m, 16 f; the ten text codes are a01, a02, a04, a05,
a07, b01, b02, b03, b09, b10. A name outside these lists is reported, not guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from avemo.datasets.scan import ScanResult, scan_folder, with_modalities
from avemo.errors import DatasetError, NameShapeError

DATASET = "emodb"

SPEAKER_GENDERS = {
    "03": "male",
    "08": "female",
    "09": "female",
    "10": "male",
    "11": "male",
    "12": "male",
    "13": "female",
    "14": "female",
    "15": "male",
    "16": "female",
}
TEXTS = ("a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09", "b10")
EMOTIONS = {"W": "angry", "L": "boredom", "E": "disgust", "A": "fearful", "F": "happy", "T": "sad", "N": "neutral"}

_STEM = re.compile(r"^(\d\d)([ab]\d\d)([A-Z])([a-z])$")


def parse_emodb_stem(stem: str) -> dict[str, Any]:
    """Parse an EmoDB stem (``03a01Fa``): the Clip keys but ``modalities``, and the fields.

    Fields: ``text`` (code), ``emotion_code`` (letter), ``version`` (letter), ``gender``.
    """
    match = _STEM.match(stem)
    if not match:
        raise NameShapeError("not an EmoDB name: expected SSTTTEV (e.g. 03a01Fa)", stem)
    speaker, text, emotion, version = match.groups()
    if speaker not in SPEAKER_GENDERS:
        raise DatasetError(f"EmoDB speaker {speaker} is not one of {', '.join(SPEAKER_GENDERS)}", stem)
    if text not in TEXTS:
        raise DatasetError(f"EmoDB text code {text} is not one of {', '.join(TEXTS)}", stem)
    if emotion not in EMOTIONS:
        raise DatasetError(f"EmoDB emotion letter {emotion} is not one of {', '.join(EMOTIONS)}", stem)
    return {
        "dataset": DATASET,
        "emotion": EMOTIONS[emotion],
        "speaker": speaker,
        "take": stem,
        "text": text,
        "emotion_code": emotion,
        "version": version,
        "gender": SPEAKER_GENDERS[speaker],
    }


def parse_emodb_name(name: str | Path) -> dict[str, Any]:
    """Parse an EmoDB file name (``03a01Fa.wav``; the suffix must be an audio format, or absent).

    Returns a flat dict of the Clip keys (``modalities`` is always ``("audio",)``) and the fields
    of :func:`parse_emodb_stem`.
    """
    from avemo.media.probe import AUDIO_SUFFIXES

    path = Path(str(name))
    suffix = path.suffix.lower()
    try:  # the stem first: a name of another shape (my_video.mp4) is no EmoDB name, whatever its suffix
        parsed = parse_emodb_stem(path.stem)
    except DatasetError as exc:  # of the same kind (a NameShapeError stays one), naming the whole name
        raise type(exc)(exc.reason, name) from None
    if suffix and suffix not in AUDIO_SUFFIXES:
        raise DatasetError(f"EmoDB is audio only; {suffix} is not an audio format", name)
    return with_modalities(parsed, ("audio",))


def read_emodb(root: str | Path, *, strict: bool = False, suffixes: Iterable[str] | None = None) -> ScanResult:
    """Read every EmoDB audio file under ``root`` (the ``wav`` folder of the download, or any folder).

    ``strict`` raises for the first malformed name instead of skipping it; ``suffixes``
    restricts the formats read.
    """
    return scan_folder(DATASET, root, parse_emodb_name, strict=strict, suffixes=suffixes)
