"""Byte-identical files under different takes: one recording listed twice.

A reader sets aside a second file of the same take and modalities (:attr:`ScanResult.duplicates
<avemo.datasets.scan.ScanResult>`), but it cannot see that two files of *different* takes hold the
same bytes: a recording copied into a second speaker's folder of a labelled folder, or listed twice
in its labels CSV under two names. :func:`find_copies` groups the clips of a scan by the SHA-256
of their file (:func:`avemo.digest.file_digest`, memoised: the feature cache keys the same files by
it, so a command that extracts or reads features hashes each file once) and :func:`copy_warnings`
says, one line per recording:

* under two speakers: the speaker-disjoint folds are not speaker-disjoint for it (the same
  recording can be trained on and tested on) -- ``avemo benchmark`` and ``avemo train`` refuse such
  data unless told to go on (``--allow-copies``; :func:`across_speakers` says which recordings);
* under two labels: a labelling conflict;
* same speaker and label: a plain copy, which counts twice (in training, in a fold's scores).

Clips without a media file (MELD or IEMOCAP text read from an annotation file) are not compared,
nor are empty files and files that cannot be read (their error comes when their features are extracted).

Several corpora of one run (``avemo train`` with several ``--dataset/--root`` pairs or ``--corpora``)
are compared with each other too (:func:`find_copies_across`): a recording copied from RAVDESS into a
labelled folder under another speaker's name is one recording under two speakers, whatever the corpus,
and a speaker-disjoint or leave-one-corpus-out split can train on it and test on it.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avemo.datasets.records import Clip
from avemo.digest import file_digest
from avemo.errors import MediaError


@dataclass(frozen=True)
class Copies:
    """Clips of different takes whose files hold the same bytes (one recording), in path order."""

    digest: str
    clips: tuple[Clip, ...]

    @property
    def speakers(self) -> tuple[str, ...]:
        """The distinct speakers the recording is listed under, in path order."""
        return tuple(dict.fromkeys(c.speaker for c in self.clips))

    @property
    def emotions(self) -> tuple[str | None, ...]:
        """The distinct emotions it is labelled with (None: unlabelled), in first-seen order."""
        return tuple(dict.fromkeys(c.emotion for c in self.clips))

    @property
    def crosses_speakers(self) -> bool:
        """Whether labelled copies sit under two speakers: speaker-disjoint folds can put the
        recording on both sides of a split (an unlabelled copy is in no fold)."""
        return len({c.speaker for c in self.clips if c.emotion is not None}) > 1


def find_copies(clips: Iterable[Clip]) -> list[Copies]:
    """The groups of clips (of at least two takes) whose media files are byte-identical (links to one
    file included)."""
    by_digest: dict[str, list[Clip]] = {}
    for clip in clips:
        digest = media_digest(clip)
        if digest is not None:
            by_digest.setdefault(digest, []).append(clip)  # two names of one file (links) are two clips too
    groups = []
    for digest, found in by_digest.items():
        members = tuple(sorted(found, key=lambda c: Path(c.path).as_posix()))
        if len({c.take_key for c in members}) > 1:  # takes of two corpora may share an id
            groups.append(Copies(digest, members))
    return sorted(groups, key=lambda g: Path(g.clips[0].path).as_posix())


#: the hex characters of a file's SHA-256 a checkpoint records for each file it trained or validated on
#: (64 bits: a chance collision is negligible in any corpus, and 1,200 RAVDESS files take 22 kB)
DIGEST_CHARS = 16


def recording_digests(takes: Iterable[Any]) -> set[str]:
    """The content digests (the first :data:`DIGEST_CHARS` hex characters of the SHA-256) of the media
    files of ``takes`` (:class:`~avemo.datasets.pairing.Take`): what ``avemo evaluate`` compares a
    corpus's files with to count the recordings a checkpoint trained on under another corpus's names.
    Files that cannot be read, empty files and text read from an annotation file are left out."""
    digests = (media_digest(clip) for take in takes for clip in take.clips.values())
    return {d[:DIGEST_CHARS] for d in digests if d is not None}


def media_digest(clip: Clip) -> str | None:
    """The SHA-256 of ``clip``'s media file (:func:`~avemo.digest.file_digest`, memoised); None for text read
    from an annotation file shared by many clips, for an empty file (not media: every empty file would be
    "identical"; its error comes when it is decoded) and for a file that cannot be read."""
    if not (clip.has("audio") or clip.has("video")):
        return None
    try:
        return file_digest(clip.path) if os.path.getsize(clip.path) > 0 else None
    except (OSError, MediaError):
        return None


def find_copies_across(corpora: Mapping[str, Iterable[Clip]]) -> list[Copies]:
    """The recordings found in two or more of ``corpora`` (``{corpus: its clips}``, each clip's ``dataset``
    the corpus name and its ``speaker`` qualified by it, as multi-corpus training reads them): the groups
    of :func:`find_copies` over all of them whose clips come from more than one corpus (copies within one
    corpus are said when that corpus is read)."""
    groups = find_copies(c for clips in corpora.values() for c in clips)
    return [g for g in groups if len({c.dataset for c in g.clips}) > 1]


def across_speakers(groups: Iterable[Copies], files: Collection[str]) -> list[Copies]:
    """The recordings of ``groups`` under two labelled speakers (:attr:`Copies.crosses_speakers`) among the
    clips of ``files`` (the paths, as ``str``, of the clips a run reads): a copy whose other file is of a
    speaker not read, or of a label the run's label space leaves out, is on no side of its split."""
    kept = (Copies(g.digest, tuple(c for c in g.clips if str(c.path) in files)) for g in groups)
    return [g for g in kept if g.crosses_speakers]


