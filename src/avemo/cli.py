"""The ``avemo`` command line: thin wrappers over the library.

Errors a user can cause are printed as one line (``avemo: error: FILE: reason``) with
exit code 2; batch commands go on past bad items, list them at the end and exit 1. Of the files a
command skipped, the first 20 are named one a line and the others counted by reason, with where the
full list is (:func:`_print_skipped`).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import inspect
import io
import json
import logging
import re
import sys
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from avemo.errors import AvemoError
from avemo.serving.settings import MIB, ServeSettings  # light: the web framework loads in `serve` only
from avemo.version import __version__

app = typer.Typer(
    name="avemo",
    help="Audio-visual emotion recognition: predict, extract features, train, evaluate, benchmark.\n\n"
         "Outputs: a FILE option (predict --out, evaluate --json, extract --summary) writes into a folder that "
         "exists (a mistyped folder is refused before the work starts); a FOLDER option (--out of extract, train, "
         "benchmark and export, evaluate --plots) is created with its parents, and removed again when the command "
         "fails or is interrupted before writing into it (a folder that existed stays).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console()
console_err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        console.print(f"avemo {__version__}")
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


def _output(path: Path | None):
    """The :class:`~avemo.output_file.OutputFile` of an option that names a file written when the work
    ends (checked now, written whole then; ``None`` when the option is not given), as a context."""
    from avemo.output_file import OutputFile

    return OutputFile(path) if path is not None else contextlib.nullcontext()


def _cache(folder: Path | None):
    """The feature cache of ``--cache`` (default: ~/.cache/avemo/features), its folder checked now: a
    cache that cannot be written would fail every file, one by one."""
    from avemo.cache import FeatureCache
    from avemo.output_file import prepare_folder

    cache = FeatureCache(folder)
    prepare_folder(cache.root)
    return cache


#: seconds between progress lines when stderr is not a terminal (a log file, a service, CI)
PROGRESS_EVERY = 5.0


class _LineProgress:
    """The progress of ``extract``, ``train``, ``evaluate`` and ``benchmark`` when stderr is not a terminal (a log
    file, a job, CI): a line every :data:`PROGRESS_EVERY` seconds, ``avemo: extracting: 120 of 11098
    (1 %), 40 s so far``, for the few calls of a rich ``Progress`` these commands make."""

    def __init__(self, enabled: bool):
        import time

        self.enabled, self.tasks, self.started = enabled, {}, time.monotonic()
        self.last_line = self.started

    def __enter__(self) -> _LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add_task(self, description: str, total: float | None = None) -> int:
        self.tasks[len(self.tasks)] = [description, total, 0.0]
        return len(self.tasks) - 1

    def advance(self, task: int, advance: float = 1) -> None:
        self.update(task, completed=self.tasks[task][2] + advance)

    def update(self, task: int, *, completed: float, total: float | None = None) -> None:
        import time

        self.tasks[task][2] = completed
        if total is not None:
            self.tasks[task][1] = total
        now = time.monotonic()
        if self.enabled and now - self.last_line >= PROGRESS_EVERY:
            self.last_line = now
            description, total, done = self.tasks[task]
            share = f" ({100 * done / total:.0f} %)" if total else ""
            shown = f"{done:.0f}" if float(done).is_integer() else f"{done:.1f}"  # within an epoch: 2.4 of 40
            print(f"avemo: {description}: {shown} of {total:.0f}{share}, {now - self.started:.0f} s so far",
                  file=sys.stderr, flush=True)


def _progress(total: int, description: str):
    """A progress bar on a terminal, else progress lines (:class:`_LineProgress`); none for one item."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if not console_err.is_terminal:
        return _LineProgress(total >= 2)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console_err,
        transient=True,
        disable=total < 2,
    )


@contextlib.contextmanager
def _extracting(total: int):
    """``gather``'s ``progress(input, done, total)`` for ``avemo train`` and ``evaluate``: a bar (or lines)
    per input being extracted (the features of a corpus not in the cache yet, minutes of work, came
    without a word)."""
    with _progress(total, "extracting") as bar:
        yield _extraction_bar(bar)


@contextlib.contextmanager
def _transcribing(enabled: bool):
    """``progress(done, total)`` for the speech recognition of a corpus's clips (a bar, or lines), or
    None when ``enabled`` is false."""
    if not enabled:
        yield None
        return
    with _progress(2, "transcribing") as bar:
        task = bar.add_task("transcribing", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _say_transcribed(record: dict | None) -> None:
    """One line on stderr per corpus transcribed: how many takes speech recognition transcribed,
    read from the cache, found without speech (:mod:`avemo.training.transcripts`)."""
    if not record:
        return
    for name, counts in (record.get("corpora") or {"": record}).items():
        no_audio = f", {counts['no_audio']} files without an audio track" if counts.get("no_audio") else ""
        console_err.print(escape(f"transcripts{' of ' + name if name else ''} by speech recognition: "
                                 f"{counts['transcribed']} takes transcribed, {counts['cached']} from the cache, "
                                 f"{counts['no_speech']} without speech, {counts['skipped']} files skipped{no_audio}"))


def _worth_transcribing(asked: bool, modalities: Collection[str], what: str, option: str = "--transcribe") -> bool:
    """Whether to transcribe: ``asked`` and ``what`` (the model, the features) reads text; asked for
    ``what`` that reads none (only ``modalities``), said in one line and False: transcripts nobody reads
    would cost the recogniser's time (about half a second a clip on a CPU) for nothing."""
    if asked and "text" not in modalities:
        console_err.print(escape(f"{option} ignored: {what} reads no text (only {', '.join(sorted(modalities))}); "
                                 "no clip is transcribed"))
        return False
    return asked


def _check_tables(inputs: Mapping[str, Any], visual_table: Path | None, who: str | None = None, *,
                  optional: bool = False) -> None:
    """A model of these ``inputs`` that reads a table not given (--visual-table) is refused in one line
    (``who``: the model's name, said first), before any data is read or transcribed. ``optional``: the
    model's optional inputs may be left out (a late-fusion checkpoint scored on the experts a corpus can
    feed), not all of them (:func:`~avemo.training.data.check_some_input`)."""
    from avemo.datasets.tables import AU_MEANS_NAME
    from avemo.training.data import check_some_input, check_tables

    try:
        (check_some_input if optional else check_tables)(inputs, [AU_MEANS_NAME] if visual_table else [])
    except AvemoError as exc:
        if who is None:
            raise
        raise type(exc)(f"{who}: {exc.reason}", exc.path) from None


# ----------------------------------------------------------------------------- info


@app.command()
def info(
    paths: Annotated[list[Path], typer.Argument(help="Video or audio files, or folders of them.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table: an object for one file, "
                                                        "a list for several files or a folder.")] = False,
    faces: Annotated[bool, typer.Option(help="Look for faces in a few frames of a video.")] = True,
) -> None:
    """Print what the tool sees in each FILE: streams, duration, sample rate, fps, faces, parsed labels.

    The duration and the video's frames are what decodes, as `avemo predict` reports it (a file
    cut short: also the header's, and a warning); a video's size is the picture as shown (with its
    rotation). Several files, or a folder (its media files), give a table each; a file that cannot
    be read gives one error line on stderr, the others are still described, and the exit code is 1."""
    files, problems = _media_files(paths, done="described")
    single = len(paths) == 1 and not paths[0].is_dir()
    for path, reason in problems:  # a folder without media files
        print(f"avemo: error: {path}: {reason}", file=sys.stderr)
    reports = []
    for path in files:  # a table as soon as its file is described: a long list shows its first ones at once
        report = _describe(path, faces, raise_error=single)
        if report is not None:
            reports.append(report)
            if not as_json:
                console.print(_info_table(report))
    if as_json:
        console.print_json(json.dumps(reports[0] if single else reports))
    if problems or len(reports) < len(files):
        raise typer.Exit(1)


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


# -------------------------------------------------------------------------- extract


@app.command()
def extract(
    path: Annotated[
        Path | None, typer.Argument(help="A media file, a folder of media files, or a dataset folder (or --root).")
    ] = None,
    features: Annotated[
        str | None, typer.Option("--features", "-f", help="Comma-separated extractor names with optional :key=value options, e.g. mfcc:n_mfcc=13,face_crops:fps=5:n_frames=null (see --list). Default: mfcc,logmel,egemaps, or none with --model.")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Also extract the features this registry model reads (see `avemo models`), with its settings, as `avemo train --model` will read them from the cache (e.g. cfnsr_lstm: mfcc:n_mfcc=13:deltas=false and face_crops:n_frames=30:size=[224,224]).")
    ] = None,
    model_config: Annotated[str | None, typer.Option(help="With --model: its options, as `avemo train --model-config`.")] = None,
    dataset: Annotated[
        str,
        typer.Option(help="How to read the folder: auto (any media files), ravdess, crema_d, emodb, folder, meld, "
                          "iemocap."),
    ] = "auto",
    root: Annotated[Path | None, typer.Option("--root", "-r", help="The dataset folder (instead of PATH).")] = None,
    labels: Annotated[Path | None, typer.Option(help="Labels CSV for --dataset folder.")] = None,
    workers: Annotated[int, typer.Option("--workers", "-j", help="Parallel worker processes.")] = 1,
    executor: Annotated[str, typer.Option(help="local (process pool) or ray.")] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster address (with --executor ray).")] = None,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache", help="Feature cache folder (default: ~/.cache/avemo/features).")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Also export the features to this folder (created if missing): one .npz "
                                     "per extractor + index.csv.")
    ] = None,
    list_only: Annotated[bool, typer.Option("--list", help="List the available extractors and exit.")] = False,
    summary_json: Annotated[Path | None, typer.Option("--summary", help="Write the run summary as JSON to FILE (in an existing folder).")] = None,
    protocol: Annotated[str | None, typer.Option(help="--dataset iemocap: its label protocol, iemocap4 (default) "
                                                      "or iemocap6.")] = None,
    media: Annotated[Path | None, typer.Option(help="--dataset iemocap: the folder `avemo prepare` wrote (utterance "
                                                    "videos, for video features).")] = None,
    transcribe: TranscribeOpt = False,
) -> None:
    """Compute features for every file under PATH (cached; re-running only computes what is missing).

    Text features (minilm, minilm_tokens) embed the clips' text: read a dataset that has it
    (--dataset meld --root DIR, --dataset iemocap, or --dataset folder with a text column), or give
    the clips transcripts by speech recognition (--transcribe). IEMOCAP's utterance videos (video
    features) come from --media DIR, the folder `avemo prepare` wrote; --model NAME: the features that
    model reads, with its settings (those `avemo train --model NAME` reads from the cache)."""
    if list_only:
        _print_extractors()
        return
    specs = _extract_specs(features, model, model_config)  # built next: bad names and config fail before any work
    transcribe = _worth_transcribing(transcribe, {spec.build().modality for spec in specs},
                                     f"model {model}" if model and features is None else f"--features {features}")
    from avemo.collect import check_export_folder, export_features
    from avemo.output_file import removing_new_folders

    full_list = f'listed in {summary_json} ("skipped")' if summary_json is not None else "listed by --summary FILE"
    path, items, skipped = _extract_inputs(path, root, full_list, dataset=dataset, labels_csv=labels,
                                           protocol=protocol, media=media)
    with contextlib.ExitStack() as stack:  # a bad destination fails now, not after the work
        stack.enter_context(removing_new_folders(out_dir and out_dir.parent))
        if out_dir is not None:
            check_export_folder(out_dir)
        summary_out = stack.enter_context(_output(summary_json))  # may go into the folder just made
        cache = _cache(cache_dir)
        if transcribe:
            items, skipped = _transcribe_items(items, skipped, cache, path, full_list)
        report = _extract_clips(items, specs, cache, path, transcribe, workers=workers, executor=executor,
                                address=address)
        if out_dir is not None:
            export_features(out_dir, items, specs, cache, report)
        failed, (count, what) = report.failed, _item_counter(items)
        console.print(
            f"{count(report.outcomes)}, {len(specs)} extractor{'s' if len(specs) > 1 else ''}: {report.n_computed} computed, "
            f"{report.n_cached} from cache, {count(failed)} with failures, {report.seconds:.1f} s "
            f"({report.executor}, {report.workers} worker{'s' if report.workers > 1 else ''}); cache: "
            f"{escape(str(cache.root))}"
        )
        if summary_out is not None:
            summary = report.to_dict() | {"skipped": [{"path": str(p), "reason": r} for p, r in skipped]}
            summary_out.commit(json.dumps(summary, indent=2))
    if failed or skipped:
        _print_not_extracted(failed, skipped, what, full_list)
        raise typer.Exit(1)


