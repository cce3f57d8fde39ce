"""Which half-precision type mixed-precision training uses on a GPU, chosen by measurement.

float16 and bfloat16 have the same nominal speed on recent NVIDIA GPUs, but the kernels cuDNN
picks for them differ: on an H200 a training step of the 3D ResNeXt fusion models took 196 ms in
float16 and 243 ms in bfloat16 (issue 15). float16 needs a gradient scaler (its range is
small), bfloat16 does not. :func:`autocast_dtype` therefore times one forward and backward pass
of a small 3D-convolution and linear workload in each type, once per device and process, and
takes float16 where it is faster by more than ``margin``, else bfloat16 where the device
supports it (else float16). A CPU never gets autocast: training there stays float32.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch
from torch import nn

log = logging.getLogger(__name__)

#: device -> the dtype measured for it (one measurement per device and process)
_CHOSEN: dict[str, torch.dtype] = {}

Timer = Callable[[torch.device, torch.dtype], float]


def _probe_network() -> nn.Module:
    """A few layers shaped like the frame models' work: grouped 3D convolutions, BatchNorm, linear."""
    return nn.Sequential(
        nn.Conv3d(64, 128, 1, bias=False), nn.BatchNorm3d(128), nn.ReLU(),
        nn.Conv3d(128, 128, 3, padding=1, groups=32, bias=False), nn.BatchNorm3d(128), nn.ReLU(),
        nn.Conv3d(128, 256, 1, bias=False), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(256, 512),
    )


def time_training_pass(device: torch.device, dtype: torch.dtype, repeats: int = 5) -> float:
    """Median seconds of one forward + backward pass of the probe network under autocast to ``dtype``."""
    gen = torch.Generator().manual_seed(0)
    net = _probe_network().to(device).to(memory_format=torch.channels_last_3d)
    x = torch.randn(8, 64, 8, 28, 28, generator=gen).to(device).contiguous(memory_format=torch.channels_last_3d)
    times = []
    for i in range(repeats + 2):  # two warm-ups (cuDNN's algorithm search)
        torch.cuda.synchronize(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype):
            loss = net(x).float().square().mean()
        loss.backward()
        torch.cuda.synchronize(device)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def autocast_dtype(device: torch.device, choice: str = "auto", *, margin: float = 0.05,
                   timer: Timer | None = None, bf16_supported: bool | None = None) -> torch.dtype | None:
    """The autocast dtype of training on ``device``: None on a CPU (no autocast); ``choice``
    ``"float16"`` / ``"bfloat16"`` as given; ``"auto"``: measured, see the module docstring.

    ``timer(device, dtype) -> seconds`` and ``bf16_supported`` replace the measurement and the
    device query (tests)."""
    if device.type != "cuda":
        return None
    if choice != "auto":
        return getattr(torch, choice)
    key = str(device if device.index is not None else torch.device("cuda", torch.cuda.current_device()))
    if key not in _CHOSEN:
        timer = timer or time_training_pass
        if bf16_supported is None:
            bf16_supported = torch.cuda.is_bf16_supported()
        if not bf16_supported:
            chosen = torch.float16
        else:
            fp16, bf16 = timer(device, torch.float16), timer(device, torch.bfloat16)
            chosen = torch.float16 if fp16 < bf16 * (1 - margin) else torch.bfloat16
            log.info("%s: a training pass takes %.2f ms in float16, %.2f ms in bfloat16: autocast to %s",
                     key, 1e3 * fp16, 1e3 * bf16, chosen)
        _CHOSEN[key] = chosen
    return _CHOSEN[key]
