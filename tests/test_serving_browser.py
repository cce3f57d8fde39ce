"""The web page in a real browser: headless Chromium (Debian's package) driven by Playwright against
the app on loopback, with the real predictor and real clips.

Playwright only drives the system Chromium (``executable_path``); it never downloads a browser.
The tests skip only when no Chromium executable is found. Set ``AVEMO_UPDATE_SCREENSHOTS=1`` to
refresh ``docs/screenshots/serve_result.png`` from the run.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from playwright.sync_api import sync_playwright

from avemo.inference.bundle import read_bundle
from avemo.serving import BackgroundServer, ServeSettings, create_app

CHROMIUM = os.environ.get("AVEMO_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
REPO = Path(__file__).resolve().parents[1]
if CHROMIUM is None and os.environ.get("AVEMO_REQUIRE_BROWSER") == "1":  # CI: a missing browser is a failure
    raise RuntimeError("AVEMO_REQUIRE_BROWSER=1 but no Chromium executable was found (apt-get install chromium)")

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium executable (apt-get install chromium, or set AVEMO_CHROMIUM)"),
]

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # a synthetic camera and microphone, permission granted without a prompt
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture(scope="module")
def upload_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("uploads")


@pytest.fixture(scope="module")
def server(upload_root):
    from avemo.inference import Predictor

    settings = ServeSettings(port=0, upload_dir=str(upload_root))
    with BackgroundServer(create_app(predictor=Predictor.default(), settings=settings)) as running:
        yield running
    assert not any(upload_root.iterdir())


@pytest.fixture(scope="module")
def browser():
    # Playwright gives the browser a new, empty profile folder of its own (and removes it)
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


class PageWatch:
    """Records every request the page makes and every console error or page exception."""

    def __init__(self, page, base: str):
        self.base = urlparse(base)
        self.foreign: list[str] = []
        self.errors: list[str] = []
        page.on("request", self._request)
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _request(self, request) -> None:
        url = urlparse(request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.netloc != self.base.netloc:
            self.foreign.append(request.url)


@pytest.fixture(scope="module")
def text_server(upload_root):
    """A server started as ``avemo serve --modalities audio,video,text`` (the bundled text expert)."""
    from avemo.inference import Predictor
    from avemo.inference.text import load_text_expert

    settings = ServeSettings(port=0, upload_dir=str(upload_root), modalities="audio,video,text")
    predictor = Predictor.default().with_text_expert(load_text_expert())
    with BackgroundServer(create_app(predictor=predictor, settings=settings)) as running:
        yield running


class CheckpointLike:
    """The bundled predictor shown as ``GET /v1/models`` shows a ``--model`` checkpoint (run name, corpora)."""

    def __init__(self, predictor, **shown):
        self.predictor, self.shown = predictor, shown

    def info(self):
        return {**self.predictor.info(), **self.shown}

    def __getattr__(self, name):
        return getattr(self.predictor, name)


@pytest.fixture(scope="module")
def checkpoint_server(upload_root):
    from avemo.inference import Predictor

    predictor = CheckpointLike(Predictor.default(), name="egemaps_mlp", run="calm_run", corpora=["crema_d", "meld"])
    with BackgroundServer(create_app(predictor=predictor, settings=ServeSettings(port=0, upload_dir=str(upload_root)))) as running:
        yield running


def _open(browser, server, viewport=None):
    context = browser.new_context(viewport=viewport or {"width": 1100, "height": 1300})
    tab = context.new_page()
    tab.set_default_timeout(120_000)
    watch = PageWatch(tab, server.url)
    tab.goto(server.url + "/")
    yield tab, watch
    context.close()
    assert watch.foreign == [], f"the page contacted other hosts: {watch.foreign}"


@pytest.fixture(scope="module")
def crowd_server(upload_root, tmp_path_factory):
    """A server on a copy of the bundle whose crowd detector has threshold 0: every window with audio
    is a crowd window (its voice gets no vote), as babble would be."""
    from avemo.inference import Predictor
    from avemo.inference.bundle import BUNDLE_DIR

    bundle = tmp_path_factory.mktemp("crowd_bundle") / "default_model"
    shutil.copytree(BUNDLE_DIR, bundle)
    detector = json.loads((bundle / "crowd.json").read_text())
    (bundle / "crowd.json").write_text(json.dumps({**detector, "threshold": 0.0}))
    settings = ServeSettings(port=0, upload_dir=str(upload_root))
    with BackgroundServer(create_app(predictor=Predictor.from_bundle(bundle), settings=settings)) as running:
        yield running


@pytest.fixture
def page(browser, server):
    yield from _open(browser, server)


@pytest.fixture
def crowd_page(browser, crowd_server):
    yield from _open(browser, crowd_server)


@pytest.fixture
def text_page(browser, text_server):
    yield from _open(browser, text_server)


def test_upload_real_clip_renders_label_bars_chart_and_follows_playback(page, server, ravdess_video, tmp_path):
    tab, watch = page
    with open(ravdess_video, "rb") as fh:
        expected = httpx.post(server.url + "/v1/predict", files={"file": (ravdess_video.name, fh)}, timeout=120).json()
    windows = len(expected["timeline"])
    emotions = list(expected["probabilities"])

    tab.locator("#limits-text", has_text="At most").wait_for()  # the limits come from GET /healthz
    assert tab.locator("#limits-text").text_content() == "At most 100 MB and 300 s."
    tab.get_by_label("Video or audio file").set_input_files(ravdess_video)
    tab.get_by_role("button", name="Analyse clip").click()
    tab.locator("#result").wait_for(state="visible")

    # the label, the bars, the chart, the table, the modalities
    assert tab.locator("#emotion-label").text_content() == expected["emotion"]
    assert tab.locator("#probability-bars li").count() == len(emotions) == len(read_bundle()[0].labels)
    assert tab.locator("#probability-bars li.top").get_attribute("data-emotion") == expected["emotion"]
    assert tab.locator("#timeline-chart polyline.line").count() == len(emotions)
    points = tab.locator(f'#timeline-chart polyline[data-emotion="{emotions[0]}"]').get_attribute("points")
    assert len(points.split()) == max(windows, 2)
    ribbon = tab.locator("#timeline-chart .ribbon rect")
    assert ribbon.count() == windows
    assert ribbon.first.get_attribute("data-emotion") == expected["timeline"][0]["emotion"]
    assert tab.locator("#timeline-table tbody tr").count() == windows
    headers = tab.locator("#timeline-table thead th").all_text_contents()
    assert headers.index("crowd") == headers.index("speech") + 1  # the bundle's crowd score of each window
    assert tab.locator('#modalities-list li[data-modality="audio"] .used').count() == 1
    assert tab.locator("#upload-progress").get_attribute("value") == "100"
    assert tab.locator("#process-progress").get_attribute("value") == "100"

    # the chart is a keyboard-operable slider over playback time, synchronised with the video
    chart = tab.get_by_role("slider")
    chart.focus()
    chart.press("End")
    duration = float(chart.get_attribute("aria-valuemax"))
    assert float(chart.get_attribute("aria-valuenow")) == pytest.approx(duration, abs=0.01)
    assert tab.evaluate("document.querySelector('#player').currentTime") == pytest.approx(duration, abs=0.1)
    chart.press("Home")
    assert float(chart.get_attribute("aria-valuenow")) == 0.0
    x0 = float(tab.locator("#timeline-chart line.cursor").get_attribute("x1"))
    tab.evaluate("(() => { const v = document.querySelector('#player'); v.muted = true; return v.play(); })()")
    deadline = time.monotonic() + 20
    while float(tab.locator("#timeline-chart line.cursor").get_attribute("x1")) <= x0 + 20:
        assert time.monotonic() < deadline, "the chart's cursor does not follow playback"
        tab.wait_for_timeout(100)
    tab.evaluate("document.querySelector('#player').pause()")
    now = float(chart.get_attribute("aria-valuenow"))
    assert now == pytest.approx(tab.evaluate("document.querySelector('#player').currentTime"), abs=0.25)
    assert chart.get_attribute("aria-valuetext").split(": ")[1].split()[0] in emotions

    assert watch.errors == []
    shot = tmp_path / "serve_result.png"
    tab.evaluate("document.querySelector('#player').currentTime = 1.6")
    chart.blur()
    tab.wait_for_timeout(300)
    tab.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("AVEMO_UPDATE_SCREENSHOTS"):
        assert shot.stat().st_size < 300_000, "the docs' screenshot is to stay small"
        target = REPO / "docs" / "screenshots" / "serve_result.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)


def test_crowd_gated_windows_read_crowd_like_windows_without_speech(crowd_page, crowd_server, ravdess_speech_root):
    tab, watch = crowd_page
    clip = ravdess_speech_root / "Actor_01" / "03-01-01-01-01-01-01.flac"  # audio only: no face to fall back on
    with open(clip, "rb") as fh:
        expected = httpx.post(crowd_server.url + "/v1/predict", files={"file": (clip.name, fh)}, timeout=120).json()
    assert expected["model"]["crowd_threshold"] == 0.0
    gated = [w for w in expected["timeline"] if w.get("crowd_gated")]
    assert gated and all(w["emotion"] is None for w in gated)
    tab.get_by_label("Video or audio file").set_input_files(clip)
    tab.get_by_role("button", name="Analyse clip").click()
    tab.locator("#result").wait_for(state="visible")

    assert tab.locator("#emotion-label").text_content() == "no emotion"
    audio = tab.locator('#modalities-list li[data-modality="audio"]').text_content()
    assert "not used: several people talk at once" in audio  # not in brackets: the reason has its own
    # the gate's line in warnings: a note, not "The file is damaged" (said of every warning before)
    note = tab.locator("#warnings-text").text_content()
    assert note.startswith("Note: audio not used: several people talk at once") and "damaged" not in note
    headers = tab.locator("#timeline-table thead th").all_text_contents()
    emotion_cells = tab.locator("#timeline-table tbody tr td:nth-child(3)").all_text_contents()
    voice_cells = tab.locator(f"#timeline-table tbody tr td:nth-child({headers.index('voice') + 1})").all_text_contents()
    assert emotion_cells.count("crowd") == len(gated) and voice_cells.count("no (crowd)") == len(gated)
    assert tab.locator('#timeline-chart .ribbon rect[data-gate="crowd"]').count() == len(gated)
    chart = tab.get_by_role("slider")
    chart.focus()
    chart.press("Home")
    assert expected["timeline"][0] in gated  # threshold 0: every window with a crowd score
    assert chart.get_attribute("aria-valuetext").endswith(": crowd (several people talk at once)")  # says why
    assert watch.errors == []


def test_transcribe_checkbox_shows_the_transcript_and_the_words_of_each_window(page, ravdess_video):
    tab, watch = page
    assert tab.locator("#transcript-box").is_hidden()
    tab.get_by_label("Video or audio file").set_input_files(ravdess_video)
    tab.locator("details.options summary").click()  # the options are folded away
    tab.get_by_label("Transcribe speech").check()
    tab.get_by_role("button", name="Analyse clip").click()
    tab.locator("#result").wait_for(state="visible")
    assert "dogs are sitting by the door" in tab.locator("#transcript-text").text_content().lower()
    assert tab.locator("#timeline-table thead th").last.text_content() == "words"
    words = tab.locator("#timeline-table tbody tr td:last-child").all_text_contents()
    assert any("door" in w for w in words) and "" in words  # the last windows of the clip are silent
    assert watch.errors == []


def test_transcribe_on_a_file_without_audio_says_there_is_no_audio_to_transcribe(page, make_clip):
    """It said "No speech was recognised." next to "Voice (audio): not used: the file has no audio track"."""
    tab, watch = page
    tab.get_by_label("Video or audio file").set_input_files(make_clip("face_no_audio.mp4", duration=1.6, audio=None))
    tab.locator("details.options summary").click()
    tab.get_by_label("Transcribe speech").check()
    tab.get_by_role("button", name="Analyse clip").click()
    tab.locator("#result").wait_for(state="visible")
    assert tab.locator("#transcript-text").text_content() == "No audio to transcribe: the file has no audio track."
    headers = tab.locator("#timeline-table thead th").all_text_contents()  # nothing listened: no voice columns
    assert "face" in headers and "voice" not in headers and "speech" not in headers
    assert watch.errors == []


def test_text_checkbox_is_disabled_with_a_tooltip_when_the_server_lacks_the_text_expert(page):
    tab, watch = page
    tab.locator("#limits-text", has_text="At most").wait_for()  # GET /healthz has answered
    tab.locator("details.options summary").click()
    box = tab.get_by_label("Words (text)")
    assert box.is_disabled() and not box.is_checked()
    assert "avemo serve --modalities audio,video,text" in tab.locator("#text-label").get_attribute("title")
    assert tab.get_by_label("Voice (audio)").is_enabled() and tab.get_by_label("Face (video)").is_checked()
    assert watch.errors == []


def test_the_footer_describes_the_bundled_model_it_serves(page):
    tab, watch = page
    footer = tab.locator("#served-model-text", has_text="bundled")
    footer.wait_for()  # GET /v1/models has answered
    assert footer.text_content() == ("The bundled model was trained on acted English and German speech; "
                                     "treat any output as an estimate.")
    assert watch.errors == []


def test_the_footer_describes_a_served_checkpoint_by_its_run_and_corpora(browser, checkpoint_server):
    for tab, watch in _open(browser, checkpoint_server):
        footer = tab.locator("#served-model-text", has_text="calm_run")
        footer.wait_for()  # GET /v1/models has answered
        text = footer.text_content()
        assert text == "The model is the checkpoint calm_run (egemaps_mlp), trained on crema_d, meld; treat any output as an estimate."
        assert "bundled" not in tab.locator("footer").text_content()
        assert watch.errors == []


def test_hop_hint_follows_a_window_shorter_than_the_models_hop(page):
    """A window sent alone shorter than the model's hop is its own hop (the server's rule): the hint says so."""
    tab, watch = page
    tab.locator("#limits-text", has_text="At most").wait_for()  # GET /healthz has answered
    tab.locator("details.options summary").click()
    hint = tab.locator("#hop-text")
    assert hint.text_content() == "A new window starts every 0.5 s."
    tab.get_by_label("Timeline window (seconds)").fill("0.25")
    assert hint.text_content() == "A new window starts every 0.25 s."
    tab.get_by_label("Timeline window (seconds)").fill("2")
    assert hint.text_content() == "A new window starts every 0.5 s."
    assert watch.errors == []

def test_text_modality_shows_its_scores_like_the_other_modalities(text_page, text_server, ravdess_video):
    tab, watch = text_page
    with open(ravdess_video, "rb") as fh:
        expected = httpx.post(text_server.url + "/v1/predict", files={"file": (ravdess_video.name, fh)},
                              data={"modalities": "audio,video,text"}, timeout=120).json()
    tab.locator("#limits-text", has_text="At most").wait_for()
    tab.get_by_label("Video or audio file").set_input_files(ravdess_video)
    tab.locator("details.options summary").click()
    box = tab.get_by_label("Words (text)")
    assert box.is_enabled() and not box.is_checked()  # offered, never on by default
    assert tab.locator("#text-label").get_attribute("title") == ""
    box.check()
    transcribe = tab.get_by_label("Transcribe speech")
    assert transcribe.is_checked() and transcribe.is_disabled()  # text implies the transcript
    tab.get_by_role("button", name="Analyse clip").click()
    tab.locator("#result").wait_for(state="visible")

    assert tab.locator("#emotion-label").text_content() == expected["emotion"]
    assert "dogs are sitting by the door" in tab.locator("#transcript-text").text_content().lower()
    text = tab.locator('#modalities-list li[data-modality="text"]')
    assert text.locator(".used").count() == 1 and text.text_content().startswith("Words (text): used")
    own = expected["modalities"]["text"]["probabilities"]
    top = max(own, key=own.get)
    assert text.locator(".scores").text_content().startswith(f"(on its own: {top} ")
    for modality in ("audio", "video"):  # every used modality shows its own scores the same way
        item = tab.locator(f'#modalities-list li[data-modality="{modality}"]')
        assert item.locator(".scores").count() == int(expected["modalities"][modality]["probabilities"] is not None)
    box.uncheck()
    assert transcribe.is_enabled()
    assert watch.errors == []


def test_record_with_camera_and_microphone(page):
    """MediaRecorder with Chromium's synthetic camera and microphone: record, upload, get a result."""
    tab, watch = page
    record = tab.get_by_role("button", name="Start recording")
    record.click()
    stop = tab.get_by_role("button", name="Stop recording")
    assert stop.get_attribute("aria-pressed") == "true"
    tab.wait_for_timeout(2500)
    stop.click()
    tab.locator("#selected-file", has_text="Recording: recording.").wait_for()
    tab.get_by_role("button", name="Analyse clip").click()
    tab.locator("#result:not([hidden]), #error:not([hidden])").first.wait_for()
    assert tab.locator("#error").is_hidden(), tab.locator("#error").text_content()
    # Chromium's synthetic microphone beeps and its camera shows no face: no speech, no face, no emotion ("none")
    assert tab.locator("#emotion-label").text_content() in {*read_bundle()[0].labels, "no emotion"}
    assert tab.locator("#modalities-list li").count() == 2
    assert watch.errors == []


