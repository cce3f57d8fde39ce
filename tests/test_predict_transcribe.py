"""Transcripts in predictions (``avemo predict --transcribe``, the REST field) and the opt-in text expert."""

from __future__ import annotations

import csv
import io
import re

import numpy as np
import pytest

from avemo.errors import ConfigError
from avemo.inference import formats
from avemo.inference.text import TextExpert, TextFusion, TextFusionConfig, split_text, text_label_map

MELD = ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear")  # MELD's own class names


def words_of(text: str) -> list[str]:
    return re.sub(r"[^\w' ]+", " ", text.lower()).split()


class KeywordTextExpert(TextExpert):
    """A tiny generated text model: a fixed bag-of-words linear layer over MELD's classes."""

    name = "keywords"
    labels = MELD

    def __init__(self, vocabulary: dict[str, str], strength: float = 4.0):
        self.vocabulary = vocabulary  # word -> the class it votes for
        self.calls: list[list[str]] = []
        self.strength = strength

    def logits(self, texts):
        self.calls.append(list(texts))
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in words_of(text):
                if word in self.vocabulary:
                    out[i, self.labels.index(self.vocabulary[word])] += self.strength
        return out


@pytest.fixture(scope="module")
def clip_prediction(predictor, ravdess_video):
    return predictor.predict(ravdess_video, transcribe=True)


# ----------------------------------------------------------------------------- transcripts
@pytest.mark.shared_data
def test_json_has_the_transcript_and_each_window_its_words(clip_prediction):
    d = clip_prediction.to_dict()
    t = d["transcript"]
    assert set(t) == {"text", "language", "language_probability", "words"}
    assert "dogs are sitting by the door" in " ".join(words_of(t["text"])) and t["language"] == "en"
    clip_words = [w["text"] for w in t["words"]]
    assert " ".join(clip_words) == t["text"]
    assert all(0.0 <= w["start"] <= w["end"] <= d["duration"] for w in t["words"])
    # a window's text is the run of the clip's words whose middle lies in it
    for w in d["timeline"]:
        inside = [x["text"] for x in t["words"] if w["start"] <= (x["start"] + x["end"]) / 2 < w["end"]]
        assert w["text"] == " ".join(inside)
    # 1 s windows every 0.5 s: every word is in exactly two windows of this 4 s clip
    assert sum(len(w["text"].split()) for w in d["timeline"]) == 2 * len(clip_words)


@pytest.mark.shared_data
def test_csv_and_table_show_the_text(clip_prediction):
    rows = list(csv.DictReader(io.StringIO(formats.to_csv([clip_prediction]))))
    assert list(rows[0])[-2:] == ["text", "crowd"]  # text after the fixed columns, then the crowd score (added later)
    assert rows[0]["level"] == "clip" and rows[0]["text"] == clip_prediction.transcript.text
    windows = [r for r in rows if r["level"] == "window"]
    assert [r["text"] for r in windows] == [w.text for w in clip_prediction.timeline]
    assert all(set(words_of(r["text"])) <= set(words_of(rows[0]["text"])) for r in windows)
    frame = clip_prediction.timeline_frame()
    assert list(frame["text"]) == [w.text for w in clip_prediction.timeline]
    from rich.console import Console

    console = Console(file=io.StringIO(), width=120, no_color=True)
    formats.render(clip_prediction, console)
    shown = console.file.getvalue()
    assert "transcript [en]:" in shown and "door" in shown


@pytest.mark.shared_data
def test_without_transcribe_nothing_changes(predictor, ravdess_video, clip_prediction):
    plain = predictor.predict(ravdess_video)
    d = plain.to_dict()
    assert "transcript" not in d and all("text" not in w for w in d["timeline"])
    assert "text" not in next(csv.reader(io.StringIO(formats.to_csv([plain]))))
    assert plain.probabilities == clip_prediction.probabilities  # transcription does not touch the emotions