def _extract_specs(features: str | None, model: str | None, model_config: str | None) -> list:
    """The extractors of ``avemo extract``: those of --features (by default mfcc, logmel and egemaps
    unless --model is given), then the features the --model reads, with the model's settings, so
    that ``train`` finds them in the cache (a table input, the OpenFace AU means, is no extractor)."""
    from avemo.extraction import ExtractorSpec
    from avemo.features import list_extractors

    if model_config is not None and model is None:
        raise AvemoError("--model-config needs --model")
    given = features is not None
    specs = ExtractorSpec.parse(features if given else "mfcc,logmel,egemaps") if given or not model else []
    if model is not None:
        inputs = _model_inputs(model, model_config).values()
        specs += [ExtractorSpec.of(s.feature, **dict(s.config)) for s in inputs if s.feature in list_extractors()]
        if not specs:
            raise AvemoError(f"model {model} reads no extracted feature (only {', '.join(s.feature for s in inputs)})")
    return list(dict.fromkeys(specs))


def _print_extractors() -> None:
    """``extract --list``: every extractor, its modality and what it computes."""
    from avemo.features import extractor_class, list_extractors

    table = Table("name", "modality", "summary")
    for name in list_extractors():
        cls = extractor_class(name)
        table.add_row(name, cls.modality, cls.summary)
    console.print(table)


def _item_counter(items):
    """How ``extract`` counts the outcomes of its ``items`` (a function), and what it calls one of them:
    ``"12 files"`` for media files, ``"12 utterances"`` for text-only takes (MELD's CSV rows, which have
    no media file), ``"3 files and 9 utterances"`` for both; a count of none names what the run holds
    (``"0 utterances"``)."""
    from avemo.collect import clip_name

    texts = {clip_name(c) for c in items if not (c.has("audio") or c.has("video"))}
    only_texts = bool(texts) and len(texts) == len(items)

    def count(outcomes) -> str:
        n_text = sum(o.path in texts for o in outcomes)
        n_files = len(outcomes) - n_text
        parts = [f"{n_files} file{'' if n_files == 1 else 's'}"] if n_files or not (n_text or only_texts) else []
        utterances = [f"{n_text} utterance{'' if n_text == 1 else 's'}"] if n_text or only_texts else []
        return " and ".join([*parts, *utterances])

    return count, "utterance" if only_texts else "file or utterance" if texts else "file"


def _extract_inputs(path: Path | None, root: Path | None, full_list: str, **options):
    """(the input, its clips, the files skipped) of ``extract``; the skipped ones (:func:`_print_skipped`,
    ``full_list``: where they are all) and the duplicates (copies of a take read from another file: not an
    error) are printed."""
    from avemo.collect import collect_inputs

    if (path is None) == (root is None):
        raise AvemoError("give the input as PATH or as --root DIR, once")
    path = path if path is not None else root
    items, skipped, duplicates = collect_inputs(path, **options)
    _print_skipped(skipped, full_list)
    _print_duplicates(duplicates)
    if not items:
        raise AvemoError("no media files to process", path)
    return path, items, skipped


#: How many skipped files or takes a command names one by one; the others are counted by reason.
SKIPPED_SHOWN = 20


def _print_skipped(items: Iterable[tuple[str | Path, str]], full_list: str) -> None:
    """On stderr: the files or takes (what, reason) a command skipped, the first :data:`SKIPPED_SHOWN`
    one a line, then one line that counts the others by kind of reason and says where ``full_list``
    they all are (a file written, or the option that writes one): a wrong --root read 1,217 files that
    follow no naming convention, and their lines buried everything else."""
    _print_capped(items, full_list, "[yellow]skipped[/]", "skipped")


def _print_duplicates(duplicates: Iterable[tuple[str | Path, str]], full_list: str | None = None) -> None:
    """On stderr: the files (path, reason) a dataset reader set aside as copies of a take it reads from
    another file (:attr:`~avemo.datasets.scan.ScanResult.duplicates`): not files it could not use. As
    the skipped ones (:func:`_print_skipped`), the first :data:`SKIPPED_SHOWN` one a line, then a count
    (and where ``full_list`` they all are, when a command writes them)."""
    _print_capped(duplicates, full_list, "[cyan]duplicate[/]", "duplicates")


def _print_capped(items: Iterable[tuple[str | Path, str]], full_list: str | None, label: str, plural: str) -> None:
    """The lines of :func:`_print_skipped` and :func:`_print_duplicates`: ``label`` (console markup)
    begins the line of each of the first :data:`SKIPPED_SHOWN` items, ``plural`` names the others."""
    items = [(str(what), reason) for what, reason in items]
    for what, reason in items[:SKIPPED_SHOWN]:
        console_err.print(f"{label} {escape(what)}: {escape(reason)}", soft_wrap=True)
    if len(items) > SKIPPED_SHOWN:
        rest = items[SKIPPED_SHOWN:]
        where = f"; all {len(items)} {full_list}" if full_list else ""
        console_err.print(escape(f"... and {len(rest)} more {plural} ({_reason_counts(rest)}){where}"), soft_wrap=True)


def _reason_counts(items: Sequence[tuple[str, str]], shown: int = 5) -> str:
    """``"reasons: not an EmoDB name: ... ×1197, ..."``: how many of ``items`` (what, reason) have each
    kind of reason (:func:`_reason_kind`), the most frequent first; a kind whose reasons are all the
    same text is named by that text. Beyond ``shown`` kinds, the others are counted together."""
    kinds: dict[str, Counter] = {}
    for what, reason in items:
        kinds.setdefault(_reason_kind(what, reason), Counter())[reason] += 1
    ranked = sorted(kinds.items(), key=lambda kv: -kv[1].total())
    parts = [f"{_shorten(next(iter(texts)) if len(texts) == 1 else kind)} ×{texts.total()}"
             for kind, texts in ranked[:shown]]
    if len(ranked) > shown:
        others = ranked[shown:]
        parts.append(f"{len(others)} other reasons ×{sum(texts.total() for _, texts in others)}")
    return f"reason{'s' if len(items) > 1 else ''}: " + ", ".join(parts)


def _reason_kind(what: str, reason: str) -> str:
    """``reason`` without what is particular to one file or take ``what``: its path and name, quoted
    values, paths and words with digits (codes, take names, line numbers) become "…", so that "EmoDB
    speaker 07 is not one of 03, 08, ..." and "EmoDB speaker 02 is not ..." are one kind of reason."""
    for part in sorted({what, Path(what).name} - {""}, key=len, reverse=True):
        reason = re.sub(rf"(?<![\w.]){re.escape(part)}(?![\w.])", "…", reason)
    reason = re.sub(r"'[^']*'|\"[^\"]*\"|\S*[/\\]\S*|[\w.:-]*\d[\w.:-]*", "…", reason)
    return re.sub(r"…(?:[\s,;]*…)+", "…", reason)


def _shorten(text: str, width: int = 80) -> str:
    """``text``, cut to ``width`` characters with "…"."""
    return text if len(text) <= width else text[:width - 1] + "…"


def _transcribe_items(items, skipped, cache, path: Path, full_list: str):
    """``extract --transcribe``: the clips with transcripts, and the files skipped (those whose audio
    cannot be transcribed added and printed, :func:`_print_skipped`)."""
    from avemo.training.transcripts import transcribe_clips

    with _transcribing(True) as progress:
        done = transcribe_clips(items, cache=cache, progress=progress)
    for line in done.warnings:  # what the decoder repaired or cut short (a truncated WAV file)
        console_err.print(f"[yellow]warning:[/] {escape(line)}", soft_wrap=True)
    _print_skipped(((s.path, s.reason) for s in done.skipped), full_list)
    _say_transcribed(done.summary())
    if not done.clips:
        raise AvemoError("no file could be transcribed", path)
    return done.clips, [*skipped, *((s.path, s.reason) for s in done.skipped)]


def _print_not_extracted(failed, skipped, what: str, full_list: str) -> None:
    """The table of the files (and extractors) ``extract`` could not process, on stderr; ``what``: the
    first column's name (``utterance`` for a text-only corpus). Of the files skipped, the first
    :data:`SKIPPED_SHOWN` have a row, the others one row that counts them by reason and says where
    ``full_list`` they all are."""
    table = Table(title="Not extracted", title_justify="left")
    table.add_column(what, overflow="fold")  # a long path is folded over lines, not cut to "…"
    table.add_column("extractor")
    table.add_column("reason")
    for o in failed:
        for name, reason in o.errors.items():
            table.add_row(escape(str(o.path)), name, escape(reason))
    for s_path, reason in skipped[:SKIPPED_SHOWN]:
        table.add_row(escape(str(s_path)), "-", escape(reason))
    if len(skipped) > SKIPPED_SHOWN:
        rest = [(str(p), r) for p, r in skipped[SKIPPED_SHOWN:]]
        table.add_row(f"... and {len(rest)} more", "-", escape(f"{_reason_counts(rest)}; all {len(skipped)} {full_list}"))
    console_err.print(table)


def _extract_clips(items, specs, cache, path: Path, transcribed: bool = False, **run_options):
    """Media features of the clips with audio or video, text features of the clips' texts; one report,
    whose warnings (what the decoder cut short) are printed. ``transcribed``: the clips went through
    speech recognition (--transcribe)."""
    from avemo.collect import clip_name
    from avemo.extraction import ExtractionReport, run_extraction, run_text_extraction

    text_specs = [s for s in specs if s.build().modality == "text"]
    media_specs = [s for s in specs if s not in text_specs]
    media = [c for c in items if c.has("audio") or c.has("video")]
    for wanted, have, what in ((media_specs, media, "audio or video"),
                               (text_specs, [c for c in items if c.text], "text")):
        if wanted and not have:
            hint = ""
            if what == "text":
                hint = (" (--transcribe found no speech in their audio, or they have none)" if transcribed
                        else " (text comes from a dataset that has it, --dataset meld, or from --transcribe)")
            raise AvemoError(f"no clip has {what} for {', '.join(s.name for s in wanted)}{hint}", path)
    total = len(media) * bool(media_specs) + len(items) * len(text_specs)
    reports = []
    with _progress(total, "extracting") as bar:
        task = bar.add_task("extracting", total=total)
        if media_specs:
            reports.append(run_extraction([c.path for c in media], media_specs, cache=cache,
                                          progress=lambda _o: bar.advance(task), **run_options))
            _say_ray_was_not_needed(reports[-1], run_options.get("address"))
        if text_specs:
            reports.append(run_text_extraction([(clip_name(c), c.text) for c in items], text_specs, cache=cache,
                                               progress=lambda n: bar.advance(task, n)))
    report = ExtractionReport.merge(reports)
    for line in report.warnings:  # what the decoder repaired or cut short, now or when the cached features were made
        console_err.print(f"[yellow]warning:[/] {escape(line)}", soft_wrap=True)
    return report


def _say_ray_was_not_needed(report, address: str | None) -> None:
    """One line when --executor ray had nothing to do (every file's features were in the cache): the
    run succeeds without Ray, as a warm re-run needs no cluster, but says that the cluster (its
    --address, which was therefore not checked) was never contacted, rather than naming ray as the
    executor that ran."""
    if report.executor != "ray" or report.started:
        return
    where = f"the cluster at {address} was not contacted (nor its address checked)" if address \
        else "no local Ray instance was started"
    console_err.print(escape(f"every file's features were in the cache: Ray was not needed, {where}"), soft_wrap=True)


# --------------------------------------------------------------------------- prepare


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
    workers: Annotated[int, typer.Option("--workers", "-j", help="Parallel processes cutting utterances.")] = 1,
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


# --------------------------------------------------------------------------- training

DatasetOpt = Annotated[str, typer.Option("--dataset", "-d", help="Dataset layout: ravdess, crema_d, emodb, folder, meld, "
                                                                    "iemocap.")]
EvalDatasetOpt = Annotated[
    str | None, typer.Option("--dataset", "-d", help="Dataset layout of --root: ravdess, crema_d, emodb, folder, meld, "
                                                     "iemocap. Default: the dataset the checkpoint trained on (one of "
                                                     "several corpora: give it).")
]
RootOpt = Annotated[Path, typer.Option("--root", "-r", help="The dataset folder.")]
TableOpt = Annotated[
    Path | None, typer.Option("--visual-table", help="OpenFace AU means CSV (one row per video), e.g. RAVDESS-AU.")
]
CacheOpt = Annotated[Path | None, typer.Option("--cache", help="Feature cache folder (default: ~/.cache/avemo/features).")]
TRANSCRIBE_HELP = ("Give every clip that has audio and no transcript one by offline speech recognition (Whisper-base, "
                   "as predict --transcribe), so that text models work on corpora without transcripts (ravdess, "
                   "crema_d, emodb, a folder without a text column). Clips that carry a transcript (meld, iemocap, "
                   "a text column) keep it. Transcripts are cached with the features (--cache); a file without "
                   "speech gets no text (text models leave it out), one whose audio cannot be decoded is skipped. "
                   "Ignored, in one line, when the model (extract: --features) reads no text.")