def test_too_little_speech_says_why_the_answer_is_uncertain(page, tmp_path):
    """A confident answer from 0.4 s of speech is flagged for its length, and the page says so (it said
    "below the model's confidence threshold" of every flag, and "The file is damaged" of every warning)."""
    import numpy as np
    import soundfile as sf

    from avemo.media.synth import synth_audio

    tab, watch = page
    clip = tmp_path / "short.wav"
    silence = np.zeros(16000, np.float32)
    sf.write(clip, np.concatenate([silence, synth_audio(0.4, 16000, "speech")[:, 0], silence]), 16000)
    tab.get_by_label("Video or audio file").set_input_files(clip)
    tab.get_by_role("button", name="Analyse clip").click()
    tab.locator("#result").wait_for(state="visible")
    assert tab.locator("#result").get_attribute("data-uncertain") == "true"
    assert tab.locator("#emotion-confidence").text_content().endswith(
        " probability; uncertain: too little speech to trust the voice)")
    assert tab.locator("#warnings-text").text_content().startswith("Note: too little speech: ")
    assert watch.errors == []


def test_bad_file_shows_the_servers_error(page, tmp_path):
    tab, _ = page
    fake = tmp_path / "notes.mp4"
    fake.write_text("these are notes, not a video\n" * 20)
    tab.get_by_label("Video or audio file").set_input_files(fake)
    tab.get_by_role("button", name="Analyse clip").click()
    alert = tab.get_by_role("alert")
    alert.wait_for(state="visible")
    assert alert.text_content().startswith("notes.mp4: not a recognised audio or video file")
    assert tab.locator("#result").is_hidden()
    assert tab.get_by_role("button", name="Analyse clip").is_enabled()


