"""Parts of avemo.inference that need no model: windows, fusion, decisions, formats, inputs, bundle files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from avemo.errors import CheckpointError, ConfigError
from avemo.inference import formats
from avemo.inference.bundle import BundleConfig, read_bundle, write_bundle_meta
from avemo.inference.fusion import FusionConfig, decide, fusion_inputs, product_of_experts
from avemo.inference.inputs import collect_media
from avemo.inference.result import ModalityStatus, Prediction, WindowPrediction
from avemo.inference.windows import WindowGrid, window_members
from avemo.modality import parse_modalities

LABELS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")


# ----------------------------------------------------------------------------- windows
@pytest.mark.parametrize(
    ("duration", "expected"),
    [
        (4.0, [(0, 1), (0.5, 1.5), (1, 2), (1.5, 2.5), (2, 3), (2.5, 3.5), (3, 4)]),
        (0.2, [(0, 0.2)]),  # shorter than one window: the whole clip
        (1.0, [(0, 1)]),
        (2.24, [(0, 1), (0.5, 1.5), (1, 2), (1.5, 2.24)]),  # last one cut short but >= half a window
        (2.3, [(0, 1), (0.5, 1.5), (1, 2), (1.5, 2.3)]),
    ],
)
def test_window_bounds(duration, expected):
    bounds = WindowGrid(1.0, 0.5).bounds(duration)
    np.testing.assert_allclose(bounds, np.array(expected, dtype=float))


def test_window_bounds_drop_a_short_tail_and_support_other_grids():
    # 2.1 s with 1 s hops: [2, 2.1) spans a tenth of a window and is dropped
    np.testing.assert_allclose(WindowGrid(1.0, 1.0).bounds(2.1), [[0, 1], [1, 2]])
    bounds = WindowGrid(2.0, 0.25).bounds(3.0)
    assert bounds[0].tolist() == [0, 2] and bounds[-1][1] == pytest.approx(3.0)
    assert np.allclose(np.diff(bounds[:, 0]), 0.25)


@pytest.mark.parametrize("bad", [dict(window=0), dict(hop=-1), dict(window=float("nan")), dict(min_fraction=0)])
def test_window_grid_rejects_bad_values(bad):
    with pytest.raises(ConfigError):
        WindowGrid(**bad)


@pytest.mark.parametrize("name", ["window", "hop"])
@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_an_infinite_or_nan_window_is_no_length_of_time(name, value):
    """inf was refused as "a positive number of seconds", which it is."""
    with pytest.raises(ConfigError, match=f"^{name} must be a finite positive number of seconds, got {value!r}$"):
        WindowGrid(**{name: value})


def test_a_hop_longer_than_the_window_is_refused_and_a_window_alone_takes_a_hop_that_fits():
    """A hop over the window left gaps in the timeline ([0, 1), [2, 3), ...); the server refused it
    (422) while the CLI and the Python API took it. The grid itself refuses it now."""
    with pytest.raises(ConfigError, match=r"^hop must be at most the window \(1 s; a longer one leaves gaps "
                                          r"between the windows\), got 2$"):
        WindowGrid(1.0, 2.0)
    with pytest.raises(ConfigError, match=r"^window must be at least 0.01 s"):
        WindowGrid(0.005, 0.01)
    assert WindowGrid(1.0, 1.0).hop == 1.0  # end to end is fine
    model = WindowGrid(1.0, 0.5)
    assert model.with_options() == model
    assert model.with_options(window=2.0) == WindowGrid(2.0, 0.5)  # the model's hop fits: kept
    assert model.with_options(window=0.3) == WindowGrid(0.3, 0.3)  # it would not: the window's own
    assert model.with_options(hop=0.25) == WindowGrid(1.0, 0.25)
    # a hop alone is checked against the model's window: the message says whose window it is, and how to change it
    with pytest.raises(ConfigError, match=r"^hop must be at most the model's window of 1 s \(pass window= to change "
                                          r"it; a longer hop leaves gaps between the windows\), got 1.5$"):
        model.with_options(hop=1.5)
    with pytest.raises(ConfigError, match=r"^hop must be at most the model's window of 1 s \(pass --window to"):
        model.with_options(hop=1.5, window_option="--window")
    with pytest.raises(ConfigError, match=r"^hop must be at most the window \(2 s;"):  # the caller's own window
        model.with_options(window=2.0, hop=3.0)
    with pytest.raises(ConfigError, match="^hop must be a finite positive number of seconds, got inf$"):  # not too long
        model.with_options(hop=float("inf"))
    with pytest.raises(ConfigError, match="^window must be a finite positive number of seconds, got nan$"):
        model.with_options(window=float("nan"))
    np.testing.assert_allclose(model.with_options(window=0.3).bounds(0.9), [[0, 0.3], [0.3, 0.6], [0.6, 0.9]])


def test_window_members_overlap_and_half_open():
    times = np.array([0.0, 0.4, 0.5, 0.99, 1.0, 1.7])
    members = window_members(times, np.array([[0, 1], [0.5, 1.5], [1.5, 2.0], [3, 4]]))
    assert [m.tolist() for m in members] == [[0, 1, 2, 3], [2, 3, 4], [5], []]


# ----------------------------------------------------------------------------- fusion
def _reference_fusion(audio_logits, video_probs, present, c: FusionConfig):
    """The docstring's formula, written independently in numpy."""
    def log_softmax(z):
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    w = present * np.array([c.audio_weight, c.video_weight])
    w = w / np.maximum(w.max(axis=1, keepdims=True), 1e-7)  # relative to the strongest expert present
    s = (w[:, :1] * log_softmax(audio_logits / c.audio_temperature)
         + w[:, 1:] * log_softmax(np.log(np.clip(video_probs, 1e-7, 1)) / c.video_temperature))
    p = np.exp(s - s.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def test_product_of_experts_matches_formula_and_drops_missing_terms():
    import torch

    config = FusionConfig(audio_weight=1.0, video_weight=0.5, audio_temperature=1.7, video_temperature=1.3)
    rng = np.random.default_rng(0)
    a = rng.normal(0, 3, (5, 8)).astype(np.float32)
    v = rng.dirichlet(np.ones(8), 5).astype(np.float32)
    present = np.array([[1, 1], [1, 0], [0, 1], [1, 1], [0, 1]], dtype=np.float32)
    with torch.no_grad():
        out = product_of_experts(config)(torch.from_numpy(a), torch.from_numpy(v), torch.from_numpy(present)).numpy()
    np.testing.assert_allclose(out, _reference_fusion(a, v, present, config), atol=1e-6)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-6)
    # a lone expert gives its own calibrated distribution: audio = softmax(z / 1.7), video = p ** (1 / 1.3)
    tempered = np.exp(a[1] / 1.7) / np.exp(a[1] / 1.7).sum()
    np.testing.assert_allclose(out[1], tempered, atol=1e-6)
    powered = v[2] ** (1 / 1.3) / (v[2] ** (1 / 1.3)).sum()
    np.testing.assert_allclose(out[2], powered, atol=1e-6)
    # both: audio weight 1, video weight 0.5, as configured
    both = np.exp(a[0] / 1.7) / np.exp(a[0] / 1.7).sum() * (v[0] ** (1 / 1.3) / (v[0] ** (1 / 1.3)).sum()) ** 0.5
    np.testing.assert_allclose(out[0], both / both.sum(), atol=1e-6)


