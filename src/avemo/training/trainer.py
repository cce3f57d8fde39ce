"""One training loop for every registered model.

:func:`fit` trains a model on a :class:`~avemo.models.batching.TensorData`, evaluates it on the
validation speakers after every epoch, keeps the best epoch's weights (early stopping with
``patience``) and, given a ``run_dir``, logs ``history.csv`` and saves a resumable state
after every epoch: an interrupted run started again with the same ``run_dir`` continues
from its last finished epoch and ends with the same weights as an uninterrupted one
(every epoch's randomness is derived from ``seed`` and the epoch number).

Devices: CPU, or CUDA when present (``device="auto"``), with mixed precision on CUDA in the
half-precision type measured fastest (:mod:`avemo.training.precision`), loader workers and
pinned memory, ``channels_last_3d`` and cuDNN's algorithm search (:mod:`avemo.training.device`);
options for memory (:mod:`avemo.training.memory`): gradient accumulation over micro-batches,
activation checkpointing, an evaluation batch sized to the free memory, one-line
out-of-memory errors. The learning-rate schedule advances only after epochs in which the
optimizer stepped (a gradient scaler skips the steps whose float16 gradients overflow), so
no value of the schedule is lost. On a CPU every one of these keeps the behaviour the loop
always had.
Several GPUs: launch with ``torchrun --nproc_per_node N -m avemo.cli train ...``; the loop then
wraps the model in ``DistributedDataParallel`` (``find_unused_parameters`` only for models that
declare ``trains_all_parameters = False``) and shards batches with a ``DistributedSampler``
(the standard PyTorch route; only rank 0 writes files), or with
:class:`DistributedBalancedSampler` when ``class_balance="sampler"``. A process group the caller
started (any ``init_method``, e.g. a file on a shared node: no port to contend for) is used as it is.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import functools
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import RandomSampler, WeightedRandomSampler

from avemo.device import torch_device
from avemo.errors import ConfigError
from avemo.metrics import compute_metrics
from avemo.models.base import AvemoModel
from avemo.models.batching import TensorData, as_batch, to_device
from avemo.models.layers.checkpointing import CheckpointedBlock, set_activation_checkpointing
from avemo.training.config import AugmentConfig, TrainConfig
from avemo.training.corpora import CorpusObjective
from avemo.training.device import loader_workers, make_loader, tune_for_device
from avemo.training.memory import eval_batch_size, out_of_memory
from avemo.training.precision import autocast_dtype
from avemo.training.state import load_resume_state, save_resume_state

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    best_epoch: int
    best_score: float
    epochs_run: int
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    compile_seconds: float | None = None  # the first compiled training step (``compile=True``)
    processes: int = 1  # the DistributedDataParallel processes that trained (torchrun's world size)


def _balanced_weights(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """Per-item weights 1 / count(class): every class is drawn equally often on average."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    return torch.as_tensor(1.0 / np.maximum(counts[labels], 1))


