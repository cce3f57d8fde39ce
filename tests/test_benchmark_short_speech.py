"""benchmarks/short_speech.py: crops from the speech onset, the choice of min_speech on the validation
speakers only, the gate's check on the others, and the report on a tiny synthetic input."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def script(benchmark_script):
    return benchmark_script("short_speech")


def _row(group: str, clip: str, crop, seconds: float, right: bool, top: float = 0.9, used: bool = True) -> dict:
    return {"group": group, "clip": clip, "truth": "angry", "crop": crop, "speech_seconds": seconds, "used": used,
            "emotion": ("angry" if right else "fearful") if used else None, "top": top if used else None,
            "uncertain": not used or top < 0.5, "reason": None if used else "no speech", "onset": 0.5,
            "duration": seconds}


def test_crops_start_at_the_speech_onset_and_stop_at_the_end_of_the_clip(script):
    from avemo.features.audio.vad import VoiceActivityDetector
    from avemo.media.synth import synth_audio

    sr = script.SR
    y = np.concatenate([np.zeros(sr, np.float32), synth_audio(1.0, sr, "speech")[:, 0]])
    start = script.onset(y, VoiceActivityDetector())
    assert start == pytest.approx(1.0, abs=0.1)
    pieces = script.crops(y, start, (0.3, 2.0))
    assert len(pieces[0.3]) == int(round(0.3 * sr))
    np.testing.assert_array_equal(pieces[0.3], y[int(round(start * sr)):][: len(pieces[0.3])])
    assert len(pieces[2.0]) == len(y) - int(round(start * sr))  # the clip ends first
    assert script.onset(np.zeros(sr, np.float32), VoiceActivityDetector()) is None


def test_min_speech_is_where_validation_answers_become_right_often_enough(script):
    assert script.choose_min_speech([], 0.5)["min_speech"] is None  # no answer at all
    # wrong below 0.62 s of speech, right from there on: the fit reaches 0.5 at 0.62 s, rounded up to 0.65
    rows = [_row("validation", f"c{i}", 0.5, s, s >= 0.62) for i, s in enumerate(np.linspace(0.2, 2.0, 37))]
    choice = script.choose_min_speech(rows, 0.5)
    assert choice["fitted"] == pytest.approx(0.65) and choice["min_speech"] == pytest.approx(0.65)
    assert choice["answers"] == 37
    unanswered = [_row("validation", "x", 0.2, 0.0, False, used=False)]
    assert script.choose_min_speech(rows + unanswered, 0.5)["answers"] == 37  # no answer, nothing to fit
    never = [_row("validation", f"c{i}", 0.5, s, False) for i, s in enumerate(np.linspace(0.2, 2.0, 10))]
    assert script.choose_min_speech(never, 0.5)["min_speech"] is None


def test_only_the_validation_speakers_choose(script):
    val = [_row("validation", f"v{i}", 0.5, s, s >= 1.0) for i, s in enumerate(np.linspace(0.2, 2.0, 19))]
    test = [_row("test", f"t{i}", 0.5, s, True) for i, s in enumerate(np.linspace(0.2, 2.0, 19))]
    analysis = script.analyse(val + test, tau=0.5, min_accuracy=0.5)
    assert analysis["choice"]["min_speech"] == pytest.approx(1.0)
    assert analysis["groups"]["test"]["reached_here"] == pytest.approx(0.2)  # reported, not used
    gate = analysis["groups"]["test"]["gate"]
    assert gate["short"] == 8 and gate["accuracy_short"] == 1.0  # 0.2 .. 0.9 s flagged, though right here


def test_table_per_crop_counts_missing_answers_as_not_right(script):
    rows = [_row("test", "a", 0.3, 0.3, False, top=0.99), _row("test", "b", 0.3, 0.0, False, used=False),
            _row("test", "a", script.FULL, 3.0, True, top=0.4)]
    short, full = script.by_crop(rows, tau=0.5, min_speech=1.0)
    assert short["crop"] == 0.3 and short["answered"] == 0.5 and short["accuracy"] == 0.0
    assert short["confident_wrong"] == 1.0 and short["short"] == 0.5 and short["accuracy_short"] == 0.0
    assert full["crop"] == script.FULL and full["flagged"] == 1.0 and full["accuracy_enough"] == 1.0
    gate = script.gate_check(rows, 1.0, 0.5)
    assert (gate["confident_wrong_before"], gate["confident_wrong_after"], gate["full_clips_short"]) == (1, 0, 0)


def test_a_tiny_synthetic_run_through_the_predictor_writes_the_report(script, tmp_path):
    """Two synthetic clips through the bundled predictor (every crop and the whole clip), reused from
    the saved rows on a second pass, and the report written whole."""
    import soundfile as sf

    from avemo import Predictor
    from avemo.features.audio.vad import VoiceActivityDetector
    from avemo.inference.bundle import BUNDLE_DIR
    from avemo.media.synth import synth_audio

    sr = script.SR
    clips = []
    for i, (group, seconds) in enumerate((("validation", 1.5), ("test", 0.6))):
        path = tmp_path / f"{i}.wav"
        sf.write(path, np.concatenate([np.zeros(sr // 2, np.float32), synth_audio(seconds, sr, "speech", seed=i)[:, 0],
                                       np.zeros(sr // 2, np.float32)]), sr)
        clips.append((group, f"synthetic:{i}", "angry", path))
    bundle = script.fold_bundle(BUNDLE_DIR / "audio", tmp_path / "bundle")  # the shipped head, no min_speech
    predictor = Predictor.from_bundle(bundle, device="cpu")
    assert predictor.abstention.min_speech == 0.0 and predictor.speaker_head is None
    vad = VoiceActivityDetector(predictor.abstention.vad)
    saved = {}
    rows = script.measure(lambda p: predictor.predict(p, modalities="audio"), clips, vad,
                                    save=saved.__setitem__)
    assert len(rows) == len(saved) == 2 * (len(script.CROPS) + 1)
    by_key = {f"{r['clip']}/{r['crop']}": r for r in rows}
    assert not by_key["synthetic:0/0.2"]["used"] or by_key["synthetic:0/0.2"]["speech_seconds"] < 0.5
    assert by_key["synthetic:1/0.75"]["used"]  # 0.6 s of speech: answered, min_speech is off
    assert by_key["synthetic:0/full clip"]["speech_seconds"] == pytest.approx(1.5, abs=0.2)
    again = script.measure(lambda p: pytest.fail("a saved row was measured again"), clips, vad, saved)
    assert again == rows
    results = {"header": ["- Command: `python benchmarks/short_speech.py`"], "abstention": predictor.info()["abstention"],
               "train": "test", "seconds": 1.0, "seconds_training": 0.0, "measured_now": len(rows), "reused": 0,
               "analysis": script.analyse(rows, predictor.abstention.tau, 0.5), "rows": rows}
    script.write(tmp_path / "out" / "short_speech", results)
    text = (tmp_path / "out" / "short_speech.md").read_text()
    assert "## RAVDESS 22, 23 (validation: chooses): 1 clips" in text and "| 0.75 s |" in text
    stored = json.loads((tmp_path / "out" / "short_speech.json").read_text())["rows"]  # floats to 4 decimals
    assert [(r["clip"], r["crop"], r["emotion"]) for r in stored] == [(r["clip"], r["crop"], r["emotion"]) for r in rows]
    assert [r["top"] for r in stored] == pytest.approx([r["top"] for r in rows], abs=1e-4, nan_ok=True)
    assert not list((tmp_path / "out").glob("*.tmp"))
