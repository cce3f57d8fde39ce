"""Walking a dataset folder: the :class:`ScanResult` every reader returns.

A reader turns each media file of a folder into a :class:`~avemo.datasets.records.Clip`
by parsing its name (never by decoding it). A file whose name cannot be interpreted is
not guessed at: it goes to :attr:`ScanResult.skipped` with the reason, so that a batch job
can report it; with ``strict=True`` the reader raises a :class:`~avemo.errors.DatasetError`
for it instead.

Rules shared by all readers:

* the folder is walked recursively in sorted path order (the result never depends on
  ``os.listdir`` order), so flat folders, ``Actor_XX`` folders and nested download layouts
  all work;
* only files with a media suffix (:data:`avemo.media.probe.MEDIA_SUFFIXES`, case-insensitive)
  are considered; other files (CSV metadata, READMEs) are not media and are ignored, as are
  hidden files and folders (names starting with ``.``, e.g. macOS ``._x.wav`` resource forks);
* ``suffixes`` restricts a scan to some formats (``(".wav",)`` when a folder holds both the
  WAV and MP3 copies of CREMA-D);
* one take has at most one file per combination of modalities: of two files of the same take
  carrying the same modalities (the same clip in two formats, two copies of a folder, a stray copy
  beside the corpus) one is read and the other goes to :attr:`ScanResult.duplicates`, not to
  ``skipped`` (it is not unusable, only not needed): the file in the corpus's own layout (a
  reader's ``in_layout``: RAVDESS's ``Actor_XX`` folders) wins over one elsewhere, else the first in
  path order. A second file of the take with another speaker or emotion is no copy (a labels CSV that
  gave two recordings one ``take``): it is skipped, the reason naming the file kept;
* byte-identical files of *different* takes are found by
  :func:`~avemo.datasets.readers.read_dataset` (:mod:`~avemo.datasets.copies`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avemo.datasets.records import Clip
from avemo.errors import DatasetError

if TYPE_CHECKING:
    from avemo.datasets.copies import Copies

#: keys of a parsed file name that become :class:`Clip` attributes; the rest go to ``Clip.fields``
CLIP_KEYS = ("dataset", "emotion", "speaker", "take", "modalities")


@dataclass(frozen=True)
class Skipped:
    """A file (or a row of a labels CSV) a reader could not turn into a clip, and why."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class ScanResult:
    """What a reader found in a folder: the clips, in sorted path order (dialogue order for the
    corpora of dialogues), the skipped files, and ``warnings``: one line for each thing that was
    read but is not as expected (a CSV decoded with a fallback encoding, dialogues with missing turns);
    a reader only collects them, :func:`~avemo.datasets.readers.read_dataset` logs them, once.
    ``left_out`` counts, by the corpus's own label, the items that were read correctly but are not
    in the label protocol asked for (IEMOCAP's ``xxx``, ``oth``, ``fru`` in the 4-class protocol).
    ``transcripts``: what speech recognition did for the clips without a transcript, when it ran
    (:func:`~avemo.training.transcripts.transcribe_missing`), else None. ``duplicates``: the files
    set aside because another file of their take carries the same modalities (the reason names it).
    ``copies``: byte-identical files of different takes (:mod:`~avemo.datasets.copies`; filled by
    :func:`~avemo.datasets.readers.read_dataset`, which also says them in ``warnings``)."""

    dataset: str
    root: Path
    clips: list[Clip] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    left_out: dict[str, int] = field(default_factory=dict)
    transcripts: dict[str, Any] | None = None
    duplicates: list[Skipped] = field(default_factory=list)
    copies: list[Copies] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.clips)

    def __iter__(self) -> Iterator[Clip]:
        return iter(self.clips)

    @property
    def speakers(self) -> tuple[str, ...]:
        """The distinct speakers, in speaker sort order (numbers numerically)."""
        return tuple(sorted({c.speaker for c in self.clips}, key=speaker_sort_key))

    @property
    def takes(self) -> tuple[str, ...]:
        """The distinct takes, sorted."""
        return tuple(sorted({c.take for c in self.clips}))

    @property
    def emotions(self) -> tuple[str, ...]:
        """The distinct emotions (unlabelled clips left out), sorted."""
        return tuple(sorted({c.emotion for c in self.clips if c.emotion is not None}))

    def summary(self) -> str:
        """One line for logs: ``ravdess: 1200 clips, 20 speakers, 1200 takes, 0 skipped`` (and
        ``, 4 duplicates`` when some files were set aside as copies)."""
        return (
            f"{self.dataset}: {len(self.clips)} clips, {len(self.speakers)} speakers, "
            f"{len(self.takes)} takes, {len(self.skipped)} skipped"
            + (f", {len(self.duplicates)} duplicates" if self.duplicates else "")
        )