def _class_weights(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """Loss weights ``n / (C * count(class))`` (1 for every class when balanced; absent classes 0)."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    weights = np.divide(len(labels), n_classes * counts, out=np.zeros(n_classes), where=counts > 0)
    return torch.as_tensor(weights, dtype=torch.float32)


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


def _distributed() -> tuple[int, int]:
    """(rank, world size) of the process group the caller started (any ``init_method``: a file on a
    shared node, ``tcp://``, a cluster launcher's), else of a torchrun launch (the group is started
    here from torchrun's variables, ``env://``), else (0, 1)."""
    if not torch.distributed.is_available():
        return 0, 1
    if not torch.distributed.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return 0, 1
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


class _AllOutputs(torch.nn.Module):
    """The model with ``forward`` = its ``forward_outputs`` (logits and any branch outputs), so that
    under ``DistributedDataParallel``, which calls ``forward``, a loss on branch outputs (late
    fusion, ``late_calibrated``) sees them as it does on one process."""

    def __init__(self, model: AvemoModel):
        super().__init__()
        self.model = model

    def forward(self, inputs):
        return self.model.forward_outputs(inputs)


def gradient_stride_hooks(model: torch.nn.Module) -> list:
    """Hooks (their handles) that give each gradient its parameter's strides where the two differ only in
    dimensions of size 1: the same memory layout (such a dimension addresses nothing), so the gradient is
    re-viewed, not copied. Kernels return such gradients (a ``Conv3d`` on one gray channel: its weight's
    gradient has the ``channels_last_3d`` stride in that dimension); autograd's layout contract accepts them,
    but ``DistributedDataParallel``'s reducer compares every stride with its bucket view's (the parameter's)
    and warns "Grad strides do not match bucket view strides", once per process, which would hide a real
    mismatch (PyTorch documentation, "DistributedDataParallel"; pytorch/pytorch issue 47163). A gradient in
    another layout (a dimension larger than 1 strided otherwise) is left as it is, and DDP says so."""
    return [p.register_hook(functools.partial(_with_strides, p.stride()))
            for p in model.parameters() if p.requires_grad and 1 in p.shape]


def _with_strides(strides: tuple[int, ...], grad: torch.Tensor) -> torch.Tensor | None:
    """``grad`` viewed with ``strides`` when only its size-1 dimensions' strides differ; None (as it is) else."""
    if grad.layout != torch.strided or grad.stride() == strides:
        return None
    if any(g != s and n != 1 for g, s, n in zip(grad.stride(), strides, grad.shape, strict=True)):
        return None
    return grad.as_strided(grad.shape, strides)


def is_main_process() -> bool:
    """False on the ranks other than 0 of a ``torchrun`` launch (they must not write files), also where no
    process group was started (a model fitted in closed form: every rank fits it alone, and all of them
    wrote the same files at once, ``history.csv.tmp`` included)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    return int(os.environ.get("WORLD_SIZE", "1")) <= 1 or os.environ.get("RANK", "0") == "0"  # as torchrun sets them


def _seed(seed: int, epoch: int) -> None:
    torch.manual_seed(seed * 100_003 + epoch)


def augment_batch(
    inputs: dict[str, torch.Tensor],
    kinds: dict[str, str],
    modalities: dict[str, str],
    cfg: AugmentConfig,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """SpecAugment masks, Gaussian noise and modality dropout on a (standardised) batch, on the
    batch's device: the random draws come from ``generator`` (a CPU generator, so that a run draws
    the same numbers on any device) and only the masks and noise travel to the device."""
    out = dict(inputs)
    for name, x in inputs.items():
        kind = kinds.get(name)  # None: a dialogue batch's mask or context, left as it is
        if kind is None or kind == "frames":
            continue
        x = x.clone()
        if cfg.specaugment and kind == "sequence":
            b, t, d = x.shape
            for _ in range(cfg.time_masks):
                w = torch.randint(0, cfg.time_mask + 1, (b,), generator=generator)
                s = (torch.rand(b, generator=generator) * (t - w).clamp(min=1)).long()
                idx = torch.arange(t)[None, :]
                x[((idx >= s[:, None]) & (idx < (s + w)[:, None])).to(x.device)] = 0.0
            for _ in range(cfg.freq_masks):
                w = torch.randint(0, cfg.freq_mask + 1, (b,), generator=generator)
                s = (torch.rand(b, generator=generator) * (d - w).clamp(min=1)).long()
                idx = torch.arange(d)[None, :]
                mask = (idx >= s[:, None]) & (idx < (s + w)[:, None])
                x.masked_fill_(mask[:, None, :].to(x.device), 0.0)
        if cfg.noise_std > 0:
            x = x + cfg.noise_std * torch.randn(x.shape, generator=generator).to(x.device)
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
                    x[sel.to(x.device)] = 0.0
                    out[name] = x
    return out


def predict_proba(model: AvemoModel, data: TensorData, *, batch_size: int | None = None, device=None,
                  memory_gib: float = 16.0, workers: int = 0) -> np.ndarray:
    """Class probabilities (n, C) of ``model`` on ``data`` (eval mode, no augmentation).

    ``batch_size`` unset: 128 on a CPU, sized to the free memory on a GPU
    (:func:`~avemo.training.memory.eval_batch_size`, at most ``memory_gib``). A batch that runs
    out of memory is split in halves, and the later batches run at the size that fitted."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.eval()
    size = batch_size or eval_batch_size(model, data, device, memory_gib=memory_gib)
    loader = make_loader(data, size, workers=workers, pin_memory=device.type == "cuda")
    out: list[np.ndarray] = []
    chunk = size
    with torch.no_grad():
        for inputs, _ in loader:
            chunk = _predict_batch(model, to_device(inputs, data.specs, device, non_blocking=True), chunk, out)
    return np.concatenate(out) if out else np.zeros((0, model.num_classes), dtype=np.float32)


def _predict_batch(model: AvemoModel, inputs: dict[str, torch.Tensor], chunk: int, out: list[np.ndarray]) -> int:
    """Append the probabilities of one batch to ``out``, in chunks of at most ``chunk`` items,
    halved while they run out of memory; the chunk size that fitted."""
    n = next(iter(inputs.values())).shape[0]
    start = 0
    while start < n:
        part = inputs if chunk >= n else {k: v[start:start + chunk] for k, v in inputs.items()}
        try:
            logits = model(part).float()
        except torch.OutOfMemoryError:
            device = next(iter(inputs.values())).device
            if chunk == 1:
                raise out_of_memory(model, device, phase="evaluating", batch=1) from None
            chunk = max(1, min(chunk, n) // 2)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            log.warning("%s: out of memory in evaluation; going on with batches of %d", model.name, chunk)
            continue
        out.append(torch.softmax(logits, dim=1).cpu().numpy())
        start += logits.shape[0]
    return chunk


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
class TrainingSetup:
    """What one :func:`fit` call trains with (built by :func:`setup_training`)."""

    net: torch.nn.Module  # the model as called in training (DDP-wrapped under torchrun, compiled if asked)
    device: torch.device
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None  # None: no autocast (always on a CPU)
    rank: int
    world: int
    workers: int = 0
    optimizer_steps: int = 0  # steps the optimizer took (a gradient scaler skips overflowing ones)
    eval_batch: int | None = None
    compile_seconds: float | None = None
    objective: CorpusObjective | None = None  # sample weights / masked labels of a multi-corpus run
    on_step: Callable[[float], None] | None = None  # after each step: the epochs done (2.5: half of epoch 3)
    on_resume: Callable[[int], None] | None = None  # an unfinished run resumed: its epochs done
    hooks: list = field(default_factory=list)  # on the model's parameters, removed when training ends

    @property
    def use_amp(self) -> bool:
        return self.amp_dtype is not None


def setup_training(model: AvemoModel, config: TrainConfig) -> TrainingSetup:
    """Device (the local GPU under torchrun), device tuning, DDP wrapping, compilation, optimizer,
    scheduler, autocast dtype and gradient scaler."""
    rank, world = _distributed()
    device = torch_device(config.device)
    if device.type == "cuda" and world > 1:  # torchrun's local rank, else the device the caller set
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))
    model.to(device)
    tune_for_device(model, config, device)
    net: torch.nn.Module = _AllOutputs(model)
    hooks = []
    if world > 1:  # after the memory-format change: DDP's bucket views take the parameters' strides
        hooks = gradient_stride_hooks(model)
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=not model.trains_all_parameters,
        )
    if config.compile:  # a fresh compile cache: every model's _AllOutputs.forward is one code object, whose
        torch.compiler.reset()  # recompilations would reach dynamo's limit and fall back to eager
        net = torch.compile(net)
    groups = model.parameter_groups()
    if config.optimizer == "adamw":
        optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.SGD(groups, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
        if config.scheduler == "cosine"
        else None
    )
    amp_dtype = autocast_dtype(device, config.amp_dtype) if config.amp else None
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    setup = TrainingSetup(net, device, optimizer, scheduler, scaler, amp_dtype, rank, world,
                          workers=loader_workers(config, device), hooks=hooks)

    def count_step(*_args) -> None:
        setup.optimizer_steps += 1

    optimizer.register_step_post_hook(count_step)
    return setup


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_one_epoch(model: AvemoModel, train: TensorData, config: TrainConfig, setup: TrainingSetup, epoch: int,
                    n_classes: int) -> dict[str, float]:
    """One pass over ``train`` (with the epoch's own seeded randomness); the epoch's history row.

    Losses and hits are summed on the device and read once at the end (no wait per step)."""
    _seed(config.seed, epoch)
    train.set_epoch(epoch)
    gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    sampler = epoch_sampler(train.labels, n_classes, config, epoch, gen, setup.rank, setup.world)
    loader = make_loader(train, config.batch_size, sampler=sampler, drop_last=len(train) > config.batch_size,
                         workers=setup.workers, pin_memory=setup.device.type == "cuda")
    kinds = {n: s.kind for n, s in train.specs.items()}
    modalities = {n: s.modality for n, s in train.specs.items()}
    setup.net.train()
    steps_before = setup.optimizer_steps
    total = torch.zeros((), dtype=torch.float64, device=setup.device)
    correct = torch.zeros((), dtype=torch.int64, device=setup.device)
    seen = 0
    for step, (inputs, targets) in enumerate(loader, start=1):
        inputs = to_device(inputs, train.specs, setup.device, non_blocking=True)
        inputs = augment_batch(inputs, kinds, modalities, config.augment, gen)
        targets = targets.to(setup.device, non_blocking=True)
        timing = config.compile and setup.compile_seconds is None
        if timing:
            _sync(setup.device)
            t0 = time.perf_counter()
        loss, logits = _train_step(model, config, setup, inputs, targets, gen, epoch, seen)
        if timing:
            _sync(setup.device)
            setup.compile_seconds = time.perf_counter() - t0
        total += loss.detach().double() * targets.shape[0]
        correct += (logits.argmax(1) == class_targets(targets)).sum()
        seen += targets.shape[0]
        if setup.on_step is not None:
            setup.on_step(epoch - 1 + step / len(loader))
    if setup.scheduler is not None and setup.optimizer_steps > steps_before:
        setup.scheduler.step()  # never before an optimizer step: a scaler may have skipped them all
    if setup.world > 1:  # every rank's shard: the epoch's loss and accuracy, not rank 0's share of them
        sums = torch.stack([total, correct.double(), torch.tensor(seen, dtype=torch.float64, device=setup.device)])
        torch.distributed.all_reduce(sums)
        total, correct, seen = sums[0], sums[1], int(sums[2])
    return {
        "epoch": epoch,
        "lr": setup.optimizer.param_groups[0]["lr"],
        "train_loss": float(total) / max(seen, 1),
        "train_accuracy": int(correct) / max(seen, 1),
    }


