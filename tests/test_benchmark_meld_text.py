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
    assert script.variant("ft2_h3_cng_lr1e4_s4")[1] == {"seed": 4}
    config, _, text = script.variant("ft2_h3_cng_lr1e4_spk")
    assert config["speaker_prefix"] is True and "'Speaker: utterance'" in text
    assert "speaker_prefix" not in script.variant("ft2_h3_cng_lr1e4")[0]
    for bad in ("ft3_h0", "ft2_3", "ft2_h0_lr", "ft2", "ft2_h3_s5"):
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


def test_rerun_suffix_is_the_same_run_under_its_own_row(benchmark_script, capsys):
    script = benchmark_script("meld_text")
    config, train, text = script.variant("ft2_h3_cng_lr1e4_rerun")
    assert (config, train) == script.variant("ft2_h3_cng_lr1e4")[:2]
    assert text.endswith("rerun of the same configuration and seed")
    rows = [{"variant": "ft2_h0", "context": 0, "dev_weighted_f1": 0.55},
            {"variant": "ft2_h3", "context": 3, "dev_weighted_f1": 0.56}]
    rerun = {"variant": "ft2_h3_rerun", "context": 3, "dev_weighted_f1": 0.59}
    assert script.merged(rows, [rerun]) == [*rows, rerun]  # beside the first run's row
    assert not capsys.readouterr().err
    # the context line compares first runs only: the rerun's higher figure does not replace ft2_h3's
    lines = script.context_lines([*rows, rerun])
    assert len(lines) == 1 and "(`ft2_h3`) gives +1.0 points" in lines[0]


def test_merged_replaces_a_row_of_the_same_variant_and_says_so(benchmark_script, capsys):
    script = benchmark_script("meld_text")
    rows = [{"variant": "a", "dev_weighted_f1": 0.581}, {"variant": "b", "dev_weighted_f1": 0.5}]
    new = {"variant": "a", "dev_weighted_f1": 0.575}
    assert script.merged(rows, [new]) == [rows[1], new]
    assert "replacing the row of a: dev weighted F1 58.1 % -> 57.5 %" in capsys.readouterr().err


def test_report_lock_excludes_a_second_writer(benchmark_script, tmp_path, monkeypatch):
    import fcntl
    import os

    script = benchmark_script("meld_text")
    monkeypatch.setattr(script, "OUT", tmp_path / "results" / "meld_text")
    with script.report_lock():
        fd = os.open(tmp_path / "results", os.O_RDONLY)  # another open file description, as in another process
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    fd = os.open(tmp_path / "results", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released on leaving
    finally:
        os.close(fd)
