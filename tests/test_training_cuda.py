"""The training loop on a CUDA GPU (mixed precision, frame encoders, CPU/GPU agreement).

Skipped where no GPU is present (the CI machine has none); run on a GPU machine with
``python -m pytest tests/test_training_cuda.py``. The data are synthetic, so no dataset is needed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avemo.models import create_model
from avemo.models.batching import TensorData
from avemo.models.inputs import example_inputs
from avemo.training import TrainConfig
from avemo.training.trainer import fit, predict_proba

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