def _tau_server(upload_root, tmp_path_factory, tau: float):
    """A server on a copy of the bundle whose uncertainty threshold ``tau`` is replaced."""
    from avemo.inference import Predictor
    from avemo.inference.bundle import BUNDLE_DIR

    bundle = tmp_path_factory.mktemp(f"tau_bundle_{tau}") / "default_model"
    shutil.copytree(BUNDLE_DIR, bundle)
    meta = json.loads((bundle / "model.json").read_text())
    meta["config"]["abstention"]["tau"] = tau
    (bundle / "model.json").write_text(json.dumps(meta))
    settings = ServeSettings(port=0, upload_dir=str(upload_root))
    return BackgroundServer(create_app(predictor=Predictor.from_bundle(bundle), settings=settings))


@pytest.fixture(scope="module")
def unsure_server(upload_root, tmp_path_factory):
    """tau = 1: every answer's top probability is below it, so the clip and every window are uncertain."""
    with _tau_server(upload_root, tmp_path_factory, 1.0) as running:
        yield running


@pytest.fixture(scope="module")
def sure_server(upload_root, tmp_path_factory):
    """tau = 0: no answer is below it; only a window without any emotion is still flagged uncertain."""
    with _tau_server(upload_root, tmp_path_factory, 0.0) as running:
        yield running


