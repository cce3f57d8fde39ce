"""benchmarks/build_crowd_detector.py: the realistic crowd mixtures (talkers with random onsets and
levels, or several takes of one speaker) and the per-window crowd labels made from each talker's active
span. Generated signals only; behaviour, not detection rates."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "build_crowd_detector.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("build_crowd_detector_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _signals(script, seed: int = 0, speakers: int = 4, takes: int = 3):
    """Signals whose 'files' are generated takes (1.5 s of a tone between 0.5 s of silence each side),
    already in its cache; ``by_speaker`` maps speaker -> fake paths."""
    sig = script.Signals(seed=seed)
    sr = script.SR
    t = np.arange(int(1.5 * sr)) / sr
    by_speaker = {}
    for s in range(speakers):
        paths = []
        for k in range(takes):
            path = Path(f"/nonexistent/{s:02d}_{k}.wav")
            tone = np.sin(2 * np.pi * (150 + 40 * s + 7 * k) * t)
            sig.cache[path] = np.concatenate([np.zeros(sr // 2), tone, np.zeros(sr // 2)])
            paths.append(path)
        by_speaker[f"{s:02d}"] = paths
    return sig, by_speaker


def test_talkers_per_window_counts_spans_covering_a_quarter_of_a_window(script):
    starts = np.array([0.0, 0.5, 1.0, 1.5, 2.0])
    spans = [(0.0, 1.2), (0.9, 2.0), (1.8, 1.9)]  # the last is too short to count anywhere
    counts = script.talkers_per_window(spans, starts, 1.0)
    # [0,1): first (1.0 s), second 0.1 s -> 1; [0.5,1.5): 0.7 and 0.6 -> 2; [1,2): 0.2 (no) and 1.0 -> 1
    # [1.5,2.5): second 0.5 -> 1; [2,3): nobody
    np.testing.assert_array_equal(counts, [1, 2, 1, 1, 0])
    assert script.talkers_per_window([], starts, 1.0).tolist() == [0] * 5


def test_window_labels_mark_crowds_singles_and_nobody(script):
    np.testing.assert_array_equal(script.window_labels(np.array([0, 1, 2, 5])), [-1, 0, 1, 1])


@pytest.mark.parametrize("talkers", [(2, 3), (2, 8)])
def test_mixture_has_the_talkers_asked_for_within_its_length(script, talkers):
    sig, by_speaker = _signals(script)
    for _ in range(10):
        y, spans = sig.mixture(by_speaker, talkers)
        assert y.dtype == np.float32 and len(y) == int(script.MIXTURE_SECONDS * script.SR)
        assert np.isclose(np.abs(y).max(), 0.5)
        assert talkers[0] <= len(spans) <= talkers[1]
        for lo, hi in spans:
            assert 0.0 <= lo < hi <= script.MIXTURE_SECONDS
            assert hi - lo <= 1.5 + 0.02  # at most the take's active span (its silences trimmed)
        outside = np.ones(len(y), dtype=bool)
        for lo, hi in spans:
            outside[int(lo * script.SR) : int(hi * script.SR)] = False
        assert np.all(y[outside] == 0)  # nothing sounds outside the talkers' spans


def test_same_speaker_mixture_uses_takes_of_one_speaker(script):
    sig, by_speaker = _signals(script, takes=8)
    used = []
    original = sig.load
    sig.load = lambda path: used.append(path) or original(path)
    for _ in range(5):
        used.clear()
        _, spans = sig.mixture(by_speaker, (2, 8), same_speaker=True)
        assert len({p.name[:2] for p in used}) == 1
        assert len(set(used)) == len(used) == len(spans)  # distinct takes


def test_mixture_is_reproducible_from_the_seed(script):
    a = _signals(script, seed=3)
    b = _signals(script, seed=3)
    ya, sa = a[0].mixture(a[1], (2, 8))
    yb, sb = b[0].mixture(b[1], (2, 8))
    np.testing.assert_array_equal(ya, yb)
    assert sa == sb
