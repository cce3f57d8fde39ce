"""A small BERT encoder in plain PyTorch, loaded from a sentence-transformers folder.

The forward pass is BERT's (Devlin et al. 2019, "BERT: Pre-training of Deep Bidirectional
Transformers for Language Understanding", section 3; post-LayerNorm blocks, exact-erf GELU),
with the parameter names of Hugging Face's ``BertModel`` so that its ``model.safetensors``
loads with a strict key check. The tokenizer is the folder's ``tokenizer.json`` run by the
``tokenizers`` package (uncased WordPiece, ``[CLS] ... [SEP]``).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from avemo.errors import CheckpointError

#: at most this many texts' states are kept from one call to the next
_KEPT = 1024


class _Block(nn.Module):
    def __init__(self, width: int, heads: int, hidden: int, eps: float):
        super().__init__()
        self.heads = heads
        self.attention = nn.Module()
        self.attention.self = nn.Module()
        self.attention.self.query = nn.Linear(width, width)
        self.attention.self.key = nn.Linear(width, width)
        self.attention.self.value = nn.Linear(width, width)
        self.attention.output = nn.Module()
        self.attention.output.dense = nn.Linear(width, width)
        self.attention.output.LayerNorm = nn.LayerNorm(width, eps=eps)
        self.intermediate = nn.Module()
        self.intermediate.dense = nn.Linear(width, hidden)
        self.output = nn.Module()
        self.output.dense = nn.Linear(hidden, width)
        self.output.LayerNorm = nn.LayerNorm(width, eps=eps)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        att = self.attention.self

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.heads, d // self.heads).transpose(1, 2)

        ctx = F.scaled_dot_product_attention(split(att.query(x)), split(att.key(x)), split(att.value(x)),
                                             attn_mask=keep[:, None, None, :])
        ctx = ctx.transpose(1, 2).reshape(b, t, d)
        x = self.attention.output.LayerNorm(x + self.attention.output.dense(ctx))
        h = F.gelu(self.intermediate.dense(x))
        return self.output.LayerNorm(x + self.output.dense(h))


class BertEncoder(nn.Module):
    """BERT's embeddings and blocks; ``forward(ids, keep)`` -> the last hidden states (B, T, width)."""

    def __init__(self, config: dict):
        super().__init__()
        width, eps = int(config["hidden_size"]), float(config.get("layer_norm_eps", 1e-12))
        self.embeddings = nn.Module()
        self.embeddings.word_embeddings = nn.Embedding(int(config["vocab_size"]), width)
        self.embeddings.position_embeddings = nn.Embedding(int(config["max_position_embeddings"]), width)
        self.embeddings.token_type_embeddings = nn.Embedding(int(config.get("type_vocab_size", 2)), width)
        self.embeddings.LayerNorm = nn.LayerNorm(width, eps=eps)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(
            _Block(width, int(config["num_attention_heads"]), int(config["intermediate_size"]), eps)
            for _ in range(int(config["num_hidden_layers"]))
        )
        self.width = width

    def forward(self, ids: torch.Tensor, keep: torch.Tensor, layers: int | None = None) -> torch.Tensor:
        """The hidden states after the first ``layers`` blocks (None: all of them)."""
        emb = self.embeddings
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = emb.word_embeddings(ids) + emb.position_embeddings(positions)[None] + emb.token_type_embeddings.weight[0]
        x = emb.LayerNorm(x)
        for block in self.encoder.layer[:layers]:
            x = block(x, keep)
        return x


class TextEncoder:
    """A tokenizer + :class:`BertEncoder` from one folder; :meth:`encode` gives token states."""

    def __init__(self, folder: Path, max_tokens: int):
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        needed = ("config.json", "model.safetensors", "tokenizer.json")
        missing = [n for n in needed if not (folder / n).is_file()]
        if missing:
            raise CheckpointError(f"text encoder folder lacks {', '.join(missing)}", folder)
        config = json.loads((folder / "config.json").read_text())
        if config.get("model_type") != "bert":
            raise CheckpointError(f"model_type {config.get('model_type')!r} is not bert", folder / "config.json")
        self.model = BertEncoder(config).eval()
        state = {k: v for k, v in load_file(str(folder / "model.safetensors")).items() if not k.endswith("position_ids")}
        state = {k: v for k, v in state.items() if not k.startswith("pooler.")}  # BERT's NSP pooler is not used
        try:
            self.model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"weights do not fit a BERT of this config ({str(exc).splitlines()[0]})",
                                  folder / "model.safetensors") from None
        self.max_tokens = min(max_tokens, int(config["max_position_embeddings"]))
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_tokens)
        self._recent: dict[str, np.ndarray] = {}
        self._recent_layers: int | None = None  # the depth of the kept states

    def tokens(self, text: str) -> list[str]:
        """The WordPiece tokens of ``text``, with ``[CLS]`` and ``[SEP]``, truncated to ``max_tokens``."""
        return self.tokenizer.encode(text).tokens

    def encode(self, texts: list[str], batch: int = 64, layers: int | None = None) -> list[np.ndarray]:
        """The last hidden states of each text (after the first ``layers`` blocks: None, all):
        one (T_i, width) float32 array per text. Texts are
        run ``batch`` at a time in order of length (less padding); the batching never changes a
        text's states beyond float rounding. The states of the previous call are kept, so that two
        extractors reading the same texts one after the other (sentence and token embeddings) run
        the network once."""
        if layers != self._recent_layers:  # the kept states are of another depth
            self._recent = {}
        todo = [t for t in dict.fromkeys(texts) if t not in self._recent]
        encodings = self.tokenizer.encode_batch(todo) if todo else []
        order = sorted(range(len(todo)), key=lambda i: len(encodings[i].ids))
        states = {t: self._recent[t] for t in texts if t in self._recent}
        for start in range(0, len(order), batch):
            chunk = order[start:start + batch]
            for i, out in zip(chunk, self._run([encodings[i].ids for i in chunk], layers), strict=True):
                states[todo[i]] = out
        self._recent = states if len(states) <= _KEPT else {}
        self._recent_layers = layers
        return [states[t] for t in texts]

    @torch.inference_mode()
    def _run(self, sequences: list[list[int]], layers: int | None = None) -> list[np.ndarray]:
        longest = max(len(ids) for ids in sequences)
        ids = torch.zeros(len(sequences), longest, dtype=torch.long)
        keep = torch.zeros(len(sequences), longest, dtype=torch.bool)
        for i, seq in enumerate(sequences):
            ids[i, : len(seq)] = torch.tensor(seq)
            keep[i, : len(seq)] = True
        states = self.model(ids, keep, layers).float().numpy()
        return [states[i, : len(seq)].copy() for i, seq in enumerate(sequences)]


@functools.lru_cache(maxsize=2)
def load_text_encoder(folder: str, max_tokens: int) -> TextEncoder:
    """The encoder of ``folder``, loaded once per process. Loading leaves torch's random state as it was
    (building the module draws initial weights that the file's then replace): a model built after
    ``torch.manual_seed`` gets the same weights whether or not the encoder was loaded before."""
    with torch.random.fork_rng(devices=[]):
        return TextEncoder(Path(folder), max_tokens)
