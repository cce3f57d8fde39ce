"""benchmarks/gpu_train.py runs on a CPU as a smoke test: tiny inputs, two small frame models.

It checks that the script's path works end to end (fit, bare step, evaluation, the section it
writes), not its figures; the GPU figures come from running it on a GPU.
"""

from __future__ import annotations

import json

import pytest


def test_gpu_benchmark_smoke_run_on_a_cpu_writes_its_section(benchmark_script, tmp_path):
    script = benchmark_script("gpu_train")
    assert {"cfnsr_lstm", "cfn_sr", "msaf", "mmtm", "mcbp", "concat_fc", "sultana_concat_dense"} <= set(script.frame_models())
    assert "au_mlp" not in script.frame_models() and "whisper_mlp" not in script.frame_models()
    out = tmp_path / "gpu_train.md"
    models = ["cai_fer1", "sultana_video_cnn3d"]  # in the order of frame_models()
    smoke = ["--device", "cpu", "--smoke", "--batch", "2", "--steps", "2", "--compile", "none", "--out", str(out)]
    # the second model in a second run that keeps the first's row (--merge), as a time-limited GPU run goes on
    script.main([*smoke, "--models", models[1]])
    lines = script.main([*smoke, "--models", models[0], "--merge"])
    text = out.read_text()
    assert text.splitlines() == lines and "a smoke run, not GPU figures" in text
    rows = [line for line in lines if line.startswith("| `")]
    assert [r.split("`")[1] for r in rows] == models
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[2] == "float32"  # no autocast on a CPU
        fit_rate, bare_rate, ratio = float(cells[3]), float(cells[4]), float(cells[5])
        assert fit_rate > 0 and bare_rate > 0 and 0 < ratio
        assert cells[9].endswith("(128)")  # the CPU evaluation batch
    state = json.loads(out.with_suffix(".json").read_text())
    assert [r["name"] for r in state["rows"]] == models
    assert state["commands"] == [lines[2].removeprefix("- Command: ")]  # both runs had the same command line

    # nothing is left to measure: the rows stay as they are
    again = script.main([*smoke, "--models", ",".join(models), "--merge", "--skip-measured"])
    assert [line for line in again if line.startswith("| `")] == rows

    # rows of another device are not mixed in
    out.with_suffix(".json").write_text(json.dumps(state | {"device": "- GPU: another one"}))
    with pytest.raises(SystemExit, match="measured with '- GPU: another one'"):
        script.main([*smoke, "--models", models[0], "--merge"])