@pytest.mark.parametrize("name, spec", [("noise.mp4", {"audio": "noise"}), ("mute.mp4", {"audio": None}),
                                        ("tone.wav", {"audio": "tone"})])
def test_no_speech_gives_an_empty_transcript(predictor, make_clip, name, spec):
    p = predictor.predict(make_clip(name, duration=1.5, **spec), transcribe=True)
    t = p.to_dict()["transcript"]
    assert t["text"] == "" and t["words"] == [] and t["language"] is None
    assert all(w["text"] == "" for w in p.to_dict()["timeline"])
    assert not p.warnings


def test_predict_many_transcribes_each_file(predictor, make_clip):
    files = [make_clip("batch_noise.mp4", duration=1.0, audio="noise"), make_clip("batch_missing.mp4", duration=1.0)]
    files[1].unlink()
    outcomes = list(predictor.predict_many(files, transcribe=True))
    assert outcomes[0].ok and outcomes[0].prediction.transcript.text == ""
    assert not outcomes[1].ok  # a bad file still fails alone


def test_a_failing_recogniser_leaves_a_warning_not_an_error(predictor, make_clip, monkeypatch):
    from avemo.errors import CheckpointError
    from avemo.features.audio import asr

    def broken(*_args, **_kwargs):
        raise CheckpointError("the Whisper-base package is missing")

    monkeypatch.setattr(asr, "transcribe_file", broken)
    p = predictor.predict(make_clip("warned.mp4", duration=1.0, audio="noise"), transcribe=True)
    assert p.transcript.text == "" and any("no transcript" in w and "Whisper-base" in w for w in p.warnings)


# ----------------------------------------------------------------------------- REST API
@pytest.mark.shared_data
def test_api_transcribe_field_and_query(predictor, ravdess_video, tmp_path):
    from fastapi.testclient import TestClient

    from avemo.serving import ServeSettings, create_app

    app = create_app(predictor=predictor, settings=ServeSettings(upload_dir=str(tmp_path)))
    data = ravdess_video.read_bytes()
    with TestClient(app, raise_server_exceptions=False) as client:
        def post(form=None, query=""):
            files = {"file": ("clip.mp4", data, "video/mp4")}
            return client.post(f"/v1/predict{query}", files=files, data=form or {})

        by_form = post({"transcribe": "true"})
        assert by_form.status_code == 200, by_form.text
        body = by_form.json()
        assert "door" in body["transcript"]["text"] and all("text" in w for w in body["timeline"])
        by_query = post(query="?transcribe=true")
        assert by_query.status_code == 200 and by_query.json()["transcript"] == body["transcript"]
        off = post({"transcribe": "false"})
        assert off.status_code == 200 and "transcript" not in off.json()
        bad = post({"transcribe": "maybe"})
        assert bad.status_code == 422 and "transcribe" in bad.json()["error"]["message"]
        form = client.get("/openapi.json").json()["paths"]["/v1/predict"]["post"]["requestBody"]
        assert "transcribe" in form["content"]["multipart/form-data"]["schema"]["properties"]
    from avemo.serving.schemas import PredictionOut

    PredictionOut.model_validate(body)


def _post(client, clip, form=None, query=""):
    with open(clip, "rb") as fh:
        return client.post(f"/v1/predict{query}", files={"file": (clip.name, fh, "video/mp4")}, data=form or {})


def test_api_refuses_text_without_the_text_expert(predictor, make_clip, tmp_path):
    from fastapi.testclient import TestClient

    from avemo.serving import ServeSettings, create_app

    app = create_app(predictor=predictor, settings=ServeSettings(upload_dir=str(tmp_path)))
    clip = make_clip("api_no_text.mp4", duration=1.0, audio="noise")
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/healthz").json()["modalities"] == ["audio", "video"]
        assert "text" not in client.get("/v1/models").json()["models"][0]["modalities"]
        for refused in (_post(client, clip, {"modalities": "audio,video,text"}),
                        _post(client, clip, query="?modalities=audio,text")):
            assert refused.status_code == 422
            error = refused.json()["error"]
            assert error["code"] == "modality_unavailable" and "\n" not in error["message"]
            assert "does not offer the text modality" in error["message"]
            assert "avemo serve --modalities audio,video,text" in error["message"]
        schema = client.get("/openapi.json").json()["paths"]["/v1/predict"]["post"]["requestBody"]
        field = schema["content"]["multipart/form-data"]["schema"]["properties"]["modalities"]
        assert not re.fullmatch(field["pattern"], "audio,video,text") and re.fullmatch(field["pattern"], "video,audio")
        assert "modality_unavailable" in field["description"]
    assert not any(tmp_path.iterdir())


