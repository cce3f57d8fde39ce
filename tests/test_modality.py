"""One modality vocabulary (:mod:`avemo.modality`) everywhere, and the alias that keeps avemo 0.1's
checkpoints and bundles (which named the video modality ``"visual"``) loading unchanged.

``tests/data/checkpoint_v0_1`` holds two checkpoints written by avemo 0.1 before the rename
(a ``late_product`` and a small ``cfn_sr``, whose weights include ``cross.visual_affine.*``),
with inputs and the logits that code computed on them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from avemo.datasets.records import Clip
from avemo.errors import AvemoError, ConfigError
from avemo.features import extractor_class, list_extractors
from avemo.inference.bundle import BUNDLE_DIR, read_bundle
from avemo.modality import MEDIA_MODALITIES, MODALITIES, legacy_key, ordered, parse_modalities
from avemo.models import InputSpec, list_models, model_info
from avemo.models.checkpoint import load_checkpoint, read_meta

LEGACY = Path(__file__).resolve().parent / "data" / "checkpoint_v0_1"


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_every_layer_speaks_the_same_modalities():
    assert MODALITIES == ("audio", "video", "text")
    assert MEDIA_MODALITIES == ("audio", "video")
    assert {extractor_class(n).modality for n in list_extractors()} <= set(MODALITIES)
    encoders = [n for m in MODALITIES for n in list_models(m)]
    assert set(MEDIA_MODALITIES) <= {model_info(n)["kind"] for n in encoders} <= set(MODALITIES)
    for name in list_models():
        assert {i["modality"] for i in model_info(name)["inputs"].values()} <= set(MODALITIES)
    fusion_inputs = {k for n in list_models("fusion") for k in model_info(n)["inputs"]}
    assert "visual" not in fusion_inputs and "video" in fusion_inputs


def test_unknown_modalities_are_config_errors():
    with pytest.raises(ConfigError, match="modality must be one of"):
        InputSpec("visual", "openface_au_means", {}, (35,), "vector")
    with pytest.raises(ConfigError, match="'hologram' is not a modality"):
        Clip(Path("x.wav"), "folder", None, "1", "x", ("audio", "hologram"))
    with pytest.raises(ConfigError, match="non-empty subset"):
        parse_modalities("audio,visual")
    with pytest.raises(ConfigError, match="unknown model kind 'visual'"):
        list_models("visual")


def test_clip_modalities_are_checked_and_ordered():
    clip = Clip(Path("x.mp4"), "folder", None, "1", "x", ("video", "audio"))
    assert clip.modalities == ("audio", "video") and clip.kind == "audio+video"
    assert clip.has("video") and not Clip(Path("y.wav"), "folder", None, "1", "y", "audio").has("video")
    assert ordered(["video", "audio", "video"]) == ("audio", "video")
    assert parse_modalities("video+audio") == ("audio", "video")


def test_legacy_names_translate_keys_and_weight_names_only():
    assert [legacy_key(k) for k in ("visual", "visual_config", "visual_encoder.fc.weight",
                                    "cross.visual_affine.bias", "audio", "visualise", "table_visual")] == [
        "video", "video_config", "video_encoder.fc.weight", "cross.video_affine.bias", "audio", "visualise",
        "table_visual"]


@pytest.mark.parametrize("name", ["late_product", "cfn_sr"])
def test_an_avemo_0_1_checkpoint_loads_unchanged_and_computes_the_same(name):
    before = _digests(LEGACY)
    stored = json.loads((LEGACY / name / "checkpoint.json").read_text())
    assert "visual" in stored["inputs"] and "visual" in stored["model"]["config"]  # the old names, on disk
    ckpt = load_checkpoint(LEGACY / name)
    assert set(ckpt.inputs) == {"audio", "video"} and ckpt.inputs["video"].modality == "video"
    assert ckpt.model.build_args["config"]["video"] == "au_mlp"
    assert set(ckpt.normalizer.kinds) == set(ckpt.normalizer.mean) == {"audio", "video"}
    assert set(read_meta(LEGACY / name)["inputs"]) == {"audio", "video"}
    expected = np.load(LEGACY / "expected.npz")
    x = {("video" if k == "visual" else k): torch.from_numpy(expected[f"{name}_input_{k}"]) for k in ("audio", "visual")}
    with torch.no_grad():
        logits = ckpt.model(x).numpy()
    np.testing.assert_allclose(logits, expected[f"{name}_logits"], rtol=1e-5, atol=1e-6)
    assert _digests(LEGACY) == before  # read, never rewritten


def test_a_bundle_model_json_with_the_old_visual_key_loads(tmp_path):
    """Bundles written before the modality vocabulary was one call the video options "visual"."""
    stored = json.loads((BUNDLE_DIR / "model.json").read_text())
    stored["config"]["visual"] = stored["config"].pop("video")
    (tmp_path / "model.json").write_text(json.dumps(stored))
    config, _ = read_bundle(tmp_path)
    assert config.video.fps == stored["config"]["visual"]["fps"]
    assert config == read_bundle(BUNDLE_DIR)[0]


def test_text_is_a_modality_carried_with_its_text():
    clip = Clip(Path("a.csv"), "meld", "happy", "Joey", "t", ("text",), text="How you doin'?", dialogue="train:1", turn=0)
    assert clip.kind == "text" and clip.dialogue_key == "meld:train:1"
    assert parse_modalities(None) == MEDIA_MODALITIES
    assert parse_modalities("text,audio") == ("audio", "text")
    with pytest.raises(ConfigError, match="text modality exactly when its text is known"):
        Clip(Path("a.wav"), "folder", None, "1", "a", ("audio", "text"))
    with pytest.raises(ConfigError, match="turn exactly when it has a dialogue"):
        Clip(Path("a.wav"), "folder", None, "1", "a", ("audio",), dialogue="d")
    with pytest.raises(ConfigError, match="split 'val' is not one of train, dev, test"):
        Clip(Path("a.wav"), "folder", None, "1", "a", ("audio",), split="val")


def _message(call) -> str:
    with pytest.raises(AvemoError) as err:
        call()
    return str(err.value)


def test_messages_list_names_as_plain_text_not_python_lists():
    """Names in one-line errors read `audio, video, text`, not a Python list's repr `['audio', 'video', 'text']`."""
    from avemo.datasets.labels import LabelMap, LabelSet, comparison_map, fer_to_labels_matrix
    from avemo.inference.predictor import _check_known
    from avemo.modality import MODALITIES, parse_modalities
    from avemo.models import default_inputs
    from avemo.models.inputs import check_inputs
    from avemo.training.corpora import BALANCES, SPACE_MODES, balance_weights, build_label_space

    mine, theirs = LabelSet("mine", ("contempt", "pride")), LabelSet("theirs", ("neutral", "happy", "pride"))
    specs = default_inputs("egemaps_mlp")
    messages = {
        ", ".join(MODALITIES): _message(lambda: parse_modalities("", where="--modalities")),
        f"modality must be one of {', '.join(MODALITIES)}": _message(
            lambda: InputSpec("visual", "openface_au_means", {}, (35,), "vector")),
        "theirs (neutral, happy, pride) and mine (contempt, pride)": _message(lambda: comparison_map(theirs, mine)),
        "without a partner: mine contempt; theirs neutral, happy": _message(
            lambda: build_label_space({"mine": mine, "theirs": theirs})),
        f"use one of {', '.join(SPACE_MODES)}": _message(lambda: build_label_space({"mine": mine}, "both")),
        f"use one of {', '.join(BALANCES)}": _message(lambda: balance_weights(["a"], np.zeros(1, int), 2, "most")),
        "the label set (contempt, pride) shares no emotion": _message(lambda: fer_to_labels_matrix(mine)),
        "mine->theirs lacks contempt, pride": _message(lambda: LabelMap(mine, theirs, {})),
        "targets unknown calm, sad": _message(lambda: LabelMap(mine, theirs, {"contempt": "calm", "pride": "sad"})),
        "does not know: contempt, pride": _message(lambda: _check_known(("contempt", "pride"), Path("run"))),
        f"input tensors ({', '.join(sorted(specs))}), got list": _message(lambda: check_inputs("egemaps_mlp", specs, [])),
    }
    for expected, message in messages.items():
        assert expected in message and "[" not in message and "', '" not in message, message
