"""The opt-in text expert: what was said -> emotion evidence, one more factor of the product of experts.

``Predictor.with_text_expert(expert)`` then ``predict(path, modalities="audio,video,text")``
(``avemo predict --modalities audio,video,text [--text-model RUN]``): the file is transcribed
(:mod:`avemo.inference.transcripts`) while the audio and video experts run, and a text model
(:class:`TextExpert`: texts -> logits over its own classes, e.g. the seven of MELD; a text
checkpoint through :class:`~avemo.inference.text_emotion.TextEmotion`, by default the bundled
one when the package ships it) scores the clip's transcript and each timeline window's words.
Text is never among the default modalities.

**Labels.** The text model's classes meet the predictor's labels through an explicit map
(:func:`text_label_map`): each class goes to the label of the same canonical name
(:func:`avemo.datasets.labels.normalise_emotion`: MELD ``joy`` -> ``happy``, ``anger`` ->
``angry``, ``sadness`` -> ``sad``, ``fear`` -> ``fearful``, ``surprise`` -> ``surprised``); a
class the predictor lacks is dropped and the others renormalised (``surprise`` for a bundle
without it). A label the text model has no class for takes the evidence of a similar one, named
in :attr:`TextFusionConfig.similar`: RAVDESS ``calm`` (no MELD class; an acted low-arousal
neutral) takes ``neutral``'s, so the text never moves the odds between calm and neutral (as the
video expert splits FER2013's neutral between the two; see :func:`~avemo.inference.fusion.decide`).
A label with neither is refused when the expert is attached.

**Fusion.** The audio-visual product ``p`` (:mod:`avemo.inference.fusion`) is multiplied by the
text expert's temperature-scaled distribution ``q`` raised to its weight and renormalised:

    log p'(c) = log p(c) + w_t * log q(c) + const.

A clip or window where nothing was said (an empty text) keeps ``p``: the text term is dropped, as
a missing modality's is. The weight and temperature are not tuned: no corpus here has
audio, video and spontaneous text with one label set (the RAVDESS sentences say the same two
things in every emotion, so their text carries no emotion at all), which is why text stays opt-in.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from avemo.errors import CheckpointError, ConfigError
from avemo.inference.result import ModalityStatus

TEXT = "text"
EPS = 1e-7
#: why the text is not used when neither the voice nor the face gave evidence (text only adds to them)
NOTHING_TO_ADD_TO = "neither the voice nor the face gave evidence, and the text expert only adds to them"


class TextExpert(ABC):
    """Texts -> emotion logits over ``labels`` (the text model's own classes)."""

    name: str
    labels: tuple[str, ...]

    @abstractmethod
    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """(n, len(labels)) logits of n non-empty texts."""


class CheckpointTextExpert(TextExpert):
    """A text checkpoint (:class:`~avemo.inference.text_emotion.TextEmotion`: a text-only model trained
    with ``avemo train``, e.g. on MELD) as a text expert. Its probabilities play the role of logits
    (``softmax(log p / T)``), as the video expert's do in the fusion."""

    def __init__(self, model):
        self.model = model
        self.name = model.checkpoint.model.name
        self.labels = model.labels

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        return np.log(np.clip(self.model.predict(list(texts)), EPS, None))


def load_text_expert(path=None) -> TextExpert:
    """The text expert of a checkpoint folder written by ``avemo train`` (a text-only model); None:
    the bundled text model, when the package ships one."""
    from avemo.inference.text_emotion import DEFAULT_TEXT_MODEL, TextEmotion

    if path is None and not DEFAULT_TEXT_MODEL.is_dir():
        raise CheckpointError("no text model ships with this package; give one (load_text_expert(RUN); "
                              "avemo predict --text-model RUN)",
                              DEFAULT_TEXT_MODEL)
    return CheckpointTextExpert(TextEmotion.load(DEFAULT_TEXT_MODEL if path is None else path))


@dataclasses.dataclass(frozen=True)
class TextFusionConfig:
    """Weight and temperature of the text term (see the module docstring), and which of the text
    model's classes stands for a predictor label it lacks (``{"calm": "neutral"}``)."""

    weight: float = 0.5
    temperature: float = 1.0
    similar: Mapping[str, str] = dataclasses.field(default_factory=lambda: {"calm": "neutral"})

    def __post_init__(self) -> None:
        if not self.weight >= 0:
            raise ConfigError(f"text weight must be >= 0, got {self.weight}")
        if not self.temperature > 0:
            raise ConfigError(f"text temperature must be > 0, got {self.temperature}")


def text_label_map(source: Sequence[str], target: Sequence[str],
                   similar: Mapping[str, str]) -> tuple[np.ndarray, dict[str, str]]:
    """``(matrix, notes)``: the (S, T) 0/1 matrix taking the text model's classes ``source`` to the
    predictor's labels ``target`` (see the module docstring), and a note per class or label that
    is not mapped one to one (for the model card and ``info()``)."""
    from avemo.datasets.labels import normalise_emotion

    canonical = [normalise_emotion(s) for s in source]
    matrix = np.zeros((len(source), len(target)), dtype=np.float32)
    notes: dict[str, str] = {}
    for i, (name, c) in enumerate(zip(source, canonical, strict=True)):
        if c in target:
            matrix[i, list(target).index(c)] = 1.0
            if c != name:
                notes[name] = f"-> {c}"
        else:
            notes[name] = "dropped: the predictor has no such label"
    for j, label in enumerate(target):
        if matrix[:, j].any():
            continue
        stand_in = similar.get(label)
        if stand_in is None or normalise_emotion(stand_in) not in canonical:
            raise ConfigError(f"the text model has no class for {label!r} (its classes: {', '.join(source)}); "
                              f"name a similar one in TextFusionConfig.similar")
        matrix[canonical.index(normalise_emotion(stand_in)), j] = 1.0
        notes[label] = f"takes the evidence of {stand_in!r} (the text model has no {label!r})"
    return matrix, notes


def split_text(value: str | Sequence[str] | None) -> tuple[str | Sequence[str] | None, bool]:
    """``(the other modalities, whether text was asked for)``: ``"audio,video,text"`` ->
    ``(["audio", "video"], True)``; text alone is refused (it only adds to the other experts)."""
    if value is None:
        return None, False
    items = value.replace("+", ",").split(",") if isinstance(value, str) else list(value)
    names = [str(v).strip().lower() for v in items]
    if TEXT not in names:
        return value, False
    rest = [n for n in names if n and n != TEXT]
    if not rest:
        raise ConfigError("modalities: text needs audio or video next to it (the text expert adds to the "
                          "other experts), e.g. audio,video,text")
    return rest, True


class TextFusion:
    """A :class:`TextExpert` attached to a predictor's labels: its evidence and the product with it."""

    def __init__(self, expert: TextExpert, labels: Sequence[str], config: TextFusionConfig | None = None):
        self.expert = expert
        self.labels = tuple(labels)
        self.config = config or TextFusionConfig()
        self.matrix, self.notes = text_label_map(expert.labels, self.labels, self.config.similar)
        self.kept = self.matrix.any(axis=1)  # the classes that reach a label

    def evidence(self, texts: Sequence[str]) -> np.ndarray:
        """(n, T) distributions over the predictor's labels; NaN rows for empty texts."""
        out = np.full((len(texts), len(self.labels)), np.nan, dtype=np.float32)
        said = [i for i, t in enumerate(texts) if t.strip()]
        if said:
            z = np.asarray(self.expert.logits([texts[i] for i in said]), dtype=np.float64)[:, self.kept]
            z = z / self.config.temperature
            p = np.exp(z - z.max(axis=1, keepdims=True))
            q = (p / p.sum(axis=1, keepdims=True)) @ self.matrix[self.kept]
            out[said] = q / q.sum(axis=1, keepdims=True)
        return out

    def fuse(self, probabilities: np.ndarray, evidence: np.ndarray) -> np.ndarray:
        """Each row of ``probabilities`` times its ``evidence`` row to the weight, renormalised; rows
        without evidence (NaN) or without probabilities (NaN) are returned unchanged."""
        p = np.asarray(probabilities, dtype=np.float64)
        ok = ~np.isnan(evidence).any(axis=1) & ~np.isnan(p).any(axis=1)
        out = p.copy()
        if ok.any():
            logp = np.log(np.clip(p[ok], EPS, None)) + self.config.weight * np.log(np.clip(evidence[ok], EPS, None))
            e = np.exp(logp - logp.max(axis=1, keepdims=True))
            out[ok] = e / e.sum(axis=1, keepdims=True)
        return out.astype(np.float32)

    def apply(self, result, transcript):
        """The backend's result with the text term in the clip and in every window that has words, and
        the ``text`` modality's status (its own clip-level distribution, or why it was not used)."""
        from avemo.inference.backends import labelled

        w = result.windows
        # one call for the clip and its windows: a text's encoding depends on the batch it is padded in
        # (float rounding) and the encoder keeps its last call's states, so two calls made the clip's
        # text of one file differ in the 7th digit between avemo predict and the server
        evidence = self.evidence([transcript.text, *(transcript.between(*b) for b in w.bounds)])
        clip_evidence, window_evidence = evidence[:1], evidence[1:]
        said = not np.isnan(clip_evidence).any()
        alone = result.probabilities is None  # no voice and no face: the text has nothing to add to
        used = said and not alone
        reason = None if used else "no speech was recognised" if not said else NOTHING_TO_ADD_TO
        status = ModalityStatus(used=used, reason=reason,
                                probabilities=labelled(clip_evidence[0], self.labels) if used else None)
        present = {**w.present, TEXT: ~np.isnan(window_evidence).any(axis=1) & ~np.isnan(w.probabilities).any(axis=1)}
        windows = dataclasses.replace(w, probabilities=self.fuse(w.probabilities, window_evidence), present=present)
        probabilities = None if alone else self.fuse(result.probabilities[None], clip_evidence)[0]
        return dataclasses.replace(result, probabilities=probabilities, windows=windows,
                                   modalities={**result.modalities, TEXT: status})

    def info(self) -> dict[str, Any]:
        return {"name": self.expert.name, "labels": list(self.expert.labels), "label_map": dict(self.notes),
                "weight": self.config.weight, "temperature": self.config.temperature}
