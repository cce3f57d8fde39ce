"""Voice activity detection (Silero VAD through onnxruntime): rule, streaming, non-speech, real speech."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest

from avemo.errors import ConfigError
from avemo.features.audio.vad import (
    FRAME,
    SAMPLE_RATE,
    SpeechActivity,
    VadConfig,
    VoiceActivityDetector,
    model_path,
    segments_from_probabilities,
    speech_segments,
)
from avemo.media.channels import colored_noise

SR = SAMPLE_RATE
F = FRAME / SR  # seconds per frame


@pytest.fixture(scope="module")
def detector():
    return VoiceActivityDetector()


def test_segment_rule_hysteresis_minimum_lengths_and_padding():
    cfg = VadConfig(threshold=0.5, min_speech=0.25, min_silence=0.1, pad=0.0)
    probs = np.zeros(100)
    probs[10:30] = 0.9  # 0.64 s of speech
    probs[30:32] = 0.4  # between the thresholds: still speech
    probs[32:34] = 0.1  # 64 ms below the exit threshold: shorter than min_silence, no cut
    probs[34:50] = 0.9
    probs[60:65] = 0.9  # 0.16 s: shorter than min_speech, dropped
    probs[90:] = 0.9  # runs to the end of the signal
    segs = segments_from_probabilities(probs, 100 * FRAME, cfg)
    assert np.allclose(segs, [(10 * F, 50 * F), (90 * F, 100 * F)])
    padded = segments_from_probabilities(probs, 100 * FRAME, VadConfig(pad=0.03))
    assert np.allclose(padded, [(10 * F - 0.03, 50 * F + 0.03), (90 * F - 0.03, 100 * F)])  # not past the end
    assert segments_from_probabilities(np.zeros(50), 50 * FRAME, cfg) == ()


def test_speech_fraction_of_windows():
    act = SpeechActivity(((1.0, 2.0), (3.0, 3.5)), 4.0, np.zeros(0))
    assert act.fraction(0.0, 1.0) == 0.0 and act.fraction(1.0, 2.0) == 1.0
    assert act.fraction(1.5, 3.25) == pytest.approx((0.5 + 0.25) / 1.75)
    assert act.fraction() == pytest.approx(1.5 / 4.0) and act.speech_seconds == pytest.approx(1.5)
    bounds = np.array([[0.0, 1.0], [0.5, 1.5], [1.5, 3.25], [3.0, 4.0], [4.0, 4.0]])
    expected = [0.0, 0.5, (0.5 + 0.25) / 1.75, 0.5, 0.0]
    assert np.allclose(act.window_fractions(bounds), expected)
    assert np.allclose(act.window_fractions(bounds[:4]), [act.fraction(a, b) for a, b in bounds[:4]])
    with pytest.raises(ConfigError, match="must end after it starts"):
        act.fraction(2.0, 2.0)
    with pytest.raises(ConfigError, match="threshold"):
        VoiceActivityDetector(threshold=1.5)


def test_streaming_blocks_and_the_reference_model_agree(detector):
    """Any block sizes give the one-shot result, which equals Silero's frame-by-frame ONNX model."""
    import onnxruntime as ort

    from avemo.media.synth import synth_audio

    y = np.concatenate([np.zeros(SR // 2), synth_audio(2.0, SR, "voice")[:, 0], np.zeros(SR // 3)]).astype(np.float32)
    whole = detector.detect(y)
    stream = detector.stream()
    for lo in range(0, len(y), 7001):
        stream.feed(y[lo : lo + 7001])
    parts = stream.finish()
    assert np.array_equal(parts.probabilities, whole.probabilities) and parts.segments == whole.segments
    reference = ort.InferenceSession(str(model_path().parent / "silero_vad.onnx"), providers=["CPUExecutionProvider"])
    state, context, probs = np.zeros((2, 1, 128), np.float32), np.zeros((1, 64), np.float32), []
    x = np.concatenate([y, np.zeros(-len(y) % FRAME, np.float32)])
    for lo in range(0, len(x), FRAME):
        frame = x[None, lo : lo + FRAME]
        out, state = reference.run(None, {"input": np.concatenate([context, frame], axis=1), "state": state,
                                          "sr": np.array(SR, dtype=np.int64)})
        probs.append(out[0, 0])
        context = frame[:, -64:]
    assert np.allclose(whole.probabilities, probs, atol=1e-5)
    assert len(whole.probabilities) == int(np.ceil(len(y) / FRAME)) and whole.duration == pytest.approx(len(y) / SR)


def _non_speech():
    n = 6 * SR
    t = np.arange(n) / SR
    rng = np.random.default_rng(0)
    hum = np.sin(2 * np.pi * 50 * t) + 0.5 * np.sin(2 * np.pi * 100 * t) + 0.3 * np.sin(2 * np.pi * 150 * t)
    clicks = np.zeros(n)
    clicks[:: SR // 4] = 0.5
    return {
        "silence": np.zeros(n),
        "white -20 dBFS": 0.1 * colored_noise(n, "white", rng),
        "pink -10 dBFS": 0.3 * colored_noise(n, "pink", rng),
        "brown -20 dBFS": 0.1 * colored_noise(n, "brown", rng),
        "hum 50 Hz": 0.1 * hum,
        "tone 1 kHz": 0.5 * np.sin(2 * np.pi * 1000 * t),
        "clicks 4/s": clicks,
    }


@pytest.mark.parametrize("name", list(_non_speech()))
def test_no_speech_is_found_in_generated_non_speech(detector, name):
    act = detector.detect(_non_speech()[name].astype(np.float32))
    assert act.segments == (), f"{name}: {act.segments}"


def test_one_lazily_loaded_session_serves_threads():
    from avemo.features.audio import vad

    y = np.random.default_rng(1).standard_normal(SR).astype(np.float32) * 0.1
    results = []

    def run():
        results.append(VoiceActivityDetector().detect(y).probabilities)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(results) == 4 and all(np.array_equal(r, results[0]) for r in results)
    assert vad.load_session() is vad.load_session()


def test_the_vad_needs_neither_torch_nor_the_silero_package():
    """The module and what it imports run without torch (``avemo.features``' own ``__init__``, which
    registers the torch-based extractors, is bypassed to see that)."""
    code = (
        "import sys, types, pathlib, numpy as np\n"
        "import avemo\n"
        "root = pathlib.Path(avemo.__file__).parent / 'features'\n"
        "for name, path in (('avemo.features', root), ('avemo.features.audio', root / 'audio')):\n"
        "    sys.modules[name] = types.ModuleType(name); sys.modules[name].__path__ = [str(path)]\n"
        "from avemo.features.audio.vad import speech_segments\n"
        "speech_segments(np.random.default_rng(0).standard_normal(16000).astype(np.float32))\n"
        "print(sorted(m for m in ('torch', 'silero_vad') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.shared_data
def test_speech_is_found_in_the_real_clips(detector, shared_data, ravdess_video, crema_videos):
    clips = [ravdess_video, *crema_videos, *sorted((shared_data / "crema_d" / "AudioMP3").glob("*.mp3"))]
    clips += sorted((shared_data / "emodb_dev" / "wav").glob("*"))[::40]
    assert len(clips) >= 18
    for clip in clips:
        act = detector.detect_file(clip)
        assert act.has_speech and act.speech_seconds >= 0.5, clip.name
    # the RAVDESS clip's first second is silence before the sentence: no speech there
    act = detector.detect_file(ravdess_video)
    assert act.fraction(0.0, 0.7) == 0.0 and act.fraction(1.5, 2.5) == 1.0


@pytest.mark.shared_data
def test_a_ravdess_clip_at_48_khz_gives_the_16_khz_segments(detector, ravdess_speech_root):
    from avemo.media import load_audio

    path = sorted((ravdess_speech_root / "Actor_02").glob("*.flac"))[7]
    at16 = speech_segments(load_audio(path, SR))
    at48 = detector.detect(load_audio(path, 48000), sr=48000).segments
    assert len(at16) == len(at48) >= 1
    assert np.allclose(np.array(at16), np.array(at48), atol=0.07)


@pytest.mark.parametrize("build", [lambda: VadConfig(threshold=2.0), lambda: VoiceActivityDetector({"threshold": 2.0})])
def test_a_bad_vad_config_is_a_config_error(build):
    """As every config of the package: ConfigError, not ValueError."""
    with pytest.raises(ConfigError, match=r"^vad config: threshold must be in \(0, 1\), got 2.0$"):
        build()


@pytest.mark.shared_data
def test_a_shout_does_not_deafen_the_detector_for_what_follows(detector, ravdess_speech_root):
    """Two shouted takes of one RAVDESS sentence (actor 06, angry, strong) with 1.5 s of silence
    between: the second, found on its own, was missed after the first (the model's recurrent state,
    run on from the shout through the silence, kept it below 0.3); after 3 quiet seconds the state is
    now that of the model started 3 s back. The result does not depend on how the signal is cut."""
    from avemo.media import load_audio

    first, second = (load_audio(ravdess_speech_root / "Actor_06" / f"03-01-05-02-01-0{k}-06.flac", SR) for k in (1, 2))
    assert detector.detect(second).has_speech
    y = np.concatenate([first, np.zeros(3 * SR // 2, np.float32), second])
    act = detector.detect(y)
    start = (len(first) + 3 * SR // 2) / SR
    assert act.fraction(start, act.duration) > 0.3, act.segments
    stream = detector.stream()
    for lo in range(0, len(y), 7001):
        stream.feed(y[lo : lo + 7001])
    assert np.array_equal(stream.finish().probabilities, act.probabilities)
    with pytest.raises(ConfigError, match="reset_after"):
        VadConfig(reset_after=0.0)


def test_quiet_is_not_scored_again_once_the_state_has_forgotten_what_it_heard(detector, ravdess_speech_root,
                                                                             monkeypatch):
    """The state is restarted (the last ``reset_after`` seconds scored again from a zero state) while it
    may remember something it heard; it was restarted every second for as long as the quiet lasted (20 s
    of silence after a shout: 19 restarts, each scoring 3 s)."""
    import avemo.features.audio.vad as vad
    from avemo.media import load_audio

    restarts = []
    score = vad._score

    def counted(frames, context, state):
        restarts.extend([len(frames)] if not state[0].any() and len(frames) > 32 else [])
        return score(frames, context, state)

    monkeypatch.setattr(vad, "_score", counted)
    shout = load_audio(ravdess_speech_root / "Actor_06" / "03-01-05-02-01-01-06.flac", SR)
    act = detector.detect(np.concatenate([shout, np.zeros(20 * SR, np.float32)]))
    assert act.has_speech and 1 <= len(restarts) <= 4, restarts  # 3 s / 1 s checks, +1
    restarts.clear()
    assert not detector.detect(np.zeros(20 * SR, np.float32)).has_speech and restarts == []  # nothing heard
