"""One entry point for every dataset reader: :func:`read_dataset` and :func:`parse_file_name`.

=========== ================================ =========================================
name        reader                           file names
=========== ================================ =========================================
``ravdess`` :func:`~avemo.datasets.ravdess.read_ravdess`   ``03-01-07-02-02-01-01.flac``
``crema_d`` :func:`~avemo.datasets.crema_d.read_crema_d`   ``1001_DFA_ANG_XX.flv``
``emodb``   :func:`~avemo.datasets.emodb.read_emodb`       ``03a01Fa.wav``
``folder``  :func:`~avemo.datasets.folder.read_folder`     any, labelled by a CSV or by emotion folders
``meld``    :func:`~avemo.datasets.meld.read_meld`         ``train_sent_emo.csv`` (+ ``dia0_utt0.mp4``)
``iemocap`` :func:`~avemo.datasets.iemocap.read_iemocap`   ``Session1/dialog/EmoEvaluation/*.txt`` ...
=========== ================================ =========================================

Usage::

    from avemo.datasets import read_dataset
    scan = read_dataset("ravdess", "../shared/data/ravdess/speech_audio")
    print(scan.summary())            # ravdess: 1200 clips, 20 speakers, 1200 takes, 0 skipped
    for s in scan.skipped: print(s)  # path: reason
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from avemo.datasets.copies import copy_warnings, find_copies
from avemo.datasets.crema_d import parse_crema_d_name, parse_crema_d_stem, read_crema_d
from avemo.datasets.emodb import parse_emodb_name, parse_emodb_stem, read_emodb
from avemo.datasets.folder import read_folder
from avemo.datasets.iemocap import PROTOCOLS as IEMOCAP_PROTOCOLS
from avemo.datasets.iemocap import read_iemocap
from avemo.datasets.iemocap import sessions as iemocap_sessions
from avemo.datasets.labels import CREMA_D, EMODB, IEMOCAP4, MELD, RAVDESS, LabelSet
from avemo.datasets.meld import CSV_NAMES as MELD_CSV_NAMES
from avemo.datasets.meld import read_meld
from avemo.datasets.ravdess import parse_ravdess_name, read_ravdess
from avemo.datasets.scan import ScanResult
from avemo.errors import DatasetError, NameShapeError

log = logging.getLogger(__name__)

READERS: dict[str, Callable[..., ScanResult]] = {
    "ravdess": read_ravdess,
    "crema_d": read_crema_d,
    "emodb": read_emodb,
    "folder": read_folder,
    "meld": read_meld,
    "iemocap": read_iemocap,
}

NAME_PARSERS: dict[str, Callable[[str | Path], dict[str, Any]]] = {
    "ravdess": parse_ravdess_name,
    "crema_d": parse_crema_d_name,
    "emodb": parse_emodb_name,
}

#: the label set of each named dataset (a generic folder's is built from its clips; IEMOCAP's is that of
#: its default protocol, iemocap4: see :func:`~avemo.datasets.iemocap.iemocap_label_set`)
DATASET_LABEL_SETS: dict[str, LabelSet] = {
    "ravdess": RAVDESS, "crema_d": CREMA_D, "emodb": EMODB, "meld": MELD, "iemocap": IEMOCAP4
}


def list_datasets() -> list[str]:
    """Names accepted by :func:`read_dataset`."""
    return sorted(READERS)


def label_protocols(dataset: str) -> tuple[str, ...]:
    """The label protocols a dataset's reader takes as ``protocol=`` (iemocap: iemocap4, iemocap6;
    the others have none)."""
    return tuple(IEMOCAP_PROTOCOLS) if dataset == "iemocap" else ()


def read_dataset(name: str, root: str | Path, *, strict: bool = False, copies_among: Collection[str] | None = None,
                 **options: Any) -> ScanResult:
    """Read the dataset ``name`` found in folder ``root``.

    ``options`` go to the reader: ``suffixes=`` for the file-name readers, ``labels_csv=`` /
    ``speaker_pattern=`` / ``emotions=`` for ``"folder"``, ``demographics=`` for ``"crema_d"``, ``splits=`` for ``"meld"``, ``protocol=`` and ``media=`` (prepared utterance videos) for ``"iemocap"``. Returns the clips and the skipped
    files with reasons; ``strict=True`` raises a DatasetError for the first skipped file.
    Every line of the scan's ``warnings`` is logged once, here (:func:`say_warnings`).
    Byte-identical files of different takes (one recording under two speakers, two labels, or
    copied) are found by their content digest and said in ``warnings``, one line each
    (:mod:`~avemo.datasets.copies`; ``ScanResult.copies``); ``copies_among``: only among the clips of
    these speakers (those a command reads: a copy of another speaker's recording is none of its business).
    """
    try:
        reader = READERS[name]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(list_datasets())}") from None
    if options.get("labels_csv") is not None and name != "folder":  # said as "takes no option(s) ['labels_csv']"
        raise DatasetError(f"a labels CSV (avemo's --labels, or labels_csv= in Python) is for the folder dataset; "
                           f"{name} reads its labels from its own files")
    if options.get("speaker_pattern") is not None and name != "folder":
        raise DatasetError(f"a speaker pattern (avemo's --speaker-pattern, or speaker_pattern= in Python) is for the "
                           f"folder dataset; {name} reads its speakers from its own files")
    accepted = [p for p in inspect.signature(reader).parameters if p not in ("root", "strict")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DatasetError(f"dataset {name!r} takes no option(s) {unknown}; its options: {accepted}")
    return say_warnings(note_copies(reader(root, strict=strict, **options), copies_among))


def note_copies(scan: ScanResult, speakers: Collection[str] | None = None) -> ScanResult:
    """``scan`` with its ``copies`` (:func:`~avemo.datasets.copies.find_copies`; among the clips of
    ``speakers`` where given) filled, and a warning line for each recording added to ``warnings``."""
    scan.copies = find_copies(c for c in scan.clips if speakers is None or c.speaker in speakers)
    scan.warnings.extend(copy_warnings(scan.copies, scan.root))
    return scan


def say_warnings(scan: ScanResult) -> ScanResult:
    """Log each line of ``scan.warnings`` once: the one place where a reader's warnings (a CSV read as
    cp1252, MELD's missing turns, IEMOCAP's protocol counts, copies) reach the user; the readers only
    collect them."""
    for line in scan.warnings:
        log.warning(line)
    return scan


def laid_out_as(root: str | Path) -> tuple[str, str] | None:
    """(dataset, what shows it) when the folder ``root`` has the layout of a dataset whose files' names do not
    tell it: ``("meld", "its annotation CSVs")`` (``train_sent_emo.csv``...), ``("iemocap", "its Session1..5
    folders")`` (here or in its one release folder); else None. Said in the hints of the errors of a folder
    read as another dataset, or as plain media files."""
    root = Path(root)
    if not root.is_dir():
        return None
    if any((root / name).is_file() for name in MELD_CSV_NAMES.values()):
        return "meld", "its annotation CSVs"
    try:
        iemocap_sessions(root)
    except DatasetError:
        return None
    return "iemocap", "its Session1..5 folders"


def parse_file_name(name: str | Path, dataset: str | None = None) -> dict[str, Any]:
    """Parse one file name with a dataset's naming convention (for ``avemo info``).

    With ``dataset=None`` every convention is tried; names are unambiguous between them
    (7 two-digit fields, ``AAAA_SSS_EEE_LL``, ``SSTTTEV``), so at most one matches. Returns
    the flat dict of the dataset's parser (``dataset``, ``emotion``, ``speaker``, ``take``,
    ``modalities`` and the dataset's fields).

    Raises:
        DatasetError: no convention fits. A name of none of their shapes (``my_video.mp4``, a
        :class:`~avemo.errors.NameShapeError` from each parser) is said to follow none, in a few words;
        a name of one's shape with a wrong field (``03-01-09-01-01-01-01.wav``: no emotion 09) gets
        that convention's reason. Every parser's reason, for any user file, was a wall of text.
    """
    if dataset is not None:
        if dataset not in NAME_PARSERS:
            raise DatasetError(
                f"dataset {dataset!r} has no file-name convention; known: {', '.join(sorted(NAME_PARSERS))}", name
            )
        return NAME_PARSERS[dataset](Path(str(name)).name)
    near = []
    for key, parse in NAME_PARSERS.items():
        try:
            return parse(Path(str(name)).name)
        except NameShapeError:
            continue
        except DatasetError as exc:
            near.append(f"named after the {key} convention, but {exc.reason}")  # one at most: the shapes differ
    if not near:
        raise DatasetError(f"the name follows no known dataset's naming convention ({', '.join(NAME_PARSERS)})", name)
    raise DatasetError("; ".join(near), name)


def take_of_stem(dataset: str, stem: str) -> str:
    """The take a file stem belongs to, by the dataset's convention (``folder``: the stem itself).

    Used to attach external per-file tables (OpenFace output named after its video) to clips.
    """
    if dataset == "ravdess":
        return parse_ravdess_name(stem)["take"]
    if dataset == "crema_d":
        return parse_crema_d_stem(stem)["take"]
    if dataset == "emodb":
        return parse_emodb_stem(stem)["take"]
    return stem
