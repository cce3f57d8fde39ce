"""The ``avemo`` command line: thin wrappers over the library.

Errors a user can cause are printed as one line (``avemo: error: FILE: reason``) with
exit code 2; batch commands go on past bad items, list them at the end and exit 1.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from avemo import __version__
from avemo.errors import AvemoError

app = typer.Typer(
    name="avemo",
    help="Audio-visual emotion recognition: predict, extract features, train, evaluate, benchmark.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = Console()
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        out.print(f"avemo {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details to stderr.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _progress(total: int, description: str):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=total < 2,
    )


# ----------------------------------------------------------------------------- info


@app.command()
def info(
    path: Annotated[Path, typer.Argument(help="A video or audio file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    faces: Annotated[bool, typer.Option(help="Look for faces in a few frames of a video.")] = True,
) -> None:
    """Print what the tool sees in FILE: streams, duration, sample rate, fps, faces, parsed labels."""
    from avemo.describe import describe_file

    report = describe_file(path, faces=faces)
    if as_json:
        out.print_json(json.dumps(report))
        return
    table = Table(title=str(path), show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in _flatten(report):
        table.add_row(key, str(value))
    out.print(table)


def _flatten(data: dict, prefix: str = ""):
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten(value, name + ".")
        elif value is not None:
            yield name, value


# -------------------------------------------------------------------------- extract


@app.command()
def extract(
    path: Annotated[Path, typer.Argument(help="A media file, a folder of media files, or a dataset folder.")],
    features: Annotated[
        str, typer.Option("--features", "-f", help="Comma-separated extractor names (see `avemo extract --list`).")
    ] = "mfcc,logmel,egemaps",
    dataset: Annotated[
        str,
        typer.Option(help="How to read the folder: auto (any media files), ravdess, crema_d, emodb, folder."),
    ] = "auto",
    labels: Annotated[Path | None, typer.Option(help="Labels CSV for --dataset folder.")] = None,
    workers: Annotated[int, typer.Option("--workers", "-j", help="Parallel worker processes.")] = 1,
    executor: Annotated[str, typer.Option(help="local (process pool) or ray.")] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster address (with --executor ray).")] = None,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache", help="Feature cache folder [default: ~/.cache/avemo/features].")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Also export the features: one .npz per extractor + index.csv.")
    ] = None,
    list_only: Annotated[bool, typer.Option("--list", help="List the available extractors and exit.")] = False,
    summary_json: Annotated[Path | None, typer.Option("--summary", help="Write the run summary as JSON.")] = None,
) -> None:
    """Compute features for every file under PATH (cached; re-running only computes what is missing)."""
    from avemo.cache import FeatureCache
    from avemo.extraction import ExtractorSpec, run_extraction
    from avemo.features import extractor_class, list_extractors

    if list_only:
        table = Table("name", "modality", "summary")
        for name in list_extractors():
            cls = extractor_class(name)
            table.add_row(name, cls.modality, cls.summary)
        out.print(table)
        return
    specs = ExtractorSpec.parse(features)
    for spec in specs:  # unknown names and bad config fail before any work starts
        spec.build()
    from avemo.collect import collect_inputs

    items, skipped = collect_inputs(path, dataset=dataset, labels_csv=labels)
    for s_path, reason in skipped:
        err.print(f"[yellow]skipped[/] {s_path}: {reason}")
    if not items:
        raise AvemoError("no media files to process", path)
    cache = FeatureCache(cache_dir)
    with _progress(len(items), "extracting") as bar:
        task = bar.add_task("extracting", total=len(items))
        report = run_extraction(
            [c.path for c in items],
            specs,
            cache=cache,
            workers=workers,
            executor=executor,
            address=address,
            progress=lambda _o: bar.advance(task),
        )
    if out_dir is not None:
        from avemo.collect import export_features

        export_features(out_dir, items, specs, cache, report)
    failed = report.failed
    out.print(
        f"{len(report.outcomes)} files, {len(specs)} extractors: {report.n_computed} computed, "
        f"{report.n_cached} from cache, {len(failed)} files with failures, {report.seconds:.1f} s "
        f"({report.executor}, {report.workers} worker{'s' if report.workers > 1 else ''}); cache: {cache.root}"
    )
    if summary_json is not None:
        summary = report.to_dict() | {"skipped": [{"path": str(p), "reason": r} for p, r in skipped]}
        summary_json.write_text(json.dumps(summary, indent=2))
    if failed or skipped:
        table = Table("file", "extractor", "reason", title="Not extracted", title_justify="left")
        for o in failed:
            for name, reason in o.errors.items():
                table.add_row(o.path, name, reason)
        for s_path, reason in skipped:
            table.add_row(str(s_path), "-", reason)
        err.print(table)
        raise typer.Exit(1)


def main() -> None:
    """Console entry point: one-line errors instead of tracebacks for user errors."""
    try:
        app()
    except AvemoError as exc:
        print(f"avemo: error: {exc}", file=sys.stderr)  # one line, never wrapped
        sys.exit(2)
    except KeyboardInterrupt:
        print("avemo: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
