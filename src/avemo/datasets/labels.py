"""Label sets of each dataset and explicit maps between them.

One canonical English name per emotion is used everywhere (``"fearful"``, not ``"fear"``
in one place and ``"FEA"`` in another); each dataset's own codes are translated by its
reader. A :class:`LabelMap` between two label sets says, for every source emotion, which
target emotion it becomes, or that it has no counterpart (``None``) and why.

A :class:`Comparison` (:func:`comparison_map`) scores a model trained on one label set against
a corpus labelled with another: both sets are mapped onto the labels both can express (the
scored labels), with the merges of :data:`COMPARISON_MERGES` (RAVDESS calm counts as neutral
against a set without calm) written out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from avemo.errors import ConfigError, FeatureError

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class LabelSet:
    """An ordered set of emotion names; the order is the class index order of models."""

    name: str
    emotions: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(set(self.emotions)) != len(self.emotions):
            raise ConfigError(f"label set {self.name!r} repeats an emotion: {self.emotions}")

    def __len__(self) -> int:
        return len(self.emotions)

    def __iter__(self) -> Iterator[str]:
        return iter(self.emotions)

    def __contains__(self, emotion: object) -> bool:
        return emotion in self.emotions

    def index(self, emotion: str) -> int:
        try:
            return self.emotions.index(emotion)
        except ValueError:
            raise ConfigError(
                f"emotion {emotion!r} is not in label set {self.name!r} ({', '.join(self.emotions)})"
            ) from None

    def to_dict(self) -> dict:
        return {"name": self.name, "emotions": list(self.emotions)}

    @classmethod
    def from_dict(cls, data: Mapping) -> LabelSet:
        return cls(name=str(data["name"]), emotions=tuple(data["emotions"]))


# Livingstone & Russo 2018: emotion codes 01..08 in this order.
RAVDESS = LabelSet("ravdess", ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"))
# Cao et al. 2014: ANG, DIS, FEA, HAP, NEU, SAD.
CREMA_D = LabelSet("crema_d", ("angry", "disgust", "fearful", "happy", "neutral", "sad"))
# Burkhardt et al. 2005: W (Wut), L (Langeweile), E (Ekel), A (Angst), F (Freude), T (Trauer), N.
EMODB = LabelSet("emodb", ("angry", "boredom", "disgust", "fearful", "happy", "sad", "neutral"))
# FER2013 (Goodfellow et al. 2013) class order, used by the facial-expression networks on PyPI.
FER2013 = LabelSet("fer2013", ("angry", "disgust", "fearful", "happy", "sad", "surprised", "neutral"))
# Poria et al. 2019 (MELD): neutral, joy, sadness, anger, fear, disgust, surprise (Ekman's six + neutral).
MELD = LabelSet("meld", ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised"))
# Busso et al. 2008 (IEMOCAP), the two usual protocols: 4 classes with excited merged into happy,
# and the 6 classes of Gao et al. (paper 002, section 5.2).
IEMOCAP4 = LabelSet("iemocap4", ("neutral", "happy", "sad", "angry"))
IEMOCAP6 = LabelSet("iemocap6", ("neutral", "happy", "sad", "angry", "excited", "frustrated"))

LABEL_SETS: dict[str, LabelSet] = {
    s.name: s for s in (RAVDESS, CREMA_D, EMODB, FER2013, MELD, IEMOCAP4, IEMOCAP6)
}


def get_label_set(name: str) -> LabelSet:
    try:
        return LABEL_SETS[name]
    except KeyError:
        raise ConfigError(f"unknown label set {name!r}; known: {', '.join(sorted(LABEL_SETS))}") from None


@dataclass(frozen=True)
class LabelMap:
    """Maps emotions of ``source`` to emotions of ``target`` (or ``None``: no counterpart).

    ``notes`` explains the entries that are not an identity (why an emotion is dropped or
    merged), so that a report can say it.
    """

    source: LabelSet
    target: LabelSet
    mapping: Mapping[str, str | None]
    notes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [e for e in self.source if e not in self.mapping]
        if missing:
            raise ConfigError(f"label map {self.source.name}->{self.target.name} lacks {', '.join(missing)}")
        foreign = [t for t in self.mapping.values() if t is not None and t not in self.target]
        if foreign:
            raise ConfigError(f"label map {self.source.name}->{self.target.name} targets unknown {', '.join(foreign)}")

    def __call__(self, emotion: str) -> str | None:
        if emotion not in self.mapping:
            raise ConfigError(f"emotion {emotion!r} is not in label set {self.source.name!r}")
        return self.mapping[emotion]

    @property
    def dropped(self) -> tuple[str, ...]:
        """Source emotions with no counterpart in the target set."""
        return tuple(e for e in self.source if self.mapping[e] is None)

    def to_dict(self) -> dict:
        return {"source": self.source.name, "target": self.target.name, "map": dict(self.mapping),
                "notes": dict(self.notes)}

    def matrix(self):
        """A (len(source), len(target)) 0/1 numpy matrix: probabilities @ matrix maps them."""
        import numpy as np

        m = np.zeros((len(self.source), len(self.target)), dtype=np.float32)
        for i, e in enumerate(self.source):
            t = self.mapping[e]
            if t is not None:
                m[i, self.target.index(t)] = 1.0
        return m


def _identity_map(source: LabelSet, target: LabelSet, notes: Mapping[str, str]) -> LabelMap:
    """Map every emotion to the same name in the target set, or None where the target lacks it."""
    mapping = {e: (e if e in target else None) for e in source}
    full_notes = dict(notes)
    for e, t in mapping.items():
        if t is None and e not in full_notes:
            full_notes[e] = f"{target.name} has no {e!r} class"
    return LabelMap(source, target, mapping, full_notes)


_NOTES = {
    "calm": "calm is a RAVDESS-only category (a low-arousal neutral); other sets have no counterpart",
    "surprised": "surprise is not among the six CREMA-D / seven EmoDB categories",
    "boredom": "boredom is an EmoDB-only category",
    "excited": "excited is an IEMOCAP category (its 4-class protocol merges it into happy)",
    "frustrated": "frustrated is an IEMOCAP category",
}

_MAPS: dict[tuple[str, str], LabelMap] = {}
for _src in LABEL_SETS.values():
    for _dst in LABEL_SETS.values():
        if _src.name != _dst.name:
            _MAPS[(_src.name, _dst.name)] = _identity_map(_src, _dst, {k: v for k, v in _NOTES.items() if k in _src})


def label_map(source: str | LabelSet, target: str | LabelSet) -> LabelMap:
    """The explicit map from one dataset's label set to another's.

    Emotions with the same canonical name map to each other; every other emotion maps to
    ``None`` with a note (e.g. RAVDESS ``calm`` and ``surprised`` have no CREMA-D class).
    """
    s = source.name if isinstance(source, LabelSet) else source
    t = target.name if isinstance(target, LabelSet) else target
    if s == t:
        ls = get_label_set(s)
        return LabelMap(ls, ls, {e: e for e in ls})
    get_label_set(s), get_label_set(t)
    return _MAPS[(s, t)]


# --- scoring one label set against another (cross-corpus evaluation) ------------------------

#: emotion -> (the emotion it counts as, why) when the other label set lacks it; used only to
#: compare a model's answers with another corpus's labels, never to relabel training data
COMPARISON_MERGES: dict[str, tuple[str, str]] = {
    "calm": ("neutral", "calm is a RAVDESS-only category (a low-arousal neutral): scored as neutral "
                        "against a label set without calm"),
}


@dataclass(frozen=True)
class Comparison:
    """A model's label set and a corpus's label set, each mapped onto the scored labels.

    ``model`` maps the model's classes to the scored labels (several classes may meet in one:
    their probabilities are summed; classes without a partner are dropped), ``data`` maps the
    corpus's labels to them (clips whose label maps to ``None`` are left out of the score).
    """

    model: LabelMap
    data: LabelMap

    @property
    def labels(self) -> LabelSet:
        """The scored labels (the target of both maps), in the corpus's order."""
        return self.data.target

    @property
    def identity(self) -> bool:
        """Both sides are the same label set: nothing is merged or left out."""
        return self.model.source.emotions == self.data.source.emotions

    def probabilities(self, probs: np.ndarray) -> np.ndarray:
        """(n, len(model labels)) probabilities -> (n, len(scored labels)), summed per scored label and
        renormalised over the scored labels (the model's belief given that the answer is one of them)."""
        import numpy as np

        probs = np.asarray(probs, dtype=np.float64)
        if probs.ndim != 2 or probs.shape[1] != len(self.model.source):
            raise FeatureError(f"expected (n, {len(self.model.source)}) {self.model.source.name} probabilities, "
                               f"got shape {probs.shape}")
        mapped = probs @ self.model.matrix().astype(np.float64)
        total = mapped.sum(axis=1, keepdims=True)
        uniform = np.full_like(mapped, 1.0 / mapped.shape[1])
        return np.divide(mapped, total, out=uniform, where=total > 0)

    def to_dict(self) -> dict:
        return {
            "labels": list(self.labels.emotions),
            "mapping": {"model": {"label_set": self.model.source.name, "map": dict(self.model.mapping)},
                        "data": {"label_set": self.data.source.name, "map": dict(self.data.mapping)}},
            "notes": {**dict(self.model.notes), **dict(self.data.notes)},
        }


