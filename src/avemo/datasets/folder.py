"""A user's own labelled data: a folder of media files plus a labels CSV, or of one subfolder per emotion.

The CSV has one row per media file:

============  ================================================================================
column        meaning
============  ================================================================================
``path``      the file, relative to the folder (or absolute); ``file`` is accepted instead
``emotion``   the emotion (``label`` is accepted instead); common spellings and the CREMA-D /
              IEMOCAP codes become canonical names: ``anger`` / ``mad`` / ``ANG`` -> ``angry``,
              ``fear`` / ``afraid`` / ``scared`` / ``frightened`` -> ``fearful``, ``joy`` /
              ``joyful`` / ``happiness`` -> ``happy``, ``sadness`` -> ``sad``, ``surprise`` ->
              ``surprised``, ``disgusted`` -> ``disgust``, ``fru`` -> ``frustrated``
              (:data:`~avemo.datasets.labels.EMOTION_ALIASES`); ``frustrated`` and ``excited``
              stay themselves (not angry / happy); other names are kept lower-cased;
              empty means unlabelled (``Clip.emotion = None``)
``speaker``   the speaker id (required: speaker-disjoint folds need it)
``take``      optional: files of one performance share it (an audio and a video export);
              default: the path relative to the folder without its suffix, so ``a/x.wav``
              and ``a/x.mp4`` are one take
``modality``  optional: what the file carries, modalities joined by ``+``: ``audio``, ``video``
              (no sound) or ``audio+video`` (``audio_video``, the spelling of avemo 0.1, is
              read as ``audio+video``); default from the suffix: audio formats are ``audio``,
              video formats are taken to carry sound (``audio+video``) -- give the column for
              silent videos
``text``      optional: what is said in the file (a transcript), normalised
              (:func:`~avemo.datasets.text.normalise_text`); a non-empty text adds the ``text``
              modality to the clip
other         kept as strings in ``Clip.fields`` (``gender``, ``session``...)
============  ================================================================================

Column names are case-insensitive. A path written with Windows separators (``a\\b.wav``) or in
another Unicode normal form than the file's name (NFD, as macOS writes names) finds its file. Speaker
ids that differ only in leading zeros, ``.0`` or letter case (``01`` / ``1``) stay different
speakers, with a warning in ``ScanResult.warnings`` (logged by
:func:`~avemo.datasets.readers.read_dataset`). A CSV that is not UTF-8 is read as
Windows' "ANSI" code page (Excel's "CSV (Comma delimited)"), with a warning there too
(:func:`~avemo.datasets.csvfile.read_user_csv`).

A row that cannot be used (missing file, empty speaker, unknown modality, an emotion outside
``emotions=``, a second row for the same file, a ``take`` already given to a file of the same
modalities and another speaker or emotion) and a media file of the folder that no row lists are
reported in ``ScanResult.skipped``; a CSV that cannot be read or lacks a required column is a
:class:`~avemo.errors.DatasetError`.

Without a labels CSV (none given, no ``labels.csv`` in the folder) the folder names of its files say
their labels (:mod:`~avemo.datasets.emotion_folders`): ``<emotion>/<speaker>/FILE``,
``<speaker>/<emotion>/FILE``, or ``<emotion>/FILE`` with ``speaker_pattern=``, a regular expression
with one group over the file name (``^(\\d\\d)``: ``03`` from ``03a01Fa.wav``). A folder with neither is a
DatasetError.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path, PureWindowsPath

from avemo.datasets.csvfile import read_user_csv
from avemo.datasets.emotion_folders import LAYOUTS, folder_layout, read_emotion_folders
from avemo.datasets.labels import normalise_emotion
from avemo.datasets.records import Clip
from avemo.datasets.scan import (
    ScanCollector,
    ScanResult,
    check_root,
    media_files,
    normalise_suffixes,
    suffix_modalities,
)
from avemo.datasets.text import normalise_text
from avemo.errors import ConfigError, DatasetError
from avemo.modality import MEDIA_MODALITIES, parse_modalities

DATASET = "folder"
DEFAULT_LABELS_FILE = "labels.csv"
_RESERVED = ("path", "file", "emotion", "speaker", "take", "modality", "text")


def read_folder(
    root: str | Path,
    *,
    labels_csv: str | Path | None = None,
    speaker_pattern: str | None = None,
    strict: bool = False,
    suffixes: Iterable[str] | None = None,
    emotions: Iterable[str] | None = None,
    dataset: str = DATASET,
) -> ScanResult:
    """Read a folder of media files labelled by a CSV (see the module doc for the columns), or, without
    one, by its emotion folders (:mod:`~avemo.datasets.emotion_folders`).

    Args:
        root: the folder the CSV paths are relative to.
        labels_csv: the labels table; default ``root/labels.csv``.
        speaker_pattern: a folder without labels CSV: a regular expression with one group, searched in
            each file's name, whose group is the speaker (in place of speaker folders).
        strict: raise a DatasetError for the first unusable row or unlisted file instead of
            reporting it in ``skipped``.
        suffixes: only use files of these formats.
        emotions: the allowed emotions (after normalisation); rows with another emotion are
            skipped. Default: any.
        dataset: the ``Clip.dataset`` name (to keep two user corpora apart in one experiment).
    """
    root_path = check_root(root, dataset)
    csv_path = Path(labels_csv).expanduser() if labels_csv is not None else root_path / DEFAULT_LABELS_FILE
    allowed = None if emotions is None else {normalise_emotion(e) for e in emotions}
    if labels_csv is None and not csv_path.exists():
        layout = folder_layout(root_path, speaker_pattern, suffixes)
        if layout is None:
            raise DatasetError(f"no labels CSV: the folder has no {DEFAULT_LABELS_FILE} and no other labels CSV was "
                               "given (avemo's --labels, a --corpora or --test-corpus file entry's labels=, or "
                               f"labels_csv= in Python), and no emotion folders ({LAYOUTS})", root_path)
        result = read_emotion_folders(root_path, layout, dataset=dataset, strict=strict, suffixes=suffixes,
                                      allowed=allowed)
        source = root_path
    elif speaker_pattern is not None:
        raise DatasetError(f"a speaker pattern is for a folder without labels CSV; {csv_path.name}'s speaker "
                           "column names the speakers", csv_path)
    else:
        result = _read_labels_csv(root_path, csv_path, dataset=dataset, strict=strict, suffixes=suffixes,
                                  allowed=allowed)
        source = csv_path
    spelled = _speakers_spelled_alike(result.clips, source)
    if spelled:
        result.warnings.append(spelled)
    return result


def _read_labels_csv(root_path: Path, csv_path: Path, *, dataset: str, strict: bool,
                     suffixes: Iterable[str] | None, allowed: set[str] | None) -> ScanResult:
    """The clips of a folder and its labels CSV (:func:`read_folder`)."""
    collector = ScanCollector(dataset, root_path, strict=strict)
    header, rows = read_user_csv(csv_path, what="labels CSV", warn=collector.result.warnings.append)
    path_column = "path" if "path" in header else "file" if "file" in header else None
    if "emotion" not in header and "label" in header:  # the other usual name of the column
        header = [("emotion" if name == "label" else name) for name in header]
    missing = [c for c in (path_column or "path", "emotion", "speaker") if c not in header]
    if missing:
        raise DatasetError(f"labels CSV lacks column(s) {', '.join(missing)} (path or file, emotion or label, "
                           f"speaker); it has {', '.join(header)}", csv_path)
    reader = _RowReader(root_path, csv_path, dataset, {name: header.index(name) for name in header}, path_column,
                        allowed=allowed, wanted=normalise_suffixes(suffixes))
    for line, values in rows:
        outcome = reader.read(line, values)
        if isinstance(outcome, Clip):
            collector.add(outcome)
        elif outcome is not None:
            collector.skip(*outcome)
    for path in media_files(root_path, suffixes):
        if path.resolve() not in reader.listed:
            collector.skip(path, f"not listed in {csv_path.name}")
    collector.result.clips.sort(key=lambda c: c.path.as_posix())
    return collector.result


def _speakers_spelled_alike(clips: Iterable[Clip], source: Path) -> str | None:
    """A warning line when speaker ids differ only as spellings of one id (``01`` / ``1`` / ``1.0``,
    ``Anna`` / ``anna``: a column typed by hand, or joined from two tables): they are read as
    different speakers, so one person's clips could land on both sides of a speaker-disjoint split."""
    spellings: dict[str, set[str]] = {}
    for clip in clips:
        number = re.fullmatch(r"0*(\d+)(?:\.0*)?", clip.speaker)
        spellings.setdefault(number.group(1) if number else clip.speaker.casefold(), set()).add(clip.speaker)
    alike = [" / ".join(sorted(group)) for group in spellings.values() if len(group) > 1]
    if not alike:
        return None
    more = f" and {len(alike) - 3} more" if len(alike) > 3 else ""
    return (f"{source}: speakers {'; '.join(alike[:3])}{more} differ only in leading zeros, '.0' or letter case "
            "and are read as different speakers: write each person's id one way if they are one person")


