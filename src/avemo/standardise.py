"""Per-dimension statistics and speaker-level z-normalisation, in numpy alone.

The arithmetic of :class:`~avemo.models.normalization.Normalizer` that prediction needs outside a
checkpoint: the mean and std of arrays (over the frames of sequences, over the vectors of vectors)
and each speaker's arrays z-normalised with that speaker's own statistics. The trainer
(``Normalizer.fit`` / ``transform``) and the predictor's speaker grouping
(:mod:`avemo.inference.speakers`) both call it, so the two cannot drift apart. It lives below
``models`` because importing ``avemo.models`` imports torch, and the ONNX engine groups clips by
speaker without torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _rows(x: np.ndarray, kind: str) -> np.ndarray:
    """The rows statistics are taken over: frames of a sequence, the vector itself."""
    return x.reshape(-1, x.shape[-1]) if kind == "sequence" else x.reshape(1, -1)


def column_stats(arrays: Sequence[np.ndarray], kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) per dimension of ``arrays`` (input kind ``kind``: ``"vector"`` or ``"sequence"``),
    float32; a constant dimension gets std 1 (it is centred, not blown up)."""
    rows = np.concatenate([_rows(np.asarray(a, dtype=np.float64), kind) for a in arrays])
    mean = rows.mean(axis=0)
    std = rows.std(axis=0)
    std = np.where(std < 1e-8, 1.0, std)
    return mean.astype(np.float32), std.astype(np.float32)


def speaker_normalised(arrays: Sequence[np.ndarray], kind: str, reference: Sequence[int] | None = None
                       ) -> list[np.ndarray]:
    """One speaker's arrays (of input kind ``kind``, not frames) z-normalised with that speaker's own
    statistics, taken over the arrays ``reference`` (indices into ``arrays``; default: all of them).
    Training and evaluation use all of a speaker's takes; a subset shows how many clips the
    statistics need."""
    chosen = range(len(arrays)) if reference is None else reference
    mean, std = column_stats([arrays[i] for i in chosen], kind)
    return [(np.asarray(a, dtype=np.float32) - mean) / std for a in arrays]


def per_speaker(arrays: Sequence[np.ndarray], speakers: Sequence[str], kind: str) -> list[np.ndarray]:
    """Each array z-normalised with the statistics of all the arrays of its speaker (``speakers[i]``
    is the speaker of ``arrays[i]``), in the order given."""
    out = list(arrays)
    who = np.array(speakers)
    for spk in np.unique(who):
        idx = np.nonzero(who == spk)[0]
        for i, a in zip(idx, speaker_normalised([arrays[i] for i in idx], kind), strict=True):
            out[i] = a
    return out
