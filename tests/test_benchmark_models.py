"""benchmarks/models.py (the model zoo page): a text-reading model gets token inputs of its own
InputSpec, a closed-form model has no training step (its row says so, with a note), and ``--merge``
keeps the other rows with the run each comes from. Behaviour only, not timings."""

from __future__ import annotations

import argparse
import json

import torch


def _args(**kw) -> argparse.Namespace:
    return argparse.Namespace(**{"threads": 0, "device": "cpu", "amp": False, "repeats": 1, "batch": 2, **kw})


def test_text_input_has_the_specs_width_and_the_token_length(benchmark_script):
    from avemo.models import create_model

    script = benchmark_script("models")
    model = create_model("gao_dialogue", num_classes=8)
    x = script.make_inputs(model.inputs, 2, torch.Generator().manual_seed(0))
    assert x["text"].shape == (2, script.FREE_TOKENS, model.inputs["text"].shape[-1])
    assert x["audio"].shape == (2, script.FREE_SEQUENCE, 64)
    assert model(x).shape == (2, 8)


def test_closed_form_model_is_timed_for_inference_only(benchmark_script):
    result = benchmark_script("models").measure("whisper_logreg", _args())
    assert result["train_ms"] is None and result["train_note"] == "closed form"
    assert result["infer_ms"] > 0 and result["params"] > 0


def test_merge_keeps_earlier_rows_and_names_their_runs(benchmark_script, tmp_path, monkeypatch):
    script = benchmark_script("models")
    earlier = {"date": "2026-11-22", "load": [3.0, 2.0, 1.0], "elapsed": 1.0, "results": [
        {"name": "au_mlp", "params": 12000, "dense_sketch": 0, "train_ms": 0.9, "infer_ms": 0.2,
         "run": {"date": "2026-11-20", "load": 1.5}},
        {"name": "mfcc_cnn1d", "params": 34024, "dense_sketch": 0, "train_ms": 5.0, "infer_ms": 1.0},
        {"name": "fercnn", "params": 160000, "dense_sketch": 0, "train_ms": 12.0, "infer_ms": 0.9},
    ]}
    (tmp_path / "earlier.json").write_text(json.dumps(earlier))
    monkeypatch.setattr(script, "run_child", lambda name, args: script.measure(name, args))
    out, saved = tmp_path / "models.md", tmp_path / "models.json"
    assert script.main(["--models", "whisper_logreg", "--merge", str(tmp_path / "earlier.json"), "--repeats", "1",
                        "--out", str(out), "--json", str(saved)]) == 0
    text = out.read_text()
    rows = {line.split("|")[1].strip(" `"): line for line in text.splitlines() if line.startswith("| `")}
    assert {"au_mlp", "mfcc_cnn1d", "fercnn", "whisper_logreg"} <= set(rows)
    assert rows["au_mlp"].rstrip().endswith("| 0.9 | 0.2 |")
    assert "| closed form |" in rows["whisper_logreg"]
    assert "- `whisper_logreg`: fitted in closed form" in text
    assert ("the other rows come from earlier runs, merged with `--merge`: `au_mlp` from the run of 2026-11-20 "
            "(load average at its end 1.5); the rest from the run of 2026-11-22 (load average at its end 3.0).") in text
    again = tmp_path / "again.md"  # the saved measurements rewrite the same page
    assert script.main(["--from-json", str(saved), "--repeats", "1", "--out", str(again)]) == 0
    assert again.read_text().split("Run time")[1] == text.split("Run time")[1]