UNCERTAIN_CLIP = ("Actor_01", "03-01-05-02-01-01-01.flac")  # audio only (quick): speech with silence around it


def _show_clip(browser, server, clip: Path):
    """The clip's result from the API, and the page after uploading the clip (yielded as a pair)."""
    with open(clip, "rb") as fh:
        expected = httpx.post(server.url + "/v1/predict", files={"file": (clip.name, fh)}, timeout=120).json()
    for tab, watch in _open(browser, server):
        tab.get_by_label("Video or audio file").set_input_files(clip)
        tab.get_by_role("button", name="Analyse clip").click()
        tab.locator("#result").wait_for(state="visible")
        yield expected, tab, watch


@pytest.fixture
def unsure_page(browser, unsure_server, ravdess_speech_root):
    yield from _show_clip(browser, unsure_server, ravdess_speech_root.joinpath(*UNCERTAIN_CLIP))


@pytest.fixture
def sure_page(browser, sure_server, ravdess_speech_root):
    yield from _show_clip(browser, sure_server, ravdess_speech_root.joinpath(*UNCERTAIN_CLIP))


def _js_round_percent(p: float) -> int:
    return math.floor(100 * p + 0.5)  # JavaScript's Math.round (Python's round() rounds half to even)


def _window_marks(tab) -> list[tuple[str, str | None, str]]:
    """(emotion, fill-opacity, tooltip) of each window of the chart's ribbon."""
    return tab.locator("#timeline-chart .ribbon rect").evaluate_all(
        "rects => rects.map(r => [r.dataset.emotion, r.getAttribute('fill-opacity'), r.querySelector('title').textContent])")


