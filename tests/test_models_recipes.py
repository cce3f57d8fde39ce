"""The recommended-recipe models: embedding MLP encoders and the calibrated late fusion (``default``).

Behaviour only (no accuracy numbers): shapes and parameter counts, the temperature and weight
searches against known answers, that calibration lowers the validation NLL and is saved in the
state_dict, missing experts, the training loss, and the trainer's calibration hook.
"""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn.functional as F

from avemo.errors import ConfigError
from avemo.models import count_parameters, create_model, default_inputs, list_aliases, model_info
from avemo.models.fusion.late_calibrated import fit_temperature, fit_weights, simplex_grid
from avemo.models.inputs import InputSpec, example_inputs


def test_whisper_mlp_inputs_and_linear_variant_is_logistic_regression():
    assert default_inputs("whisper_mlp") == {"audio": InputSpec("audio", "whisper_base", {}, (512,), "vector")}
    linear = create_model("whisper_mlp", num_classes=8)
    assert count_parameters(linear) == 512 * 8 + 8  # by default the head alone: multinomial logistic regression
    mlp = create_model("whisper_mlp", num_classes=8, hidden=(256,))
    assert count_parameters(mlp) == 512 * 256 + 256 + 256 * 8 + 8
    one_layer = create_model("whisper_mlp", num_classes=8, feature_config={"layer": 3})
    assert one_layer.inputs["audio"].config == {"layer": 3}
    linear.eval()
    x = torch.randn(4, 512)
    with torch.no_grad():
        torch.testing.assert_close(linear({"audio": x}), linear.head(x))  # eval: input dropout is the identity


def test_egemaps_mlp_reads_the_88_functionals():
    spec = default_inputs("egemaps_mlp")["audio"]
    assert (spec.feature, spec.shape, spec.kind) == ("egemaps", (88,), "vector")
    assert model_info("egemaps_mlp")["kind"] == "audio"


@pytest.mark.parametrize("bad", [{"hidden": (0,)}, {"dropout": 1.0}, {"input_dropout": -0.1}, {"input_dim": 0}])
def test_embedding_mlp_config_errors_are_one_line(bad):
    with pytest.raises(ConfigError) as err:
        create_model("whisper_mlp", **bad)
    assert "\n" not in str(err.value)


def test_default_alias_is_the_calibrated_late_fusion_of_whisper_and_au():
    assert list_aliases()["default"] == "late_calibrated"
    inputs = default_inputs("default")
    assert [(k, s.feature) for k, s in inputs.items()] == [("audio", "whisper_base"), ("video", "openface_au_means")]
    assert all(s.optional for s in inputs.values())
    three = default_inputs("late_calibrated", audio2="egemaps_mlp")
    assert list(three) == ["audio", "audio2", "video"] and three["audio2"].feature == "egemaps"


def test_fit_temperature_recovers_the_temperature_labels_were_drawn_with():
    g = torch.Generator().manual_seed(0)
    logits = 3.0 * torch.randn(6000, 5, generator=g)
    for true_t in (0.5, 2.0):
        labels = torch.multinomial(F.softmax(logits / true_t, dim=1), 1, generator=g).squeeze(1)
        assert abs(fit_temperature(logits, labels) / true_t - 1) < 0.1


def test_simplex_grid_covers_the_simplex():
    grid = simplex_grid(3, 0.25)
    assert grid.shape == (math.comb(4 + 2, 2), 3)  # compositions of 4 steps into 3 parts
    torch.testing.assert_close(grid.sum(1), torch.ones(len(grid), dtype=torch.float64))
    assert (grid >= 0).all() and len({tuple(r) for r in grid.tolist()}) == len(grid)
    assert simplex_grid(1, 0.1).tolist() == [[1.0]]


def test_fit_weights_ignores_an_uninformative_expert_and_balances_equal_ones():
    g = torch.Generator().manual_seed(1)
    n, c = 4000, 4
    y = torch.randint(0, c, (n,), generator=g)
    signal = F.one_hot(y, c).double() * 2.0

    def informative():
        return F.log_softmax(signal + torch.randn(n, c, generator=g, dtype=torch.float64), dim=1)

    noise = F.log_softmax(torch.randn(n, c, generator=g, dtype=torch.float64), dim=1)
    w = fit_weights(torch.stack([informative(), noise]), y)
    assert w[1] <= 0.1 * w[0]
    w = fit_weights(torch.stack([informative(), informative()]), y)
    assert abs(float(w[0] - w[1])) <= 0.15 * float(w.sum())


def _expert_data(model, n=240, seed=0):
    """Inputs on which the audio expert is informative and the video one is not (for calibration)."""
    g = torch.Generator().manual_seed(seed)
    x = example_inputs(model.inputs, batch=n, generator=g)
    y = torch.arange(n) % model.num_classes
    return x, y