TranscribeOpt = Annotated[bool, typer.Option("--transcribe", help=TRANSCRIBE_HELP)]
TrainTranscribeOpt = Annotated[bool, typer.Option("--transcribe", help=TRANSCRIBE_HELP + " The checkpoint records it, "
                                                   "and `avemo evaluate` then transcribes the same way.")]
EvalTranscribeOpt = Annotated[
    bool | None, typer.Option("--transcribe/--no-transcribe", show_default="as the checkpoint was trained",
                              help=TRANSCRIBE_HELP + " By default on when the checkpoint's model reads text and its "
                                                     "training text came from speech recognition (train --transcribe).")
]
WorkersOpt = Annotated[int, typer.Option("--workers", "-j", help="Parallel feature-extraction processes.")]


def _cores() -> int:
    """The CPU cores this process may use (its affinity mask: a container's or a job's share)."""
    import os

    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


ExtractWorkersOpt = Annotated[
    int | None,
    typer.Option("--workers", "-j", show_default=f"the machine's cores, {_cores()} here",
                 help="Parallel processes extracting the features that are not in the cache yet."),
]
LabelsOpt = Annotated[Path | None, typer.Option("--labels", help="Labels CSV for --dataset folder.")]
ProtocolOpt = Annotated[
    str | None, typer.Option("--protocol", help="IEMOCAP label protocol: iemocap4 (default) or iemocap6 (paper 002).")
]
MODEL_CONFIG_HELP = (
    "Model options: JSON or a TOML/YAML/JSON file, e.g. for gao_dialogue '{\"modalities\": [\"text\"], \"context\": 3}' "
    "(the modalities it reads, default text, audio and video; context: the H previous utterances of the dialogue it "
    "reads, default 0). Each model's options and their defaults: avemo.models.model_info(NAME)[\"config\"] in "
    "Python; an unknown one is refused, naming those there are."
)
SPLIT_HELP = ("Score one official split of the corpus (MELD: train, dev or test; default: every take the folder has, "
              "of all its splits).")
EvalProtocolOpt = Annotated[
    str | None, typer.Option("--protocol", help="IEMOCAP label protocol: iemocap4 or iemocap6 (paper 002). Default: the "
                                                "checkpoint's, when it trained on one of them; else iemocap4.")
]
MediaOpt = Annotated[
    Path | None, typer.Option("--media", help="IEMOCAP: the folder `avemo prepare --dataset iemocap` wrote; its utterance "
                                              "videos make the clips audio+video(+text) (without it: audio+text).")
]


def _speakers(value: str | None) -> list[str] | None:
    if value is None or value.strip().lower() == "all":
        return None
    return [s.strip() for s in value.split(",") if s.strip()]


def _train_config(config_file: Path | None, overrides: dict, corpora_file: Path | None = None,
                  from_corpora: dict | None = None):
    """The TrainConfig of ``avemo train``: the --config file's, then the values the --corpora file gives
    (``from_corpora``; one it gives otherwise than the --config file is refused unless the option
    decides), then the options given on the command line (``overrides``, None: not given)."""
    from avemo import config as cfg
    from avemo.training import TrainConfig

    data = cfg.load_file(config_file) if config_file is not None else {}
    for key, value in (from_corpora or {}).items():
        if overrides.get(key) is None and data.get(key, value) != value:
            clash = AvemoError(f"gives {key} = {value!r} and --config {config_file} gives {data[key]!r}; "
                               f"give --{key.replace('_', '-')} to choose", corpora_file)
            clash.option = "--corpora"
            raise clash
        data[key] = value
    data.update({k: v for k, v in overrides.items() if v is not None})
    config = cfg.from_dict(TrainConfig, data, where=str(config_file) if config_file else "train config")
    _check_device(config.device)
    return config


def _check_device(name: str) -> None:
    """A device torch does not know or cannot use (--device cuda on a machine without a GPU) is refused
    before the data is read and its features extracted (it failed with a traceback at the first epoch)."""
    from avemo.device import torch_device

    torch_device(name)


def _model_config(text: str | None) -> dict:
    if not text:
        return {}
    from avemo import config as cfg

    path = Path(text)
    if path.suffix in (".toml", ".yaml", ".yml", ".json") and path.exists():
        return cfg.load_file(path)
    try:
        value = json.loads(text)
    except ValueError:
        raise AvemoError(f"--model-config is neither a config file nor JSON: {text!r}") from None
    if not isinstance(value, dict):
        raise AvemoError("--model-config must be a JSON object, e.g. '{\"video\": \"au_mlp\"}'")
    return value


def _train_data(roots: list[Path] | None, datasets: list[str] | None, corpora_file: Path | None, *,
                label_space: str | None, visual_table: Path | None, speakers: str | None, labels: Path | None,
                protocol: str | None = None, media: Path | None = None, transcribe: bool = False,
                cache_dir: Path | None = None, model: str | None = None, inputs: Mapping[str, Any] | None = None):
    """The DataBundle of ``avemo train``: one corpus as before, or several (repeated pairs or --corpora) in
    ``label_space`` (None: shared; one corpus keeps its labels, and a label space given says it is ignored);
    ``transcribe``: every corpus gets transcripts by speech recognition (else those whose --corpora
    entry says ``transcribe = true``), unless the ``model``'s ``inputs`` (its InputSpecs) read no text.
    The options are checked, and a table the inputs read is given, before any data is read."""
    from avemo.training import load_data
    from avemo.training.corpora import FILE_SETTINGS, CorpusSpec, read_corpora_file
    from avemo.training.experiment import load_corpora

    roots, datasets = list(roots or []), list(datasets or [])
    if corpora_file is not None:
        if roots or datasets:
            raise AvemoError("give the corpora either as --corpora FILE or as --dataset/--root pairs, not both")
        specs = read_corpora_file(corpora_file, reads=FILE_SETTINGS)
    elif not roots:
        raise AvemoError("missing --root (or --corpora FILE.toml)")
    elif len(roots) == 1 and len(datasets) <= 1:
        specs = [CorpusSpec(datasets[0] if datasets else "ravdess", roots[0])]
    elif len(datasets) != len(roots):
        raise AvemoError(f"several corpora need one --dataset per --root: got {len(datasets)} --dataset "
                         f"and {len(roots)} --root")
    else:
        specs = [CorpusSpec(d, r) for d, r in zip(datasets, roots, strict=True)]
    given = [o for o, v in (("--speakers", _speakers(speakers)), ("--labels", labels)) if v is not None]
    if len(specs) > 1 and given:
        keys = " and ".join(f"{o[2:]}=" for o in given)
        raise AvemoError(f"{' and '.join(given)} read{'s' if len(given) == 1 else ''} one corpus; with several "
                         f"corpora, give {keys} per corpus in a --corpora file")
    if len(specs) > 1 and (protocol is not None or media is not None):
        raise AvemoError("--protocol and --media read one IEMOCAP corpus; with several corpora, give protocol= "
                         "and media= per iemocap corpus in a --corpora file")
    if inputs is not None:
        _check_tables(inputs, visual_table)  # the model's table, given?
    reads = None if inputs is None else (model, {spec.modality for spec in inputs.values()})
    specs = _transcribed_specs(specs, transcribe, reads)
    asr = {"cache": _cache(cache_dir)} if any(s.transcribe for s in specs) else {}
    if len(specs) == 1:
        if label_space is not None:  # it was dropped without a word
            console_err.print(f"label space {label_space} ignored: one corpus trains on its own labels")
        only = specs[0]
        chosen = _speakers(speakers) or (list(only.speakers) if only.speakers is not None else None)
        with _transcribing(only.transcribe) as progress:
            data = load_data(only.dataset, only.root, visual_table=visual_table, speakers=chosen,
                             labels_csv=labels or only.labels, protocol=protocol or only.protocol,
                             media=media or only.media, transcribe=only.transcribe, progress=progress, **asr)
        _say_transcribed(data.transcripts)
        return data
    with _transcribing(bool(asr)) as progress:
        data = load_corpora(specs, label_space or "shared", visual_table=visual_table, progress=progress, **asr)
    _say_transcribed(data.transcripts)
    space = data.corpora.space
    left = "; ".join(f"{c} " + ", ".join(f"{e} {n}" for e, n in counts.items())
                     for c, counts in data.corpora.left_out.items()) or "none"
    # in words, as train says its split: it printed Python's list and dicts ("ravdess: {'surprised': 40}")
    console_err.print(escape(f"label space {space.mode}: {', '.join(space.labels.emotions)}; clips left out (no "
                             f"partner): {left}"), soft_wrap=True)
    return data


# options of `avemo train`: several corpora, and the GPU memory and speed settings
RootsOpt = Annotated[
    list[Path] | None, typer.Option("--root", "-r", help="The dataset folder; repeat with --dataset for "
                                                          "several corpora (multi-corpus training).")
]
DatasetsOpt = Annotated[
    list[str] | None, typer.Option("--dataset", "-d", help="Dataset layout: ravdess, crema_d, emodb, folder, meld, "
                                                           "iemocap (default ravdess); one per --root.")
]
CorporaOpt = Annotated[
    Path | None, typer.Option("--corpora", help="A TOML (or YAML/JSON) file of [\\[corpora]] entries (dataset=, root=, "
                                                "speakers=, weight=, name=, labels=, transcribe=; iemocap: protocol=, "
                                                "media=) instead of --dataset/--root; at its top level it may set "
                                                "label_space= and balance= (the options win over them); any other "
                                                "top-level key is refused.")
]
LabelSpaceOpt = Annotated[
    str | None, typer.Option(help="Several corpora: shared (the labels every corpus can express; calm counts as "
                                  "neutral) or union_masked (all labels, each clip's softmax over its corpus's).",
                             show_default="the --corpora file's label_space, else shared")
]
BalanceOpt = Annotated[
    str | None, typer.Option(help="Sample weights: auto (corpus with several corpora, else none), none, "
                                  "corpus (equal total per corpus), corpus_class (equal per corpus and label).",
                             show_default="the --corpora file's balance, else the --config file's, else auto")
]
TrainSpeakersOpt = Annotated[str | None, typer.Option(
    help="'all' or a comma-separated list of the corpus's speaker ids (one corpus; several: speakers= per corpus "
         "in --corpora).")]
EpochsOpt = Annotated[int | None, typer.Option(
    help="The most epochs (early stopping on the validation speakers may end sooner; a model fitted in closed "
         "form, whisper_logreg or egemaps_logreg, has none).", show_default="the --config file's, else 60")]
SeedOpt = Annotated[int | None, typer.Option(help="The random seed.", show_default="the --config file's, else 0")]
SpeakerNormOpt = Annotated[
    bool | None, typer.Option("--speaker-norm/--no-speaker-norm", help="Speaker-level feature normalisation.",
                              show_default="the --config file's, else off")
]
DeviceOpt = Annotated[str | None, typer.Option(help="auto (a GPU when there is one), cpu, cuda or cuda:N.",
                                               show_default="the --config file's, else auto")]
BatchSizeOpt = Annotated[int | None, typer.Option(help="Training batch (the effective one with --accumulate).",
                                                  show_default="the --config file's, else 32")]
AccumulateOpt = Annotated[
    int | None, typer.Option(help="Run every batch as K micro-batches with one optimizer step: the same "
                                  "effective batch in about 1/K of the activation memory.")
]
CheckpointActivationsOpt = Annotated[
    bool | None, typer.Option("--checkpoint-activations/--no-checkpoint-activations",
                              help="Recompute the 3D ResNeXt blocks' activations in the backward pass: "
                                   "less GPU memory, about a third more compute.")
]
EvalBatchOpt = Annotated[
    int | None, typer.Option(help="Validation and test batch (default: 128 on a CPU, sized to the free "
                                  "memory on a GPU).")
]
LoaderWorkersOpt = Annotated[
    int | None, typer.Option(help="Batch-loading worker processes (default: 0 on a CPU, up to 4 on a GPU).")
]
CompileOpt = Annotated[
    bool | None, typer.Option("--compile/--no-compile", help="torch.compile the training step (pays off "
                              "on a GPU over long runs; the compile time is reported).")
]


OverwriteOpt = Annotated[bool, typer.Option(
    "--overwrite", help="Replace the run in --out (finished or not): the new run trains beside it and its files replace "
                        "the old ones only once it is complete.")]
TrainOutOpt = Annotated[Path, typer.Option("--out", "-o", help="Checkpoint folder (created if missing; resumes if it "
                                                             "holds an unfinished run; refuses one that holds a "
                                                             "finished run).")]
TrainPlotsOpt = Annotated[Path | None, typer.Option("--plots", help="Folder (created if missing) for the training "
                        "figures: curves.png, and confusion.png and roc.png with test speakers (default: the --out "
                        "folder). Keeps the checkpoint folder to the checkpoint's files (a bundled model's package).")]