def _slider_texts(tab) -> list[str]:
    """What the chart's slider says of the window under its cursor, stepping through the clip with the keyboard."""
    chart = tab.get_by_role("slider")
    chart.focus()
    chart.press("Home")
    said = [chart.get_attribute("aria-valuetext").split(": ", 1)[1]]
    while float(chart.get_attribute("aria-valuenow")) < float(chart.get_attribute("aria-valuemax")):
        chart.press("ArrowRight")
        said.append(chart.get_attribute("aria-valuetext").split(": ", 1)[1])
    return said


def _uncertain_column(tab) -> list[str]:
    headers = tab.locator("#timeline-table thead th").all_text_contents()
    return tab.locator(f"#timeline-table tbody tr td:nth-child({headers.index('uncertain') + 1})").all_text_contents()


def test_uncertain_clip_and_windows_are_marked_uncertain(unsure_page):
    expected, tab, watch = unsure_page
    emotion = expected["emotion"]
    assert emotion is not None and expected["uncertain"] is True
    voiced = [w for w in expected["timeline"] if w["emotion"] is not None]
    assert voiced and all(w["uncertain"] for w in expected["timeline"])

    # the clip: the status line, the confidence next to the label, the result's data attribute
    assert tab.locator("#status").text_content() == f"Done: {emotion}, uncertain."
    assert tab.locator("#emotion-label").text_content() == emotion
    confidence = tab.locator("#emotion-confidence").text_content()
    assert confidence.startswith("(") and confidence.endswith(
        " probability; uncertain: below the model's confidence threshold)")
    assert tab.locator("#result").get_attribute("data-uncertain") == "true"

    # the windows: the table's column, and the chart's ribbon (faded, "(uncertain)" in its tooltip)
    assert _uncertain_column(tab) == ["yes"] * len(expected["timeline"])
    for w, (shown, opacity, tooltip) in zip(expected["timeline"], _window_marks(tab), strict=True):
        assert opacity == "0.45"
        if w["emotion"] is None:
            assert (shown, tooltip) == ("none", "no speech")
        else:
            top = _js_round_percent(w["probabilities"][w["emotion"]])
            assert (shown, tooltip) == (w["emotion"], f"{w['emotion']} {top}% (uncertain)")
    # the chart, a slider over time, says so for each window it passes (what a screen reader reads)
    said = _slider_texts(tab)
    assert any(text != "no speech" for text in said)
    assert all(text.endswith(" (uncertain)") for text in said if text != "no speech")
    assert watch.errors == []