def test_a_long_files_clip_audio_term_is_the_mean_of_its_voiced_windows():
    """A file of one encoder pass is read whole (as the head was trained); a longer one from the windows
    with speech, as log-probabilities, since its whole-file embedding is mostly silence."""
    from types import SimpleNamespace

    from avemo.inference.audio import PASS_SECONDS
    from avemo.inference.backends import clip_audio_logits, softmax, voiced_mean

    rng = np.random.default_rng(1)
    windows = rng.normal(0, 2, (6, 4)).astype(np.float32)
    windows[[0, 1, 5]] = np.nan  # no speech there: no audio term
    whole = rng.normal(0, 2, 4).astype(np.float32)
    short = SimpleNamespace(duration=PASS_SECONDS, clip_logits=whole)
    np.testing.assert_array_equal(clip_audio_logits(short, windows), whole[None])
    long = SimpleNamespace(duration=PASS_SECONDS + 20, clip_logits=whole)
    term = clip_audio_logits(long, windows)
    assert term.shape == (1, 4)
    np.testing.assert_allclose(np.exp(term[0]), softmax(windows[2:5]).mean(axis=0), rtol=1e-5)
    silent = np.full_like(windows, np.nan)  # no window voted: the whole file's term
    np.testing.assert_array_equal(clip_audio_logits(long, silent), whole[None])
    # a zoo checkpoint's windows: probabilities, and which ones had an audio vote
    probs, voiced = softmax(windows), np.array([0, 0, 1, 0, 1, 0], bool)
    np.testing.assert_allclose(voiced_mean(probs, voiced, PASS_SECONDS + 1), probs[[2, 4]].mean(axis=0))
    assert voiced_mean(probs, voiced, PASS_SECONDS) is None