def speaker_sort_key(speaker: str) -> tuple[int, int, str]:
    """Sort numeric speaker ids by number (``"2"`` before ``"10"``) and the others by name after them."""
    return (0, int(speaker), speaker) if speaker.isdigit() else (1, 0, speaker)


def check_root(root: str | Path, dataset: str) -> Path:
    """``root`` as a Path, or a DatasetError if it is not an existing folder."""
    path = Path(root).expanduser()
    if not path.exists():
        raise DatasetError(f"{dataset} folder does not exist", path)
    if not path.is_dir():
        raise DatasetError(f"{dataset} root is not a folder", path)
    return path


def normalise_suffixes(suffixes: Iterable[str] | None) -> frozenset[str] | None:
    """Lower-case suffixes with a leading dot (``"WAV"`` -> ``".wav"``); None means all media suffixes."""
    if suffixes is None:
        return None
    if isinstance(suffixes, str):
        suffixes = (suffixes,)
    return frozenset(s.lower() if s.startswith(".") else f".{s.lower()}" for s in suffixes)


def media_files(root: Path, suffixes: Iterable[str] | None = None) -> list[Path]:
    """Media files under ``root`` (recursively, sorted by relative path, hidden names left out). Links
    to folders are followed (a corpus assembled from links to its speakers' folders on other disks;
    ``Path.rglob`` passed them by, and the folder read as holding no files), each folder once."""
    from avemo.media.probe import MEDIA_SUFFIXES

    wanted = normalise_suffixes(suffixes)
    found = []
    for path in _walk(Path(root)):
        suffix = path.suffix.lower()
        if suffix not in MEDIA_SUFFIXES or (wanted is not None and suffix not in wanted):
            continue
        if path.is_file():
            found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _walk(root: Path) -> Iterator[Path]:
    """The files under ``root`` without hidden names, through links to folders; a folder reached twice
    (two links to it, a link to an ancestor) is read once."""
    seen: set[str] = set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        yield from (Path(folder, name) for name in files if not name.startswith("."))


def suffix_modalities(path: Path) -> tuple[str, ...]:
    """What a file carries by its suffix alone: audio formats ``audio``, video formats ``audio+video``
    (a video is taken to have sound)."""
    from avemo.media.probe import AUDIO_SUFFIXES

    return ("audio",) if path.suffix.lower() in AUDIO_SUFFIXES else ("audio", "video")


def with_modalities(parsed: Mapping[str, Any], modalities: tuple[str, ...]) -> dict[str, Any]:
    """A parsed stem plus the modalities of its file, with the Clip keys first (for readable printouts)."""
    head = {k: parsed[k] for k in CLIP_KEYS if k in parsed}
    head["modalities"] = modalities
    return {**head, **{k: v for k, v in parsed.items() if k not in CLIP_KEYS}}


def make_clip(path: Path, parsed: Mapping[str, Any]) -> Clip:
    """A Clip from a parsed file name: the :data:`CLIP_KEYS` become attributes, the rest ``fields``."""
    return Clip(
        path=path,
        dataset=parsed["dataset"],
        emotion=parsed["emotion"],
        speaker=parsed["speaker"],
        take=parsed["take"],
        modalities=parsed["modalities"],
        fields={k: v for k, v in parsed.items() if k not in CLIP_KEYS},
    )


