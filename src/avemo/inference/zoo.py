"""Run a trained zoo checkpoint on features computed at prediction time.

The trainer prepares a model's inputs in a fixed way: feature extractor output ``"x"``,
standardised with the training statistics (:class:`~avemo.models.normalization.Normalizer`),
sequences with a fixed length centre-cropped or zero-padded, frames scaled to [0, 1]
(:class:`~avemo.models.batching.TensorData`). :class:`ZooRunner` does exactly the same to features
computed from a file or from one window of it, through the same two classes (so the two cannot
drift apart), and runs the model on them: the torch module, or with ``engine="onnx"`` its ONNX graphs
in onnxruntime (:mod:`avemo.inference.zoo_export`), on the very same batches.
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
    """A loaded :class:`~avemo.models.checkpoint.Checkpoint` as ``arrays -> logits``.

    ``engine="onnx"``: the model's graphs in onnxruntime instead of the torch module, from
    ``onnx_dir`` (default: :func:`~avemo.inference.zoo_export.zoo_onnx_dir`), exported there first
    unless it holds this checkpoint's graphs already (``avemo export --model RUN --out DIR``).
    """

    def __init__(self, ckpt, device: str = "auto", engine: str = "torch", onnx_dir=None):
        from avemo.device import torch_device
        from avemo.inference.engines import check_engine

        check_engine(engine)
        check_runnable(ckpt)
        self.ckpt = ckpt
        self.engine = engine
        self.device = torch_device("cpu" if engine == "onnx" else device)  # onnx: batches made on the CPU
        self.model = ckpt.model.to(self.device).eval()
        self.specs = dict(ckpt.inputs)
        self.onnx_dir, self.graphs = None, {}
        if engine == "onnx":
            from avemo.inference.zoo_export import load_graphs

            self.onnx_dir, self.graphs = load_graphs(ckpt, onnx_dir)

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
                out.append(self._run(to_device(batch, specs, self.device), tuple(names)))
        return np.concatenate(out)

    def _run(self, batch, names: tuple[str, ...]) -> np.ndarray:
        """One batch of model inputs (on :attr:`device`) -> logits, on the engine."""
        if self.engine == "torch":
            return self.model(batch).float().cpu().numpy()
        graph = self.graphs.get(names)
        if graph is None:
            raise CheckpointError(f"the ONNX export of model {self.ckpt.model.name} has no graph for the inputs "
                                  f"{list(names)}", self.onnx_dir)
        return graph(**{k: v.numpy() for k, v in batch.items()})["logits"]
