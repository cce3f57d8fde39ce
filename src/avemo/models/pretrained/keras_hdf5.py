"""Read a Keras 2 HDF5 model file (``model.save("model.hdf5")``) with h5py, without TensorFlow.

Such a file holds the architecture as JSON in the root attribute ``model_config`` and the
weights under ``model_weights/<layer name>/``; the layer group's attribute ``weight_names``
lists its arrays in order (``".../kernel:0"``, ``".../gamma:0"``, ...). This module turns
both into plain Python: a :class:`KerasModelFile` of :class:`KerasLayer` records (name,
Keras class, config dict, inbound layer names, weights by short name as numpy arrays in
Keras' own layout: conv kernels HWIO, depthwise kernels HW(C)(multiplier)).

Only functional models (``class_name == "Model"`` / ``"Functional"``) saved by Keras 2 are
read: their ``inbound_nodes`` are lists of ``[layer, node, tensor, kwargs]``. Anything else
is a :class:`~avemo.errors.CheckpointError` with a one-line reason, never an h5py traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avemo.errors import CheckpointError


@dataclass(frozen=True)
class KerasLayer:
    """One layer of a Keras functional model."""

    name: str
    class_name: str
    config: dict[str, Any]
    inbound: tuple[str, ...]  # names of the layers feeding it (first call only)
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # "kernel", "gamma", ... -> array


@dataclass(frozen=True)
class KerasModelFile:
    """The graph and weights of a Keras HDF5 model file."""

    path: Path
    keras_version: str
    layers: dict[str, KerasLayer]  # in the order of ``model_config``
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    def layer(self, name: str) -> KerasLayer:
        try:
            return self.layers[name]
        except KeyError:
            raise CheckpointError(f"Keras model has no layer {name!r}", self.path) from None

    def expect(self, name: str, class_name: str | tuple[str, ...]) -> KerasLayer:
        """The layer ``name``, checked to be of Keras class ``class_name`` (or one of them)."""
        layer = self.layer(name)
        allowed = (class_name,) if isinstance(class_name, str) else class_name
        if layer.class_name not in allowed:
            raise CheckpointError(
                f"unexpected architecture: layer {name!r} is a {layer.class_name}, expected {' or '.join(allowed)}",
                self.path,
            )
        return layer

    def single_input(self, name: str) -> str:
        """The name of the one layer feeding ``name``."""
        inbound = self.layer(name).inbound
        if len(inbound) != 1:
            raise CheckpointError(
                f"unexpected architecture: layer {name!r} has {len(inbound)} inputs, expected 1", self.path
            )
        return inbound[0]


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _inbound(layer_json: dict, path: Path) -> tuple[str, ...]:
    nodes = layer_json.get("inbound_nodes", [])
    if not nodes:
        return ()
    if len(nodes) > 1:
        raise CheckpointError(
            f"layer {layer_json.get('name')!r} is called more than once (shared layers are not supported)",
            path,
        )
    node = nodes[0]
    if not isinstance(node, list) or not all(
        isinstance(t, list) and t and isinstance(t[0], str) for t in node
    ):
        raise CheckpointError("unsupported Keras model_config format (not a Keras 2 functional model)", path)
    return tuple(t[0] for t in node)


def read_keras_hdf5(path: str | Path) -> KerasModelFile:
    """Read the architecture and weights of a Keras 2 HDF5 model file.

    Raises :class:`CheckpointError` when the file is missing, is not HDF5, or lacks the
    ``model_config`` / ``model_weights`` that ``keras.Model.save`` writes.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise CheckpointError("no such file", path)
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise CheckpointError(f"is not a readable HDF5 file ({_text(exc).splitlines()[0]})", path) from None
    with handle as f:
        if "model_config" not in f.attrs or "model_weights" not in f:
            raise CheckpointError("is not a Keras model file (no model_config / model_weights)", path)
        try:
            model_json = json.loads(_text(f.attrs["model_config"]))
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"has an unreadable model_config ({exc.msg})", path) from None
        if model_json.get("class_name") not in ("Model", "Functional"):
            raise CheckpointError(
                f"holds a Keras {model_json.get('class_name')!r}; only functional models are supported", path
            )
        config = model_json.get("config", {})
        group = f["model_weights"]
        layers: dict[str, KerasLayer] = {}
        for layer_json in config.get("layers", []):
            name = layer_json["name"]
            weights: dict[str, np.ndarray] = {}
            if name in group:
                for weight_name in group[name].attrs.get("weight_names", []):
                    weight_name = _text(weight_name)
                    short = weight_name.rsplit("/", 1)[-1].split(":", 1)[0]
                    weights[short] = np.asarray(group[name][weight_name][()], dtype=np.float32)
            layers[name] = KerasLayer(
                name=name,
                class_name=layer_json["class_name"],
                config=dict(layer_json.get("config", {})),
                inbound=_inbound(layer_json, path),
                weights=weights,
            )
        inputs = tuple(spec[0] for spec in config.get("input_layers", []))
        outputs = tuple(spec[0] for spec in config.get("output_layers", []))
        keras_version = _text(f.attrs.get("keras_version", "unknown"))
    if not outputs:
        raise CheckpointError("Keras model_config names no output layer", path)
    return KerasModelFile(
        path=path, keras_version=keras_version, layers=layers, inputs=inputs, outputs=outputs
    )
