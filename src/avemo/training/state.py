"""Resumable training state, stored without pickle.

``RUN_DIR/last/`` holds the state after the last finished epoch: ``model.safetensors``,
``optimizer.safetensors`` (the optimizer's tensors), ``best.safetensors`` (the best epoch's
weights so far) and ``state.json`` (epoch history, best score, the optimizer's and
scheduler's plain values). The folder is written under a temporary name and swapped in,
so an interruption leaves either the previous epoch's state or the new one.

A run folder that holds a finished run (a checkpoint) is not trained into again unless asked:
:func:`finished_run` says what it holds, for the refusal, and :func:`run_folder` trains an
``--overwrite`` in ``RUN_DIR/.overwrite`` and swaps the new run's files in only once it is
complete, so an interrupted or failed overwrite leaves the old run as it was.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from avemo.errors import CheckpointError
from avemo.models.checkpoint import RESUME_DIR


def _tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def _split_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}
    for idx, entry in state["state"].items():
        plain["state"][str(idx)] = {}
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{key}"] = value.detach().cpu().contiguous().clone()
            else:
                plain["state"][str(idx)][key] = value
    return tensors, plain


def _join_optimizer(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(i): dict(v) for i, v in plain["state"].items()}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": plain["param_groups"]}


def save_resume_state(
    run_dir: Path, model, optimizer, scheduler, history, best_score, best_epoch, bad_epochs, best_state,
    fingerprint: dict[str, Any] | None = None,
) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    final, tmp, old = run_dir / RESUME_DIR, run_dir / ".last.tmp", run_dir / ".last.old"
    # Every step is inside the try, so an error or Ctrl-C at any point (even between the two renames)
    # leaves the last whole state in ``last`` and no temporary folder.
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        if old.exists():  # a process killed between the two renames
            if final.exists():
                shutil.rmtree(old)
            else:
                os.replace(old, final)
        tmp.mkdir()
        save_file(_tensors(model.state_dict()), str(tmp / "model.safetensors"))
        opt_tensors, opt_plain = _split_optimizer(optimizer.state_dict())
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        if best_state is not None:
            save_file(_tensors(best_state), str(tmp / "best.safetensors"))
        state = {
            "history": history,
            "best_score": best_score if best_score != float("-inf") else None,
            "best_epoch": best_epoch,
            "bad_epochs": bad_epochs,
            "optimizer": opt_plain,
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "fingerprint": fingerprint,
        }
        (tmp / "state.json").write_text(json.dumps(state))
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists():
            if final.exists():
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(old, final)
        raise


def load_resume_state(run_dir: Path, model, optimizer, scheduler, fingerprint: dict[str, Any] | None = None):
    """Restore model/optimizer/scheduler from ``run_dir/last``; None when there is nothing to resume.

    ``fingerprint`` (model, training config, data sizes) must equal the saved run's: resuming a
    run with other settings would silently mix two experiments.
    """
    last = run_dir / RESUME_DIR
    if not (last / "state.json").is_file():
        if (run_dir / ".last.old").is_dir():  # interrupted between the two renames
            os.replace(run_dir / ".last.old", last)
        else:
            return None
    try:
        state = json.loads((last / "state.json").read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot resume: unreadable training state ({exc})", last) from None
    now = json.loads(json.dumps(fingerprint))
    if fingerprint is not None and state.get("fingerprint") != now:
        raise CheckpointError(
            "holds an unfinished run with other settings (model, training config, data or torchrun processes: "
            f"{_differences(state.get('fingerprint'), now)}); resume it with the same command, or use another "
            "--out folder (avemo train --overwrite replaces it)", run_dir)
    try:
        model.load_state_dict(load_file(str(last / "model.safetensors")))
        optimizer.load_state_dict(_join_optimizer(load_file(str(last / "optimizer.safetensors")), state["optimizer"]))
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        best_state = load_file(str(last / "best.safetensors")) if (last / "best.safetensors").is_file() else None
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"cannot resume: the saved training state is unreadable or from another model ({exc})",
                              last) from None
    best = state["best_score"] if state["best_score"] is not None else float("-inf")
    return state["history"], best, state["best_epoch"], state["bad_epochs"], best_state


#: what a training run writes in its folder: the checkpoint pair (weights first, the JSON that names them
#: last), the history, the plots and the resume state
RUN_OUTPUTS = ("history.csv", "curves.png", "confusion.png", "roc.png", "last", "model.safetensors", "checkpoint.json")
#: the folder, inside the run folder, that an overwriting run trains in
STAGING = ".overwrite"


#: What the settings an unfinished run was started with are called (:func:`_differences`).
_SETTING_NAMES = {"n": "training and validation takes", "processes": "torchrun processes"}


def _differences(saved: Any, now: Any, shown: int = 3) -> str:
    """The settings of a resume state's fingerprint that differ from this run's, ``train.batch_size 2, now
    4`` (the first ``shown`` of them): the refusal named no setting, and a run of many options left the
    user to guess which one was not given again."""
    def walk(a: Any, b: Any, name: str) -> Iterator[str]:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in dict.fromkeys([*a, *b]):
                yield from walk(a.get(k), b.get(k), f"{name}.{k}" if name else _SETTING_NAMES.get(k, k))
        elif a != b:  # None: the setting is absent (a run of one process records no "processes")
            yield f"{name} {json.dumps(a) if a is not None else 'unset'}, now {json.dumps(b) if b is not None else 'unset'}"

    found = list(walk(saved, now, ""))
    return "; ".join(found[:shown]) + (f"; {len(found) - shown} more" if len(found) > shown else "")


def finished_run(run_dir: Path) -> str | None:
    """What the finished run in ``run_dir`` is, in words (``"a finished run of late_calibrated on
    ravdess, 8 labels, created 2026-12-06T23:00:00+00:00"``); None when it holds no checkpoint."""
    meta_path, weights = run_dir / "checkpoint.json", run_dir / "model.safetensors"
    if not (meta_path.is_file() or weights.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        model, data = meta["model"]["name"], meta.get("data", {}).get("dataset", "?")
        labels, created = len(meta["labels"]["emotions"]), meta.get("created", "?")
    except (OSError, ValueError, KeyError, TypeError):
        return "a checkpoint (its checkpoint.json is missing or unreadable)"
    return f"a finished run of {model} on {data}, {labels} labels, created {created}"


@contextmanager
def run_folder(run_dir: Path, *, overwrite: bool) -> Iterator[Path]:
    """``with run_folder(out, overwrite=...) as where: train into where``.

    Without ``overwrite``, or when ``run_dir`` holds no run output, ``where`` is ``run_dir`` itself
    (an unfinished run there is resumed). With it, the run trains in ``run_dir/.overwrite`` (what an
    earlier, killed overwrite left there is cleared first); when the body ends normally the new
    run's files replace the old ones (checkpoint.json last) and old outputs the new run did not
    write (a confusion plot, a resume state) are removed; when it raises the staging folder is
    removed and the old run stays whole. Under torchrun only rank 0 touches the folders."""
    if not overwrite or not any((run_dir / name).exists() for name in RUN_OUTPUTS):
        yield run_dir
        return
    staging, writer = run_dir / STAGING, os.environ.get("RANK", "0") == "0"
    if writer:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
    try:
        yield staging
    except BaseException:
        if writer:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    if writer:
        _swap_in(staging, run_dir)


def _swap_in(staging: Path, run_dir: Path) -> None:
    """Move what ``staging`` holds into ``run_dir`` (checkpoint.json last), remove the old run outputs
    that ``staging`` lacks, then ``staging`` itself."""
    for name in [n for n in sorted(os.listdir(staging)) if n not in RUN_OUTPUTS] + list(RUN_OUTPUTS):
        new, old = staging / name, run_dir / name
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        if new.exists():
            os.replace(new, old)
        else:
            old.unlink(missing_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