def test_calibrate_lowers_validation_nll_and_is_saved_in_the_state_dict():
    torch.manual_seed(0)
    model = create_model("late_calibrated", num_classes=4)
    model.eval()
    x, y = _expert_data(model)
    with torch.no_grad():  # make the (linear) audio expert informative: its head reads dims that encode the label
        x["audio"][:, :4] += 3.0 * F.one_hot(y, 4).float()
        model.audio_head.weight.zero_()
        model.audio_head.bias.zero_()
        model.audio_head.weight[:4, :4] = 5.0 * torch.eye(4)  # over-confident: calibration must soften it
        before = F.nll_loss(model(x), y).item()
    fitted = model.calibrate(x, y)
    assert set(fitted) == {"T_audio", "T_video", "w_audio", "w_video"}
    assert fitted["T_audio"] > 1.0 and fitted["w_audio"] > fitted["w_video"]
    with torch.no_grad():
        after = F.nll_loss(model(x), y).item()
    assert after < before
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    twin = create_model("late_calibrated", num_classes=4)
    twin.load_state_dict(torch.load(buffer, weights_only=True))
    twin.eval()
    torch.testing.assert_close(twin.weights, model.weights)
    with torch.no_grad():
        torch.testing.assert_close(twin(x), model(x))


def test_missing_expert_leaves_the_calibrated_product_of_the_others():
    torch.manual_seed(0)
    model = create_model("late_calibrated", num_classes=5, audio2="egemaps_mlp").eval()
    with torch.no_grad():
        model.temperatures.copy_(torch.tensor([2.0, 0.5, 1.5]))
        model.weights.copy_(torch.tensor([1.0, 0.3, 0.7]))
    x = example_inputs(model.inputs, batch=3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        z = model.expert_logits(x)
        only_video = model({"video": x["video"]})
        torch.testing.assert_close(only_video, F.log_softmax(0.7 * F.log_softmax(z["video"] / 1.5, dim=1), dim=1))
        full = model(x)
        expected = sum(w * F.log_softmax(z[k] / t, dim=1)
                       for k, t, w in (("audio", 2.0, 1.0), ("audio2", 0.5, 0.3), ("video", 1.5, 0.7)))
        torch.testing.assert_close(full, F.log_softmax(expected, dim=1))


def test_training_loss_is_the_mean_of_the_experts_cross_entropies():
    torch.manual_seed(0)
    model = create_model("late_calibrated", num_classes=3)
    x = example_inputs(model.inputs, batch=6, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    out = model.forward_outputs(x)
    expected = (F.cross_entropy(out["audio_logits"], y) + F.cross_entropy(out["video_logits"], y)) / 2
    torch.testing.assert_close(model.loss(out, y), expected)


def test_the_trainer_calibration_hook_fits_the_buffers():
    from avemo.models.batching import TensorData
    from avemo.training.trainer import calibrate

    torch.manual_seed(0)
    model = create_model("late_calibrated", num_classes=4)
    x, y = _expert_data(model, n=64)
    data = TensorData({k: list(v.numpy()) for k, v in x.items()}, y.numpy(), model.inputs)
    assert torch.equal(model.temperatures, torch.ones(3))
    calibrate(model, data)
    assert not torch.equal(model.temperatures[[0, 2]], torch.ones(2))  # audio and video were fitted
    assert model.temperatures[1] == 1.0 and model.weights[1] == 1.0  # no audio2 expert: untouched


def test_late_calibrated_config_errors():
    with pytest.raises(ConfigError, match="weight_step"):
        create_model("late_calibrated", weight_step=0.0)
    with pytest.raises(ConfigError, match="encodes video, not audio"):
        create_model("late_calibrated", audio2="au_mlp")


def test_a_closed_form_expert_trains_as_it_trains_alone_and_stays_frozen_through_the_epochs():
    from avemo.models.batching import TensorData
    from avemo.training.config import TrainConfig
    from avemo.training.trainer import fit, fit_preprocessing

    torch.manual_seed(0)
    config = {"audio": "whisper_logreg", "audio_config": {"combine": "mean", "C": 0.1}, "video": "au_mlp"}
    model = create_model("late_calibrated", num_classes=4, **config)
    assert model.needs_fit and model.closed_form_experts() == ["audio"]
    assert not create_model("late_calibrated", num_classes=4).needs_fit  # the default experts train by epochs
    x, y = _expert_data(model, n=96)
    data = TensorData({k: list(v.numpy()) for k, v in x.items()}, y.numpy(), model.inputs)
    fit_preprocessing(model, data)
    alone = create_model("whisper_logreg", num_classes=4, combine="mean", C=0.1)  # the same expert, trained alone
    alone.fit_closed_form({"audio": x["audio"]}, y)
    torch.testing.assert_close(model.audio_head.weight, alone.head.weight)
    torch.testing.assert_close(model.audio_head.bias, alone.head.bias)
    audio_head = model.audio_head.weight.detach().clone()
    video_head = model.video_head.weight.detach().clone()
    fit(model, data, data, TrainConfig(epochs=3, patience=3), labels=["a", "b", "c", "d"])
    assert torch.equal(model.audio_head.weight, audio_head)  # frozen: the epochs train the other expert
    assert not torch.equal(model.video_head.weight, video_head)