def split_words(info: Mapping[str, Any]) -> str:
    """A split as ``train`` says it: "plan emodb_5fold, fold 1; test speakers 03; validation speakers 08, 09"
    (it printed the dict: "{'plan': 'emodb_5fold', 'fold': 1, 'test_speakers': ['03'], ...}")."""
    words = {"val_speakers": "validation speakers", "speakers_without_usable_takes": "speakers without usable takes"}
    parts = [f"{words.get(key, key.replace('_', ' '))} "
             f"{', '.join(map(str, value)) if isinstance(value, list | tuple) else value}"
             for key, value in info.items() if value is not None and key != "fold"]
    if info.get("fold") is not None:
        parts[0] += f", fold {info['fold']}"
    return "; ".join(parts)


@app.command()
def train(
    root: RootsOpt = None,
    dataset: DatasetsOpt = None,
    corpora: CorporaOpt = None,
    label_space: LabelSpaceOpt = None,
    balance: BalanceOpt = None,
    model: Annotated[str, typer.Option("--model", "-m", help="Registry name (see `avemo models`).")] = "default",
    out: TrainOutOpt = Path("runs/model"),
    plots: TrainPlotsOpt = None,
    overwrite: OverwriteOpt = False,
    visual_table: TableOpt = None,
    labels: LabelsOpt = None,
    speakers: TrainSpeakersOpt = "all",
    fold: Annotated[int | None, typer.Option(help="Train on fold K of the plan; test on its test speakers.")] = None,
    plan: Annotated[
        str | None, typer.Option(help="Fold plan: a built-in name (ravdess, ravdess_au, iemocap_loso) or a JSON file (default: the smallest built-in "
                                  "plan of the dataset that covers its speakers, else 5 folds; several corpora: 5 "
                                  "folds of each corpus, joined; a default plan: of the speakers whose files decode).")
    ] = None,
    val_speakers: Annotated[
        str | None, typer.Option(help="Validation speakers without --fold (default: the last two speakers; with several corpora, the last of each).")
    ] = None,
    model_config: Annotated[str | None, typer.Option(help=MODEL_CONFIG_HELP)] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Training config file (TOML/YAML/JSON).")] = None,
    epochs: EpochsOpt = None,
    seed: SeedOpt = None,
    speaker_norm: SpeakerNormOpt = None,
    device: DeviceOpt = None,
    batch_size: BatchSizeOpt = None,
    accumulate: AccumulateOpt = None,
    checkpoint_activations: CheckpointActivationsOpt = None,
    eval_batch_size: EvalBatchOpt = None,
    loader_workers: LoaderWorkersOpt = None,
    compile_model: CompileOpt = None,
    protocol: ProtocolOpt = None,
    media: MediaOpt = None,
    transcribe: TrainTranscribeOpt = False,
    workers: ExtractWorkersOpt = None,
    cache_dir: CacheOpt = None,
) -> None:
    """Train MODEL on a dataset folder with early stopping on validation speakers; write a checkpoint.

    Several corpora (repeated --dataset/--root pairs, or --corpora FILE.toml) train in one label space
    (--label-space) with qualified speakers (emodb:03) and sample weights (--balance). Options given here
    override the --corpora file (label_space=, balance=) and the --config file. Out of GPU memory: lower
    --batch-size, or keep it with --accumulate, or add --checkpoint-activations; the error line says which.
    An --out folder holding a finished run is refused without --overwrite; an unfinished one is resumed."""
    from avemo.output_file import prepare_folder, removing_new_folders
    from avemo.training import resolve_split, train_run
    from avemo.training.state import run_folder

    _refuse_a_finished_run(out, overwrite)  # before the data is read
    label_space, from_corpora = _corpora_settings(corpora, label_space)
    train_cfg = _train_config(config, {
        "epochs": epochs, "seed": seed, "speaker_norm": speaker_norm, "device": device, "batch_size": batch_size,
        "accumulate": accumulate, "checkpoint_activations": checkpoint_activations, "balance": balance,
        "eval_batch_size": eval_batch_size, "loader_workers": loader_workers, "compile": compile_model,
    }, corpora, from_corpora)
    data = _train_data(root, dataset, corpora, label_space=label_space, visual_table=visual_table, speakers=speakers,
                       labels=labels, protocol=protocol, media=media, transcribe=transcribe, cache_dir=cache_dir,
                       model=model, inputs=(inputs := _model_inputs(model, model_config)))
    with _naming_reader_skips(data.skipped):
        resolve_split(data, **(split_options := {"fold": fold, "plan": plan, "val_speakers": _speakers(val_speakers)}))
    with removing_new_folders(out):
        prepare_folder(out)  # a checkpoint folder that cannot be written fails now, not after the first epoch
        cache = _cache(cache_dir)
        with _naming_reader_skips(data.skipped):
            gathered, (tr, va, te, split_info) = _train_split(model, model_config, inputs, data, cache, workers,
                                                              split_options)
        n_tr, n_va, n_te = _usable_counts(gathered, (tr, va, te))
        _say(f"{model}: {n_tr} training, {n_va} validation, {n_te} test takes ({split_words(split_info)})")
        bar, progress = _training_bar(model, train_cfg.epochs, out)
        with bar, run_folder(out, overwrite=overwrite) as where:
            run = train_run(
                model, data, train_takes=tr, val_takes=va, test_takes=te, model_config=_model_config(model_config),
                train_config=train_cfg, cache=cache, out_dir=where, workers=workers or _cores(),
                extra_meta={"split": split_info}, gathered=gathered, plots=plots if plots is not None else True,
                **progress,
            )
    _print_run(run, out, data)


def _usable_counts(gathered, parts) -> tuple[int, ...]:
    """How many takes of each of ``parts`` (lists of takes) have the model's inputs (``gathered``): the
    takes that train, validate and test; a split is made of speakers, and a speaker's takes without an
    input (MELD utterances without a media file, for a model that reads audio) are left out of it."""
    usable = {t.key for t in gathered.takes}
    return tuple(sum(t.key in usable for t in part) for part in parts)


def _training_bar(model: str, epochs: int, out: Path):
    """The progress bar of ``avemo train`` (not started) and the progress callbacks of
    :func:`~avemo.training.train_run` that move it. It moves with every training step (by a fraction of
    an epoch), so that a single long epoch (a 3D ResNeXt on a CPU: minutes) shows its progress too. When
    the trainer resumes the unfinished run in ``out`` (its settings matched), a line says so and the bar
    jumps to its epoch. Under ``torchrun`` only rank 0 shows them."""
    from avemo.training.trainer import is_main_process

    steps, what = _training_steps(model, epochs)
    # one long epoch: its steps
    bar = _progress(max(steps, 2) if what == "training" else steps, "training") if is_main_process() \
        else _LineProgress(False)
    task = bar.add_task(f"{what} {model}", total=steps)

    def resumed(done: int) -> None:
        _say(f"resuming the unfinished run in {out} after epoch {done} of {epochs}")
        bar.update(task, completed=done)

    return bar, {"on_epoch": lambda row: bar.update(task, completed=row["epoch"]),
                 "on_step": lambda e: bar.update(task, completed=e), "on_resume": resumed}


def _say(line: str) -> None:
    """A line of ``avemo train`` on stderr; under ``torchrun`` rank 0 alone says it."""
    from avemo.training.trainer import is_main_process

    if is_main_process():
        console_err.print(escape(line))


def _training_steps(model: str, epochs: int) -> tuple[int, str]:
    """(the steps of the training progress bar, its verb): a model fitted in closed form (``whisper_logreg``)
    is fitted in one step, not by ``epochs``."""
    from avemo.models.registry import model_class

    return (1, "fitting (closed form)") if getattr(model_class(model), "closed_form", False) else (epochs, "training")


def _transcribed_specs(specs: list, transcribe: bool, model: tuple[str, Collection[str]] | None) -> list:
    """The corpora of ``avemo train`` with ``transcribe`` set: every one with --transcribe, else those
    whose --corpora entry says ``transcribe = true``; none when the model reads no text (said in one line)."""
    asked = transcribe or any(s.transcribe for s in specs)
    if model is not None:
        option = "--transcribe" if transcribe else "transcribe = true (--corpora)"
        asked = _worth_transcribing(asked, model[1], f"model {model[0]}", option)
    return [dataclasses.replace(s, transcribe=asked and (s.transcribe or transcribe)) for s in specs]


def _model_inputs(model: str, model_config: str | None):
    """The InputSpecs of a model of ``avemo train`` (with --model-config); bad names and options fail here
    in one line, before the data is read."""
    from avemo.models import default_inputs

    return default_inputs(model, **_model_config(model_config))


def _corpora_settings(corpora: Path | None, label_space: str | None) -> tuple[str | None, dict]:
    """The label space of ``avemo train`` (the option given, else the --corpora file's; None: neither, so
    shared) and the TrainConfig values the --corpora file gives (its balance): the file's settings, checked
    (--label-space too: an unknown one was never looked at with one corpus)."""
    from avemo.training.corpora import SPACE_MODES, corpora_file_settings

    if label_space is not None and label_space not in SPACE_MODES:
        raise AvemoError(f"--label-space {label_space!r} is not one of {', '.join(SPACE_MODES)}")
    settings = corpora_file_settings(corpora) if corpora is not None else {}
    train_values = {k: settings[k] for k in ("balance",) if k in settings}  # label_space is no TrainConfig field
    return label_space or settings.get("label_space"), train_values


def _train_split(model: str, model_config: str | None, inputs, data, cache, workers: int | None,
                 split_options: dict):
    """The inputs of ``avemo train`` and its split: the inputs first, as the split is made of the
    speakers that have usable takes (a corrupt file is known only once decoded; ``resolve_split``
    checked ``split_options`` before, so that bad ones fail before the extraction); train_run takes
    the inputs as they are."""
    from avemo.training import gather, resolve_split
    from avemo.training.experiment import refuse_unusable

    with _extracting(len(data.takes)) as progress:
        gathered = gather(data.takes, inputs, tables=data.tables, cache=cache, workers=workers or _cores(),
                          progress=progress)
    try:
        refuse_unusable(data, gathered)  # no take (of one corpus) has the model's inputs: say why, in one line
    except AvemoError as exc:
        raise type(exc)(exc.reason + _modalities_hint(model, model_config, data) + _media_hint(exc, data)
                        + _transcribe_hint(exc, data), exc.path) from None
    return gathered, resolve_split(data, **split_options, usable={t.key for t in gathered.takes})


def _media_hint(exc: AvemoError, data) -> str:
    """For a refusal of IEMOCAP takes without video: where their videos come from ("" else; IEMOCAP's
    release has one split-screen video per dialogue, not per utterance)."""
    if "has no video file" not in exc.reason or not any(t.dataset == "iemocap" for t in data.takes):
        return ""
    return "; IEMOCAP's utterance videos: avemo prepare --dataset iemocap --root RELEASE --out DIR, then --media DIR"


def _transcribe_hint(exc: AvemoError, data) -> str:
    """For a refusal of takes without text, when they were not transcribed: how to give them text ("" else)."""
    no_text = "has no text" in exc.reason or "takes have no text" in exc.reason  # some takes, or every take
    if data.transcripts is not None or not no_text or not any("audio" in t for t in data.takes):
        return ""
    return "; --transcribe gives the clips with audio a transcript by speech recognition"


def _modalities_hint(model: str, model_config: str | None, data) -> str:
    """For a model that trains on any subset of its modalities (a ``modalities`` option, e.g.
    gao_dialogue) and was not given one: how to train it on those every corpus's clips carry ("" else)."""
    from avemo.models.registry import model_class

    options = _model_config(model_config)
    fields = {f.name: f for f in dataclasses.fields(model_class(model).Config)}
    if "modalities" not in fields or "modalities" in options:
        return ""
    carried: dict[str, set[str]] = {}
    for take in data.takes:
        carried.setdefault(take.dataset, set()).update(take.modalities)
    everywhere = set.intersection(*carried.values()) if carried else set()
    own = list(fields["modalities"].default)
    chosen = [m for m in own if m in everywhere]
    if not chosen:
        return ""
    return (f"; {model} trains on any subset of {own}, e.g. those the clips carry: "
            f"--model-config '{json.dumps({**options, 'modalities': chosen})}'")


def _refuse_a_finished_run(out: Path, overwrite: bool) -> None:
    """A one-line ``--out RUN: holds a finished run of ...`` unless ``overwrite`` or RUN holds no finished run."""
    from avemo.training.state import finished_run

    held = None if overwrite else finished_run(out)
    if held is not None:
        refusal = AvemoError(f"holds {held}; give --overwrite to replace it, or another --out folder", out)
        refusal.option = "--out"
        raise refusal


