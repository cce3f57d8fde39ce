"""``mmtm``: Multimodal Transfer Module (Joze et al., CVPR 2020) between the encoders' stages.

Paper: Zhang & Zheng, "Enhancing Emotion Recognition Accuracy with CFRSN-LSTM" §6, Table 1 row "MMTM" (model-level,
31.97 M), a baseline from MSAF (Su et al. 2020, Table 2). MMTM (Joze, Shaban, Iuzzolino, Koishida,
"MMTM: Multimodal Transfer Module for CNN Fusion", §3): at a pair of stages with features ``A``
(``C_A`` channels) and ``B`` (``C_B``), squeeze each by global average pooling, ``Z = W [S_A, S_B] +
b`` (ReLU), ``E_A = W_A Z + b_A``, ``E_B = W_B Z + b_B``, and recalibrate ``Ã = 2 σ(E_A) ⊙ A``,
``B̃ = 2 σ(E_B) ⊙ B`` (the paper's gating; public ports of the code use a plain σ). The joint size
follows the authors' code, ``C_Z = int(2 (C_A + C_B) / ratio)`` with ratio 4. Each stream keeps its
own classifier and the prediction is the mean of the two streams' logits.

Departures: MSAF does not publish its MMTM baseline. We insert MMTM after the last three stages of
each encoder (Joze et al. fuse the last residual stages of their CNNs): ResNeXt layer2/3/4 with the
MFCC CNN's three blocks. This gives 31,793,264 parameters with 8 classes (paper: 31.97 M, -0.6 %).
With a vector encoder (``au_mlp``) the "stages" are its hidden layers (as many points as it has).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from avemo.errors import ConfigError
from avemo.models.base import expand_like, global_average, make_head
from avemo.models.fusion.base import FusionConfig, FusionModel, fusion_points, run_encoders
from avemo.models.papers import ZHANG_ZHENG
from avemo.models.registry import register_model


class MMTMBlock(nn.Module):
    """Squeeze both inputs, excite each: returns ``(2σ(E_A) ⊙ A, 2σ(E_B) ⊙ B)``."""

    def __init__(self, channels_a: int, channels_b: int, ratio: float = 4.0):
        super().__init__()
        dim = channels_a + channels_b
        hidden = max(1, int(2 * dim / ratio))
        self.squeeze = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU())
        self.excite_a = nn.Linear(hidden, channels_a)
        self.excite_b = nn.Linear(hidden, channels_b)

    def forward(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        z = self.squeeze(torch.cat([global_average(a), global_average(b)], dim=1))
        gate_a = 2 * torch.sigmoid(self.excite_a(z))
        gate_b = 2 * torch.sigmoid(self.excite_b(z))
        return a * expand_like(gate_a, a).to(a.dtype), b * expand_like(gate_b, b).to(b.dtype)


@dataclasses.dataclass(frozen=True)
class MmtmConfig(FusionConfig):
    points: int = 3
    ratio: float = 4.0

    def __post_init__(self) -> None:
        if self.points < 1:
            raise ConfigError(f"points must be at least 1, got {self.points}")


@register_model
class Mmtm(FusionModel):
    """Two streams exchanging channel gates through MMTM blocks after their last stages; see the module docstring."""

    name = "mmtm"
    paper = ZHANG_ZHENG.cite("§6, Table 1 ('MMTM', model; Joze et al. 2020 §3)")
    summary = "Mid-level fusion: MMTM squeeze-excitation blocks after the last 3 stages; mean of the two streams' logits"
    Config = MmtmConfig

    def __init__(self, config: MmtmConfig, num_classes: int):
        super().__init__(config, num_classes)
        a, v = self.audio_encoder, self.video_encoder
        self.points = fusion_points(a, v, config.points)
        self.blocks = nn.ModuleList(
            MMTMBlock(a.stage_channels[pa], v.stage_channels[pv], config.ratio) for pa, pv in self.points
        )
        self.audio_head = make_head(a.feature_dim, num_classes)
        self.video_head = make_head(v.feature_dim, num_classes)

    def compute(self, inputs):
        a, v = self.audio_encoder, self.video_encoder
        ha, hv = run_encoders(a, v, inputs["audio"], inputs["video"], self.points, self.blocks)
        za, zv = self.audio_head(a.pool(ha)), self.video_head(v.pool(hv))
        return {"logits": (za + zv) / 2, "audio_logits": za, "video_logits": zv}
