"""Resumable training state, stored without pickle.

``RUN_DIR/last/`` holds the state after the last finished epoch: ``model.safetensors``,
``optimizer.safetensors`` (the optimizer's tensors), ``best.safetensors`` (the best epoch's
weights so far) and ``state.json`` (epoch history, best score, the optimizer's and
scheduler's plain values). The folder is written under a temporary name and swapped in,
so an interruption leaves either the previous epoch's state or the new one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from avemo.errors import CheckpointError


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
    final, tmp, old = run_dir / "last", run_dir / ".last.tmp", run_dir / ".last.old"
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
    last = run_dir / "last"
    if not (last / "state.json").is_file():
        if (run_dir / ".last.old").is_dir():  # interrupted between the two renames
            os.replace(run_dir / ".last.old", last)
        else:
            return None
    try:
        state = json.loads((last / "state.json").read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot resume: unreadable training state ({exc})", last) from None
    if fingerprint is not None and state.get("fingerprint") != json.loads(json.dumps(fingerprint)):
        raise CheckpointError(
            "holds an unfinished run with other settings (model, training config or data); "
            "resume it with the same command, or use another --out folder", run_dir)
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
