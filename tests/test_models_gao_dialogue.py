"""gao_dialogue (paper 002 with text and dialogue context) and the dialogue batches it reads."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from avemo.models import ModelInputError, create_model, smoke_config
from avemo.models.batching import TensorData, collate

SUBSETS = [list(s) for n in (1, 2, 3) for s in itertools.combinations(("text", "audio", "video"), n)]
#: the context through the fine-tuned text blocks (``encoder_context``), besides the published form
JOINT = {"finetune_layers": 1, "encoder_context": True}


def build(modalities, context: int, seed: int = 0, **extra):
    torch.manual_seed(seed)
    config = smoke_config("gao_dialogue", modalities=modalities, context=context, video="au_mlp", **extra)
    model = create_model("gao_dialogue", num_classes=4, **config)
    return model.eval()


def arrays(model, lengths, seed=0):
    """One utterance per length in ``lengths`` for every input of ``model`` (fixed shapes as declared)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, spec in model.inputs.items():
        if spec.kind == "sequence":
            out[name] = [rng.standard_normal((n, spec.shape[1])).astype(np.float32) for n in lengths]
        else:
            out[name] = [rng.standard_normal(spec.shape).astype(np.float32) for _ in lengths]
    return out


def batch(model, data: TensorData, index):
    inputs, _ = collate([data[i] for i in index])
    return inputs


@pytest.mark.parametrize("modalities", SUBSETS, ids="+".join)
@pytest.mark.parametrize("context", [0, 2])
def test_every_subset_gives_logits_from_a_dialogue_batch(modalities, context):
    model = build(modalities, context)
    assert set(model.inputs) == set(modalities)
    assert model.dialogue_context == context
    lengths = [3, 5, 2, 7]
    previous = [[], [0], [0, 1], [0, 1, 2]]
    data = TensorData(arrays(model, lengths), np.zeros(4, dtype=np.int64), model.inputs, context=context,
                      previous=previous)
    inputs = batch(model, data, range(4))
    for name, spec in model.inputs.items():
        if spec.kind == "sequence":
            assert inputs[name + "_mask"].shape == (4, 7)
            assert inputs[name + "_mask"].sum(1).tolist() == lengths
        if context:
            ctx_mask = inputs[name + "_context_mask"]
            present = ctx_mask.flatten(2).any(2) if ctx_mask.dim() == 3 else ctx_mask
            # right-aligned: the first item has none, the second its last slot, the others both
            assert present.tolist() == [[False, False], [False, True], [True, True], [True, True]]
        else:
            assert name + "_context" not in inputs
    with torch.no_grad():
        logits = model(inputs)
    assert logits.shape == (4, 4) and torch.isfinite(logits).all()


