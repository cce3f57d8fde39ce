"""Attention blocks: attention-weighted pooling over time, and a small Transformer encoder."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from avemo.errors import ConfigError


class AttentionPooling(nn.Module):
    """Attention-weighted average over time: ``(B, T, C) -> (B, C)``.

    Scores ``v^T tanh(W h_t + b)`` are normalised with a softmax over ``t`` and used to average the
    ``h_t`` -- the "attention scores ... weighted average" of paper 002
    (Gao & Guo, "Multimodal emotion recognition based on fusion with residual connection" §3.2), in the additive form of Bahdanau et al.
    """

    def __init__(self, dim: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or dim
        self.project = nn.Linear(dim, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)

    def forward(self, h: Tensor, mask: Tensor | None = None) -> Tensor:
        """``mask`` ``(B, T)`` bool, True at real steps: padded steps get no weight."""
        scores = self.score(torch.tanh(self.project(h))).float()
        if mask is not None:
            scores = scores.masked_fill(~mask.unsqueeze(-1), float("-inf"))
        weights = torch.softmax(scores, dim=1).to(h.dtype)
        return (weights * h).sum(dim=1)


def sinusoidal_positions(length: int, dim: int, device=None, dtype=None) -> Tensor:
    """The fixed sine/cosine position embedding of Vaswani et al. 2017, ``(length, dim)``."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    half = dim // 2
    freq = torch.exp(
        torch.arange(half, device=device, dtype=torch.float32) * (-math.log(10000.0) / max(half - 1, 1))
    )
    angles = position * freq.unsqueeze(0)
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros(length, 1, device=device)], dim=1)
    return emb.to(dtype or torch.float32)


class SelfAttentionEncoder(nn.Module):
    """Pre-norm Transformer encoder over ``(B, T, d)`` as used by CFN-SR for audio feature selection.

    Like the MulT-derived encoder of the CFN-SR code (github skeletonNN/CFN-SR,
    ``modules/transformer.py``): inputs scaled by ``sqrt(d)`` plus sinusoidal positions, embedding
    dropout, ``layers`` pre-norm blocks (attention + 4d ReLU feed-forward), a final LayerNorm, and an
    optional causal mask. Returns the encoded sequence ``(B, T, d)``.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        layers: int,
        *,
        dropout: float = 0.1,
        embed_dropout: float = 0.3,
        causal: bool = True,
    ):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"embedding size {dim} is not divisible by {heads} heads")
        layer = nn.TransformerEncoderLayer(
            dim,
            heads,
            dim_feedforward=4 * dim,
            dropout=dropout,
            activation="relu",
            batch_first=True,
            norm_first=True,
        )
        self.layers = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(dim), enable_nested_tensor=False)
        self.embed_dropout = nn.Dropout(embed_dropout)
        self.scale = math.sqrt(dim)
        self.causal = causal

    def forward(self, x: Tensor) -> Tensor:
        length = x.shape[1]
        x = self.scale * x + sinusoidal_positions(length, x.shape[2], device=x.device, dtype=x.dtype)
        x = self.embed_dropout(x)
        mask = None
        if self.causal and length > 1:
            mask = torch.triu(torch.full((length, length), float("-inf"), device=x.device), diagonal=1)
        return self.layers(x, mask=mask, is_causal=mask is not None)
