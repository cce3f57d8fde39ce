"""``gao_mha_residual``: paper 002's fusion, ``H = LayerNorm(F + MultiHead(F))`` over Bi-LSTM features.

Paper: Gao & Guo, "Multimodal emotion recognition based on fusion with residual connection" §4.2 (attention, Eq. 8-9) and §4.3 (residual
connection, Eq. 10: "H = Norm(F + MultiHead(F)) where ... F represents the feature extracted by
Bi-LSTM"); audio encoder §3.2 (``gao_bilstm_attention``), video encoder §3.3 (a 3D CNN with
convolution, pooling and fully connected layers, whose output vector is the video feature).

We form ``F`` from each modality's last-stage features (``tokens``: the per-frame Bi-LSTM features
for audio, B x T x 256; one token for a video feature vector) plus its pooled feature (for audio the
encoder's attention-weighted average, the paper's "final feature vector") as one more token, each
projected to ``d_model`` = 256 and tagged with a learnt modality embedding; then
``H = LayerNorm(F + MHA(F))`` with 8 heads; the audio and video tokens of ``H`` are averaged
separately, concatenated, and classified by a linear layer.

Departures: the paper's setting is conversational (IEMOCAP dialogue context and text); here the
tokens are the frames of one clip and its video feature. The paper does not specify its 3D CNN;
our default is paper 001's (``sultana_video_cnn3d``), the concrete small 3D CNN of this project;
any video encoder can be chosen (``video="au_mlp"`` for the AU benchmark).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from avemo.errors import ConfigError
from avemo.models.fusion.base import FusionConfig, FusionModel
from avemo.models.papers import GAO_GUO
from avemo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class GaoFusionConfig(FusionConfig):
    audio: str = "gao_bilstm_attention"
    video: str = "sultana_video_cnn3d"
    d_model: int = 256
    heads: int = 8
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.d_model % self.heads:
            raise ConfigError(f"d_model {self.d_model} must be divisible by heads {self.heads}")


@register_model
class GaoMhaResidual(FusionModel):
    """Multi-head self-attention with a residual connection and LayerNorm over audio+video tokens; see the module docstring."""

    name = "gao_mha_residual"
    paper = GAO_GUO.cite("§4.2-4.3 (Eq. 8-10)")
    summary = (
        "Paper 002's fusion: H = LayerNorm(F + MultiHead(F)) over Bi-LSTM audio frames and the video feature"
    )
    Config = GaoFusionConfig

    def __init__(self, config: GaoFusionConfig, num_classes: int):
        super().__init__(config, num_classes)
        a, v = self.audio_encoder, self.video_encoder
        d = config.d_model
        self.audio_projection = nn.Linear(a.stage_channels[-1], d)
        self.video_projection = nn.Linear(v.stage_channels[-1], d)
        self.audio_summary_projection = nn.Linear(a.feature_dim, d)
        self.video_summary_projection = nn.Linear(v.feature_dim, d)
        self.modality_embedding = nn.Parameter(torch.zeros(2, d))
        self.attention = nn.MultiheadAttention(d, config.heads, dropout=config.dropout, batch_first=True)
        self.norm = nn.LayerNorm(d)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(2 * d, num_classes)

    def compute(self, inputs):
        a, v = self.audio_encoder, self.video_encoder
        ha = a.run_stages(a.prepare(inputs["audio"]))
        hv = v.run_stages(v.prepare(inputs["video"]))
        ta = torch.cat(
            [self.audio_projection(a.tokens(ha)), self.audio_summary_projection(a.pool(ha)).unsqueeze(1)],
            dim=1,
        )
        tv = torch.cat(
            [self.video_projection(v.tokens(hv)), self.video_summary_projection(v.pool(hv)).unsqueeze(1)],
            dim=1,
        )
        ta = ta + self.modality_embedding[0]
        tv = tv + self.modality_embedding[1]
        f = torch.cat([ta, tv], dim=1)
        attended, _ = self.attention(f, f, f, need_weights=False)
        h = self.norm(f + self.dropout(attended))
        la = ta.shape[1]
        pooled = torch.cat([h[:, :la].mean(dim=1), h[:, la:].mean(dim=1)], dim=1)
        return self.classifier(self.dropout(pooled))