class ScanCollector:
    """Accumulates clips and skipped files of one scan, enforcing one file per (take, modalities)."""

    def __init__(self, dataset: str, root: Path, *, strict: bool):
        self.result = ScanResult(dataset=dataset, root=root)
        self.strict = strict
        self._seen: dict[tuple[str, tuple[str, ...]], tuple[bool, int]] = {}  # -> (in layout, index in clips)

    def skip(self, path: Path, reason: str) -> None:
        """Record a file that is not turned into a clip (or raise it, in strict mode)."""
        if self.strict:
            raise DatasetError(reason, path)
        self.result.skipped.append(Skipped(path, reason))

    def add(self, clip: Clip, *, in_layout: bool = False) -> None:
        """Add a clip unless its take already has a file of the same modalities: then the one in the
        corpus's own layout (``in_layout``) is kept, else the first added, and the other goes to
        ``duplicates`` (strict mode: raised); a file of another speaker or emotion is no copy (a labels
        CSV's ``take`` column given to two recordings): it is skipped, with both files named."""
        key = (clip.take, clip.modalities)
        if key not in self._seen:
            self._seen[key] = (in_layout, len(self.result.clips))
            self.result.clips.append(clip)
            return
        kept_in_layout, index = self._seen[key]
        kept = self.result.clips[index]
        if (clip.speaker, clip.emotion) != (kept.speaker, kept.emotion):  # a take given to two recordings
            self.skip(clip.path, f"take {clip.take} already has a file of its modalities ({clip.kind}), {kept.path}, "
                                 f"of another speaker or emotion ({kept.speaker}/{kept.emotion or 'unlabelled'}, "
                                 f"this one {clip.speaker}/{clip.emotion or 'unlabelled'}): not a copy; give each "
                                 "recording its own take")
            return
        if in_layout and not kept_in_layout:
            self._seen[key] = (True, index)
            self.result.clips[index], kept, clip = clip, clip, kept
        reason = f"a copy of take {clip.take} ({clip.kind}), which is read from {kept.path}"
        if self.strict:
            raise DatasetError(reason, clip.path)
        self.result.duplicates.append(Skipped(clip.path, reason))


def scan_folder(
    dataset: str,
    root: str | Path,
    parse: Callable[[str], Mapping[str, Any]],
    *,
    strict: bool = False,
    suffixes: Iterable[str] | None = None,
    extra_fields: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
    in_layout: Callable[[Path, Mapping[str, Any]], bool] | None = None,
) -> ScanResult:
    """Scan ``root`` with a file-name parser that returns the Clip keys plus the dataset's fields.

    ``parse`` raises a DatasetError for a name it cannot interpret; that file is skipped (or,
    with ``strict``, the error is raised with the file's path). ``extra_fields`` adds fields
    looked up elsewhere (CREMA-D demographics) to each parsed name. ``in_layout(path, parsed)``:
    whether a file sits where the corpus's own layout puts it; of two copies of a take, that one
    is read (see the module doc). The clips come in path order.
    """
    root_path = check_root(root, dataset)
    collector = ScanCollector(dataset, root_path, strict=strict)
    for path in media_files(root_path, suffixes):
        try:
            parsed = dict(parse(path.name))
        except DatasetError as exc:
            collector.skip(path, exc.reason)
            continue
        if extra_fields is not None:
            parsed.update(extra_fields(parsed))
        collector.add(make_clip(path, parsed), in_layout=in_layout is not None and in_layout(path, parsed))
    collector.result.clips.sort(key=lambda c: c.path.relative_to(root_path).as_posix())
    collector.result.duplicates.sort(key=lambda s: s.path.relative_to(root_path).as_posix())
    return collector.result