def test_fusion_inputs_mark_nan_rows_and_absent_experts():
    audio = np.ones((3, 8), np.float32)
    audio[1] = np.nan
    inputs = fusion_inputs(audio, None, 3, 8)
    assert inputs["present"].tolist() == [[1, 0], [0, 0], [1, 0]]
    assert not np.isnan(inputs["audio_logits"]).any() and inputs["video_probs"].shape == (3, 8)


@pytest.mark.parametrize("bad", [dict(video_weight=-0.1), dict(audio_temperature=0), dict(video_temperature=-1)])
def test_fusion_config_rejects_bad_values(bad):
    with pytest.raises(ConfigError):
        FusionConfig(**bad)


def test_decide_merges_calm_into_neutral_without_audio():
    p = np.array([0.25, 0.25, 0.3, 0.05, 0.05, 0.05, 0.03, 0.02])
    assert decide(p, LABELS) == "happy"
    assert decide(p, LABELS, calm_decided=False) == "neutral"  # neutral + calm = 0.5 > happy
    p2 = np.array([0.1, 0.3, 0.35, 0.05, 0.05, 0.05, 0.05, 0.05])
    assert decide(p2, LABELS, calm_decided=False) == "neutral"  # never "calm" without audio
    assert decide(p2, LABELS) == "happy"


def test_parse_modalities():
    assert parse_modalities(None) == ("audio", "video")
    assert parse_modalities("video, audio") == ("audio", "video")
    assert parse_modalities(["VIDEO"]) == ("video",)
    assert parse_modalities("audio,text") == ("audio", "text")
    for bad in ("", "face", "audio,visual"):
        with pytest.raises(ConfigError):
            parse_modalities(bad)


# ----------------------------------------------------------------------------- formats
def _prediction(path="a.mp4", n_windows=3) -> Prediction:
    probs = dict(zip(LABELS, [0.05, 0.05, 0.6, 0.1, 0.05, 0.05, 0.05, 0.05], strict=True))
    windows = tuple(
        WindowPrediction(start=0.5 * k, end=0.5 * k + 1, emotion="happy" if k < 2 else "sad",
                         probabilities=probs, audio=True, video=k != 1)
        for k in range(n_windows)
    )
    return Prediction(path=path, duration=2.0, emotion="happy", probabilities=probs,
                      modalities={"audio": ModalityStatus(True, None, probs),
                                  "video": ModalityStatus(False, "no face detected in any of the 16 analysed frames")},
                      face_coverage=0.0, timeline=windows, model={"name": "m", "version": "1", "engine": "torch"})


def test_json_single_object_or_list():
    one = json.loads(formats.to_json([_prediction()], single=True))
    assert one["emotion"] == "happy" and len(one["timeline"]) == 3
    assert one["modalities"]["video"] == {"used": False, "reason": "no face detected in any of the 16 analysed frames",
                                          "probabilities": None}
    many = json.loads(formats.to_json([_prediction("a.mp4"), _prediction("b.wav")], single=False))
    assert [m["path"] for m in many] == ["a.mp4", "b.wav"]


def test_csv_has_a_clip_row_then_one_row_per_window():
    rows = list(csv.DictReader(io.StringIO(formats.to_csv([_prediction("a.mp4"), _prediction("b.mp4", 1)]))))
    assert [r["level"] for r in rows] == ["clip", "window", "window", "window", "clip", "window"]
    assert list(rows[0]) == formats.csv_columns(LABELS)
    assert rows[0]["end"] == "2.0" and rows[0]["video"] == "False" and rows[2]["video"] == "False"
    assert float(rows[0]["happy"]) == pytest.approx(0.6)
    assert rows[3]["emotion"] == "sad" and rows[3]["start"] == "1.0"


def test_csv_ends_with_the_crowd_score_of_each_window():
    from dataclasses import replace

    plain = _prediction()
    crowded = replace(plain, timeline=tuple(replace(w, crowd=score)
                                            for w, score in zip(plain.timeline, (0.1234, None, 0.9), strict=True)))
    columns = formats.csv_columns(LABELS)
    assert columns[-1] == "crowd" and columns[:-1] == [  # added at the end: the other columns keep their places
        "path", "level", "start", "end", "emotion", *LABELS, "audio", "video", "face_coverage", "speech", "uncertain"]
    assert formats.csv_columns(LABELS, text=True)[-2:] == ["text", "crowd"]
    rows = list(csv.DictReader(io.StringIO(formats.to_csv([crowded, plain]))))
    assert [r["crowd"] for r in rows] == ["", "0.123", "", "0.900", "", "", "", ""]  # clip rows: empty
    assert [w.get("crowd") for w in crowded.to_dict()["timeline"]] == [0.123, None, 0.9]  # as in the JSON


