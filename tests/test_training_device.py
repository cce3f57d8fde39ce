"""The training loop's device options, checked on a CPU (the CI machine has no GPU).

What only a GPU can do is simulated: running out of memory by a forward pass that raises
``torch.OutOfMemoryError``, a gradient scaler's skipped step by an infinite gradient, the
float16/bfloat16 choice by an injected timer. Every option must leave CPU training as it was:
uint8 frames scale to exactly the old floats, worker processes give the same weights, and
accumulation and activation checkpointing give the gradients of the plain step.
tests/test_training_cuda.py checks the same options on a GPU.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from avemo.errors import ConfigError, DeviceMemoryError
from avemo.models import create_model, smoke_config
from avemo.models.batching import TensorData, as_batch, collate, to_device
from avemo.models.inputs import example_inputs
from avemo.models.layers.checkpointing import set_activation_checkpointing
from avemo.models.memory_format import use_channels_last_3d
from avemo.training import TrainConfig, fit, precision, predict_proba
from avemo.training.memory import batch_for_budget, eval_batch_size
from avemo.training.trainer import micro_batches, setup_training, train_one_epoch

LABELS = ["a", "b", "c"]


def data_for(model, n: int, seed: int) -> TensorData:
    """Random inputs of the model's specs (frames as stored: uint8 pixels), labels 0..2."""
    x = example_inputs(model.inputs, batch=n, generator=torch.Generator().manual_seed(seed))
    arrays = {k: [(a * 255).astype(np.uint8) if model.inputs[k].kind == "frames" else a for a in v.numpy()]
              for k, v in x.items()}
    return TensorData(arrays, np.arange(n) % 3, model.inputs)


def au_model(seed: int = 0, dropout: float = 0.0):
    torch.manual_seed(seed)
    return create_model("au_mlp", num_classes=3, input_dim=6, dropout=dropout)


def frame_model(seed: int = 0):
    torch.manual_seed(seed)
    return create_model("resnext3d_50", num_classes=3, **smoke_config("resnext3d_50"), layers=(1, 1, 1, 1))


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ----------------------------------------------------------------------------- frames as uint8


def test_frames_cross_as_uint8_and_become_the_floats_they_always_were():
    model = frame_model()
    data = data_for(model, 4, seed=1)
    item = data[0][0]["video"]
    assert item.dtype == torch.uint8
    batch, _ = collate([data[i] for i in range(4)])
    assert batch["video"].dtype == torch.uint8
    moved = to_device(batch, data.specs, "cpu")["video"]
    old = torch.stack([torch.from_numpy(data.inputs["video"][i]).float().div_(255.0) for i in range(4)])
    assert moved.dtype == torch.float32 and torch.equal(moved, old)  # bit for bit what items used to give
    assert torch.equal(as_batch(data)[0]["video"], old)
    stored = np.random.default_rng(0).random((2, 8, 32, 32, 3)).astype(np.float32)  # frames stored as floats
    floats = TensorData({"video": list(stored)}, np.zeros(2), model.inputs)
    to_device(collate([floats[0], floats[1]])[0], floats.specs, "cpu")
    to_device({"video": torch.from_numpy(stored)}, floats.specs, "cpu")
    assert np.array_equal(floats.inputs["video"][0], stored[0])  # the stored arrays are never scaled in place


# ----------------------------------------------------------------------------- gradient accumulation


def test_micro_batches_split_a_batch_into_near_equal_consecutive_parts():
    assert [(s.start, s.stop) for s in micro_batches(10, 4)] == [(0, 2), (2, 5), (5, 8), (8, 10)]
    assert [s.stop - s.start for s in micro_batches(3, 8)] == [1, 1, 1]
    assert micro_batches(7, 1) == [slice(0, 7)]


def test_accumulated_micro_batches_train_like_one_big_batch():
    """Without batch statistics (an MLP, no dropout), 4 micro-batches with one optimizer step give
    the weights and losses of the whole batch, to rounding."""
    results = {}
    for accumulate in (1, 4):
        model = au_model()
        data = data_for(model, 40, seed=2)
        result = fit(model, data, None, TrainConfig(epochs=3, batch_size=16, accumulate=accumulate, lr=1e-2),
                     labels=LABELS)
        results[accumulate] = (weights(model), result.history)
    (w1, h1), (w4, h4) = results[1], results[4]
    for k in w1:
        torch.testing.assert_close(w4[k], w1[k], rtol=1e-5, atol=1e-6)
    assert [r["train_loss"] for r in h4] == pytest.approx([r["train_loss"] for r in h1], rel=1e-5)
    assert [r["train_accuracy"] for r in h4] == [r["train_accuracy"] for r in h1]


def test_accumulate_must_fit_in_the_batch():
    with pytest.raises(ConfigError, match="accumulate must be between 1 and batch_size"):
        TrainConfig(batch_size=8, accumulate=16)



