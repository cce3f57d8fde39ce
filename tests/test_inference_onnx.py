"""ONNX export of the bundled model and the onnx engine: torch and onnxruntime agree within 1e-4.

Each graph is compared with its torch module on the same inputs (real audio, real face crops,
random embeddings and fusion inputs), then the two engines end to end on a real clip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avemo.inference.audio import WhisperAudioExpert
from avemo.inference.engines import OnnxEngine

TOL = 1e-4


@pytest.fixture(scope="module")
def torch_predictor():
    from avemo import Predictor

    p = Predictor.default(device="cpu")
    if not isinstance(p._backend.audio, WhisperAudioExpert):
        pytest.skip("the bundled audio head is not a whisper_base model: no ONNX export")
    return p


@pytest.fixture(scope="module")
def onnx_dir(torch_predictor, tmp_path_factory):
    """`avemo export --format onnx --out DIR`."""
    from typer.testing import CliRunner

    from avemo.cli import app

    out = tmp_path_factory.mktemp("onnx")
    result = CliRunner().invoke(app, ["export", "--format", "onnx", "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def onnx_predictor(onnx_dir):
    from avemo import Predictor

    return Predictor.default(engine="onnx", onnx_dir=onnx_dir)


@pytest.fixture(scope="module")
def signal(make_clip):
    from avemo.media import load_audio

    return load_audio(make_clip("onnx_voice.wav", duration=3.3, audio="voice", seed=3))


def test_export_writes_every_graph_and_a_manifest(onnx_dir):
    from avemo.inference.bundle import BUNDLE_DIR, bundle_fingerprint
    from avemo.inference.export import ensure_exported

    manifest = json.loads((onnx_dir / "manifest.json").read_text())
    files = [f for group in manifest["files"].values() for f in group.values()]
    assert sorted(files) == ["audio_head.onnx", "audio_spknorm_head.onnx", "fer_mini_xception.onnx", "fusion.onnx",
                             "whisper_encoder.onnx"]  # the bundle has a speaker-normalised head (config.speaker_norm)
    assert manifest["fingerprint"] == bundle_fingerprint(BUNDLE_DIR)
    before = {f: (onnx_dir / f).stat().st_mtime_ns for f in files}
    ensure_exported(BUNDLE_DIR, onnx_dir)  # up to date: nothing is written again
    assert {f: (onnx_dir / f).stat().st_mtime_ns for f in files} == before


def test_whisper_encoder_graph_matches_torch(torch_predictor, onnx_dir, signal):
    audio = torch_predictor._backend.audio
    graph = OnnxEngine(onnx_dir / "whisper_encoder.onnx")
    for y in (signal, signal[: 16000 // 5]):  # 3.3 s and 0.2 s: the time axis is dynamic
        ref = audio.encoder(audio=y[None])["states"]
        out = graph(audio=y[None])["states"]
        assert out.shape == ref.shape
        # hidden states reach ~100: compare relative to their scale (float32 rounding, as torch vs float64)
        assert np.abs(out - ref).max() <= TOL * max(1.0, np.abs(ref).max())
        np.testing.assert_allclose(out.mean(axis=1), ref.mean(axis=1), atol=TOL)  # the pooled embedding


def test_audio_head_fer_and_fusion_graphs_match_torch(torch_predictor, onnx_dir):
    from avemo.inference.fusion import fusion_inputs
    from avemo.models.pretrained import FerEmotionClassifier, scale_to_network

    rng = np.random.default_rng(0)
    audio = torch_predictor._backend.audio
    width = len(next(iter(audio.ckpt.normalizer.mean.values())))  # 512, or 3584 for concatenated layer means
    emb = rng.normal(0, 1, (6, width)).astype(np.float32)
    np.testing.assert_allclose(OnnxEngine(onnx_dir / "audio_head.onnx")(embedding=emb)["logits"],
                               audio.logits(emb), atol=TOL)
    with np.load(Path(__file__).parent / "data" / "fer_reference.npz") as ref:
        faces = scale_to_network(ref["faces"])
    classifier = FerEmotionClassifier()  # the torch engine, as the torch predictor's visual expert runs it
    np.testing.assert_allclose(OnnxEngine(onnx_dir / "fer_mini_xception.onnx")(faces=faces)["logits"],
                               classifier.logits(faces), atol=TOL)
    c = len(torch_predictor.labels)  # the bundle's classes
    a = rng.normal(0, 4, (5, c)).astype(np.float32)
    v = rng.dirichlet(np.ones(c), 5).astype(np.float32)
    a[1] = np.nan
    v[2] = np.nan
    inputs = fusion_inputs(a, v, 5, c)
    np.testing.assert_allclose(OnnxEngine(onnx_dir / "fusion.onnx")(**inputs)["probabilities"],
                               torch_predictor._backend.fusion(**inputs)["probabilities"], atol=TOL)


@pytest.mark.shared_data
def test_engines_agree_end_to_end(torch_predictor, onnx_predictor, ravdess_video):
    a = torch_predictor.predict(ravdess_video)
    b = onnx_predictor.predict(ravdess_video)
    assert b.model["engine"] == "onnx" and a.emotion == b.emotion
    assert b.probabilities == pytest.approx(a.probabilities, abs=TOL)
    for m in ("audio", "video"):
        assert b.modalities[m].probabilities == pytest.approx(a.modalities[m].probabilities, abs=TOL)
    assert len(a.timeline) == len(b.timeline)
    for wa, wb in zip(a.timeline, b.timeline, strict=True):
        assert wb.probabilities == pytest.approx(wa.probabilities, abs=TOL)
    assert a.face_coverage == b.face_coverage


def test_engines_agree_on_a_file_of_several_encoder_passes(torch_predictor, onnx_predictor, make_clip):
    """A file longer than one pass: torch encodes its passes 5 at a time, the encoder's graph (exported for
    one signal) one at a time; the onnx engine failed with an internal error on the batch."""
    clip = make_clip("onnx_long_speech.wav", duration=14.0, audio="speech")
    a, b = torch_predictor.predict(clip), onnx_predictor.predict(clip)
    assert len(a.timeline) == len(b.timeline) > 20
    for wa, wb in zip(a.timeline, b.timeline, strict=True):
        assert (wa.probabilities is None) == (wb.probabilities is None)
        if wa.probabilities is not None:
            assert wb.probabilities == pytest.approx(wa.probabilities, abs=TOL)


_WITHOUT_TORCH = """
import sys
from avemo import Predictor
loaded = lambda: sorted(m for m in ("torch", "mediapipe") if m in sys.modules)
p = Predictor.default(engine="onnx", onnx_dir=sys.argv[1])
print("load", loaded())
p.predict(sys.argv[2])
print("audio file", loaded())
p.predict(sys.argv[3])
print("video file", loaded())
"""


def test_the_onnx_engine_imports_no_torch_and_mediapipe_only_for_a_video(onnx_dir, make_clip):
    """`--engine onnx` for deployment without torch (2.6-3.6 s of the load here); MediaPipe (1.8 s)
    only once a video is analysed. A fresh process: this one has imported both long ago."""
    voice = make_clip("onnx_only_voice.wav", duration=1.2, audio="voice")
    video = make_clip("onnx_only_face.mp4", duration=1.0, size=(160, 120))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    done = subprocess.run([sys.executable, "-c", _WITHOUT_TORCH, str(onnx_dir), str(voice), str(video)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["load []", "audio file []", "video file ['mediapipe']"]


def test_the_first_onnx_run_says_that_it_exports_once_and_where(torch_predictor, make_clip, avemo_main, tmp_path,
                                                                monkeypatch):
    """The export of the first `--engine onnx` run took several seconds without a word."""
    voice = make_clip("onnx_first_voice.wav", duration=1.2, audio="voice")
    graphs = tmp_path / "graphs"
    monkeypatch.setenv("AVEMO_ONNX_DIR", str(graphs))
    code, out, err = avemo_main("predict", voice, "--engine", "onnx", "--format", "json")
    assert code == 0, err
    assert f"avemo: exporting the bundled model to ONNX once (several seconds); cached in {graphs}" in err.splitlines()
    assert json.loads(out)["model"]["engine"] == "onnx" and (graphs / "manifest.json").is_file()
    code, _, err = avemo_main("predict", voice, "--engine", "onnx", "--format", "json")
    assert code == 0 and "exporting" not in err  # the next runs reuse the graphs
