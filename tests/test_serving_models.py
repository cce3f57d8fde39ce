"""``avemo serve --model / --engine / --device``: the model choices of ``avemo predict``, served.

A checkpoint trained here on a generated corpus and the bundled model on the onnx engine (exported
here) are served through the real app; bad values stop ``serve`` with one line before it starts.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from avemo.cli import app
from avemo.serving import create_app, load_settings
from avemo.serving.schemas import HealthOut, PredictionOut


@pytest.fixture(scope="module")
def trained(make_ravdess, tmp_path_factory):
    """A checkpoint of ``avemo train`` on a generated RAVDESS-layout corpus (audio only)."""
    work = tmp_path_factory.mktemp("served_model")
    corpus = make_ravdess(("01", "05", "07"))
    result = CliRunner().invoke(app, ["train", "-d", "ravdess", "-r", str(corpus), "-m", "egemaps_mlp", "--epochs", "1",
                                      "--out", str(work / "run"), "--cache", str(work / "cache"), "-j", "1"])
    assert result.exit_code == 0, result.output
    return work / "run"


@pytest.fixture
def started(serve_stub):
    return serve_stub


def _post(client, clip):
    with open(clip, "rb") as fh:
        return client.post("/v1/predict", files={"file": (clip.name, fh, "application/octet-stream")})


def test_serve_a_trained_checkpoint_like_predict(trained, started, make_clip, tmp_path):
    result = CliRunner().invoke(app, ["serve", "--model", str(trained), "--device", "cpu", "--upload-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    settings, predictor = started["settings"], started["predictor"]
    assert (settings.model, settings.engine, settings.device) == (str(trained), "torch", "cpu")

    clip = make_clip("served_speech.wav", duration=1.6, audio="speech")
    cli = CliRunner().invoke(app, ["predict", str(clip), "--model", str(trained), "--device", "cpu", "-f", "json"])
    assert cli.exit_code == 0, cli.output
    expected = json.loads(cli.stdout)
    assert expected["modalities"]["audio"]["used"] and expected["emotion"]  # speech: the checkpoint answers
    with TestClient(create_app(predictor=predictor, settings=settings)) as client:
        health = client.get("/healthz").json()
        HealthOut.model_validate(health)
        assert (health["model"], health["engine"]) == ("egemaps_mlp", "torch") and health["model_version"]
        model = client.get("/v1/models").json()["models"][0]
        assert model["name"] == "egemaps_mlp" and model["labels"] == list(expected["probabilities"])
        assert (model["run"], model["corpora"]) == (trained.name, ["ravdess"])  # what the page's footer says
        body = _post(client, clip).json()
        PredictionOut.model_validate(body)
        assert body == {**expected, "path": clip.name}  # the same model, the same answer

    # the same keys in a settings file: create_app loads the model itself
    config = tmp_path / "serve.toml"
    config.write_text(f'[serve]\nmodel = "{trained}"\ndevice = "cpu"\nupload_dir = "{tmp_path}"\n')
    with TestClient(create_app(settings=load_settings(config))) as client:
        assert client.get("/healthz").json()["model"] == "egemaps_mlp"
        assert _post(client, clip).json() == body


def test_serve_an_audio_only_checkpoint_offers_what_it_reads(trained, started, make_clip, tmp_path):
    """``avemo serve --model RUN`` of an audio-only model: GET /v1/models and /healthz (the page's
    checkboxes) list audio, not the video it would not read; a request for video is told why, and
    ``--modalities audio,video`` stops serve in one line naming what the model reads."""
    from avemo.errors import ConfigError

    result = CliRunner().invoke(app, ["serve", "--model", str(trained), "--device", "cpu", "--upload-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    settings, predictor = started["settings"], started["predictor"]
    with TestClient(create_app(predictor=predictor, settings=settings)) as client:
        assert client.get("/v1/models").json()["models"][0]["modalities"] == ["audio"]
        assert client.get("/healthz").json()["modalities"] == ["audio"]
        clip = make_clip("served_speech.wav", duration=1.6, audio="speech")
        with open(clip, "rb") as fh:
            answer = client.post("/v1/predict", files={"file": (clip.name, fh)}, data={"modalities": "video"})
        assert answer.status_code == 422 and "its model reads audio, not video" in answer.json()["error"]["message"]
    with pytest.raises(ConfigError, match=r"modalities=audio,video, but the model \(egemaps_mlp\) reads audio, "
                                          r"not video$"):
        create_app(predictor=predictor, settings=load_settings(modalities="audio,video", upload_dir=str(tmp_path)))


def test_an_audio_only_checkpoint_says_its_model_has_no_video_input(trained, make_clip, tmp_path):
    """A video sent to a server of an audio-only model: the request asks for what the server offers
    (audio), and the face was said to be "not requested", as if the user had left it out."""
    from avemo.inference.predictor import load_predictor

    settings = load_settings(upload_dir=str(tmp_path))
    clip = make_clip("served_face.mp4", duration=1.6, face=True, audio="speech")
    with TestClient(create_app(predictor=load_predictor(trained, device="cpu"), settings=settings)) as client:
        body = _post(client, clip).json()
    assert body["modalities"]["audio"]["used"]
    assert body["modalities"]["video"] == {"used": False, "reason": "the model (egemaps_mlp) has no video input",
                                           "probabilities": None}


def test_serve_a_trained_checkpoint_on_the_onnx_engine(trained, started, make_clip, tmp_path, monkeypatch):
    """``avemo serve --model RUN --engine onnx``: the checkpoint's graph, exported on first use, answers as
    ``avemo predict --model RUN`` (torch) does."""
    monkeypatch.setenv("AVEMO_ONNX_DIR", str(tmp_path / "onnx"))
    result = CliRunner().invoke(app, ["serve", "--model", str(trained), "--engine", "onnx", "--upload-dir",
                                      str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "onnx" / "model.onnx").is_file()
    clip = make_clip("served_speech.wav", duration=1.6, audio="speech")
    cli = CliRunner().invoke(app, ["predict", str(clip), "--model", str(trained), "--device", "cpu", "-f", "json"])
    expected = json.loads(cli.stdout)
    with TestClient(create_app(predictor=started["predictor"], settings=started["settings"])) as client:
        assert client.get("/healthz").json()["engine"] == "onnx"
        body = _post(client, clip).json()
    assert body["emotion"] == expected["emotion"] and body["model"]["engine"] == "onnx"
    assert list(body["probabilities"]) == list(expected["probabilities"])
    assert body["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-5)


def test_serve_the_onnx_engine(started, make_clip, tmp_path, monkeypatch):
    monkeypatch.setenv("AVEMO_ONNX_DIR", str(tmp_path / "onnx"))  # exported there on first use
    result = CliRunner().invoke(app, ["serve", "--engine", "onnx", "--upload-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "onnx" / "manifest.json").is_file()
    clip = make_clip("served_face.mp4", duration=2.0, size=(320, 240), fps=25, face=True, audio="voice")
    with TestClient(create_app(predictor=started["predictor"], settings=started["settings"])) as client:
        health = client.get("/healthz").json()
        assert (health["model"], health["engine"]) == ("avemo-default", "onnx") and health["model_version"]
        assert client.get("/v1/models").json()["models"][0]["engine"] == "onnx"
        response = _post(client, clip)
        assert response.status_code == 200, response.text
        body = response.json()
        PredictionOut.model_validate(body)
        assert body["model"]["engine"] == "onnx" and body["timeline"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "tensorrt"], "engine must be one of torch, onnx, got 'tensorrt'"),
        (["--model", "MISSING"], "--model MISSING: no such checkpoint"),  # the CLI names the option
        (["--model", "RUN", "--device", "abacus"], "--device must be auto (a GPU when there is one), cpu, cuda or "
                                                   "cuda:N, or another device type of torch's (mps, xpu), got 'abacus'"),
        (["--config", "CONFIG"], "engine must be one of torch, onnx, got 'gpu'"),  # a key, not --engine
    ],
)
def test_bad_model_choices_stop_serve_in_one_line_before_it_starts(args, message, trained, started, tmp_path,
                                                                   avemo_main):
    config = tmp_path / "serve.toml"
    config.write_text('engine = "gpu"\n')
    names = {"RUN": str(trained), "MISSING": str(tmp_path / "missing"), "CONFIG": str(config)}
    code, _, err = avemo_main("serve", *[names.get(a, a) for a in args])
    assert code == 2 and err.splitlines()[-1].startswith("avemo: error: ")
    assert message.replace("MISSING", names["MISSING"]) in err.splitlines()[-1]
    assert started == {}  # the server never started


def test_a_port_in_use_stops_serve_in_one_line_before_the_model_loads(avemo_main, monkeypatch):
    """It used to load the model, then print uvicorn's log and exit with code 3."""
    import socket

    from avemo.inference import predictor as predictors

    loaded = []
    monkeypatch.setattr(predictors, "load_predictor", lambda *a, **k: loaded.append(1))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = avemo_main("serve", "--port", port)
    assert code == 2 and not loaded
    assert err.splitlines()[-1] == (f"avemo: error: cannot listen on 127.0.0.1:{port}: Address already in use; "
                                    "another server listens there: choose another port")


