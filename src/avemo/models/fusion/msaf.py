"""``msaf``: Multimodal Split Attention Fusion (Su et al. 2020) between the encoders' stages.

Paper: Zhang & Zheng, "Enhancing Emotion Recognition Accuracy with CFRSN-LSTM" §6, Table 1 row "MSAF" (model-level, 25.94 M).
MSAF (Su, Hu, Li, Cao, "MSAF: Multimodal Split Attention Fusion", §3; code github anita-hu/MSAF,
``MSAF.py`` and ``ravdess/networks/msaf_ravdess.py``): each modality's feature map is split into
channel blocks of ``block_channel`` channels; blocks are summed per modality, globally average
pooled and summed over modalities into a joint descriptor ``Linear(c, c/r) - BN - ReLU``; one linear
layer per block gives its attention logits; a softmax *across all blocks of all modalities* gives
per-channel soft attention that rescales each block. BlockDropout (p = 0.2) drops whole blocks in
training. For RAVDESS MSAF inserts two modules: ResNeXt layer3 (1024 ch) with the MFCC CNN before
its pool (32 ch), block 16; layer4 (2048) with the last MFCC block (64), block 32; reduction 4;
the prediction is the sum of the two networks' logits. That is our default (25,940,724 parameters
with 8 classes; paper 25.94 M).

Departures (fixes of the reference code): channel padding to a multiple of the block size pads the
channel dim (the code pads the last dim and pads ``C mod b`` instead of ``-C mod b``; both only
matter when the channels are not divisible); in training the block-dropout mask is applied once
(the code multiplies the already masked features by the mask again). The block size defaults, for
any encoder pair, to half the smaller channel count at each point (16 and 32 above).
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avemo.errors import ConfigError
from avemo.models.base import global_average, make_head
from avemo.models.fusion.base import FusionConfig, FusionModel, fusion_points, run_encoders
from avemo.models.papers import ZHANG_ZHENG
from avemo.models.registry import register_model


class MSAFBlock(nn.Module):
    """One MSAF module over a list of feature maps ``(B, C_m, ...)``; returns them rescaled."""

    def __init__(
        self, channels: list[int], block_channel: int, reduction: int = 4, block_dropout: float = 0.2
    ):
        super().__init__()
        self.channels = list(channels)
        self.block_channel = block_channel
        self.num_blocks = [math.ceil(c / block_channel) for c in channels]
        reduced = max(1, block_channel // reduction)
        self.joint = nn.Sequential(nn.Linear(block_channel, reduced), nn.BatchNorm1d(reduced), nn.ReLU())
        # one Linear(reduced, block_channel) per block, stored as a single layer
        self.block_logits = nn.Linear(reduced, block_channel * sum(self.num_blocks))
        self.block_dropout = block_dropout

    def forward(self, *features: Tensor) -> list[Tensor]:
        b, bc = features[0].shape[0], self.block_channel
        split = []
        for x, nb in zip(features, self.num_blocks, strict=True):
            pad = nb * bc - x.shape[1]
            if pad:
                x = F.pad(x.movedim(1, -1), (0, pad)).movedim(-1, 1)
            split.append(x.reshape(b, nb, bc, *x.shape[2:]))
        if self.training and 0 < self.block_dropout < 1:
            keep = 1 - self.block_dropout
            masks = [
                torch.bernoulli(torch.full((b, nb), keep, device=x.device)) / keep
                for x, nb in zip(split, self.num_blocks, strict=True)
            ]
            split = [
                x * m.view(b, -1, *([1] * (x.dim() - 2))).to(x.dtype)
                for x, m in zip(split, masks, strict=True)
            ]
        joint = sum(global_average(x.sum(dim=1)) for x in split)  # (B, bc)
        logits = self.block_logits(self.joint(joint)).view(b, sum(self.num_blocks), bc)
        attention = torch.softmax(logits.float(), dim=1)
        out = []
        for x, a, original in zip(split, attention.split(self.num_blocks, dim=1), features, strict=True):
            y = x * a.view(*a.shape, *([1] * (x.dim() - 3))).to(x.dtype)
            out.append(y.reshape(b, -1, *x.shape[3:])[:, : original.shape[1]])
        return out


@dataclasses.dataclass(frozen=True)
class MsafConfig(FusionConfig):
    points: int = 2
    block_channel: int | None = None  # None: half the smaller channel count at each point
    reduction: int = 4
    block_dropout: float = 0.2

    def __post_init__(self) -> None:
        if self.points < 1:
            raise ConfigError(f"points must be at least 1, got {self.points}")
        if not 0.0 <= self.block_dropout < 1.0:
            raise ConfigError(f"block_dropout must be in [0, 1), got {self.block_dropout}")


@register_model
class Msaf(FusionModel):
    """MSAF modules after the encoders' last two stages, sum of the two networks' logits; see the module docstring."""

    name = "msaf"
    paper = ZHANG_ZHENG.cite("§6, Table 1 ('MSAF', model; Su et al. 2020 §3-4)")
    summary = "Mid-level fusion: split-attention (MSAF) modules after the last 2 stages; sum of the two networks' logits"
    Config = MsafConfig

    def __init__(self, config: MsafConfig, num_classes: int):
        super().__init__(config, num_classes)
        a, v = self.audio_encoder, self.video_encoder
        self.points = fusion_points(a, v, config.points)
        blocks = []
        for pa, pv in self.points:
            chans = [v.stage_channels[pv], a.stage_channels[pa]]
            bc = config.block_channel or max(1, min(chans) // 2)
            blocks.append(MSAFBlock(chans, bc, config.reduction, config.block_dropout))
        self.blocks = nn.ModuleList(blocks)
        self.audio_head = make_head(a.feature_dim, num_classes)
        self.video_head = make_head(v.feature_dim, num_classes)

    def compute(self, inputs):
        a, v = self.audio_encoder, self.video_encoder
        calls = [lambda ha, hv, blk=blk: tuple(reversed(blk(hv, ha))) for blk in self.blocks]
        ha, hv = run_encoders(a, v, inputs["audio"], inputs["video"], self.points, calls)
        za, zv = self.audio_head(a.pool(ha)), self.video_head(v.pool(hv))
        return {"logits": za + zv, "audio_logits": za, "video_logits": zv}
