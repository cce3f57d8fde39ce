"""`avemo train` under torchrun: DistributedDataParallel with two CPU processes (Gloo backend).

The training loop itself, in two processes joined as torchrun joins them: both ranks' history rows
describe the whole epoch (every rank's shard), and the run says how many processes trained it.

The same route runs on several GPUs with NCCL (docs/cluster.md); here it checks that the ranks
train the same model, that a loss on branch outputs (late fusion: one cross-entropy per modality)
works under DDP, with uniform and with class-balanced sampling, with gradient accumulation
(micro-batches that skip DDP's all-reduce but the last), that only rank 0 writes the checkpoint,
and that the checkpoint loads. The model declares ``trains_all_parameters``, so DDP runs without
``find_unused_parameters``: were a parameter left without a gradient, the second step would fail.

Nothing here races for a port: the spawned ranks meet through a file (``init_method="file://..."``)
and ``torchrun --standalone`` binds port 0 for its store, which its workers share. Every wait is
bounded: a rank or a rendezvous that hangs fails the test with a message after ``RANKS_TIMEOUT_S``
(generous: a loaded 2-core CI machine runs these in about a minute) instead of stalling CI.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from avemo.training import load_checkpoint

RANKS_TIMEOUT_S = 300  # the spawned ranks (or a torchrun launch) of one test, all together
pytestmark = pytest.mark.timeout(2 * RANKS_TIMEOUT_S)  # a backstop (pytest-timeout) behind the bounded waits below


def _rank_entry(rank: int, fn, world: int, store: str, args: tuple) -> None:
    """One spawned rank: join the process group through the file STORE (no port), run ``fn(rank, *args)``."""
    import torch

    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world,
                                         timeout=datetime.timedelta(seconds=RANKS_TIMEOUT_S / 2))
    try:
        fn(rank, *args)
        # every rank done with its collectives before any tears the group down: a rank whose peer closed the
        # connections while its last messages were in flight was aborted ("terminate called without an active
        # exception", SIGABRT) under load
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()


def spawn_ranks(fn, folder: Path, *args, world: int = 2) -> None:
    """``fn(rank, *args)`` in ``world`` spawned processes joined in a Gloo process group through a file in
    FOLDER; fails the test, with the processes killed, when they have not all finished in ``RANKS_TIMEOUT_S``.
    torchrun's variables are not set: the trainer must use the process group it finds."""
    import torch.multiprocessing as mp

    context = mp.start_processes(_rank_entry, args=(fn, world, str(folder / "rendezvous"), args), nprocs=world,
                                 join=False, start_method="spawn")
    deadline = time.monotonic() + RANKS_TIMEOUT_S
    try:
        while not context.join(timeout=max(0.0, deadline - time.monotonic()), grace_period=10):
            if time.monotonic() >= deadline:
                pytest.fail(f"the {world} DDP ranks had not finished after {RANKS_TIMEOUT_S} s (a hung collective?)")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
                process.join()