def class_targets(targets: torch.Tensor) -> torch.Tensor:
    """The class of each item: ``targets`` itself, or its first column for (B, 2) ``[class, corpus]`` targets."""
    return targets[:, 0] if targets.dim() == 2 else targets


def training_loss(model: AvemoModel, outputs, targets: torch.Tensor, objective: CorpusObjective | None) -> torch.Tensor:
    """The model's loss, or, for (B, 2) targets of a multi-corpus run, the objective's weighted masked
    cross-entropy on the logits."""
    if targets.dim() == 2:
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs
        return objective.loss(logits, targets)
    return model.loss(outputs, targets)


def micro_batches(n: int, parts: int) -> list[slice]:
    """``n`` items in ``parts`` consecutive slices whose sizes differ by at most one (no empty ones)."""
    bounds = np.linspace(0, n, min(parts, n) + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _train_step(model: AvemoModel, config: TrainConfig, setup: TrainingSetup, inputs: dict[str, torch.Tensor],
                targets: torch.Tensor, gen: torch.Generator, epoch: int, seen: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward (with mixup when configured) and backward of one batch, in ``config.accumulate``
    micro-batches, then one optimizer step; (the batch's mean loss, logits).

    Each micro-batch's mean loss is weighted by its share of the batch, so the accumulated
    gradient is that of the whole batch's mean loss; under DDP only the last micro-batch
    all-reduces the gradients."""
    lam, perm = 1.0, None
    if config.augment.mixup_alpha > 0:
        lam = float(np.random.default_rng((config.seed, epoch, seen)).beta(
            config.augment.mixup_alpha, config.augment.mixup_alpha))
        perm = torch.randperm(targets.shape[0], generator=gen).to(setup.device)
        inputs = {k: v | v[perm] if v.dtype == torch.bool else lam * v + (1 - lam) * v[perm] for k, v in inputs.items()}
    mixed = targets[perm] if perm is not None else None
    setup.optimizer.zero_grad(set_to_none=True)
    n = targets.shape[0]
    parts = micro_batches(n, config.accumulate)
    losses, logits = [], []
    ddp = getattr(setup.net, "_orig_mod", setup.net)  # under torch.compile, the DDP module it wraps
    for i, part in enumerate(parts):
        whole = len(parts) == 1
        sync = i == len(parts) - 1 or not isinstance(ddp, torch.nn.parallel.DistributedDataParallel)
        with contextlib.nullcontext() if sync else ddp.no_sync():
            with torch.autocast(device_type=setup.device.type, dtype=setup.amp_dtype, enabled=setup.use_amp):
                outputs = setup.net(inputs if whole else {k: v[part] for k, v in inputs.items()})
                loss = training_loss(model, outputs, targets[part], setup.objective)
                if mixed is not None:
                    loss = lam * loss + (1 - lam) * training_loss(model, outputs, mixed[part], setup.objective)
            share = (part.stop - part.start) / n
            setup.scaler.scale(loss if whole else loss * share).backward()
        losses.append(loss.detach() if whole else loss.detach() * share)
        logits.append((outputs["logits"] if isinstance(outputs, dict) else outputs).detach())
    if config.grad_clip > 0:
        setup.scaler.unscale_(setup.optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    setup.scaler.step(setup.optimizer)
    setup.scaler.update()
    return (losses[0], logits[0]) if len(parts) == 1 else (torch.stack(losses).sum(), torch.cat(logits))


def validate(model: AvemoModel, val: TensorData, config: TrainConfig, labels: list[str],
             setup: TrainingSetup) -> dict[str, float]:
    """Validation loss, accuracy, UAR and weighted F1 of ``model`` on ``val`` (added to the epoch's history row)."""
    if setup.eval_batch is None:  # measured once per fit (on a GPU)
        setup.eval_batch = config.eval_batch_size or eval_batch_size(model, val, setup.device,
                                                                     memory_gib=config.eval_memory_gib)
    probs = predict_proba(model, val, batch_size=setup.eval_batch, device=setup.device, workers=setup.workers)
    m = compute_metrics(val.labels, probs, labels)
    return {"val_loss": evaluate_loss(model, val, probs), "val_accuracy": m.accuracy, "val_uar": m.uar,
            "val_weighted_f1": m.weighted_f1}


def _train_epoch_or_explain(model: AvemoModel, train: TensorData, config: TrainConfig, setup: TrainingSetup,
                            epoch: int, n_classes: int) -> dict[str, float]:
    """:func:`train_one_epoch`, with running out of memory turned into a one-line error that says what to change."""
    try:
        return train_one_epoch(model, train, config, setup, epoch, n_classes)
    except torch.OutOfMemoryError:
        checkpointable = any(isinstance(m, CheckpointedBlock) for m in model.modules())
        raise out_of_memory(model, setup.device, phase="training", batch=config.batch_size,
                            accumulate=config.accumulate, checkpointable=checkpointable,
                            checkpointing=config.checkpoint_activations) from None


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
    objective: CorpusObjective | None = None,
    on_step: Callable[[float], None] | None = None,
    on_resume: Callable[[int], None] | None = None,
) -> FitResult:
    """Train ``model`` (in place); return the best epoch and the per-epoch history.

    ``on_epoch(row)``: after each epoch; ``on_step(epochs)``: after each training step, the epochs done
    so far (a fraction within an epoch: one epoch of a 3D ResNeXt on a CPU takes minutes);
    ``on_resume(epochs)``: once, when the unfinished run in ``run_dir`` was resumed (after its settings
    were found to match), with the epochs it had done.
    Without ``val`` the model trains for ``config.epochs`` epochs and keeps the last weights.
    ``objective``: sample weights and masked labels (``train`` then has ``groups``). A model with
    ``closed_form`` is fitted in one call on all of ``train`` (:func:`fit_closed_form`), not by epochs.
    """
    if (train.groups is None) != (objective is None):
        raise ConfigError("a training objective and per-item groups go together (TensorData.groups)")
    if objective is not None and type(model).loss is not AvemoModel.loss:
        raise ConfigError(f"{model.name} has a loss of its own; sample weights and masked labels (--balance, "
                          "--label-space union_masked) need a model trained with plain cross-entropy")
    if getattr(model, "closed_form", False):
        result = fit_closed_form(model, train, val, config, labels=labels, objective=objective, on_epoch=on_epoch)
        if run_dir is not None and is_main_process():
            _write_history(Path(run_dir) / "history.csv", result.history)
        return result
    t0 = time.perf_counter()
    setup = setup_training(model, config)
    setup.objective, setup.on_step, setup.on_resume = objective, on_step, on_resume
    if config.class_balance == "loss":
        model.class_weights = _class_weights(train.labels, len(labels))
    try:
        history, stopping = _epochs(model, train, val, config, setup, labels, run_dir, on_epoch, fingerprint)
    finally:
        set_activation_checkpointing(model, False)
        model.class_weights = None
        for hook in setup.hooks:
            hook.remove()
    if stopping.best_state is not None:
        model.load_state_dict(stopping.best_state)
    model.eval()
    return FitResult(stopping.best_epoch, stopping.best_score, len(history), history, time.perf_counter() - t0,
                     setup.compile_seconds, setup.world)


def fit_closed_form(model: AvemoModel, train: TensorData, val: TensorData | None, config: TrainConfig, *,
                    labels: list[str], objective: CorpusObjective | None = None,
                    on_epoch: Callable[[dict[str, float]], None] | None = None) -> FitResult:
    """Fit a ``closed_form`` model on all of ``train`` at once (on the CPU, in float64: a logistic
    regression), then score the validation speakers once; the history has this one row (epoch 1)."""
    if config.class_balance == "sampler":
        raise ConfigError(f"{model.name} is fitted on all clips at once, without a sampler: use sample weights "
                          "(balance = \"corpus_class\") instead of class_balance = \"sampler\"")
    t0 = time.perf_counter()
    model.to("cpu")
    inputs, targets = as_batch(train)
    weights = allowed = None
    if objective is not None:
        weights, allowed = objective.item_weights(targets), objective.item_allowed(targets)
    y = class_targets(targets)
    report = model.fit_closed_form(inputs, y, weights, allowed)
    model.eval()
    with torch.no_grad():
        hits = (model(inputs).argmax(1) == y).double().mean()
    row = {"epoch": 1, "train_loss": report["loss"], "train_accuracy": float(hits), "iterations": report["iterations"]}
    if val is not None and len(val):
        probs = predict_proba(model, val, batch_size=config.eval_batch_size, device="cpu")
        m = compute_metrics(val.labels, probs, labels)
        row.update({"val_loss": evaluate_loss(model, val, probs), "val_accuracy": m.accuracy, "val_uar": m.uar})
    if on_epoch is not None:
        on_epoch(row)
    score = _score(row, config.monitor) if "val_loss" in row else math.nan
    return FitResult(1, score, 1, [row], time.perf_counter() - t0)


def _epochs(model: AvemoModel, train: TensorData, val: TensorData | None, config: TrainConfig, setup: TrainingSetup,
            labels: list[str], run_dir: str | Path | None, on_epoch, fingerprint: dict | None):
    """The epochs of :func:`fit` (resumed from ``run_dir`` when it holds a run); (history, early stopping)."""
    run_dir = Path(run_dir) if run_dir is not None else None
    history: list[dict[str, float]] = []
    stopping = EarlyStopping(config.patience)
    if fingerprint is not None and setup.world > 1:  # resumed by as many processes: the batch is per process
        fingerprint = {**fingerprint, "processes": setup.world}
    if run_dir is not None:
        resumed = load_resume_state(run_dir, model, setup.optimizer, setup.scheduler, fingerprint)
        if resumed is not None:
            history, stopping.best_score, stopping.best_epoch, stopping.bad_epochs, stopping.best_state = resumed
            log.info("resuming %s after epoch %d", run_dir, len(history))
            if setup.on_resume is not None:
                setup.on_resume(len(history))
    validating = val is not None and len(val) > 0
    for epoch in range(len(history) + 1, config.epochs + 1):
        if val is not None and stopping.stop:
            break
        compiled_before = setup.compile_seconds
        row = _train_epoch_or_explain(model, train, config, setup, epoch, len(labels))
        if setup.compile_seconds is not None and compiled_before is None:
            row["compile_seconds"] = setup.compile_seconds
        if validating:
            row.update(validate(model, val, config, labels, setup))
        stopping.update(epoch, _score(row, config.monitor) if validating else None, model)
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
        # the resumable state first, so that history.csv never shows an epoch a resumed run would train again
        # (a Ctrl-C between the two left a history of one epoch and nothing to resume from)
        if run_dir is not None and setup.rank == 0:
            save_resume_state(run_dir, model, setup.optimizer, setup.scheduler, history, stopping.best_score,
                              stopping.best_epoch, stopping.bad_epochs, stopping.best_state, fingerprint)
            _write_history(run_dir / "history.csv", history)
    return history, stopping


def _write_history(path: Path, history: list[dict[str, float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    keys = list(dict.fromkeys(k for row in history for k in row))
    try:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            writer.writerows(history)
        os.replace(tmp, path)
    finally:  # an error or Ctrl-C while writing leaves the previous history, and no temporary file
        tmp.unlink(missing_ok=True)


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


