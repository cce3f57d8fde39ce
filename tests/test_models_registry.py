"""The registry: names, kinds, info, aliases, config errors, and parameter counts against paper 000's Table 1."""

from __future__ import annotations

import json

import pytest
import torch

from avemo.errors import ConfigError
from avemo.models import (
    InputSpec,
    ModelInputError,
    check_inputs,
    count_parameters,
    create_model,
    default_inputs,
    list_aliases,
    list_models,
    model_info,
    register_alias,
    registry,
)
from avemo.models.papers import PAPERS, ZHANG_ZHENG_TABLE_1

REQUIRED = {
    "audio": {"mfcc_cnn1d", "sultana_audio_cnn1d", "gao_bilstm_attention", "cai_ser1", "cai_ser2", "fercnn"},
    "video": {"sultana_video_cnn3d", "resnext3d_50", "cai_fer1", "cai_fer2", "au_mlp"},
    "fusion": {
        "late_average",
        "late_multiplicative",
        "late_product",
        "concat_fc",
        "mcbp",
        "mmtm",
        "msaf",
        "cfn_sr",
        "cfnsr_lstm",
        "sultana_concat_dense",
        "gao_mha_residual",
        "cai_mer1",
        "cai_mer2",
        "mfa_fercnn",
    },
}

def meta_model(name: str, **config):
    """Build on the meta device: parameter shapes without allocating or initialising weights."""
    with torch.device("meta"):
        return create_model(name, **config)


def published_count(model) -> int:
    """Parameters as MSAF/paper 000 count them: MCBP's count sketches as dense matrices (see fusion/mcbp.py)."""
    return count_parameters(model) + getattr(model, "dense_sketch_size", 0)


@pytest.mark.parametrize("kind", sorted(REQUIRED))
def test_required_names_are_registered_with_their_kind(kind):
    assert REQUIRED[kind] <= set(list_models(kind))
    assert set(list_models()) == set().union(*(list_models(k) for k in REQUIRED))


@pytest.mark.parametrize("name", sorted(ZHANG_ZHENG_TABLE_1))
def test_parameter_count_matches_paper_000_table_1(name):
    count = published_count(meta_model(name, num_classes=8)) / 1e6
    paper = ZHANG_ZHENG_TABLE_1[name]
    # within 5 %, or within the rounding of the published figure (0.03 M is 0.025-0.035 M)
    assert abs(count - paper) <= max(0.05 * paper, 0.005), f"{name}: {count:.3f} M vs {paper} M"


def test_cfnsr_lstm_count_is_in_paper_000_range():
    count = count_parameters(meta_model("cfnsr_lstm", num_classes=8)) / 1e6
    assert 26.40 <= count <= 26.50


def test_exact_counts_of_reference_networks():
    # Hara's 3D ResNeXt-50 with an 8-way fc, MSAF's MFCC CNN, and paper 004's FERCNN table total
    assert count_parameters(meta_model("resnext3d_50", num_classes=8)) == 25_882_056
    assert count_parameters(meta_model("mfcc_cnn1d", num_classes=8)) == 34_024
    assert count_parameters(meta_model("fercnn", num_classes=6, n_mfcc=85)) == 152_614  # input length 170
    # late fusion learns nothing beyond the two unimodal networks
    assert count_parameters(meta_model("late_average", num_classes=8)) == 25_882_056 + 34_024


def test_mcbp_sketches_are_constant_buffers():
    model = meta_model("mcbp", num_classes=8)
    names = {n for n, _ in model.named_buffers()}
    assert {"pooling.sketch1.index", "pooling.sketch1.sign", "pooling.sketch2.sign"} <= names
    assert model.dense_sketch_size == (2048 + 1664) * 6750


@pytest.mark.parametrize("name", list_models())
def test_info_and_default_inputs_agree_with_the_built_model(name):
    info = model_info(name)
    json.dumps(info)  # result files and docs need JSON-compatible info
    assert info["name"] == name and info["kind"] in ("audio", "video", "fusion")
    assert any(f'"{p.title}"' in info["description"] for p in PAPERS.values()) and "epart" in info["description"]
    assert any(info["paper"].startswith(p.cite() + ", §") for p in PAPERS.values())
    model = meta_model(name, num_classes=4)
    assert model.inputs == default_inputs(name)
    assert {k: v.to_dict() for k, v in model.inputs.items()} == info["inputs"]
    rebuilt = meta_model(
        model.build_args["name"], num_classes=model.build_args["num_classes"], **model.build_args["config"]
    )
    assert count_parameters(rebuilt) == count_parameters(model) and rebuilt.inputs == model.inputs


@pytest.mark.parametrize("name", list_models("fusion"))
def test_every_fusion_model_runs_on_au_vectors(name):
    inputs = default_inputs(name, video="au_mlp")
    assert inputs["video"] == InputSpec(
        "video", "openface_au_means", {}, (35,), "vector", inputs["video"].optional
    )


