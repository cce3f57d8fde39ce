"""ONNX export of a model trained with ``avemo train`` (a run folder: checkpoint.json + model.safetensors).

``avemo export --model RUN [--out DIR]`` (and ``avemo predict --model RUN --engine onnx``, which exports
to the onnx engine's cache folder on first use, :func:`zoo_onnx_dir`) writes:

* ``model.onnx``: the model on its inputs as it consumes them, after the normalisation and batching
  of :class:`~avemo.models.batching.TensorData` (sequences ``(B, T, D)`` standardised, frames
  ``(B, N, H, W, C)`` float32 in [0, 1], vectors ``(B, D)``) -> ``logits`` ``(B, C)``. The graph's
  inputs are named after the model's; a dialogue model (``dialogue_context`` set) also takes the
  masks its collate produces (``<name>_mask``, and with a context ``<name>_context`` and
  ``<name>_context_mask``), as float32 (1 at a real step). The batch axis is dynamic, and so is the
  time axis of every free-length sequence (``T = None`` in its :class:`~avemo.models.InputSpec`);
* ``model.<names>.onnx`` for a model with optional inputs (late fusion): one graph per usable subset
  of them (``model.audio.onnx``), for a file with one modality only, as the torch module runs then;
* ``manifest.json``: the checkpoint's fingerprint (:func:`checkpoint_fingerprint`), the model's
  name, labels, input specs and normalisation statistics, and each graph's inputs and checked
  difference, so that the graphs run without reading the checkpoint.

Every graph is traced with the TorchScript-based exporter (``dynamo=False``, as the bundle's:
:func:`~avemo.inference.engines.export_module`) into a temporary folder and checked there: on the
example inputs it was traced with and on a second batch of another size (and length), onnxruntime
and torch must agree within ``|onnx - torch| <= ATOL + RTOL * |torch|``, else nothing is written
and the error names the model and the largest difference. The folder is renamed into place (or,
when ``out_dir`` exists, its files are moved in, the manifest last), so a reader never sees half
an export.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from avemo.errors import AvemoError, CheckpointError
from avemo.inference.engines import MANIFEST, read_manifest
from avemo.models.batching import CONTEXT, MASK
from avemo.models.inputs import example_inputs

FORMAT = "avemo.zoo_onnx"
FORMAT_VERSION = 1
#: the agreement asked of onnxruntime and torch, elementwise on the logits
ATOL, RTOL = 1e-4, 1e-3


def checkpoint_fingerprint(path: str | Path) -> str:
    """A short hash of a checkpoint's weights and checkpoint.json and of the avemo version (names its
    ONNX export; other files of a run folder, such as logs, do not change it). The files' digests are
    memoised (:func:`avemo.digest.file_digest`): a prediction asks for it several times (the cache
    folder, the export's check), and a 3D ResNeXt's weights are 100 MB."""
    from avemo.digest import file_digest
    from avemo.models.checkpoint import META, WEIGHTS
    from avemo.version import __version__

    digest = hashlib.sha256(__version__.encode())
    for name in (META, WEIGHTS):
        digest.update(bytes.fromhex(file_digest(Path(path) / name)))
    return digest.hexdigest()[:16]


def zoo_onnx_dir(run: str | Path) -> Path:
    """Where the onnx engine keeps the graphs of the checkpoint ``run``: ``$AVEMO_ONNX_DIR``, else a
    cache folder named after its fingerprint (:func:`~avemo.inference.bundle.onnx_cache_dir`)."""
    from avemo.inference.bundle import onnx_cache_dir

    return onnx_cache_dir(checkpoint_fingerprint(run))


class _GraphModule(nn.Module):
    """The model with positional float inputs (the exporter's calling convention); mask inputs are
    compared with 0.5 to give the boolean masks the model reads."""

    def __init__(self, model: nn.Module, names: Sequence[str]):
        super().__init__()
        self.model = model
        self.names = tuple(names)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model({n: t > 0.5 if n.endswith(MASK) else t for n, t in zip(self.names, tensors, strict=True)})


def graph_inputs(model, names: Sequence[str]) -> list[str]:
    """The graph's input names for the model inputs ``names``: those, and a dialogue model's masks
    and contexts as its collate produces them (:mod:`avemo.models.batching`)."""
    out = list(names)
    if model.dialogue_context is None:
        return out
    for name in names:
        if model.inputs[name].kind == "sequence":
            out.append(name + MASK)
        if model.dialogue_context:
            out += [name + CONTEXT, name + CONTEXT + MASK]
    return out


def example_batch(model, specs: Mapping, batch: int, length: int, seed: int) -> dict[str, np.ndarray]:
    """Example inputs of the graph for the inputs ``specs`` (:func:`example_specs`): random values
    (:func:`~avemo.models.inputs.example_inputs`), free-length sequences ``length`` steps long, a
    dialogue model's masks all ones and its context the current utterance repeated."""
    base = example_inputs(specs, batch=batch, free=length, generator=torch.Generator().manual_seed(seed))
    out = {n: t.numpy() for n, t in base.items()}
    h = model.dialogue_context
    for name, spec in specs.items():
        x, sequence = out[name], spec.kind == "sequence"
        if h is not None and sequence:
            out[name + MASK] = np.ones(x.shape[:2], np.float32)
        if h:
            out[name + CONTEXT] = np.repeat(x[:, None], h, axis=1)
            out[name + CONTEXT + MASK] = np.ones((batch, h, *x.shape[1:2]) if sequence else (batch, h), np.float32)
    return out


def dynamic_axes(model, names: Sequence[str]) -> dict[str, dict[int, str]]:
    """Batch axis of every input and of the logits; time axis of free-length sequences (and masks)."""
    axes: dict[str, dict[int, str]] = {n: {0: "batch"} for n in graph_inputs(model, names)}
    axes["logits"] = {0: "batch"}
    for name in names:
        spec = model.inputs[name]
        if spec.kind != "sequence" or spec.shape[0] is not None:
            continue
        axes[name][1] = f"{name}_time"
        for key, dim in ((name + MASK, 1), (name + CONTEXT, 2), (name + CONTEXT + MASK, 2)):
            if key in axes:
                axes[key][dim] = f"{name}_time"
    return axes


def input_subsets(model) -> list[tuple[str, ...]]:
    """The sets of inputs the model runs on: all of them, and for optional inputs each non-empty
    subset that keeps the required ones (largest first)."""
    names = list(model.inputs)
    required = [n for n in names if not model.inputs[n].optional]
    out = []
    for size in range(len(names), 0, -1):
        out += [c for c in itertools.combinations(names, size) if set(required) <= set(c)]
    return out


def graph_file(names: Sequence[str], model) -> str:
    return "model.onnx" if list(names) == list(model.inputs) else f"model.{'+'.join(names)}.onnx"


def example_specs(ckpt, names: Sequence[str]) -> dict:
    """The specs of the inputs ``names`` with a free feature dim (a vector's ``D = None``) set to the
    one the checkpoint was trained on (its normalisation statistics), for the example inputs."""
    import dataclasses

    out = {}
    for name in names:
        spec = ckpt.inputs[name]
        mean = ckpt.normalizer.mean.get(name)
        if spec.kind != "frames" and spec.shape[-1] is None and mean is not None:
            spec = dataclasses.replace(spec, shape=(*spec.shape[:-1], int(np.asarray(mean).shape[-1])))
        out[name] = spec
    return out


def compare(graph: _GraphModule, engine, batch: Mapping[str, np.ndarray]) -> tuple[float, bool]:
    """The largest |onnx - torch| on the logits of ``batch``, and whether every logit is within
    ``ATOL + RTOL * |torch|``."""
    with torch.inference_mode():
        expected = graph(*(torch.from_numpy(batch[n]) for n in graph.names)).float().numpy()
    got = engine(**batch)["logits"]
    if got.shape != expected.shape:
        return float("inf"), False
    difference = np.abs(got.astype(np.float64) - expected)
    worst = float(np.max(difference)) if difference.size else 0.0
    return worst, bool(np.all(difference <= ATOL + RTOL * np.abs(expected)))


def _export_graph(ckpt, names: Sequence[str], folder: Path) -> dict:
    """Trace the model on the inputs ``names`` into ``folder``, check it (module docstring); its
    manifest entry. One-line :class:`AvemoError` naming the model when it cannot be exported or disagrees."""
    from avemo.inference.engines import OnnxEngine, export_module

    model, file = ckpt.model, graph_file(names, ckpt.model)
    graph = _GraphModule(model, graph_inputs(model, names))
    specs = example_specs(ckpt, names)
    traced = example_batch(model, specs, batch=2, length=16, seed=0)
    try:
        export_module(graph, folder / file, traced, ["logits"], dynamic_axes(model, names))
        engine = OnnxEngine(folder / file)
    except (RuntimeError, CheckpointError) as exc:  # the exporter's errors are RuntimeErrors (an op it lacks)
        reason = exc.reason if isinstance(exc, AvemoError) else str(exc).strip().splitlines()[0]
        raise AvemoError(f"model {model.name} cannot be exported to ONNX: {reason}", ckpt.path) from None
    other = example_batch(model, specs, batch=3, length=11, seed=1)
    try:
        checks = [compare(graph, engine, batch) for batch in (traced, other)]
    except Exception as exc:  # onnxruntime raises its own exception types (a shape the tracer froze)
        raise AvemoError(f"model {model.name}: the exported ONNX graph fails on another batch size or length "
                         f"({str(exc).strip().splitlines()[0]}); nothing was written", ckpt.path) from None
    worst = max(d for d, _ in checks)
    if not all(ok for _, ok in checks):
        raise AvemoError(f"model {model.name}: onnxruntime and torch disagree on the exported graph (largest "
                         f"difference in the logits {worst:.3g}, allowed {ATOL:g} + {RTOL:g} x |logit|); "
                         "nothing was written", ckpt.path)
    return {"file": file, "inputs": list(graph.names), "max_difference": worst}


def export_checkpoint(ckpt, out_dir: str | Path) -> Path:
    """Export the loaded checkpoint ``ckpt`` (:func:`~avemo.models.checkpoint.load_checkpoint`) to
    ``out_dir``: every graph, checked, then the manifest (module docstring), in place of the export
    ``out_dir`` held (:func:`~avemo.inference.engines.write_export`); returns ``out_dir``."""
    from avemo.inference.engines import write_export

    def write(folder: Path) -> None:
        ckpt.model.to("cpu").eval()
        graphs = {"+".join(names): _export_graph(ckpt, names, folder) for names in input_subsets(ckpt.model)}
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "model": ckpt.model.name,
            "fingerprint": checkpoint_fingerprint(ckpt.path), "labels": ckpt.labels.to_dict(),
            "inputs": {n: s.to_dict() for n, s in ckpt.inputs.items()},
            "dialogue_context": ckpt.model.dialogue_context, "normalization": ckpt.normalizer.to_dict(),
            "tolerance": {"atol": ATOL, "rtol": RTOL}, "graphs": graphs,
        }
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")

    return write_export(out_dir, write)


def current_zoo_export(run: str | Path, out_dir: str | Path) -> dict | None:
    """The manifest of ``out_dir`` if it holds the graphs of the checkpoint ``run`` (same fingerprint,
    every file, this export version), else None."""
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    if (manifest is None or manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION
            or manifest.get("fingerprint") != checkpoint_fingerprint(run)):
        return None
    graphs = manifest.get("graphs")
    if not isinstance(graphs, dict) or not all((out_dir / str(g.get("file"))).is_file() for g in graphs.values()):
        return None
    return manifest


def other_zoo_export(run: str | Path, out_dir: str | Path) -> dict | None:
    """The manifest of ``out_dir`` when it is the export of another model than the checkpoint ``run``
    (the bundle's, another checkpoint's: another fingerprint), which :func:`ensure_zoo_exported` does
    not replace; None otherwise (none, or this checkpoint's, whole or not)."""
    held = read_manifest(Path(out_dir))
    return None if held is None or held.get("fingerprint") == checkpoint_fingerprint(run) else held


def ensure_zoo_exported(ckpt, out_dir: str | Path) -> dict:
    """Export unless ``out_dir`` already holds the graphs of this very checkpoint (another model's
    graphs there are not replaced: one-line error, :func:`other_zoo_export`); returns the manifest."""
    from avemo.inference.engines import refuse_other_export

    manifest = current_zoo_export(ckpt.path, out_dir)
    if manifest is not None:
        return manifest
    held = other_zoo_export(ckpt.path, out_dir)
    if held is not None:
        refuse_other_export(Path(out_dir), held, f"avemo export --model {ckpt.path} --out {out_dir}")
    export_checkpoint(ckpt, out_dir)
    return read_manifest(Path(out_dir))


def load_graphs(ckpt, onnx_dir: str | Path | None = None) -> tuple[Path, dict]:
    """(the folder, ``{input names: OnnxEngine}``) of the checkpoint's graphs: ``onnx_dir`` (default
    :func:`zoo_onnx_dir`), exported there first unless it holds this checkpoint's graphs already."""
    from avemo.inference.engines import OnnxEngine

    folder = Path(onnx_dir) if onnx_dir is not None else zoo_onnx_dir(ckpt.path)
    manifest = ensure_zoo_exported(ckpt, folder)
    return folder, {tuple(key.split("+")): OnnxEngine(folder / graph["file"])
                    for key, graph in manifest["graphs"].items()}


def export_run(run: str | Path, out_dir: str | Path) -> Path:
    """Export the checkpoint folder ``run`` (``avemo train``) to ``out_dir`` (:func:`export_checkpoint`)."""
    from avemo.models.checkpoint import load_checkpoint

    return export_checkpoint(load_checkpoint(run), out_dir)
