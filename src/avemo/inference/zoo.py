"""Run a trained zoo checkpoint on features computed at prediction time.

The trainer prepares a model's inputs in a fixed way: feature extractor output ``"x"``,
standardised with the training statistics (:class:`~avemo.models.normalization.Normalizer`),
sequences with a fixed length centre-cropped or zero-padded, frames scaled to [0, 1]
(:class:`~avemo.models.batching.TensorData`). :class:`ZooRunner` does exactly the same to features
computed from a file or from one window of it, through the same two classes (so the two cannot
drift apart), and runs the model on them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from avemo.errors import CheckpointError, ConfigError


def check_runnable(ckpt) -> None:
    """Refuse checkpoints the predictor cannot feed from a single media file."""
    from avemo.features.base import list_extractors

    if ckpt.normalizer.speaker_norm:
        raise CheckpointError(
            "the model was trained with speaker-level normalisation, which needs many clips of the test "
            "speaker; the predictor works on one file at a time (retrain with --no-speaker-norm)",
            ckpt.path,
        )
    known = set(list_extractors())
    for name, spec in ckpt.inputs.items():
        if spec.feature not in known:
            raise CheckpointError(
                f"input {name!r} is the table {spec.feature!r} (e.g. OpenFace AU means), which cannot be "
                "computed from a media file: train a model on features avemo extracts itself to use it for prediction",
                ckpt.path,
            )


class ZooRunner:
    """A loaded :class:`~avemo.models.checkpoint.Checkpoint` as ``arrays -> logits``."""

    def __init__(self, ckpt, device: str = "auto"):
        from avemo.device import torch_device

        check_runnable(ckpt)
        self.ckpt = ckpt
        self.device = torch_device(device)
        self.model = ckpt.model.to(self.device).eval()
        self.specs = dict(ckpt.inputs)

    def logits(self, arrays: Mapping[str, Sequence[np.ndarray]]) -> np.ndarray:
        """Raw feature arrays (``"x"`` of each input's extractor), n items per input -> (n, C) logits.

        Inputs marked optional in the model's spec may be left out (late fusion with one modality).
        """
        import torch

        from avemo.models.batching import TensorData, collate, to_device
        from avemo.models.normalization import ArraySet

        names = [n for n in self.specs if n in arrays]
        missing = [n for n, s in self.specs.items() if n not in arrays and not s.optional]
        if missing:
            raise ConfigError(f"model {self.ckpt.model.name}: input(s) {missing} are required")
        n = len(arrays[names[0]]) if names else 0
        if n == 0:
            return np.zeros((0, len(self.ckpt.labels)), dtype=np.float32)
        specs = {k: self.specs[k] for k in names}
        sub = dataclasses.replace(self.ckpt.normalizer.subset(names), speaker_norm=False)
        normalised = sub.transform(ArraySet({k: list(arrays[k]) for k in names}))
        data = TensorData(normalised, np.zeros(n, dtype=np.int64), specs, train=False)
        out = []
        with torch.inference_mode():
            for i in range(0, n, 32):
                batch, _ = collate([data[j] for j in range(i, min(i + 32, n))])
                batch = to_device(batch, specs, self.device)
                out.append(self.model(batch).float().cpu().numpy())
        return np.concatenate(out)
