"""``cfn_sr``: cross-modal fusion with self-attention and a residual structure (Fu et al. 2021).

Paper: Zhang & Zheng, "Enhancing Emotion Recognition Accuracy with CFRSN-LSTM" §6, Table 1 row "CFN-SR" (model-level,
26.30 M, 75.76 %), i.e. Fu, Liu, Wang, Qi, Fu, Zhou, Li, "A cross-modal fusion network based on
self-attention and residual structure for multimodal emotion recognition" (arXiv 2111.02172): the
MFCC CNN and 3D ResNeXt-50 features enter a cross-modal block, where self-attention selects the
audio features, the selected audio features attend over the video feature map, and a residual
connection keeps the original video features; the fused video representation is concatenated
("spliced") with the audio representation and classified.

We follow the authors' code (github skeletonNN/CFN-SR, ``networks/msaf_ravdess.py``,
``CrossModalAttentionLayer(k=64, x_channels=2048, y_size=64)`` with its audio
``TransformerEncoder(embed_dim=64, num_heads=8, layers=5, attn_dropout=0.1, relu_dropout=0.1,
res_dropout=0.1, embed_dropout=0.3, attn_mask=True)``):

1. audio tokens ``(B, 26, 64)`` (the MFCC CNN's last block, time-major) -> 5-layer pre-norm
   Transformer -> the last time step ``s`` (B, 64);
2. for every video position ``p`` of ResNeXt's layer4 map (B, 2048, T, H, W):
   ``e_p = w^T tanh(U x_p + V s)`` (k = 64), ``α = softmax_p(e)``;
3. residual: ``x'_p = α_p x_p + x_p``; global average pooling -> 2048;
4. ``Linear([x' ; audio 1664] -> C)``.

This gives 26,301,417 parameters with 8 classes (paper 26.30 M). Departures: the code's attention
map sums the maps of all examples of the batch (a bug: ``res += i`` over the batch); ours is per
example. The code's audio transformer is left commented out in the published file; we use its
stated configuration. When the video encoder is a vector encoder (``au_mlp``) there is one
"position", where a softmax is always 1: we gate it with a sigmoid instead, so the audio still
modulates the video features. If the audio encoder's last stage is not 64 channels, its tokens are
first projected to 64.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from avemo.errors import ConfigError
from avemo.models.fusion.base import FusionConfig, FusionModel
from avemo.models.layers.attention import SelfAttentionEncoder
from avemo.models.papers import ZHANG_ZHENG
from avemo.models.registry import register_model


class CrossModalResidualBlock(nn.Module):
    """Audio summary ``s`` (B, d) attends over the video positions ``x`` (B, L, C); ``α x + x``."""

    def __init__(self, video_channels: int, audio_dim: int, k: int):
        super().__init__()
        self.video_affine = nn.Linear(video_channels, k)
        self.audio_affine = nn.Linear(audio_dim, k, bias=False)
        self.score = nn.Linear(k, 1)

    def forward(self, positions: Tensor, summary: Tensor) -> Tensor:
        e = self.score(
            torch.tanh(self.video_affine(positions) + self.audio_affine(summary).unsqueeze(1))
        ).squeeze(2)
        e = e.float()
        weights = torch.sigmoid(e) if e.shape[1] == 1 else torch.softmax(e, dim=1)
        return positions * weights.unsqueeze(2).to(positions.dtype) + positions


@dataclasses.dataclass(frozen=True)
class CfnSrConfig(FusionConfig):
    embed_dim: int = 64
    heads: int = 8
    layers: int = 5
    attention_dim: int = 64
    dropout: float = 0.1
    embed_dropout: float = 0.3

    def __post_init__(self) -> None:
        if self.embed_dim % self.heads:
            raise ConfigError(f"embed_dim {self.embed_dim} must be divisible by heads {self.heads}")


@register_model
class CfnSr(FusionModel):
    """Self-attention audio selection, cross-modal attention on the video map with a residual; see the module docstring."""

    name = "cfn_sr"
    paper = ZHANG_ZHENG.cite("§6, Table 1 ('CFN-SR'; Fu et al. 2021, code skeletonNN/CFN-SR)")
    summary = "Cross-modal block: 5-layer self-attention on audio, audio-guided attention over video positions + residual, concat, FC"
    Config = CfnSrConfig

    def __init__(self, config: CfnSrConfig, num_classes: int):
        super().__init__(config, num_classes)
        a, v = self.audio_encoder, self.video_encoder
        audio_channels = a.stage_channels[-1]
        self.audio_projection: nn.Module = (
            nn.Identity()
            if audio_channels == config.embed_dim
            else nn.Linear(audio_channels, config.embed_dim)
        )
        self.build_audio_path(config, audio_channels)
        self.audio_attention = SelfAttentionEncoder(
            config.embed_dim,
            config.heads,
            config.layers,
            dropout=config.dropout,
            embed_dropout=config.embed_dropout,
        )
        self.cross = CrossModalResidualBlock(v.stage_channels[-1], config.embed_dim, config.attention_dim)
        self.classifier = nn.Linear(v.feature_dim + a.feature_dim, num_classes)

    def build_audio_path(self, config: CfnSrConfig, audio_channels: int) -> None:
        """Hook for variants that process the audio tokens before the self-attention (CFNSR-LSTM)."""

    def audio_sequence(self, tokens: Tensor) -> Tensor:
        """Audio tokens ``(B, L, C)`` -> ``(B, L, embed_dim)`` fed to the self-attention."""
        return self.audio_projection(tokens)

    def compute(self, inputs):
        a, v = self.audio_encoder, self.video_encoder
        ha = a.run_stages(a.prepare(inputs["audio"]))
        hv = v.run_stages(v.prepare(inputs["video"]))
        selected = self.audio_attention(self.audio_sequence(a.tokens(ha)))[:, -1]  # last time step
        positions = v.tokens(hv)  # (B, L, C)
        fused = self.cross(positions, selected)
        hv = fused.transpose(1, 2).reshape(hv.shape)
        return self.classifier(torch.cat([v.pool(hv), a.pool(ha)], dim=1))
