"""Marginal Fisher Analysis (Yan et al. 2007), the supervised latent-space fusion of paper 004.

Paper: Srinivas & Mishra, "Human Emotion Recognition by Integrating Facial and Speech Features: An Implementation of Multimodal Framework using CNN" §III.D (Eq. 15-22): with the samples' joint
audio-visual feature vectors ``x_i``,

* intrinsic graph ``S``: ``S_ij = 1`` when ``j`` is one of the ``k1`` nearest neighbours of ``i``
  within its class (intra-class compactness, Eq. 15-17);
* penalty graph ``S^p``: for each class ``c``, the ``k2`` nearest pairs ``(i, j)`` with ``i`` in
  ``c`` and ``j`` outside it get ``S^p_ij = 1`` (inter-class separability, Eq. 18-19);
* ``L = D - S`` and ``L^p = D^p - S^p`` (graph Laplacians), and the projection ``W`` minimises
  ``tr(Wᵀ Xᵀ L X W) / tr(Wᵀ Xᵀ L^p X W)`` (Eq. 20): the generalised eigenproblem
  ``Xᵀ L X w = λ Xᵀ L^p X w`` (Eq. 22), keeping the eigenvectors of the smallest eigenvalues.

Departures: both graphs are symmetrised (Yan et al.'s definition: ``i`` in the neighbourhood of
``j`` *or* ``j`` in that of ``i``); ``Xᵀ L^p X`` gets a ridge ``reg * tr/D`` so the problem stays
definite when there are more dimensions than samples (Yan et al. first apply PCA for this);
the projected features are rescaled to unit variance on the training set (the eigenvectors'
scale is arbitrary and the CNN after the projection trains better on standardised inputs).
Cost: ``O(n²)`` memory for the pairwise distances of the ``n`` training samples.
"""

from __future__ import annotations

import numpy as np
import scipy  # scipy.linalg loads on first use (SciPy's lazy submodules): a faster import

from avemo.errors import ConfigError


def _pairwise_sq_distances(x: np.ndarray) -> np.ndarray:
    sq = np.einsum("ij,ij->i", x, x)
    return np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0)


def mfa_graphs(x: np.ndarray, y: np.ndarray, k1: int, k2: int) -> tuple[np.ndarray, np.ndarray]:
    """The intrinsic (``S``) and penalty (``S^p``) adjacency matrices, symmetric 0/1 ``(n, n)``."""
    n = x.shape[0]
    dist = _pairwise_sq_distances(x)
    s = np.zeros((n, n))
    sp = np.zeros((n, n))
    for c in np.unique(y):
        inside = np.flatnonzero(y == c)
        outside = np.flatnonzero(y != c)
        if len(inside) > 1 and k1 > 0:
            sub = dist[np.ix_(inside, inside)].copy()
            np.fill_diagonal(sub, np.inf)
            k = min(k1, len(inside) - 1)
            nearest = np.argpartition(sub, k - 1, axis=1)[:, :k]
            s[np.repeat(inside, k), inside[nearest.ravel()]] = 1.0
        if len(outside) and k2 > 0:
            sub = dist[np.ix_(inside, outside)]
            k = min(k2, sub.size)
            flat = np.argpartition(sub.ravel(), k - 1)[:k]
            rows, cols = np.unravel_index(flat, sub.shape)
            sp[inside[rows], outside[cols]] = 1.0
    s = np.maximum(s, s.T)
    sp = np.maximum(sp, sp.T)
    return s, sp


def marginal_fisher_analysis(
    x: np.ndarray, y: np.ndarray, dim: int, *, k1: int = 5, k2: int = 20, reg: float = 1e-3
) -> tuple[np.ndarray, np.ndarray]:
    """Fit MFA on samples ``x`` (n, D) with labels ``y`` (n,); returns ``(mean (D,), W (D, dim))``.

    Project new samples with ``(x - mean) @ W``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ConfigError(f"MFA: expected samples (n, D) and labels (n,), got {x.shape} and {y.shape}")
    n, d = x.shape
    if len(np.unique(y)) < 2:
        raise ConfigError(f"MFA: needs at least 2 classes in the training data, got {len(np.unique(y))}")
    if not 1 <= dim <= d:
        raise ConfigError(f"MFA: latent dim {dim} must be between 1 and the {d} input dims")
    if not np.isfinite(x).all():
        raise ConfigError("MFA: the training features contain NaN or infinite values")
    mean = x.mean(axis=0)
    xc = x - mean
    s, sp = mfa_graphs(xc, y, k1, k2)
    lap = np.diag(s.sum(axis=1)) - s
    lap_p = np.diag(sp.sum(axis=1)) - sp
    a = xc.T @ lap @ xc
    b = xc.T @ lap_p @ xc
    b = (b + b.T) / 2 + reg * max(np.trace(b) / d, 1e-12) * np.eye(d)
    a = (a + a.T) / 2
    _, vectors = scipy.linalg.eigh(a, b)  # ascending eigenvalues: the most discriminative first
    w = vectors[:, :dim]
    scale = (xc @ w).std(axis=0)
    w = w / np.where(scale > 1e-12, scale, 1.0)
    return mean, w
