"""``avemo prepare``: IEMOCAP's dialogue videos cut into one file per labelled utterance."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from avemo.cli.app import app, console, console_err
from avemo.cli.options import _at_least_one_worker
from avemo.cli.progress import _progress
from avemo.errors import AvemoError


@app.command()
def prepare(
    root: Annotated[Path, typer.Option("--root", "-r", help="The IEMOCAP release (IEMOCAP_full_release, or the "
                                                             "folder holding it).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the utterance files (created if missing; a "
                                                          "re-run keeps the files that are up to date).")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="The corpus: iemocap (the only one whose "
                                                                 "videos are not per utterance).")] = "iemocap",
    side: Annotated[str, typer.Option(help="The part of the 720x480 split-screen dialogue video kept: auto (the "
                                           "left half for the actor of the dialogue name's gender, who wore the "
                                           "markers, the right half for the other: a convention of other "
                                           "IEMOCAP preprocessing code, not checked by avemo), left, right, full.")] = "auto",
    protocol: Annotated[str | None, typer.Option(help="Only the utterances of this label protocol, iemocap4 or "
                                                      "iemocap6 (default: those of both).")] = None,
    codec: Annotated[str, typer.Option(help="Video encoder: auto (libx264 where this FFmpeg build has it, else "
                                            "mpeg4), libx264, mpeg4.")] = "auto",
    workers: Annotated[int, typer.Option("--workers", "-j", callback=_at_least_one_worker,
                                         help="Parallel processes cutting utterances.")] = 1,
) -> None:
    """Cut IEMOCAP's dialogue videos into one audio-visual file per labelled utterance.

    Each file (OUT/Session{n}/<dialog>/<utterance>.mkv) holds the frames of the utterance's span,
    cropped to the speaker's half (--side), with the utterance's wav as its audio track (copied
    bit-exact). Read them with --media OUT (train, evaluate, extract): the clips become audio+video+text.
    Utterances that cannot be cut (no .avi, a damaged one, a span past its end) are listed and
    skipped (exit code 1); the others are kept."""
    from avemo.datasets.iemocap_video import prepare_iemocap
    from avemo.output_file import removing_new_folders

    if dataset != "iemocap":
        raise AvemoError(f"--dataset {dataset}: only iemocap needs preparing (its videos are per dialogue)")
    with removing_new_folders(out), _progress(2, "cutting") as bar:
        task = bar.add_task("cutting utterances", total=None)
        report = prepare_iemocap(root, out, side=side, protocol=protocol, codec=codec, workers=workers,
                                 progress=lambda done, total: bar.update(task, completed=done, total=total))
    for line in report.warnings:
        console_err.print(f"[yellow]warning[/] {escape(line)}")
    console.print(report.summary())
    if report.failed:
        table = Table(title="Not prepared", title_justify="left")
        table.add_column("utterance or file", overflow="fold")  # a long path is folded over lines, not cut to "…"
        table.add_column("reason")
        for item in report.failed:
            table.add_row(escape(str(item.path)), escape(item.reason))
        console_err.print(table)
        raise typer.Exit(1)
