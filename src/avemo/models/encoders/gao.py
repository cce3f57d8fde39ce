"""Paper 002's audio encoder: a 4-layer Bi-LSTM, four linear layers, attention-weighted pooling.

Paper: Gao & Guo, "Multimodal emotion recognition based on fusion with residual connection" §3.2 ("The encoder used is four layers Bi-LSTM
and four layers linear ... we use the attention mechanism to assign attention scores. Finally, the
final feature vector is obtained by weighted average") and §4.1 (Bi-LSTM equations).

Departures: the paper feeds the raw time-domain signal; a 4-layer Bi-LSTM over 16,000 samples per
second is impractical to train and the paper gives no frame size, so we feed 64-band log-mel frames
(our ``logmel`` extractor, 10 ms hop, any length). Hidden sizes are not given: 128 units per
direction, linear layers of 256 with ReLU (applied at every time step), dropout 0.2, additive attention pooling
(:class:`~avemo.models.layers.attention.AttentionPooling`). The paper trains with Adam, lr 3e-4,
weight decay 5e-5 (§5.1) -- a trainer setting, not part of the model.

Stages: the Bi-LSTM ``(B, 256, T)`` and the linear stack ``(B, 256, T)``; ``tokens`` gives the
per-frame features ``(B, T, 256)`` that ``gao_mha_residual`` attends over.
"""

from __future__ import annotations

import dataclasses

from torch import Tensor, nn

from avemo.models.base import Encoder, check_min_size
from avemo.models.inputs import InputSpec
from avemo.models.layers.attention import AttentionPooling
from avemo.models.layers.recurrent import Float32CpuLSTM
from avemo.models.papers import GAO_GUO
from avemo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class GaoAudioConfig:
    n_mels: int = 64
    hidden: int = 128
    lstm_layers: int = 4
    linear_layers: int = 4
    dropout: float = 0.2

    def __post_init__(self) -> None:
        check_min_size("gao_bilstm_attention", "lstm_layers", self.lstm_layers, 1)
        check_min_size("gao_bilstm_attention", "hidden", self.hidden, 1)


class _BiLstmStage(nn.Module):
    """``(B, D, T) -> (B, 2H, T)`` stacked Bi-LSTM (channels-first in and out)."""

    def __init__(self, inputs: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.lstm = Float32CpuLSTM(
            inputs,
            hidden,
            num_layers=layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if layers > 1 else 0.0,
        )

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.lstm(x.transpose(1, 2))
        return out.transpose(1, 2)


class _FrameLinearStage(nn.Module):
    """``(B, C, T) -> (B, C, T)``: the same linear layers (ReLU) applied at every time step."""

    def __init__(self, width: int, layers: int, dropout: float):
        super().__init__()
        mods: list[nn.Module] = []
        for _ in range(layers):
            mods += [nn.Linear(width, width), nn.ReLU(), nn.Dropout(dropout)]
        self.net = nn.Sequential(*mods)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.transpose(1, 2)).transpose(1, 2)


@register_model
class GaoBiLstmAttention(Encoder):
    """Paper 002's Bi-LSTM + linear + attention-pooling audio encoder; see the module docstring."""

    name = "gao_bilstm_attention"
    modality = "audio"
    paper = GAO_GUO.cite("§3.2, §4.1")
    summary = "4-layer Bi-LSTM (128/dir) + 4 linear layers + attention-weighted pooling on log-mel frames"
    Config = GaoAudioConfig

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        c = self.config
        width = 2 * c.hidden
        self.stages = nn.ModuleList(
            [
                _BiLstmStage(c.n_mels, c.hidden, c.lstm_layers, c.dropout),
                _FrameLinearStage(width, c.linear_layers, c.dropout),
            ]
        )
        self.stage_channels = [width, width]
        self.attention = AttentionPooling(width)
        self.feature_dim = width

    @classmethod
    def spec_for(cls, config: GaoAudioConfig) -> InputSpec:
        return InputSpec("audio", "logmel", {"n_mels": config.n_mels}, (None, config.n_mels), "sequence")

    def prepare(self, x: Tensor) -> Tensor:
        return x.transpose(1, 2)

    def pool(self, h: Tensor) -> Tensor:
        return self.attention(h.transpose(1, 2))