@contextlib.contextmanager
def _naming_reader_skips(skipped: Sequence[tuple[str, str]]):
    """An error of the work that follows the reading of a corpus says how many of its files the reader
    skipped, and the first with its reason: "every speaker would be a validation speaker" or "label sets
    ... cannot be compared" came without the skipped files that often cause it (a labels CSV row with an
    empty speaker cell, a missing file), which were listed only at the end of a run that succeeded."""
    try:
        yield
    except AvemoError as exc:
        if skipped:
            path, reason = skipped[0]
            files = f"{len(skipped)} file{'s' if len(skipped) > 1 else ''}"
            exc.reason += f" (the dataset reader skipped {files}, e.g. {Path(path).name} ({reason}))"
        raise


def _print_run(run, out: Path, data) -> None:
    """What ``avemo train`` says at the end: the skipped files (those the dataset reader of ``data``
    could not use, then those without features), the duplicates, the scores, the checkpoint's folder.
    Under ``torchrun`` only rank 0 says it, as only rank 0 writes the checkpoint it names."""
    from avemo.training.trainer import is_main_process

    if not is_main_process():
        return
    _print_skipped([*data.skipped, *run.failed], f'listed in {out / "checkpoint.json"} ("data": "skipped")')
    _print_duplicates(data.duplicates)
    line = f"best epoch {run.best_epoch}; validation accuracy {run.val.accuracy:.3f}" if run.val else "no validation"
    if run.test is not None:
        line += f"; test accuracy {run.test.accuracy:.3f}, macro-F1 {run.test.macro_f1:.3f}, UAR {run.test.uar:.3f}"
    compiled = f", {run.compile_seconds:.0f} s of it compiling" if run.compile_seconds is not None else ""
    console.print(f"{run.model_name} ({run.params:,} parameters, {run.train_seconds:.0f} s{compiled}): {line}")
    console.print(f"checkpoint: {escape(str(out))}")


@app.command()
def evaluate(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="A checkpoint folder from `avemo train`.")],
    root: RootOpt,
    dataset: EvalDatasetOpt = None,
    visual_table: TableOpt = None,
    labels: LabelsOpt = None,
    speakers: Annotated[str | None, typer.Option(help="'all' or a comma-separated speaker list.")] = "all",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the metrics, confusion matrix, label map, left-out counts "
                                                 "and calibration (ECE, reliability bins) as JSON to FILE (in an "
                                                 "existing folder: a missing one is refused before the work).")
    ] = None,
    plots: Annotated[
        Path | None, typer.Option("--plots", help="Folder (created if missing) for the confusion matrix and the "
                                  "reliability diagram (PNG).")
    ] = None,
    split: Annotated[str | None, typer.Option(help=SPLIT_HELP)] = None,
    protocol: EvalProtocolOpt = None,
    media: MediaOpt = None,
    adapt: Annotated[
        str | None, typer.Option(help="'mean': test-time adaptation for a corpus from another language or "
                                      "recording setup. Unsupervised (no label is read): the evaluated clips' own "
                                      "mean replaces the training mean of the model's standardised inputs (the "
                                      "training std is kept); needs at least 10 clips of one domain with a mixed "
                                      "emotion set. The JSON records it as \"adapt\". Evaluation only.")
    ] = None,
    transcribe: EvalTranscribeOpt = None,
    workers: ExtractWorkersOpt = None,
    cache_dir: CacheOpt = None,
) -> None:
    """Run a trained checkpoint on a dataset folder; print accuracy, weighted and macro F1 and UAR.

    The corpus may have another label set than the checkpoint (e.g. a RAVDESS model on EmoDB):
    it is then scored over the labels both sets can express. RAVDESS calm counts as neutral against
    a set without calm (its probability is added to neutral's); classes without a partner
    (RAVDESS surprised, EmoDB boredom) are dropped from the model's answers, the arg max is taken over
    the scored labels, and clips whose label has no partner are left out and counted. The JSON's
    "mapping" writes the map out; docs/protocol.md, "Cross-corpus evaluation", has the table.

    A late-fusion checkpoint (default) on a corpus that cannot give one of its experts' inputs (no
    --visual-table for EmoDB) is scored on its other experts, as `avemo benchmark --test-corpus`
    scores it; a line on stderr and the JSON's "inputs" and "left_out_inputs" say which was left out
    and why. A model that needs the missing input is refused before the corpus is read."""
    from avemo.output_file import prepare_folder, removing_new_folders
    from avemo.training import load_checkpoint
    from avemo.training.experiment import select_split

    ckpt = load_checkpoint(checkpoint)
    dataset = dataset or _checkpoint_dataset(ckpt)
    data = _evaluate_data(ckpt, transcribe, cache_dir, dataset=dataset, root=root, visual_table=visual_table,
                          speakers=_speakers(speakers), labels_csv=labels,
                          protocol=_checkpoint_protocol(ckpt, dataset, protocol), media=media)
    if split is not None:
        data = select_split(data, split)
    with contextlib.ExitStack() as stack:  # a bad destination fails now, not after the work
        stack.enter_context(removing_new_folders(plots))
        if plots is not None:
            prepare_folder(plots)
        report = stack.enter_context(_output(json_out))  # may go into the folder just made
        cache = _cache(cache_dir)
        with _extracting(len(data.takes)) as progress, _naming_reader_skips(data.skipped):
            ev = _evaluate_checkpoint(ckpt, data, cache=cache, workers=workers or _cores(), adapt=adapt,
                                      progress=progress)
        _say_left_out(ev, f'listed in {json_out} ("skipped")' if json_out is not None else "listed by --json FILE")
        m = ev.metrics
        console.print(f"{m.n} takes: " + ", ".join(f"{name} {value:.4f}" for name, value in _headline(m))
                      + (f" (adapted: {adapt})" if adapt else ""))
        if ev.seen_warning():
            console_err.print(f"[yellow]warning:[/] {escape(ev.seen_warning())}", soft_wrap=True)
        if not ev.comparison.identity:
            console.print(_comparison_table(ev))
        if report is not None:
            report.commit(json.dumps({**ev.to_dict(), "split": split,
                                       **({"transcripts": data.transcripts} if data.transcripts else {})}, indent=2))
        if plots is not None:
            from avemo.plots import plot_confusion, plot_reliability

            title = f"{ckpt.labels.name} -> {dataset}"
            plot_confusion(m.confusion, m.labels, plots / "confusion.png", title=title)
            plot_reliability(ev.reliability, plots / "reliability.png", title=title, ece=ev.ece)


def _checkpoint_dataset(ckpt) -> str:
    """The dataset layout ``avemo evaluate`` reads ``--root`` with when ``--dataset`` is not given: the
    one the checkpoint trained on (it read every corpus as ravdess, so an EmoDB model's own corpus was
    refused as "no labelled ravdess files"); one line for a checkpoint of several corpora."""
    data = ckpt.meta.get("data") or {}
    if "dataset" not in data:  # a checkpoint not written by avemo train (no data record): the old default
        return "ravdess"
    layouts = sorted({c["dataset"] for c in data.get("corpora", ())}) or [data["dataset"]]
    if len(layouts) > 1:
        raise AvemoError(f"the checkpoint trained on several corpora ({', '.join(layouts)}): say which layout --root "
                         "has with --dataset (ravdess, crema_d, emodb, folder, meld, iemocap)", ckpt.path)
    return layouts[0]


def _checkpoint_protocol(ckpt, dataset: str, protocol: str | None) -> str | None:
    """The IEMOCAP protocol of ``avemo evaluate``: the one given, else, on IEMOCAP, the checkpoint's own
    label protocol when it trained on one (an iemocap6 model is scored on iemocap6's labels, not mapped
    to iemocap4's with excited and frustrated dropped), else None (the reader's default)."""
    from avemo.datasets.iemocap import PROTOCOLS

    if protocol is None and dataset == "iemocap" and ckpt.labels.name in PROTOCOLS:
        return ckpt.labels.name
    return protocol


def _say_left_out(ev, full_list: str) -> None:
    """On stderr: the files or takes the evaluation skipped (:func:`_print_skipped`; ``full_list``: where
    they all are), and the model's inputs it left out, with the reason."""
    _print_skipped(((item.get("take") or item.get("file"), item["reason"]) for item in ev.skipped), full_list)
    if ev.inputs_note():
        console_err.print(escape(ev.inputs_note()), soft_wrap=True)


def _evaluate_checkpoint(ckpt, data, **options):
    """``evaluate_checkpoint``; a refusal of takes without text says how to give them some (--transcribe)."""
    from avemo.training import evaluate_checkpoint

    try:
        return evaluate_checkpoint(ckpt, data, **options)
    except AvemoError as exc:
        hint = _transcribe_hint(exc, data)
        if not hint:
            raise
        raise type(exc)(exc.reason + hint, exc.path) from None


def _evaluate_data(ckpt, transcribe: bool | None, cache_dir: Path | None, **options):
    """The DataBundle of ``avemo evaluate``, with transcripts by speech recognition when asked, or, not
    told, when the checkpoint's training had them for its text (:func:`~avemo.training.scoring.transcribes_like_training`)."""
    from avemo.training import load_data
    from avemo.training.scoring import transcribes_like_training

    # before the corpus is read or transcribed; a late-fusion model's optional inputs may be left out, not all
    _check_tables(ckpt.inputs, options.get("visual_table"), optional=True)
    if transcribe is None and transcribes_like_training(ckpt):
        transcribe = True
        console_err.print("the checkpoint's text came from speech recognition: clips without a transcript are "
                          "transcribed the same way (--no-transcribe: not)")
    transcribe = _worth_transcribing(bool(transcribe), {s.modality for s in ckpt.inputs.values()},
                                     "the checkpoint's model")
    asr = {"transcribe": True, "cache": _cache(cache_dir)} if transcribe else {}
    with _transcribing(bool(transcribe)) as progress:
        data = load_data(**options, progress=progress, **asr)
    _say_transcribed(data.transcripts)
    _print_duplicates(data.duplicates)
    return data


def _headline(m) -> tuple[tuple[str, float], ...]:
    """The scores ``avemo evaluate`` prints on its summary line, and its cross-corpus table too (the
    table had no weighted F1)."""
    return ("accuracy", m.accuracy), ("weighted F1", m.weighted_f1), ("macro-F1", m.macro_f1), ("UAR", m.uar)


def _comparison_table(ev) -> Table:
    """The cross-corpus score with its label map, for the console."""
    m, c = ev.metrics, ev.comparison
    table = Table(title=escape(f"{c.model.source.name} model on {c.data.source.name} labels"), show_header=False,
                  title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    for name, value in (*_headline(m), ("ECE", ev.ece)):
        table.add_row(name, f"{value:.4f}")
    table.add_row("n", str(m.n))
    table.add_row("scored labels", escape(", ".join(m.labels)))
    merged = [f"{s} -> {t}" for side in (c.model, c.data) for s, t in side.mapping.items() if t not in (None, s)]
    table.add_row("merged", escape(", ".join(dict.fromkeys(merged)) or "none"))
    table.add_row("model classes dropped", escape(", ".join(c.model.dropped) or "none"))
    table.add_row("left out", escape(", ".join(f"{e}: {n}" for e, n in ev.left_out.items()) or "none"))
    return table


# the training options of `avemo benchmark`: a config file under the suite's per-model settings, the others over them
BenchConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="Training config file (TOML/YAML/JSON) over the suite's \\[train]; "
                                               "the suite's per-model settings still apply over it.")
]
BenchEpochsOpt = Annotated[
    int | None, typer.Option(help="The number of epochs of every model, the suite's per-model epochs included.")
]
BenchSpeakerNormOpt = Annotated[
    bool | None, typer.Option("--speaker-norm/--no-speaker-norm", help="Speaker-level feature normalisation for "
                                                                     "every model, over the suite's settings.")
]

BenchTestCorpusOpt = Annotated[
    list[str] | None, typer.Option("--test-corpus", help="DATASET=ROOT (repeatable): a corpus every (model, fold) "
                                   "run is also scored on, out of domain, as `avemo evaluate` scores a checkpoint "
                                   "(over the labels both share); never trained or selected on. DATASET: a reader "
                                   "(emodb, crema_d, ravdess, folder, meld, iemocap); folder reads ROOT/labels.csv "
                                   "(another labels CSV is not supported here). Its features are extracted with the "
                                   "models' extractors before training; no visual table is read for it, so a model "
                                   "that needs one is n/a there (a late-fusion model runs on its other experts).")
]

BenchAllowCopiesOpt = Annotated[
    bool, typer.Option("--allow-copies", help="Go on when byte-identical files (one recording) are under two speakers: "
                                              "refused otherwise, as the folds would not be speaker-disjoint for them; "
                                              "the report says so.")
]


