"""Paper 004's "FERCNN": a 1D CNN over a feature vector read as a one-channel sequence.

Paper: Srinivas & Mishra, "Human Emotion Recognition by Integrating Facial and Speech Features: An Implementation of Multimodal Framework using CNN" §III.E and its Fig. 1 layer table, which we
follow layer by layer: Conv1D(256, k=3) + max-pool | Conv1D(128, k=3) + max-pool + dropout 0.2 |
Conv1D(64, k=3) + max-pool + dropout 0.2 | Conv1D(64, k=3) + max-pool | Conv1D(32, k=3) + max-pool |
flatten | dense 256 (ReLU) | dropout 0.2 | dense C (softmax). With a 170-long input and 6 classes
this is exactly the table's total of 152,614 parameters (its per-layer figures 1,824 and 24,648 are
typos: the total only adds up with 1,024 and 24,640, i.e. k=3 on one input channel).

Departures: the table's pooled lengths (168 -> 53, 51 -> 17, 15 -> 5, 3 -> 3, 1 -> 1) fit no single
pool size; we pool by 3 (stride 3) wherever the remaining convolutions still fit, and by 1
otherwise, which reproduces 17 -> 5, 3 -> 3 and 1 -> 1 (168 -> 56 instead of 53). Activations are
ReLU ("Relu activation function is used in the dense layers", the convolutions' ``Act`` unnamed).

As the unimodal audio model ``fercnn`` (paper 004's audio-only mode), the input vector is the
per-clip mean and standard deviation of 40 MFCCs (our ``mfcc``; the paper's audio features are
MFCC, ZCR, pitch and energy, of which "MFCC produced promising results"). ``mfa_fercnn`` feeds it
the MFA latent vector instead.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from avemo.models.base import Encoder, check_min_size
from avemo.models.inputs import InputSpec
from avemo.models.papers import SRINIVAS_MISHRA
from avemo.models.registry import register_model

CONV_WIDTHS = (256, 128, 64, 64, 32)
DROPOUT_AFTER = (False, True, True, False, False)
MIN_LENGTH = 11


def fercnn_pools(length: int) -> list[int]:
    """Pool size (3 or 1) of each block for an input of ``length``, and check it fits."""
    check_min_size("fercnn", "input length", length, MIN_LENGTH)
    pools = []
    for i in range(len(CONV_WIDTHS)):
        length -= 2  # 'valid' k=3 convolution
        remaining = len(CONV_WIDTHS) - i - 1
        pool = 3 if length // 3 >= 2 * remaining + 1 else 1
        pools.append(pool)
        length //= pool
    return pools


def fercnn_stages(length: int, dropout: float = 0.2) -> tuple[nn.ModuleList, list[int]]:
    """The five conv blocks and the dense-256 block for a one-channel input of ``length``."""
    pools = fercnn_pools(length)
    blocks, width = [], 1
    for out, pool, drop in zip(CONV_WIDTHS, pools, DROPOUT_AFTER, strict=True):
        layers: list[nn.Module] = [nn.Conv1d(width, out, 3), nn.ReLU(), nn.MaxPool1d(pool)]
        if drop:
            layers.append(nn.Dropout(dropout))
        blocks.append(nn.Sequential(*layers))
        width = out
        length = (length - 2) // pool
    dense = nn.Sequential(nn.Flatten(), nn.Linear(width * length, 256), nn.ReLU(), nn.Dropout(dropout))
    return nn.ModuleList([*blocks, dense]), [*CONV_WIDTHS, 256]


@dataclasses.dataclass(frozen=True)
class FerCnnConfig:
    n_mfcc: int = 40
    dropout: float = 0.2

    def __post_init__(self) -> None:
        check_min_size("fercnn", "2 * n_mfcc (input length)", 2 * self.n_mfcc, MIN_LENGTH)


@register_model
class FerCnn(Encoder):
    """Paper 004's FERCNN on per-clip MFCC statistics (layer table of its Fig. 1); see the module docstring."""

    name = "fercnn"
    modality = "audio"
    paper = SRINIVAS_MISHRA.cite("§III.E, Fig. 1")
    summary = "FERCNN: conv/max-pool blocks 256-128-64-64-32 (dropout 0.2), dense 256 on MFCC mean/std"
    Config = FerCnnConfig

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.stages, self.stage_channels = fercnn_stages(2 * self.config.n_mfcc, self.config.dropout)
        self.feature_dim = 256

    @classmethod
    def spec_for(cls, config: FerCnnConfig) -> InputSpec:
        return InputSpec(
            "audio", "mfcc", {"n_mfcc": config.n_mfcc, "deltas": False}, (None, config.n_mfcc), "sequence"
        )

    def prepare(self, x: Tensor) -> Tensor:
        stats = torch.cat([x.mean(dim=1), x.std(dim=1, unbiased=False)], dim=1)
        return stats.unsqueeze(1)  # (B, 1, 2 * n_mfcc)
