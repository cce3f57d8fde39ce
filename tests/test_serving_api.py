"""The REST API with the real app and the real bundled predictor: real clips, bad uploads, limits,
the bounded queue, timeouts, cleanup of every upload folder."""

from __future__ import annotations

import io
import json
import math
import pickle
import select
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from avemo.inference.bundle import read_bundle
from avemo.media.sniff import CONTAINERS, SNIFF_BYTES, sniff
from avemo.serving import BackgroundServer, ServeSettings, create_app, load_settings
from avemo.serving.schemas import PredictionOut
from avemo.serving.uploads import display_name, scan_duration

pytestmark = pytest.mark.shared_data

BOUNDARY = "avemo-test-boundary-7d3f"
EMOTIONS = set(read_bundle()[0].labels)  # the bundled model's classes


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def upload_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("uploads")


@pytest.fixture(scope="module")
def client(predictor, upload_root):
    app = create_app(predictor=predictor, settings=ServeSettings(upload_dir=str(upload_root)))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(autouse=True)
def no_leftover_uploads(upload_root):
    """Every test ends with the upload folder empty: no request leaves a file behind."""
    yield
    assert _wait_empty(upload_root), f"leaked uploads: {list(upload_root.iterdir())}"


def _wait_empty(folder: Path, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while any(folder.iterdir()):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _error(response, status: int, code: str) -> str:
    """Check an error response's status and JSON shape; return its message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"status", "code", "message"}
    assert body["error"]["status"] == status and body["error"]["code"] == code
    message = body["error"]["message"]
    assert "\n" not in message and "Traceback" not in message and "/tmp" not in message
    return message


def _multipart(parts: list[tuple[str, str | None, bytes]]) -> bytes:
    """A multipart/form-data body with the test boundary: (name, filename or None, content)."""
    out = io.BytesIO()
    for name, filename, content in parts:
        out.write(f"--{BOUNDARY}\r\n".encode())
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out.write(f"Content-Disposition: {disposition}\r\n".encode())
        if filename is not None:
            out.write(b"Content-Type: application/octet-stream\r\n")
        out.write(b"\r\n" + content + b"\r\n")
    out.write(f"--{BOUNDARY}--\r\n".encode())
    return out.getvalue()


MULTIPART = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def _post_file(client, path: Path, name: str | None = None, **fields):
    with open(path, "rb") as fh:
        return client.post("/v1/predict", files={"file": (name or path.name, fh, "application/octet-stream")},
                           data={k: str(v) for k, v in fields.items()})


def _check_prediction(body: dict, filename: str) -> None:
    assert set(body) == {"path", "duration", "emotion", "probabilities", "modalities", "face_coverage",
                         "timeline", "model", "warnings", "speech", "uncertain"}
    PredictionOut.model_validate(body)
    assert body["path"] == filename
    assert set(body["probabilities"]) == EMOTIONS
    assert math.isclose(sum(body["probabilities"].values()), 1.0, abs_tol=1e-3)
    assert body["emotion"] in EMOTIONS
    assert body["timeline"], "a clip of a few seconds has timeline windows"
    for window in body["timeline"]:
        assert 0 <= window["start"] < window["end"] <= body["duration"] + 1e-3
        assert window["emotion"] is None or math.isclose(sum(window["probabilities"].values()), 1.0, abs_tol=1e-3)
        assert isinstance(window["uncertain"], bool) and (window["emotion"] is not None or window["uncertain"])


def test_a_silent_upload_gets_no_emotion_and_is_uncertain(client, tmp_path):
    from avemo.media.synth import write_clip

    body = _post_file(client, write_clip(tmp_path / "quiet.wav", duration=2.0, audio="silence")).json()
    PredictionOut.model_validate(body)
    assert body["emotion"] is None and body["probabilities"] is None and body["uncertain"] is True
    assert body["modalities"]["audio"]["used"] is False and "no speech" in body["modalities"]["audio"]["reason"]
    assert all(w["emotion"] is None and w["uncertain"] and w["speech"] == 0.0 for w in body["timeline"])


def test_an_upload_with_too_little_speech_is_flagged_uncertain_and_says_why(client, tmp_path):
    import numpy as np
    import soundfile as sf

    from avemo.media.synth import synth_audio

    path = tmp_path / "short.wav"  # 0.3 s of synthetic speech in 2.3 s of silence
    sf.write(path, np.concatenate([np.zeros(16000, np.float32), synth_audio(0.3, 16000, "speech")[:, 0],
                                   np.zeros(16000, np.float32)]), 16000)
    body = _post_file(client, path, window=0.5, hop=0.25).json()  # windows the 0.3 s can fill
    PredictionOut.model_validate(body)
    assert body["emotion"] is not None and body["uncertain"] is True and body["speech"] > 0
    assert body["modalities"]["audio"]["used"] is True
    assert any(w.startswith("too little speech") for w in body["warnings"])
    voted = [w for w in body["timeline"] if w["audio"]]
    assert voted and all(w["uncertain"] for w in voted)


# ----------------------------------------------------------------------------- real clips


def test_predicts_real_ravdess_clip_like_the_library(client, predictor, ravdess_video):
    response = _post_file(client, ravdess_video)
    assert response.status_code == 200, response.text
    body = response.json()
    _check_prediction(body, ravdess_video.name)
    # the same JSON as `avemo predict --format json` (Prediction.to_dict), apart from the path shown
    expected = predictor.predict(ravdess_video).to_dict()
    expected["path"] = ravdess_video.name
    assert body.keys() == expected.keys()
    assert body["emotion"] == expected["emotion"]
    assert body["modalities"].keys() == expected["modalities"].keys()
    for k in ("audio", "video"):
        assert body["modalities"][k]["used"] == expected["modalities"][k]["used"]
    for label, p in expected["probabilities"].items():
        assert body["probabilities"][label] == pytest.approx(p, abs=1e-5)
    assert len(body["timeline"]) == len(expected["timeline"])
    assert body["modalities"]["audio"]["used"]


def test_predicts_real_crema_flv_and_mp3(client, crema_videos, shared_data):
    flv = crema_videos[0]
    body = _post_file(client, flv).json()
    _check_prediction(body, flv.name)
    assert body["modalities"]["audio"]["used"]

    mp3 = sorted((shared_data / "crema_d" / "AudioMP3").glob("*.mp3"))[0]
    response = _post_file(client, mp3)
    assert response.status_code == 200, response.text
    body = response.json()
    _check_prediction(body, mp3.name)
    assert body["modalities"]["audio"]["used"]
    assert not body["modalities"]["video"]["used"] and body["modalities"]["video"]["reason"]


def test_window_and_modalities_fields(client, ravdess_video):
    body = _post_file(client, ravdess_video, window=2.0, modalities="audio").json()
    starts = [w["start"] for w in body["timeline"]]
    assert all(w["end"] - w["start"] <= 2.0 + 1e-3 for w in body["timeline"])
    assert any(w["end"] - w["start"] > 1.5 for w in body["timeline"])
    assert starts == sorted(starts)
    assert body["modalities"]["audio"]["used"] and not body["modalities"]["video"]["used"]
    assert not any(w["video"] for w in body["timeline"])


def test_video_only_request_on_audio_file_is_a_clear_error(client, shared_data):
    mp3 = sorted((shared_data / "crema_d" / "AudioMP3").glob("*.mp3"))[0]
    message = _error(_post_file(client, mp3, modalities="video"), 422, "missing_stream")
    assert message.startswith(f"{mp3.name}: ")


# ----------------------------------------------------------------------------- bad uploads


def test_empty_file(client):
    message = _error(client.post("/v1/predict", files={"file": ("clip.mp4", b"", "video/mp4")}), 400, "empty_file")
    assert message.startswith("clip.mp4: ")


@pytest.mark.parametrize(
    "content",
    [
        b"just some text, not a video at all\n" * 10,
        b"\x89PNG\r\n\x1a\n" + bytes(200),  # an image
        b"#EXTM3U\n#EXTINF:4,\nhttp://169.254.169.254/latest/meta-data\n",  # a playlist that would fetch a URL
        b"ffconcat version 1.0\nfile /etc/passwd\n",  # an FFmpeg concat list naming a local file
        pickle.dumps({"weights": [1, 2, 3]}),  # never unpickled
        b"PK\x03\x04" + bytes(100),  # a zip archive
    ],
    ids=["text", "png", "m3u8", "ffconcat", "pickle", "zip"],
)
def test_wrong_type_is_refused_by_content_not_name(client, content):
    response = client.post("/v1/predict", files={"file": ("clip.mp4", content, "video/mp4")})
    message = _error(response, 415, "unsupported_media")
    assert message.startswith("clip.mp4: not a recognised audio or video file")


def test_corrupt_file_with_a_valid_signature(client, ravdess_video):
    head = ravdess_video.read_bytes()[:64]
    corrupt = head + bytes(range(256)) * 40
    message = _error(client.post("/v1/predict", files={"file": ("broken.mp4", corrupt, "video/mp4")}),
                     422, "unreadable_media")
    assert message.startswith("broken.mp4: ")


def test_truncated_real_clip_is_refused_or_predicted_never_a_server_error(client, ravdess_video):
    data = ravdess_video.read_bytes()
    response = client.post("/v1/predict", files={"file": ("cut.mp4", data[: len(data) // 3], "video/mp4")})
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        _error(response, 422, response.json()["error"]["code"])


def test_path_like_file_name_is_only_displayed(client, ravdess_video, upload_root):
    response = _post_file(client, ravdess_video, name="../../etc/passwd")
    assert response.status_code == 200, response.text
    assert response.json()["path"] == "passwd"
    assert not (upload_root.parent / "etc").exists() and not (upload_root / "passwd").exists()
    message = _error(client.post("/v1/predict", files={"file": ("..\\..\\evil.mp4", b"text" * 40, "video/mp4")}),
                     415, "unsupported_media")
    assert message.startswith("evil.mp4: ")


def test_truncated_multipart_bodies(client, ravdess_video):
    body = _multipart([("file", "clip.mp4", ravdess_video.read_bytes()[:200_000])])
    no_closing = body[: body.rindex(f"--{BOUNDARY}--".encode())]
    _error(client.post("/v1/predict", content=no_closing, headers=MULTIPART), 400, "truncated_upload")
    cut_in_file = body[:150_000]
    _error(client.post("/v1/predict", content=cut_in_file, headers=MULTIPART), 400, "truncated_upload")
    _error(client.post("/v1/predict", content=b"", headers=MULTIPART), 400, "truncated_upload")


def test_malformed_requests(client, ravdess_video):
    clip = ravdess_video.read_bytes()
    # not multipart at all
    _error(client.post("/v1/predict", content=clip, headers={"content-type": "video/mp4"}), 415,
           "unsupported_content_type")
    _error(client.post("/v1/predict", content=b"x", headers={"content-type": "multipart/form-data"}), 400,
           "malformed_multipart")
    # no file field
    _error(client.post("/v1/predict", content=_multipart([("window", None, b"1")]), headers=MULTIPART), 400,
           "missing_file")
    # two files
    two = _multipart([("file", "a.mp4", clip[:1000]), ("file", "b.mp4", clip[:1000])])
    _error(client.post("/v1/predict", content=two, headers=MULTIPART), 400, "several_files")
    # an unknown field, an oversized field, garbage instead of multipart framing
    extra = _multipart([("file", "a.mp4", clip), ("url", None, b"http://example.com/x.mp4")])
    assert "unknown form field 'url'" in _error(client.post("/v1/predict", content=extra, headers=MULTIPART), 422,
                                                "unknown_field")
    long_field = _multipart([("file", "a.mp4", clip), ("modalities", None, b"audio," * 100)])
    _error(client.post("/v1/predict", content=long_field, headers=MULTIPART), 422, "field_too_long")
    _error(client.post("/v1/predict", content=b"garbage\r\n\r\n" * 10, headers=MULTIPART), 400, "malformed_multipart")


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"window": "abc"}, "window' must be a number"),
        ({"window": "nan"}, "form field 'window' must be a finite positive number of seconds, got nan"),
        ({"hop": "inf"}, "form field 'hop' must be a finite positive number of seconds, got inf"),
        ({"window": "0.01"}, "window must lie between"),
        ({"window": "1", "hop": "2"}, "hop must lie between 0.1 s and the window (1 s), got 2"),
        ({"window": "0.25", "hop": "0.001"}, "hop must lie between 0.1 s and the window (0.25 s), got 0.001"),
        ({"modalities": "audio,smell"}, "unknown modality 'smell'"),
        ({"modalities": ","}, "modalities is empty"),
        ({"hop": ""}, "hop' must be a number"),  # empty is no number (the schema's type): not the default
        ({"transcribe": " "}, "'transcribe' must be true or false"),
    ],
)
def test_invalid_fields(client, ravdess_video, fields, fragment):
    assert fragment in _error(_post_file(client, ravdess_video, **fields), 422, "invalid_field")


def test_only_modalities_and_transcribe_may_be_query_parameters(client, ravdess_video):
    """``?window=2`` and a batch's ``?group_by_speaker=true`` were ignored without a word (the default
    grid, no grouping, 200); a field sent both ways had one of its values ignored."""
    files = {"file": ("clip.mp4", ravdess_video.read_bytes(), "video/mp4")}
    for url in ("/v1/predict?window=2", "/v1/predict/batch?group_by_speaker=true"):
        message = _error(client.post(url, files=files), 422, "unknown_field")
        assert "unknown query parameter" in message and "send the others as form fields" in message
    both = client.post("/v1/predict?transcribe=true", files=files, data={"transcribe": "false"})
    assert "both as a form field and as a query parameter" in _error(both, 422, "invalid_field")


def test_openapi_declares_the_query_parameters(client):
    """The document declared no query parameter while the server took two (a client generated from
    it could not send them)."""
    spec = client.get("/openapi.json").json()
    for path in ("/v1/predict", "/v1/predict/batch"):
        operation = spec["paths"][path]["post"]
        declared = {p["name"]: p for p in operation.get("parameters", ()) if p["in"] == "query"}
        form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
        assert set(declared) == {"modalities", "transcribe"}, path
        assert all(declared[name]["schema"]["type"] == form[name]["type"] for name in declared)


def test_http_errors_are_json(client):
    _error(client.get("/no/such/page"), 404, "not_found")
    _error(client.get("/v1/predict"), 405, "method_not_allowed")
    _error(client.get("/static/../../../etc/passwd"), 404, "not_found")


# ----------------------------------------------------------------------------- other endpoints


def test_healthz_models_openapi_and_page(client, predictor):
    health = client.get("/healthz").json()
    assert health["status"] == "ok"
    assert health["queue"] == {"workers": 1, "capacity": 5, "in_use": 0, "uploading": 0, "max_uploads": 16}
    assert health["limits"]["max_upload_bytes"] == ServeSettings().max_upload_bytes
    assert (health["limits"]["min_hop"], health["limits"]["max_timeline_rows"]) == (0.1, 10_000)

    models = client.get("/v1/models").json()["models"]
    assert len(models) == 1
    assert set(models[0]["labels"]) == EMOTIONS
    assert models[0]["name"] == predictor.info()["name"]
    assert models[0]["modalities"] == health["modalities"] == ["audio", "video"]  # the bundled model reads both
    card = Path(__file__).resolve().parents[1] / "src/avemo/inference/default_model/model_card.md"
    assert models[0]["card"] == card.read_text(encoding="utf-8")  # shipped inside the bundle

    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["required"] == ["file"] and body["properties"]["file"]["format"] == "binary"
    assert {"200", "413", "415", "503", "504"} <= set(spec["paths"]["/v1/predict"]["post"]["responses"])
    assert client.get("/docs").status_code == 404  # Swagger UI would load scripts from a CDN

    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/", "/static/app.js", "/static/chart.js", "/static/style.css"):
        text = client.get(asset).text
        # no third-party scripts, styles or fonts: nothing is loaded from another host
        for needle in ('src="http', "href=\"http", "from \"http", "url(http", "@import", "fetch(\"http"):
            assert needle not in text, (asset, needle)


def test_page_names_the_languages_the_bundled_model_was_trained_on():
    """The page's footer names the language of every corpus in the bundle's training data (v4 added EmoDB),
    when the bundled model is served (app.js writes it there)."""
    languages = {"ravdess": "English", "emodb": "German"}
    bundle = json.loads((Path(__file__).resolve().parents[1] / "src/avemo/inference/default_model/model.json")
                        .read_text(encoding="utf-8"))
    trained = {corpus["dataset"] for corpus in bundle["training"]["data"]["corpora"]}
    script = (Path(__file__).resolve().parents[1] / "src/avemo/serving/static/app.js").read_text(encoding="utf-8")
    footer = next(line for line in script.splitlines() if "The bundled model was trained on" in line)
    assert trained <= set(languages)
    for dataset in trained:
        assert languages[dataset] in footer, (dataset, footer)


# ----------------------------------------------------------------------------- limits


class GatedPredictor:
    """The real predictor behind a gate: each call waits until the test opens the gate."""

    def __init__(self, predictor):
        self.predictor = predictor
        self.gate = threading.Event()
        self.entered = threading.Event()  # set when a prediction has started (and waits at the gate)
        self.calls = 0

    def info(self):
        return self.predictor.info() if hasattr(self.predictor, "info") else {"name": "gated"}

    def predict(self, path, **kwargs):
        self.calls += 1
        self.entered.set()
        if not self.gate.wait(30):
            raise RuntimeError("gate never opened")
        return self.predictor.predict(path, **kwargs)


def test_upload_and_duration_limits(predictor, ravdess_video, tmp_path):
    settings = ServeSettings(max_upload_bytes=256 * 1024, max_duration=2.0, upload_dir=str(tmp_path))
    with TestClient(create_app(predictor=predictor, settings=settings)) as small:
        # Content-Length already says too much: refused before reading (the streamed case is below)
        message = _error(_post_file(small, ravdess_video), 413, "upload_too_large")
        assert message == "the request (1.6 MiB) is larger than the upload limit of 256 KiB"
        # a 4 s clip under a 2 s limit: refused before the predictor runs
        wav = tmp_path.parent / "four_seconds.wav"
        from avemo.media.synth import write_clip

        write_clip(wav, duration=4.0, audio="voice", sample_rate=8000)
        message = _error(_post_file(small, wav), 413, "media_too_long")
        assert "more than 2 s" in message
    assert not any(tmp_path.iterdir())


def _raw_request(url: str, head: bytes) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(head)
    return sock


def _read_response(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    while b"\r\n\r\n" not in data or len(data) < data.index(b"\r\n\r\n") + 4 + _length(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body[: _length(data)])


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n")[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def _part_head(filename: str = "clip.mp4") -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode()


def test_size_limit_is_enforced_while_the_upload_streams(predictor, ravdess_video, tmp_path):
    """A chunked upload with no Content-Length: the 413 comes back while the client is still
    sending, long before the 64 MiB it would send."""
    settings = ServeSettings(port=0, max_upload_bytes=256 * 1024, upload_dir=str(tmp_path))
    clip = ravdess_video.read_bytes()
    with BackgroundServer(create_app(predictor=predictor, settings=settings)) as server:
        sock = _raw_request(server.url, (
            "POST /v1/predict HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n").encode())
        first = _part_head() + clip[:65536]
        sock.sendall(b"%x\r\n%s\r\n" % (len(first), first))
        sent, total = len(first), 64 * 1024 * 1024
        block = (clip * 2)[65536: 65536 * 2]
        while sent < total:
            readable, _, _ = select.select([sock], [], [], 0.01)
            if readable:
                break
            sock.sendall(b"%x\r\n%s\r\n" % (len(block), block))
            sent += len(block)
        status, body = _read_response(sock)
        sock.close()
    assert status == 413 and body["error"]["message"] == "clip.mp4: the file is larger than the limit of 256 KiB"
    assert sent < 16 * 1024 * 1024, f"the server let {sent} bytes in before refusing"
    assert not any(tmp_path.iterdir())


def test_declared_content_length_over_the_limit_is_refused_before_reading(predictor, tmp_path):
    settings = ServeSettings(port=0, max_upload_bytes=256 * 1024, upload_dir=str(tmp_path))
    with BackgroundServer(create_app(predictor=predictor, settings=settings)) as server:
        sock = _raw_request(server.url, (
            "POST /v1/predict HTTP/1.1\r\nHost: test\r\nContent-Length: 10000000000\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n").encode())
        status, body = _read_response(sock)  # no body byte was sent
        sock.close()
    assert status == 413 and "larger than the upload limit" in body["error"]["message"]


def test_disconnect_and_slow_upload_leave_nothing_behind(predictor, ravdess_video, tmp_path):
    settings = ServeSettings(port=0, upload_timeout=1.0, upload_dir=str(tmp_path))
    clip = ravdess_video.read_bytes()
    app = create_app(predictor=predictor, settings=settings)
    head = ("POST /v1/predict HTTP/1.1\r\nHost: test\r\nContent-Length: 1000000\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n").encode()
    with BackgroundServer(app) as server:
        # the client goes away half-way through its upload
        sock = _raw_request(server.url, head + _part_head() + clip[:300_000])
        time.sleep(0.3)
        sock.close()
        assert _wait_empty(tmp_path)
        # the client stalls: 408 after upload_timeout
        sock = _raw_request(server.url, head + _part_head() + clip[:100_000])
        status, body = _read_response(sock)
        sock.close()
        assert status == 408 and body["error"]["code"] == "upload_timeout"
        assert _wait_empty(tmp_path)
        assert httpx.get(server.url + "/healthz").json()["queue"]["in_use"] == 0


def _stalled_upload(url: str, sent: bytes) -> socket.socket:
    """A client that starts an upload of 1 MB, sends ``sent`` of it and then nothing (slowloris)."""
    head = ("POST /v1/predict HTTP/1.1\r\nHost: test\r\nContent-Length: 1000000\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n").encode()
    return _raw_request(url, head + _part_head() + sent)


def _wait_for(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the server never reached the expected state"
        time.sleep(0.02)


def test_stalled_uploads_do_not_lock_out_other_clients(predictor, ravdess_video, tmp_path):
    """Five clients that send 1 KB and stall once held every slot (workers 1 + queue 4) for two
    minutes; uploads now hold no prediction slot."""
    settings = ServeSettings(port=0, workers=1, queue_size=4, read_timeout=60, upload_dir=str(tmp_path))
    with BackgroundServer(create_app(predictor=predictor, settings=settings)) as server:
        stalled = [_stalled_upload(server.url, ravdess_video.read_bytes()[:1024]) for _ in range(5)]
        health = lambda: httpx.get(server.url + "/healthz").json()["queue"]  # noqa: E731
        _wait_for(lambda: health()["uploading"] == 5)
        with open(ravdess_video, "rb") as fh:
            response = httpx.post(server.url + "/v1/predict", files={"file": (ravdess_video.name, fh)}, timeout=120)
        assert response.status_code == 200, response.text
        assert health()["uploading"] == 5 and health()["in_use"] == 0  # they are still there, holding no slot
        for sock in stalled:
            sock.close()
        _wait_for(lambda: health()["uploading"] == 0)
    assert _wait_empty(tmp_path)


def test_a_stalled_or_trickling_upload_is_cut_off(predictor, ravdess_video, tmp_path):
    settings = ServeSettings(port=0, read_timeout=0.5, min_upload_rate=4096, upload_dir=str(tmp_path))
    clip = ravdess_video.read_bytes()
    with BackgroundServer(create_app(predictor=predictor, settings=settings)) as server:
        sock = _stalled_upload(server.url, clip[:1024])
        status, body = _read_response(sock)
        sock.close()
        assert status == 408 and body["error"]["message"] == "the client sent nothing for 0.5 s during its upload"
        # a few bytes every 0.1 s: never silent for 0.5 s, but far below 4 KiB/s
        sock = _stalled_upload(server.url, clip[:64])
        deadline, sent = time.monotonic() + 20, 64
        while not select.select([sock], [], [], 0.1)[0]:
            assert time.monotonic() < deadline, "a trickling upload was never cut off"
            sock.sendall(clip[sent : sent + 16])
            sent += 16
        status, body = _read_response(sock)
        sock.close()
        assert status == 408 and "the upload is too slow" in body["error"]["message"]
        assert "this server needs at least 4 KiB/s" in body["error"]["message"]
    assert _wait_empty(tmp_path)


def test_uploads_beyond_the_upload_gate_get_503_at_once(predictor, ravdess_video, tmp_path):
    settings = ServeSettings(port=0, max_uploads=1, read_timeout=60, upload_dir=str(tmp_path))
    with BackgroundServer(create_app(predictor=predictor, settings=settings)) as server:
        sock = _stalled_upload(server.url, ravdess_video.read_bytes()[:1024])
        _wait_for(lambda: httpx.get(server.url + "/healthz").json()["queue"]["uploading"] == 1)
        second = httpx.post(server.url + "/v1/predict", files={"file": ("x.mp4", b"never read")}, timeout=10)
        assert "all 1 upload places are taken" in _error(second, 503, "busy")
        sock.close()
    assert _wait_empty(tmp_path)


def test_a_timeline_with_too_many_rows_is_refused(predictor, ravdess_video, tmp_path):
    """A 4 s clip at hop 0.1 s would be 41 windows; this server answers with at most 20."""
    settings = ServeSettings(max_timeline_rows=20, upload_dir=str(tmp_path))
    with TestClient(create_app(predictor=predictor, settings=settings)) as c:
        message = _error(_post_file(c, ravdess_video, window="0.25", hop="0.1"), 422, "timeline_too_long")
        assert message.startswith(f"{ravdess_video.name}: a hop of 0.1 s over 4 s makes 41 timeline windows")
        assert message.endswith("at most 20 (use a hop of at least 0.21 s)")
        assert _post_file(c, ravdess_video, window="0.5", hop="0.25").status_code == 200  # 17 windows


def test_a_request_in_flight_at_shutdown_gets_json(predictor, ravdess_video, tmp_path, caplog):
    gated = GatedPredictor(predictor)
    settings = ServeSettings(port=0, shutdown_grace=0.2, upload_dir=str(tmp_path))
    results: list[httpx.Response] = []

    def post(url):
        with open(ravdess_video, "rb") as fh:
            results.append(httpx.post(url + "/v1/predict", files={"file": (ravdess_video.name, fh)}, timeout=60))

    server = BackgroundServer(create_app(predictor=gated, settings=settings))
    with server:
        client = threading.Thread(target=post, args=(server.url,))
        client.start()
        assert gated.entered.wait(60)
        server._server.should_exit = True  # as Ctrl-C does
        client.join(60)
        gated.gate.set()  # the prediction thread ends; the server finishes stopping
    message = _error(results[0], 503, "shutting_down")
    assert message == "the server is shutting down; send the request again in a moment"
    assert "Traceback" not in caplog.text and "CancelledError" not in caplog.text
    assert _wait_empty(tmp_path)


def test_full_queue_answers_503_with_progress_states_and_timeouts_504(predictor, ravdess_video, tmp_path):
    gated = GatedPredictor(predictor)
    settings = ServeSettings(port=0, workers=1, queue_size=1, request_timeout=60, upload_dir=str(tmp_path))
    results: list[httpx.Response] = []

    def post(url, key):
        with open(ravdess_video, "rb") as fh:
            results.append(httpx.post(url + "/v1/predict", files={"file": (ravdess_video.name, fh)},
                                      data={"progress_id": key}, timeout=60))

    ids = ["a" * 32, "b" * 32]

    def progress(url, key):
        return httpx.get(f"{url}/v1/progress/{key}").json()

    with BackgroundServer(create_app(predictor=gated, settings=settings)) as server:
        threads = [threading.Thread(target=post, args=(server.url, key)) for key in ids]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while {progress(server.url, k)["state"] for k in ids} != {"running", "queued"}:
            assert time.monotonic() < deadline, [progress(server.url, k) for k in ids]
            time.sleep(0.05)
        running = next(progress(server.url, k) for k in ids if progress(server.url, k)["state"] == "running")
        assert running["total"] == pytest.approx(4.0, abs=0.1) and running["done"] == 0.0
        assert httpx.get(server.url + "/healthz").json()["queue"]["in_use"] == 2
        # one running, one waiting: the third is refused at once
        third = httpx.post(server.url + "/v1/predict", files={"file": ("x.mp4", b"never read")}, timeout=10)
        message = _error(third, 503, "busy")
        assert "retry" in message and third.headers["retry-after"] == "5"
        gated.gate.set()
        for t in threads:
            t.join(60)
        assert [r.status_code for r in results] == [200, 200]
        assert [progress(server.url, k)["state"] for k in ids] == ["unknown", "unknown"]
        assert not any(tmp_path.iterdir())

    # a per-request timeout: 504 at once, the folder goes when the job ends
    gated = GatedPredictor(predictor)
    settings = ServeSettings(port=0, request_timeout=0.5, upload_dir=str(tmp_path))
    with BackgroundServer(create_app(predictor=gated, settings=settings)) as server:
        with open(ravdess_video, "rb") as fh:
            response = httpx.post(server.url + "/v1/predict", files={"file": ("slow.mp4", fh)}, timeout=30)
        message = _error(response, 504, "timeout")
        assert message == "slow.mp4: no result within 0.5 s"
        assert httpx.get(server.url + "/healthz").json()["queue"]["in_use"] == 1  # the job still runs
        gated.gate.set()
        assert _wait_empty(tmp_path)
        deadline = time.monotonic() + 30
        while httpx.get(server.url + "/healthz").json()["queue"]["in_use"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert httpx.get(server.url + "/healthz").json()["queue"]["in_use"] == 0


class RecordingPredictor:
    """The real predictor, recording the progress it reports."""

    def __init__(self, predictor):
        self.predictor = predictor
        self.reports: list[tuple[float, float]] = []
        self.inputs: list[tuple[Path, int, int]] = []

    def predict(self, path, progress=None, **kwargs):
        path = Path(path)
        self.inputs.append((path, path.parent.stat().st_mode & 0o777, path.stat().st_mode & 0o777))

        def record(done, total):
            self.reports.append((done, total))
            progress(done, total)

        return self.predictor.predict(path, progress=record if progress else None, **kwargs)


def test_uploads_are_private_with_generated_names(predictor, ravdess_video, shared_data, tmp_path):
    recording = RecordingPredictor(predictor)
    app = create_app(predictor=recording, settings=ServeSettings(upload_dir=str(tmp_path)))
    mp3 = sorted((shared_data / "crema_d" / "AudioMP3").glob("*.mp3"))[0]
    with TestClient(app) as c:
        assert _post_file(c, ravdess_video, name="../../etc/passwd.txt").status_code == 200
        assert _post_file(c, mp3, name="song.mp4").status_code == 200
    (first, folder_mode, file_mode), (second, _, _) = recording.inputs
    assert first.name == "upload.mp4" and second.name == "upload.mp3"  # the suffix follows the content
    assert first.parent.parent == tmp_path and first.parent.name.startswith("avemo-upload-")
    assert first.parent != second.parent
    assert (folder_mode, file_mode) == (0o700, 0o600)
    assert not first.exists() and not any(tmp_path.iterdir())


def test_progress_reaches_the_board_and_ids_are_checked(predictor, ravdess_video, tmp_path):
    recording = RecordingPredictor(predictor)
    app = create_app(predictor=recording, settings=ServeSettings(upload_dir=str(tmp_path)))
    with TestClient(app) as c:
        key = "0123456789abcdef" * 2
        assert c.get(f"/v1/progress/{key}").json() == {"state": "unknown", "done": 0.0, "total": None}
        assert _post_file(c, ravdess_video, progress_id=key).status_code == 200
        done, total = recording.reports[-1]
        assert total == pytest.approx(4.0, abs=0.1) and total / 2 < done <= total
        assert c.get(f"/v1/progress/{key}").json()["state"] == "unknown"  # gone with its request
        assert app.state.progress.get(key) is None
        assert "progress_id" in _error(c.get("/v1/progress/not-an-id"), 422, "invalid_request")
        _error(_post_file(c, ravdess_video, progress_id="../x"), 422, "invalid_field")
        recording.reports.clear()
        assert _post_file(c, ravdess_video).status_code == 200
        assert recording.reports == []  # no id, no progress callback


class BrokenPredictor:
    def predict(self, path, **kwargs):
        raise RuntimeError(f"secret internal detail at {path}")


def test_unexpected_errors_are_json_without_details(ravdess_video, tmp_path):
    app = create_app(predictor=BrokenPredictor(), settings=ServeSettings(upload_dir=str(tmp_path)))
    with TestClient(app, raise_server_exceptions=False) as c:
        message = _error(_post_file(c, ravdess_video), 500, "internal_error")
    assert "secret" not in message
    assert not any(tmp_path.iterdir())


# ----------------------------------------------------------------------------- pieces


@pytest.mark.parametrize(
    ("name", "spec", "expected"),
    [
        ("a.mp4", {}, "mp4"), ("a.mov", {}, "mov"), ("a.mkv", {}, "matroska"), ("a.webm", {}, "webm"),
        ("a.avi", {}, "avi"), ("a.flv", {}, "flv"), ("a.wav", {}, "wav"), ("a.flac", {}, "flac"),
        ("a.mp3", {}, "mp3"), ("a.ogg", {}, "ogg"), ("a.ts", {}, "mpegts"), ("a.wma", {}, "asf"),
    ],
)
def test_sniff_recognises_every_container_the_decoders_read(make_clip, name, spec, expected):
    path = make_clip(name, duration=0.5, **spec)
    container = sniff(path.read_bytes()[:SNIFF_BYTES])
    assert container is not None and container.name == expected
    assert container in CONTAINERS


def test_sniff_real_files(shared_data, ravdess_video, crema_videos):
    assert sniff(ravdess_video.read_bytes()[:64]).name == "mp4"
    assert sniff(crema_videos[0].read_bytes()[:64]).name == "flv"
    mp3 = sorted((shared_data / "crema_d" / "AudioMP3").glob("*.mp3"))[0]
    assert sniff(mp3.read_bytes()[:64]).name == "mp3"
    flac = sorted((shared_data / "ravdess" / "speech_audio").glob("*/*.flac"))[0]
    assert sniff(flac.read_bytes()[:64]).name == "flac"
    assert sniff(b"") is None and sniff(b"\xff\xff\xff\xff") is None


def test_scan_duration_reads_packets(make_clip):
    path = make_clip("scan.mp4", duration=3.0)
    assert scan_duration(path, limit=100) == pytest.approx(3.0, abs=0.15)
    assert 1.0 < scan_duration(path, limit=1.0) < 1.6  # stops soon after the limit


def test_scan_duration_counts_every_recording_joined_in_one_file(make_clip, tmp_path):
    """``cat a.ts b.ts``: each recording restarts the time stamps; the file measured as long as one of
    them, so joined recordings passed the upload's length limit."""
    part = make_clip("scan.ts", duration=2.0)
    joined = tmp_path / "joined.ts"
    joined.write_bytes(part.read_bytes() * 3)
    assert scan_duration(joined, limit=100) == pytest.approx(3 * scan_duration(part, limit=100), abs=0.15)