def test_table_and_runs_say_crowd_where_the_crowd_gate_took_the_voice_out():
    from dataclasses import replace

    from rich.console import Console

    quiet = _no_emotion()
    babble = replace(quiet, model={**quiet.model, "crowd_threshold": 0.8},
                     timeline=tuple(replace(w, speech=0.9, crowd=score, crowd_gated=score >= 0.8)
                                    for w, score in zip(quiet.timeline, (0.95, 0.85, 0.3), strict=True)))
    assert [w.to_dict()["crowd_gated"] for w in babble.timeline] == [True, True, False]
    assert [(e, n) for _, _, e, _, n in formats.runs(babble)] == [("crowd", 2), ("no speech", 1)]
    # the gate's decision, not the score, says why: a window below the threshold in a clip that is
    # mostly a crowd lost its voice to the clip's decision
    clip = replace(babble, timeline=tuple(replace(w, crowd_gated=True) for w in babble.timeline))
    assert [(e, n) for _, _, e, _, n in formats.runs(clip)] == [("crowd", 3)]
    console = Console(file=io.StringIO(), width=140, no_color=True)
    formats.render(babble, console)
    rows = [line for line in console.file.getvalue().splitlines() if line.startswith(("│ 0", "│ 1"))]
    assert len(rows) == 3 and "crowd" in rows[0] and "95 %" in rows[0] and "no speech" in rows[2]


def test_runs_merge_consecutive_windows_of_one_emotion():
    assert [(a, b, e, n) for a, b, e, _, n in formats.runs(_prediction(n_windows=4))] == [
        (0.0, 1.5, "happy", 2), (1.0, 2.5, "sad", 2)]


def test_table_render_names_missing_modality_and_reason():
    from rich.console import Console

    console = Console(file=io.StringIO(), width=120, no_color=True)
    formats.render(_prediction(), console)
    text = console.file.getvalue()
    assert "a.mp4 (2.0 s): happy (60 %)" in text
    assert "video: not used: no face detected in any of the 16 analysed frames" in text
    assert "timeline" in text and text.count("happy") >= 3


def test_table_headline_and_modality_lines_are_not_broken_at_the_console_width():
    from dataclasses import replace

    from rich.console import Console

    path = "/data/interviews/a folder with a long name/" + "x" * 40 + ".mp4"
    flagged = replace(_prediction(), path=path, uncertain=True)
    console = Console(file=io.StringIO(), width=80, no_color=True)  # what a pipe or a log gets
    formats.render(flagged, console)
    formats.render(replace(_no_emotion(), path=path), console)
    lines = console.file.getvalue().splitlines()
    assert f"{path} (2.0 s): happy (60 %) ? uncertain" in lines
    assert f"{path} (2.0 s): no emotion (no speech, and no face the model could read on its own)" in lines
    assert "  video: not used: no face detected in any of the 16 analysed frames" in lines