def test_a_text_server_needs_a_text_expert(predictor):
    from avemo.serving import ServeSettings, create_app

    with pytest.raises(ConfigError, match="no text expert is attached"):
        create_app(predictor=predictor, settings=ServeSettings(modalities="audio,video,text"))
    with pytest.raises(ConfigError, match="text_model needs text among the modalities"):
        ServeSettings(text_model="some/run")
    with pytest.raises(ConfigError, match="modalities needs audio or video next to text"):
        ServeSettings(modalities="text")


def test_api_text_modality_gives_the_json_of_avemo_predict(predictor, make_clip, tmp_path, monkeypatch, serve_stub):
    """``avemo serve --modalities audio,video,text`` loads the bundled text expert as ``avemo predict``
    does; a request with modalities=...,text gets the very JSON that ``avemo predict -f json`` prints."""
    import json

    from fastapi.testclient import TestClient

    from avemo.inference.predictor import Predictor
    from avemo.serving import create_app
    from avemo.serving.schemas import PredictionOut

    monkeypatch.setattr(Predictor, "default", classmethod(lambda cls, **_: predictor))
    started = serve_stub
    result = _cli("serve", "--modalities", "audio,video,text", "--upload-dir", tmp_path)
    assert result.exit_code == 0, result.output
    settings, served = started["settings"], started["predictor"]
    assert settings.offered == ("audio", "video", "text") and served.text is not None and predictor.text is None

    clip = make_clip("api_text.mp4", duration=2.0, audio="speech")  # Whisper hears words in it
    cli = _cli("predict", clip, "--modalities", "audio,video,text", "--format", "json")
    assert cli.exit_code == 0, cli.output
    expected = json.loads(cli.stdout)
    assert expected["modalities"]["text"]["used"] is True and expected["transcript"]["text"]
    with TestClient(create_app(predictor=served, settings=settings), raise_server_exceptions=False) as client:
        assert client.get("/healthz").json()["modalities"] == ["audio", "video", "text"]
        assert client.get("/v1/models").json()["models"][0]["modalities"] == ["audio", "video", "text"]
        by_form = _post(client, clip, {"modalities": "audio,video,text"})
        assert by_form.status_code == 200, by_form.text
        body = by_form.json()
        assert body == {**expected, "path": clip.name}
        PredictionOut.model_validate(body)
        assert _post(client, clip, query="?modalities=audio,video,text").json() == body
        plain = _post(client, clip).json()  # text is used only when asked for
        assert "text" not in plain["modalities"] and "transcript" not in plain
        alone = _post(client, clip, {"modalities": "text"})
        assert alone.status_code == 422 and "text needs audio or video" in alone.json()["error"]["message"]
        field = client.get("/openapi.json").json()["paths"]["/v1/predict"]["post"]["requestBody"]
        pattern = field["content"]["multipart/form-data"]["schema"]["properties"]["modalities"]["pattern"]
        assert re.fullmatch(pattern, "audio,video,text")


