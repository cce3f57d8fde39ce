"""``avemo extract``: the features of a file, a folder or a dataset, into the cache."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from avemo.cli.app import app, console, console_err
from avemo.cli.files import _cache, _output, _read_tables
from avemo.cli.inputs import _model_inputs
from avemo.cli.listing import SKIPPED_SHOWN, _print_duplicates, _print_skipped, _reason_counts
from avemo.cli.options import LabelsOpt, SpeakerPatternOpt, TranscribeOpt, _at_least_one_worker
from avemo.cli.progress import _progress, _transcribing
from avemo.cli.transcripts import _say_transcribed, _worth_transcribing
from avemo.errors import AvemoError

WorkersOpt = Annotated[int, typer.Option("--workers", "-j", callback=_at_least_one_worker,
                                         help="Parallel worker processes.")]


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
    labels: LabelsOpt = None,
    speaker_pattern: SpeakerPatternOpt = None,
    workers: WorkersOpt = 1,
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
                                           speaker_pattern=speaker_pattern, protocol=protocol, media=media)
    with contextlib.ExitStack() as stack:  # a bad destination fails now, not after the work
        stack.enter_context(removing_new_folders(out_dir and out_dir.parent))
        if out_dir is not None:
            check_export_folder(out_dir)
        summary_out = stack.enter_context(_output(summary_json, "--summary", _read_tables(dataset, path, labels)))
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
            f"({report.executor}, {report.workers} worker{'s' if report.workers > 1 else ''}); cache: {escape(str(cache.root))}"
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
        from avemo.datasets import laid_out_as

        layout = laid_out_as(path) if options.get("dataset", "auto") == "auto" else None
        hint = f"; the folder is laid out as {layout[0]}'s ({layout[1]}): read it with --dataset {layout[0]}" if layout else ""
        raise AvemoError(f"no media files to process{hint}", path)
    return path, items, skipped


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
    ``full_list`` they all are. The list of supported containers is said once
    (:func:`~avemo.media.sniff.supported_said_once`)."""
    from avemo.media.sniff import supported_said_once  # not at import: it imports PyAV

    table = Table(title="Not extracted", title_justify="left")
    table.add_column(what, overflow="fold")  # a long path is folded over lines, not cut to "…"
    table.add_column("extractor")
    table.add_column("reason")
    rows = [(str(o.path), name, reason) for o in failed for name, reason in o.errors.items()]
    rows += [(str(s_path), "-", reason) for s_path, reason in skipped]
    reasons = supported_said_once([reason for _, _, reason in rows])  # the long list once, not per file
    rows = [(what, name, reason) for (what, name, _), reason in zip(rows, reasons, strict=True)]
    shown = len(rows) - max(0, len(skipped) - SKIPPED_SHOWN)
    for what, name, reason in rows[:shown]:
        table.add_row(escape(what), name, escape(reason))
    if len(skipped) > SKIPPED_SHOWN:
        rest = [(what, reason) for what, _, reason in rows[shown:]]
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
