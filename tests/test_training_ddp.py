"""`avemo train` under torchrun: DistributedDataParallel with two CPU processes (Gloo backend).

The same route runs on several GPUs with NCCL (docs/cluster.md); here it checks that the ranks
train the same model, that a loss on branch outputs (late fusion: one cross-entropy per modality)
works under DDP, with uniform and with class-balanced sampling, with gradient accumulation
(micro-batches that skip DDP's all-reduce but the last), that only rank 0 writes the checkpoint,
and that the checkpoint loads. The model declares ``trains_all_parameters``, so DDP runs without
``find_unused_parameters``: were a parameter left without a gradient, the second step would fail.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from avemo.training import load_checkpoint

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]


@pytest.mark.parametrize("class_balance, accumulate", [("none", 1), ("sampler", 2)])
def test_two_process_ddp_training_writes_one_loadable_checkpoint(ravdess_speech_root, au_table, tmp_path, class_balance,
                                                                 accumulate):
    out = tmp_path / "run"
    (tmp_path / "train.toml").write_text(f'class_balance = "{class_balance}"\naccumulate = {accumulate}\n')
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "avemo.cli", "train", "--root", str(ravdess_speech_root), "--visual-table", str(au_table),
           "--model", "late_product", "--model-config", '{"video": "au_mlp"}', "--speakers", "01,02,04,05,06,07", "--val-speakers", "06,07",
           "--epochs", "3", "--config", str(tmp_path / "train.toml"), "--cache", str(tmp_path / "cache"), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # both ranks report; DDP keeps their weights identical, so they agree on the validation accuracy
    accs = re.findall(r"validation accuracy ([0-9.]+)", proc.stdout)
    assert len(accs) == 2, proc.stdout
    assert accs[0] == accs[1]
    ckpt = load_checkpoint(out)
    assert ckpt.model.name == "late_product"
    assert ckpt.meta["train"]["class_balance"] == class_balance and ckpt.meta["train"]["accumulate"] == accumulate
    assert ckpt.model.trains_all_parameters  # so DDP ran without find_unused_parameters
    assert not list(out.rglob("*.tmp")), "a rank left a half-written file"