def test_confident_clip_and_windows_show_no_uncertainty(sure_page):
    expected, tab, watch = sure_page
    emotion = expected["emotion"]
    assert emotion is not None and expected["uncertain"] is False
    voiced = [w for w in expected["timeline"] if w["emotion"] is not None]
    assert voiced and not any(w["uncertain"] for w in voiced)

    assert tab.locator("#status").text_content() == f"Done: {emotion}."
    assert tab.locator("#emotion-label").text_content() == emotion
    confidence = tab.locator("#emotion-confidence").text_content()
    assert confidence.startswith("(") and confidence.endswith(" probability)") and "uncertain" not in confidence
    assert tab.locator("#result").get_attribute("data-uncertain") == "false"

    # a window without emotion stays flagged uncertain in the table (the API says so); no voiced one is
    assert _uncertain_column(tab) == ["yes" if w["uncertain"] else "no" for w in expected["timeline"]]
    for w, (shown, opacity, tooltip) in zip(expected["timeline"], _window_marks(tab), strict=True):
        if w["emotion"] is None:
            assert (shown, tooltip) == ("none", "no speech")
        else:
            top = _js_round_percent(w["probabilities"][w["emotion"]])
            assert (shown, opacity, tooltip) == (w["emotion"], "1", f"{w['emotion']} {top}%")
    said = _slider_texts(tab)
    assert any(text != "no speech" for text in said) and not any("uncertain" in text for text in said)
    assert watch.errors == []


