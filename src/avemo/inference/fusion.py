"""Calibrated late fusion of the experts: a weighted, temperature-scaled product of experts.

Paper 000 (Zhang & Zheng, "Enhancing Emotion Recognition Accuracy with CFRSN-LSTM" §6, Table 1) lists multiplicative late
fusion ("Multiplication", 70.56 %, above averaging's 68.82 %) among its baselines: each modality's
network predicts on its own and the class probabilities are multiplied. We use the weighted
form of that product (a product of experts, Hinton 2002), with each expert first calibrated by a
temperature (Guo et al. 2017, "On Calibration of Modern Neural Networks", §4.2):

    log p(c) = sum_m w_m * log softmax(z_m / T_m)(c)  + const,     p renormalised over c.

``z_m`` are the audio expert's logits; the video expert gives probabilities, for which
``log p_v`` plays the role of the logits (``softmax(log p / T)`` is ``p ** (1 / T)`` renormalised).
A missing modality (no audio track, no face in a window) drops its term (its weight is 0 for that
row), so the product of the remaining experts is used. The weights are relative: in each row they
are divided by the largest weight among the experts present, so two experts combine with exactly
the weights configured, and a lone expert gives its own calibrated distribution (weight 1; a weight
applied to a single expert would only sharpen or flatten it, and would distort the neutral + calm
decision of the video expert, whose FER2013 "neutral" is split between the two). Departures from paper 000: its product is
unweighted and uncalibrated, and it trains the two networks jointly on RAVDESS videos; here the
experts are trained apart (the video one on FER2013 photos, not on RAVDESS), so their scales
differ and the weights and temperatures are what makes the product meaningful. How they were
chosen is in the bundle's model card (``avemo/inference/default_model/model_card.md``).

:class:`ProductOfExperts` is an ``nn.Module`` so that the torch and ONNX engines run the same
graph (inputs ``audio_logits`` (B, C), ``video_probs`` (B, C), ``present`` (B, 2) of 0/1;
output ``probabilities`` (B, C)). :func:`decide` turns fused probabilities into a label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from avemo.errors import ConfigError

FUSION_INPUTS = ("audio_logits", "video_probs", "present")
FUSION_OUTPUTS = ("probabilities",)
EPS = 1e-7


@dataclass(frozen=True)
class FusionConfig:
    """Weights and temperatures of the product of experts (see the module docstring)."""

    audio_weight: float = 1.0
    video_weight: float = 0.5
    audio_temperature: float = 1.0
    video_temperature: float = 1.0

    def __post_init__(self) -> None:
        for name in ("audio_weight", "video_weight"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"fusion {name} must be >= 0, got {getattr(self, name)}")
        for name in ("audio_temperature", "video_temperature"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"fusion {name} must be > 0, got {getattr(self, name)}")


def _module_class():
    import torch
    from torch import nn

    class ProductOfExperts(nn.Module):
        """The fusion rule as a graph: (audio logits, video probabilities, presence) -> probabilities."""

        def __init__(self, config: FusionConfig):
            super().__init__()
            self.register_buffer("weights", torch.tensor([config.audio_weight, config.video_weight]))
            self.register_buffer(
                "temperatures", torch.tensor([config.audio_temperature, config.video_temperature])
            )

        def forward(self, audio_logits, video_probs, present):
            log_a = torch.log_softmax(audio_logits / self.temperatures[0], dim=1)
            log_v = torch.log_softmax(torch.log(torch.clamp(video_probs, min=EPS)) / self.temperatures[1], dim=1)
            w = present * self.weights
            w = w / torch.clamp(w.amax(dim=1, keepdim=True), min=EPS)  # relative to the strongest expert present
            return torch.softmax(w[:, 0:1] * log_a + w[:, 1:2] * log_v, dim=1)

    return ProductOfExperts


def product_of_experts(config: FusionConfig):
    """A :class:`ProductOfExperts` module for ``config`` (torch is imported on first use)."""
    return _module_class()(config)


def fusion_inputs(
    audio_logits: np.ndarray | None, video_probs: np.ndarray | None, n: int, classes: int
) -> dict[str, np.ndarray]:
    """The fusion graph's inputs for ``n`` rows, with zeros and ``present = 0`` for what is missing.

    ``audio_logits`` / ``video_probs``: (n, C) arrays whose rows may be NaN where that expert has
    nothing for the row (e.g. a window without a face), or None when the expert is not used at all.
    """
    present = np.zeros((n, 2), dtype=np.float32)
    arrays = []
    for j, values in enumerate((audio_logits, video_probs)):
        if values is None:
            arrays.append(np.zeros((n, classes), dtype=np.float32))
            continue
        values = np.asarray(values, dtype=np.float32).reshape(n, classes)
        ok = ~np.isnan(values).any(axis=1)
        present[:, j] = ok
        arrays.append(np.where(ok[:, None], values, 0.0).astype(np.float32))
    return {"audio_logits": arrays[0], "video_probs": arrays[1], "present": present}


def decide(probs: np.ndarray, labels: Sequence[str], *, calm_decided: bool = True) -> str:
    """The label of a fused distribution.

    Without the audio expert, nothing tells RAVDESS ``calm`` from ``neutral`` (the video expert
    splits FER2013's neutral between the two, see :mod:`avemo.models.pretrained.fer_classifier`):
    with ``calm_decided=False`` their probabilities are added and the pair is reported as neutral.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = list(labels)
    if not calm_decided and "calm" in labels and "neutral" in labels:
        merged = probs.copy()
        merged[labels.index("neutral")] += merged[labels.index("calm")]
        merged[labels.index("calm")] = -np.inf
        return labels[int(np.argmax(merged))]
    return labels[int(np.argmax(probs))]
