"""ONNX export of trained zoo models (``avemo export --model RUN``) and ``avemo predict --model RUN --engine onnx``.

Every registered model, at its smallest size (``smoke_config``), is saved as a trainer checkpoint,
exported, and its graphs run in onnxruntime on a fresh batch (another batch size and length than
the export's own checks) next to the torch module; the models the exporter cannot take are
refused in one line (:data:`CANNOT_EXPORT`, listed in README.md, "ONNX of a model you trained"). The models built on the
3D ResNeXt-50 are the slow cases.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from avemo.datasets.labels import RAVDESS
from avemo.errors import AvemoError
from avemo.models import create_model, example_inputs, list_models, model_info, smoke_config

#: the models that cannot be exported, and the words of the reason their refusal gives
CANNOT_EXPORT = {
    "gao_dialogue": "cannot be exported to ONNX: Unsupported: ONNX export of operator Sort",  # packed sequences
    "gao_mha_residual": "the exported ONNX graph fails on another batch size or length",  # a length traced as constant
    "mcbp": "cannot be exported to ONNX: Exporting the operator 'aten::fft_rfft'",  # compact bilinear pooling's FFT
}
SHALLOW_RESNEXT = {"layers": (2, 1, 1, 1)}


def _uses_resnext(name: str, config: dict | None = None) -> bool:
    config = smoke_config(name) if config is None else config
    return name == "resnext3d_50" or config.get("video", model_info(name)["config"].get("video")) == "resnext3d_50"


def _checkpoint(folder, name: str, config: dict | None = None):
    """``name`` at its smallest size (the 3D ResNeXt-50 inside fusion models with one block per stage after
    the first, as tests/test_models_shared.py builds it), fitted statistics, saved as a trainer checkpoint."""
    from avemo.models.checkpoint import save_checkpoint
    from avemo.models.normalization import ArraySet, Normalizer

    config = smoke_config(name) if config is None else config
    if model_info(name)["kind"] == "fusion" and _uses_resnext(name, config):
        config["video_config"] = {**config["video_config"], **SHALLOW_RESNEXT}
    torch.manual_seed(0)
    model = create_model(name, num_classes=len(RAVDESS), **config)
    data = example_inputs(model.inputs, batch=24, free=16, generator=torch.Generator().manual_seed(3))
    if model.needs_fit:
        model.fit(data, torch.arange(24) % len(RAVDESS))
    norm = Normalizer.fit(ArraySet({k: list(v.numpy()) for k, v in data.items()}), model.inputs)
    return save_checkpoint(folder / name, model, labels=RAVDESS, normalizer=norm)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if _uses_resnext(n) else n
                                  for n in list_models()])
def test_every_model_exports_and_onnxruntime_agrees_with_torch(name, tmp_path):
    from avemo.inference.engines import OnnxEngine
    from avemo.inference.zoo_export import example_batch, example_specs, export_run, graph_inputs
    from avemo.models.checkpoint import load_checkpoint

    run, out = _checkpoint(tmp_path, name), tmp_path / "onnx"
    if name in CANNOT_EXPORT:
        with pytest.raises(AvemoError) as err:
            export_run(run, out)
        assert str(err.value) == f"{run}: {err.value.reason}" and "\n" not in str(err.value)
        assert err.value.reason.startswith(f"model {name}") and CANNOT_EXPORT[name] in err.value.reason
        assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temp folder left
        return
    export_run(run, out)
    manifest = json.loads((out / "manifest.json").read_text())
    ckpt = load_checkpoint(run)
    assert manifest["model"] == name and manifest["labels"]["emotions"] == list(RAVDESS.emotions)
    assert manifest["inputs"] == {k: s.to_dict() for k, s in ckpt.inputs.items()}
    assert "+".join(ckpt.inputs) in manifest["graphs"]
    for key, graph in manifest["graphs"].items():
        names = key.split("+")
        engine = OnnxEngine(out / graph["file"])
        assert list(engine.input_names) == graph_inputs(ckpt.model, names) and engine.output_names == ("logits",)
        batch = example_batch(ckpt.model, example_specs(ckpt, names), batch=4, length=13, seed=7)
        with torch.inference_mode():
            expected = ckpt.model({n: torch.from_numpy(batch[n]) for n in names}).numpy()
        np.testing.assert_allclose(engine(**batch)["logits"], expected, atol=1e-4, rtol=1e-3)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An audio model on free-length log-mel frames and a late-fusion model of MFCCs and face crops,
    saved as trainer checkpoints (random weights)."""
    folder = tmp_path_factory.mktemp("runs")
    return {"audio": _checkpoint(folder, "gao_bilstm_attention", {}),
            "audio_video": _checkpoint(folder, "late_average", {
                "audio": "mfcc_cnn1d", "video": "sultana_video_cnn3d", "audio_config": {"n_frames": 28},
                "video_config": {"n_frames": 16, "size": (16, 16)}})}


