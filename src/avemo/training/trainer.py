"""One training loop for every registered model.

:func:`fit` trains a model on a :class:`~avemo.models.batching.TensorData`, evaluates it on the
validation speakers after every epoch, keeps the best epoch's weights (early stopping with
``patience``) and, given a ``run_dir``, logs ``history.csv`` and saves a resumable state
after every epoch: an interrupted run started again with the same ``run_dir`` continues
from its last finished epoch and ends with the same weights as an uninterrupted one
(every epoch's randomness is derived from ``seed`` and the epoch number).

Devices: CPU, or CUDA when present (``device="auto"``), with mixed precision on CUDA.
Several GPUs: launch with ``torchrun --nproc_per_node N -m avemo.cli train ...``; the loop then
wraps the model in ``DistributedDataParallel`` and shards batches with a
``DistributedSampler`` (the standard PyTorch route; only rank 0 writes files), or with
:class:`DistributedBalancedSampler` when ``class_balance="sampler"``.
"""

from __future__ import annotations

import copy
import csv
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler, WeightedRandomSampler

from avemo.metrics import compute_metrics
from avemo.models.base import AvemoModel
from avemo.models.batching import TensorData, as_batch, collate
from avemo.training.config import AugmentConfig, TrainConfig
from avemo.training.state import load_resume_state, save_resume_state

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    best_epoch: int
    best_score: float
    epochs_run: int
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def _balanced_weights(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """Per-item weights 1 / count(class): every class is drawn equally often on average."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    return torch.as_tensor(1.0 / np.maximum(counts[labels], 1))


class DistributedBalancedSampler(torch.utils.data.Sampler):
    """Class-balanced sampling under DDP: every rank draws the same weighted sample of the whole
    training set (with replacement, from a generator seeded by ``seed``, the same on every rank) and
    keeps every ``world``-th item from position ``rank``, so the ranks' shards are disjoint slices
    of one balanced epoch of ``ceil(n / world) * world`` draws."""

    def __init__(self, labels: np.ndarray, n_classes: int, *, rank: int, world: int, seed: int):
        self.weights = _balanced_weights(np.asarray(labels), n_classes)
        self.rank, self.world = rank, world
        self.per_rank = math.ceil(len(self.weights) / world)
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self):
        draws = torch.multinomial(self.weights, self.per_rank * self.world, replacement=True,
                                  generator=self.generator)
        return iter(draws[self.rank::self.world].tolist())


def epoch_sampler(labels: np.ndarray, n_classes: int, config: TrainConfig, epoch: int, gen: torch.Generator,
                  rank: int = 0, world: int = 1) -> torch.utils.data.Sampler:
    """The training sampler of one epoch: uniform order, or class-balanced draws with
    ``class_balance="sampler"``; under DDP (``world > 1``) each rank gets its shard of either.
    ``gen`` is the epoch's generator (seeded alike on every rank)."""
    if config.class_balance == "sampler":
        if world > 1:  # a generator of its own: the epoch's is also drawn from by augmentation
            return DistributedBalancedSampler(labels, n_classes, rank=rank, world=world, seed=gen.initial_seed())
        return WeightedRandomSampler(_balanced_weights(labels, n_classes), len(labels), replacement=True, generator=gen)
    if world > 1:
        sampler = torch.utils.data.DistributedSampler(range(len(labels)), num_replicas=world, rank=rank,
                                                      seed=config.seed)
        sampler.set_epoch(epoch)
        return sampler
    return RandomSampler(range(len(labels)), generator=gen)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _distributed() -> tuple[int, int]:
    """(rank, world size) when launched by torchrun, else (0, 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and torch.distributed.is_available():
        if not torch.distributed.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            torch.distributed.init_process_group(backend)
        return torch.distributed.get_rank(), world
    return 0, 1


class _AllOutputs(torch.nn.Module):
    """The model with ``forward`` = its ``forward_outputs`` (logits and any branch outputs), so that
    under ``DistributedDataParallel``, which calls ``forward``, a loss on branch outputs (late
    fusion, ``late_calibrated``) sees them as it does on one process."""

    def __init__(self, model: AvemoModel):
        super().__init__()
        self.model = model

    def forward(self, inputs):
        return self.model.forward_outputs(inputs)


def is_main_process() -> bool:
    """False on the ranks other than 0 of a ``torchrun`` launch (they must not write files)."""
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()) or \
        torch.distributed.get_rank() == 0


def _seed(seed: int, epoch: int) -> None:
    torch.manual_seed(seed * 100_003 + epoch)


def augment_batch(
    inputs: dict[str, torch.Tensor],
    kinds: dict[str, str],
    modalities: dict[str, str],
    cfg: AugmentConfig,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """SpecAugment masks, Gaussian noise and modality dropout on a (standardised) batch."""
    out = dict(inputs)
    for name, x in inputs.items():
        kind = kinds[name]
        if kind == "frames":
            continue
        x = x.clone()
        if cfg.specaugment and kind == "sequence":
            b, t, d = x.shape
            for _ in range(cfg.time_masks):
                w = torch.randint(0, cfg.time_mask + 1, (b,), generator=generator)
                s = (torch.rand(b, generator=generator) * (t - w).clamp(min=1)).long()
                idx = torch.arange(t)[None, :]
                x[(idx >= s[:, None]) & (idx < (s + w)[:, None])] = 0.0
            for _ in range(cfg.freq_masks):
                w = torch.randint(0, cfg.freq_mask + 1, (b,), generator=generator)
                s = (torch.rand(b, generator=generator) * (d - w).clamp(min=1)).long()
                idx = torch.arange(d)[None, :]
                mask = (idx >= s[:, None]) & (idx < (s + w)[:, None])
                x.masked_fill_(mask[:, None, :], 0.0)
        if cfg.noise_std > 0:
            x = x + cfg.noise_std * torch.randn(x.shape, generator=generator)
        out[name] = x
    if cfg.modality_dropout > 0:
        mods = sorted(set(modalities.values()))
        if len(mods) > 1:
            b = next(iter(inputs.values())).shape[0]
            drop = torch.rand(b, generator=generator) < cfg.modality_dropout
            which = torch.randint(0, len(mods), (b,), generator=generator)
            for name, mod in modalities.items():
                sel = drop & (which == mods.index(mod))
                if sel.any():
                    x = out[name].clone()
                    x[sel] = 0.0
                    out[name] = x
    return out


def predict_proba(model: AvemoModel, data: TensorData, *, batch_size: int = 128, device=None) -> np.ndarray:
    """Class probabilities (n, C) of ``model`` on ``data`` (eval mode, no augmentation)."""
    device = device or next(model.parameters()).device
    model.eval()
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=collate)
    out = []
    with torch.no_grad():
        for inputs, _ in loader:
            inputs = {k: v.to(device) for k, v in inputs.items()}
            logits = model(inputs).float()
            out.append(torch.softmax(logits, dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.num_classes), dtype=np.float32)


def evaluate_loss(model: AvemoModel, data: TensorData, probs: np.ndarray) -> float:
    p = np.clip(probs[np.arange(len(data)), data.labels], 1e-7, 1.0)
    return float(-np.log(p).mean())


def _score(row: dict[str, float], monitor: str) -> float:
    value = row[monitor]
    return -value if monitor == "val_loss" else value


@dataclass
class EarlyStopping:
    """The best epoch so far and how many epochs have not beaten it (``patience`` of them stop training).

    ``best_state`` holds the best epoch's weights (CPU copies); without validation data every epoch
    is the "best" and no weights are kept (the last ones are the result).
    """

    patience: int
    best_score: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    best_state: dict[str, torch.Tensor] | None = None

    @property
    def stop(self) -> bool:
        return self.bad_epochs >= self.patience

    def update(self, epoch: int, score: float | None, model: AvemoModel) -> None:
        """Record epoch ``epoch``'s validation ``score`` (None: no validation data)."""
        if score is None:
            self.best_epoch, self.best_state = epoch, None
        elif score > self.best_score:
            self.best_score, self.best_epoch, self.bad_epochs = score, epoch, 0
            self.best_state = copy.deepcopy(model.state_dict())
        else:
            self.bad_epochs += 1


@dataclass
class _Setup:
    """What one :func:`fit` call trains with (built by :func:`_setup`)."""

    net: torch.nn.Module  # the model as called in training (DDP-wrapped under torchrun)
    device: torch.device
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    scaler: torch.amp.GradScaler
    use_amp: bool
    rank: int
    world: int


def _setup(model: AvemoModel, config: TrainConfig) -> _Setup:
    """Device (the local GPU under torchrun), DDP wrapping, optimizer, scheduler and AMP scaler."""
    rank, world = _distributed()
    device = pick_device(config.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    model.to(device)
    net: torch.nn.Module = _AllOutputs(model)
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    if config.optimizer == "adamw":
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
        if config.scheduler == "cosine"
        else None
    )
    use_amp = config.amp and device.type == "cuda"
    return _Setup(net, device, optimizer, scheduler, torch.amp.GradScaler("cuda", enabled=use_amp), use_amp, rank,
                  world)


def train_one_epoch(model: AvemoModel, train: TensorData, config: TrainConfig, setup: _Setup, epoch: int,
                    n_classes: int) -> dict[str, float]:
    """One pass over ``train`` (with the epoch's own seeded randomness); the epoch's history row."""
    _seed(config.seed, epoch)
    train.set_epoch(epoch)
    gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    sampler = epoch_sampler(train.labels, n_classes, config, epoch, gen, setup.rank, setup.world)
    loader = DataLoader(
        train, batch_size=config.batch_size, sampler=sampler, collate_fn=collate,
        drop_last=len(train) > config.batch_size,
    )
    kinds = {n: s.kind for n, s in train.specs.items()}
    modalities = {n: s.modality for n, s in train.specs.items()}
    setup.net.train()
    total, seen, correct = 0.0, 0, 0
    for inputs, targets in loader:
        inputs = augment_batch(inputs, kinds, modalities, config.augment, gen)
        inputs = {k: v.to(setup.device, non_blocking=True) for k, v in inputs.items()}
        targets = targets.to(setup.device)
        loss, logits = _train_step(model, config, setup, inputs, targets, gen, epoch, seen)
        total += float(loss.detach()) * targets.shape[0]
        correct += int((logits.argmax(1) == targets).sum())
        seen += targets.shape[0]
    if setup.scheduler is not None:
        setup.scheduler.step()
    return {
        "epoch": epoch,
        "lr": setup.optimizer.param_groups[0]["lr"],
        "train_loss": total / max(seen, 1),
        "train_accuracy": correct / max(seen, 1),
    }


def _train_step(model: AvemoModel, config: TrainConfig, setup: _Setup, inputs: dict[str, torch.Tensor],
                targets: torch.Tensor, gen: torch.Generator, epoch: int, seen: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward (with mixup when configured), backward and optimizer step of one batch; (loss, logits)."""
    lam, perm = 1.0, None
    if config.augment.mixup_alpha > 0:
        lam = float(np.random.default_rng((config.seed, epoch, seen)).beta(
            config.augment.mixup_alpha, config.augment.mixup_alpha))
        perm = torch.randperm(targets.shape[0], generator=gen).to(setup.device)
        inputs = {k: lam * v + (1 - lam) * v[perm] for k, v in inputs.items()}
    with torch.autocast(device_type=setup.device.type, enabled=setup.use_amp):
        outputs = setup.net(inputs)
        loss = model.loss(outputs, targets)
        if perm is not None:
            loss = lam * loss + (1 - lam) * model.loss(outputs, targets[perm])
    setup.optimizer.zero_grad(set_to_none=True)
    setup.scaler.scale(loss).backward()
    if config.grad_clip > 0:
        setup.scaler.unscale_(setup.optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    setup.scaler.step(setup.optimizer)
    setup.scaler.update()
    return loss, outputs["logits"] if isinstance(outputs, dict) else outputs


def validate(model: AvemoModel, val: TensorData, config: TrainConfig, labels: list[str],
             device: torch.device) -> dict[str, float]:
    """Validation loss, accuracy and UAR of ``model`` on ``val`` (added to the epoch's history row)."""
    probs = predict_proba(model, val, batch_size=config.eval_batch_size, device=device)
    m = compute_metrics(val.labels, probs, labels)
    return {"val_loss": evaluate_loss(model, val, probs), "val_accuracy": m.accuracy, "val_uar": m.uar}


def fit(
    model: AvemoModel,
    train: TensorData,
    val: TensorData | None,
    config: TrainConfig,
    *,
    labels: list[str],
    run_dir: str | Path | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    fingerprint: dict | None = None,
) -> FitResult:
    """Train ``model`` (in place); return the best epoch and the per-epoch history.

    Without ``val`` the model trains for ``config.epochs`` epochs and keeps the last weights.
    """
    t0 = time.perf_counter()
    setup = _setup(model, config)
    run_dir = Path(run_dir) if run_dir is not None else None
    history: list[dict[str, float]] = []
    stopping = EarlyStopping(config.patience)
    if run_dir is not None:
        resumed = load_resume_state(run_dir, model, setup.optimizer, setup.scheduler, fingerprint)
        if resumed is not None:
            history, stopping.best_score, stopping.best_epoch, stopping.bad_epochs, stopping.best_state = resumed
            log.info("resuming %s after epoch %d", run_dir, len(history))
    validating = val is not None and len(val) > 0
    for epoch in range(len(history) + 1, config.epochs + 1):
        if val is not None and stopping.stop:
            break
        row = train_one_epoch(model, train, config, setup, epoch, len(labels))
        if validating:
            row.update(validate(model, val, config, labels, setup.device))
        stopping.update(epoch, _score(row, config.monitor) if validating else None, model)
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
        if run_dir is not None and setup.rank == 0:
            _write_history(run_dir / "history.csv", history)
            save_resume_state(run_dir, model, setup.optimizer, setup.scheduler, history, stopping.best_score,
                              stopping.best_epoch, stopping.bad_epochs, stopping.best_state, fingerprint)
    if stopping.best_state is not None:
        model.load_state_dict(stopping.best_state)
    model.eval()
    return FitResult(stopping.best_epoch, stopping.best_score, len(history), history, time.perf_counter() - t0)


def _write_history(path: Path, history: list[dict[str, float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    keys = list(dict.fromkeys(k for row in history for k in row))
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    os.replace(tmp, path)


def fit_preprocessing(model: AvemoModel, train: TensorData) -> None:
    """Run the non-gradient ``fit`` of models that need one (e.g. MFA) on all training data."""
    if getattr(model, "needs_fit", False):
        model.fit(*as_batch(train))


def calibrate(model: AvemoModel, val: TensorData | None) -> None:
    """Fit the post-hoc calibration (temperatures, fusion weights) of models that have one, on the
    validation speakers: the only data model selection may look at."""
    if getattr(model, "needs_calibration", False) and val is not None and len(val):
        model.eval()
        model.calibrate(*as_batch(val))


