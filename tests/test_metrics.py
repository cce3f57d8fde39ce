"""Metrics agree with scikit-learn's reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score
from sklearn.metrics import confusion_matrix as sk_confusion

from avemo.metrics import compute_metrics, roc_auc

LABELS = ["a", "b", "c", "d"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, size=200)
    logits = rng.normal(size=(200, 4)) + 1.5 * np.eye(4)[y] * rng.uniform(0, 2, size=(200, 1))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    m = compute_metrics(y, p, LABELS)
    pred = p.argmax(1)
    assert m.accuracy == pytest.approx((pred == y).mean())
    assert m.uar == pytest.approx(balanced_accuracy_score(y, pred))
    assert m.macro_f1 == pytest.approx(f1_score(y, pred, average="macro"))
    assert m.weighted_f1 == pytest.approx(f1_score(y, pred, average="weighted"))
    assert np.array_equal(np.array(m.confusion), sk_confusion(y, pred, labels=range(4)))
    for c, name in enumerate(LABELS):
        assert m.auc[name] == pytest.approx(roc_auc_score(y == c, p[:, c]))


def test_ties_in_scores_auc():
    pos = np.array([1, 0, 1, 0, 1], dtype=bool)
    s = np.array([0.5, 0.5, 0.9, 0.1, 0.5])
    assert roc_auc(pos, s) == pytest.approx(roc_auc_score(pos, s))


def test_absent_class_left_out_of_macro_averages():
    y = np.array([0, 0, 1, 1])
    p = np.eye(3)[[0, 0, 1, 0]]
    m = compute_metrics(y, p, ["x", "y", "z"])
    assert m.uar == pytest.approx((1.0 + 0.5) / 2)
    assert "z" not in m.auc


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="expected"):
        compute_metrics([0, 1], np.zeros((2, 3)), LABELS)