def test_fusion_defaults_are_the_papers_encoders():
    assert model_info("cfnsr_lstm")["config"]["video"] == "resnext3d_50"
    assert model_info("cfnsr_lstm")["config"]["audio"] == "mfcc_cnn1d"
    assert model_info("sultana_concat_dense")["config"]["audio"] == "sultana_audio_cnn1d"
    assert model_info("cai_mer2")["config"]["audio"] == "cai_ser2"
    assert model_info("cai_mer1")["config"]["video"] == "cai_fer2"
    assert default_inputs("cai_mer1")["audio"].feature == "pyaa34"


def test_configuration_errors_are_one_line_config_errors():
    cases = [
        (lambda: create_model("no_such_model"), "unknown model 'no_such_model'"),
        (lambda: create_model("mfcc_cnn1d", n_frmaes=10), "unknown option"),
        (lambda: create_model("msaf", audio="resnext3d_50"), "'resnext3d_50' encodes video, not audio; audio encoders"),
        (lambda: create_model("msaf", video="late_average"), "is a fusion model"),
        (lambda: create_model("mfcc_cnn1d", num_classes=1), "num_classes"),
        (lambda: create_model("mfcc_cnn1d", n_frames=5), "n_frames must be at least"),
        (lambda: create_model("resnext3d_50", size=(4, 4)), "crop width"),
        (lambda: list_models("smell"), "unknown model kind"),
    ]
    for make, message in cases:
        with pytest.raises(ConfigError) as err:
            make()
        assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name, bad, message", [
    ("mcbp", {"output_dim": 1}, "output_dim"),
    ("gao_mha_residual", {"d_model": 10, "heads": 3}, "divisible"),
    ("mmtm", {"points": 0}, "points"),
    ("late_calibrated", {"weight_step": 0.7}, "weight_step"),
    ("late_multiplicative", {"beta": 2.0}, "beta"),
    ("msaf", {"block_dropout": 1.0}, "block_dropout"),
    ("cfn_sr", {"embed_dim": 10, "heads": 3}, "divisible"),
    ("whisper_mlp", {"hidden": (0,)}, "hidden"),
    ("resnext3d_50", {"layers": (1, 2)}, "layers"),
    ("au_mlp", {"hidden": ()}, "hidden"),
])
def test_model_configs_built_directly_raise_config_errors(name, bad, message):
    """A model config is checked when it is built, not only through create_model: the same
    ConfigError as an extractor config, one line."""
    from avemo.models.registry import model_class

    with pytest.raises(ConfigError, match=message) as err:
        model_class(name).Config(**bad)
    assert "\n" not in str(err.value)


def test_aliases(monkeypatch):
    monkeypatch.setattr(registry, "_ALIASES", {})
    register_alias("default", "au_mlp")
    assert list_aliases() == {"default": "au_mlp"}
    assert "default" not in list_models()
    assert model_info("default")["name"] == "au_mlp" and model_info("au_mlp")["aliases"] == ["default"]
    model = create_model("default", num_classes=3)
    assert model.build_args["name"] == "au_mlp"
    with pytest.raises(ConfigError, match="unknown model"):
        register_alias("x", "nope")
    with pytest.raises(ConfigError, match="already a model name"):
        register_alias("msaf", "au_mlp")


def test_input_spec_validation_and_description():
    spec = InputSpec("audio", "mfcc", {"n_mfcc": 13}, (None, 13), "sequence")
    assert spec.describe() == "mfcc(n_mfcc=13) (*, 13) sequence"
    assert spec.to_dict()["shape"] == [None, 13]
    with pytest.raises(ConfigError, match="a frames has 4 dims"):
        InputSpec("video", "face_crops", {}, (8, 32, 32), "frames")
    with pytest.raises(ConfigError, match="modality"):
        InputSpec("smell", "bert", {}, (3,), "vector")
    same = InputSpec("audio", "mfcc", {"n_mfcc": 13}, (None, 13), "sequence")
    assert same == spec and hash(same) == hash(spec) and len({spec, same}) == 1


def test_check_inputs_errors():
    specs = {
        "audio": InputSpec("audio", "mfcc", {}, (None, 13), "sequence"),
        "video": InputSpec("video", "t", {}, (4,), "vector"),
    }
    good = {"audio": torch.zeros(2, 7, 13), "video": torch.zeros(2, 4)}
    check_inputs("m", specs, good)
    bad_cases = [
        ([good["audio"]], "expected a dict"),
        ({**good, "audio": torch.zeros(2, 7, 13, dtype=torch.long)}, "must be a float tensor"),
        ({**good, "video": torch.zeros(3, 4)}, "different batch sizes"),
        ({**good, "audio": torch.zeros(2, 0, 13)}, "is empty"),
        ({**good, "video": torch.zeros(2, 5)}, "must have shape (B, 4)"),
        ({"audio": good["audio"]}, "missing input 'video'"),
    ]
    for inputs, message in bad_cases:
        with pytest.raises(ModelInputError) as err:
            check_inputs("m", specs, inputs)
        assert message in str(err.value) and str(err.value).startswith("m: ")
        assert isinstance(err.value, ValueError) and isinstance(err.value, ConfigError)