def _comparison_names(own: LabelSet, other: LabelSet) -> tuple[dict[str, str], dict[str, str]]:
    """Each emotion of ``own`` -> the name it is compared under, and the notes of the merged ones."""
    names, notes = {}, {}
    for e in own:
        if e in COMPARISON_MERGES and e not in other:
            names[e], notes[e] = COMPARISON_MERGES[e]
        else:
            names[e] = e
    return names, notes


def _side_map(own: LabelSet, other: LabelSet, names: Mapping[str, str], merge_notes: Mapping[str, str],
              scored: LabelSet) -> LabelMap:
    mapping = {e: (names[e] if names[e] in scored else None) for e in own}
    notes = dict(merge_notes)
    for e, t in mapping.items():
        if t is None:
            notes[e] = _NOTES.get(e, f"{other.name} has no {e!r} class")
    return LabelMap(own, scored, mapping, notes)


def comparison_map(model: str | LabelSet, data: str | LabelSet) -> Comparison:
    """How a model trained on ``model`` labels is scored on a corpus labelled with ``data`` labels.

    The scored labels are the emotions both sets can express once :data:`COMPARISON_MERGES` are
    applied (RAVDESS vs EmoDB: angry, disgust, fearful, happy, sad, neutral, with calm counted as
    neutral; surprised and boredom have no partner). Two identical sets compare one to one.
    Fewer than two scored labels: a :class:`~avemo.errors.ConfigError` naming both sets and the
    labels without a partner.
    """
    a = model if isinstance(model, LabelSet) else get_label_set(model)
    b = data if isinstance(data, LabelSet) else get_label_set(data)
    if a.emotions == b.emotions:
        return Comparison(LabelMap(a, a, {e: e for e in a}), LabelMap(b, a, {e: e for e in b}))
    a_names, a_notes = _comparison_names(a, b)
    b_names, b_notes = _comparison_names(b, a)
    common = set(a_names.values())
    shared = tuple(dict.fromkeys(n for n in b_names.values() if n in common))
    if len(shared) < 2:
        lone_a = [e for e in a if a_names[e] not in shared]
        lone_b = [e for e in b if b_names[e] not in shared]
        raise ConfigError(
            f"label sets {a.name} ({', '.join(a.emotions)}) and {b.name} ({', '.join(b.emotions)}) cannot be "
            f"compared: they share {len(shared)} label(s) ({', '.join(shared) or 'none'}), 2 are needed; without a "
            f"partner: {a.name} {', '.join(lone_a) or 'none'}; {b.name} {', '.join(lone_b) or 'none'}"
        )
    scored = LabelSet(f"{a.name}~{b.name}", shared)
    return Comparison(_side_map(a, b, a_names, a_notes, scored), _side_map(b, a, b_names, b_notes, scored))