# ----------------------------------------------------------------------------- inputs and bundle files
def test_collect_media_walks_folders_and_reports_empty_ones(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.mp4").write_bytes(b"1")
    (tmp_path / "a" / "sub").mkdir()
    (tmp_path / "a" / "sub" / "y.WAV").write_bytes(b"1")
    (tmp_path / "a" / "notes.txt").write_text("not media")
    (tmp_path / "empty").mkdir()
    files, problems, repeats = collect_media([tmp_path / "a", tmp_path / "a" / "x.mp4", tmp_path / "missing.mp4",
                                              tmp_path / "empty"])
    assert [f.name for f in files] == ["y.WAV", "x.mp4", "missing.mp4"]  # sorted paths, no duplicate, missing kept
    assert problems == [(str(tmp_path / "empty"), problems[0][1])] and "no media files" in problems[0][1]
    assert repeats == [(str(tmp_path / "a" / "x.mp4"), "given twice: predicted once")]  # in its folder, and alone


@pytest.mark.parametrize("seconds", [0.5, 6.0, 6.5, 11.0, 65.3])
def test_encoder_passes_give_every_frame_once_near_the_start_of_a_pass(seconds):
    """The encoder passes (the audio expert's and the whisper_base extractor's): each 20 ms frame once, in order, from a pass that holds it,
    at most 5 s into it (6 s in the last pass); a file of at most 6 s is one pass (the trainer's view)."""
    from avemo.features.audio.whisper_passes import (
        CONTEXT_SECONDS,
        PASS_SECONDS,
        encoder_passes,
        signal_passes,
    )

    signal = np.arange(int(seconds * 16000), dtype=np.float32)  # each sample its own index
    passes = list(encoder_passes(signal[i : i + 64000] for i in range(0, len(signal), 64000)))
    given = [segment[::320][skip : None if keep is None else skip + keep] for segment, skip, keep in passes]
    np.testing.assert_array_equal(np.concatenate(given), signal[::320])  # the first sample of each frame
    assert all(len(segment) <= PASS_SECONDS * 16000 for segment, _, _ in passes)
    assert all((skip + keep) * 0.02 <= PASS_SECONDS - CONTEXT_SECONDS for _, skip, keep in passes[:-1])
    assert (len(passes) == 1) == (seconds <= PASS_SECONDS)
    held = list(signal_passes(signal))  # the extractor's: the signal held whole, fed in other blocks
    assert [(skip, keep) for _, skip, keep in held] == [(skip, keep) for _, skip, keep in passes]
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(held, passes, strict=True))


def test_collect_media_finds_what_phones_and_browsers_record(tmp_path):
    """A folder of an Android phone's .3gp videos, Matroska audio (.mka) or a browser's WebM audio (.weba) was
    "no media files", although each file given alone is predicted (its container is read from its bytes)."""
    for name in ("call.3gp", "voice.mka", "note.weba"):
        (tmp_path / name).write_bytes(b"1")
    files, problems, _ = collect_media([tmp_path])
    assert sorted(f.name for f in files) == ["call.3gp", "note.weba", "voice.mka"] and problems == []


def test_collect_media_keeps_a_second_name_of_a_file(tmp_path, monkeypatch):
    """A symlink given next to its target used to vanish from the results without a word; the same path
    given twice (also spelt differently) still counts once."""
    (tmp_path / "a.wav").write_bytes(b"1")
    (tmp_path / "link.wav").symlink_to(tmp_path / "a.wav")
    monkeypatch.chdir(tmp_path)
    files, _, repeats = collect_media(["a.wav", tmp_path / "link.wav", tmp_path / "a.wav", "./link.wav", "a.wav"])
    assert [str(f) for f in files] == ["a.wav", str(tmp_path / "link.wav")]
    assert repeats == [("a.wav", f"given 3 times, also as {tmp_path / 'a.wav'}: predicted once"),
                       (str(tmp_path / "link.wav"), "given twice, also as link.wav: predicted once")]


def test_bundle_meta_round_trip_and_refusals(tmp_path):
    config = BundleConfig(labels=LABELS, fusion=FusionConfig(audio_temperature=1.5))
    write_bundle_meta(tmp_path, config, {"metrics": {"x": 1}})
    read, meta = read_bundle(tmp_path)
    assert read == config and meta["metrics"] == {"x": 1}
    with pytest.raises(CheckpointError, match="no model.json"):
        read_bundle(tmp_path / "nowhere")
    (tmp_path / "model.json").write_text('{"format": "something.else"}')
    with pytest.raises(CheckpointError, match="not a predictor bundle"):
        read_bundle(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="unreadable"):
        read_bundle(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({"format": "avemo.predictor", "format_version": 1,
                                                      "config": {"fusion": {"video_weight": -1}}}))
    with pytest.raises(CheckpointError, match="video_weight"):
        read_bundle(tmp_path)


