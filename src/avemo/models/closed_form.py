"""Closed-form fitting of a linear head: L2-regularised multinomial logistic regression by
full-batch L-BFGS in float64, with sample weights and a per-sample label mask.

Used by models whose head needs no epochs (``closed_form`` encoders such as
:mod:`avemo.models.encoders.logistic`, through :meth:`avemo.models.base.UnimodalModel.fit_closed_form`)
and by the masked softmax of several corpora (:mod:`avemo.training.corpora`). The objective is
scikit-learn's ``LogisticRegression(C=C)`` divided by ``C n`` (see that module's docstring).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avemo.errors import ConfigError


def masked_logits(logits: Tensor, allowed: Tensor | None) -> Tensor:
    """``logits`` with the entries where ``allowed`` (same shape, bool) is False set to -inf."""
    return logits if allowed is None else logits.masked_fill(~allowed, float("-inf"))


def fit_logistic(head: nn.Linear, x: Tensor, y: Tensor, *, C: float, weights: Tensor | None = None,
                 allowed: Tensor | None = None, max_iter: int = 500, tolerance: float = 1e-7) -> dict[str, float]:
    """Fit ``head`` (in place) as an L2-regularised multinomial logistic regression on ``x`` (n, d).

    ``weights`` (n,): sample weights (scaled to mean 1 here); ``allowed`` (n, C) bool: the labels each
    sample's softmax runs over (None: all); ``tolerance``: on the largest gradient entry of
    scikit-learn's objective (``C n`` times this one's), as its ``tol``. Returns ``{"loss",
    "iterations"}``: the final objective and the number of objective evaluations.
    """
    n = x.shape[0]
    if n == 0:
        raise ConfigError("whisper_logreg: no training samples")
    x64 = x.detach().to(torch.float64)
    w = torch.ones(n, dtype=torch.float64) if weights is None else weights.detach().to(torch.float64)
    w = w * (n / w.sum())
    mask = None if allowed is None else allowed.to(torch.bool)
    coef = torch.zeros(head.out_features, head.in_features, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(head.out_features, dtype=torch.float64, requires_grad=True)
    penalty = 1.0 / (2.0 * C * n)
    optimizer = torch.optim.LBFGS([coef, bias], lr=1.0, max_iter=max_iter, tolerance_grad=tolerance / (C * n),
                                  tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")
    iterations = 0

    def objective() -> Tensor:
        nonlocal iterations
        iterations += 1
        optimizer.zero_grad()
        logits = masked_logits(x64 @ coef.T + bias, mask)
        loss = (w * F.cross_entropy(logits, y, reduction="none")).mean() + penalty * (coef ** 2).sum()
        loss.backward()
        return loss

    optimizer.step(objective)
    final = float(objective().detach())
    with torch.no_grad():
        head.weight.copy_(coef.detach().to(head.weight.dtype))
        head.bias.copy_(bias.detach().to(head.bias.dtype))
    return {"loss": final, "iterations": iterations}


def fit_encoder_head(encoder: nn.Module, head: nn.Linear, x: Tensor, y: Tensor, *, weights: Tensor | None = None,
                     allowed: Tensor | None = None) -> dict[str, float]:
    """Fit ``head`` on the features ``encoder`` (a ``closed_form`` encoder: its config has ``C``,
    ``max_iter``, ``tolerance``) gives for ``x``, by :func:`fit_logistic`; the fit's report. The
    unimodal model and a fusion model's closed-form expert both train this way."""
    c = encoder.config
    with torch.no_grad():
        features = encoder(x)
    return fit_logistic(head, features, y, C=c.C, weights=weights, allowed=allowed, max_iter=c.max_iter,
                        tolerance=c.tolerance)