# --- emotion names written by people (generic folder + CSV datasets) -------------------------

def fer_to_labels_matrix(target: LabelSet | Sequence[str], calm_share: float = 0.5) -> np.ndarray:
    """(7, C) matrix M with ``target_probs ∝ fer_probs @ M`` for any ``target`` label set.

    Built on the names FER2013 and ``target`` share: each FER2013 emotion goes to its namesake;
    one the target lacks (``surprised`` for the six labels RAVDESS and EmoDB share) gets a zero
    row, and :func:`fer_to_labels` renormalises what is left. When the target has ``calm`` (RAVDESS),
    ``calm_share`` of the neutral row moves to calm: FER2013 has no calm, and a face without a
    marked expression is evidence for "neutral or calm" (see
    :mod:`avemo.models.pretrained.fer_classifier`). ConfigError when the two sets share nothing.
    """
    if not 0.0 <= calm_share <= 1.0:
        raise ConfigError(f"calm_share must lie in [0, 1], got {calm_share}")
    emotions = tuple(target.emotions if isinstance(target, LabelSet) else target)
    target = LabelSet("target", emotions)
    m = _identity_map(FER2013, target, {}).matrix()
    if not m.any():
        raise ConfigError(f"the label set ({', '.join(emotions)}) shares no emotion with FER2013 ({', '.join(FER2013.emotions)})")
    if "calm" in target and "neutral" in target:
        neutral = FER2013.index("neutral")
        m[neutral] *= 1.0 - calm_share
        m[neutral, target.index("calm")] = calm_share
    return m


