"""``avemo info``: what the tool sees in a media file."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from avemo.cli.app import app, console, console_err
from avemo.cli.files import _media_files
from avemo.cli.options import SpeakerPatternOpt
from avemo.errors import AvemoError


@app.command()
def info(
    paths: Annotated[list[Path], typer.Argument(help="Video or audio files, or folders of them.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table: an object for one file, "
                                                        "a list for several files or a folder.")] = False,
    faces: Annotated[bool, typer.Option(help="Look for faces in a few frames of a video.")] = True,
    speaker_pattern: SpeakerPatternOpt = None,
) -> None:
    """Print what the tool sees in each FILE: streams, duration, sample rate, fps, faces, parsed labels.

    Labels are parsed from the file name (RAVDESS, CREMA-D, EmoDB); a folder given with a labels.csv,
    or of one folder per emotion, shows the labels of its files instead, as `avemo train --dataset
    folder` reads them (with the same --speaker-pattern), or why a file is skipped. The duration and
    the video's frames are what decodes, as `avemo predict` reports it (a file cut short: also the
    header's, and a warning); a video's size is the picture as shown (with its rotation, in degrees
    clockwise).
    Several files, or a folder (its media files), give a table each; a file that cannot be read
    gives one error line on stderr, the others are still described, and the exit code is 1."""
    files, problems = _media_files(paths, done="described")
    single = len(paths) == 1 and not paths[0].is_dir()
    listed = _labelled_folders(paths, problems, speaker_pattern)
    for path, reason in problems:  # a folder without media files, a labels CSV that cannot be read
        print(f"avemo: error: {path}: {reason}", file=sys.stderr)
    reports = []
    for path in files:  # a table as soon as its file is described: a long list shows its first ones at once
        report = _describe(path, faces, raise_error=single)
        if report is not None:
            report["labels"] = listed.get(path.resolve(), report["labels"])
            reports.append(report)
            if not as_json:
                console.print(_info_table(report))
    if as_json:
        console.print_json(json.dumps(reports[0] if single else reports))
    if problems or len(reports) < len(files):
        raise typer.Exit(1)


def _labelled_folders(paths: list[Path], problems: list, speaker_pattern: str | None = None) -> dict[Path, dict]:
    """The labels that each folder given reads for its files as ``--dataset folder`` does, from its
    ``labels.csv`` or, without one, its emotion folders (emotion, speaker, take, modalities, text, other
    columns; a row or file it skips: the reason), by resolved path, and a warning line for each row whose
    file is not there; a labels CSV that cannot be read is added to ``problems``, emotion folders that
    cannot be read (they name no speakers) are a warning line: the folder may be no dataset. Such files
    follow no dataset's naming convention: their labels were "unparsed", whatever the CSV beside them said."""
    from avemo.datasets.emotion_folders import folder_layout, speaker_regex
    from avemo.datasets.folder import DEFAULT_LABELS_FILE, read_folder
    from avemo.datasets.readers import say_warnings

    if speaker_pattern is not None:
        speaker_regex(speaker_pattern)  # a pattern that cannot work: refused before any file is described
    listed: dict[Path, dict] = {}
    for folder in (p for p in paths if p.is_dir()):
        csv_path = folder / DEFAULT_LABELS_FILE
        try:
            if csv_path.is_file():
                source = {"labels_csv": str(csv_path)}
            elif (layout := folder_layout(folder, speaker_pattern)) is not None:
                source = {"layout": str(layout), **({"speaker_pattern": speaker_pattern} if speaker_pattern else {})}
            else:  # media files without labels
                continue
            scan = say_warnings(read_folder(folder, speaker_pattern=speaker_pattern))  # no copies looked for
        except AvemoError as exc:
            if csv_path.is_file():
                problems.append((exc.path or folder, exc.reason))
            else:
                console_err.print(f"avemo: warning: {exc}", markup=False, highlight=False, soft_wrap=True)
            continue
        for skipped in scan.skipped:
            listed[skipped.path.resolve()] = {**source, "skipped": skipped.reason}
            if not skipped.path.is_file():  # a row without its file: no table says it
                console_err.print(f"avemo: warning: {skipped}", markup=False, highlight=False, soft_wrap=True)
        for clip in scan:
            listed[clip.path.resolve()] = {
                **source, "emotion": clip.emotion, "speaker": clip.speaker, "take": clip.take,
                "modalities": clip.modalities, "text": clip.text, **clip.fields}
    return listed


def _describe(path: Path, faces: bool, raise_error: bool) -> dict | None:
    """``avemo info``'s description of ``path`` (:func:`~avemo.describe.describe_file`), its warnings
    on stderr; a file that cannot be read: its error raised (``raise_error``, one file given), or
    one ``avemo: error: FILE: reason`` line and ``None``."""
    from avemo.describe import describe_file

    try:
        report = describe_file(path, faces=faces)
    except AvemoError as exc:
        if raise_error:
            raise
        print(f"avemo: error: {AvemoError(exc.reason, exc.path or path)}", file=sys.stderr)
        return None
    for warning in report["warnings"]:  # one line each, as predict's
        console_err.print(f"avemo: warning: {path}: {warning}", markup=False, highlight=False, soft_wrap=True)
    return report


def _info_table(report: dict) -> Table:
    """The table of ``avemo info`` for one file's description."""
    table = Table(title=escape(report["path"]), show_header=False, title_justify="left")
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")  # a long path is folded over lines, not cut to "…"
    for key, value in _flatten(report):  # file names, tags and stream lines ("[eng]") are text, not markup
        table.add_row(escape(key), escape(str(value)))
    return table


def _flatten(data: dict, prefix: str = ""):
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten(value, name + ".")
        elif key == "streams" and isinstance(value, list):
            for stream in value:
                yield f"stream {stream['index']}", _stream_line(stream)
        elif key == "warnings":  # on stderr
            continue
        elif value is not None:
            yield name, value


def _stream_line(stream: dict) -> str:
    """``audio aac, 44100 Hz, 2 channels [eng] (default, used)``."""
    text = f"{stream['kind']} {stream['codec']}" + (f", {stream['details']}" if stream["details"] else "")
    if stream["language"]:
        text += f" [{stream['language']}]"
    flags = [f for f in ("default", "used") if stream[f]]
    return text + (f" ({', '.join(flags)})" if flags else "")
