"""Prediction for users: a media file -> clip emotion, per-modality status, timeline.

* :class:`Predictor` (:mod:`avemo.inference.predictor`): ``Predictor.default()`` (the bundled
  model), ``Predictor.from_checkpoint(path)`` (a zoo model trained with ``avemo train``),
  ``predict(path, window=, hop=, modalities=)``, ``predict_many(paths)``;
* :class:`Prediction` (:mod:`avemo.inference.result`): the typed result and its JSON contract;
* experts (:mod:`~avemo.inference.audio`, :mod:`~avemo.inference.video`), the fusion rule
  (:mod:`~avemo.inference.fusion`), engines (:mod:`~avemo.inference.engines`: torch / onnx),
  ONNX export (:mod:`~avemo.inference.export`), output formats (:mod:`~avemo.inference.formats`).

Names are imported lazily so that ``import avemo.inference`` stays cheap.
"""

from __future__ import annotations

from typing import Any

from avemo.inference.result import ModalityStatus, Prediction, WindowPrediction

_LAZY = {
    "Predictor": "avemo.inference.predictor",
    "Outcome": "avemo.inference.predictor",
    "FusionConfig": "avemo.inference.fusion",
    "VideoExpertConfig": "avemo.inference.video",
    "WindowGrid": "avemo.inference.windows",
}

__all__ = ["ModalityStatus", "Prediction", "WindowPrediction", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'avemo.inference' has no attribute {name!r}")
