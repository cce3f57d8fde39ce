"""Classification metrics of the honest protocol: accuracy, macro-F1, UAR, confusion, per-class ROC/AUC,
and weighted F1 (per-class F1 weighted by the class's support, MELD's headline metric).

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


def summarise_folds(values: Sequence[float]) -> tuple[float, float]:
    """Mean and (population) standard deviation over folds."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std())