@pytest.fixture
def phone_page(browser, server):
    """The page at a phone's width (390 CSS pixels)."""
    yield from _open(browser, server, {"width": 390, "height": 844})


def test_phone_width_keeps_the_charts_axis_readable_and_the_file_input_inside_the_form(phone_page, ravdess_speech_root):
    """The chart was drawn 800 units wide and shrunk to the phone's width: its axis labels were 4 px
    high; the file input ran past the panel's edge."""
    tab, watch = phone_page
    tab.get_by_label("Video or audio file").set_input_files(ravdess_speech_root.joinpath(*UNCERTAIN_CLIP))
    tab.get_by_role("button", name="Analyse clip").click()
    tab.locator("#result").wait_for(state="visible")
    heights = tab.locator("#timeline-chart .axis text").evaluate_all("ts => ts.map(t => t.getBoundingClientRect().height)")
    assert heights and min(heights) >= 10
    box = tab.locator("#file-input").bounding_box()
    form = tab.locator("#predict-form").bounding_box()
    assert box["x"] + box["width"] <= form["x"] + form["width"] + 0.5
    assert tab.evaluate("document.documentElement.scrollWidth") <= 390
    # each progress bar on its label's line (they were stacked: label, bar, then "done" a line apart)
    for bar in ("upload", "process"):
        label = tab.locator(f'label[for="{bar}-progress"]').bounding_box()
        shown = tab.locator(f"#{bar}-progress").bounding_box()
        assert abs((label["y"] + label["height"] / 2) - (shown["y"] + shown["height"] / 2)) < label["height"] / 2
    assert watch.errors == []


def test_chart_lines_leave_a_gap_over_windows_without_scores(unsure_page):
    """A window without speech has no probabilities: the lines were drawn through 0 % there."""
    expected, tab, watch = unsure_page
    scored = [w for w in expected["timeline"] if w["probabilities"] is not None]
    assert 0 < len(scored) < len(expected["timeline"])
    for emotion in expected["probabilities"]:
        lines = tab.locator(f'#timeline-chart polyline.line[data-emotion="{emotion}"]')
        xs = {p.split(",")[0] for points in lines.evaluate_all("ls => ls.map(l => l.getAttribute('points'))")
              for p in points.split()}
        assert len(xs) == len(scored)
    assert watch.errors == []


def test_no_emotion_says_so_where_the_probabilities_go(page, tmp_path):
    """Silence (no speech, no face): the "Probabilities" heading stood over an empty list."""
    import numpy as np
    import soundfile as sf

    clip = tmp_path / "silence.wav"
    sf.write(clip, np.zeros(32000, np.float32), 16000)
    tab, watch = page
    tab.get_by_label("Video or audio file").set_input_files(clip)
    tab.get_by_role("button", name="Analyse clip").click()
    tab.locator("#result").wait_for(state="visible")
    assert tab.locator("#emotion-label").inner_text() == "no emotion"
    assert tab.locator("#probability-bars").text_content() == "No scores: the model had nothing it could read (see Modalities)."
    assert watch.errors == []


