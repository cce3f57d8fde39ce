"""Turn a command-line PATH into the clips a batch command works on, and export features.

PATH may be a single media file, a folder of media files (``dataset="auto"``: every file
with a media suffix, recursively, in sorted order), or a dataset folder read by one of the
:mod:`avemo.datasets` readers (labels parsed from file names or a CSV).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avemo.datasets.records import Clip
from avemo.datasets.scan import media_files, suffix_modalities
from avemo.errors import AvemoError, DatasetError
from avemo.output_file import prepare_folder


def _unlabelled(path: Path) -> Clip:
    return Clip(path=path, dataset="files", emotion=None, speaker="", take=str(path),
                modalities=suffix_modalities(path))


def collect_inputs(
    path: str | Path, *, dataset: str = "auto", labels_csv: str | Path | None = None, **options: Any
) -> tuple[list[Clip], list[tuple[Path, str]], list[tuple[Path, str]]]:
    """The clips under ``path``, the files skipped and the duplicates (files set aside as copies of a
    take read from another file: :attr:`~avemo.datasets.scan.ScanResult.duplicates`), with the reason.
    ``options`` given (not None) go to the dataset's reader (IEMOCAP's ``protocol=``, ``media=``); a labels
    CSV or a ``speaker_pattern=`` make ``dataset="auto"`` read a folder dataset."""
    path = Path(path)
    if not path.exists():
        raise AvemoError("no such file or folder", path)
    options = {k: v for k, v in options.items() if v is not None}
    if set(options) - {"speaker_pattern"} and dataset == "auto":
        raise AvemoError(f"{', '.join(sorted(options))} need a dataset to read (--dataset iemocap)", path)
    if dataset == "auto":
        if labels_csv is not None or "speaker_pattern" in options:
            dataset = "folder"
        elif path.is_file():
            return [_unlabelled(path)], [], []
        else:
            return [_unlabelled(p) for p in media_files(path)], [], []
    from avemo.datasets import read_dataset

    if path.is_file():
        raise DatasetError(f"a {dataset} dataset is a folder, not a file", path)
    if labels_csv is not None:
        options["labels_csv"] = labels_csv
    scan = read_dataset(dataset, path, **options)
    return (list(scan.clips), [(Path(s.path), s.reason) for s in scan.skipped],
            [(Path(s.path), s.reason) for s in scan.duplicates])


def clip_name(clip: Clip) -> str:
    """How batch reports name a clip: its media file, or ``CSV#take`` for a text-only clip (whose
    path is the annotation file it was read from, shared by many clips)."""
    if clip.has("audio") or clip.has("video"):
        return str(clip.path)
    return f"{clip.path}#{clip.take}"


def check_export_folder(out_dir: str | Path) -> None:
    """Refuse, before the extraction, an ``--out`` folder that :func:`export_features` could not write
    (a file of that name, a parent folder that cannot be created or written): one line."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise AvemoError("is a file; give the name of a folder", out_dir)
    try:
        prepare_folder(out_dir.parent)  # the export is built next to it, then renamed
    except AvemoError as exc:
        raise AvemoError(f"cannot export the features there: {exc}", out_dir) from None


def _export_name(spec, specs) -> str:
    """The file name (without ``.npz``) of ``spec``'s features in an export: the extractor's name, and
    where several of ``specs`` share it (``-f mfcc`` and ``--model``'s ``mfcc:n_mfcc=20``), its options
    (``mfcc-n_mfcc=20-deltas=false``): the second file replaced the first under one name."""
    if sum(s.name == spec.name for s in specs) < 2:
        return spec.name
    options = "".join(f"-{k}={json.dumps(v, separators=(',', ':'))}" for k, v in spec.config)
    return f"{spec.name}{options.replace('/', '_')}"


def export_features(out_dir: str | Path, clips: Sequence[Clip], specs, cache, report) -> Path:
    """Write ``index.csv`` (one row per clip) and ``<extractor>.npz`` (one array per clip, key = row index;
    ``<extractor>-<options>.npz`` for an extractor given with several configurations).

    Clips whose extraction failed are left out of the index. The folder is built under a
    temporary name and renamed when complete, so it is never half-written. Text features are
    looked up by the clip's text, the others by its file.
    """
    from avemo.digest import file_digest, text_digest

    out_dir = Path(out_dir)
    failed = {o.path for o in report.failed}
    rows = [c for c in clips if clip_name(c) not in failed]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        with open(tmp / "index.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["row", "path", "dataset", "speaker", "take", "emotion", "dialogue", "turn", "split"])
            for i, c in enumerate(rows):
                writer.writerow([i, c.path, c.dataset, c.speaker, c.take, c.emotion or "", c.dialogue or "",
                                 "" if c.turn is None else c.turn, c.split or ""])
        for spec in specs:
            ex = spec.build()
            arrays = {}
            for i, c in enumerate(rows):
                digest = text_digest(c.text or "") if ex.modality == "text" else file_digest(c.path)
                feats = cache.get(cache.key(digest, ex.cache_spec()))
                if feats is None:
                    raise AvemoError(f"feature {ex.name} missing from the cache after extraction", c.path)
                arrays[f"{i}"] = feats["x"]
            np.savez(tmp / f"{_export_name(spec, specs)}.npz", **arrays)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except OSError as exc:  # e.g. a full disk: one line, and no half-written export
        raise AvemoError(f"cannot export the features ({exc.strerror or exc})", out_dir) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
