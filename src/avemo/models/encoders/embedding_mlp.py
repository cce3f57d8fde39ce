"""Audio vector encoders for per-clip embeddings: ``whisper_mlp`` and ``egemaps_mlp``.

These are the audio front-ends of the project's recommended recipe on RAVDESS-AU (see
``docs/results/ravdess_au.md``): a small classifier on a per-clip vector computed by a feature
extractor, instead of a CNN trained from scratch on ~1,000 clips.

* ``whisper_mlp``: the ``whisper_base`` extractor's layer-averaged mean embedding (512,) -- the
  encoder of OpenAI Whisper base (Radford et al. 2022, "Robust Speech Recognition via Large-Scale
  Weak Supervision", §2.3), frozen, mean over frames of each hidden state, averaged over the 7
  hidden states (see :mod:`avemo.features.audio.whisper`). Frozen self-supervised or weakly
  supervised speech representations with a light head are the standard recipe for speech
  emotion recognition with little labelled data (e.g. the SUPERB benchmark, Yang et al. 2021).
* ``egemaps_mlp``: the 88 eGeMAPS v02 functionals (Eyben et al. 2016, IEEE Trans. Affective
  Computing 7(2)), the reference hand-crafted parameter set of affective computing.

Layout: stage 0 is input dropout followed by the first hidden layer (Linear, GELU, dropout);
every further width in ``hidden`` adds a stage. With ``hidden=()`` the encoder is the input
dropout alone and the model is a multinomial logistic regression on the standardised vector
(the classifier used in the research run on these features). Each stage is a *stage* in the
sense of :mod:`avemo.models.base`, so mid-level fusion (MMTM, MSAF) can use these encoders too.

Defaults: ``whisper_mlp`` is linear (``hidden=()``): on the inner validation scores it matched or
beat hidden layers of 256 and 512 units (``docs/results/ravdess_au.md``, "Exploration");
``egemaps_mlp`` has one hidden layer of 128.

Paper context: none of the five papers (:mod:`avemo.models.papers`) uses a pretrained audio
representation; the encoders take the place of paper 000's "1D CNN (Aud.)"
(Zhang & Zheng, "Enhancing Emotion Recognition Accuracy with CFRSN-LSTM" §4.3, Table 1). Departures: they follow no paper
of the five; widths and dropout are chosen on the validation speakers of the RAVDESS-AU folds
(``benchmarks/ravdess_au.py``, "exploration" section of the report), never on test speakers.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from avemo.errors import ConfigError
from avemo.models.base import Encoder, check_min_size
from avemo.models.inputs import InputSpec
from avemo.models.papers import ZHANG_ZHENG
from avemo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class EmbeddingMlpConfig:
    """``feature``: a per-clip vector extractor (or table); ``feature_config``: its config overrides
    (e.g. ``{"layer": 3}`` for one Whisper hidden state); ``input_dim``: its length; ``hidden``:
    hidden widths (``()`` = logistic regression); ``input_dropout`` / ``dropout``: on the input and
    after every hidden layer."""

    feature: str = "whisper_base"
    feature_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    input_dim: int = 512
    hidden: tuple[int, ...] = (256,)
    dropout: float = 0.5
    input_dropout: float = 0.2

    def __post_init__(self) -> None:
        check_min_size("embedding_mlp", "input_dim", self.input_dim, 1)
        if any(w < 1 for w in self.hidden):
            raise ConfigError(f"hidden widths must be positive, got {self.hidden}")
        for name in ("dropout", "input_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")


class EmbeddingMlp(Encoder):
    """MLP (or, with ``hidden=()``, the identity) on a per-clip audio vector; see the module docstring."""

    modality = "audio"
    Config = EmbeddingMlpConfig

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        c = self.config
        widths = [c.input_dim, *c.hidden]
        if c.hidden:
            stages = []
            for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
                layers = [nn.Dropout(c.input_dropout)] if i == 0 else []
                layers += [nn.Linear(a, b), nn.GELU(), nn.Dropout(c.dropout)]
                stages.append(nn.Sequential(*layers))
            self.stages = nn.ModuleList(stages)
        else:
            self.stages = nn.ModuleList([nn.Dropout(c.input_dropout)])
        self.stage_channels = widths[1:] if c.hidden else [c.input_dim]
        self.feature_dim = widths[-1]

    @classmethod
    def spec_for(cls, config: EmbeddingMlpConfig) -> InputSpec:
        return InputSpec("audio", config.feature, dict(config.feature_config), (config.input_dim,), "vector")


@dataclasses.dataclass(frozen=True)
class WhisperMlpConfig(EmbeddingMlpConfig):
    hidden: tuple[int, ...] = ()


@register_model
class WhisperMlp(EmbeddingMlp):
    """Linear head (by default) or MLP on the frozen Whisper-base layer-averaged embedding (512,);
    see the module docstring."""

    name = "whisper_mlp"
    paper = ZHANG_ZHENG.cite("§4.3, Table 1 (replaces its '1D CNN (Aud.)'; Whisper: Radford et al. 2022 §2.3)")
    summary = ("Frozen Whisper-base layer-averaged clip embedding (512,) -> input dropout -> linear classifier "
               "(hidden layers optional)")
    Config = WhisperMlpConfig


@dataclasses.dataclass(frozen=True)
class EGeMAPSMlpConfig(EmbeddingMlpConfig):
    feature: str = "egemaps"
    input_dim: int = 88
    hidden: tuple[int, ...] = (128,)


@register_model
class EGeMAPSMlp(EmbeddingMlp):
    """MLP on the 88 eGeMAPS v02 functionals; see the module docstring."""

    name = "egemaps_mlp"
    paper = ZHANG_ZHENG.cite("§4.3, Table 1 (replaces its '1D CNN (Aud.)'; eGeMAPS: Eyben et al. 2016)")
    summary = "MLP (hidden 128, dropout) on the 88 eGeMAPS v02 functionals (openSMILE)"
    Config = EGeMAPSMlpConfig
