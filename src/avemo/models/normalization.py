"""Per-input standardisation fitted on training data: part of a trained model.

A model's inputs are standardised with statistics of its training data (:class:`Normalizer`),
stored in its checkpoint (:mod:`avemo.models.checkpoint`) and applied unchanged wherever the
model runs (evaluation, the predictor). Optionally, each speaker's arrays are first z-normalised
with that speaker's own statistics (speaker-level normalisation).

Test-time mean adaptation (``transform(data, adapt="mean")``, used by evaluation only): the mean
of the arrays being transformed replaces the training mean; the training std is kept. It is
transductive and unsupervised (no label is read), meant for a test corpus from another language or
recording setup whose embeddings are shifted as a whole; per-corpus normalisation was the most
effective simple strategy of Schuller et al. 2010, "Cross-Corpus Acoustic Emotion Recognition:
Variances and Strategies" (IEEE Trans. Affective Computing 1(2)). It assumes the set is one domain
with an emotion mix like the training data's: a set of only angry clips would be centred away from
anger. It needs at least :data:`MIN_ADAPT_ITEMS` items (the mean of a few clips is noise), so a
single file has no use for it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from avemo.errors import ConfigError, DatasetError
from avemo.models.inputs import InputSpec
from avemo.standardise import column_stats as _stats
from avemo.standardise import per_speaker as _per_speaker
from avemo.standardise import speaker_normalised  # noqa: F401  (re-exported: benchmarks and tests import it here)

#: test-time adaptations of :meth:`Normalizer.transform`
ADAPTATIONS = ("mean",)
#: the fewest items whose own mean may replace the training mean
MIN_ADAPT_ITEMS = 10


class NamedArrays(Protocol):
    """Arrays by input name, one per item, and each item's speaker (e.g. a
    :class:`~avemo.training.data.Gathered` set of takes)."""

    @property
    def inputs(self) -> Mapping[str, Sequence[np.ndarray]]: ...

    @property
    def speakers(self) -> Sequence[str]: ...


@dataclass
class ArraySet:
    """The plainest :class:`NamedArrays`: arrays by input name, and the items' speakers (may be
    empty when speaker-level normalisation is not used)."""

    inputs: Mapping[str, Sequence[np.ndarray]]
    speakers: Sequence[str] = ()


@dataclass
class Normalizer:
    """Per-input standardisation fitted on training data.

    ``speaker_norm``: first z-normalise each speaker's arrays with that speaker's own
    statistics (all their takes in the set being transformed; needs several takes per
    speaker at test time), then apply the global training statistics. Frames are only
    scaled to [0, 1].
    """

    kinds: dict[str, str]
    mean: dict[str, np.ndarray] = field(default_factory=dict)
    std: dict[str, np.ndarray] = field(default_factory=dict)
    speaker_norm: bool = False

    @classmethod
    def fit(cls, data: NamedArrays, specs: Mapping[str, InputSpec], *, speaker_norm: bool = False) -> Normalizer:
        norm = cls({n: s.kind for n, s in specs.items()}, speaker_norm=speaker_norm)
        pre = norm.per_speaker(data) if speaker_norm else data.inputs
        for name, kind in norm.kinds.items():
            if kind != "frames" and specs[name].standardise:
                norm.mean[name], norm.std[name] = _stats(pre[name], kind)
            elif kind != "frames":  # identity statistics: the model reads the extractor's values
                dim = int(np.asarray(pre[name][0]).shape[-1])
                norm.mean[name], norm.std[name] = np.zeros(dim, np.float32), np.ones(dim, np.float32)
        return norm

    def per_speaker(self, data: NamedArrays) -> dict[str, list[np.ndarray]]:
        """Each speaker's arrays z-normalised with that speaker's own statistics (mean and std over
        all their arrays in ``data``; frames left as they are): the first step of :meth:`fit` and
        :meth:`transform` for a ``speaker_norm`` model, before the global training statistics. The
        predictor's speaker grouping (:mod:`avemo.inference.speakers`) runs the same function,
        :func:`avemo.standardise.per_speaker`, without importing this package (which imports torch)."""
        return {name: list(arrays) if kind == "frames" else _per_speaker(arrays, data.speakers, kind)
                for name, kind in self.kinds.items() for arrays in [data.inputs[name]]}

    def subset(self, names: Collection[str]) -> Normalizer:
        """The statistics of the inputs ``names`` only (a late-fusion model run without one of its
        optional inputs: the others are transformed as in training)."""
        return Normalizer({k: v for k, v in self.kinds.items() if k in names},
                          {k: v for k, v in self.mean.items() if k in names},
                          {k: v for k, v in self.std.items() if k in names}, self.speaker_norm)

    @property
    def standardised(self) -> list[str]:
        """The inputs standardised with training statistics: not frames, and not the identity
        statistics (mean 0, std 1) of an input the model reads as the extractor gives it."""
        return [n for n, k in self.kinds.items()
                if k != "frames" and (np.any(self.mean[n] != 0) or np.any(self.std[n] != 1))]

    def check_adapt(self, adapt: str | None) -> None:
        """Raise a one-line :class:`ConfigError` when ``adapt`` is unknown or has nothing to adapt."""
        if adapt is None:
            return
        if adapt not in ADAPTATIONS:
            raise ConfigError(f"adapt must be one of {list(ADAPTATIONS)} or none, got {adapt!r}")
        if self.speaker_norm:
            raise ConfigError("the model was trained with speaker normalisation: each speaker's arrays are "
                              f"centred on their own mean already, so adapt={adapt!r} has nothing to add")
        if not self.standardised:
            raise ConfigError(f"adapt={adapt!r}: the model standardises none of its inputs (frames or inputs it "
                              "reads as extracted), so there is no training mean to replace")

    def transform(self, data: NamedArrays, *, adapt: str | None = None) -> dict[str, list[np.ndarray]]:
        """The arrays standardised with the training statistics; with ``adapt="mean"`` (test-time mean
        adaptation, see the module docstring) each standardised input is centred on the mean of its
        arrays in ``data`` (a sequence's frames pooled) and scaled by the training std. Frames and
        inputs read as extracted are left as they are."""
        self.check_adapt(adapt)
        pre = self.per_speaker(data) if self.speaker_norm else data.inputs
        adapted = set(self.standardised) if adapt else set()
        out = {}
        for name, kind in self.kinds.items():
            if kind == "frames":
                out[name] = [np.asarray(a) for a in pre[name]]
                continue
            m, s = self.mean[name], self.std[name]
            if name in adapted:
                if len(pre[name]) < MIN_ADAPT_ITEMS:
                    raise DatasetError(f"adapt={adapt!r} needs at least {MIN_ADAPT_ITEMS} items to take their "
                                       f"mean, got {len(pre[name])} (the mean of a few clips is noise)")
                m = _stats(pre[name], kind)[0]
            out[name] = [((np.asarray(a, dtype=np.float32) - m) / s).astype(np.float32) for a in pre[name]]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "speaker_norm": self.speaker_norm,
            "kinds": dict(self.kinds),
            "mean": {k: v.tolist() for k, v in self.mean.items()},
            "std": {k: v.tolist() for k, v in self.std.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Normalizer:
        try:
            return cls(
                kinds=dict(data["kinds"]),
                mean={k: np.asarray(v, dtype=np.float32) for k, v in data["mean"].items()},
                std={k: np.asarray(v, dtype=np.float32) for k, v in data["std"].items()},
                speaker_norm=bool(data["speaker_norm"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"malformed normalisation statistics ({exc})") from None
