"""The files and folders that options name: an output file checked before the work, the feature
cache, the media files given, and errors that say which option named the file."""

from __future__ import annotations

import contextlib
from pathlib import Path

from avemo.cli.app import console_err
from avemo.errors import AvemoError


def _output(path: Path | None, option: str | None = None, inputs=()):
    """The :class:`~avemo.output_file.OutputFile` of an option that names a file written when the work
    ends (checked now, written whole then; ``None`` when the option is not given), as a context.
    ``inputs``: the files the command reads, which ``path`` may not be (:func:`_refuse_output_on_inputs`)."""
    from avemo.output_file import OutputFile

    _refuse_output_on_inputs(option, path, inputs)
    return OutputFile(path) if path is not None else contextlib.nullcontext()


def _cache(folder: Path | None):
    """The feature cache of ``--cache`` (default: ~/.cache/avemo/features), its folder checked now: a
    cache that cannot be written would fail every file, one by one."""
    from avemo.cache import FeatureCache
    from avemo.output_file import prepare_folder

    cache = FeatureCache(folder)
    prepare_folder(cache.root)
    return cache


def _refuse_output_on_inputs(option: str | None, out: Path | None, inputs) -> None:
    """Refuse an output file ``out`` (given by ``option``) that is one of the command's input files,
    ``inputs``: ``(what, path)`` pairs ("one of the files to predict", "the --labels file"; a None path
    is skipped). Written when the work ends, it replaced that input: ``predict clip.mp4 -o clip.mp4``
    the recording, ``--speakers s.csv -o s.csv`` the list of who is who, ``extract --summary
    labels.csv`` the labels."""
    import os

    if out is None or not out.exists():
        return
    for what, file in inputs:
        with contextlib.suppress(OSError):
            if file is not None and os.path.samefile(out, file):
                error = AvemoError(f"is {what}; writing the output there would replace it: give another file name",
                                   out)
                error.option = option
                raise error


def _read_tables(dataset: str | None, root: Path | None, labels: Path | None,
                 visual_table: Path | None = None) -> list[tuple[str, Path | None]]:
    """The tables a dataset command reads, for :func:`_refuse_output_on_inputs`: ``--labels`` (or a
    folder dataset's own labels.csv) and ``--visual-table``."""
    from avemo.datasets.folder import DEFAULT_LABELS_FILE

    own = Path(root) / DEFAULT_LABELS_FILE if dataset == "folder" and labels is None and root is not None else None
    return [("the --labels file", labels), (f"the dataset's {DEFAULT_LABELS_FILE}", own),
            ("the --visual-table file", visual_table)]


@contextlib.contextmanager
def _options_naming_files(options: dict[str, Path | None]):
    """A library error about a file or folder that one of ``options`` (option -> value) gave, or
    about a file inside it, says which option: ``--model RUN: no such checkpoint`` (the library's
    own message names the file only, :class:`~avemo.errors.AvemoError`)."""
    try:
        yield
    except AvemoError as exc:
        if exc.path is not None and exc.option is None:
            where = Path(exc.path)
            exc.option = next((option for option, value in options.items() if value is not None and
                               (where == Path(value) or Path(value) in where.parents)), None)
        raise


def _media_files(paths: list[Path], done: str = "predicted") -> tuple[list[Path], list[tuple[str, str]]]:
    """The files ``avemo predict`` (or ``info``) works on and the folders without any
    (:func:`~avemo.inference.inputs.collect_media`); a path given twice is kept once, with a line on
    stderr saying so (it used to be dropped without a word). No file at all: the first folder without
    any is the error."""
    from avemo.inference.inputs import collect_media

    files, problems, repeats = collect_media(paths, done)
    for path, note in repeats:  # one line each, as the warnings of the predictions
        console_err.print(f"avemo: warning: {path}: {note}", markup=False, highlight=False, soft_wrap=True)
    if not files:
        raise AvemoError(problems[0][1] if problems else "no input files", problems[0][0] if problems else None)
    return files, problems
