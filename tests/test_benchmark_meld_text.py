"""benchmarks/meld_text.py: the variant grammar and the ensemble row (the figures come from the full runs)."""

from __future__ import annotations

import numpy as np
import pytest


def test_variant_grammar_sets_the_model_and_training_options(benchmark_script):
    script = benchmark_script("meld_text")
    config, train, text = script.variant("ft2_h3_cng_lr1e4_ctxenc_s1")
    assert config == {"modalities": ["text"], "context": 3, "finetune_layers": 2, "finetune_lr": 1e-4,
                      "finetune_context_grad": False, "encoder_context": True}
    assert train == {"seed": 1}
    assert "(lr 1e-4)" in text and "H = 3" in text and "EmoBERTa" in text and text.endswith("seed 1")
    assert "(lr 3e-5)" in script.variant("ft1_h0")[2]
    assert script.variant("sent_h1_d3")[0] == {"modalities": ["text"], "context": 1, "text_feature": "minilm",
                                               "text_kind": "vector", "dropout": 0.3}
    for bad in ("ft3_h0", "ft2_3", "ft2_h0_lr", "ft2"):
        with pytest.raises(ValueError, match="is not"):
            script.variant(bad)


def test_ensemble_row_averages_the_saved_dev_probabilities(benchmark_script, tmp_path):
    script = benchmark_script("meld_text")
    labels, keys = np.array([0, 1, 2]), np.array(["d0_u0", "d0_u1", "d1_u0"])
    probs = {"a": [[0.9, 0.1, 0], [0.6, 0.4, 0], [0, 0.4, 0.6]],  # right 2 of 3
             "a_s1": [[0.4, 0.6, 0], [0, 1, 0], [0, 0.55, 0.45]]}  # right 1 of 3
    for name, p in probs.items():
        np.savez(tmp_path / f"{name}.npz", probabilities=np.array(p), labels=labels, keys=keys)
    rows = [{"variant": n, "context": 3, "best_epoch": e, "epochs_run": e + 1, "train_config": {"epochs": 6},
             "train_seconds": 10.0, "labels": ["a", "b", "c"]} for n, e in (("a", 4), ("a_s1", 5))]
    row = script.ensemble_row(["a", "a_s1"], tmp_path, rows)
    assert row["dev_accuracy"] == 1.0 and row["dev_weighted_f1"] == 1.0  # the mean, not a vote
    assert (row["variant"], row["best_epoch"], row["epochs_run"]) == ("ens_a+a_s1", "4+5", "5+6")
    assert row["train_config"]["epochs"] == "6+6" and row["train_seconds"] == 20.0
    np.savez(tmp_path / "b.npz", probabilities=np.array(probs["a"]), labels=labels, keys=keys[::-1])
    rows.append({**rows[0], "variant": "b"})
    for names in (["a", "b"], ["a", "missing"]):
        with pytest.raises(SystemExit, match="--ensemble"):
            script.ensemble_row(names, tmp_path, rows)
