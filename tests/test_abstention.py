"""Knowing when it doesn't know (issue 11 §2): speech gating, the uncertainty flag, calibration,
and bundles whose label set is not the 8 RAVDESS emotions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from avemo.datasets.labels import FER2013, RAVDESS, LabelSet, fer_to_labels, fer_to_labels_matrix
from avemo.errors import CheckpointError, ConfigError
from avemo.features.audio.vad import VadConfig
from avemo.inference.abstention import AbstentionConfig, speech_gate, uncertain
from avemo.inference.bundle import BUNDLE_DIR, BundleConfig, read_bundle, write_bundle_meta
from avemo.inference.calibration import fit_temperature, fit_threshold, scaled

SHARED6 = ("neutral", "happy", "sad", "angry", "fearful", "disgust")  # the labels RAVDESS and EmoDB share


# ----------------------------------------------------------------------------- units
def test_uncertain_flags_low_top_probability_and_missing_rows():
    probs = np.array([[0.6, 0.4], [0.45, 0.55], [0.5, 0.5], [np.nan, np.nan]])
    assert uncertain(probs, 0.5).tolist() == [False, False, False, True]
    assert uncertain(probs, 0.56).tolist() == [False, True, True, True]
    assert uncertain(probs, 0.0).tolist() == [False, False, False, True]
    assert bool(uncertain(np.array([0.2, 0.3, 0.5]), 0.6))


def test_speech_gate_and_config_validation():
    assert speech_gate(np.array([0.0, 0.49, 0.5, 1.0]), 0.5).tolist() == [False, False, True, True]
    assert speech_gate(np.array([0.0, 0.1]), 0.0).all()  # 0: every window votes
    for bad in ({"tau": 1.5}, {"tau": -0.1}, {"speech_share": 2.0}, {"min_speech": -0.1},
                {"min_speech": float("nan")}, {"min_speech": float("inf")}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            AbstentionConfig(**bad)
    assert AbstentionConfig(min_speech=0.0).min_speech == 0.0  # 0: any speech at all will do


def test_min_speech_is_read_from_model_json_as_seconds_and_refused_otherwise(tmp_path):
    from avemo.errors import CheckpointError

    shutil.copytree(BUNDLE_DIR, tmp_path / "b", ignore=shutil.ignore_patterns("audio", "audio_spknorm"))
    meta = json.loads((tmp_path / "b" / "model.json").read_text())
    for value, ok in ((1, True), (0.75, True), ("1 s", False), (-1, False), (None, False)):
        meta["config"]["abstention"]["min_speech"] = value
        (tmp_path / "b" / "model.json").write_text(json.dumps(meta))
        if ok:
            assert read_bundle(tmp_path / "b")[0].abstention.min_speech == float(value)
        else:
            with pytest.raises(CheckpointError, match="min_speech"):
                read_bundle(tmp_path / "b")


def old_bundle(folder: Path) -> Path:
    """A copy of the bundled model with its model.json as written before ``abstention`` existed."""
    shutil.copytree(BUNDLE_DIR, folder)
    meta = json.loads((folder / "model.json").read_text())
    meta["config"].pop("abstention", None)
    (folder / "model.json").write_text(json.dumps(meta))
    return folder


def test_bundle_without_abstention_gets_the_defaults_and_round_trips_with_it(tmp_path):
    config, _ = read_bundle(old_bundle(tmp_path / "old"))
    assert config.abstention == AbstentionConfig()
    custom = BundleConfig(labels=SHARED6, abstention=AbstentionConfig(tau=0.4, speech_share=0.3, min_speech=0.6,
                                                                      vad=VadConfig(threshold=0.4)))
    write_bundle_meta(tmp_path, custom, {})
    assert read_bundle(tmp_path)[0] == custom
    stored = json.loads((tmp_path / "model.json").read_text())["config"]["abstention"]
    assert stored["tau"] == 0.4 and stored["min_speech"] == 0.6 and stored["vad"]["threshold"] == 0.4


def test_fit_temperature_recovers_the_temperature_labels_were_drawn_with():
    rng = np.random.default_rng(0)
    logits = 3 * rng.standard_normal((4000, 6))
    true_t = 2.5
    y = np.array([rng.choice(6, p=p) for p in scaled(logits, true_t)])
    t, nll1, nll_t = fit_temperature(logits, y)
    assert t == pytest.approx(true_t, rel=0.1) and nll_t < nll1
    with pytest.raises(ConfigError, match="class indices"):
        fit_temperature(logits[:3], np.array([0, 1, 6]))


def test_fit_threshold_finds_where_held_out_accuracy_reaches_the_target():
    rng = np.random.default_rng(1)
    conf = rng.uniform(0.2, 1.0, 20000)
    right = rng.uniform(size=conf.size) < conf  # calibrated: P(right | confidence c) = c
    probs = np.stack([conf, 1 - conf], axis=1)
    y = np.where(right, 0, 1)
    assert fit_threshold(probs, y, 0.5) == pytest.approx(0.5, abs=0.03)
    assert fit_threshold(probs, y, 0.8) == pytest.approx(0.8, abs=0.03)
    assert fit_threshold(probs, np.ones(len(y), int), 0.5) == 1.0  # never right: everything flagged


def test_fer_maps_onto_any_label_set():
    m = fer_to_labels_matrix(SHARED6)
    assert m.shape == (7, 6) and not m[FER2013.index("surprised")].any()  # the target has no surprised
    assert m[FER2013.index("neutral"), SHARED6.index("neutral")] == 1.0  # no calm: all of neutral stays
    probs = np.zeros((2, 7), np.float32)
    probs[0, FER2013.index("surprised")], probs[0, FER2013.index("happy")] = 0.5, 0.5
    probs[1, FER2013.index("surprised")] = 1.0
    out = fer_to_labels(probs, SHARED6)
    assert out[0, SHARED6.index("happy")] == pytest.approx(1.0)  # surprise dropped, the rest renormalised
    assert out[1] == pytest.approx(np.full(6, 1 / 6))  # nothing left: uniform
    ravdess = fer_to_labels(np.full((1, 7), 1 / 7, np.float32), RAVDESS, calm_share=0.5)
    assert ravdess.sum() == pytest.approx(1.0) and ravdess[0, RAVDESS.index("calm")] == pytest.approx(0.5 / 7)
    with pytest.raises(ConfigError, match="shares no emotion"):
        fer_to_labels_matrix(("boredom",))


@pytest.mark.parametrize("sample_rate", [8000, 16000, 44100])
def test_synthetic_speech_is_speech_to_the_vad_and_noise_is_not(sample_rate):
    from avemo.features.audio.vad import VoiceActivityDetector
    from avemo.media.synth import synth_audio

    vad = VoiceActivityDetector()
    for seed in range(3):
        y = synth_audio(3.0, sample_rate, "speech", seed=seed, channels=2)
        assert y.shape == (3 * sample_rate, 2) and np.abs(y).max() <= 0.5 + 1e-6
        assert vad.detect(y[:, 0], sample_rate).fraction() > 0.9
    for kind in ("noise", "tone", "silence"):
        assert not vad.detect(synth_audio(3.0, sample_rate, kind)[:, 0], sample_rate).has_speech


# ----------------------------------------------------------------------------- the bundled model
@pytest.fixture(scope="module")
def predictor():
    from avemo import Predictor

    return Predictor.default(device="cpu")


@pytest.fixture(scope="module")
def speech_then_silence(tmp_path_factory) -> Path:
    """2 s of synthetic speech, then 2 s of silence (a wav)."""
    import soundfile as sf

    from avemo.media.synth import synth_audio

    y = np.concatenate([synth_audio(2.0, 16000, "speech")[:, 0], np.zeros(32000, np.float32)])
    path = tmp_path_factory.mktemp("abstain") / "speech_then_silence.wav"
    sf.write(path, y, 16000)
    return path


def test_old_bundle_loads_with_the_default_abstention(tmp_path, speech_then_silence):
    from avemo import Predictor

    old = Predictor.from_bundle(old_bundle(tmp_path / "old"), device="cpu")
    assert old.abstention == AbstentionConfig() and old.info()["abstention"]["tau"] == 0.5
    labels = read_bundle(BUNDLE_DIR)[0].labels  # the shipped bundle's classes
    assert old.labels == labels and old.predict(speech_then_silence).emotion in labels


@pytest.mark.parametrize("kind", ["silence", "noise"])
def test_no_speech_and_no_face_gives_no_emotion(predictor, make_clip, kind):
    r = predictor.predict(make_clip(f"{kind}.wav", duration=3.0, audio=kind))
    assert r.emotion is None and r.probabilities is None and r.uncertain and r.speech == 0.0
    audio = r.modalities["audio"]
    assert not audio.used and "no speech" in audio.reason and audio.probabilities is None
    assert len(r.timeline) == 5 and all(w.emotion is None and w.uncertain and not w.audio for w in r.timeline)
    data = r.to_dict()
    assert data["emotion"] is None and data["uncertain"] is True and data["timeline"][0]["speech"] == 0.0


def test_noise_with_a_face_is_never_a_confident_unflagged_audio_answer(predictor, make_clip):
    r = predictor.predict(make_clip("noise_face.mp4", duration=2.0, size=(320, 240), fps=25, face=True, audio="noise"))
    assert not r.modalities["audio"].used and "no speech" in r.modalities["audio"].reason
    assert r.modalities["video"].used  # the face alone speaks
    for probs, flag in [(r.probabilities, r.uncertain), *((w.probabilities, w.uncertain) for w in r.timeline)]:
        assert flag or max(probs.values()) >= 0.5


def test_windows_without_speech_get_no_audio_term(predictor, speech_then_silence):
    r = predictor.predict(speech_then_silence)
    assert r.modalities["audio"].used and 0.3 < r.speech < 0.7
    by_start = {w.start: w for w in r.timeline}
    assert all(by_start[t].audio and by_start[t].speech >= 0.5 and by_start[t].emotion for t in (0.0, 0.5, 1.0))
    for t in (2.0, 2.5, 3.0):
        w = by_start[t]
        assert w.speech < 0.5 and not w.audio and w.emotion is None and w.probabilities is None and w.uncertain


def voice_in_silence(folder: Path, seconds: float) -> Path:
    """``seconds`` of synthetic speech between 1 s of silence each side (a wav)."""
    import soundfile as sf

    from avemo.media.synth import synth_audio

    silence = np.zeros(16000, np.float32)
    path = folder / f"voice_{seconds:g}s.wav"
    sf.write(path, np.concatenate([silence, synth_audio(seconds, 16000, "speech")[:, 0], silence]), 16000)
    return path


def test_too_little_speech_flags_every_answer_with_an_audio_vote_and_says_why(predictor, tmp_path):
    assert 0.5 <= predictor.abstention.min_speech <= 1.5  # the bundle's, chosen by benchmarks/short_speech.py
    r = predictor.predict(voice_in_silence(tmp_path, 0.3), window=0.5, hop=0.25)  # windows the 0.3 s can fill
    assert 0.0 < r.speech * r.duration < predictor.abstention.min_speech  # the VAD heard it, but too little
    assert r.modalities["audio"].used and r.emotion is not None and r.uncertain  # an answer, not to be trusted
    [warning] = [w for w in r.warnings if w.startswith("too little speech")]
    assert f"under the {predictor.abstention.min_speech:g} s the voice needs to be trusted" in warning
    voted = [w for w in r.timeline if w.audio]
    assert voted and all(w.uncertain for w in voted)
    assert r.to_dict()["uncertain"] is True and all(w["uncertain"] for w in r.to_dict()["timeline"] if w["audio"])


def test_enough_speech_is_not_flagged_for_its_length(predictor, tmp_path):
    r = predictor.predict(voice_in_silence(tmp_path, 2.0))
    assert r.modalities["audio"].used and r.modalities["audio"].reason is None and r.emotion is not None
    assert any(w.audio for w in r.timeline) and not any("too little speech" in w for w in r.warnings)


def test_min_speech_comes_from_the_bundle_and_zero_turns_the_gate_off(tmp_path):
    from avemo import Predictor

    clip = voice_in_silence(tmp_path, 0.3)
    folder = old_bundle(tmp_path / "b")
    meta = json.loads((folder / "model.json").read_text())
    for min_speech, short in ((0.0, False), (5.0, True)):
        meta["config"]["abstention"] = {"min_speech": min_speech, "tau": 0.0}  # tau 0: only min_speech flags
        (folder / "model.json").write_text(json.dumps(meta))
        p = Predictor.from_bundle(folder, device="cpu")
        assert p.info()["abstention"]["min_speech"] == min_speech
        r = p.predict(clip)
        assert r.modalities["audio"].used and r.uncertain is short
        assert any(w.startswith("too little speech") for w in r.warnings) is short


def test_tau_and_speech_share_come_from_the_bundle(tmp_path, speech_then_silence):
    from avemo import Predictor

    def bundle(name: str, **abstention) -> Path:
        folder = old_bundle(tmp_path / name)
        meta = json.loads((folder / "model.json").read_text())
        meta["config"]["abstention"] = abstention
        (folder / "model.json").write_text(json.dumps(meta))
        return folder

    always = Predictor.from_bundle(bundle("always", tau=1.0), device="cpu").predict(speech_then_silence)
    assert always.uncertain and all(w.uncertain for w in always.timeline)
    never = Predictor.from_bundle(bundle("never", tau=0.0, speech_share=0.0), device="cpu").predict(speech_then_silence)
    assert not never.uncertain and all(w.audio and not w.uncertain for w in never.timeline)  # no gate at all


# ----------------------------------------------------------------------------- a 6-label bundle
def tiny_bundle(folder: Path, head: str) -> Path:
    """A bundle whose audio head (a tiny untrained MLP on the Whisper embedding or on eGeMAPS) predicts
    the six labels RAVDESS and EmoDB share."""
    import torch

    from avemo.models import create_model
    from avemo.models.checkpoint import save_checkpoint
    from avemo.models.normalization import Normalizer

    torch.manual_seed(0)
    model = create_model(head, num_classes=len(SHARED6), hidden=[8])
    width = model.inputs["audio"].shape[0]
    norm = Normalizer(kinds={"audio": "vector"}, mean={"audio": np.zeros(width, np.float32)},
                      std={"audio": np.ones(width, np.float32)})
    save_checkpoint(folder / "audio", model, labels=LabelSet("shared6", SHARED6), normalizer=norm)
    write_bundle_meta(folder, BundleConfig(name="six", labels=SHARED6), {})
    return folder


@pytest.fixture(scope="module")
def six_label_bundle(tmp_path_factory) -> Path:
    return tiny_bundle(tmp_path_factory.mktemp("six") / "bundle", "whisper_mlp")


def test_the_generic_audio_expert_gates_windows_too(tmp_path, speech_then_silence):
    from avemo import Predictor
    from avemo.inference.audio import FeatureAudioExpert

    p = Predictor.from_bundle(tiny_bundle(tmp_path / "egemaps", "egemaps_mlp"), device="cpu")
    assert isinstance(p._backend.audio, FeatureAudioExpert)
    r = p.predict(speech_then_silence)
    assert r.modalities["audio"].used and 0.3 < r.speech < 0.7 and list(r.probabilities) == list(SHARED6)
    assert [w.audio for w in r.timeline] == [w.speech >= 0.5 for w in r.timeline]
    assert r.timeline[0].audio and r.timeline[-1].emotion is None


def test_a_six_label_bundle_predicts_with_video_and_audio(six_label_bundle, make_clip):
    from avemo import Predictor

    p = Predictor.from_bundle(six_label_bundle, device="cpu")
    assert p.labels == SHARED6
    r = p.predict(make_clip("six.mp4", duration=2.0, size=(320, 240), fps=25, face=True, audio="speech"))
    assert r.modalities["audio"].used and r.modalities["video"].used
    assert list(r.probabilities) == list(SHARED6) and r.emotion in SHARED6
    for status in r.modalities.values():
        assert list(status.probabilities) == list(SHARED6)
        assert sum(status.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert all(list(w.probabilities) == list(SHARED6) for w in r.timeline if w.probabilities)


def test_a_bundle_whose_head_disagrees_with_its_labels_is_refused(six_label_bundle, tmp_path):
    from avemo import Predictor

    folder = tmp_path / "wrong"
    shutil.copytree(six_label_bundle, folder)
    write_bundle_meta(folder, BundleConfig(labels=RAVDESS.emotions), {})
    with pytest.raises(CheckpointError, match="needs"):
        Predictor.from_bundle(folder, device="cpu")
    write_bundle_meta(folder, BundleConfig(labels=("happy", "contempt")), {})
    with pytest.raises(CheckpointError, match="does not know"):
        Predictor.from_bundle(folder, device="cpu")


def test_onnx_engine_gives_the_same_flags(six_label_bundle, make_clip, tmp_path, speech_then_silence):
    from avemo import Predictor

    torch_p = Predictor.from_bundle(six_label_bundle, device="cpu")
    onnx_p = Predictor.from_bundle(six_label_bundle, engine="onnx", onnx_dir=tmp_path / "onnx")
    clips = [speech_then_silence, make_clip("six.mp4", duration=2.0, size=(320, 240), fps=25, face=True, audio="speech"),
             make_clip("quiet.wav", duration=2.0, audio="silence")]
    flags = set()
    for clip in clips:
        a, b = torch_p.predict(clip), onnx_p.predict(clip)
        assert (a.emotion, a.uncertain, a.speech) == (b.emotion, b.uncertain, b.speech)
        flags |= {a.uncertain, *(w.uncertain for w in a.timeline)}
        assert [(w.start, w.emotion, w.uncertain, w.audio, w.speech) for w in a.timeline] == \
            [(w.start, w.emotion, w.uncertain, w.audio, w.speech) for w in b.timeline]
        if a.probabilities is not None:
            assert list(b.probabilities.values()) == pytest.approx(list(a.probabilities.values()), abs=1e-3)
    assert flags == {True, False}  # the clips give both answers, so agreeing on them means something


# ----------------------------------------------------------------------------- the crowd gate
def detector(width: int, threshold: float, seed: int = 0):
    from avemo.inference.crowd import CrowdDetector

    rng = np.random.default_rng(seed)
    return CrowdDetector(mean=rng.standard_normal(width), std=rng.uniform(0.5, 2.0, width),
                         weights=0.05 * rng.standard_normal(width), bias=0.1, threshold=threshold)


def crowd_bundle(source: Path, folder: Path, threshold: float, width: int | None = None) -> Path:
    """A copy of ``source`` with a random crowd detector named in its model.json."""
    import dataclasses

    from avemo.models.checkpoint import load_checkpoint

    shutil.copytree(source, folder)
    config, meta = read_bundle(folder)
    width = width or len(load_checkpoint(folder / config.audio).normalizer.mean["audio"])
    detector(width, threshold).save(folder / "crowd.json")
    config = dataclasses.replace(config, abstention=dataclasses.replace(config.abstention, crowd="crowd.json"))
    write_bundle_meta(folder, config, {})
    return folder


def test_crowd_detector_round_trips_and_scores_probabilities(tmp_path):
    from avemo.inference.crowd import CrowdDetector, load_crowd_detector

    d = detector(16, 0.8)
    x = np.random.default_rng(1).standard_normal((5, 16)) * 10
    s = d.scores(x)
    assert s.shape == (5,) and ((s > 0) & (s < 1)).all()
    again = load_crowd_detector(d.save(tmp_path / "crowd.json"), width=16)
    assert again.threshold == 0.8 and again.scores(x) == pytest.approx(s, abs=1e-4)  # float32 storage
    assert CrowdDetector.from_dict(d.to_dict()).scores(x) == pytest.approx(s, abs=1e-4)
    assert d.gate(np.array([0.79, 0.8, np.nan])).tolist() == [False, True, False]
    with pytest.raises(ConfigError, match=r"\(n, 16\)"):
        d.scores(np.zeros((2, 15)))


def test_a_bad_crowd_file_is_one_clear_error(tmp_path):
    from avemo.inference.crowd import load_crowd_detector

    bad = tmp_path / "crowd.json"
    for text, match in (("{not json", "cannot read"), ('{"format": "other"}', "not a crowd detector"),
                        (json.dumps({**detector(4, 0.5).to_dict(), "weights": [1, 2]}), "one length")):
        bad.write_text(text)
        with pytest.raises(ConfigError, match=match) as err:
            load_crowd_detector(bad)
        assert str(bad) in str(err.value) and "\n" not in str(err.value)
    detector(4, 0.5).save(bad)
    with pytest.raises(ConfigError, match="4-d embeddings, but the audio expert gives 8-d"):
        load_crowd_detector(bad, width=8)
    with pytest.raises(ConfigError, match="cannot read"):
        load_crowd_detector(tmp_path / "missing.json")


def test_a_crowd_file_of_the_wrong_width_stops_the_bundle_loading(six_label_bundle, tmp_path):
    from avemo import Predictor

    with pytest.raises(ConfigError, match="crowd.json: the crowd detector reads 7-d"):
        Predictor.from_bundle(crowd_bundle(six_label_bundle, tmp_path / "wide", 0.8, width=7), device="cpu")


def test_crowd_threshold_above_one_changes_nothing(six_label_bundle, tmp_path, make_clip):
    from avemo import Predictor

    clip = make_clip("six.mp4", duration=2.0, size=(320, 240), fps=25, face=True, audio="speech")
    plain = Predictor.from_bundle(six_label_bundle, device="cpu").predict(clip)
    never = Predictor.from_bundle(crowd_bundle(six_label_bundle, tmp_path / "never", 1.5), device="cpu").predict(clip)
    assert plain.probabilities == never.probabilities and plain.modalities == never.modalities
    strip = [{k: v for k, v in w.to_dict().items() if k not in ("crowd", "crowd_gated")} for w in never.timeline]
    assert strip == [w.to_dict() for w in plain.timeline]
    assert not any(w.to_dict()["crowd_gated"] for w in never.timeline if w.crowd is not None)
    assert all(0 < w.to_dict()["crowd"] < 1 for w in never.timeline if w.audio)  # the scores are shown
    assert all("crowd" not in w.to_dict() for w in plain.timeline)  # a bundle without detector: as before
    assert never.model["crowd_threshold"] == 1.5 and "crowd_threshold" not in plain.model  # what the scores meet


def test_crowd_threshold_zero_gates_every_audio_window(six_label_bundle, tmp_path, make_clip, speech_then_silence):
    from avemo import Predictor

    p = Predictor.from_bundle(crowd_bundle(six_label_bundle, tmp_path / "always", 0.0), device="cpu")
    r = p.predict(make_clip("six.mp4", duration=2.0, size=(320, 240), fps=25, face=True, audio="speech"))
    audio = r.modalities["audio"]
    assert not audio.used and audio.reason.startswith("several people talk at once in most of the speech")
    assert any("several people talk at once" in w for w in r.warnings)
    assert r.modalities["video"].used and r.emotion in SHARED6  # the face still answers
    assert not any(w.audio for w in r.timeline) and any(w.video for w in r.timeline)
    alone = p.predict(speech_then_silence)  # no face: no emotion, as for noise
    assert alone.emotion is None and alone.uncertain and "several people" in alone.modalities["audio"].reason


def test_a_clip_that_is_mostly_a_crowd_says_crowd_in_its_quieter_speech_windows(six_label_bundle, tmp_path,
                                                                                 speech_then_silence):
    """When most of the speech is a crowd, the clip's audio is not used, so no window keeps its voice:
    a speech window whose own score is below the threshold lost it to the clip's decision and reads
    "crowd" (it used to read "no speech"); a window without enough speech to vote keeps "no speech"."""
    import itertools

    from avemo import Predictor
    from avemo.inference import formats

    never = crowd_bundle(six_label_bundle, tmp_path / "never", 1.5)  # the same detector, gating nothing
    scored = Predictor.from_bundle(never, device="cpu").predict(speech_then_silence)
    voting = sorted(w.crowd for w in scored.timeline if w.audio)
    assert len(voting) >= 3 and voting[0] < voting[1] - 1e-6
    threshold = voting[1] - 1e-6  # every speech window but one at or above it: most of the speech
    r = Predictor.from_bundle(crowd_bundle(six_label_bundle, tmp_path / "most", threshold), device="cpu"
                              ).predict(speech_then_silence)
    assert not r.modalities["audio"].used and "several people talk at once" in r.modalities["audio"].reason
    assert [(w.start, w.crowd) for w in r.timeline] == [(w.start, w.crowd) for w in scored.timeline]
    assert not any(w.audio for w in r.timeline) and all(w.emotion is None for w in r.timeline)  # no face
    expected = [bool(s.audio or s.crowd is not None and s.crowd >= threshold) for s in scored.timeline]
    assert [w.to_dict()["crowd_gated"] for w in r.timeline] == expected
    assert any(s.audio and s.crowd < threshold for s in scored.timeline)  # the window of the issue
    assert not all(expected)  # the silent end still reads "no speech"
    said = [formats.CROWD if gated else formats.NO_EMOTION for gated in expected]
    assert [(e, n) for _, _, e, _, n in formats.runs(r)] == [(e, len(list(g))) for e, g in itertools.groupby(said)]


def test_onnx_engine_gives_the_same_crowd_gate(six_label_bundle, tmp_path, speech_then_silence):
    from avemo import Predictor

    folder = crowd_bundle(six_label_bundle, tmp_path / "half", 0.5)
    a = Predictor.from_bundle(folder, device="cpu").predict(speech_then_silence)
    b = Predictor.from_bundle(folder, engine="onnx", onnx_dir=tmp_path / "onnx").predict(speech_then_silence)
    assert (a.emotion, a.modalities["audio"].used, a.modalities["audio"].reason) == \
        (b.emotion, b.modalities["audio"].used, b.modalities["audio"].reason)
    assert [w.audio for w in a.timeline] == [w.audio for w in b.timeline]
    crowd_a = [w.crowd for w in a.timeline if w.crowd is not None]
    assert crowd_a and crowd_a == pytest.approx([w.crowd for w in b.timeline if w.crowd is not None], abs=1e-3)


def test_crowd_gate_removes_crowd_windows_and_needs_most_of_the_speech():
    from avemo.inference.backends import _crowd_gate

    logits = np.ones((5, 3), np.float32)
    logits[0] = np.nan  # no speech there
    crowd = np.array([0.99, 0.9, 0.85, 0.1, np.nan])
    half = logits.copy()
    reason, gated = _crowd_gate(half, crowd, 0.5, 0.8)
    assert reason is None  # 2 of the 4 speech windows: not most
    assert np.isnan(half[:3]).all() and not np.isnan(half[3:]).any()
    assert gated.tolist() == [True, True, True, False, False]  # the gate's windows, with a vote or not
    most = logits.copy()
    reason, gated = _crowd_gate(most, np.array([0.0, 0.9, 0.85, 0.95, 0.1]), 0.9, 0.8)
    assert reason.startswith("several people talk at once") and "3 of 4 speech windows" in reason
    assert gated.tolist() == [False, True, True, True, True]  # the clip's decision takes window 4's vote too
    silent = np.full((2, 3), np.nan, np.float32)  # no window with a vote: the clip's own score decides
    assert _crowd_gate(silent.copy(), np.array([0.9, 0.9]), 0.95, 0.8)[0] is not None
    assert _crowd_gate(silent.copy(), np.array([0.9, 0.9]), 0.5, 0.8)[0] is None