@pytest.mark.parametrize("extra", [{}, JOINT], ids=["published", "encoder_context"])
@pytest.mark.parametrize("context", [0, 3])
def test_padding_does_not_change_outputs(context, extra):
    """An utterance alone and in a batch padded by a longer one (tokens and context) scores the same."""
    model = build(["text", "audio", "video"], context, **extra)
    lengths = [4, 9, 2, 12, 3]
    previous = [[], [0], [0, 1], [], [3]]
    data = TensorData(arrays(model, lengths, seed=1), np.zeros(5, dtype=np.int64), model.inputs,
                      context=context, previous=previous)
    with torch.no_grad():
        together = model(batch(model, data, range(5)))
        for i in range(5):
            alone = model(batch(model, data, [i]))
            torch.testing.assert_close(alone[0], together[i], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("extra", [{}, JOINT], ids=["published", "encoder_context"])
def test_context_changes_outputs_and_missing_context_is_no_context(extra):
    model = build(["text"], 2, **extra)
    data = TensorData(arrays(model, [4, 5, 6], seed=2), np.zeros(3, dtype=np.int64), model.inputs,
                      context=2, previous=[[], [0], [0, 1]])
    inputs = batch(model, data, range(3))
    with torch.no_grad():
        full = model(inputs)
        without = model({k: v for k, v in inputs.items() if "_context" not in k})
        other = dict(inputs)
        other["text_context"] = inputs["text_context"] + 1.0
        changed = model(other)
    torch.testing.assert_close(full[0], without[0])  # the first utterance has no context anyway
    assert not torch.allclose(full[2], without[2])
    assert not torch.allclose(full[2], changed[2])
    torch.testing.assert_close(full[0], changed[0])  # padding of a missing context is never read


def test_context_zero_ignores_a_context_and_masks_default_to_all_real():
    model = build(["text"], 0)
    data = TensorData(arrays(model, [4, 4]), np.zeros(2, dtype=np.int64), model.inputs, context=0)
    inputs = batch(model, data, range(2))
    with torch.no_grad():
        plain = model({"text": inputs["text"]})
        masked = model(inputs)
        extra = model({**inputs, "text_context": torch.randn(2, 2, 4, 384)})
    torch.testing.assert_close(plain, masked)
    torch.testing.assert_close(plain, extra)


def test_text_only_input_to_an_audio_model_names_the_missing_modality():
    model = build(["text", "audio"], 0)
    with pytest.raises(ModelInputError) as err:
        model({"text": torch.randn(2, 4, 384)})
    message = str(err.value)
    assert "gao_dialogue" in message and "'audio'" in message and "\n" not in message


def test_sentence_embedding_text_input():
    model = build(["text"], 1, text_kind="vector", text_feature="minilm")
    assert model.inputs["text"].kind == "vector" and model.inputs["text"].shape == (384,)
    data = TensorData(arrays(model, [1, 1, 1]), np.zeros(3, dtype=np.int64), model.inputs, context=1,
                      previous=[[], [0], [1]])
    inputs = batch(model, data, range(3))
    assert inputs["text_context"].shape == (3, 1, 384) and "text_mask" not in inputs
    with torch.no_grad():
        assert model(inputs).shape == (3, 4)


@pytest.mark.parametrize("bad", [{"modalities": []}, {"modalities": ["text", "smell"]}, {"context": -1},
                                 {"finetune_bucket": -1}, {"encoder_context": True}])
def test_bad_config_is_one_line(bad):
    from avemo.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        create_model("gao_dialogue", num_classes=4, **bad)
    assert "gao_dialogue" in str(err.value) and "\n" not in str(err.value)


def test_context_needs_previous_utterances():
    model = build(["text"], 2)
    with pytest.raises(ValueError, match="previous utterances"):
        TensorData(arrays(model, [3]), np.zeros(1, dtype=np.int64), model.inputs, context=2)


def test_training_step_reaches_every_parameter():
    model = build(["text", "audio", "video"], 2).train()
    data = TensorData(arrays(model, [3, 4, 5]), np.array([0, 1, 2]), model.inputs, context=2,
                      previous=[[], [0], [0, 1]])
    inputs = batch(model, data, range(3))
    loss = model.loss(model.forward_outputs(inputs), torch.tensor([0, 1, 2]))
    loss.backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


def test_finetuned_blocks_on_hidden_states_reproduce_the_last_layer():
    """minilm_hidden after block 4 through the model's two pretrained blocks = minilm_tokens."""
    from avemo.features.base import get_extractor

    model = build(["text"], 0, finetune_layers=2, finetune_lr=1e-5)
    spec = model.inputs["text"]
    assert (spec.feature, spec.config["layer"], spec.standardise) == ("minilm_hidden", 4, False)
    texts = ["Oh my God, he's lost it.", "What?"]
    hidden = get_extractor("minilm_hidden", **spec.config).from_texts(texts)
    last = get_extractor("minilm_tokens").from_texts(texts)
    for h, ref in zip(hidden, last, strict=True):
        x = torch.from_numpy(h["x"])[None]
        keep = torch.ones(x.shape[:2], dtype=torch.bool)
        with torch.no_grad():
            for block in model.text_blocks:
                x = block(x, keep)
        torch.testing.assert_close(x[0], torch.from_numpy(ref["x"]), rtol=1e-4, atol=1e-4)
    groups = model.parameter_groups()
    assert [g.get("lr") for g in groups] == [None, 1e-5]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_blocks_run_by_length_buckets_as_on_each_utterance_alone():
    from avemo.models.fusion.gao_dialogue import run_blocks

    model = build(["text"], 0, finetune_layers=2)
    lengths = torch.tensor([5, 1, 12, 3, 9, 12, 2])
    x = torch.randn(7, 14, 384, generator=torch.Generator().manual_seed(0))
    mask = torch.arange(14)[None] < lengths[:, None]
    with torch.no_grad():
        out = run_blocks(model.text_blocks, x, mask, bucket=3)
        assert out.shape == x.shape
        one_bucket = run_blocks(model.text_blocks, x, mask)  # bucket 0: all padded to the longest
        torch.testing.assert_close(out[mask], one_bucket[mask], rtol=1e-4, atol=1e-5)
        for i, n in enumerate(lengths.tolist()):
            alone = x[i:i + 1, :n]
            for block in model.text_blocks:
                alone = block(alone, mask[i:i + 1, :n])
            torch.testing.assert_close(out[i, :n], alone[0], rtol=1e-4, atol=1e-5)
    assert (out[1, 12:] == 0).all()  # past the longest utterance of its bucket: zero padding


@pytest.mark.parametrize("context_grad", [True, False])
def test_context_grad_option_stops_the_gradient_of_the_context_only(context_grad):
    model = build(["text"], 2, finetune_layers=1, finetune_context_grad=context_grad).train()
    data = TensorData(arrays(model, [3, 4, 5], seed=3), np.array([0, 1, 2]), model.inputs, context=2,
                      previous=[[], [0], [0, 1]])
    inputs = batch(model, data, range(3))
    for name in ("text", "text_context"):
        inputs[name].requires_grad_(True)
    model.loss(model.forward_outputs(inputs), torch.tensor([0, 1, 2])).backward()
    assert inputs["text"].grad is not None and inputs["text"].grad.abs().sum() > 0
    assert (inputs["text_context"].grad is not None) == context_grad
    assert all(p.grad is not None for p in model.text_blocks.parameters())
    with torch.no_grad():  # the option changes the gradient, never the outputs
        other = build(["text"], 2, finetune_layers=1, finetune_context_grad=not context_grad)
        torch.testing.assert_close(model.eval()(inputs), other(inputs))


def test_encoder_context_blocks_see_the_context_then_the_current_utterance():
    """The current tokens out of joint_sequence / run_blocks / current_tokens = the blocks over the
    real tokens of the previous utterances and the current one, concatenated (its last tokens)."""
    from avemo.models.fusion.gao_dialogue import current_tokens, joint_sequence, run_blocks

    model = build(["text"], 2, **JOINT)
    lengths = [3, 6, 2, 4]
    raw = arrays(model, lengths, seed=4)["text"]
    previous = [[], [0], [0, 1], [1, 2]]
    data = TensorData({"text": raw}, np.zeros(4, dtype=np.int64), model.inputs, context=2, previous=previous)
    inputs = batch(model, data, range(4))
    seq, keep, start = joint_sequence(inputs["text"], inputs["text_mask"], inputs["text_context"],
                                      inputs["text_context_mask"])
    assert seq.shape[1] == 12 and keep.sum(1).tolist() == [3, 9, 11, 12] and start.tolist() == [0, 3, 9, 8]
    with torch.no_grad():
        tokens, mask = current_tokens(run_blocks(model.text_blocks, seq, keep, bucket=2), start, inputs["text_mask"])
        for i, n in enumerate(lengths):
            alone = torch.from_numpy(np.concatenate([raw[j] for j in previous[i]] + [raw[i]]))[None]
            for block in model.text_blocks:
                alone = block(alone, torch.ones(alone.shape[:2], dtype=torch.bool))
            torch.testing.assert_close(tokens[i, :n], alone[0, -n:], rtol=1e-4, atol=1e-5)
            assert (tokens[i, n:] == 0).all() and mask[i].sum() == n


def test_encoder_context_trains_the_blocks_on_the_context_and_is_the_plain_model_without_one():
    model = build(["text"], 2, **JOINT).train()
    data = TensorData(arrays(model, [3, 4, 5], seed=5), np.array([0, 1, 2]), model.inputs, context=2,
                      previous=[[], [0], [0, 1]])
    inputs = batch(model, data, range(3))
    inputs["text_context"].requires_grad_(True)
    model.loss(model.forward_outputs(inputs), torch.tensor([0, 1, 2])).backward()
    grad = inputs["text_context"].grad
    assert grad[2].abs().sum() > 0 and (grad[0] == 0).all()  # the first utterance has no context
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    with torch.no_grad():  # no previous utterance: the same model as the published form (same weights)
        plain, joint = build(["text"], 0, finetune_layers=1), build(["text"], 0, **JOINT)
        alone = {"text": inputs["text"], "text_mask": inputs["text_mask"]}
        torch.testing.assert_close(joint(alone), plain(alone))