# ----------------------------------------------------------------------------- backends
def test_zoo_backend_decodes_each_audio_input_at_its_own_sample_rate(make_clip):
    """A checkpoint whose audio inputs ask for different sample rates gets each at its own rate
    (one rate used to be picked for all of them), on the clip and on every window."""
    from types import SimpleNamespace

    from avemo.features import get_extractor
    from avemo.inference.backends import Streams, ZooBackend
    from avemo.media import probe
    from avemo.models import InputSpec

    specs = {"a8": InputSpec("audio", "logmel", {"sample_rate": 8000, "n_mels": 32}, (None, 32), "sequence"),
             "a16": InputSpec("audio", "logmel", {"sample_rate": 16000, "n_mels": 32}, (None, 32), "sequence")}
    seen = []

    class Runner:
        ckpt = SimpleNamespace(model=SimpleNamespace(name="two_rates"))

        def __init__(self):
            self.specs = specs

        def logits(self, arrays):
            seen.append({k: v[0] for k, v in arrays.items()})
            return np.zeros((1, 2), dtype=np.float32)

    path = make_clip("rates.wav", duration=2.0, audio="tone")
    backend = ZooBackend(Runner(), ("a", "b"))
    result = backend.run(path, probe(path), Streams({"audio": True, "video": False}, {"video": "not requested"}),
                         WindowGrid(1.0, 1.0), None)
    for name, spec in specs.items():
        expected = get_extractor(spec.feature, **spec.config).extract(path)["x"]
        np.testing.assert_allclose(seen[0][name], expected, rtol=1e-5, atol=1e-5)  # the clip
    assert seen[1]["a8"].shape[0] == seen[1]["a16"].shape[0]  # a 1 s window: 100 frames at either rate
    assert result.windows.present["audio"].all() and not result.windows.present["video"].any()


def _no_emotion(path="quiet.wav") -> Prediction:
    windows = tuple(WindowPrediction(start=0.5 * k, end=0.5 * k + 1, emotion=None, probabilities=None, audio=False,
                                     video=False, uncertain=True, speech=0.0) for k in range(3))
    return Prediction(path=path, duration=2.0, emotion=None, probabilities=None,
                      modalities={"audio": ModalityStatus(False, "no speech detected in the 2.0 s of audio"),
                                  "video": ModalityStatus(False, "an audio-only file (no video stream)")},
                      face_coverage=None, timeline=windows, model={"name": "m", "version": "1", "engine": "torch"},
                      uncertain=True, speech=0.0)


def test_uncertain_and_no_emotion_in_json_csv_and_table():
    from dataclasses import replace

    from rich.console import Console

    flagged = replace(_prediction(), uncertain=True, speech=0.8,
                      timeline=tuple(replace(w, uncertain=k == 2, speech=0.9) for k, w in enumerate(_prediction().timeline)))
    data = json.loads(formats.to_json([flagged, _no_emotion()], single=False))
    assert data[0]["uncertain"] is True and data[0]["speech"] == 0.8
    assert [w["uncertain"] for w in data[0]["timeline"]] == [False, False, True]
    assert data[1]["emotion"] is None and data[1]["probabilities"] is None and data[1]["timeline"][0]["speech"] == 0.0
    rows = list(csv.DictReader(io.StringIO(formats.to_csv([_no_emotion(), flagged]))))
    assert list(rows[0]) == formats.csv_columns(LABELS)  # the labels come from a result that has them
    assert rows[0]["emotion"] == "" and rows[0]["happy"] == "" and rows[0]["uncertain"] == "True"
    assert rows[0]["speech"] == "0.000" and rows[1]["level"] == "window" and rows[1]["emotion"] == ""
    assert rows[4]["uncertain"] == "True" and rows[4]["speech"] == "0.800"
    console = Console(file=io.StringIO(), width=140, no_color=True)
    formats.render(flagged, console)
    formats.render(_no_emotion(), console)
    text = console.file.getvalue()
    assert "a.mp4 (2.0 s): happy (60 %) ? uncertain" in text and "sad ?" in text
    assert "quiet.wav (2.0 s): no emotion (no speech, and no face" in text and "no speech" in text
    # a reason with brackets of its own is not wrapped in more: "video: not used (an audio-only file (no video stream))"
    assert "  video: not used: an audio-only file (no video stream)" in text.splitlines() and "))" not in text
    assert [r[2] for r in formats.runs(_no_emotion())] == [formats.NO_EMOTION]


def test_a_copy_of_a_failed_file_says_why_without_brackets_in_brackets():
    """A grouped batch's copy of a file that failed read "REASON (the same content as ...: predicted once (...))"."""
    from avemo.cli.predict import _with_copies
    from avemo.inference.predictor import Outcome

    failed = Outcome("a.wav", reason="has no audio track")
    outcomes = list(_with_copies([failed], [Path("a.wav"), Path("b.wav")], {1: 0}))
    assert outcomes[1].path == "b.wav" and outcomes[1].reason == (
        "has no audio track; the same content as a.wav: predicted once (a clip counts once toward its speaker's clips)")


def test_predicting_a_file_from_text_is_a_one_line_config_error(tmp_path):
    from avemo.inference.predictor import _streams

    with pytest.raises(ConfigError, match="predicted from its audio and video streams, not from text"):
        _streams(tmp_path / "a.mp4", None, ("audio", "text"))
