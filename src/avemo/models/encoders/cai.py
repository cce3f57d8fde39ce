"""Paper 003's unimodal networks: SER_1 / SER_2 (speech) and FER_1 / FER_2 (faces).

Paper: Cai et al., "Multi-Modal Emotion Recognition From Speech and Facial Expression Based on Deep Learning" §II.A-B and §III.C.

Speech input (§II.A): the 34 pyAudioAnalysis short-term features, clipped/padded to 100 frames
(our ``pyaa34`` extractor), a ``(100, 34)`` sequence.

* ``cai_ser1``: "two LSTM layers with 256 units and a recurrent dropout of 0.2" (§III.C). The
  recurrent dropout is Keras's; we reproduce it with
  :class:`~avemo.models.layers.recurrent.RecurrentDropoutLSTM`. Feature: the last hidden state (256).
* ``cai_ser2``: SER_1's idea plus a convolutional path, in parallel (§II.B): "four 1D CNN layers,
  a MaxPooling1D layer and a Dropout layer ... connected to a Dense layer" (kernel 3, pool 2, ReLU)
  and "two Bi-LSTM layers, two Dropout layers, and a Dense layer", joined by a Concatenate layer.
  Widths the paper does not give: 64 filters per convolution, Bi-LSTMs of 256 units per direction
  with recurrent dropout 0.2 (as SER_1), dropout 0.2, dense layers of 128 (feature: 256).

Faces (§II.B, §III.C): "five CNN blocks, each CNN block includes two 2D CNNs with a convolution
kernel of 3, a Batch Normalization (BN) layer, and a Dropout layer" (FER_2), or one 5x5 convolution
per block (FER_1). The paper's facial input is IEMOCAP motion-capture markers; we apply the blocks
to face crops (16 grayscale frames of 64x64, ``face_crops``), frame by frame, and average the
flattened per-frame features over time. Departures: widths are not given -- all blocks have 64
filters (with equal widths the 3x3 pair has fewer parameters than the 5x5, as the paper says
FER_2 does; it reports 134,752 fewer, which no regular width schedule we tried reproduces); VGG16,
which the paper says it borrows from, ends each block with a 2x2 max-pool, and so do we.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from avemo.models.base import Encoder, check_min_size, frames_to_channels_first
from avemo.models.inputs import InputSpec
from avemo.models.layers.recurrent import RecurrentDropoutLSTM
from avemo.models.papers import CAI
from avemo.models.registry import register_model


def _pyaa_spec(n_frames: int) -> InputSpec:
    return InputSpec("audio", "pyaa34", {}, (n_frames, 34), "sequence")


class _LstmStage(nn.Module):
    """Channels-first LSTM layer: ``(B, D, T) -> (B, H, T)`` or, with ``last=True``, ``(B, H)``."""

    def __init__(
        self, inputs: int, hidden: int, recurrent_dropout: float, last: bool, bidirectional: bool = False
    ):
        super().__init__()
        self.lstm = RecurrentDropoutLSTM(
            inputs, hidden, bidirectional=bidirectional, recurrent_dropout=recurrent_dropout
        )
        self.last = last

    def forward(self, x: Tensor) -> Tensor:
        seq, last = self.lstm(x.transpose(1, 2))
        return last if self.last else seq.transpose(1, 2)


@dataclasses.dataclass(frozen=True)
class CaiSer1Config:
    n_frames: int = 100
    units: int = 256
    recurrent_dropout: float = 0.2

    def __post_init__(self) -> None:
        check_min_size("cai_ser1", "n_frames", self.n_frames, 1)


@register_model
class CaiSer1(Encoder):
    """Paper 003's SER_1: two LSTM layers of 256 units, recurrent dropout 0.2; see the module docstring."""

    name = "cai_ser1"
    modality = "audio"
    paper = CAI.cite("§III.C (model SER_1)")
    summary = "SER_1: two LSTM(256) layers with recurrent dropout 0.2 on 100x34 pyAudioAnalysis frames"
    Config = CaiSer1Config
    smoke_config = {"n_frames": 12}

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        c = self.config
        self.stages = nn.ModuleList(
            [
                _LstmStage(34, c.units, c.recurrent_dropout, last=False),
                _LstmStage(c.units, c.units, c.recurrent_dropout, last=True),
            ]
        )
        self.stage_channels = [c.units, c.units]
        self.feature_dim = c.units

    @classmethod
    def spec_for(cls, config: CaiSer1Config) -> InputSpec:
        return _pyaa_spec(config.n_frames)

    def prepare(self, x: Tensor) -> Tensor:
        return x.transpose(1, 2)


@dataclasses.dataclass(frozen=True)
class CaiSer2Config:
    n_frames: int = 100
    conv_channels: int = 64
    lstm_units: int = 256
    dense_units: int = 128
    recurrent_dropout: float = 0.2
    dropout: float = 0.2

    def __post_init__(self) -> None:
        check_min_size("cai_ser2", "n_frames", self.n_frames, 10)