def fer_to_labels(probs: np.ndarray, target: LabelSet | Sequence[str], calm_share: float = 0.5) -> np.ndarray:
    """(..., 7) FER2013 probabilities -> (..., C) probabilities over ``target`` (:func:`fer_to_labels_matrix`),
    renormalised when the target lacks a FER2013 emotion (a distribution on the dropped emotions alone
    becomes uniform)."""
    import numpy as np

    probs = np.asarray(probs, dtype=np.float32)
    if probs.shape[-1] != len(FER2013):
        raise FeatureError(f"expected (..., {len(FER2013)}) FER2013 probabilities, got shape {probs.shape}")
    out = probs @ fer_to_labels_matrix(target, calm_share)
    total = out.sum(axis=-1, keepdims=True)
    uniform = np.full_like(out, 1.0 / out.shape[-1])
    return np.where(total > 1e-12, out / np.maximum(total, 1e-12), uniform).astype(np.float32)


def fer_to_ravdess_matrix(calm_share: float = 0.5) -> np.ndarray:
    """(7, 8) matrix M with ``ravdess_probs = fer_probs @ M`` (rows sum to 1: every FER2013 emotion has a
    RAVDESS namesake); :func:`fer_to_labels_matrix` for the RAVDESS labels."""
    return fer_to_labels_matrix(RAVDESS, calm_share)


def fer_to_ravdess(probs: np.ndarray, calm_share: float = 0.5) -> np.ndarray:
    """(..., 7) FER2013 probabilities -> (..., 8) RAVDESS probabilities (:func:`fer_to_labels`)."""
    return fer_to_labels(probs, RAVDESS, calm_share)


#: every canonical emotion name, in the order used when a label set is built from data
CANONICAL_EMOTIONS = (
    "neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised", "boredom", "excited", "frustrated"
)

#: the emotion codes of corpora whose file names or label files are often copied into a labels CSV,
#: read case-insensitively: CREMA-D (Cao et al. 2014, "CREMA-D: Crowd-sourced Emotional Multimodal
#: Actors Dataset", file names ANG, DIS, FEA, HAP, NEU, SAD) and IEMOCAP (Busso et al. 2008,
#: "IEMOCAP: interactive emotional dyadic motion capture database", categorical labels ang, hap,
#: exc, sad, fru, sur, fea, dis, neu). The two corpora agree where their codes meet; ``sad`` is
#: already canonical, and ``exc`` stays excited (the 4-class IEMOCAP protocol's merge into happy is
#: a label-set choice, not a spelling). IEMOCAP's ``oth`` (other) and ``xxx`` (no majority) are no
#: emotion and are kept as they are; EmoDB's one-letter German codes are left out: ``A`` (Angst,
#: fear) and ``F`` (Freude, joy) would read as anger and fear.
CORPUS_CODES = {
    "ang": "angry",
    "dis": "disgust",
    "fea": "fearful",
    "hap": "happy",
    "neu": "neutral",
    "exc": "excited",
    "fru": "frustrated",
    "sur": "surprised",
}

#: common spellings of the canonical emotions in user label tables: nouns, everyday adjectives
#: (``mad``, ``scared``). Only spellings of one canonical emotion: ``frustrated`` is not angry
#: (IEMOCAP's own class) and ``excited`` is not happy (a protocol's merge, not a spelling).
EMOTION_ALIASES = {
    "anger": "angry",
    "mad": "angry",
    "fear": "fearful",
    "afraid": "fearful",
    "scared": "fearful",
    "frightened": "fearful",
    "happiness": "happy",
    "joy": "happy",
    "joyful": "happy",
    "sadness": "sad",
    "surprise": "surprised",
    "disgusted": "disgust",
    "calmness": "calm",
    "bored": "boredom",
    "frustration": "frustrated",
    "excitement": "excited",
    "neutral state": "neutral",  # IEMOCAP's label files
    **CORPUS_CODES,
}


def normalise_emotion(name: str) -> str:
    """Lower-case, strip and map common spellings (:data:`EMOTION_ALIASES`, the corpus codes of
    :data:`CORPUS_CODES` among them) to the canonical name (``"Fear"`` -> ``"fearful"``, ``"ANG"`` -> ``"angry"``).

    A name that is neither canonical nor a known alias is returned lower-cased: a user's own
    data may have categories of its own (``"contempt"``).
    """
    key = " ".join(str(name).split()).lower()
    return EMOTION_ALIASES.get(key, key)


def label_set_for(name: str, emotions: Iterable[str | None]) -> LabelSet:
    """A LabelSet of the distinct ``emotions`` given: canonical ones in canonical order, then the rest sorted."""
    distinct = {e for e in emotions if e is not None}
    ordered = [e for e in CANONICAL_EMOTIONS if e in distinct]
    ordered += sorted(distinct - set(CANONICAL_EMOTIONS))
    return LabelSet(name, tuple(ordered))