# ----------------------------------------------------------------------------- the text expert
def test_label_map_is_explicit():
    ravdess = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
    m, notes = text_label_map(MELD, ravdess, {"calm": "neutral"})
    assert m.shape == (7, 8) and m.sum(axis=0).tolist() == [1] * 8
    assert m[MELD.index("joy"), ravdess.index("happy")] == 1 and notes["joy"] == "-> happy"
    assert m[MELD.index("neutral"), ravdess.index("calm")] == 1 and "neutral" in notes["calm"]
    crema = ("angry", "disgust", "fearful", "happy", "neutral", "sad")
    m, notes = text_label_map(MELD, crema, {})
    assert not m[MELD.index("surprise")].any() and notes["surprise"].startswith("dropped")
    with pytest.raises(ConfigError, match="no class for 'calm'"):
        text_label_map(MELD, ravdess, {})


def test_split_text():
    assert split_text(None) == (None, False)
    assert split_text("audio,video") == ("audio,video", False)
    assert split_text("audio, video,Text") == (["audio", "video"], True)
    assert split_text(["video", "text"]) == (["video"], True)
    with pytest.raises(ConfigError, match="text needs audio or video"):
        split_text("text")


def test_evidence_and_product():
    labels = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
    fusion = TextFusion(KeywordTextExpert({"great": "joy"}), labels, TextFusionConfig(weight=1.0))
    q = fusion.evidence(["great news", "", "the door"])
    assert np.isnan(q[1]).all() and np.allclose(q[[0, 2]].sum(axis=1), 1.0)
    assert labels[int(np.argmax(q[0]))] == "happy"
    assert q[0, 0] == pytest.approx(q[0, 1])  # calm takes neutral's evidence: the odds between them stay
    p = np.full((3, 8), 1 / 8, dtype=np.float32)
    fused = fusion.fuse(p, q)
    assert np.allclose(fused[1], p[1]) and np.allclose(fused[0], q[0], atol=1e-6)  # uniform p: q itself
    with pytest.raises(ConfigError, match="weight"):
        TextFusionConfig(weight=-1)


@pytest.mark.shared_data
def test_text_expert_is_off_by_default_and_on_with_the_flag(predictor, ravdess_video, clip_prediction):
    expert = KeywordTextExpert({"dogs": "joy", "door": "joy"})
    with pytest.raises(ConfigError, match="needs a text model"):
        predictor.predict(ravdess_video, modalities="audio,video,text")
    attached = predictor.with_text_expert(expert, TextFusionConfig(weight=1.0))
    assert predictor.text is None and attached.info()["text"]["label_map"]["joy"] == "-> happy"
    default = attached.predict(ravdess_video)
    assert "text" not in default.modalities and not expert.calls  # never used unless asked for
    assert default.probabilities == pytest.approx(clip_prediction.probabilities)
    with_text = attached.predict(ravdess_video, modalities="audio,video,text")
    status = with_text.modalities["text"]
    assert status.used and max(status.probabilities, key=status.probabilities.get) == "happy"
    assert with_text.transcript is not None and expert.calls[-1][0] == with_text.transcript.text
    assert with_text.probabilities["happy"] > clip_prediction.probabilities["happy"]
    d = with_text.to_dict()
    assert d["modalities"]["text"]["used"] is True and "transcript" in d
    # windows with words are moved towards happy, windows without keep their audio-visual product
    for fused, plain in zip(with_text.timeline, clip_prediction.timeline, strict=True):
        if {"dogs", "door"} & set(words_of(fused.text)):
            assert fused.probabilities["happy"] > plain.probabilities["happy"]
        elif not fused.text:
            assert fused.probabilities == pytest.approx(plain.probabilities, abs=1e-6)


def test_text_expert_without_speech_is_not_used(predictor, make_clip):
    attached = predictor.with_text_expert(KeywordTextExpert({"door": "joy"}))
    clip = make_clip("text_noise.mp4", duration=1.0, audio="noise")
    p = attached.predict(clip, modalities="audio,video,text")
    assert p.modalities["text"].used is False and p.modalities["text"].reason == "no speech was recognised"
    assert p.probabilities == pytest.approx(predictor.predict(clip).probabilities)