def test_recordings_joined_with_a_clock_a_day_on_pass_the_length_limit(tmp_path):
    """A recording at 1 h joined after one at 2 h: FFmpeg's MPEG-TS demuxer takes the second for past its
    33-bit clock's wrap, 26.5 h on, and states that length: the two 2 s recordings were refused as too long."""
    from avemo.media.synth import write_clip, write_shifted
    from avemo.serving.uploads import Upload, check_media

    src = write_clip(tmp_path / "src.ts", duration=2.0, size=(96, 72), fps=10, audio="tone")
    late, early = (write_shifted(src, tmp_path / f"{h}h.ts", h * 3600.0).read_bytes() for h in (2, 1))
    path = tmp_path / "joined.ts"
    path.write_bytes(late + early)
    upload = Upload(path=path, filename="joined.ts", container=sniff(path.read_bytes()[:SNIFF_BYTES]),
                    size=path.stat().st_size)
    check_media(upload, ServeSettings(max_duration=60.0, upload_dir=str(tmp_path)))  # not refused
    assert scan_duration(path, limit=60.0) == pytest.approx(2 * scan_duration(src, limit=60.0), abs=0.15)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [("clip.mp4", "clip.mp4"), ("../../etc/passwd", "passwd"), ("C:\\Users\\me\\x.mov", "x.mov"),
     ("", "upload"), (None, "upload"), ("..", "upload"), (".hidden.mp4", "hidden.mp4"),
     ("a\x00b\nc.mp4", "abc.mp4"), ("x" * 300, "x" * 120)],
)
def test_display_name(raw, shown):
    assert display_name(raw) == shown


