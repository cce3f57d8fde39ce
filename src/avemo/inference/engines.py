"""Interchangeable engines that run one network: PyTorch or onnxruntime (the EmotiEffLib pattern).

An :class:`Engine` takes named float32 numpy arrays and returns named numpy arrays; which
library runs the graph is hidden behind it, so an expert is written once and runs on either:

* :class:`TorchEngine` wraps an ``nn.Module`` whose ``forward`` takes the inputs positionally
  and returns one tensor or a tuple (on the GPU when one is present, ``device="auto"``);
* :class:`OnnxEngine` runs a graph written by :func:`export_module` (the same module traced by
  ``torch.onnx.export(..., dynamo=False)``; the dynamo exporter is not used: it fails on a
  non-global ``AdaptiveAvgPool3d``).

:func:`create_engine` is the factory the experts call with ``kind="torch"`` or ``"onnx"``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from avemo.device import torch_device
from avemo.errors import AvemoError, CheckpointError, ConfigError
from avemo.native_output import silenced

ENGINES = ("torch", "onnx")
#: the file that says what an export folder holds (the bundle's graphs, or a trained model's)
MANIFEST = "manifest.json"


def check_engine(engine: str) -> None:
    """Refuse an unknown engine (``engine`` of :func:`~avemo.inference.predictor.load_predictor` and of
    the serve settings; the option ``--engine`` of ``avemo predict`` and ``avemo serve``). The message
    names the value, not an option: the caller may be Python code."""
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")


def read_manifest(out_dir: Path) -> dict | None:
    """An export's manifest, or None when there is none (or it cannot be read)."""
    try:
        return json.loads((Path(out_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def export_files(manifest: Mapping | None) -> set[str]:
    """The graph files an export's manifest names: the bundled model's (``files``: group -> role -> file)
    or a checkpoint's (``graphs``: inputs -> ``{"file": ...}``); plain names only, never a path elsewhere."""
    manifest = manifest if isinstance(manifest, Mapping) else {}
    files, graphs = manifest.get("files"), manifest.get("graphs")
    names = [f for group in (files.values() if isinstance(files, Mapping) else ()) if isinstance(group, Mapping)
             for f in group.values()]
    names += [g.get("file") for g in (graphs.values() if isinstance(graphs, Mapping) else ()) if isinstance(g, Mapping)]
    return {n for n in names if isinstance(n, str) and n not in ("", ".", "..") and Path(n).name == n}


def write_export(out_dir: str | Path, write: Callable[[Path], None]) -> Path:
    """``write(folder)`` (the graphs and the manifest of one export) into a fresh folder beside ``out_dir``,
    then that export in place of the one ``out_dir`` held: the old manifest removed first, the new one moved
    in last (a manifest never names a graph of another export), then the graphs the old manifest named that
    this export has not replaced (another model's); the folder's other files are kept. An export that
    fails (``write`` raises) leaves ``out_dir`` as it was. Returns ``out_dir``."""
    out_dir = Path(out_dir)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_dir.parent / f".{out_dir.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        tmp.mkdir()  # not mkdtemp: the folder renamed into place gets the umask's permissions, not 0700
    except OSError as exc:
        raise AvemoError(f"cannot create the export folder ({exc.strerror or exc})", out_dir) from None
    try:
        write(tmp)
        if not out_dir.exists():
            os.rename(tmp, out_dir)
            return out_dir
        stale = export_files(read_manifest(out_dir)) - {f.name for f in tmp.iterdir()}
        (out_dir / MANIFEST).unlink(missing_ok=True)
        for file in sorted(tmp.iterdir(), key=lambda f: f.name == MANIFEST):
            os.replace(file, out_dir / file.name)
        for name in stale:
            (out_dir / name).unlink(missing_ok=True)
    except OSError as exc:
        raise AvemoError(f"cannot write the export ({exc.strerror or exc})", out_dir) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def refuse_other_export(out_dir: Path, held: Mapping, replace: str) -> None:
    """Raise: ``out_dir`` holds the export (manifest ``held``) of another model than the one the onnx
    engine is about to export there on first use. ``AVEMO_ONNX_DIR`` shared by two models had each
    run replace the other's graphs without a word (the graphs of ``avemo export --out DIR`` too);
    ``replace``: the command that replaces them on purpose."""
    what = (f"the bundled model {held['bundle']} (version {held.get('version')})" if "bundle" in held else
            f"a checkpoint of {held.get('model')} (fingerprint {held.get('fingerprint')})")
    raise AvemoError(f"holds the ONNX graphs of {what}; the onnx engine does not replace another model's graphs: "
                     f"give each model its own folder (AVEMO_ONNX_DIR), or replace them with {replace}", out_dir)


class Engine(ABC):
    """Runs one network: ``engine(name=array, ...) -> {output name: array}``."""

    kind: str

    def __init__(self, input_names: Sequence[str], output_names: Sequence[str]):
        self.input_names = tuple(input_names)
        self.output_names = tuple(output_names)

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise ConfigError(f"{self.kind} engine: missing input(s) {missing}; expected {list(self.input_names)}")
        return self.run({n: np.ascontiguousarray(inputs[n], dtype=np.float32) for n in self.input_names})

    @abstractmethod
    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Float32 inputs by name -> outputs by name."""


class TorchEngine(Engine):
    """An ``nn.Module`` in eval mode under ``torch.inference_mode``."""

    kind = "torch"

    def __init__(self, module, input_names: Sequence[str], output_names: Sequence[str], device: str = "auto"):
        super().__init__(input_names, output_names)
        self.device = torch_device(device)
        try:
            self.module = module.to(self.device).eval()
        except (RuntimeError, AssertionError) as exc:
            raise ConfigError(f"cannot use device {device!r}: {str(exc).splitlines()[0]}") from None

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            args = [torch.from_numpy(inputs[n]).to(self.device) for n in self.input_names]
            out = self.module(*args)
        if not isinstance(out, tuple | list):
            out = (out,)
        return {n: t.float().cpu().numpy() for n, t in zip(self.output_names, out, strict=True)}


class OnnxEngine(Engine):
    """An ONNX graph in onnxruntime (CUDA provider first when it is available)."""

    kind = "onnx"

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise CheckpointError("no such ONNX file", path)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        # idle worker threads sleep instead of spinning: the experts run two sessions at once, in two
        # threads, and spinning pools would take the cores from each other (and from the decoders)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 4  # a failing node raises, and its caller says so in one line: no log line too
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise CheckpointError(f"onnxruntime cannot load the graph: {str(exc).splitlines()[0]}", path) from None
        super().__init__(
            [i.name for i in self.session.get_inputs()], [o.name for o in self.session.get_outputs()]
        )
        self.path = path

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.session.run(list(self.output_names), dict(inputs))
        return dict(zip(self.output_names, out, strict=True))


def export_module(
    module,
    path: str | Path,
    example: Mapping[str, np.ndarray],
    output_names: Sequence[str],
    dynamic_axes: Mapping[str, Mapping[int, str]] | None = None,
    opset: int = 17,
) -> Path:
    """Trace ``module`` on the ``example`` inputs (in that order) and write it as ONNX to ``path``.

    Written to a temporary name first and renamed, so a reader never sees half a file.
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = module.to("cpu").eval()
    args = tuple(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in example.values())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with warnings.catch_warnings():
            # shapes that only depend on fixed sizes become constants (expected), and the
            # TorchScript-based exporter announces its deprecation
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            # the exporter prints its whole graph (from C++) when an op has no ONNX form, and C++ warnings
            # ("The shape inference of prim::PackPadded type is missing") before the error it raises
            with silenced(1), silenced(2):
                torch.onnx.export(
                    module,
                    args,
                    str(tmp),
                    input_names=list(example),
                    output_names=list(output_names),
                    dynamic_axes={k: dict(v) for k, v in (dynamic_axes or {}).items()},
                    opset_version=opset,
                    dynamo=False,
                )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def create_engine(
    kind: str,
    *,
    module=None,
    onnx_path: str | Path | None = None,
    input_names: Sequence[str] = (),
    output_names: Sequence[str] = (),
    device: str = "auto",
) -> Engine:
    """The factory: a :class:`TorchEngine` over ``module`` or an :class:`OnnxEngine` over ``onnx_path``."""
    if kind == "torch":
        if module is None:
            raise ConfigError("the torch engine needs a module")
        return TorchEngine(module, input_names, output_names, device)
    if kind == "onnx":
        if onnx_path is None:
            raise ConfigError("the onnx engine needs an exported graph (onnx_path)")
        engine = OnnxEngine(onnx_path)
        if input_names and tuple(input_names) != engine.input_names:
            raise CheckpointError(
                f"graph inputs {list(engine.input_names)} differ from the expected {list(input_names)}", onnx_path
            )
        return engine
    raise ConfigError(f"unknown engine {kind!r}; known: {', '.join(ENGINES)}")
