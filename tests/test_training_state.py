"""The resume state of a training run (``run/last``) is replaced whole or not at all: an error or a
Ctrl-C at any step of :func:`avemo.training.state.save_resume_state` (writing the files, or between
its two renames) leaves the previous state loadable and no temporary folder."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
import torch

from avemo.training import state as state_module
from avemo.training.state import load_resume_state, save_resume_state


def _save(run, history):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    save_resume_state(run, model, optimizer, None, history, 0.5, 1, 0, None)
    return model, optimizer


def _history(run):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return load_resume_state(run, model, optimizer, None)[0]


def _fail_on_call(real, n):
    calls = []

    def wrapped(*args, **kwargs):
        calls.append(args)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    return wrapped


@pytest.mark.parametrize("where", ["writing", "between_renames", "after_renames"])
def test_an_interrupted_save_keeps_the_previous_state(tmp_path, monkeypatch, where):
    run = tmp_path / "run"
    _save(run, [{"epoch": 1}])
    if where == "writing":
        monkeypatch.setattr(state_module, "save_file", _fail_on_call(state_module.save_file, 2))
    elif where == "between_renames":  # last -> .last.old done, .last.tmp -> last not yet
        monkeypatch.setattr(state_module.os, "replace", _fail_on_call(os.replace, 2))
    else:  # the new state is in place, the old one not yet removed
        monkeypatch.setattr(state_module.shutil, "rmtree", _fail_on_call(state_module.shutil.rmtree, 1))
    with pytest.raises(KeyboardInterrupt):
        _save(run, [{"epoch": 1}, {"epoch": 2}])
    monkeypatch.undo()
    assert sorted(p.name for p in run.iterdir()) == ["last"]
    expected = [{"epoch": 1}, {"epoch": 2}] if where == "after_renames" else [{"epoch": 1}]
    assert _history(run) == expected


def test_a_state_left_between_the_renames_by_a_killed_process_is_kept(tmp_path):
    run = tmp_path / "run"
    _save(run, [{"epoch": 1}])
    os.replace(run / "last", run / ".last.old")  # killed (SIGKILL) between the two renames
    _save(run, [{"epoch": 1}, {"epoch": 2}])
    assert sorted(p.name for p in run.iterdir()) == ["last"]
    assert _history(run) == [{"epoch": 1}, {"epoch": 2}]


def test_an_epoch_in_history_csv_is_an_epoch_of_the_resume_state(tmp_path, monkeypatch):
    """fit() saves the resume state before it writes history.csv: a Ctrl-C between the two leaves a
    history one epoch behind the state (rewritten on resume), never an epoch the state lacks."""
    from avemo.models import create_model
    from avemo.models.batching import TensorData
    from avemo.training import TrainConfig, fit
    from avemo.training import trainer as trainer_module

    model = create_model("egemaps_mlp", num_classes=3)
    features = [np.random.default_rng(i).normal(size=88).astype(np.float32) for i in range(12)]
    data = TensorData({name: features for name in model.inputs}, np.arange(12) % 3, model.inputs)
    monkeypatch.setattr(trainer_module, "_write_history", _fail_on_call(trainer_module._write_history, 2))
    with pytest.raises(KeyboardInterrupt):  # in epoch 2, after its state was saved
        fit(model, data, None, TrainConfig(epochs=5, batch_size=4), labels=["a", "b", "c"], run_dir=tmp_path / "run")
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["history.csv", "last"]
    assert len(json.loads((tmp_path / "run" / "last" / "state.json").read_text())["history"]) == 2
    assert (tmp_path / "run" / "history.csv").read_text().count("\n") == 2  # header + epoch 1


def test_a_run_resumed_with_other_settings_is_refused_naming_them(tmp_path):
    """The refusal said "other settings (model, training config, data or torchrun processes)": after a
    long command line changed in one option (--batch-size 4 for 2), which one was left to guess."""
    from avemo.errors import CheckpointError

    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    saved = {"model": {"name": "m", "config": {"hidden": 8}}, "train": {"batch_size": 2, "lr": 0.001}, "n": [8, 9]}
    save_resume_state(tmp_path, model, optimizer, None, [{"epoch": 1}], 0.5, 1, 0, None, saved)
    now = {**saved, "train": {"batch_size": 4, "lr": 0.001}, "n": [8, 10]}
    with pytest.raises(CheckpointError) as err:
        load_resume_state(tmp_path, model, optimizer, None, now)
    assert ("other settings (model, training config, data or torchrun processes: train.batch_size 2, now 4; "
            "training and validation takes [8, 9], now [8, 10]); resume it with the same command") in str(err.value)
    assert load_resume_state(tmp_path, model, optimizer, None, saved) is not None  # the same settings resume


def test_a_run_folder_with_only_its_resume_state_is_named_an_unfinished_run(tmp_path, avemo_main):
    """An interrupted `avemo train --out RUN` given to evaluate, predict or export: it said 'not a checkpoint
    folder (no checkpoint.json)', as for a folder that never held a run; and a checkpoint's own
    checkpoint.json given for the folder said 'checkpoint has no model.safetensors'."""
    from avemo.errors import CheckpointError
    from avemo.models.checkpoint import load_checkpoint

    run = tmp_path / "run"
    _save(run, [{"epoch": 1}])
    with pytest.raises(CheckpointError, match="holds an unfinished training run .*the same train command finishes it"):
        load_checkpoint(run)
    code, _, err = avemo_main("export", "--model", run, "--out", tmp_path / "onnx")
    assert code == 2 and err.startswith(f"avemo: error: --model {run}: holds an unfinished training run"), err
    (run / "checkpoint.json").write_text("{}")
    with pytest.raises(CheckpointError, match=re.escape(f"a checkpoint is a folder: give {run}") + "$"):
        load_checkpoint(run / "checkpoint.json")