@app.command()
def benchmark(
    suite: Annotated[str, typer.Argument(help="Benchmark suite: a built-in name (ravdess_au, iemocap) or a suite TOML "
                                                      "file.")],
    root: RootOpt,
    visual_table: TableOpt = None,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Report folder (created if missing).")] = Path("docs/results"),
    models: Annotated[str | None, typer.Option(help="Comma-separated subset of the suite's models.")] = None,
    folds: Annotated[str | None, typer.Option(help="Comma-separated subset of folds (default: all).")] = None,
    seeds: Annotated[
        str | None, typer.Option(help="Comma-separated seeds for every model; several = a seed ensemble "
                                      "(default: each model's own, 0 or the recommended model's ensemble).")
    ] = None,
    extended: Annotated[
        bool, typer.Option("--extended", help="Also the Whisper-audio and speaker-normalised variants.")
    ] = False,
    protocol: Annotated[
        str, typer.Option(help="speaker (the suite's speaker-disjoint folds) or random (as many random splits, "
                               "speakers on both sides; comparison only); and/or a label protocol of the "
                               "suite's dataset instead of the suite's own (iemocap: iemocap4 or iemocap6), "
                               "e.g. iemocap4 or iemocap4,random.")
    ] = "speaker",
    media: MediaOpt = None,
    config: BenchConfigOpt = None,
    epochs: BenchEpochsOpt = None,
    speaker_norm: BenchSpeakerNormOpt = None,
    name: Annotated[str | None, typer.Option(help="Report name (default: derived from the suite).")] = None,
    test_corpus: BenchTestCorpusOpt = None,
    workers: WorkersOpt = 1,
    executor: Annotated[str, typer.Option(help="local or ray (one task per model and fold).")] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster address (with --executor ray).")] = None,
    cache_dir: CacheOpt = None,
    allow_copies: BenchAllowCopiesOpt = False,
) -> None:
    """Cross-validate every model of a suite (a built-in name or a suite TOML file) on its fold plan;
    write NAME.json, NAME.md and figures to --out. iemocap: papers 002 and 003 (--folds 5: paper 002's
    split; --protocol iemocap4: paper 003's 4 classes); models that need video need --media DIR.
    --test-corpus emodb=DIR: every run is also scored on another corpus (report: "Out of domain")."""
    import shlex

    from avemo import config as cfg
    from avemo.evaluation.benchmark import refuse_shared_copies, run_benchmark, write_report
    from avemo.evaluation.suite import load_suite
    from avemo.output_file import prepare_folder, removing_new_folders

    spec = load_suite(suite)
    protocol, label_protocol = _bench_protocols(spec, protocol)
    overrides = cfg.load_file(config) if config is not None else {}
    command_line = {k: v for k, v in {"epochs": epochs, "speaker_norm": speaker_norm}.items() if v is not None}
    train_cfg = spec.train_config(overrides | command_line, where=str(config) if config else "train config")
    _check_device(train_cfg.device)
    seed_list, fold_list = _int_list(seeds, "--seeds"), _int_list(folds, "--folds")
    entries = spec.benchmark_entries(models.split(",") if models else None, extended=extended)
    # what the command line says wins over the suite's per-model settings too (--epochs 1 is one epoch for all)
    entries = [dataclasses.replace(e, train={**e.train, **command_line},
                                   seeds=tuple(seed_list) if seed_list else e.seeds) for e in entries]
    data = _bench_data(spec, entries, root, visual_table=visual_table, protocol=label_protocol, media=media)
    if protocol == "speaker":  # random splits put every speaker on both sides anyway
        refuse_shared_copies(data, allow=allow_copies)
    ood = _test_corpora(test_corpus or [], data)
    splits = _bench_splits(spec, data, protocol, seed_list, fold_list)
    with removing_new_folders(out_dir):
        prepare_folder(out_dir)  # a bad report folder fails now, not after hours of training
        cache = _cache(cache_dir)
        total = len(entries) * len(splits)
        with _progress(max(total, 2), "benchmark") as bar:
            task = bar.add_task(f"{len(entries)} models x {len(splits)} folds", total=total)
            results = run_benchmark(
                entries, data, splits, cache=cache, train_config=train_cfg, workers=workers,
                executor=executor, address=address, progress=lambda _r: bar.advance(task),
                data_options={"media": str(media) if media else None,
                              "fold_notes": spec.notes_for([s.number for s in splits]) if protocol == "speaker" else []},
                ood=ood, extract_progress=_extraction_bar(bar),
            )
        report, title = _bench_names(spec, protocol, label_protocol)
        command = "avemo " + " ".join(shlex.quote(a) for a in sys.argv[1:])  # global options (-v) included
        json_path, md_path = write_report(results, out_dir, name or report, title=title, command=command,
                                          paper_numbers=spec.papers, notes=spec.notes)
    _print_bench(results, md_path, json_path)


def _bench_splits(spec, data, protocol: str, seeds: list[int], folds: list[int]) -> list:
    """The splits ``avemo benchmark`` runs: the suite's (or random ones, seeded by the first of ``seeds``),
    only the ``folds`` given (--folds) where some are; a fold not in the plan is refused in one line."""
    splits = spec.splits(data, protocol, seed=seeds[0] if seeds else 0)
    if not folds:
        return splits
    unknown = sorted(set(folds) - {s.number for s in splits})
    if unknown:
        raise AvemoError(f"--folds {unknown} not in the plan (folds 1..{len(splits)})")
    return [s for s in splits if s.number in folds]


def _print_bench(results: dict, md_path: Path, json_path: Path) -> None:
    """What ``avemo benchmark`` says when done: the skipped files and the duplicates (of the suite's corpus
    and of each --test-corpus), every model's numbers (best first) with its out-of-domain UAR and accuracy."""
    from avemo.evaluation.benchmark import mean_sd_text

    corpora = [results, *results.get("out_of_domain", {}).values()]
    _print_skipped([(i["file"], i["reason"]) for c in corpora for i in c["skipped"]], f"listed in {json_path}")
    _print_duplicates([(i["file"], i["reason"]) for c in corpora for i in c.get("duplicates", ())],
                      f"listed in {json_path}")
    for model_name, m in sorted(results["models"].items(), key=lambda kv: -kv[1]["mean_accuracy"]):
        ood_text = "".join(f"  {c}: " + (f"UAR {100 * o['uar']:5.2f} acc {100 * o['accuracy']:5.2f}"
                                          if o["status"] == "scored" else "n/a")
                           for c, o in m.get("out_of_domain", {}).items())
        accuracy = mean_sd_text(m["mean_accuracy"], m.get("std_accuracy"), "6.2f", "5.2f")  # one fold: no "± 0.00"
        console.print(f"{escape(model_name):28s} {accuracy}  "
                      f"macro-F1 {100 * m['macro_f1']:5.2f}  UAR {100 * m['uar']:5.2f}" + escape(ood_text), soft_wrap=True)
    console.print(escape(f"report: {md_path} and {json_path}"))


def _extraction_bar(bar):
    """``run_benchmark``'s ``extract_progress`` (a line of ``bar`` per corpus being extracted), or
    ``gather``'s ``progress`` (a line per input)."""
    tasks: dict[str, int] = {}

    def update(corpus: str, done: int, total: int) -> None:
        if corpus not in tasks:
            tasks[corpus] = bar.add_task(f"extracting {corpus}", total=total)
        bar.update(tasks[corpus], completed=done, total=total)

    return update


def _test_corpora(values: list[str], data) -> list:
    """``--test-corpus DATASET=ROOT`` values -> the corpora read (one-line errors naming the value: a malformed
    value, an unknown dataset, a missing root, no labelled clip, labels that cannot be compared with the
    suite's, no clip with a scored label, a name given twice, the suite's own folder, a corpus of the
    suite's dataset that shares speakers with it)."""
    from avemo.datasets.readers import list_datasets
    from avemo.evaluation.benchmark import OodCorpus, check_ood
    from avemo.training import load_data

    out = []
    for value in values:
        dataset, sep, root = value.partition("=")
        if not sep or not dataset or not root:
            raise AvemoError(f"--test-corpus {value!r}: give DATASET=ROOT (e.g. emodb=data/emodb)")
        if dataset not in list_datasets():
            raise AvemoError(f"--test-corpus {value!r}: unknown dataset {dataset!r}; known: {', '.join(list_datasets())}")
        if any(c.name == dataset for c in out):
            raise AvemoError(f"--test-corpus {dataset} given twice (one corpus of each dataset)")
        if Path(root).expanduser().resolve() == Path(data.root).expanduser().resolve():
            raise AvemoError(f"--test-corpus {value!r} is the suite's own corpus, not out of domain")
        try:  # the reader's and the label map's errors name the option too (several --test-corpus may be given)
            corpus = OodCorpus(dataset, load_data(dataset, Path(root).expanduser()))
            check_ood(data, [corpus])
        except AvemoError as exc:
            where = "" if exc.path is None or Path(exc.path) == Path(root).expanduser() else f"{exc.path}: "
            raise type(exc)(f"--test-corpus {value!r}: {where}{exc.reason}") from None
        shared = sorted(set(corpus.data.speakers) & set(data.speakers)) if dataset == data.dataset != "folder" else []
        if shared:
            raise AvemoError(f"--test-corpus {value!r}: speakers {shared[:5]}{' ...' if len(shared) > 5 else ''} are in "
                             "the suite's corpus too, so their clips are trained on: not out of domain")
        out.append(corpus)
    return out


def _bench_data(spec, entries, root: Path, **options):
    """The suite's data as ``avemo benchmark`` reads it (``options``: visual_table, protocol, media),
    refused in one line when an entry reads a table not given (before the data is read) or needs a
    modality that no take has (before any training)."""
    from avemo.models import default_inputs

    if not spec.tables or options.get("visual_table") is not None:  # else the suite says what it needs
        for entry in entries:
            _check_tables(default_inputs(entry.model, **entry.model_config), options.get("visual_table"), entry.name)
    data = spec.load_data(root, **options)
    missing = spec.missing_modalities(entries, data)
    if missing:
        raise AvemoError(missing)
    return data


def _bench_names(spec, protocol: str, label_protocol: str | None) -> tuple[str, str]:
    """The default report name and the title of ``avemo benchmark``: the suite's name, with the label
    protocol when it is not the suite's own and ``random`` for random splits; the title is the suite's
    own (its ``title``), the corpus part of it for random splits (the suite's title names its folds)."""
    other_labels = label_protocol if label_protocol not in (None, spec.protocol) else None
    name = "_".join(p for p in (spec.name, other_labels, None if protocol == "speaker" else protocol) if p)
    title = spec.title
    if protocol != "speaker":
        corpus = spec.title.split(":")[0] if ":" in spec.title else spec.name
        title = f"{corpus}: RANDOM-SPLIT CV (speakers on both sides; comparison only)"
    return name, title + (f", {other_labels} labels" if other_labels else "")


def _bench_protocols(spec, text: str) -> tuple[str, str | None]:
    """``avemo benchmark --protocol``: the split protocol (speaker or random) and the label protocol
    of the suite's dataset (None: the suite's own), from ``"iemocap4"``, ``"random"``, ``"iemocap4,random"``."""
    from avemo.datasets.readers import label_protocols
    from avemo.evaluation.suite import PROTOCOLS

    split, labels = [], []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part in PROTOCOLS:
            split.append(part)
        elif part in label_protocols(spec.dataset):
            labels.append(part)
        else:
            known = [*PROTOCOLS, *label_protocols(spec.dataset)]
            raise AvemoError(f"--protocol {part!r} is not one of {', '.join(known)} (the {spec.name} suite's "
                             f"dataset is {spec.dataset})")
    if len(split) > 1 or len(labels) > 1 or not (split or labels):
        raise AvemoError(f"--protocol takes one split protocol ({' or '.join(PROTOCOLS)}) and/or one label "
                         f"protocol of {spec.dataset}, got {text!r}")
    return (split or ["speaker"])[0], (labels or [None])[0]


