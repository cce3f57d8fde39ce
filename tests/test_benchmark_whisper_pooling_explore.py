"""benchmarks/whisper_pooling_explore.py: the exploration that led to ``layer_norm``, as a script.

The pure parts (label mapping, pooling views, the VAD frame mask, the nested selection's use, the
resumable and checked feature files) are checked on made-up data; the ``--quick`` run checks the
script's path end to end on a few real clips, not its figures (docs/results/whisper_pooling_explore.md).
"""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def script(benchmark_script):
    return benchmark_script("whisper_pooling_explore")


def test_calm_is_added_to_neutral(script):
    labels = script.RAVDESS_LABELS
    p8 = np.zeros((1, 8))
    p8[0, labels.index("calm")], p8[0, labels.index("neutral")] = 0.4, 0.1
    p8[0, labels.index("angry")], p8[0, labels.index("surprised")] = 0.3, 0.2
    q = script.to_shared(p8)
    shared = script.SHARED
    # surprised has no shared label: the rest is renormalised, calm + neutral (0.5) beats angry (0.3)
    assert q[0, shared.index("neutral")] == pytest.approx(0.5 / 0.8)
    assert q[0, shared.index("angry")] == pytest.approx(0.3 / 0.8)
    assert q.sum() == pytest.approx(1.0) and q.argmax() == shared.index("neutral")
    # divided by the training prior of the merged labels: neutral's (calm + neutral clips) is large
    y8 = np.array([labels.index(e) for e in ["calm"] * 4 + ["neutral"] * 2 + ["angry"] * 2 + ["sad"]])
    prior = script.shared_prior(y8)
    assert prior[shared.index("neutral")] == 6 and prior[shared.index("angry")] == 2
    assert prior[shared.index("disgust")] == 0
    q = script.to_shared(p8, prior)
    assert q.argmax() == shared.index("angry")  # 0.3 / 2 > 0.5 / 6
    assert np.isfinite(q).all() and q[0, shared.index("disgust")] == 0  # no training clip: stays 0


def test_full_columns_places_the_fitted_classes(script):
    p = script.full_columns(np.array([[0.25, 0.75]]), np.array([1, 3]), 4)
    assert p.tolist() == [[0.0, 0.25, 0.0, 0.75]]


def test_merged_label(script):
    assert [script.merged_label(e) for e in ("calm", "neutral", "sad")] == ["neutral", "neutral", "sad"]


def test_speech_frames(script):
    frames = script.speech_frames([(0.1, 0.2), (0.5, 0.51)], 40)  # 20 ms frames
    assert np.flatnonzero(frames).tolist() == [5, 6, 7, 8, 9, 25]
    assert script.speech_frames([], 3).all()
    assert script.speech_frames([(2.0, 3.0)], 3).all()  # no frame covered: every frame


