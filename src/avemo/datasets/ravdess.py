"""RAVDESS: file names ``MM-VV-EE-II-SS-RR-AA.ext`` -> :class:`~avemo.datasets.records.Clip`.

The naming convention is that of Livingstone & Russo 2018 (PLoS ONE 13(5): e0196391) and
the RAVDESS README (Zenodo record 1188976):

====  ==========================================================================
MM    modality: 01 audio-video, 02 video-only, 03 audio-only
VV    vocal channel: 01 speech, 02 song
EE    emotion: 01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful,
      07 disgust, 08 surprised (song has only neutral, calm, happy, sad, angry, fearful)
II    intensity: 01 normal, 02 strong (neutral has no strong intensity)
SS    statement: 01 "Kids are talking by the door", 02 "Dogs are sitting by the door"
RR    repetition: 01, 02
AA    actor 01-24; odd numbers are male, even numbers female
====  ==========================================================================

Every take exists as a 01, a 02 and a 03 file, so the **take** is the name without the
modality field (``01-07-02-02-01-01`` for ``03-01-07-02-02-01-01.flac``) and the
**speaker** is the actor field (``"01"``). Names that break any rule above (wrong field
count, a code out of range, a strong neutral, a sung disgust, an audio-only file with a
video suffix or the reverse) are reported, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from avemo.datasets.labels import RAVDESS
from avemo.datasets.scan import ScanResult, scan_folder
from avemo.errors import DatasetError, NameShapeError

DATASET = "ravdess"

#: modality code -> Clip.modalities
MODALITIES = {"01": ("audio", "video"), "02": ("video",), "03": ("audio",)}
VOCAL_CHANNELS = {"01": "speech", "02": "song"}
#: emotion code -> canonical emotion, in the order of :data:`avemo.datasets.labels.RAVDESS`
EMOTIONS = {f"{i + 1:02d}": e for i, e in enumerate(RAVDESS.emotions)}
INTENSITIES = {"01": "normal", "02": "strong"}
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
REPETITIONS = ("01", "02")
ACTORS = tuple(f"{i:02d}" for i in range(1, 25))
#: the emotions RAVDESS actors sang (Livingstone & Russo 2018, "Song" stimuli)
SONG_EMOTIONS = frozenset({"neutral", "calm", "happy", "sad", "angry", "fearful"})

_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")


def ravdess_gender(speaker: str) -> str:
    """``"male"`` for odd actor numbers, ``"female"`` for even ones (RAVDESS README)."""
    if speaker not in ACTORS:
        raise DatasetError(f"RAVDESS actor {speaker!r} is not 01..24")
    return "male" if int(speaker) % 2 == 1 else "female"


def _split_suffix(name: str) -> tuple[str, str]:
    """``("03-01-...-01", ".flac")``; no suffix for a bare stem."""
    base = Path(name).name
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        return base, ""
    return stem, f".{suffix.lower()}"


def parse_ravdess_name(name: str | Path) -> dict[str, Any]:
    """Parse a RAVDESS file name (or stem) into the Clip keys and the dataset's fields.

    Returns a flat dict: ``dataset``, ``emotion``, ``speaker``, ``take``, ``modalities`` and the
    fields ``modality_code``, ``vocal_channel`` (speech/song), ``emotion_code``,
    ``intensity`` (normal/strong), ``statement`` (1/2), ``statement_text``, ``repetition``
    (1/2) and ``gender`` (male/female).

    Raises:
        DatasetError: the name does not follow the RAVDESS convention (the reason says which
            field is wrong).
    """
    from avemo.media.probe import AUDIO_SUFFIXES, MEDIA_SUFFIXES, VIDEO_SUFFIXES

    stem, suffix = _split_suffix(str(name))
    match = _NAME.match(stem)
    if not match:  # first: a name of another shape (notes.txt) is no RAVDESS name, whatever its suffix
        raise NameShapeError("not a RAVDESS name: expected 7 two-digit fields MM-VV-EE-II-SS-RR-AA", name)
    if suffix and suffix not in MEDIA_SUFFIXES:
        raise DatasetError(f"not a media file name ({suffix})", name)
    modality, channel, emotion, intensity, statement, repetition, actor = match.groups()
    checks = (
        (modality, MODALITIES, "modality"),
        (channel, VOCAL_CHANNELS, "vocal channel"),
        (emotion, EMOTIONS, "emotion"),
        (intensity, INTENSITIES, "intensity"),
        (statement, STATEMENTS, "statement"),
        (repetition, REPETITIONS, "repetition"),
        (actor, ACTORS, "actor"),
    )
    for code, allowed, what in checks:
        if code not in allowed:
            raise DatasetError(f"RAVDESS {what} code {code} is not one of {', '.join(allowed)}", name)
    emotion_name = EMOTIONS[emotion]
    if emotion_name == "neutral" and intensity == "02":
        raise DatasetError("RAVDESS neutral has no strong intensity (intensity 02)", name)
    if channel == "02" and emotion_name not in SONG_EMOTIONS:
        raise DatasetError(f"RAVDESS song has no {emotion_name} takes (emotion {emotion})", name)
    if suffix:
        if modality == "03" and suffix not in AUDIO_SUFFIXES:
            raise DatasetError(f"modality 03 (audio-only) but {suffix} is not an audio format", name)
        if modality in ("01", "02") and suffix not in VIDEO_SUFFIXES:
            raise DatasetError(f"modality {modality} ({'+'.join(MODALITIES[modality])}) but {suffix} is not a video format", name)
    return {
        "dataset": DATASET,
        "emotion": emotion_name,
        "speaker": actor,
        "take": "-".join(match.groups()[1:]),
        "modalities": MODALITIES[modality],
        "modality_code": modality,
        "vocal_channel": VOCAL_CHANNELS[channel],
        "emotion_code": emotion,
        "intensity": INTENSITIES[intensity],
        "statement": int(statement),
        "statement_text": STATEMENTS[statement],
        "repetition": int(repetition),
        "gender": ravdess_gender(actor),
    }


def ravdess_take(name: str | Path) -> str:
    """The take id of a RAVDESS file name or stem: the name without its modality field."""
    return parse_ravdess_name(name)["take"]


def read_ravdess(
    root: str | Path, *, strict: bool = False, suffixes: Iterable[str] | None = None
) -> ScanResult:
    """Read every RAVDESS media file under ``root`` (flat, ``Actor_XX`` folders or any nesting).

    Args:
        root: the folder (e.g. ``../shared/data/ravdess/speech_audio``).
        strict: raise a DatasetError for the first file whose name is not a valid RAVDESS
            name (or a duplicate) instead of listing it in ``skipped`` (or ``duplicates``).
        suffixes: only read these formats (``(".wav",)``); default every media suffix.

    Of two files of one take with the same modalities (a stray copy of a take somewhere else under
    ``root``), the one in its actor's ``Actor_XX`` folder, the corpus's layout, is read; the other
    is listed in ``duplicates``.
    """
    return scan_folder(DATASET, root, parse_ravdess_name, strict=strict, suffixes=suffixes, in_layout=in_actor_folder)


def in_actor_folder(path: Path, parsed: Mapping[str, Any]) -> bool:
    """Whether a RAVDESS file lies in its actor's folder (``Actor_01/03-01-...-01.wav``), as the corpus ships."""
    return path.parent.name == f"Actor_{parsed['speaker']}"