@pytest.mark.parametrize("said", ["", "the door is open"])
def test_text_expert_on_a_file_without_voice_or_face(predictor, make_clip, monkeypatch, said):
    """Silence in an audio file: no expert has evidence, so the text (which only adds to them) gives no
    emotion either, whatever the recogniser heard (it used to raise a TypeError: a traceback in the CLI,
    a 500 from the server)."""
    from avemo.features.audio.asr import Segment, Transcript, Word
    from avemo.inference.transcripts import Transcription

    words = tuple(Word(w, 0.1 * i, 0.1 * i + 0.1, 0.9) for i, w in enumerate(said.split()))
    heard = Transcript(said, "en", 0.9, (Segment(0.0, 0.4, said, words),)) if said else Transcript()
    monkeypatch.setattr(Transcription, "result", lambda self, warn: heard)  # what a recogniser may hallucinate
    attached = predictor.with_text_expert(KeywordTextExpert({"door": "joy"}))
    p = attached.predict(make_clip("text_silence.wav", duration=1.0, audio="silence"),
                         modalities="audio,video,text")
    assert p.emotion is None and p.probabilities is None and p.uncertain
    status = p.modalities["text"]
    assert status.used is False and status.probabilities is None
    assert status.reason == ("no speech was recognised" if not said else
                             "neither the voice nor the face gave evidence, and the text expert only adds to them")
    assert all(w.emotion is None for w in p.timeline)


def test_the_csv_and_json_say_where_the_text_expert_was_used(predictor, make_clip, monkeypatch):
    """The CSV's audio / video columns say whether each expert was used, its text column holds the words:
    with the text expert on, nothing said whether the text was used (a text_used column now, as the JSON)."""
    from avemo.features.audio.asr import Segment, Transcript, Word
    from avemo.inference.transcripts import Transcription

    words = (Word("the", 0.1, 0.3, 0.9), Word("door", 0.3, 0.4, 0.9))  # said in the first window only
    heard = Transcript("the door", "en", 0.9, (Segment(0.0, 0.4, "the door", words),))
    real = Transcription.result  # waited for (a recogniser thread left running aborts the process at exit)
    monkeypatch.setattr(Transcription, "result", lambda self, warn: (real(self, warn), heard)[1])
    attached = predictor.with_text_expert(KeywordTextExpert({"door": "joy"}))
    clip = make_clip("text_used.mp4", duration=2.0, size=(320, 240), fps=25, face=True, audio="speech")
    p = attached.predict(clip, modalities="audio,video,text")
    assert p.modalities["text"].used and [w.text_used for w in p.timeline] == [True, False, False]
    assert [w["text_used"] for w in p.to_dict()["timeline"]] == [True, False, False]
    assert list(p.timeline_frame()["text_used"]) == [True, False, False]
    rows = list(csv.DictReader(io.StringIO(formats.to_csv([p], predictor.labels))))
    assert [(r["level"], r["text"], r["text_used"]) for r in rows] == [
        ("clip", "the door", "True"), ("window", "the door", "True"), ("window", "", "False"), ("window", "", "False")]
    plain = predictor.predict(clip, transcribe=True)  # no text expert: no such column, key or field
    assert "text_used" not in formats.to_csv([plain]).splitlines()[0].split(",")
    assert all("text_used" not in w for w in plain.to_dict()["timeline"])
    assert "text_used" not in plain.timeline_frame().columns