@pytest.mark.parametrize("kind", ["audio", "audio_video"])
def test_predict_with_engine_onnx_gives_the_torch_answer(kind, runs, make_clip, avemo_main, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("AVEMO_ONNX_DIR", raising=False)
    clip = make_clip("zoo_onnx.mp4", duration=2.0, size=(320, 240), fps=25, face=True, audio="speech")
    answers = {}
    for engine in ("torch", "onnx", "onnx"):  # the second onnx run finds the graphs in the cache
        code, out, err = avemo_main("predict", clip, "--model", runs[kind], "--engine", engine, "-f", "json")
        assert code == 0, err
        answers.setdefault(engine, []).append((json.loads(out), "exporting the model" in err))
    (torch_answer, _), = answers["torch"]
    (first, exported_first), (second, exported_second) = answers["onnx"]
    assert exported_first and not exported_second
    assert first["model"]["engine"] == "onnx" and torch_answer["model"]["engine"] == "torch"
    for answer in (first, second):
        assert answer["emotion"] == torch_answer["emotion"]
        assert answer["modalities"] == torch_answer["modalities"]
        np.testing.assert_allclose([answer["probabilities"][e] for e in RAVDESS.emotions],
                                   [torch_answer["probabilities"][e] for e in RAVDESS.emotions], atol=1e-5)
        assert len(answer["timeline"]) == len(torch_answer["timeline"]) == 3
        for row, want in zip(answer["timeline"], torch_answer["timeline"], strict=True):
            assert row["emotion"] == want["emotion"]
            np.testing.assert_allclose(list(row["probabilities"].values()), list(want["probabilities"].values()),
                                       atol=1e-5)


def test_export_out_folder_is_what_predict_engine_onnx_uses(runs, make_clip, avemo_main, tmp_path, monkeypatch):
    """``avemo export --model RUN --out DIR``, then ``AVEMO_ONNX_DIR=DIR avemo predict --model RUN --engine
    onnx``: the graphs in DIR are used, nothing is exported again (no onnx cache folder is made)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "deploy" / "onnx"
    code, printed, err = avemo_main("export", "--model", runs["audio"], "--out", out)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.onnx"]
    assert f"use it with: AVEMO_ONNX_DIR={out} avemo predict --model {runs['audio']} --engine onnx FILE\n" in printed
    monkeypatch.setenv("AVEMO_ONNX_DIR", str(out))
    clip = make_clip("zoo_onnx.wav", duration=1.5, audio="speech")
    code, printed, err = avemo_main("predict", clip, "--model", runs["audio"], "--engine", "onnx", "-f", "json")
    assert code == 0 and "exporting" not in err and json.loads(printed)["model"]["engine"] == "onnx"
    assert not (tmp_path / "cache" / "avemo" / "onnx").exists()


def test_an_onnx_folder_of_another_model_is_not_replaced(runs, make_clip, avemo_main, tmp_path, monkeypatch):
    """One AVEMO_ONNX_DIR for two models: each ``--engine onnx`` run exported its own model over the
    other's graphs (those of ``avemo export --out DIR`` too), without a word; now one line, the folder kept."""
    from avemo.inference.bundle import BUNDLE_DIR
    from avemo.inference.export import ensure_exported

    out = tmp_path / "deploy"
    code, _, err = avemo_main("export", "--model", runs["audio"], "--out", out)
    assert code == 0, err
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setenv("AVEMO_ONNX_DIR", str(out))
    clip = make_clip("zoo_onnx_other.wav", duration=1.5, audio="speech")
    code, printed, err = avemo_main("predict", clip, "--model", runs["audio_video"], "--engine", "onnx")
    assert code == 2 and not printed and "exporting" not in err
    assert len(err.strip().splitlines()) == 1 and "holds the ONNX graphs of a checkpoint of gao_bilstm_attention" in err
    assert f"avemo export --model {runs['audio_video']} --out {out}" in err
    with pytest.raises(AvemoError, match="does not replace another model's graphs"):
        ensure_exported(BUNDLE_DIR, out)  # the bundled model neither
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_export_refusals_are_one_line_and_leave_nothing(tmp_path, avemo_main, capfd):
    """A folder that is no checkpoint, and a model with an op the exporter lacks: one line on stderr
    naming the option (and the model), nothing on stdout (the exporter's graph dump is silenced), no folder."""
    code, out, err = avemo_main("export", "--model", tmp_path / "nowhere", "--out", tmp_path / "a", capture=capfd)
    assert code == 2 and out == "" and err.count("\n") == 1 and f"--model {tmp_path / 'nowhere'}: no such checkpoint" in err
    for name in ("mcbp", "gao_dialogue"):  # gao_dialogue: torch's C++ shape warnings came on stderr before the line
        run = _checkpoint(tmp_path, name)
        code, out, err = avemo_main("export", "--model", run, "--out", tmp_path / "new" / "b", capture=capfd)
        assert code == 2 and out == "" and err.count("\n") == 1, err
        assert f"--model {run}: model {name} {CANNOT_EXPORT[name]}" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gao_dialogue", "mcbp"]


def test_the_exporters_native_warnings_stay_off_stderr(tmp_path, avemo_main, capfd):
    """gao_dialogue's packed sequences: the TorchScript exporter's C++ warnings ('[W... shape_type_inference.cpp]
    Warning: The shape inference of prim::PackPadded type is missing') came before the one-line refusal."""
    run = _checkpoint(tmp_path, "gao_dialogue")
    code, out, err = avemo_main("export", "--model", run, "--out", tmp_path / "onnx", capture=capfd)
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert f"--model {run}: model gao_dialogue {CANNOT_EXPORT['gao_dialogue']}" in err


def test_export_lists_the_files_it_wrote_not_those_the_folder_held(runs, avemo_main, tmp_path):
    """--out into a folder with other files (the run folder itself): its weights were listed as exported."""
    out = tmp_path / "onnx"
    out.mkdir()
    (out / "notes.txt").write_text("kept")
    code, printed, err = avemo_main("export", "--model", runs["audio"], "--out", out)
    assert code == 0, err
    listed = [line.split("  (")[0] for line in printed.splitlines() if "  (" in line]
    assert listed == [str(out / "manifest.json"), str(out / "model.onnx")], printed
    assert (out / "notes.txt").read_text() == "kept"


def test_an_out_that_cannot_be_a_folder_is_refused_before_the_export(runs, avemo_main, tmp_path, monkeypatch):
    """--out naming a file: the model was traced and checked, then 'cannot write the export (Not a directory)'."""
    from avemo.inference import zoo_export

    def traced(*args, **kwargs):
        raise AssertionError("exported before --out was checked")

    monkeypatch.setattr(zoo_export, "export_checkpoint", traced)
    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    code, out, err = avemo_main("export", "--model", runs["audio"], "--out", taken)
    assert code == 2 and out == "" and err == f"avemo: error: --out {taken}: is a file; give the name of a folder\n"
    assert taken.read_text() == "mine"


def test_a_graph_that_disagrees_with_torch_is_refused_and_nothing_written(runs, tmp_path, monkeypatch):
    """onnxruntime answering otherwise than torch (here: every logit off by 0.5) stops the export: one line
    naming the model and the largest difference; an existing --out folder is left as it was."""
    from avemo.inference import engines
    from avemo.inference.zoo_export import export_run

    run_graph = engines.OnnxEngine.run
    monkeypatch.setattr(engines.OnnxEngine, "run",
                        lambda self, inputs: {k: v + 0.5 for k, v in run_graph(self, inputs).items()})
    out = tmp_path / "onnx"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(AvemoError) as err:
        export_run(runs["audio"], out)
    assert err.value.reason.startswith("model gao_bilstm_attention: onnxruntime and torch disagree on the exported "
                                       "graph (largest difference in the logits 0.5, allowed 0.0001 + 0.001 x |logit|)")
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and sorted(p.name for p in tmp_path.iterdir()) == ["onnx"]


def test_export_out_replaces_the_export_the_folder_held(runs, avemo_main, tmp_path):
    """``avemo export --out DIR`` into the folder of another model's export: the new manifest listed its own
    graphs only, but the other model's stayed beside them. Now the folder holds the new export alone (its
    other files kept), whether the old export was a checkpoint's or the bundled model's."""
    import json

    out = tmp_path / "deploy"
    code, _, err = avemo_main("export", "--model", runs["audio_video"], "--out", out)
    assert code == 0, err
    (out / "notes.txt").write_text("kept")
    code, _, err = avemo_main("export", "--model", runs["audio"], "--out", out)
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"] == "gao_bilstm_attention"
    graphs = {g["file"] for g in manifest["graphs"].values()}
    assert sorted(p.name for p in out.iterdir()) == sorted({"manifest.json", "notes.txt", *graphs})

    bundle_files = {"audio": {"encoder": "whisper_encoder.onnx", "head": "audio_head.onnx"},
                    "fusion": {"graph": "fusion.onnx"}}  # the shape of the bundled model's manifest
    for group in bundle_files.values():
        for name in group.values():
            (out / name).write_bytes(b"graph")
    (out / "manifest.json").write_text(json.dumps({"bundle": "avemo-default", "files": bundle_files}))
    code, _, err = avemo_main("export", "--model", runs["audio"], "--out", out)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted({"manifest.json", "notes.txt", *graphs})
