"""Feeding the training device: DataLoader workers and pinned memory, cuDNN, memory-format and
activation-checkpointing settings.

On a GPU the loop must not wait for the host: batches are collated in worker processes
(``TrainConfig.loader_workers``; by default 0 on a CPU, where the main process has the cores
to itself, and up to 4 on CUDA) into pinned memory, from which they are copied to the GPU
without blocking. Frames cross as uint8 and become float there
(:func:`avemo.models.batching.to_device`). None of this changes the numbers: every item's
randomness is drawn from ``(seed, epoch, index)``, whichever process draws it, and a CPU
run's settings are those it always had.
"""

from __future__ import annotations

import logging
import multiprocessing
import os

import torch
from torch.utils.data import DataLoader, Sampler

from avemo.models.base import AvemoModel
from avemo.models.batching import TensorData, collate
from avemo.models.layers.checkpointing import set_activation_checkpointing
from avemo.models.memory_format import use_channels_last_3d
from avemo.training.config import TrainConfig

log = logging.getLogger(__name__)

MAX_AUTO_WORKERS = 4


def loader_workers(config: TrainConfig, device: torch.device) -> int:
    """Worker processes of the training and evaluation loaders (see module docstring)."""
    if config.loader_workers is not None:
        return config.loader_workers
    if device.type != "cuda":
        return 0
    return max(1, min(MAX_AUTO_WORKERS, (os.cpu_count() or 2) // 2))


def make_loader(data: TensorData, batch_size: int, *, workers: int, pin_memory: bool, sampler: Sampler | None = None,
                drop_last: bool = False) -> DataLoader:
    """A DataLoader of ``data`` with ``collate``; workers are forked where the platform can (the
    arrays are shared copy-on-write, not pickled), else started as the platform starts them."""
    options = {}
    if workers > 0:
        methods = multiprocessing.get_all_start_methods()
        options = {"multiprocessing_context": "fork" if "fork" in methods else None}
    return DataLoader(data, batch_size=batch_size, sampler=sampler, shuffle=False, collate_fn=collate,
                      drop_last=drop_last, num_workers=workers, pin_memory=pin_memory, **options)


def tune_for_device(model: AvemoModel, config: TrainConfig, device: torch.device) -> None:
    """Activation checkpointing (any device, when asked) and, on CUDA, ``channels_last_3d`` for the
    3D convolutions and cuDNN's algorithm search; call before the optimizer and DDP are built."""
    if config.checkpoint_activations and not set_activation_checkpointing(model, True):
        log.warning("%s has no blocks that checkpoint their activations: checkpoint_activations does nothing",
                    model.name)
    if device.type == "cuda":
        if config.channels_last:
            use_channels_last_3d(model)
        torch.backends.cudnn.benchmark = config.cudnn_benchmark