class _RowReader:
    """Turns the rows of one labels CSV into clips, remembering the files listed so far."""

    def __init__(self, root: Path, csv_path: Path, dataset: str, col: dict[str, int], path_column: str, *,
                 allowed: set[str] | None, wanted: frozenset[str] | None):
        self.root, self.csv_path, self.dataset, self.col, self.path_column = root, csv_path, dataset, col, path_column
        self.allowed, self.wanted = allowed, wanted
        self.listed: set[Path] = set()

    def read(self, line: int, values: list[str]) -> Clip | tuple[Path, str] | None:
        """The row's clip, ``(file, reason)`` for a row that cannot be used, or None for a row of
        another format than the ones wanted."""
        from avemo.media.probe import MEDIA_SUFFIXES

        where = f"{self.csv_path.name} line {line}"
        raw = values[self.col[self.path_column]]
        if not raw:
            return self.csv_path, f"line {line}: empty {self.path_column}"
        path = self._locate(raw)
        suffix = path.suffix.lower()
        if self.wanted is not None and suffix not in self.wanted:
            self.listed.add(path.resolve())
            return None
        if path.resolve() in self.listed:
            return path, f"listed again in {where}"
        self.listed.add(path.resolve())
        if suffix not in MEDIA_SUFFIXES:
            return path, f"{where}: not a media file ({suffix or 'no suffix'})"
        if not path.is_file():
            return path, f"{where}: file not found{self._not_found_hint(raw, path)}"
        speaker = values[self.col["speaker"]]
        if not speaker:
            return path, f"{where}: empty speaker"
        emotion = normalise_emotion(values[self.col["emotion"]]) or None
        if self.allowed is not None and emotion not in self.allowed:
            return path, f"{where}: emotion {emotion!r} is not one of {', '.join(sorted(self.allowed))}"
        modalities = self._modalities(path, values, where)
        if isinstance(modalities, str):
            return path, modalities
        fields = {name: values[i] for name, i in self.col.items() if name not in _RESERVED}
        text = normalise_text(values[self.col["text"]]) if "text" in self.col else ""
        return Clip(path=path, dataset=self.dataset, emotion=emotion, speaker=speaker, take=self._take(path, values),
                    modalities=modalities + (("text",) if text else ()), fields=fields, text=text or None)

    def _absolute(self, raw: str) -> Path:
        path = Path(raw).expanduser()
        return path if path.is_absolute() else self.root / path

    def _locate(self, raw: str) -> Path:
        """The file a row names, relative to the folder (or absolute). When no file has the name as
        written, the same name with Windows separators (``a\\b.wav``, a CSV written on Windows) or in
        the other Unicode normal form (NFC / NFD: ``é`` as one character or two, as macOS writes names)
        names it: one name, spelled another way, never another file."""
        spellings = [raw, PureWindowsPath(raw).as_posix()] if "\\" in raw else [raw]
        spellings += [unicodedata.normalize(form, s) for s in list(spellings) for form in ("NFC", "NFD")]
        paths = [self._absolute(s) for s in dict.fromkeys(spellings)]
        return next((p for p in paths if p.is_file()), paths[0])

    def _not_found_hint(self, raw: str, path: Path) -> str:
        """Why a relative path may not be found: it is there relative to the CSV's folder (paths are
        relative to the data folder), or a file's name differs from it in letter case only."""
        if not Path(raw).is_absolute() and self.csv_path.parent.resolve() != self.root.resolve():
            beside_csv = Path(os.path.normpath(self.csv_path.parent / raw))
            if beside_csv.is_file():
                return (f" under the folder {self.root} (paths are relative to it, not to the CSV's folder, "
                        f"where {beside_csv} is)")
        if path.parent.is_dir():
            name = path.name.casefold()
            other = sorted(p.name for p in path.parent.iterdir() if p.name.casefold() == name)
            if other:
                return f" ({other[0]} differs from {path.name} in letter case)"
        return ""

    def _modalities(self, path: Path, values: list[str], where: str) -> tuple[str, ...] | str:
        """The file's modalities from the ``modality`` column or its suffix, or the reason it cannot be used."""
        from avemo.media.probe import AUDIO_SUFFIXES

        suffix = path.suffix.lower()
        text = values[self.col["modality"]].lower() if "modality" in self.col else ""
        if not text:
            modalities = suffix_modalities(path)
        else:
            try:
                modalities = parse_modalities(text.replace("audio_video", "audio+video"), where="modality")
            except ConfigError:
                modalities = ()
            if not modalities or not set(modalities) <= set(MEDIA_MODALITIES):
                return (f"{where}: modality {text!r} is not the file's streams joined by + "
                        f"({', '.join(MEDIA_MODALITIES)}; a transcript goes in the text column)")
        if modalities != ("audio",) and suffix in AUDIO_SUFFIXES:
            return f"{where}: modality {'+'.join(modalities)} but {suffix} is an audio format"
        return modalities

    def _take(self, path: Path, values: list[str]) -> str:
        """The ``take`` column, else the path relative to the folder without its suffix."""
        take = values[self.col["take"]] if "take" in self.col else ""
        if take:
            return take
        try:
            return path.relative_to(self.root).with_suffix("").as_posix()
        except ValueError:  # an absolute path outside the folder
            return path.with_suffix("").as_posix()
