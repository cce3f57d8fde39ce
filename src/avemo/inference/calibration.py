"""Calibration of predicted probabilities: temperature scaling and the uncertainty threshold.

* :func:`fit_temperature`: the temperature ``T`` that minimises the negative log-likelihood of
  ``softmax(log p / T)`` on held-out predictions (Guo, Pleiss, Sun & Weinberger 2017, "On
  Calibration of Modern Neural Networks", §4.2); :func:`scaled` applies it.
* :func:`fit_threshold`: ``tau`` of :class:`~avemo.inference.abstention.AbstentionConfig`, the least
  confidence at which held-out answers are right at least ``min_accuracy`` of the time, read from
  an isotonic (monotone) fit of correctness on confidence, so that one lucky bin cannot set it
  (:func:`least_reaching`, which also reads ``min_speech`` off the seconds of speech).

Both are fitted on held-out data (validation speakers, other corpora), never on a test fold.
The expected calibration error that measures the result is :func:`avemo.metrics.expected_calibration_error`.
"""

from __future__ import annotations

import numpy as np

from avemo.errors import ConfigError


def scaled(log_probs: np.ndarray, t: float) -> np.ndarray:
    """``softmax(log_probs / t)`` row by row."""
    z = np.asarray(log_probs, dtype=np.float64) / t
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _nll(log_probs: np.ndarray, y: np.ndarray, t: float) -> float:
    p = scaled(log_probs, t)
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())


def fit_temperature(log_probs: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(T, NLL at T = 1, NLL at T) minimising the NLL of ``softmax(log_probs / T)`` (bounded search on
    log T over [0.05, 20]); ``log_probs`` (N, C) logits or log-probabilities, ``y`` (N,) class indices."""
    from scipy.optimize import minimize_scalar

    log_probs, y = _checked(log_probs, y)
    res = minimize_scalar(lambda log_t: _nll(log_probs, y, float(np.exp(log_t))),
                          bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    t = float(np.exp(res.x))
    return t, _nll(log_probs, y, 1.0), _nll(log_probs, y, t)


def fit_threshold(probs: np.ndarray, y: np.ndarray, min_accuracy: float = 0.5) -> float:
    """The least top probability at which an isotonic fit of "the answer is right" on the top
    probability reaches ``min_accuracy``; 1.0 when it never does (every answer would be flagged)."""
    probs, y = _checked(probs, y)
    reached = least_reaching(probs.max(axis=1), probs.argmax(axis=1) == y, min_accuracy)
    return 1.0 if reached is None else reached


def least_reaching(scores: np.ndarray, correct: np.ndarray, min_accuracy: float = 0.5) -> float | None:
    """The least of ``scores`` (N,) at which an isotonic (non-decreasing) fit of ``correct`` (N,) on the
    scores reaches ``min_accuracy``; None when it never does. The score is the top probability for
    ``tau`` (:func:`fit_threshold`), or the seconds of speech an answer was made from for
    ``min_speech`` (``benchmarks/short_speech.py``)."""
    from sklearn.isotonic import IsotonicRegression

    if not 0.0 < min_accuracy <= 1.0:
        raise ConfigError(f"min_accuracy must lie in (0, 1], got {min_accuracy}")
    scores = np.asarray(scores, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if scores.ndim != 1 or scores.shape != correct.shape or len(scores) == 0:
        raise ConfigError(f"least_reaching needs N scores and N outcomes, N > 0; got {scores.shape} and {correct.shape}")
    order = np.argsort(scores, kind="stable")
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit_transform(scores[order],
                                                                                          correct[order])
    reached = np.nonzero(fitted >= min_accuracy)[0]
    return float(scores[order][reached[0]]) if len(reached) else None


def _checked(values: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(values, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if values.ndim != 2 or len(values) != len(y) or len(y) == 0:
        raise ConfigError(f"calibration needs (N, C) scores and N labels, N > 0; got {values.shape} and {y.shape}")
    if y.min() < 0 or y.max() >= values.shape[1]:
        raise ConfigError(f"labels must be class indices in [0, {values.shape[1]}), got {y.min()}..{y.max()}")
    return values, y
