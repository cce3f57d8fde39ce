"""The shared contract test, run over every registered model (and every fusion model on AU vectors).

For each model, built twice from the same seed with its smallest inputs (``smoke_config``):
eval-mode determinism, output shape, finite loss and gradients for every parameter after one
training forward/backward (what ``trains_all_parameters`` declares to the DDP trainer), a
``state_dict`` save/load round trip, and one-line errors for a missing input and a wrongly
shaped one. Each model is built once per case (two instances) and released afterwards, so the
big 3D ResNeXt models never pile up in memory. The full-depth
3D ResNeXt-50 is exercised by its own case; inside fusion models it is built with one block per
stage after the first (same stages and channel counts, a third of the weights) to keep the suite
fast -- fusion only sees the stages' channels.
"""

from __future__ import annotations

import io

import pytest
import torch

from avemo.models import (
    ModelInputError,
    create_model,
    example_inputs,
    list_models,
    model_info,
    smoke_config,
)
from avemo.models.papers import PAPERS

NUM_CLASSES = 5
BATCH = 3

CASES = [(name, {}) for name in list_models()] + [
    (name, {"video": "au_mlp"}) for name in list_models("fusion")
]


def case_id(case) -> str:
    name, extra = case
    return name + ("[au_mlp]" if extra else "")


SHALLOW_RESNEXT = {"layers": (2, 1, 1, 1)}


def build(name: str, extra: dict, seed: int = 0):
    config = smoke_config(name, **extra)
    if (
        model_info(name)["kind"] == "fusion"
        and config.get("video", model_info(name)["config"].get("video")) == "resnext3d_50"
    ):
        config["video_config"] = {**config["video_config"], **SHALLOW_RESNEXT}
    torch.manual_seed(seed)
    return create_model(name, num_classes=NUM_CLASSES, **config)


def make_inputs(model, batch: int, seed: int) -> dict[str, torch.Tensor]:
    return example_inputs(model.inputs, batch=batch, free=12, generator=torch.Generator().manual_seed(seed))


def fit_if_needed(*models) -> None:
    """Models with a non-gradient fit (MFA) get the same fitting set."""
    if not models[0].needs_fit:
        return
    data = make_inputs(models[0], batch=40, seed=123)
    targets = torch.arange(40) % NUM_CLASSES
    for m in models:
        m.fit(data, targets)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_model_contract(case):
    name, extra = case
    model = build(name, extra)
    twin = build(name, extra)
    fit_if_needed(model, twin)
    x = make_inputs(model, BATCH, seed=1)
    y = torch.arange(BATCH) % NUM_CLASSES

    # declared inputs are the registry's, and the info is complete
    info = model_info(name)
    assert any(info["paper"].startswith(p.cite()) for p in PAPERS.values()) and info["summary"]
    if info["kind"] == "fusion":
        assert {"audio", "video"} <= set(model.inputs)
    else:
        assert list(model.inputs) == [info["kind"]]

    # eval mode: deterministic for a fixed seed, right shape, finite
    model.eval()
    twin.eval()
    with torch.no_grad():
        first, again, other = model(x), model(x), twin(x)
    assert first.shape == (BATCH, NUM_CLASSES)
    assert torch.isfinite(first).all()
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    torch.testing.assert_close(first, other, rtol=1e-6, atol=1e-6)

    # one training step's forward/backward: finite loss, a finite gradient for every parameter
    model.train()
    outputs = model.forward_outputs(x)
    assert outputs["logits"].shape == (BATCH, NUM_CLASSES)
    loss = model.loss(outputs, y)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    # every parameter gets a gradient, unless the model declares otherwise (the trainer then turns
    # on DistributedDataParallel's find_unused_parameters, for this model only)
    unused = [pname for pname, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert bool(unused) == (not model.trains_all_parameters), \
        f"{name}: parameters without a gradient {unused[:3]}, but trains_all_parameters = {model.trains_all_parameters}"
    for pname, p in model.named_parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient in {pname}"
    with torch.no_grad():  # move the weights so the round trip below is not trivially equal
        for i, p in enumerate(model.parameters()):
            p.add_(0.01 * (-1) ** i)

    # state_dict round trip into the twin reproduces the outputs
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    twin.load_state_dict(torch.load(buffer, weights_only=True))
    model.eval()
    twin.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), twin(x), rtol=1e-6, atol=1e-6)

    # errors: a wrongly shaped input, a missing input -- one line naming the model and the input
    key, spec = next(iter(model.inputs.items()))
    bad = dict(x)
    fixed = [i for i, d in enumerate(spec.shape) if d is not None]
    if fixed:
        shape = list(x[key].shape)
        shape[fixed[-1] + 1] += 1
        bad[key] = torch.zeros(shape)
    else:
        bad[key] = x[key].unsqueeze(-1)
    with pytest.raises(ModelInputError) as err:
        model(bad)
    assert name in str(err.value) and repr(key) in str(err.value) and "\n" not in str(err.value)

    for key, spec in model.inputs.items():
        partial = {k: v for k, v in x.items() if k != key}
        if spec.optional:
            with torch.no_grad():
                assert model(partial).shape == (BATCH, NUM_CLASSES)
        else:
            with pytest.raises(ModelInputError, match=rf"{name}: missing input '{key}'"):
                model(partial)
    with pytest.raises(ModelInputError, match=name):
        model({})
