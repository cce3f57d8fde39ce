"""Classification metrics of the honest protocol: accuracy, macro-F1, UAR, confusion, per-class ROC/AUC,
calibration (expected calibration error and reliability-diagram bins), and weighted F1 (per-class F1
weighted by the class's support, MELD's headline metric).

UAR (unweighted average recall) is the mean of per-class recalls, the usual headline metric
of speech emotion recognition because it does not reward predicting the majority class.
Classes absent from ``y_true`` are left out of macro averages (their recall is undefined).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Metrics:
    accuracy: float
    macro_f1: float
    uar: float
    n: int
    confusion: list[list[int]]  # rows: true class, columns: predicted class
    labels: list[str]
    auc: dict[str, float] = field(default_factory=dict)  # per-class one-vs-rest ROC AUC
    weighted_f1: float = 0.0

    def to_dict(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "weighted_f1": self.weighted_f1,
            "macro_f1": self.macro_f1,
            "uar": self.uar,
            "n": self.n,
            "confusion": self.confusion,
            "labels": self.labels,
            "auc": self.auc,
        }


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)), 1)
    return m


def compute_metrics(
    y_true: Sequence[int] | np.ndarray,
    probabilities: np.ndarray,
    labels: Sequence[str],
) -> Metrics:
    """Metrics of predicted ``probabilities`` (n, C) against integer ``y_true`` (n,)."""
    y_true = np.asarray(y_true, dtype=int)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    n_classes = len(labels)
    if probabilities.shape != (len(y_true), n_classes):
        raise ValueError(f"probabilities have shape {probabilities.shape}, expected ({len(y_true)}, {n_classes})")
    if len(y_true) == 0:
        raise ValueError("no samples to evaluate")
    y_pred = probabilities.argmax(axis=1)
    cm = confusion_matrix(y_true, y_pred, n_classes)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    tp = np.diag(cm).astype(np.float64)
    present = support > 0
    recall = np.divide(tp, support, out=np.zeros(n_classes), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros(n_classes), where=predicted > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(n_classes), where=denom > 0)
    auc = {}
    for c, name in enumerate(labels):
        positives = y_true == c
        if positives.any() and (~positives).any():
            auc[name] = float(roc_auc(positives, probabilities[:, c]))
    return Metrics(
        accuracy=float(tp.sum() / len(y_true)),
        macro_f1=float(f1[present].mean()),
        weighted_f1=float((f1 * support).sum() / support.sum()),
        uar=float(recall[present].mean()),
        n=int(len(y_true)),
        confusion=cm.tolist(),
        labels=list(labels),
        auc=auc,
    )


def roc_curve(positives: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates over all thresholds (ties handled as one step)."""
    positives = np.asarray(positives, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    s, p = scores[order], positives[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(p)[distinct]
    fps = (distinct + 1) - tps
    tpr = np.r_[0.0, tps / max(p.sum(), 1)]
    fpr = np.r_[0.0, fps / max((~p).sum(), 1)]
    return fpr, tpr


def roc_auc(positives: np.ndarray, scores: np.ndarray) -> float:
    fpr, tpr = roc_curve(positives, scores)
    return float(np.trapezoid(tpr, fpr))


@dataclass(frozen=True)
class ReliabilityBin:
    """One confidence bin (lower, upper] of a reliability diagram: how many predictions fell in it,
    their mean confidence and the fraction of them that were right (NaN when empty)."""

    lower: float
    upper: float
    count: int
    confidence: float
    accuracy: float

    def to_dict(self) -> dict:
        empty = self.count == 0
        return {"lower": self.lower, "upper": self.upper, "count": self.count,
                "confidence": None if empty else self.confidence, "accuracy": None if empty else self.accuracy}


def reliability_bins(probabilities: np.ndarray, y_true: Sequence[int] | np.ndarray, bins: int = 15) -> list[ReliabilityBin]:
    """Predictions grouped by their top probability into ``bins`` equal-width bins over (0, 1]."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=int)
    if probabilities.ndim != 2 or len(probabilities) != len(y_true):
        raise ValueError(f"probabilities have shape {probabilities.shape}, expected ({len(y_true)}, classes)")
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, bins + 1)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (confidence > lo) & (confidence <= hi)
        n = int(sel.sum())
        out.append(ReliabilityBin(float(lo), float(hi), n, float(confidence[sel].mean()) if n else float("nan"),
                                  float(correct[sel].mean()) if n else float("nan")))
    return out


def expected_calibration_error(probabilities: np.ndarray, y_true: Sequence[int] | np.ndarray, bins: int = 15) -> float:
    """ECE with equal-width confidence bins (Guo et al. 2017, "On Calibration of Modern Neural Networks",
    eq. 3): the mean over predictions of |accuracy - confidence| of their bin."""
    groups = reliability_bins(probabilities, y_true, bins)
    n = sum(b.count for b in groups)
    if n == 0:
        raise ValueError("no samples to evaluate")
    return float(sum(b.count / n * abs(b.accuracy - b.confidence) for b in groups if b.count))


def summarise_folds(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and (population) standard deviation over folds; the deviation is None for a single fold
    (no spread was measured: 0.0 would say that it was, and was nil)."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std()) if arr.size > 1 else None
