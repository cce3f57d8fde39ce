"""An LSTM layer with *recurrent* dropout, as Keras's ``LSTM(recurrent_dropout=p)``.

Paper 003 (Cai et al., "Multi-Modal Emotion Recognition From Speech and Facial Expression Based on Deep Learning" §III.C) trains its LSTMs "with a recurrent
dropout of 0.2", the Keras option that drops units of the hidden state fed back into the recurrence
with one mask per sequence (Gal & Ghahramani 2016, "A theoretically grounded application of dropout
in recurrent neural networks"). ``torch.nn.LSTM`` has no such option, so :class:`RecurrentDropoutLSTM`
keeps the weights of an ``nn.LSTM`` (same parameter names, so the fast fused kernel is used in
evaluation and whenever the dropout is 0) and, in training with dropout, runs the recurrence step by
step with the hidden state multiplied by a fixed mask. Keras draws one mask per gate; we draw one
mask for the hidden state, the variant of Gal & Ghahramani's paper.

:class:`Float32CpuLSTM` is the ``nn.LSTM`` every model of the zoo uses: under CPU autocast it runs in
float32, because oneDNN has no bfloat16 LSTM primitive on CPUs without AVX512-BF16 (an AMD EPYC, say)
and fails there with "could not create a primitive descriptor for the LSTM forward propagation
primitive". On CUDA it runs under autocast as usual (cuDNN has half-precision LSTMs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avemo.errors import ConfigError


class Float32CpuLSTM(nn.LSTM):
    """``nn.LSTM`` (same parameters and checkpoints) that leaves CPU autocast for float32; see the module docstring."""

    def forward(self, x, hx=None):  # type: ignore[override]
        data = x.data if isinstance(x, nn.utils.rnn.PackedSequence) else x  # packed: its data tensor
        if data.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                hx = None if hx is None else tuple(h.float() for h in hx)
                return super().forward(x.float(), hx)
        return super().forward(x, hx)


class RecurrentDropoutLSTM(nn.Module):
    """One LSTM layer, optionally bidirectional, with variational recurrent dropout.

    ``forward(x: (B, T, D)) -> (outputs (B, T, H * directions), last (B, H * directions))``, where
    ``last`` is the final hidden state of each direction (the forward one at ``t = T-1``, the
    backward one at ``t = 0``), i.e. Keras's ``return_sequences=False`` output.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        bidirectional: bool = False,
        recurrent_dropout: float = 0.0,
    ):
        super().__init__()
        if not 0.0 <= recurrent_dropout < 1.0:
            raise ConfigError(f"recurrent_dropout must be in [0, 1), got {recurrent_dropout}")
        self.lstm = Float32CpuLSTM(input_size, hidden_size, batch_first=True, bidirectional=bidirectional)
        self.hidden_size = hidden_size
        self.directions = 2 if bidirectional else 1
        self.recurrent_dropout = recurrent_dropout

    @property
    def output_size(self) -> int:
        return self.hidden_size * self.directions

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not (self.training and self.recurrent_dropout > 0):
            out, (h, _) = self.lstm(x)
            return out, h.transpose(0, 1).reshape(x.shape[0], -1)
        keep = 1.0 - self.recurrent_dropout
        shape = (self.directions, x.shape[0], self.hidden_size)
        masks = torch.bernoulli(torch.full(shape, keep, device=x.device, dtype=x.dtype)) / keep
        return self.recurrence(x, masks)

    def recurrence(self, x: Tensor, masks: Tensor) -> tuple[Tensor, Tensor]:
        """Step-by-step LSTM with the hidden state multiplied by ``masks[direction]`` (B, H) at every step."""
        outs, lasts = [], []
        for direction in range(self.directions):
            suffix = "_reverse" if direction else ""
            w_ih = getattr(self.lstm, f"weight_ih_l0{suffix}")
            w_hh = getattr(self.lstm, f"weight_hh_l0{suffix}")
            bias = getattr(self.lstm, f"bias_ih_l0{suffix}") + getattr(self.lstm, f"bias_hh_l0{suffix}")
            seq = x.flip(1) if direction else x
            projected = F.linear(seq, w_ih, bias)  # (B, T, 4H): the input part of every step at once
            h = projected.new_zeros(x.shape[0], self.hidden_size)
            c = projected.new_zeros(x.shape[0], self.hidden_size)
            mask = masks[direction].to(projected.dtype)
            steps = []
            for t in range(seq.shape[1]):
                gates = projected[:, t] + F.linear(h * mask, w_hh)
                i, f, g, o = gates.chunk(4, dim=1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                steps.append(h)
            y = torch.stack(steps, dim=1)
            outs.append(y.flip(1) if direction else y)
            lasts.append(h)
        return torch.cat(outs, dim=-1), torch.cat(lasts, dim=-1)