def _int_list(text: str | None, option: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]`` (empty for None); a one-line error otherwise."""
    try:
        return [int(s) for s in text.split(",") if s.strip()] if text else []
    except ValueError:
        raise AvemoError(f"{option} takes comma-separated integers, e.g. {option} 0,1,2") from None


# -------------------------------------------------------------------------- prediction


class _PredictProgress:
    """Progress of ``avemo predict`` on stderr: on a terminal, a bar per file (and one for the batch);
    otherwise a line every :data:`PROGRESS_EVERY` seconds of the batch, so that the log of a long run
    shows that it advances, also through a folder of many short files (each under those seconds; the
    clock used to start again at each file, and such a batch printed nothing until its end). Fed by
    :meth:`Predictor.predict_many`'s callback (from the experts' threads too)."""

    def __init__(self, files: list[Path]):
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.names = [Path(p).name for p in files]
        self.index = -1
        self.started = 0.0
        self.last_line = 0.0
        self.bar = None
        if console_err.is_terminal:
            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(), console=console_err,
                                transient=True)
            self.overall = self.bar.add_task(f"{len(files)} files", total=len(files), visible=len(files) > 1)
            self.task = None

    def __enter__(self) -> _PredictProgress:
        import time

        self.last_line = time.monotonic()
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()

    def update(self, index: int, _path: str, done: float, total: float) -> None:
        import time

        if index != self.index:  # a new file starts (a grouped batch yields its outcomes only at the end)
            self.finished()
            self.index, self.started = index, time.monotonic()
            if self.bar is not None:
                self.task = self.bar.add_task(escape(self.names[index][:40]), total=None)
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total or None)
        elif time.monotonic() - self.last_line >= PROGRESS_EVERY:
            self.last_line = time.monotonic()
            share = f" ({100 * done / total:.0f} %)" if total else ""
            print(f"avemo: [{index + 1}/{len(self.names)}] {self.names[index]}: {done:.0f} of {total:.0f} s "
                  f"analysed{share}, {self.last_line - self.started:.0f} s so far", file=sys.stderr, flush=True)

    def finished(self) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.remove_task(self.task)
            self.task = None
            self.bar.advance(self.overall)


def _predict_files(predictor, files: list[Path], done: list, *, window, hop, modalities,
                   raise_single: bool, transcribe: bool = False, speakers=None,
                   copies: dict[int, int] | None = None) -> list[tuple[str, str]]:
    """Predict each file with progress on stderr, appending each prediction to ``done`` as soon as it
    is made (so that an interrupted batch keeps them; grouped by ``speakers``, they come once all
    files are analysed, or once Ctrl-C stops the batch: see :meth:`Predictor.predict_many
    <avemo.inference.predictor.Predictor.predict_many>`); returns the files that failed, with why.
    ``raise_single``: the first failure is raised instead (one input file: exit code 2). ``copies``:
    ``{k: j}``, file ``k`` has the content of file ``j`` (:func:`~avemo.inference.speakers.content_copies`):
    it is not predicted, its result is ``j``'s under its own path, with a warning saying so."""
    failures = []
    copies = copies or {}
    unique = [f for k, f in enumerate(files) if k not in copies]
    with _PredictProgress(unique) as progress:
        outcomes = predictor.predict_many(unique, window=window, hop=hop, modalities=modalities,
                                          progress=progress.update, transcribe=transcribe, speakers=speakers)
        for outcome in _with_copies(outcomes, files, copies):
            progress.finished()
            if outcome.ok:
                done.append(outcome.prediction)
                for warning in outcome.prediction.warnings:  # one line each, as errors are
                    console_err.print(f"avemo: warning: {outcome.path}: {warning}", markup=False, highlight=False,
                                      soft_wrap=True)
            elif raise_single:
                raise AvemoError(outcome.reason, outcome.path)
            else:
                failures.append((outcome.path, outcome.reason))
    return failures


def _with_copies(outcomes, files: list[Path], copies: dict[int, int]):
    """The outcome of each of ``files`` in their order: ``outcomes``, of the files that are no copy,
    with those of the ``copies`` (``{copy: first}``, indices in ``files``, a first before its copy)
    between them: the first's result under the copy's path, with a line in ``warnings`` (a failure:
    the first's reason, saying so). Ends where ``outcomes`` end (an interrupted batch)."""
    from avemo.inference.predictor import Outcome

    done: dict[int, Outcome] = {}
    outcomes = iter(outcomes)
    for k, path in enumerate(files):
        if k not in copies:
            done[k] = outcome = next(outcomes, None)
            if outcome is None:
                return
            yield outcome
            continue
        first = done[copies[k]]
        note = f"the same content as {files[copies[k]]}: predicted once (a clip counts once toward its speaker's clips)"
        if first.ok:
            yield Outcome(str(path), prediction=dataclasses.replace(first.prediction, path=str(path),
                                                                    warnings=(*first.prediction.warnings, note)))
        else:
            yield dataclasses.replace(first, path=str(path), reason=f"{first.reason}; {note}")


def _render(predictions, fmt: str, *, single: bool, labels=()) -> str:
    """The predictions as the text of a file: a table (120 columns, no colour), JSON or CSV (its columns
    name the model's ``labels``)."""
    from avemo.inference import formats

    if fmt == "table":
        buffer = io.StringIO()
        file_console = Console(file=buffer, width=120, no_color=True, highlight=False)
        for p in predictions:
            formats.render(p, file_console)
        return buffer.getvalue()
    text = formats.to_json(predictions, single=single) if fmt == "json" else formats.to_csv(predictions, labels)
    return text if text.endswith("\n") else text + "\n"


def _write_predictions(predictions, fmt: str, output, *, single: bool, labels=()) -> None:
    """Print the predictions, or write them to ``output`` (an :class:`~avemo.output_file.OutputFile`);
    ``labels``: the model's, the CSV's probability columns."""
    from avemo.inference import formats

    if output is None:
        if fmt == "table":
            for p in predictions:
                formats.render(p, console)
        else:
            sys.stdout.write(_render(predictions, fmt, single=single, labels=labels))
        return
    output.commit(_render(predictions, fmt, single=single, labels=labels))
    console_err.print(f"wrote {escape(str(output.path))}")


#: the model options of `predict` and `serve` (one meaning, one default: ServeSettings')
MODEL_HELP = ("A checkpoint from `avemo train` to use instead of the bundled model. Its audio input has the "
              "bundle's speech gate (voice-activity detection, default thresholds: no speech, no audio vote), "
              "but no crowd gate and no tau of its own (0.5).")
ENGINE_HELP = ("torch or onnx: the bundled model's encoders and fusion in onnxruntime, without torch, or a --model "
               "checkpoint's graph in onnxruntime (the same features); the graphs are exported once, on first "
               "use, to $AVEMO_ONNX_DIR or the cache (avemo export).")
DEVICE_HELP = "auto (GPU when present), cpu, cuda..."
_SERVE = ServeSettings()  # the defaults shown by `serve --help` and `predict --help`


def _say_if_exporting(engine: str, model: Path | str | None) -> None:
    """One line on stderr before the onnx engine's first use exports the bundled model or the --model
    checkpoint (several seconds without output otherwise), saying where the graphs are kept for the next runs."""
    from avemo.inference.predictor import pending_onnx_export

    folder = pending_onnx_export(engine, model)
    if folder is not None:
        what = "the bundled model" if model is None else f"the model {model}"
        console_err.print(f"avemo: exporting {what} to ONNX once (several seconds); cached in {folder}",
                          markup=False, highlight=False, soft_wrap=True)


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


def _check_grid(window: float | None, hop: float | None) -> None:
    """Refuse a bad --window / --hop before the model loads, as the predictor will: the models' own
    window and hop (those of the bundle and of a checkpoint, 1 s and 0.5 s) fill the gaps; a --window
    alone shorter than the hop takes the window as its hop; a --hop alone longer than the models'
    window is refused, the message naming that window and --window (WindowGrid.with_options)."""
    from avemo.inference.windows import WindowGrid

    WindowGrid().with_options(window, hop, window_option="--window")


GROUP_HELP = (
    "All the files given (folders expanded) are clips of one speaker: each clip's voice is judged against the "
    "speaker's other clips (speaker-level normalisation: the bundle's speaker-normalised audio head on embeddings "
    "z-normalised with the speaker's own mean and std). Helps when you have many clips of one speaker (an "
    "interview cut in clips, a call-centre agent, a study participant) with a mix of emotions. Caveat: a speaker "
    "whose clips are all one emotion is centred away from it. Needs a bundle with a speaker-normalised head "
    "(model.json config.speaker_norm; refused otherwise; not with the text modality) and its min_clips clips "
    "with speech per speaker (10 in "
    "the shipped bundle; fewer: single-clip results and a warning); the timeline windows keep the single-clip "
    "head. After Ctrl-C, the files done are written with single-clip results (speaker_normalised false, a "
    "warning), unless all of their speaker's files were done. A file with the content of an earlier one (a copy under another name) is predicted "
    "and counted once: its result is the first's, with a warning."
)
SPEAKERS_HELP = (
    "A CSV with the columns file,speaker (relative paths read against the CSV's folder): each speaker's files among "
    "those given are normalised together, as --group-by-speaker does for one speaker (a copy of a file counted "
    "once); files not listed get single-clip results; two copies of one file listed with two speakers are refused."
)


def _check_speaker_options(group_by_speaker: bool, speakers_csv: Path | None, model: Path | None) -> None:
    """One-line errors for --group-by-speaker / --speakers before any work."""
    if group_by_speaker and speakers_csv is not None:
        raise AvemoError("--group-by-speaker and --speakers exclude each other: one says all files are one speaker, "
                         "the other says who is who")
    if (group_by_speaker or speakers_csv is not None) and model is not None:
        raise AvemoError(f"{'--group-by-speaker' if group_by_speaker else '--speakers'} needs a model with a "
                         "speaker-normalised audio head (a bundle's config.speaker_norm); a --model checkpoint has none")


def _speakers_of(files: list[Path], group_by_speaker: bool, speakers_csv: Path | None) -> dict[Path, str] | None:
    """``{file: speaker}`` of the files to predict, or None (no grouping)."""
    from avemo.inference.speakers import GROUP_SPEAKER, read_speakers_csv

    if group_by_speaker:
        return dict.fromkeys(files, GROUP_SPEAKER)
    if speakers_csv is None:
        return None
    with _options_naming_files({"--speakers": speakers_csv}):
        table = read_speakers_csv(speakers_csv)
    return {f: table[f.resolve()] for f in files if f.resolve() in table}


def _content_copies(files: list[Path], speakers: dict[Path, str]) -> dict[int, int]:
    """The files of a grouped batch that repeat an earlier one's content (``{copy: first}``, as the
    REST batch finds them: :func:`~avemo.inference.speakers.content_copies`); two copies given two
    speakers (--speakers): a one-line error before the work."""
    from avemo.inference.speakers import content_copies

    return content_copies(files, [speakers.get(f) for f in files])


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


def _check_out_is_no_input(out: Path | None, files: list[Path]) -> None:
    """Refuse an --out that is one of the files to predict (``avemo predict clip.mp4 -o clip.mp4``
    replaced the recording with its own result)."""
    import os

    if out is None or not out.exists():
        return
    for file in files:
        with contextlib.suppress(OSError):
            if os.path.samefile(out, file):
                error = AvemoError("is one of the files to predict; writing the output there would replace it: "
                                   "give another file name", out)
                error.option = "--out"
                raise error


def _predict_and_write(predictor, files: list[Path], fmt: str, output, *, single: bool,
                       **options) -> list[tuple[str, str]]:
    """Predict the files and write the results (after Ctrl-C, those done so far); the failures."""
    predictions: list = []
    labels = getattr(predictor, "labels", ())
    try:
        failures = _predict_files(predictor, files, predictions, raise_single=single, **options)
    except KeyboardInterrupt:
        if predictions and not single:
            _write_predictions(predictions, fmt, output, single=False, labels=labels)
            grouped = "" if options.get("speakers") is None else (
                "; a speaker whose files were not all done keeps single-clip results, not speaker-normalised")
            console_err.print(f"interrupted: the results of the {len(predictions)} files done (of {len(files)}) "
                              f"were written{grouped}")
        raise
    if predictions:
        _write_predictions(predictions, fmt, output, single=single, labels=labels)
    return failures


