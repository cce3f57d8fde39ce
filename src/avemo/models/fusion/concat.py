"""``concat_fc``: early (feature-level) fusion by concatenation and a fully connected classifier.

Paper: Zhang & Zheng, "Enhancing Emotion Recognition Accuracy with CFRSN-LSTM" §6, Table 1 row "Concat + FC" (early, 26.87 M),
a baseline from MSAF (Su et al. 2020, Table 2). The pooled features of the two encoders (2048 from
the 3D ResNeXt-50, 1664 from the MFCC CNN) are concatenated and classified by
``Linear(3712, 256) - ReLU - dropout 0.5 - Linear(256, C)``. Departures: MSAF does not publish
this baseline (the 256 units and the dropout are our reading of its parameter count);
its 26.87 M equals the two unimodal networks *with* their own classification layers
(25,916,080) plus this 256-unit classifier (952,584): those two unimodal layers are not used by a
concatenation model, so we leave them out and have 26,838,952 parameters (-0.1 %).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from avemo.models.fusion.base import FusionConfig, FusionModel
from avemo.models.papers import ZHANG_ZHENG
from avemo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class ConcatConfig(FusionConfig):
    hidden: int = 256
    dropout: float = 0.5


@register_model
class ConcatFc(FusionModel):
    """Concatenated encoder features, one hidden FC layer, classifier; see the module docstring."""

    name = "concat_fc"
    paper = ZHANG_ZHENG.cite("§6, Table 1 ('Concat + FC', early)")
    summary = "Early fusion: concatenated encoder features -> FC 256 -> classifier"
    Config = ConcatConfig

    def __init__(self, config: ConcatConfig, num_classes: int):
        super().__init__(config, num_classes)
        dim = self.audio_encoder.feature_dim + self.video_encoder.feature_dim
        self.classifier = nn.Sequential(
            nn.Linear(dim, config.hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, num_classes),
        )

    def compute(self, inputs):
        a, v = self.encode(inputs)
        return self.classifier(torch.cat([v, a], dim=1))
