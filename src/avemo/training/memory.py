"""GPU memory: the evaluation batch that fits, and out-of-memory errors that say what to change.

Evaluation of a 3D ResNeXt fusion model at batch 128 peaks at 27.5 GiB (issue 15): more than a
24 GB card holds. :func:`eval_batch_size` sizes the batch from a measurement instead: the peak
memory of a no-gradient forward pass at batch 1 and 2 on the device gives a fixed part and a
per-clip part (activations grow linearly with the batch), and the batch is the largest up to
128 whose predicted peak stays within ``eval_memory_gib`` and 80 % of the free memory. On a
CPU it is 128, as it always was. A batch that runs out of memory all the same is split in
halves by the caller (:func:`avemo.training.trainer.predict_proba`).

:func:`out_of_memory` turns PyTorch's out-of-memory error into one line that names the model,
the batch and the options that lower the memory (``--batch-size``, ``--accumulate``,
``--checkpoint-activations``, ``eval_batch_size``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from avemo.errors import DeviceMemoryError
from avemo.models.base import AvemoModel
from avemo.models.batching import TensorData, collate, to_device

CPU_EVAL_BATCH = 128
GiB = 1024 ** 3


def batch_for_budget(peak_1: float, peak_2: float, budget: float, cap: int = CPU_EVAL_BATCH) -> int:
    """The largest batch in [1, cap] whose peak, extrapolated linearly from the peaks at batch 1
    and 2 (bytes above what was allocated before), stays within ``budget`` bytes."""
    per_item = max(peak_2 - peak_1, 1.0)
    fixed = max(peak_1 - per_item, 0.0)
    return max(1, min(cap, math.floor((budget - fixed) / per_item)))


def _forward_peak(model: AvemoModel, inputs: Mapping[str, torch.Tensor], device: torch.device) -> int:
    """Bytes allocated on ``device`` at the peak of one no-gradient forward pass, above the start."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    start = torch.cuda.memory_allocated(device)
    with torch.no_grad():
        model(dict(inputs))
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - start


def eval_batch_size(model: AvemoModel, data: TensorData, device: torch.device, *, memory_gib: float = 16.0) -> int:
    """The evaluation batch of ``model`` on ``data`` on ``device`` (see module docstring)."""
    if device.type != "cuda" or len(data) < 2:
        return CPU_EVAL_BATCH
    was_training = model.training
    model.eval()
    try:
        peaks = []
        for n in (1, 2):
            inputs, _ = collate([data[i] for i in range(n)])
            peaks.append(_forward_peak(model, to_device(inputs, data.specs, device), device))
    finally:
        model.train(was_training)
    free, _total = torch.cuda.mem_get_info(device)
    budget = min(memory_gib * GiB, 0.8 * (free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)))
    return batch_for_budget(peaks[0], peaks[1], budget)


def _device_text(device: torch.device) -> str:
    if device.type == "cuda":
        try:
            props = torch.cuda.get_device_properties(device)
            return f"{device} ({props.name}, {props.total_memory / GiB:.0f} GiB)"
        except (RuntimeError, AssertionError):
            pass
    return str(device)


def out_of_memory(model: AvemoModel, device: torch.device, *, phase: str, batch: int, accumulate: int = 1,
                  checkpointable: bool = False, checkpointing: bool = False) -> DeviceMemoryError:
    """The one-line error for running out of memory while ``phase`` ("training" / "evaluating")."""
    if phase == "training":
        micro = math.ceil(batch / accumulate)
        advice = [f"lower --batch-size (now {batch})"]
        if micro > 1:
            advice.append(f"or keep it with --accumulate {2 * accumulate} (micro-batches of {math.ceil(micro / 2)})")
        if checkpointable and not checkpointing:
            advice.append("or add --checkpoint-activations")
        where = f"training at batch {batch}" + (f" in {accumulate} micro-batches of {micro}" if accumulate > 1 else "")
    else:
        advice = ["evaluation already halves its batch down to 1, so the model itself does not fit: "
                  "use a device with more free memory (TrainConfig.device)"]
        where = f"evaluating at batch {batch}"
    return DeviceMemoryError(f"{model.name}: out of memory on {_device_text(device)} {where}; {', '.join(advice)}")
