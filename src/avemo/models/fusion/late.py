"""Late (decision-level) fusion: each modality has its own classifier; their predictions are combined.

Paper: Zhang & Zheng, "Enhancing Emotion Recognition Accuracy with CFRSN-LSTM" §6, Table 1 rows "Averaging", "Multiplicative
β=0.3" and "Multiplication" (Late, 25.92 M parameters with the 3D ResNeXt-50 and the MFCC CNN),
baselines taken from MSAF (Su et al. 2020, Table 2). Each branch is an encoder plus a linear layer,
i.e. the two unimodal networks; nothing else is learnt, so the count is the sum of theirs
(25,882,056 + 34,024 = 25,916,080 with 8 classes).

* ``late_average``: ``log(mean_m softmax(z_m))`` -- the averaged class probabilities.
* ``late_product``: ``log_softmax(sum_m log_softmax(z_m))`` -- the normalised product of the
  probabilities ("Multiplication").
* ``late_multiplicative``: Liu et al. 2018 ("Learn to Combine Modalities in Multimodal Deep
  Learning", §3.1) multiplicative combination. Training minimises
  ``-sum_i q_i log p_i[y]`` with ``q_i = prod_{j != i} (1 - p_j[y]) ** (beta / (M - 1))``, β = 0.3:
  a modality is trained less on examples another modality already gets right. The weights ``q_i``
  are treated as constants (no gradient), as in boosting-style reweighting; prediction averages
  the probabilities.

Departures -- training (the :meth:`loss` hook): MSAF trains these baselines as decision-level fusion of unimodal
networks; we train both branches jointly but each on its own prediction -- the mean of the two
branch cross-entropies for ``late_average`` / ``late_product``, Liu's loss for
``late_multiplicative`` -- so neither branch relies on the other. The fused output is what is
evaluated. Every input is optional: with one modality missing the model predicts from the other.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from avemo.errors import ConfigError
from avemo.models.base import make_head
from avemo.models.fusion.base import FusionConfig, FusionModel
from avemo.models.papers import ZHANG_ZHENG
from avemo.models.registry import register_model


class LateFusion(FusionModel):
    """Two unimodal networks whose per-class predictions are combined by :meth:`combine`."""

    def __init__(self, config: FusionConfig, num_classes: int):
        super().__init__(config, num_classes)
        self.audio_head = make_head(self.audio_encoder.feature_dim, num_classes)
        self.video_head = make_head(self.video_encoder.feature_dim, num_classes)
        self.inputs = {k: dataclasses.replace(v, optional=True) for k, v in self.inputs.items()}

    @classmethod
    def specs_for(cls, config):
        return {k: dataclasses.replace(v, optional=True) for k, v in super().specs_for(config).items()}

    def combine(self, log_probs: list[Tensor]) -> Tensor:
        raise NotImplementedError

    def compute(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        if inputs.get("audio") is not None:
            out["audio_logits"] = self.audio_head(self.audio_encoder(inputs["audio"]))
        if inputs.get("video") is not None:
            out["video_logits"] = self.video_head(self.video_encoder(inputs["video"]))
        log_probs = [F.log_softmax(z.float(), dim=1) for z in out.values()]
        out["logits"] = self.combine(log_probs)
        return out

    @staticmethod
    def branch_logits(outputs: Mapping[str, Tensor]) -> list[Tensor]:
        return [outputs[k] for k in ("audio_logits", "video_logits") if k in outputs]

    def loss(self, outputs, targets: Tensor) -> Tensor:
        """Mean of the branch cross-entropies (plain cross-entropy when given only fused logits)."""
        if not isinstance(outputs, Mapping) or not self.branch_logits(outputs):
            return super().loss(outputs, targets)
        losses = [F.cross_entropy(z, targets) for z in self.branch_logits(outputs)]
        return torch.stack(losses).mean()


def log_mean_prob(log_probs: list[Tensor]) -> Tensor:
    return torch.logsumexp(torch.stack(log_probs), dim=0) - math.log(len(log_probs))


@register_model
class LateAverage(LateFusion):
    """Averaged class probabilities of the audio and video networks; see the module docstring."""

    name = "late_average"
    paper = ZHANG_ZHENG.cite("§6, Table 1 ('Averaging', late)")
    summary = "Late fusion: average of the two unimodal networks' class probabilities"

    def combine(self, log_probs: list[Tensor]) -> Tensor:
        return log_mean_prob(log_probs)


@register_model
class LateProduct(LateFusion):
    """Normalised product of the audio and video class probabilities; see the module docstring."""

    name = "late_product"
    paper = ZHANG_ZHENG.cite("§6, Table 1 ('Multiplication', late)")
    summary = "Late fusion: normalised product of the two unimodal networks' class probabilities"

    def combine(self, log_probs: list[Tensor]) -> Tensor:
        return F.log_softmax(torch.stack(log_probs).sum(dim=0), dim=1)


@dataclasses.dataclass(frozen=True)
class MultiplicativeConfig(FusionConfig):
    beta: float = 0.3

    def __post_init__(self) -> None:
        if not 0.0 <= self.beta <= 1.0:
            raise ConfigError(f"beta must be in [0, 1], got {self.beta}")


@register_model
class LateMultiplicative(LateFusion):
    """Liu et al. 2018 multiplicative combination (β = 0.3); see the module docstring."""

    name = "late_multiplicative"
    paper = ZHANG_ZHENG.cite("§6, Table 1 ('Multiplicative β=0.3', late; Liu et al. 2018 §3.1)")
    summary = "Late fusion trained with Liu et al.'s multiplicative combination loss (beta 0.3); averaged probabilities"
    Config = MultiplicativeConfig

    def combine(self, log_probs: list[Tensor]) -> Tensor:
        return log_mean_prob(log_probs)

    def loss(self, outputs, targets: Tensor) -> Tensor:
        """``mean_b sum_i -q_i log p_i[y]`` with ``q_i = prod_{j!=i} (1 - p_j[y])^(beta/(M-1))`` (detached)."""
        if not isinstance(outputs, Mapping) or not self.branch_logits(outputs):
            return F.cross_entropy(outputs["logits"] if isinstance(outputs, Mapping) else outputs, targets)
        log_p = torch.stack(
            [F.log_softmax(z.float(), dim=1) for z in self.branch_logits(outputs)]
        )  # (M, B, C)
        log_p_true = log_p.gather(2, targets.view(1, -1, 1).expand(log_p.shape[0], -1, 1)).squeeze(
            2
        )  # (M, B)
        m = log_p.shape[0]
        if m == 1:
            return -log_p_true.mean()
        log_miss = torch.log1p(-log_p_true.exp().clamp(max=1 - 1e-6)).detach() * (self.config.beta / (m - 1))
        log_q = log_miss.sum(dim=0, keepdim=True) - log_miss  # sum over j != i
        return -(log_q.exp() * log_p_true).sum(dim=0).mean()
