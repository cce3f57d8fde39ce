"""A user's folder of one subfolder per emotion, read when it has no labels CSV.

===============================  =====================================================================
layout                           speaker
===============================  =====================================================================
``<emotion>/<speaker>/FILE``     the folder below the emotion's
``<speaker>/<emotion>/FILE``     the folder above the emotion's
``<emotion>/FILE``               ``speaker_pattern`` (required)
===============================  =====================================================================

A folder name is an emotion when it is a canonical emotion or a spelling of one
(:func:`~avemo.datasets.labels.normalise_emotion`: ``Anger``, ``fear``, ``ANG``), or ends in one after
``_`` or ``-`` (TESS's ``OAF_angry``, ``YAF_pleasant_surprised``). The emotion level is the one whose
folders are emotions for more files; the depth is that of most files under an emotion folder.
``speaker_pattern``, a regular expression with one group, is searched in each file's name and the group
is the speaker (``^(\\d\\d)`` reads ``03`` from EmoDB's ``03a01Fa.wav``); given, it names the speakers in
every layout (a second folder level is then not read). Speakers are never guessed: emotion folders
without speaker folders or a pattern are a :class:`~avemo.errors.DatasetError` saying what to give.

A clip's take is its path relative to the folder without the suffix, its modalities come from the
suffix (as for a labels CSV without these columns). Skipped, with the reason in ``ScanResult.skipped``:
a file at another depth than the layout's, under a folder at the emotion level that is no emotion,
under emotion names at both levels, of an emotion outside ``emotions=``, or whose name the pattern does
not match. Nothing usable left, or as many files under emotion folders at one level as at the other: a
DatasetError.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from avemo.datasets.labels import CANONICAL_EMOTIONS, normalise_emotion
from avemo.datasets.records import Clip
from avemo.datasets.scan import ScanCollector, ScanResult, media_files, suffix_modalities
from avemo.errors import DatasetError

#: the layouts read, said in errors
LAYOUTS = "<emotion>/<speaker>/FILE, <speaker>/<emotion>/FILE, or <emotion>/FILE with a speaker pattern"
_WORD_BREAK = re.compile(r"[_\-\s]+")


def folder_emotion(name: str) -> str | None:
    """The canonical emotion a folder name says (``Anger``, ``OAF_Fear``), or None."""
    emotion = normalise_emotion(name)
    if emotion in CANONICAL_EMOTIONS:
        return emotion
    words = _WORD_BREAK.split(name.strip())
    last = normalise_emotion(words[-1])
    return last if len(words) > 1 and last in CANONICAL_EMOTIONS else None


def speaker_regex(pattern: str) -> re.Pattern:
    """``pattern`` compiled, or a one-line DatasetError: not a regular expression, or not one group."""
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise DatasetError(f"speaker pattern {pattern!r} is not a regular expression ({exc})") from None
    if regex.groups != 1:
        raise DatasetError(f"speaker pattern {pattern!r} has {regex.groups} groups; it needs one, around the "
                           "speaker id in the file name (e.g. '^(\\d+)_')")
    return regex


@dataclass(frozen=True)
class Layout:
    """Where a folder's files sit: ``level``, the index of the emotion folder among a file's folders
    (0: the top one), ``depth``, the number of folders above a file; ``pattern``: the speaker pattern."""

    level: int
    depth: int
    pattern: re.Pattern | None = None

    def __str__(self) -> str:
        other = "<any>" if self.pattern is not None else "<speaker>"
        folders = ["<emotion>", other][: self.depth] if self.level == 0 else [other, "<emotion>"]
        return "/".join([*folders, "FILE"])


def folder_layout(root: Path, speaker_pattern: str | None = None,
                  suffixes: Iterable[str] | None = None) -> Layout | None:
    """The emotion-folder layout of the media files under ``root`` (of ``suffixes``), or None where no
    folder is an emotion; ``speaker_pattern`` (:func:`speaker_regex`) names the speakers."""
    pattern = speaker_regex(speaker_pattern) if speaker_pattern is not None else None
    return _find_layout(root, media_files(root, suffixes), pattern)


def _find_layout(root: Path, files: Iterable[Path], pattern: re.Pattern | None = None) -> Layout | None:
    """The emotion-folder layout of ``files`` under ``root``, or None where no folder is an emotion.
    DatasetError: as many files under emotion names at the top level as at the second (no way to tell
    which level says the emotion), or emotion folders with no speaker source (no speaker folder, no
    ``pattern``)."""
    folders = [p.relative_to(root).parent.parts for p in files]
    under = [sum(len(f) > level and folder_emotion(f[level]) is not None for f in folders) for level in (0, 1)]
    if not any(under):
        return None
    if under[0] == under[1]:
        raise DatasetError(f"as many files are in <emotion>/<speaker>/ folders as in <speaker>/<emotion>/ ones "
                           f"({under[0]} each): which level names the emotion is not clear; use one layout or write "
                           "a labels.csv (columns path, emotion, speaker)", root)
    level = 0 if under[0] > under[1] else 1
    depths = Counter(len(f) for f in folders if len(f) > level and folder_emotion(f[level]) is not None)
    depth = 2 if level == 1 or depths[2] >= max(depths[1], 1) else 1
    if not depths[depth]:  # <emotion>/<speaker>/<session>/FILE
        raise DatasetError(f"the files under emotion folders are {' or '.join(map(str, sorted(depths)))} folders "
                           f"deep; the layouts read are {LAYOUTS}; else write a labels.csv (columns path, emotion, "
                           "speaker)", root)
    if depth == 1 and pattern is None:
        named = sorted({f[0] for f in folders if len(f) == 1 and folder_emotion(f[0]) is not None})
        raise DatasetError(f"no labels CSV, and the emotion folders ({', '.join(named[:3])}{', ...' * (len(named) > 3)})"
                           " name no speakers: put the files in <emotion>/<speaker>/ or <speaker>/<emotion>/ "
                           "folders, give a speaker pattern (avemo's --speaker-pattern REGEX, speaker_pattern= in a "
                           "--corpora or --test-corpus file entry or in Python: one group over the file name, e.g. "
                           "'^(\\d+)_'), or write a labels.csv (columns path, emotion, speaker)", root)
    return Layout(level, depth, pattern)


def read_emotion_folders(root: Path, layout: Layout, *, dataset: str, strict: bool = False,
                         suffixes: Iterable[str] | None = None, allowed: set[str] | None = None) -> ScanResult:
    """The clips of ``root`` read in ``layout`` (:func:`folder_layout`), the other files skipped with the
    reason (see the module doc); ``allowed``: the emotions kept (None: any)."""
    collector = ScanCollector(dataset, root, strict=strict)
    for path in media_files(root, suffixes):
        outcome = _clip(root, path, layout, dataset, allowed)
        if isinstance(outcome, Clip):
            collector.add(outcome)
        else:
            collector.skip(path, outcome)
    result = collector.result
    if not result.clips and result.skipped:
        first = result.skipped[0]
        raise DatasetError(f"no usable file in the folder's layout {layout}: {len(result.skipped)} skipped, e.g. "
                           f"{first.path.relative_to(root)} ({first.reason})", root)
    speakers = {c.speaker for c in result.clips}
    if layout.level == 1 and layout.pattern is None and len(speakers) == 1:
        result.warnings.append(f"{root}: every file is under one speaker folder, {speakers.pop()}: if it is no "
                               "speaker (a folder the corpus came in), read that folder instead")
    return result


def _clip(root: Path, path: Path, layout: Layout, dataset: str, allowed: set[str] | None) -> Clip | str:
    """The clip of ``path`` in ``layout``, or the reason it is skipped."""
    folders = path.relative_to(root).parent.parts
    if len(folders) != layout.depth:
        return f"not in the folder's layout {layout} ({len(folders)} folder{'s' * (len(folders) != 1)} deep)"
    emotion = folder_emotion(folders[layout.level])
    if emotion is None and layout.depth == 2 and folder_emotion(folders[1 - layout.level]) is not None:
        flipped = Layout(1 - layout.level, 2, layout.pattern)
        return f"in the layout {flipped}, the folder's is {layout} (one layout for all files, or a labels CSV)"
    if emotion is None:
        return (f"folder {folders[layout.level]!r} is no emotion (layout {layout}); a labels CSV gives emotions of "
                "your own")
    other = folders[1 - layout.level] if layout.depth == 2 else None
    if other is not None and folder_emotion(other) is not None:
        return f"folders {folders[0]!r} and {folders[1]!r} both name an emotion: which one is its emotion is not clear"
    if allowed is not None and emotion not in allowed:
        return f"emotion {emotion!r} is not one of {', '.join(sorted(allowed))}"
    speaker = other
    if layout.pattern is not None:
        found = layout.pattern.search(path.name)
        speaker = found.group(1) if found else None
        if not speaker:
            return f"the speaker pattern {layout.pattern.pattern!r} finds no speaker in the file name"
    return Clip(path=path, dataset=dataset, emotion=emotion, speaker=speaker,
                take=path.relative_to(root).with_suffix("").as_posix(), modalities=suffix_modalities(path))