def run_torchrun(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``cmd`` (a torchrun launch), its output; fails the test after ``RANKS_TIMEOUT_S``, having stopped torchrun
    with SIGTERM (which stops its workers; they run in sessions of their own) and then SIGKILL."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("TORCH_DISABLE_SHARE_RDZV_TCP_STORE", None)  # the workers share the agent's store: no second port
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    try:
        out, err = proc.communicate(timeout=RANKS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        pytest.fail(f"torchrun had not finished after {RANKS_TIMEOUT_S} s; its stderr ends:\n{err[-3000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _fit_au_mlp(rank: int, folder: str) -> None:
    """One rank of a two-process DDP fit of an AU MLP on 10 random items; its history to FOLDER/RANK.json."""
    from avemo.models import create_model
    from avemo.models.batching import TensorData
    from avemo.training.config import TrainConfig
    from avemo.training.trainer import fit

    model = create_model("au_mlp", num_classes=3)
    rng = np.random.default_rng(0)  # the same data on both ranks, as every rank of `avemo train` reads it
    train = TensorData({"video": list(rng.normal(size=(10, 35)).astype(np.float32))}, np.arange(10) % 3,
                       model.inputs, train=True)
    result = fit(model, train, None, TrainConfig(epochs=2, batch_size=2, device="cpu"), labels=["a", "b", "c"],
                 run_dir=Path(folder, "run"), fingerprint={"n": 10})
    Path(folder, f"{rank}.json").write_text(json.dumps({"history": result.history, "processes": result.processes}))


def test_ddp_history_describes_every_ranks_shard(tmp_path):
    """The history's train_loss and train_accuracy were rank 0's half of the epoch (its shard), nothing
    said that two processes had trained, and one process resumed their run as its own. The ranks are
    joined by a process group started before ``fit`` (through a file, without torchrun's variables):
    ``fit`` trained each rank alone then, on its own copy of the data, as if there were no group."""
    from avemo.models.batching import TensorData

    spawn_ranks(_fit_au_mlp, tmp_path, str(tmp_path))
    ranks = [json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["processes"] == ranks[1]["processes"] == 2
    assert ranks[0]["history"] == ranks[1]["history"]  # the same epoch, whichever rank says it
    # its resume state is resumed by two processes only: one would train on with half the effective batch
    from avemo.errors import CheckpointError
    from avemo.models import create_model
    from avemo.training.config import TrainConfig
    from avemo.training.trainer import fit

    model = create_model("au_mlp", num_classes=3)
    train = TensorData({"video": [np.zeros(35, np.float32)] * 10}, np.arange(10) % 3, model.inputs, train=True)
    with pytest.raises(CheckpointError, match="other settings .* torchrun processes"):
        fit(model, train, None, TrainConfig(epochs=2, batch_size=2, device="cpu"), labels=["a", "b", "c"],
            run_dir=tmp_path / "run", fingerprint={"n": 10})


def _fit_gray_3d_cnn(rank: int, folder: str) -> None:
    """One rank of a two-process DDP fit (two steps) of paper 001's 3D CNN on 16 grayscale 16x16 frames; the
    warnings it gave, to FOLDER/RANK.warnings.json."""
    import warnings

    import torch

    from avemo.models import create_model, smoke_config
    from avemo.models.batching import TensorData
    from avemo.models.inputs import example_inputs
    from avemo.training.config import TrainConfig
    from avemo.training.trainer import fit

    model = create_model("sultana_video_cnn3d", num_classes=3, **smoke_config("sultana_video_cnn3d"))
    frames = example_inputs(model.inputs, batch=8, generator=torch.Generator().manual_seed(0))["video"]
    train = TensorData({"video": list((frames.numpy() * 255).astype(np.uint8))}, np.arange(8) % 3, model.inputs,
                       train=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(model, train, None, TrainConfig(epochs=1, batch_size=2, device="cpu"), labels=["a", "b", "c"])
    Path(folder, f"{rank}.warnings.json").write_text(json.dumps([str(w.message) for w in caught]))


def test_ddp_gradients_fit_its_buckets_without_a_warning(tmp_path):
    """A Conv3d on one (gray) channel got its weight's gradient with another stride in that size-1 dimension
    than the weight's (the same memory layout: a size-1 dimension addresses nothing), and DDP's reducer,
    which compares the strides, warned "Grad strides do not match bucket view strides" on every rank of
    sultana_video_cnn3d (and of the three fusion models with its encoder). The warning is given once per
    process: a spurious one would hide a real layout mismatch (a parameter converted after DDP was built)."""
    spawn_ranks(_fit_gray_3d_cnn, tmp_path, str(tmp_path))
    for rank in (0, 1):
        caught = json.loads((tmp_path / f"{rank}.warnings.json").read_text())
        assert not [w for w in caught if "Grad strides do not match bucket view strides" in w], caught


@pytest.mark.shared_data
@pytest.mark.slow
@pytest.mark.parametrize("class_balance, accumulate", [("none", 1), ("sampler", 2)])
def test_two_process_ddp_training_writes_one_loadable_checkpoint(ravdess_speech_root, au_table, tmp_path, class_balance,
                                                                 accumulate):
    out = tmp_path / "run"
    (tmp_path / "train.toml").write_text(f'class_balance = "{class_balance}"\naccumulate = {accumulate}\n')
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "avemo.cli", "train", "--root", str(ravdess_speech_root), "--visual-table", str(au_table),
           "--model", "late_product", "--model-config", '{"video": "au_mlp"}', "--speakers", "01,02,04,05,06,07", "--val-speakers", "06,07",
           "--epochs", "3", "--config", str(tmp_path / "train.toml"), "--cache", str(tmp_path / "cache"), "--out", str(out)]
    proc = run_torchrun(cmd, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # rank 0 alone reports (the ranks agree on every epoch: test_ddp_history_describes_every_ranks_shard)
    assert len(re.findall(r"validation accuracy ([0-9.]+)", proc.stdout)) == 1, proc.stdout
    ckpt = load_checkpoint(out)
    assert ckpt.model.name == "late_product"
    assert ckpt.meta["train"]["class_balance"] == class_balance and ckpt.meta["train"]["accumulate"] == accumulate
    assert ckpt.model.trains_all_parameters  # so DDP ran without find_unused_parameters
    assert not list(out.rglob("*.tmp")), "a rank left a half-written file"
    assert ckpt.meta["metrics"]["processes"] == 2  # the batch size is per process: the run says how many


def test_only_rank_0_writes_where_no_process_group_runs(monkeypatch):
    """A model fitted in closed form (egemaps_logreg) starts no process group under torchrun: every rank
    counted as the main one and wrote the checkpoint, the figures and history.csv (through one temporary
    name) at the same time."""
    from avemo.training.trainer import is_main_process

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert not is_main_process()
    monkeypatch.setenv("RANK", "0")
    assert is_main_process()
    monkeypatch.setenv("RANK", "1")
    monkeypatch.delenv("WORLD_SIZE")
    assert is_main_process()  # not launched by torchrun (another launcher's RANK alone)


def test_only_rank_0_prints_the_end_of_run_summary(make_ravdess, avemo_main, tmp_path, monkeypatch):
    """Under torchrun every rank printed the scores and ``checkpoint: RUN`` (and its skipped files): as
    many copies as processes, the others' naming a checkpoint they did not write; and the split line. A model fitted in
    closed form starts no process group, so the ranks are told apart by torchrun's variables alone."""
    corpus = make_ravdess(("01", "05", "07"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank in ("1", "0"):  # rank 1 first: it writes nothing, so rank 0's run is not refused as finished
        monkeypatch.setenv("RANK", rank)
        code, out, err = avemo_main("train", "-d", "ravdess", "-r", corpus, "-m", "egemaps_logreg", "-j", "1",
                                    "--cache", tmp_path / "cache", "--out", tmp_path / "run")
        assert code == 0, err
        summary = [line for line in out.splitlines() if "validation accuracy" in line or line.startswith("checkpoint:")]
        assert len(summary) == (2 if rank == "0" else 0), out
        assert ("training, " in err) == (rank == "0"), err  # the split line before training, too
