"""The MFCC 1D CNN audio encoder of MSAF and CFN-SR (paper 000's "1D CNN (Aud.)", 0.03 M parameters).

Paper: Zhang & Zheng, "Enhancing Emotion Recognition Accuracy with CFRSN-LSTM" §4.3 and Table 1 ("1D CNN (Aud.) 0.03M"); the
network itself is MSAF's (Su et al. 2020, "MSAF: Multimodal Split Attention Fusion", §4.1; code
github anita-hu/MSAF ``ravdess/networks/mfcc_cnn.py``), reused unchanged by CFN-SR (Fu et al. 2021)
and CFNSR-LSTM. We follow that code layer by layer:

    conv1d(13->32, k7, pad 2) ReLU BN | conv1d(32->32, k7, pad 2) ReLU | max-pool 8, BN, dropout 0.2,
    conv1d(32->64, k5, pad 2) ReLU BN | flatten, dropout 0.4 -> feature (64 x 26 = 1664) | fc -> C

Departures: MSAF computes 13 MFCCs with librosa at 44.1 kHz, 512-sample hop, over 2.45 s from 0.5 s
(212 frames); we take our ``mfcc`` extractor at its defaults (16 kHz, 10 ms hop) with 13
coefficients and no deltas, cropped/padded to 212 frames (2.12 s), so the flattened feature is
still 64 x 26 = 1664 and the parameter count is MSAF's (34,024 with 8 classes).

Stages (for mid-level fusion): ``conv1`` block (32 ch), ``conv2`` block (32 ch, before the pool),
the rest up to ``bn3`` (64 ch) -- MSAF places its two fusion blocks after the last two.
"""

from __future__ import annotations

import dataclasses

from torch import Tensor, nn

from avemo.models.base import Encoder, check_min_size
from avemo.models.inputs import InputSpec
from avemo.models.papers import ZHANG_ZHENG
from avemo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class MfccCnnConfig:
    n_mfcc: int = 13
    n_frames: int = 212
    dropout1: float = 0.2
    dropout2: float = 0.4

    def __post_init__(self) -> None:
        check_min_size("mfcc_cnn1d", "n_frames", self.n_frames, 12)
        check_min_size("mfcc_cnn1d", "n_mfcc", self.n_mfcc, 1)


class MfccSequenceEncoder(Encoder):
    """Base of the 1D CNNs over a fixed number of MFCC frames without deltas (MSAF's, paper 001's):
    the input they declare (``n_mfcc`` coefficients x ``n_frames`` frames of their config) and the
    (B, T, D) -> (B, D, T) layout a ``Conv1d`` over time needs."""

    @classmethod
    def spec_for(cls, config) -> InputSpec:
        return InputSpec(
            "audio",
            "mfcc",
            {"n_mfcc": config.n_mfcc, "deltas": False},
            (config.n_frames, config.n_mfcc),
            "sequence",
        )

    def prepare(self, x: Tensor) -> Tensor:
        return x.transpose(1, 2)  # (B, T, D) -> (B, D, T)


@register_model
class MfccCnn1d(MfccSequenceEncoder):
    """MSAF's MFCC 1D CNN (paper 000 Table 1 "1D CNN (Aud.)"); see the module docstring."""

    name = "mfcc_cnn1d"
    modality = "audio"
    paper = ZHANG_ZHENG.cite("§4.3, Table 1 (network of MSAF, Su et al. 2020 §4.1)")
    summary = "MFCC 1D CNN of MSAF/CFN-SR: 3 conv layers, flattened 64x26 feature (0.03 M params)"
    Config = MfccCnnConfig
    smoke_config = {"n_frames": 28}

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        c = self.config
        self.stages = nn.ModuleList(
            [
                nn.Sequential(nn.Conv1d(c.n_mfcc, 32, 7, padding=2), nn.ReLU(), nn.BatchNorm1d(32)),
                nn.Sequential(nn.Conv1d(32, 32, 7, padding=2), nn.ReLU()),
                nn.Sequential(
                    nn.MaxPool1d(8),
                    nn.BatchNorm1d(32),
                    nn.Dropout(c.dropout1),
                    nn.Conv1d(32, 64, 5, padding=2),
                    nn.ReLU(),
                    nn.BatchNorm1d(64),
                ),
            ]
        )
        self.stage_channels = [32, 32, 64]
        self.out_length = (c.n_frames - 4) // 8
        self.feature_dim = 64 * self.out_length
        self.dropout2 = nn.Dropout(c.dropout2)

    def pool(self, h: Tensor) -> Tensor:
        return self.dropout2(h.flatten(1))