def test_describe_model_finds_the_card(tmp_path):
    from avemo.serving.app import describe_model

    bundle = tmp_path / "pkg" / "default_model"
    (bundle / "docs").mkdir(parents=True)
    (bundle / "docs" / "card.md").write_text("# Card\nTrained on RAVDESS.\n")

    class Named:
        bundle_dir = bundle
        labels = ("happy", "sad")

        def __init__(self, card):
            self._card = card

        def info(self):
            return {"name": "m", "card": self._card}

    assert describe_model(Named("docs/card.md"))["card"] == "# Card\nTrained on RAVDESS.\n"
    assert describe_model(Named("# inline\ntext"))["card"] == "# inline\ntext"
    assert describe_model(Named("docs/missing.md"))["card"] is None
    described = describe_model(Named(None))
    assert described["labels"] == ["happy", "sad"] and described["modalities"] == ["audio", "video"]


def test_settings_validation_and_files(tmp_path):
    from avemo.errors import ConfigError

    with pytest.raises(ConfigError, match="workers must be >= 1"):
        ServeSettings(workers=0)
    with pytest.raises(ConfigError, match="upload_dir must be an existing folder"):
        ServeSettings(upload_dir=str(tmp_path / "missing"))
    config = tmp_path / "serve.toml"
    config.write_text("[serve]\nport = 9000\nmax_duration = 60\n")
    settings = load_settings(config, port=None, workers=2)
    assert (settings.port, settings.max_duration, settings.workers) == (9000, 60.0, 2)
    config.write_text("max_durration = 60\n")
    with pytest.raises(ConfigError, match="unknown option"):
        load_settings(config)


