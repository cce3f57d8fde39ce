"""Per-input standardisation fitted on training data: part of a trained model.

A model's inputs are standardised with statistics of its training data (:class:`Normalizer`),
stored in its checkpoint (:mod:`avemo.models.checkpoint`) and applied unchanged wherever the
model runs (evaluation, the predictor). Optionally, each speaker's arrays are first z-normalised
with that speaker's own statistics (speaker-level normalisation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from avemo.errors import DatasetError
from avemo.models.inputs import InputSpec


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


def _rows(x: np.ndarray, kind: str) -> np.ndarray:
    """The rows statistics are taken over: frames of a sequence, the vector itself."""
    return x.reshape(-1, x.shape[-1]) if kind == "sequence" else x.reshape(1, -1)


def _stats(arrays: Sequence[np.ndarray], kind: str) -> tuple[np.ndarray, np.ndarray]:
    rows = np.concatenate([_rows(np.asarray(a, dtype=np.float64), kind) for a in arrays])
    mean = rows.mean(axis=0)
    std = rows.std(axis=0)
    std = np.where(std < 1e-8, 1.0, std)  # constant dims are centred, not blown up
    return mean.astype(np.float32), std.astype(np.float32)


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
        pre = norm._per_speaker(data) if speaker_norm else data.inputs
        for name, kind in norm.kinds.items():
            if kind != "frames" and specs[name].standardise:
                norm.mean[name], norm.std[name] = _stats(pre[name], kind)
            elif kind != "frames":  # identity statistics: the model reads the extractor's values
                dim = int(np.asarray(pre[name][0]).shape[-1])
                norm.mean[name], norm.std[name] = np.zeros(dim, np.float32), np.ones(dim, np.float32)
        return norm

    def _per_speaker(self, data: NamedArrays) -> dict[str, list[np.ndarray]]:
        out: dict[str, list[np.ndarray]] = {}
        speakers = np.array(data.speakers)
        for name, kind in self.kinds.items():
            arrays = list(data.inputs[name])
            if kind != "frames":
                for spk in np.unique(speakers):
                    idx = np.nonzero(speakers == spk)[0]
                    mean, std = _stats([arrays[i] for i in idx], kind)
                    for i in idx:
                        arrays[i] = (np.asarray(arrays[i], dtype=np.float32) - mean) / std
            out[name] = arrays
        return out

    def transform(self, data: NamedArrays) -> dict[str, list[np.ndarray]]:
        pre = self._per_speaker(data) if self.speaker_norm else data.inputs
        out = {}
        for name, kind in self.kinds.items():
            if kind == "frames":
                out[name] = [np.asarray(a) for a in pre[name]]
            else:
                m, s = self.mean[name], self.std[name]
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