class _Ser2Trunk(nn.Module):
    """SER_2's two parallel paths on ``(B, 34, T)``, concatenated: ``(B, 2 * dense_units)``."""

    def __init__(self, c: CaiSer2Config):
        super().__init__()
        convs: list[nn.Module] = []
        width = 34
        for _ in range(4):
            convs += [nn.Conv1d(width, c.conv_channels, 3), nn.ReLU()]
            width = c.conv_channels
        length = (c.n_frames - 8) // 2
        self.conv_path = nn.Sequential(
            *convs,
            nn.MaxPool1d(2),
            nn.Dropout(c.dropout),
            nn.Flatten(),
            nn.Linear(c.conv_channels * length, c.dense_units),
            nn.ReLU(),
        )
        self.lstm1 = RecurrentDropoutLSTM(
            34, c.lstm_units, bidirectional=True, recurrent_dropout=c.recurrent_dropout
        )
        self.lstm2 = RecurrentDropoutLSTM(
            2 * c.lstm_units, c.lstm_units, bidirectional=True, recurrent_dropout=c.recurrent_dropout
        )
        self.dropout = nn.Dropout(c.dropout)
        self.lstm_dense = nn.Sequential(nn.Linear(2 * c.lstm_units, c.dense_units), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        seq, _ = self.lstm1(x.transpose(1, 2))
        _, last = self.lstm2(self.dropout(seq))
        return torch.cat([self.conv_path(x), self.lstm_dense(self.dropout(last))], dim=1)


@register_model
class CaiSer2(Encoder):
    """Paper 003's SER_2: 1D CNN path and Bi-LSTM path in parallel, concatenated; see the module docstring."""

    name = "cai_ser2"
    modality = "audio"
    paper = CAI.cite("§II.B, §III.C (model SER_2)")
    summary = "SER_2: four k=3 Conv1D + max-pool + dropout in parallel with two Bi-LSTM(256), concatenated"
    Config = CaiSer2Config
    smoke_config = {"n_frames": 12}

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.stages = nn.ModuleList([_Ser2Trunk(self.config)])
        self.feature_dim = 2 * self.config.dense_units
        self.stage_channels = [self.feature_dim]

    @classmethod
    def spec_for(cls, config: CaiSer2Config) -> InputSpec:
        return _pyaa_spec(config.n_frames)

    def prepare(self, x: Tensor) -> Tensor:
        return x.transpose(1, 2)


@dataclasses.dataclass(frozen=True)
class CaiFerConfig:
    n_frames: int = 16
    size: tuple[int, int] = (64, 64)  # (width, height)
    gray: bool = True
    width: int = 64
    blocks: int = 5
    dropout: float = 0.2

    def __post_init__(self) -> None:
        check_min_size("cai_fer", "n_frames", self.n_frames, 1)
        check_min_size("cai_fer", "crop width", self.size[0], 2**self.blocks)
        check_min_size("cai_fer", "crop height", self.size[1], 2**self.blocks)


class _FrameBlock(nn.Module):
    """A 2D block applied to every frame of ``(B, C, N, H, W)`` (frames folded into the batch)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        b, c, n, h, w = x.shape
        y = self.net(x.transpose(1, 2).reshape(b * n, c, h, w))
        return y.reshape(b, n, *y.shape[1:]).transpose(1, 2)


class _CaiFer(Encoder):
    modality = "video"
    Config = CaiFerConfig
    smoke_config = {"n_frames": 4, "size": (32, 32)}
    two_small_kernels = False

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        c = self.config
        blocks, width = [], 1 if c.gray else 3
        for _ in range(c.blocks):
            if self.two_small_kernels:
                convs = [
                    nn.Conv2d(width, c.width, 3, padding=1),
                    nn.ReLU(),
                    nn.Conv2d(c.width, c.width, 3, padding=1),
                ]
            else:
                convs = [nn.Conv2d(width, c.width, 5, padding=2)]
            blocks.append(
                _FrameBlock(
                    nn.Sequential(
                        *convs, nn.BatchNorm2d(c.width), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(c.dropout)
                    )
                )
            )
            width = c.width
        self.stages = nn.ModuleList(blocks)
        self.stage_channels = [c.width] * c.blocks
        w, h = c.size
        self.feature_dim = c.width * (h // 2**c.blocks) * (w // 2**c.blocks)

    @classmethod
    def spec_for(cls, config: CaiFerConfig) -> InputSpec:
        w, h = config.size
        channels = 1 if config.gray else 3
        return InputSpec(
            "video",
            "face_crops",
            {"n_frames": config.n_frames, "size": (w, h), "gray": config.gray},
            (config.n_frames, h, w, channels),
            "frames",
        )

    def prepare(self, x: Tensor) -> Tensor:
        return frames_to_channels_first(x)

    def pool(self, h: Tensor) -> Tensor:
        b, _, n = h.shape[:3]
        return h.transpose(1, 2).reshape(b, n, -1).mean(dim=1)


@register_model
class CaiFer1(_CaiFer):
    """Paper 003's FER_1: five blocks of one 5x5 convolution + BN + dropout, per frame; see the module docstring."""

    name = "cai_fer1"
    paper = CAI.cite("§III.C (model FER_1)")
    summary = "FER_1: five blocks (5x5 conv, BN, ReLU, max-pool, dropout) per frame, averaged over time"
    two_small_kernels = False


@register_model
class CaiFer2(_CaiFer):
    """Paper 003's FER_2: five blocks of two 3x3 convolutions + BN + dropout, per frame; see the module docstring."""

    name = "cai_fer2"
    paper = CAI.cite("§II.B, §III.C (model FER_2)")
    summary = "FER_2: five blocks (two 3x3 convs, BN, ReLU, max-pool, dropout) per frame, averaged over time"
    two_small_kernels = True
