"""``avemo export``: the bundled model, or a trained one, as ONNX graphs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from avemo.cli.app import app, console
from avemo.cli.files import _options_naming_files
from avemo.errors import AvemoError


@app.command("export")
def export_model(
    out: Annotated[Path | None, typer.Option("--out", "-o", help=(
        "Folder for the exported graphs (created if missing). Default: the onnx engine's cache folder of the "
        "model, where --engine onnx finds them; for another folder, AVEMO_ONNX_DIR=FOLDER makes --engine onnx "
        "use it."))] = None,
    model: Annotated[Path | None, typer.Option("--model", "-m", help=(
        "A checkpoint from `avemo train` to export instead of the bundled model: one graph (the model's "
        "normalised inputs -> logits; a late-fusion model also one per modality) and a manifest (fingerprint, "
        "labels, input specs, statistics). Checked after export: onnxruntime and torch must agree on example "
        "inputs within 1e-4 + 1e-3 x |logit|, else nothing is written."))] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="Export format: onnx.")] = "onnx",
) -> None:
    """Export the bundled model's encoders, audio heads and fusion, or a trained --model, as ONNX graphs
    (for `avemo predict --engine onnx` and `avemo serve --engine onnx`)."""
    from avemo.output_file import prepare_folder, removing_new_folders

    if fmt != "onnx":
        raise AvemoError(f"--format must be onnx, got {fmt!r}")
    with _options_naming_files({"--model": model, "--out": out}):
        if model is None:
            from avemo.inference.bundle import BUNDLE_DIR, bundle_fingerprint, onnx_cache_dir
            from avemo.inference.export import export_bundle as export

            source, folder, use = BUNDLE_DIR, out or onnx_cache_dir(bundle_fingerprint(BUNDLE_DIR)), ""
        else:
            from avemo.inference.zoo_export import export_run as export
            from avemo.inference.zoo_export import zoo_onnx_dir

            source, folder, use = model, out or zoo_onnx_dir(model), f" --model {model}"
        before = _files(folder)
        with removing_new_folders(folder):
            prepare_folder(folder)  # a --out that cannot be a folder fails now, not after the tracing
            folder = export(source, folder)
    for file, stat in sorted(_files(folder).items()):
        if before.get(file) != stat:  # written by this export, not a file the folder held (a run's weights)
            console.print(escape(f"{file}  ({stat[2] / 1e6:.1f} MB)"), soft_wrap=True)
    where = f"AVEMO_ONNX_DIR={folder} " if out is not None else ""  # whole lines: paths to copy
    console.print(escape(f"use it with: {where}avemo predict{use} --engine onnx FILE"), soft_wrap=True)


def _files(folder: Path) -> dict[Path, tuple[int, int, int]]:
    """The files of ``folder`` (none where it is missing), each with its inode, modification time and size."""
    files = {}
    for file in folder.iterdir() if folder.is_dir() else ():
        if file.is_file():
            stat = file.stat()
            files[file] = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    return files
