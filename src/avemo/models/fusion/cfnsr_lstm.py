"""``cfnsr_lstm``: paper 000's CFNSR-LSTM -- CFN-SR with an LSTM on the audio features.

Paper: Zhang & Zheng, "Enhancing Emotion Recognition Accuracy with CFRSN-LSTM" Abstract, §4.1 (Fig. 2 "LSTM-Attention"),
§4.3 and Table 1 ("CFNSR-LSTM(ours) 76.25, 26.50M"; the abstract says 26.40 M). The audio (MFCC
1D CNN) and video (3D ResNeXt-50) features enter the cross-modal block; "the audio features are
processed using LSTM to capture temporal characteristics, and the self-attention mechanism is
employed for intra-modal feature selection, which enables efficient and adaptive interaction
between the selected audio features and the video modality. The residual structure ensures the
integrity of the original structural features of the video modality."

Departures: the paper gives no layer sizes or code. We build it as CFN-SR (:mod:`avemo.models.fusion.cfn_sr`, which
the paper cites as [16] and whose block it extends) with one LSTM layer (128 units) over the audio
tokens and a linear projection back to the 64-d attention width before the self-attention. This
adds 107,584 parameters to CFN-SR's 26,301,417: 26,409,001 with 8 classes, inside the paper's
26.40-26.50 M.
"""

from __future__ import annotations

import dataclasses

from torch import Tensor, nn

from avemo.models.fusion.cfn_sr import CfnSr, CfnSrConfig
from avemo.models.layers.recurrent import Float32CpuLSTM
from avemo.models.papers import ZHANG_ZHENG
from avemo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class CfnSrLstmConfig(CfnSrConfig):
    lstm_hidden: int = 128


@register_model
class CfnSrLstm(CfnSr):
    """CFN-SR with an LSTM over the audio features before the self-attention; see the module docstring."""

    name = "cfnsr_lstm"
    paper = ZHANG_ZHENG.cite("§4.1 Fig. 2, §4.3, Table 1 ('CFNSR-LSTM')")
    summary = "Paper 000's model: LSTM + self-attention on audio, audio-guided attention over video + residual, concat, FC"
    Config = CfnSrLstmConfig

    def build_audio_path(self, config: CfnSrLstmConfig, audio_channels: int) -> None:
        self.audio_lstm = Float32CpuLSTM(audio_channels, config.lstm_hidden, batch_first=True)
        self.audio_projection = nn.Linear(config.lstm_hidden, config.embed_dim)

    def audio_sequence(self, tokens: Tensor) -> Tensor:
        out, _ = self.audio_lstm(tokens)
        return self.audio_projection(out)
