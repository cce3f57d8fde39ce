"""``sultana_concat_dense``: paper 001's fusion of its audio 1D CNN and video 3D CNN.

Paper: Sultana et al., "Multimodal Emotion Recognition through Deep Fusion of Audio-Visual Data" §III.B.3 ("Fusion Model"): "The second-to-last
layers from the trained audio and video models are combined ... The output is concatenated and then
a dense layer with 128 units and a ReLU activation function is used ... Another dense layer ...
The final output ... represents the probabilities for 8 potential classes". The penultimate layers
are the 64-unit dense layers of ``sultana_audio_cnn1d`` and ``sultana_video_cnn3d``.

Departure: the paper trains the unimodal models first and fuses their trained layers; here the
whole network is one model that can be trained end to end (loading pretrained encoder weights
into ``audio_encoder`` / ``video_encoder`` before training reproduces the paper's two steps).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from avemo.models.fusion.base import FusionConfig, FusionModel
from avemo.models.papers import SULTANA
from avemo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class SultanaFusionConfig(FusionConfig):
    audio: str = "sultana_audio_cnn1d"
    video: str = "sultana_video_cnn3d"
    hidden: int = 128


@register_model
class SultanaConcatDense(FusionModel):
    """Concatenated penultimate layers, dense 128 ReLU, dense softmax (paper 001); see the module docstring."""

    name = "sultana_concat_dense"
    paper = SULTANA.cite("§III.B.3")
    summary = "Paper 001's fusion: concatenated 64-d penultimate layers -> dense 128 ReLU -> dense (softmax)"
    Config = SultanaFusionConfig

    def __init__(self, config: SultanaFusionConfig, num_classes: int):
        super().__init__(config, num_classes)
        dim = self.audio_encoder.feature_dim + self.video_encoder.feature_dim
        self.classifier = nn.Sequential(
            nn.Linear(dim, config.hidden), nn.ReLU(), nn.Linear(config.hidden, num_classes)
        )

    def compute(self, inputs):
        a, v = self.encode(inputs)
        return self.classifier(torch.cat([a, v], dim=1))
