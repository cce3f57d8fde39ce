"""The training loop on a CUDA GPU (mixed precision, frame encoders, CPU/GPU agreement, the
device settings: autocast dtype, ``channels_last_3d``, loader workers, the evaluation batch that
fits, activation checkpointing, gradient accumulation).

Skipped where no GPU is present (the CI machine has none); run on a GPU machine with
``python -m pytest tests/test_training_cuda.py``. The data are synthetic, so no dataset is needed.
tests/test_training_device.py checks the same options on a CPU, with what only a GPU does simulated.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from avemo.models import create_model
from avemo.models.batching import TensorData, collate, to_device
from avemo.models.inputs import example_inputs
from avemo.training import TrainConfig
from avemo.training.memory import GiB, eval_batch_size
from avemo.training.trainer import fit, predict_proba, setup_training

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def separable_data(model, n: int, num_classes: int, seed: int) -> TensorData:
    """Random inputs of the model's specs with the class written into every modality's mean, so that
    each modality alone can learn the task."""
    gen = torch.Generator().manual_seed(seed)
    x = example_inputs(model.inputs, batch=n, generator=gen)
    y = torch.arange(n) % num_classes
    for name, t in x.items():
        shift = (y.float() / num_classes).view(-1, *([1] * (t.ndim - 1)))
        if model.inputs[name].kind == "frames":  # stored as uint8 pixels, as the face_crops cache holds them
            x[name] = ((t * 0.3 + shift) * 255).clamp(0, 255).to(torch.uint8)
        else:
            x[name] = t + 3.0 * shift
    return TensorData({k: list(v.numpy()) for k, v in x.items()}, y.numpy(), model.inputs)


def test_fusion_model_trains_on_the_gpu_with_mixed_precision():
    torch.manual_seed(0)
    model = create_model("msaf", num_classes=4, video="au_mlp")
    train, val = separable_data(model, 256, 4, seed=1), separable_data(model, 64, 4, seed=2)
    config = TrainConfig(epochs=15, patience=15, device="cuda", amp=True, lr=3e-3)
    result = fit(model, train, val, config, labels=["a", "b", "c", "d"])
    assert next(model.parameters()).device.type == "cuda"
    assert result.best_score >= 0.9, result.history
    probs = predict_proba(model, val)
    assert probs.shape == (64, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)


def test_gpu_and_cpu_predictions_agree():
    torch.manual_seed(0)
    model = create_model("late_calibrated", num_classes=3)
    data = separable_data(model, 48, 3, seed=3)
    fit(model, data, None, TrainConfig(epochs=2, device="cuda", amp=True), labels=["a", "b", "c"])
    on_gpu = predict_proba(model, data)
    model.to("cpu")
    on_cpu = predict_proba(model, data)
    np.testing.assert_allclose(on_gpu, on_cpu, atol=1e-4)


def test_frame_encoder_fusion_steps_under_autocast():
    """The 3D ResNeXt-50 of paper 000 with the MFCC CNN (cfn_sr) on face-frame clips: a training
    epoch under autocast changes the weights and keeps the loss finite."""
    torch.manual_seed(0)
    model = create_model("cfn_sr", num_classes=8)
    data = separable_data(model, 16, 8, seed=4)
    before = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    result = fit(model, data, None, TrainConfig(epochs=1, batch_size=8, device="cuda", amp=True),
                 labels=[str(i) for i in range(8)])
    assert np.isfinite(result.history[-1]["train_loss"])
    after = model.state_dict()
    assert any(not torch.equal(before[k], after[k].cpu()) for k in before)


def test_default_device_settings_on_the_gpu():
    """A measured autocast dtype with a scaler only for float16, 3D convolutions in channels_last_3d,
    cuDNN's search, loader workers with pinned memory."""
    model = create_model("cfn_sr", num_classes=8, video_config={"n_frames": 8, "size": (64, 64)})
    setup = setup_training(model, TrainConfig(epochs=1))
    assert setup.amp_dtype in (torch.float16, torch.bfloat16)
    assert setup.scaler.is_enabled() == (setup.amp_dtype == torch.float16)
    conv = model.video_encoder.stages[0][0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.backends.cudnn.benchmark and setup.workers >= 1


def test_evaluation_of_a_3d_resnext_model_fits_its_memory_budget():
    """Issue 15: predict_proba of a 3D ResNeXt fusion model at the old fixed batch of 128 peaked at
    27.5 GiB. The automatic batch keeps the peak within eval_memory_gib (16 GiB by default)."""
    torch.manual_seed(0)
    model = create_model("cfn_sr", num_classes=8).cuda()
    data = separable_data(model, 128, 8, seed=5)
    batch = eval_batch_size(model, data, torch.device("cuda"))
    assert 1 <= batch < 128
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = torch.cuda.memory_allocated()
    probs = predict_proba(model, data)
    peak = (torch.cuda.max_memory_allocated() - start) / GiB
    assert peak <= 16.0, f"evaluation peaked at {peak:.1f} GiB at batch {batch}"
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)


def _training_peak(config: TrainConfig) -> tuple[float, dict[str, torch.Tensor]]:
    """Peak GPU memory (GiB) of one epoch of cfn_sr on 16 frames of 112x112, and the weights after it."""
    torch.manual_seed(0)
    model = create_model("cfn_sr", num_classes=8, video_config={"n_frames": 16, "size": (112, 112)})
    data = separable_data(model, 8, 8, seed=6)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    fit(model, data, None, config, labels=[str(i) for i in range(8)])
    return torch.cuda.max_memory_allocated() / GiB, {k: v.detach().cpu() for k, v in model.state_dict().items()}


def test_checkpointing_and_accumulation_lower_training_memory():
    base = TrainConfig(epochs=1, batch_size=8, device="cuda", amp_dtype="bfloat16", scheduler="none")
    plain, _ = _training_peak(base)
    checkpointed, _ = _training_peak(dataclasses.replace(base, checkpoint_activations=True))
    accumulated, _ = _training_peak(dataclasses.replace(base, accumulate=4))
    assert checkpointed < 0.7 * plain, (checkpointed, plain)
    assert accumulated < 0.7 * plain, (accumulated, plain)


def test_frames_become_floats_on_the_gpu_exactly_as_on_the_cpu():
    model = create_model("resnext3d_50", num_classes=8, n_frames=8, size=(32, 32))
    data = separable_data(model, 4, 4, seed=7)
    batch, _ = collate([data[i] for i in range(4)])
    assert batch["video"].dtype == torch.uint8  # what crosses to the GPU
    on_gpu = to_device(batch, data.specs, "cuda")["video"]
    assert on_gpu.device.type == "cuda" and on_gpu.dtype == torch.float32
    assert torch.equal(on_gpu.cpu(), to_device(batch, data.specs, "cpu")["video"])
