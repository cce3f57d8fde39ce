"""``mcbp``: multimodal compact bilinear pooling (Fukui et al. 2016) of the two encoder features.

Paper: Zhang & Zheng, "Enhancing Emotion Recognition Accuracy with CFRSN-LSTM" §6, Table 1 row "MCBP" (early, 51.03 M), a
baseline from MSAF (Su et al. 2020, Table 2). MCB (Fukui et al. 2016, "Multimodal Compact Bilinear
Pooling for Visual Question Answering and Visual Grounding", §3.1-3.2): each feature vector is
count-sketched to ``d`` dims, the sketches are convolved through the FFT (the compact form of their
outer product), then signed square root and L2 normalisation, then a linear classifier. The FFT
runs in float32 even under autocast (:mod:`avemo.models.layers.sketch`).

Departures: MSAF does not publish this baseline's settings (d, dropout, where MCB is applied:
we pool the two final feature vectors). Its 51.03 M only fits if the two
count sketches are counted as dense ``in x d`` matrices, as PyTorch CBP implementations that store
them as frozen ``nn.Parameter`` do: the encoders (25,886,368 without their classification layers)
+ the classifier (8 d + 8) + the sketches ((2048 + 1664) d) give 51.03 M for d ~ 6,760. We take
d = 6,750 (``output_dim``), which gives 51.00 M counted that way. We store the sketches the
efficient way -- input-to-output index and sign vectors, as buffers (constants, in ``state_dict``,
no gradient) -- so ``count_parameters`` reports the 25.94 M trainable parameters and
``model.dense_sketch_size`` the 25.06 M dense-equivalent sketch entries.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from avemo.errors import ConfigError
from avemo.models.fusion.base import FusionConfig, FusionModel
from avemo.models.layers.sketch import CompactBilinearPooling
from avemo.models.papers import ZHANG_ZHENG
from avemo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class McbpConfig(FusionConfig):
    output_dim: int = 6750
    dropout: float = 0.1
    sketch_seed: int = 0

    def __post_init__(self) -> None:
        if self.output_dim < 2:
            raise ConfigError(f"output_dim must be at least 2, got {self.output_dim}")


@register_model
class Mcbp(FusionModel):
    """Compact bilinear pooling of the two pooled features (count sketch + FFT); see the module docstring."""

    name = "mcbp"
    paper = ZHANG_ZHENG.cite("§6, Table 1 ('MCBP', early; Fukui et al. 2016 §3)")
    summary = (
        "Early fusion: compact bilinear pooling (count sketch + FFT, d=6750), signed sqrt, L2, classifier"
    )
    Config = McbpConfig

    def __init__(self, config: McbpConfig, num_classes: int):
        super().__init__(config, num_classes)
        self.pooling = CompactBilinearPooling(
            self.video_encoder.feature_dim,
            self.audio_encoder.feature_dim,
            config.output_dim,
            seed=config.sketch_seed,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.output_dim, num_classes)

    @property
    def dense_sketch_size(self) -> int:
        """The sketches' size as dense matrices (what MSAF's parameter count includes)."""
        return self.pooling.dense_equivalent_size

    def compute(self, inputs):
        a, v = self.encode(inputs)
        z = self.pooling(v, a)  # float32
        z = torch.sign(z) * (torch.sqrt(z.abs() + 1e-6) - 1e-3)  # signed square root, finite gradient at 0
        z = F.normalize(z, dim=1)
        return self.classifier(self.dropout(z))
