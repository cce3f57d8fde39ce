"""Checkpoints: weights as safetensors (no pickle) next to a JSON that says everything else.

A checkpoint folder holds ``model.safetensors`` and ``checkpoint.json``:

.. code-block:: json

    {"format": "avemo.checkpoint", "format_version": 1,
     "model": {"name": "...", "num_classes": 8, "config": {...}},
     "labels": {"name": "ravdess", "emotions": ["neutral", ...]},
     "inputs": {"audio": {"modality": "audio", "feature": "mfcc", ..., "extractor": {"name", "version", "config"}}},
     "normalization": {"speaker_norm": false, "mean": {...}, "std": {...}, "kinds": {...}},
     "train": {...TrainConfig...}, "data": {...dataset, speakers...}, "metrics": {...},
     "versions": {"avemo": ..., "torch": ..., "numpy": ...}, "created": "..."}

Paths of the data are recorded by :func:`recorded_path`: ``data.root`` (one corpus; a run of several
records no common root, only each ``data.corpora[].root``; older ones may hold ``""``), each
``data.corpora[].root`` and a visual table's ``source`` are the folder's (or file's) last two names,
POSIX-style (``"ravdess/speech_audio"``, ``"emodb_dev/wav"``), next to the corpus name. A checkpoint
says which data it was trained on, never where that data sat on the machine that trained it (no
absolute path, no path relative to the trainer's working directory); only ``avemo evaluate`` reads
these fields back, comparing a corpus's root with its ``--root`` recorded the same way (which folder
corpus's speaker pattern applies), so older checkpoints that hold such paths load unchanged.

How a ``folder`` corpus was read is recorded beside its root (``data``, or each ``data.corpora[]``):
``speaker_pattern`` (the regular expression that named its speakers) and ``labels_csv`` (a labels CSV
other than the folder's ``labels.csv``, by :func:`recorded_file`), each only when given. ``avemo
evaluate`` reads a folder without labels CSV with the recorded pattern unless told another. Both keys
are optional additions to ``format_version`` 1: a checkpoint without them (older, or of a folder read
by its labels.csv or its speaker folders) loads and is evaluated as before.

:func:`load_checkpoint` refuses (one-line :class:`~avemo.errors.CheckpointError`) a folder that
is not a checkpoint, a foreign or corrupt file, or weights that do not fit the recorded model.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from avemo.config import read_format_json
from avemo.datasets.labels import LabelSet
from avemo.errors import AvemoError, CheckpointError
from avemo.modality import legacy_key, legacy_renamed
from avemo.models.inputs import InputSpec
from avemo.models.normalization import Normalizer

FORMAT = "avemo.checkpoint"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
META = "checkpoint.json"
#: the state after a run's last finished epoch (:mod:`avemo.training.state`), until checkpoint.json is written
RESUME_DIR = "last"


#: how many trailing names of a data path a checkpoint records (see the module doc)
RECORDED_PATH_PARTS = 2


def recorded_path(path: str | Path) -> str:
    """How a checkpoint records a data folder or file: its last two names, POSIX-style, after ``..``
    is resolved (``/x/wt/benchmarks/../../data/ravdess/speech_audio`` -> ``ravdess/speech_audio``)."""
    parts = Path(os.path.normpath(os.path.abspath(path))).parts[1:]  # without the drive / root anchor
    return "/".join(parts[-RECORDED_PATH_PARTS:])


def recorded_file(path: str | Path, root: str | Path) -> str:
    """How a checkpoint records a file of the data folder ``root``: its path in the folder (POSIX-style),
    else :func:`recorded_path`'s last names; no checkpoint holds the folders above its data."""
    inside = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    return Path(inside).as_posix() if not inside.startswith("..") else recorded_path(path)


def package_versions() -> dict[str, str]:
    import numpy

    from avemo.version import __version__

    versions = {"avemo": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
                "python": platform.python_version()}
    for name in ("librosa", "opensmile", "av", "mediapipe", "sklearn"):
        try:
            module = __import__(name)
            versions[name] = getattr(module, "__version__", "?")
        except ImportError:
            pass
    return versions


def extractor_spec(spec: InputSpec) -> dict[str, Any] | None:
    """The full cache spec (name, version, complete config) of an input's extractor; None for tables."""
    from avemo.features.base import get_extractor, list_extractors

    if spec.feature not in list_extractors():
        return None
    return get_extractor(spec.feature, **dict(spec.config)).cache_spec()


@dataclass
class Checkpoint:
    model: Any  # AvemoModel
    labels: LabelSet
    inputs: dict[str, InputSpec]
    normalizer: Normalizer
    meta: dict[str, Any]
    path: Path | None = None


