"""CREMA-D: file names ``AAAA_SSS_EEE_LL.ext`` -> :class:`~avemo.datasets.records.Clip`.

Naming (Cao et al. 2014; the CREMA-D README, github.com/CheyneyComputerScience/CREMA-D):
actor ``1001``..``1091``, one of 12 sentence codes, emotion ``ANG DIS FEA HAP NEU SAD``,
emotion level ``LO MD HI`` or ``XX`` (unspecified). The **speaker** is the actor id, the
**take** the file stem (the WAV/MP3 audio and the FLV/MP4 video of one recording share
it); the **modalities** come from the suffix: the videos carry sound (``("audio", "video")``), the
WAV/MP3 files are ``("audio",)``.

When the official ``VideoDemographics.csv`` is found (in the root, in ``root/metadata``,
in the root's parent or in ``parent/metadata``; or passed as ``demographics=``), each clip
gets the fields ``gender`` (male/female), ``age``, ``race`` and ``ethnicity`` of its actor.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from avemo.datasets.csvfile import read_text_csv
from avemo.datasets.scan import ScanResult, check_root, scan_folder, with_modalities
from avemo.errors import DatasetError, NameShapeError

DATASET = "crema_d"

#: sentence code -> sentence (CREMA-D README)
SENTENCES = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
FIRST_ACTOR, LAST_ACTOR = 1001, 1091
DEMOGRAPHICS_FILE = "VideoDemographics.csv"

_STEM = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")


def parse_crema_d_stem(stem: str) -> dict[str, Any]:
    """Parse a CREMA-D stem (``1001_DFA_ANG_XX``): the Clip keys but ``modalities``, and the fields.

    Fields: ``sentence`` (code), ``sentence_text``, ``emotion_code``, ``level``
    (low/medium/high/unspecified).
    """
    match = _STEM.match(stem)
    if not match:
        raise NameShapeError("not a CREMA-D name: expected AAAA_SSS_EEE_LL (e.g. 1001_DFA_ANG_XX)", stem)
    actor, sentence, emotion, level = match.groups()
    if not FIRST_ACTOR <= int(actor) <= LAST_ACTOR:
        raise DatasetError(f"CREMA-D actor {actor} is not {FIRST_ACTOR}..{LAST_ACTOR}", stem)
    for code, allowed, what in (
        (sentence, SENTENCES, "sentence"),
        (emotion, EMOTIONS, "emotion"),
        (level, LEVELS, "emotion level"),
    ):
        if code not in allowed:
            raise DatasetError(f"CREMA-D {what} code {code} is not one of {', '.join(allowed)}", stem)
    return {
        "dataset": DATASET,
        "emotion": EMOTIONS[emotion],
        "speaker": actor,
        "take": stem,
        "sentence": sentence,
        "sentence_text": SENTENCES[sentence],
        "emotion_code": emotion,
        "level": LEVELS[level],
    }


def parse_crema_d_name(name: str | Path) -> dict[str, Any]:
    """Parse a CREMA-D file name (with its media suffix, which gives the modality).

    Returns a flat dict of the Clip keys (``dataset``, ``emotion``, ``speaker``, ``take``,
    ``modalities``) and the fields of :func:`parse_crema_d_stem`.
    """
    from avemo.media.probe import AUDIO_SUFFIXES, VIDEO_SUFFIXES

    path = Path(str(name))
    suffix = path.suffix.lower()
    try:  # the stem first: a name of another shape (notes.txt) is no CREMA-D name, whatever its suffix
        parsed = parse_crema_d_stem(path.stem)
    except DatasetError as exc:  # of the same kind (a NameShapeError stays one), naming the whole name
        raise type(exc)(exc.reason, name) from None
    if suffix in VIDEO_SUFFIXES:
        modalities = ("audio", "video")
    elif suffix in AUDIO_SUFFIXES:
        modalities = ("audio",)
    else:
        raise DatasetError(f"not a media file name ({suffix or 'no suffix'}); the suffix gives the modality", name)
    return with_modalities(parsed, modalities)


def load_crema_d_demographics(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read ``VideoDemographics.csv``: actor id -> ``{"gender", "age", "race", "ethnicity"}``.

    ``Sex`` values ``Male``/``Female`` become ``gender`` ``male``/``female``.
    """
    path = Path(path)
    required = ("actorid", "age", "sex", "race", "ethnicity")
    header, rows = read_text_csv(path, what="CREMA-D demographics", required=required, lower=True)
    col = {name: header.index(name) for name in required}
    table: dict[str, dict[str, Any]] = {}
    for line, values in rows:
        actor = values[col["actorid"]]
        sex = values[col["sex"]].lower()
        if sex not in ("male", "female"):
            raise DatasetError(f"line {line}: Sex {values[col['sex']]!r} is not Male or Female", path)
        try:
            age = int(values[col["age"]])
        except ValueError:
            raise DatasetError(f"line {line}: Age {values[col['age']]!r} is not an integer", path) from None
        table[actor] = {
            "gender": sex,
            "age": age,
            "race": values[col["race"]],
            "ethnicity": values[col["ethnicity"]],
        }
    return table


def find_demographics(root: Path) -> Path | None:
    """``VideoDemographics.csv`` in ``root``, ``root/metadata``, the parent or ``parent/metadata``."""
    for folder in (root, root / "metadata", root.parent, root.parent / "metadata"):
        candidate = folder / DEMOGRAPHICS_FILE
        if candidate.is_file():
            return candidate
    return None


def read_crema_d(
    root: str | Path,
    *,
    strict: bool = False,
    suffixes: Iterable[str] | None = None,
    demographics: str | Path | Literal[False] | None = None,
) -> ScanResult:
    """Read every CREMA-D media file under ``root`` (``AudioWAV``, ``AudioMP3``, ``VideoFlash``...).

    Args:
        root: the CREMA-D folder or one of its media folders.
        strict: raise for the first malformed name or duplicate instead of skipping it.
        suffixes: only read these formats, e.g. ``(".wav", ".flv")`` when the folder holds
            both WAV and MP3 copies of the audio (otherwise the second copy of each take is
            reported as a duplicate).
        demographics: the ``VideoDemographics.csv`` to attach gender/age/race/ethnicity from;
            ``None`` looks for it next to ``root`` (see module doc), ``False`` attaches nothing.
    """
    root_path = check_root(root, DATASET)
    if demographics is None:
        demographics = find_demographics(root_path)
    table: Mapping[str, Mapping[str, Any]] = (
        load_crema_d_demographics(demographics) if demographics else {}
    )

    def extra(parsed: Mapping[str, Any]) -> Mapping[str, Any]:
        return table.get(parsed["speaker"], {})

    return scan_folder(DATASET, root_path, parse_crema_d_name, strict=strict, suffixes=suffixes, extra_fields=extra)
