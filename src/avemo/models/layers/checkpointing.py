"""Activation checkpointing of blocks with BatchNorm: activations recomputed in the backward pass.

``torch.utils.checkpoint`` keeps only a block's input in the forward pass and runs the block
again in the backward pass to get the activations its gradients need (Chen et al. 2016,
"Training Deep Nets with Sublinear Memory Cost"). A block with BatchNorm in training mode would
update its running statistics twice that way (once per run), so the recomputation here runs its
BatchNorm layers with their running statistics frozen: the same batch statistics (the same
output, hence the same gradients) and one update per step, as without checkpointing.

A block opts in by subclassing :class:`CheckpointedBlock` and writing :meth:`forward_block`;
:func:`set_activation_checkpointing` switches every such block of a model on or off (off by
default; it applies only in training with gradients enabled).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint


@contextlib.contextmanager
def _statistics_frozen(module: nn.Module) -> Iterator[None]:
    """Inside: the BatchNorm layers of ``module`` normalise with batch statistics and leave their
    running statistics as they were. Momentum 0 keeps the running mean and variance exactly
    (``(1 - 0) * r + 0 * b == r``) while the layers save for the backward pass what they always
    save (the checkpoint checks that); ``num_batches_tracked`` is put back afterwards."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(norms, saved, strict=True):
            m.momentum = momentum
            m.num_batches_tracked.copy_(tracked)


class CheckpointedBlock(nn.Module):
    """A block whose activations can be recomputed in the backward pass (see the module docstring)."""

    checkpointed: bool = False

    def forward_block(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        if not (self.checkpointed and self.training and torch.is_grad_enabled()):
            return self.forward_block(x)
        if torch.compiler.is_compiling():  # compiled, buffer updates run once and recomputation is functional
            return checkpoint(self.forward_block, x, use_reentrant=False)
        return checkpoint(self.forward_block, x, use_reentrant=False,
                          context_fn=lambda: (contextlib.nullcontext(), _statistics_frozen(self)))


def set_activation_checkpointing(model: nn.Module, enabled: bool) -> int:
    """Switch activation checkpointing of every :class:`CheckpointedBlock` of ``model``; how many there are."""
    blocks = [m for m in model.modules() if isinstance(m, CheckpointedBlock)]
    for block in blocks:
        block.checkpointed = enabled
    return len(blocks)
