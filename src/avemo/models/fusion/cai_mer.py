"""``cai_mer1`` / ``cai_mer2``: paper 003's DNN fusion of speech (SER_1 / SER_2) and face (FER_2) features.

Paper: Cai et al., "Multi-Modal Emotion Recognition From Speech and Facial Expression Based on Deep Learning" §II.C and §III.C: "model MER_1 uses model
SER_1 to extract speech emotion features and FER_2 to extract facial emotion features, their
outputs are fused by DNNs and use SoftMax to classify. Model MER_2 uses SER_2 ... and model FER_2".
Departures: the DNN is not specified; we use two hidden layers (256 and 128 units, ReLU, dropout 0.5) on the
concatenated features, then the softmax layer. As in ``sultana_concat_dense``, the whole network is
one model (the paper's unimodal models can be pretrained and loaded into the encoders).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from avemo.models.fusion.base import FusionConfig, FusionModel
from avemo.models.papers import CAI
from avemo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class CaiMer1Config(FusionConfig):
    audio: str = "cai_ser1"
    video: str = "cai_fer2"
    hidden: tuple[int, ...] = (256, 128)
    dropout: float = 0.5


@dataclasses.dataclass(frozen=True)
class CaiMer2Config(CaiMer1Config):
    audio: str = "cai_ser2"


class _CaiMer(FusionModel):
    def __init__(self, config: CaiMer1Config, num_classes: int):
        super().__init__(config, num_classes)
        layers: list[nn.Module] = []
        width = self.audio_encoder.feature_dim + self.video_encoder.feature_dim
        for h in config.hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(config.dropout)]
            width = h
        self.classifier = nn.Sequential(*layers, nn.Linear(width, num_classes))

    def compute(self, inputs):
        a, v = self.encode(inputs)
        return self.classifier(torch.cat([a, v], dim=1))


@register_model
class CaiMer1(_CaiMer):
    """MER_1: SER_1 speech features + FER_2 face features fused by a DNN; see the module docstring."""

    name = "cai_mer1"
    paper = CAI.cite("§II.C, §III.C (model MER_1)")
    summary = "MER_1: SER_1 + FER_2 features, DNN fusion (256-128) and softmax"
    Config = CaiMer1Config


@register_model
class CaiMer2(_CaiMer):
    """MER_2: SER_2 speech features + FER_2 face features fused by a DNN; see the module docstring."""

    name = "cai_mer2"
    paper = CAI.cite("§II.C, §III.C (model MER_2)")
    summary = "MER_2: SER_2 (CNN + Bi-LSTM) + FER_2 features, DNN fusion (256-128) and softmax"
    Config = CaiMer2Config