def test_progress_is_the_slower_of_the_experts_and_the_recogniser(predictor, make_clip, monkeypatch):
    """On a long file the transcript takes longer than the experts: the progress used to reach 100 %
    when the experts ended and then say nothing while the recogniser went on (40 s on a 3-minute
    file). Here a recogniser that starts only once the experts are done: nothing may be reported
    beyond what it has decoded, and the file ends at its full length."""
    import threading

    from avemo.features.audio import asr

    clip = make_clip("progress_speech.wav", duration=3.0, audio="speech")
    experts_done, decoded, reports = threading.Event(), [0.0], []

    def slow_recogniser(path, language=None, progress=None, **_):
        experts_done.wait(60)
        for seconds in (1.0, 2.5):
            decoded.append(seconds)
            progress(seconds)
        decoded.append(float("inf"))  # returning: the whole track is done
        return asr.Transcript()

    run = predictor._backend.run

    def experts(*args):
        try:
            return run(*args)
        finally:
            experts_done.set()

    def report(done, total):
        reports.append((done, total))
        assert done <= max(decoded) + 1e-9, (done, decoded)

    monkeypatch.setattr(asr, "transcribe_file", slow_recogniser)
    monkeypatch.setattr(predictor._backend, "run", experts)
    p = predictor.predict(clip, transcribe=True, progress=report)
    assert p.transcript is not None and p.transcript.text == ""
    assert [d for d, _ in reports if d > 0] == [1.0, 2.5, p.duration] and reports[-1] == (p.duration, p.duration)


def test_ctrl_c_while_the_transcript_is_decoded_stops_the_recogniser(predictor, make_clip, monkeypatch):
    """Ctrl-C once the experts are done and the recogniser still decodes (most of the time of a long
    file): its thread was left running in native code, and `avemo predict` ended with "terminate
    called without an active exception" (SIGABRT) instead of exit code 130."""
    import threading
    import time

    from avemo.features.audio import asr
    from avemo.inference.transcripts import Transcription

    ended = threading.Event()

    def endless_recogniser(path, language=None, progress=None, **_):
        try:
            while True:
                progress(0.5)  # raises once the prediction is abandoned
                time.sleep(0.01)
        finally:
            ended.set()

    def interrupted(self, warn):
        raise KeyboardInterrupt  # what Ctrl-C raises in the thread that waits for the transcript

    monkeypatch.setattr(asr, "transcribe_file", endless_recogniser)
    monkeypatch.setattr(Transcription, "result", interrupted)
    with pytest.raises(KeyboardInterrupt):
        predictor.predict(make_clip("interrupted_speech.wav", duration=1.0, audio="speech"), transcribe=True)
    assert ended.is_set()  # stopped and waited for before the interrupt went on


def test_a_decoding_warning_is_said_once_with_a_transcript(predictor, tmp_path, caplog):
    """The recogniser decodes the track the audio expert decodes: what the decoder repaired (here
    channels of opposite polarity) is in the prediction's warnings once, and not logged again."""
    import logging

    import soundfile as sf

    from avemo.media.synth import synth_audio

    voice = synth_audio(1.5, 16000, "speech", seed=1)[:, 0]
    path = tmp_path / "inverted.wav"
    sf.write(path, np.stack([voice, -voice], axis=1), 16000, subtype="FLOAT")
    with caplog.at_level(logging.WARNING):
        p = predictor.predict(path, transcribe=True)
    assert p.modalities["audio"].used and sum("cancel each other" in w for w in p.warnings) == 1
    assert not [r for r in caplog.records if "cancel each other" in r.getMessage()]


def test_a_decoding_warning_is_said_by_the_recogniser_when_the_audio_expert_does_not_run(predictor, make_clip, tmp_path):
    """With the video alone (--modalities video --transcribe) the recogniser is the only decoder of the
    track: what it repaired is in the prediction's warnings, once."""
    import soundfile as sf

    from avemo.media.cut import cut_clip
    from avemo.media.synth import synth_audio

    voice = synth_audio(1.5, 16000, "speech", seed=1)[:, 0]
    sf.write(tmp_path / "inverted.wav", np.stack([voice, -voice], axis=1), 16000, subtype="FLOAT")
    video = make_clip("face_no_audio.mp4", duration=1.6, audio=None)
    clip = cut_clip(video, tmp_path / "inverted.mkv", start=0.0, end=1.5, audio=tmp_path / "inverted.wav").path
    p = predictor.predict(clip, modalities="video", transcribe=True)
    assert not p.modalities["audio"].used and sum("cancel each other" in w for w in p.warnings) == 1