def save_checkpoint(
    out_dir: str | Path,
    model,
    *,
    labels: LabelSet,
    normalizer: Normalizer,
    extra: dict[str, Any] | None = None,
    tables: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """Write ``out_dir/model.safetensors`` and ``out_dir/checkpoint.json`` (atomically, as a pair)."""
    out_dir = Path(out_dir)
    inputs = {}
    for name, spec in model.inputs.items():
        entry = spec.to_dict()
        entry["extractor"] = extractor_spec(spec)
        if entry["extractor"] is None and tables and spec.feature in tables:
            entry["table"] = tables[spec.feature]
        inputs[name] = entry
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": dict(model.build_args),
        "labels": labels.to_dict(),
        "inputs": inputs,
        "normalization": normalizer.to_dict(),
        "versions": package_versions(),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".ckpt.", dir=out_dir))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS), metadata={"format": FORMAT})
        (tmp / META).write_text(json.dumps(meta, indent=2, default=_json_default))
        os.replace(tmp / WEIGHTS, out_dir / WEIGHTS)
        os.replace(tmp / META, out_dir / META)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in checkpoint.json")


def read_meta(path: str | Path) -> dict[str, Any]:
    """The checkpoint.json of a checkpoint folder, checked for format, in the current modality
    vocabulary (an old checkpoint's ``"visual"`` names read as ``"video"``: :mod:`avemo.modality`)."""
    path = Path(path)
    meta_path = path / META if path.is_dir() else path
    if not path.exists():
        raise CheckpointError("no such checkpoint", path)
    if not meta_path.is_file():
        if (path / RESUME_DIR / "state.json").is_file():  # an `avemo train --out` folder before its last epoch
            raise CheckpointError(f"holds an unfinished training run (no {META} yet): `avemo train` was interrupted "
                                  "or is still running; the same train command finishes it", path)
        raise CheckpointError(f"not a checkpoint folder (no {META})", path)
    meta = read_format_json(meta_path, path, fmt=FORMAT, version=FORMAT_VERSION, noun="checkpoint",
                            what="an avemo checkpoint")
    return _current_names(meta)


def _current_names(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` with old modality names translated where a checkpoint stores them: the model's
    config keys, the input names and their modality, the normalisation statistics' keys."""
    out = dict(meta)
    model = meta.get("model")
    if isinstance(model, dict) and isinstance(model.get("config"), dict):
        out["model"] = {**model, "config": legacy_renamed(model["config"])}
    inputs = meta.get("inputs")
    if isinstance(inputs, dict):
        out["inputs"] = {
            legacy_key(name): {**entry, "modality": legacy_key(str(entry.get("modality")))}
            if isinstance(entry, dict) and "modality" in entry else entry
            for name, entry in inputs.items()
        }
    norm = meta.get("normalization")
    if isinstance(norm, dict):
        out["normalization"] = {k: legacy_renamed(v) if isinstance(v, dict) else v for k, v in norm.items()}
    return out


def load_checkpoint(path: str | Path, *, device: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild the model of a checkpoint folder with its weights, labels, inputs and statistics."""
    from avemo.models import create_model

    path = Path(path)
    if path.is_file():  # its checkpoint.json or weights, named instead of the folder
        raise CheckpointError(f"a checkpoint is a folder: give {path.parent}", path)
    meta = read_meta(path)
    weights = path / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"checkpoint has no {WEIGHTS}", path)
    try:
        model_meta = meta["model"]
        model = create_model(model_meta["name"], num_classes=int(model_meta["num_classes"]), **model_meta["config"])
        labels = LabelSet.from_dict(meta["labels"])
        normalizer = Normalizer.from_dict(meta["normalization"])
    except AvemoError as exc:
        raise CheckpointError(f"cannot rebuild the model: {exc.reason}", path) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{META} is incomplete or malformed ({type(exc).__name__}: {exc})", path) from None
    if len(labels) != model.num_classes:
        raise CheckpointError(f"label set has {len(labels)} emotions but the model {model.num_classes} outputs", path)
    try:
        state = {legacy_key(k): v for k, v in load_file(str(weights)).items()}
    except Exception as exc:  # safetensors raises its own error types on corrupt files
        raise CheckpointError(f"{WEIGHTS} is not a readable safetensors file ({exc})", path) from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "mismatch"
        raise CheckpointError(f"weights do not fit model {model_meta['name']} ({first})", path) from None
    model.to(device).eval()
    return Checkpoint(model=model, labels=labels, inputs=dict(model.inputs), normalizer=normalizer, meta=meta, path=path)


def check_compatible(ckpt: Checkpoint, *, tables: dict[str, Any] | None = None) -> None:
    """Refuse to run ``ckpt`` on features computed with other settings than it was trained on.

    Label sets are not checked here: a checkpoint is scored on another corpus's labels over
    :func:`~avemo.datasets.labels.comparison_map`, which refuses sets that cannot be compared."""
    where = ckpt.path
    recorded = ckpt.meta.get("inputs", {})
    for name, spec in ckpt.inputs.items():
        entry = recorded.get(name, {})
        want = entry.get("extractor")
        if want is not None:
            have = extractor_spec(spec)
            if have != want:
                raise CheckpointError(
                    f"input {name!r}: the checkpoint's features ({want['name']} v{want['version']}, {want['config']}) "
                    f"differ from what this avemo computes ({have['name']} v{have['version']}, {have['config']})",
                    where,
                )
        elif "table" in entry and tables is not None and spec.feature in tables:
            table = tables[spec.feature]
            if list(getattr(table, "columns", [])) != entry["table"].get("columns"):
                raise CheckpointError(
                    f"input {name!r}: table {spec.feature} has other columns than the one the checkpoint was trained on",
                    where,
                )