def test_serve_command_options_and_config_errors(tmp_path):
    from typer.testing import CliRunner

    from avemo.cli import app
    from avemo.errors import ConfigError

    runner = CliRunner()
    result = runner.invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--workers", "--queue", "--max-upload-mb", "--max-duration", "--timeout",
                   "--upload-dir", "--config", "--modalities", "--text-model"):
        assert option in result.output
    for default in ("[default: 127.0.0.1]", "[default: 8000]", "[default: 300.0]", "[default: 100.0]",
                    "[default: (those the model reads)]"):
        assert default in result.output  # the defaults are shown (rich used to swallow them as markup)
    bad = tmp_path / "serve.toml"
    bad.write_text("workers = 0\n")
    result = runner.invoke(app, ["serve", "--config", str(bad)])
    assert isinstance(result.exception, ConfigError) and "workers must be >= 1" in str(result.exception)
    result = runner.invoke(app, ["serve", "--text-model", str(tmp_path)])  # a text model, but text not offered
    assert isinstance(result.exception, ConfigError) and "--modalities audio,video,text" in str(result.exception)
    result = runner.invoke(app, ["serve", "--modalities", "audio,smell"])
    assert isinstance(result.exception, ConfigError) and "audio,smell" in str(result.exception)


@pytest.mark.parametrize(("args", "message"), [
    (["--max-upload-mb", "0"], "--max-upload-mb must be at least 1 KiB, got 0"),
    (["--max-upload-mb", "nan"], "--max-upload-mb must be a finite number of MiB, got nan"),
    (["--workers", "0"], "--workers must be >= 1, got 0"),
    (["--queue", "-1"], "--queue must be >= 0, got -1"),
    (["--timeout", "0"], "--timeout must be > 0 seconds, got 0"),
    (["--max-duration", "-2.5"], "--max-duration must be > 0 seconds, got -2.5"),
    (["--port", "70000"], "--port must be 0..65535, got 70000"),
    (["--engine", "gpu"], "--engine must be one of torch, onnx, got 'gpu'"),
    (["--modalities", "smell"], "--modalities must be a comma-separated subset of audio, video, text, got 'smell'"),
    (["--upload-dir", "MISSING"], "--upload-dir must be an existing folder, got 'MISSING'"),
])
def test_serve_option_errors_name_the_option_and_the_value_given(args, message, tmp_path):
    """The user typed an option: its error names it and the value as typed, not the settings field
    (``max_upload_bytes``); a bad value from --config names the file and its key."""
    from typer.testing import CliRunner

    from avemo.cli import app
    from avemo.errors import ConfigError

    missing = str(tmp_path / "missing")
    result = CliRunner().invoke(app, ["serve", *[missing if a == "MISSING" else a for a in args]])
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception) == message.replace("MISSING", missing)
    config = tmp_path / "serve.toml"
    config.write_text("max_upload_bytes = 0\n")
    result = CliRunner().invoke(app, ["serve", "--config", str(config), "--workers", "2"])
    assert str(result.exception) == f"{config}: serve settings: max_upload_bytes must be at least 1 KiB, got 0"
