"""The ``channels_last_3d`` memory format for the 3D CNNs (3D ResNeXt-50, paper 001's 3D CNN).

cuDNN's 3D convolutions run faster with the channels innermost in memory (NDHWC) than in
PyTorch's default layout (NCDHW); on an H200 the 3D ResNeXt fusion models train about 1.5 times
faster that way (issue 15's measurement). :func:`use_channels_last_3d` converts a model's
``Conv3d`` weights in place (the parameters stay the same objects, so an optimizer built before
or after sees them) and makes the frame encoders that hold them hand their clips over in the
same layout, which the permuted ``(B, N, H, W, C)`` frames already have. The numbers are those
of the default layout up to floating-point rounding; checkpoints are saved contiguous as always.
The trainer applies it on CUDA only (``TrainConfig.channels_last``): a CPU run keeps its layout.
"""

from __future__ import annotations

import torch
from torch import nn

from avemo.models.base import Encoder


def use_channels_last_3d(model: nn.Module) -> bool:
    """Convert ``model``'s 3D convolutions to ``channels_last_3d`` (see module docstring);
    False, and nothing changed, when it has none."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv3d)]
    for conv in convs:
        conv.to(memory_format=torch.channels_last_3d)
    for encoder in model.modules():
        if isinstance(encoder, Encoder) and any(isinstance(m, nn.Conv3d) for m in encoder.modules()):
            encoder.memory_format = torch.channels_last_3d
    return bool(convs)