@app.command()
def predict(
    paths: Annotated[list[Path], typer.Argument(help="Video or audio files, or folders of them.")],
    fmt: Annotated[str | None, typer.Option(
        "--format", "-f", help="table, json or csv (default: the one --out's extension names, .json or .csv; "
                               "else table).")] = None,
    window: Annotated[float | None, typer.Option(help="Timeline window in seconds (default 1.0).")] = None,
    hop: Annotated[float | None, typer.Option(help="Timeline hop in seconds, at most the window (a longer one would "
                                                   "leave gaps: refused) and at least 0.01, with at most 100,000 "
                                                   "windows per file. Default 0.5, or the --window when that is "
                                                   "shorter (--window 0.3 alone: 0.3 s every 0.3 s).")] = None,
    modalities: Annotated[str, typer.Option(help="Comma-separated: audio, video; add text for the opt-in text "
                                                 "expert on the transcript (see --text-model).")] = "audio,video",
    engine: Annotated[str, typer.Option(help=ENGINE_HELP)] = _SERVE.engine,
    model: Annotated[Path | None, typer.Option("--model", "-m", help=MODEL_HELP)] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the output to FILE instead of stdout, in an existing folder. Checked "
                                         "before the work starts (a missing folder, or one of the files to "
                                         "predict, is refused); "
                                         "written whole when it ends (after Ctrl-C: the files done so far)."),
    ] = None,
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = _SERVE.device,
    transcribe: Annotated[
        bool, typer.Option("--transcribe", help="Also say what was said (offline Whisper-base): the clip's transcript "
                                                "with timed words, and the words of each timeline window.")
    ] = False,
    text_model: Annotated[
        Path | None, typer.Option(help="The text expert of --modalities ...,text: a text-only checkpoint from "
                                       "`avemo train` (default: the bundled text model, when there is one).")
    ] = None,
    group_by_speaker: Annotated[bool, typer.Option("--group-by-speaker", help=GROUP_HELP)] = False,
    speakers_csv: Annotated[Path | None, typer.Option("--speakers", help=SPEAKERS_HELP)] = None,
) -> None:
    """Predict the emotion of each file: clip label, per-emotion probabilities, modalities used, timeline.

    Progress goes to stderr: a bar on a terminal, a line every few seconds otherwise. Ctrl-C stops
    at once (exit code 130), keeping the results of the files already done. Grouped by speaker
    (--group-by-speaker, --speakers), those are written when Ctrl-C stops the batch: the speakers
    whose files were all analysed speaker-normalised (as without the interrupt), the files of the
    others with their single-clip results, marked speaker_normalised false, with a warning.
    """
    from avemo.inference.formats import output_format
    from avemo.inference.predictor import load_predictor
    from avemo.inference.text import split_text
    from avemo.modality import parse_modalities
    from avemo.output_file import OutputFile

    fmt = output_format(fmt, out)
    rest, with_text = split_text(modalities)
    wanted = [*parse_modalities(rest), *(["text"] if with_text else [])]
    if text_model is not None and not with_text:  # it was loaded, and never used (as avemo serve refuses it)
        raise AvemoError(f"--text-model is given but text is not among the modalities ({modalities}): "
                         f"add it, e.g. --modalities {','.join(wanted)},text")
    _check_grid(window, hop)
    _check_speaker_options(group_by_speaker, speakers_csv, model)
    files, problems = _media_files(paths)
    single = len(paths) == 1 and not paths[0].is_dir()
    _check_out_is_no_input(out, files)
    speakers = _speakers_of(files, group_by_speaker, speakers_csv)
    copies = None if speakers is None else _content_copies(files, speakers)
    with OutputFile(out) if out is not None else contextlib.nullcontext() as output:
        with _options_naming_files({"--model": model, "--text-model": text_model}):
            _say_if_exporting(engine, model)
            predictor = load_predictor(model, engine=engine, device=device, text_model=text_model,
                                       with_text=with_text)
        if speakers is not None:  # a model without the speaker-normalised head: refused before the work
            predictor.check_speakers(wanted)
        if transcribe or with_text:  # missing weights fail here, once, not on every file
            from avemo.inference.transcripts import load_recogniser_now

            load_recogniser_now()
        failures = problems + _predict_and_write(predictor, files, fmt, output, single=single, window=window, hop=hop,
                                                 modalities=wanted, transcribe=transcribe, speakers=speakers,
                                                 copies=copies)
    if failures:  # one unwrapped line per file, so that the list can be grepped
        print(f"Not predicted ({len(failures)} of {len(files) + len(problems)}):", file=sys.stderr)
        for path, reason in failures:
            print(f"  {path}: {reason}", file=sys.stderr)
        raise typer.Exit(1)


@app.command()
def demo(
    path: Annotated[Path | None, typer.Argument(help="Your own video or audio file (optional).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, json or csv.")] = "table",
    engine: Annotated[str, typer.Option(help="torch or onnx.")] = "torch",
) -> None:
    """Predict FILE, or a clip generated on the spot (works offline), and print the result."""
    import tempfile

    from avemo.inference.demo import DEMO_NAME, make_demo_clip
    from avemo.inference.formats import FORMATS
    from avemo.inference.predictor import Predictor

    if fmt not in FORMATS:
        raise AvemoError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    _say_if_exporting(engine, None)
    predictor = Predictor.default(engine=engine)
    with tempfile.TemporaryDirectory(prefix="avemo-demo-") as tmp:
        generated = path is None
        if generated:
            path = make_demo_clip(tmp)
            console_err.print(f"No file given: predicting {DEMO_NAME}, a 4 s clip generated now in a temporary folder "
                              "and removed afterwards (the portrait from matplotlib's sample data and a synthetic "
                              "voice; it acts no emotion). Try `avemo demo YOUR_VIDEO.mp4`.")
        predictions: list = []
        _predict_files(predictor, [path], predictions, window=None, hop=None, modalities=None, raise_single=True)
        if generated:  # named by its name: the temporary path is gone once the command ends
            predictions = [dataclasses.replace(p, path=DEMO_NAME) for p in predictions]
        _write_predictions(predictions, fmt, None, single=True, labels=predictor.labels)


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
    (for --engine onnx)."""
    from avemo.output_file import removing_new_folders

    if fmt != "onnx":
        raise AvemoError(f"--format must be onnx, got {fmt!r}")
    with _options_naming_files({"--model": model}):
        if model is None:
            from avemo.inference.bundle import BUNDLE_DIR, bundle_fingerprint, onnx_cache_dir
            from avemo.inference.export import export_bundle as export

            source, folder, use = BUNDLE_DIR, out or onnx_cache_dir(bundle_fingerprint(BUNDLE_DIR)), ""
        else:
            from avemo.inference.zoo_export import export_run as export
            from avemo.inference.zoo_export import zoo_onnx_dir

            source, folder, use = model, out or zoo_onnx_dir(model), f" --model {model}"
        with removing_new_folders(folder):
            folder = export(source, folder)
    for file in sorted(folder.iterdir()):
        if file.is_file():
            console.print(escape(f"{file}  ({file.stat().st_size / 1e6:.1f} MB)"), soft_wrap=True)
    where = f"AVEMO_ONNX_DIR={folder} " if out is not None else ""  # whole lines: paths to copy
    console.print(escape(f"use it with: {where}avemo predict{use} --engine onnx FILE"), soft_wrap=True)


@app.command()
def models(
    kind: Annotated[str | None, typer.Option(help="Only audio, video, text or fusion models.")] = None,
    params: Annotated[bool, typer.Option("--params/--no-params", help="Build each model to count its parameters.")] = True,
) -> None:
    """List the model zoo: name, kind, paper, parameters, summary."""
    from avemo.models import count_parameters, create_model, list_aliases, list_models, model_info

    table = Table("name", "kind", "parameters", "paper", "summary")
    for name in list_models(kind):
        info = model_info(name)
        count = f"{count_parameters(create_model(name)):,}" if params else ""
        table.add_row(name, info["kind"], count, info["paper"], info["summary"])
    console.print(table)
    aliases = list_aliases()
    if aliases:
        console.print("aliases: " + ", ".join(f"{a} -> {t}" for a, t in aliases.items()))


# ----------------------------------------------------------------------------- serve


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = _SERVE.host,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = _SERVE.port,
    workers: Annotated[int, typer.Option("--workers", "-j", help="Prediction threads sharing the loaded model.")
                       ] = _SERVE.workers,
    queue: Annotated[
        int, typer.Option("--queue", help="Uploaded requests that may wait for a prediction thread; more get 503.")
    ] = _SERVE.queue_size,
    max_upload_mb: Annotated[float, typer.Option(help="Largest accepted upload, MiB.")] = _SERVE.max_upload_bytes / MIB,
    max_duration: Annotated[float, typer.Option(help="Longest accepted media, seconds.")] = _SERVE.max_duration,
    timeout: Annotated[
        float, typer.Option(help="Seconds from the end of an upload to its result, queue wait included (504).")
    ] = _SERVE.request_timeout,
    upload_dir: Annotated[
        Path | None, typer.Option(help="Parent folder of the private upload folders.",
                                  show_default="the system temp folder")
    ] = None,
    modalities: Annotated[str, typer.Option(help="Comma-separated modalities requests may ask for: audio, video; add "
                                                 "text to load the opt-in text expert on the transcript (see "
                                                 "--text-model). A request uses the others unless it asks for text.")
                          ] = _SERVE.modalities,
    text_model: Annotated[
        Path | None, typer.Option(help="The text expert of --modalities ...,text: a text-only checkpoint from "
                                       "`avemo train` (default: the bundled text model, when there is one).")
    ] = None,
    model: Annotated[Path | None, typer.Option("--model", "-m", help=MODEL_HELP)] = None,
    engine: Annotated[str, typer.Option(help=ENGINE_HELP)] = _SERVE.engine,
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = _SERVE.device,
    config: Annotated[
        Path | None, typer.Option("--config", help="Settings file (TOML/YAML/JSON) with any key of ServeSettings, "
                                                   "e.g. read_timeout, min_upload_rate, max_uploads, min_hop, "
                                                   "max_timeline_rows; options given here win.")
    ] = None,
) -> None:
    """Serve the REST API (POST /v1/predict and /v1/predict/batch, GET /v1/models,
    /v1/progress/ID, /healthz, /openapi.json) and the web page at /.

    The model is chosen as in `avemo predict` (--model, --engine, --device) and loaded before the
    server starts: a bad value stops it with a one-line error.
    """
    _check_serve_extra()
    from avemo.serving import load_settings, run_server
    from avemo.serving.server import bind_sockets

    def given(name: str, value):  # an option left at its default does not override the --config file
        source = ctx.get_parameter_source(name)
        return None if source is None or source.name == "DEFAULT" else value

    settings = load_settings(
        config,
        host=given("host", host),
        port=given("port", port),
        workers=given("workers", workers),
        queue_size=given("queue", queue),
        max_upload_bytes=given("max_upload_mb", None if max_upload_mb is None else int(max_upload_mb * MIB)),
        max_duration=given("max_duration", max_duration),
        request_timeout=given("timeout", timeout),
        upload_dir=None if upload_dir is None else str(upload_dir),
        modalities=given("modalities", modalities),
        text_model=None if text_model is None else str(text_model),
        model=None if model is None else str(model),
        engine=given("engine", engine),
        device=given("device", device),
    )
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        console_err.print(f"avemo: warning: listening on {settings.host}: the service has no authentication; put it "
                          "behind a proxy that has.", markup=False, highlight=False, soft_wrap=True)
    sockets = bind_sockets(settings)  # a port in use stops serve now, not after the model has loaded
    served = escape(settings.model) if settings.model else f"the bundled model ({settings.engine} engine)"
    console_err.print(f"avemo: loading {served}, then serving {settings.modalities.replace(',', ', ')} on "
                      f"http://{settings.host}:{settings.port}/ (Ctrl-C stops)", soft_wrap=True)
    try:
        with _options_naming_files({"--model": model, "--text-model": text_model}):
            _say_if_exporting(settings.engine, settings.model)
            predictor = settings.load_predictor()
        run_server(settings, predictor=predictor, sockets=sockets)
    finally:
        for sock in sockets:
            sock.close()


def _check_serve_extra() -> None:
    """One line when the 'serve' extra's packages are missing."""
    try:
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise AvemoError(f"the web service needs the 'serve' extra ({exc.name} is missing): pip install 'avemo[serve]'") from None


def _help_as_paragraphs(typer_app: typer.Typer) -> None:
    """Each command's help (its docstring) as paragraphs of one line each. Typer's rich help keeps a
    docstring's single line breaks and then wraps the lines to the terminal once more, which left
    ragged lines ("Options given here" / "override ..."); a blank line still ends a paragraph."""
    for info in typer_app.registered_commands:
        if info.help is None and info.callback is not None and info.callback.__doc__:
            paragraphs = inspect.cleandoc(info.callback.__doc__).split("\n\n")
            info.help = "\n\n".join(" ".join(paragraph.split()) for paragraph in paragraphs)


_help_as_paragraphs(app)


def _interrupt_handled() -> None:
    """Tell the interpreter that the Ctrl-C it saw was handled. CPython 3.11 sets a flag when a
    KeyboardInterrupt ends code that a library runs through ``PyRun_*`` (its own nested call), and
    when the program ran as a module it kills itself with SIGINT at exit whenever the flag is up,
    whoever caught the interrupt later: ``python -m avemo`` then ended with -2, not 130, about one
    Ctrl-C in three during training. Python 3.12 keeps the flag inside its runtime state, where no
    symbol reaches it; nothing is done there."""
    try:
        ctypes.c_int.in_dll(ctypes.pythonapi, "_Py_UnhandledKeyboardInterrupt").value = 0
    except ValueError:  # no such symbol in this interpreter
        pass


def main() -> None:
    """Console entry point: one-line errors instead of tracebacks for user errors."""
    try:
        app()
    except AvemoError as exc:
        print(f"avemo: error: {exc}", file=sys.stderr)  # one line, never wrapped
        sys.exit(2)
    except KeyboardInterrupt:  # before or after the command (Typer handles it during one)
        print("avemo: interrupted", file=sys.stderr)
        _interrupt_handled()
        sys.exit(130)
    except SystemExit as exc:
        if exc.code == 130:  # Typer turns Ctrl-C during a command into a silent exit with code 130
            print("avemo: interrupted", file=sys.stderr)
            _interrupt_handled()
        raise


if __name__ == "__main__":
    main()