def _analyse(tab, clip: Path) -> None:
    tab.get_by_label("Video or audio file").set_input_files(clip)
    tab.get_by_role("button", name="Analyse clip").click()
    tab.locator("#result").wait_for(state="visible")
    tab.get_by_text("Timeline as a table").click()  # open: innerText applies the table's CSS


def _column(tab, title: str) -> list[str]:
    headers = tab.locator("#timeline-table thead th").all_inner_texts()
    return tab.locator(f"#timeline-table tbody tr td:nth-child({headers.index(title) + 1})").all_inner_texts()


def test_audio_file_without_speech_reads_no_emotion_and_misses_no_face(page, server, make_clip):
    """White noise in a WAV: the label read "None" (CSS capitalised "none", as Python prints null), and
    the page spoke of "no face" in a file that has no video at all (a face column of "no" too)."""
    clip = make_clip("white_noise.wav", duration=3.0, audio="noise")
    with open(clip, "rb") as fh:
        expected = httpx.post(server.url + "/v1/predict", files={"file": (clip.name, fh)}, timeout=120).json()
    assert expected["emotion"] is None and expected["face_coverage"] is None
    tab, watch = page
    _analyse(tab, clip)
    assert tab.locator("#status").text_content() == "Done: no emotion."  # not ", uncertain": nothing to doubt
    assert tab.locator("#emotion-label").inner_text() == "no emotion"
    reasons = {m: expected["modalities"][m]["reason"] for m in ("audio", "video")}
    assert tab.locator("#emotion-confidence").text_content() == (
        f"(voice not used: {reasons['audio']}; face not used: {reasons['video']})")
    assert "no face" not in tab.locator("#result").inner_text()
    headers = tab.locator("#timeline-table thead th").all_inner_texts()
    assert headers[:3] == ["Start (s)", "End (s)", "Emotion"]  # capitalize made it "Start (S)"
    assert "Voice" in headers and "Face" not in headers
    assert _column(tab, "Emotion") == ["no speech"] * len(expected["timeline"])
    assert set(_slider_texts(tab)) == {"no speech"}
    tab.set_viewport_size({"width": 390, "height": 844})  # a phone: "no emotion" was broken over two lines
    assert tab.locator("#emotion-label").evaluate(
        "e => { const r = document.createRange(); r.selectNodeContents(e); return r.getClientRects().length; }") == 1
    assert watch.errors == []


def test_video_without_speech_or_face_says_it_lacks_both(page, make_clip):
    """A video with noise and no face: each window lacks speech and a face, and said "no speech" only."""
    tab, watch = page
    _analyse(tab, make_clip("noise_no_face.mp4", duration=2.0, face=False, audio="noise"))
    assert tab.locator("#emotion-label").inner_text() == "no emotion"
    confidence = tab.locator("#emotion-confidence").text_content()
    assert "voice not used: no speech detected" in confidence and "; face not used: no face detected" in confidence
    assert "Face" in tab.locator("#timeline-table thead th").all_inner_texts()
    emotions = _column(tab, "Emotion")
    assert emotions and set(emotions) == {"no speech, no face"} and set(_column(tab, "Face")) == {"no"}
    assert set(_slider_texts(tab)) == {"no speech, no face"}
    assert watch.errors == []


def test_phone_width_labels_each_second_and_keeps_table_cells_on_one_line(phone_page, ravdess_speech_root):
    """A 4 s clip on a phone: the time axis was labelled every 2 s, and the table's cells wrapped
    ("< 0.5 %" on three lines)."""
    tab, watch = phone_page
    _analyse(tab, ravdess_speech_root.joinpath(*UNCERTAIN_CLIP))
    duration = float(tab.get_by_role("slider").get_attribute("aria-valuemax"))
    times = [t for t in tab.locator("#timeline-chart .axis text").all_text_contents() if t.endswith(" s")]
    assert times == [f"{k}.0 s" for k in range(math.floor(duration) + 1)]
    lines = tab.locator("#timeline-table td").evaluate_all(
        "cells => cells.map(c => { const r = document.createRange(); r.selectNodeContents(c);"
        " return new Set([...r.getClientRects()].map(b => Math.round(b.top))).size; })")
    assert lines and max(lines) == 1
    assert watch.errors == []