@pytest.mark.parametrize(("field", "value"), [("epochs", -1), ("epochs", 0), ("batch_size", 0)])
def test_epochs_and_batch_size_below_1_are_named_with_their_value(field, value):
    """It said 'epochs and batch_size must be at least 1' for either, without the value given."""
    with pytest.raises(ConfigError) as err:
        TrainConfig(**{field: value})
    assert str(err.value) == f"{field} must be at least 1, got {value}"

# ----------------------------------------------------------------------------- activation checkpointing


def _train_pass(model, x, y):
    """One training forward/backward; (gradients, BatchNorm statistics, bytes saved for backward)."""
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    return grads, stats, sum(saved)


def test_activation_checkpointing_gives_the_same_gradients_and_statistics_with_less_saved():
    x = example_inputs(frame_model().inputs, batch=2, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([0, 2])
    plain = _train_pass(frame_model(), x, y)
    model = frame_model()
    assert set_activation_checkpointing(model, True) == 4  # one bottleneck block per stage
    checked = _train_pass(model, x, y)
    for k, g in plain[0].items():
        torch.testing.assert_close(checked[0][k], g, rtol=1e-4, atol=1e-6)
    for k, s in plain[1].items():  # updated once, not twice (the recomputation freezes them)
        torch.testing.assert_close(checked[1][k], s, rtol=1e-5, atol=1e-7)
    assert checked[2] < plain[2] / 2  # the blocks' activations were not kept
    set_activation_checkpointing(model, False)
    assert _train_pass(model, x, y)[2] == plain[2]


# ----------------------------------------------------------------------------- memory layout


def test_channels_last_3d_converts_the_3d_convolutions_and_keeps_the_outputs():
    x = example_inputs(frame_model().inputs, batch=2, generator=torch.Generator().manual_seed(4))
    reference = frame_model().eval()
    model = frame_model().eval()
    assert use_channels_last_3d(model)
    conv = model.encoder.stages[0][0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert model.encoder.prepare(x["video"]).is_contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-5)
    assert not use_channels_last_3d(au_model())


# ----------------------------------------------------------------------------- out of memory


def _out_of_memory_above(model, limit: int):
    """Make ``model``'s forward raise PyTorch's out-of-memory error for batches over ``limit``."""
    compute = model.compute

    def patched(inputs):
        if next(iter(inputs.values())).shape[0] > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return compute(inputs)

    model.compute = patched


def test_out_of_memory_in_training_is_one_line_saying_what_to_change():
    model = frame_model()
    _out_of_memory_above(model, 0)
    data = data_for(model, 8, seed=5)
    with pytest.raises(DeviceMemoryError) as err:
        fit(model, data, None, TrainConfig(epochs=1, batch_size=8), labels=LABELS)
    message = str(err.value)
    assert "\n" not in message and message.startswith("resnext3d_50: out of memory on cpu training at batch 8")
    assert "--batch-size" in message and "--accumulate 2" in message and "--checkpoint-activations" in message


def test_evaluation_halves_a_batch_that_runs_out_of_memory():
    model = au_model()
    data = data_for(model, 10, seed=6)
    expected = predict_proba(model, data)
    _out_of_memory_above(model, 3)
    np.testing.assert_allclose(predict_proba(model, data, batch_size=8), expected, rtol=1e-6, atol=1e-7)
    _out_of_memory_above(model, 0)
    with pytest.raises(DeviceMemoryError, match="au_mlp: out of memory on cpu evaluating at batch 1"):
        predict_proba(model, data, batch_size=4)


def test_eval_batch_follows_the_measured_peaks_and_stays_128_on_a_cpu():
    gib = 1024 ** 3
    # 1 GiB fixed + 0.2 GiB per clip (the peaks at batch 1 and 2): 75 clips in 16 GiB
    assert batch_for_budget(1.2 * gib, 1.4 * gib, 16 * gib) == 75
    assert batch_for_budget(1.2 * gib, 1.4 * gib, 200 * gib) == 128
    assert batch_for_budget(1.2 * gib, 1.4 * gib, 0.5 * gib) == 1
    model = au_model()
    assert eval_batch_size(model, data_for(model, 4, seed=7), torch.device("cpu")) == 128


# ----------------------------------------------------------------------------- scheduler and scaler


def test_steps_a_gradient_scaler_skips_do_not_advance_the_schedule():
    """An epoch whose every step the scaler skips (infinite gradients) leaves the learning rate
    where it was, without PyTorch's "lr_scheduler.step() before optimizer.step()" warning."""
    model = au_model()
    data = data_for(model, 16, seed=8)
    config = TrainConfig(epochs=4, batch_size=8, lr=1e-2)
    setup = setup_training(model, config)
    setup.scaler = torch.amp.GradScaler("cpu", enabled=True)  # as on CUDA with float16
    loss = model.loss
    model.loss = lambda outputs, targets: loss(outputs, targets) * float("inf")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        row = train_one_epoch(model, data, config, setup, 1, 3)
    assert not [w for w in caught if "lr_scheduler.step()" in str(w.message)]
    assert setup.optimizer_steps == 0 and row["lr"] == pytest.approx(1e-2)
    model.loss = loss
    row = train_one_epoch(model, data, config, setup, 2, 3)
    assert setup.optimizer_steps == 2 and row["lr"] < 1e-2  # now the schedule moves on


# ----------------------------------------------------------------------------- autocast dtype


@pytest.fixture
def fresh_choices(monkeypatch):
    monkeypatch.setattr(precision, "_CHOSEN", {})


def test_autocast_dtype_is_measured_once_per_device(fresh_choices):
    calls = []

    def timer(speeds):
        def measure(device, dtype):
            calls.append((str(device), dtype))
            return speeds[dtype]
        return measure

    gpu0, gpu1, gpu2 = (torch.device("cuda", i) for i in range(3))
    assert precision.autocast_dtype(torch.device("cpu")) is None  # never autocast on a CPU
    fast_fp16 = timer({torch.float16: 0.080, torch.bfloat16: 0.100})
    assert precision.autocast_dtype(gpu0, timer=fast_fp16, bf16_supported=True) == torch.float16
    assert precision.autocast_dtype(gpu0, timer=fast_fp16, bf16_supported=True) == torch.float16
    assert len(calls) == 2  # cached: measured once for this device
    level = timer({torch.float16: 0.098, torch.bfloat16: 0.100})  # within the 5 % margin: bf16 (no scaler)
    assert precision.autocast_dtype(gpu1, timer=level, bf16_supported=True) == torch.bfloat16
    assert precision.autocast_dtype(gpu2, timer=level, bf16_supported=False) == torch.float16
    assert len(calls) == 4  # no measurement where bfloat16 is not supported
    assert precision.autocast_dtype(gpu2, "bfloat16") == torch.bfloat16


# ----------------------------------------------------------------------------- loader workers, compile


def test_loader_workers_train_the_same_weights():
    """Random crops are drawn per item from (seed, epoch, index): the same in a worker process."""
    results = []
    for workers in (0, 2):
        torch.manual_seed(0)
        model = create_model("mfcc_cnn1d", num_classes=3, **smoke_config("mfcc_cnn1d"))
        x = example_inputs(model.inputs, batch=24, free=40, generator=torch.Generator().manual_seed(9))
        longer = [np.pad(a, ((0, 12), (0, 0))) for a in x["audio"].numpy()]  # cropped at random in training
        data = TensorData({"audio": longer}, np.arange(24) % 3, model.inputs, train=True, seed=1)
        history = fit(model, data, None, TrainConfig(epochs=2, batch_size=8, loader_workers=workers),
                      labels=LABELS).history
        results.append((weights(model), history))
    assert results[0][1] == results[1][1]
    assert all(torch.equal(results[0][0][k], results[1][0][k]) for k in results[0][0])


def test_compile_time_is_reported_in_the_first_epoch(monkeypatch):
    compiled = []

    def fake_compile(module):  # the wrapping and the timing are what is checked here; a GPU compiles
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    model = au_model()
    result = fit(model, data_for(model, 16, seed=10), None, TrainConfig(epochs=2, batch_size=8, compile=True),
                 labels=LABELS)
    assert len(compiled) == 1 and result.compile_seconds is not None and result.compile_seconds >= 0
    assert result.history[0]["compile_seconds"] == result.compile_seconds
    assert "compile_seconds" not in result.history[1]
    plain = fit(au_model(), data_for(model, 16, seed=10), None, TrainConfig(epochs=1, batch_size=8), labels=LABELS)
    assert plain.compile_seconds is None and "compile_seconds" not in plain.history[0]


def test_a_device_name_is_checked_once_for_training_and_inference(monkeypatch):
    """`avemo train --device gpu` ended in torch's RuntimeError, `--device cuda` without a GPU in its
    AssertionError at the first epoch: one function now resolves a name for training and inference
    (the GPU's presence simulated, as on every CI machine)."""
    from avemo.device import torch_device

    with pytest.raises(ConfigError, match=r"^unknown device 'gpu': use auto \(a GPU when there is one\), cpu, cuda"):
        torch_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert torch_device("auto") == torch.device("cpu") and torch_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match=r"^cannot use device 'cuda': torch \(.*\) sees no CUDA GPU here; use cpu or auto$"):
        torch_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert torch_device("auto") == torch.device("cuda") and torch_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ConfigError, match=r"^cannot use device 'cuda:2': torch sees 2 CUDA GPUs \(cuda:0 to cuda:1\)$"):
        torch_device("cuda:2")


@pytest.mark.parametrize("device", ["gpu", "cuda"])
def test_train_refuses_a_device_it_cannot_use_before_reading_the_data(monkeypatch, tmp_path, avemo_main, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = avemo_main("train", "--root", tmp_path / "not_read", "--model", "egemaps_mlp", "--device", device,
                              "--out", tmp_path / "run")
    said = "--device must be auto (a GPU when there is one), cpu, cuda or cuda:N" if device == "gpu" else "cannot use device"
    assert code == 2 and err.count("\n") == 1 and f"avemo: error: {said}" in err
    assert not (tmp_path / "run").exists()