def across_speakers_line(groups: Sequence[Copies], root: Path | None = None) -> str:
    """``groups`` (recordings under two speakers, at least one) in a few words, the first one's files
    (relative to ``root`` where under it) named: "2 recording(s) are byte-identical files under two
    speakers (e.g. a.wav (speaker 01) and b.wav (speaker 02))"."""
    files = " and ".join(f"{_shown(c.path, root)} (speaker {c.speaker})" for c in groups[0].clips)
    return f"{len(groups)} recording(s) are byte-identical files under two speakers (e.g. {files})"


def copy_warnings(groups: Sequence[Copies], root: Path | None = None) -> list[str]:
    """One line per recording: its files (relative to ``root`` where under it) with speaker and
    label, and what the copies mean for the folds and the labels."""
    return [_line(g, root) for g in groups]


def _line(group: Copies, root: Path | None) -> str:
    files = ", ".join(f"{_shown(c.path, root)} (speaker {c.speaker}, {c.emotion or 'unlabelled'})" for c in group.clips)
    said = []
    if len(group.speakers) > 1:
        said.append(f"one recording under speakers {', '.join(group.speakers)}: speaker-disjoint folds are not "
                    "speaker-disjoint for it (it can be trained on and tested on)")
    if len(group.emotions) > 1:
        said.append(f"labelled {' and '.join(e or 'unlabelled' for e in group.emotions)}: a labelling conflict")
    if not said:
        said.append(f"copies of one recording, which counts {len(group.clips)} times")
    return f"byte-identical files {files}: " + "; ".join(said)


def named_folder(root: str | Path | None) -> Path | None:
    """``root`` as a folder worth naming in a message: None for a filesystem root, the common folder of
    the corpora of a multi-corpus run that share no other ("/": paths shown relative to it read as
    relative to the working folder, "work/shared/data/...", and an error prefixed "/: " names nothing)."""
    if root is None or Path(root).parent == Path(root):
        return None
    return Path(root)


def _shown(path: Path, root: Path | None) -> str:
    root = named_folder(root)
    if root is not None:
        try:
            return Path(path).relative_to(root).as_posix()
        except ValueError:
            pass
    return str(path)

