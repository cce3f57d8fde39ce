"""Count sketch and compact bilinear pooling (Fukui et al. 2016, MCB; Gao et al. 2016, compact bilinear).

``CompactBilinearPooling(x, y)`` approximates the outer product ``x ⊗ y`` projected to ``d`` dims:
``Ψ(x) * Ψ(y)`` (circular convolution of two count sketches), computed as
``irfft(rfft(Ψ(x)) · rfft(Ψ(y)))``. A count sketch ``Ψ`` maps input dim ``i`` to output dim ``h[i]``
with sign ``s[i]``; ``h`` and ``s`` are drawn once (from ``seed``) and kept as buffers, so they
travel with ``state_dict`` and never receive gradients. The FFT runs in float32 even under
``torch.autocast`` (half-precision FFTs are unsupported for most sizes and lose precision).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class CountSketch(nn.Module):
    """``(B, in_dim) -> (B, out_dim)``: ``out[:, h[i]] += s[i] * x[:, i]``."""

    def __init__(self, in_dim: int, out_dim: int, seed: int):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.out_dim = out_dim
        self.register_buffer("index", torch.randint(out_dim, (in_dim,), generator=generator))
        self.register_buffer("sign", torch.randint(2, (in_dim,), generator=generator).float() * 2 - 1)

    def forward(self, x: Tensor) -> Tensor:
        out = x.new_zeros(x.shape[0], self.out_dim)
        return out.index_add(1, self.index, x * self.sign.to(x.dtype))


class CompactBilinearPooling(nn.Module):
    """``(B, in1), (B, in2) -> (B, out_dim)`` float32 compact bilinear features."""

    def __init__(self, in1: int, in2: int, out_dim: int, seed: int = 0):
        super().__init__()
        self.in_dims = (in1, in2)
        self.out_dim = out_dim
        self.sketch1 = CountSketch(in1, out_dim, seed)
        self.sketch2 = CountSketch(in2, out_dim, seed + 1)

    @property
    def dense_equivalent_size(self) -> int:
        """Entries of the two sketches as dense ``in x d`` matrices (how many implementations store them)."""
        return (self.in_dims[0] + self.in_dims[1]) * self.out_dim

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            a = self.sketch1(x.float())
            b = self.sketch2(y.float())
            return torch.fft.irfft(torch.fft.rfft(a, dim=1) * torch.fft.rfft(b, dim=1), n=self.out_dim, dim=1)