# ----------------------------------------------------------------------------- the CLI
def _cli(*args):
    from typer.testing import CliRunner

    from avemo.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_transcribe_json_and_csv(predictor, make_clip, monkeypatch):
    import json

    from avemo.inference.predictor import Predictor

    monkeypatch.setattr(Predictor, "default", classmethod(lambda cls, **_: predictor))
    clip = make_clip("cli_noise.mp4", duration=1.0, audio="noise")
    result = _cli("predict", clip, "--transcribe", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["transcript"] == {"text": "", "language": None, "language_probability": None, "words": []}
    assert all(w["text"] == "" for w in data["timeline"])
    result = _cli("predict", clip, "--transcribe", "--format", "csv")
    assert result.exit_code == 0 and result.stdout.splitlines()[0].endswith(",uncertain,text,crowd")
    plain = _cli("predict", clip, "--format", "json")
    assert plain.exit_code == 0 and "transcript" not in json.loads(plain.stdout)


def test_cli_table_of_a_file_without_audio_says_there_is_nothing_to_transcribe(predictor, make_clip, monkeypatch):
    """Under "audio: not used: the file has no audio track" the table said "transcript: no speech recognised",
    as if the track had been listened to."""
    from avemo.inference.predictor import Predictor

    monkeypatch.setattr(Predictor, "default", classmethod(lambda cls, **_: predictor))
    result = _cli("predict", make_clip("face_no_audio.mp4", duration=1.6, audio=None), "--transcribe")
    assert result.exit_code == 0, result.output
    assert "audio: not used: the file has no audio track" in result.stdout
    assert "transcript: none, no audio to transcribe" in result.stdout and "no speech recognised" not in result.stdout
    # the voice not asked for either: the file still has no track to listen to (the reason was "not requested")
    result = _cli("predict", make_clip("face_no_audio.mp4", duration=1.6, audio=None), "--transcribe",
                  "--modalities", "video")
    assert result.exit_code == 0, result.output
    assert "audio: not used: the file has no audio track" in result.stdout
    assert "transcript: none, no audio to transcribe" in result.stdout and "no speech recognised" not in result.stdout


def test_cli_text_modality_with_a_text_model(predictor, make_clip, text_checkpoint, monkeypatch, tmp_path):
    import json

    from avemo.inference import text_emotion
    from avemo.inference.predictor import Predictor

    monkeypatch.setattr(Predictor, "default", classmethod(lambda cls, **_: predictor))
    clip = make_clip("cli_text.mp4", duration=1.0, audio="noise")
    result = _cli("predict", clip, "--modalities", "audio,video,text", "--text-model", text_checkpoint, "-f", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["modalities"]["text"] == {"used": False, "reason": "no speech was recognised", "probabilities": None}
    assert data["transcript"]["text"] == ""
    monkeypatch.setattr(text_emotion, "DEFAULT_TEXT_MODEL", tmp_path / "none")  # a package without a text model
    result = _cli("predict", clip, "--modalities", "audio,video,text")
    assert result.exit_code != 0 and "--text-model" in str(result.exception)


def test_cli_refuses_a_text_model_without_the_text_modality(make_clip, text_checkpoint, tmp_path):
    """``--text-model RUN`` without text among --modalities was loaded and never used, without a word (the
    output had no text); refused before any work, as ``avemo serve`` refuses it."""
    clip = make_clip("cli_text.mp4", duration=1.0, audio="noise")
    out = tmp_path / "r.json"
    for modalities in ((), ("--modalities", "audio")):
        result = _cli("predict", clip, "--text-model", text_checkpoint, *modalities, "--out", out)
        assert result.exit_code != 0 and not out.exists()
        expected = "audio,text" if modalities else "audio,video,text"
        assert str(result.exception).endswith(f"add it, e.g. --modalities {expected}")


# ----------------------------------------------------------------------------- a zoo text checkpoint
@pytest.fixture(scope="module")
def text_checkpoint(tmp_path_factory):
    """A text-only gao_dialogue on MiniLM sentence embeddings, random weights, saved as a trainer checkpoint."""
    import torch

    from avemo.datasets.labels import MELD as MELD_LABELS
    from avemo.models import create_model
    from avemo.models.checkpoint import save_checkpoint
    from avemo.models.normalization import Normalizer

    torch.manual_seed(0)
    model = create_model("gao_dialogue", num_classes=len(MELD_LABELS), modalities=["text"], context=0,
                         text_kind="vector", text_feature="minilm")
    norm = Normalizer(kinds={"text": "vector"}, mean={"text": np.zeros(384, np.float32)},
                      std={"text": np.ones(384, np.float32)})
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "text", model, labels=MELD_LABELS, normalizer=norm)


def test_zoo_text_checkpoint_is_a_text_expert(text_checkpoint):
    from avemo.inference.text import load_text_expert

    expert = load_text_expert(text_checkpoint)
    assert expert.labels == ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised")
    z = expert.logits(["Dogs are sitting by the door.", "I am so happy for you!"])
    assert z.shape == (2, 7) and np.isfinite(z).all() and not np.allclose(z[0], z[1])
    fusion = TextFusion(expert, ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"))
    assert fusion.notes == {"calm": "takes the evidence of 'neutral' (the text model has no 'calm')"}


def test_a_checkpoint_that_needs_text_as_the_model_is_refused_naming_the_text_expert(text_checkpoint, tmp_path,
                                                                                     avemo_main, make_clip):
    """A checkpoint whose model needs text, as ``--model``: refused when it loads, in one line naming what it
    needs and how text joins a prediction (``--text-model``). A text-only one failed on every file ("takes
    text, which this file cannot give", with --transcribe too); a text + audio one ran without its text
    and said "no emotion (no speech ...)" of a clip full of speech."""
    from avemo.datasets.labels import MELD as MELD_LABELS
    from avemo.errors import CheckpointError
    from avemo.inference.predictor import Predictor
    from avemo.models import create_model
    from avemo.models.checkpoint import save_checkpoint
    from avemo.models.normalization import Normalizer

    model = create_model("gao_dialogue", num_classes=7, modalities=["text", "audio"], context=0,
                         text_kind="vector", text_feature="minilm")
    both = save_checkpoint(tmp_path / "text_audio", model, labels=MELD_LABELS, normalizer=Normalizer(kinds={}))
    for path, inputs in ((text_checkpoint, "text"), (both, "audio, text")):
        with pytest.raises(CheckpointError, match=rf"the model \(gao_dialogue\) needs text \(its inputs: {inputs}\)"):
            Predictor.from_checkpoint(path, device="cpu")
    code, out, err = avemo_main("predict", make_clip("voice.wav", duration=1.0), "--model", both, "--transcribe")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith(f"avemo: error: --model {both}: ") and "--text-model RUN" in err


def test_a_model_with_other_inputs_is_refused(tmp_path):
    from avemo.datasets.labels import MELD as MELD_LABELS
    from avemo.errors import CheckpointError
    from avemo.inference.text import load_text_expert
    from avemo.models import create_model
    from avemo.models.checkpoint import save_checkpoint
    from avemo.models.normalization import Normalizer

    model = create_model("gao_dialogue", num_classes=7, modalities=["text", "audio"], context=0,
                         text_kind="vector", text_feature="minilm")
    path = save_checkpoint(tmp_path / "av", model, labels=MELD_LABELS, normalizer=Normalizer(kinds={}))
    with pytest.raises(CheckpointError, match="not a text-only model"):
        load_text_expert(path)


def test_the_bundled_text_model_is_the_default_text_expert():
    from avemo.inference.text import load_text_expert

    expert = load_text_expert()
    assert expert.labels == ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised")
    fusion = TextFusion(expert, ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"))
    q = fusion.evidence(["Dogs are sitting by the door.", ""])
    assert np.allclose(q[0].sum(), 1.0) and q[0, 0] == pytest.approx(q[0, 1]) and np.isnan(q[1]).all()