def test_a_host_other_than_loopback_is_one_warning_line_like_the_others(avemo_main, monkeypatch):
    """It was a "warning:" without the avemo prefix, wrapped over two lines on an 80-column terminal."""
    import socket

    from avemo.inference import predictor as predictors

    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(predictors, "load_predictor", lambda *a, **k: pytest.fail("the model must not load"))
    with socket.socket() as taken:  # the port in use stops serve after the warning, before the model loads
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = avemo_main("serve", "--host", "0.0.0.0", "--port", port)
    assert code == 2
    assert err.splitlines()[0] == ("avemo: warning: listening on 0.0.0.0: the service has no authentication; "
                                   "put it behind a proxy that has.")


def test_the_server_shows_no_path_of_its_own(trained, make_clip, tmp_path):
    """GET /v1/models names a checkpoint by its run folder's name and fingerprint, not its path on the
    server; no answer (models, health, a prediction, an unreadable upload's error) holds the checkpoint's
    or the upload folder's absolute path."""
    from avemo.inference.predictor import load_predictor
    from avemo.inference.zoo_export import checkpoint_fingerprint
    from avemo.serving.schemas import ModelsOut

    uploads = tmp_path / "uploads"
    uploads.mkdir()
    clip = make_clip("served_speech.wav", duration=1.6, audio="speech")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF" + bytes(2000))
    with TestClient(create_app(predictor=load_predictor(trained, device="cpu"),
                               settings=load_settings(upload_dir=str(uploads)))) as client:
        models = client.get("/v1/models")
        answers = [models, client.get("/healthz"), _post(client, clip), _post(client, junk)]
    ModelsOut.model_validate(models.json())
    model = models.json()["models"][0]
    assert (model["run"], model["fingerprint"]) == (trained.name, checkpoint_fingerprint(trained))
    assert answers[2].status_code == 200 and answers[3].status_code in (415, 422)
    for answer in answers:
        assert str(trained.parent) not in answer.text and str(uploads) not in answer.text