def test_views(script):
    rng = np.random.default_rng(0)
    arr = rng.normal(size=(4, 7, 16)).astype(np.float32) + 3
    assert np.array_equal(script.view(arr, "mask"), arr[1])
    assert np.array_equal(script.view(arr, "trimstd"), np.concatenate([arr[2], arr[3]]))
    inst = script.view(arr, "all", "inst")
    assert np.allclose(inst.mean(1), 0, atol=1e-5) and np.allclose(inst.std(1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(script.view(arr, "trim", "l2"), axis=1), 1)
    assert np.array_equal(script.view(arr[0]), arr[0])  # a speed copy: (layers, dims) already
    assert script.combined(arr[0], "concat").shape == (7 * 16,)
    assert np.allclose(script.combined(arr[0], "mean"), arr[0].mean(0))


def _candidate(y, predicted, speakers, crema_uar):
    probs = np.full((len(y), 6), 0.02)
    probs[np.arange(len(y)), predicted] = 0.9
    emodb = {"y_true": y, "probabilities": probs, "speakers": speakers, "labels": ["a", "b", "c", "d", "e", "f"],
             "takes": [f"t{i}" for i in range(len(y))]}
    return {"emodb": emodb, "crema_d": {"uar": crema_uar, "takes": ["c1", "c2"]}}


def test_nested_over_never_lets_the_test_speaker_choose(script):
    speakers = ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    y = np.array([0, 1, 0, 1] * 3)
    on_a = np.array(speakers) == "a"
    fits_a = _candidate(y, np.where(on_a, y, 1 - y), speakers, 10.0)
    fits_bc = _candidate(y, np.where(on_a, 1 - y, y), speakers, 90.0)
    res = script.nested_over({"fits_a": fits_a, "fits_bc": fits_bc})
    assert res["per_speaker"]["a"]["chosen"] == "fits_bc" and res["per_speaker"]["a"]["uar"] == 0.0
    assert res["chosen_on_all"] == "fits_bc" and res["crema_d_uar_chosen_on_all"] == 90.0 and res["crema_d_n"] == 2


class _Take:
    def __init__(self, key, path):
        self.key, self._audio = key, type("Audio", (), {"path": path})()

    def __getitem__(self, modality):
        return self._audio


def _takes(tmp_path, n):
    import soundfile as sf

    takes = []
    for i in range(n):
        path = tmp_path / f"clip{i}.wav"
        sf.write(path, np.full(1600, 0.01 * (i + 1), dtype=np.float32), 16000)
        takes.append(_Take(f"c:{i}", path))
    return takes


def test_feature_files_resume_and_are_checked(script, tmp_path):
    from avemo.errors import DatasetError

    takes = _takes(tmp_path, 3)
    path = tmp_path / "x.npz"

    def encode(y):
        return np.full((2, 3), y[0], dtype=np.float32)

    script.write_npz(path.with_name("x.npz.partial.npz"), {"c:0": np.full((2, 3), 7.0, dtype=np.float32)})
    done = script.extract_file(path, takes, encode, (2, 3))
    feats = script.read_npz(path)
    assert list(feats) == ["c:0", "c:1", "c:2"] and not done["reused"]
    assert feats["c:0"][0, 0] == 7.0  # resumed from the partial file, not encoded again
    assert feats["c:2"][0, 0] == pytest.approx(0.03, abs=1e-4)  # through a 16-bit wav
    assert not path.with_name("x.npz.partial.npz").exists()
    again = script.extract_file(path, takes, encode, (2, 3))  # finished: checked, one clip encoded to compare
    assert again["reused"] and again["recheck"] == "c:0" and again["recheck_max_rel_diff"] > 0.9
    with pytest.raises(DatasetError, match="holds 3 clips, not the 2 takes") as err:
        script.check_file(path, takes[:2], (2, 3))
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(DatasetError, match="expected"):
        script.check_file(path, takes, (4, 7, 512))


@pytest.mark.shared_data
@pytest.mark.slow
def test_quick_run_writes_the_report(script, tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    script.main(["--quick", "--out", str(out), "--work", str(work), "--cache", str(tmp_path / "cache")])
    text = (out / "whisper_pooling_explore.md").read_text()
    for heading in ("NOT test results", "## Nested RAVDESS -> EmoDB-dev UAR per idea", "(7) Per-layer standardisation",
                    "## Reverse direction", "## Multi-corpus", "load average (1/5/15 min)", "layer_norm", "NOT a test"):
        assert heading in text
    result = json.loads((out / "whisper_pooling_explore.json").read_text())
    assert result["quick"] and set(result["nested_uar"]) == {*script.IDEAS, "_poolings"}
    assert all(0 <= u <= 100 for u in result["nested_uar"].values())
    assert not result["extracted"]["ravdess"]["reused"]
    assert {s[:4] for s in result["reverse"]} == {"norm"} and len(result["multi_corpus"]) == 6
    script.main(["--quick", "--out", str(out), "--work", str(work), "--cache", str(tmp_path / "cache"),
                 "--parts", "extract"])  # the finished files are checked, not made again
    extracted = script.load(work / "extract.pkl")
    assert set(extracted) == {"ravdess", "emodb", "crema_d", "ravdess_speed0.9", "ravdess_speed1.1"}
    assert all(e["reused"] and e["recheck_max_rel_diff"] < 1e-4 for e in extracted.values())
