"""``avemo evaluate``: a checkpoint scored on a corpus, its own or another (over the labels both share)."""

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
from avemo.cli.inputs import _check_tables, _naming_reader_skips, _speakers
from avemo.cli.listing import _print_duplicates, _print_skipped
from avemo.cli.options import (
    CacheOpt,
    EvalTranscribeOpt,
    ExtractWorkersOpt,
    LabelsOpt,
    MediaOpt,
    RootOpt,
    TableOpt,
    _cores,
)
from avemo.cli.progress import _extracting, _transcribing
from avemo.cli.transcripts import _say_text_unread, _say_transcribed, _transcribe_hint, _worth_transcribing
from avemo.errors import AvemoError

EvalDatasetOpt = Annotated[
    str | None, typer.Option("--dataset", "-d", help="Dataset layout of --root: ravdess, crema_d, emodb, folder, meld, "
                                                     "iemocap. Default: the dataset the checkpoint trained on (one of "
                                                     "several corpora: give it).")
]
EvalSpeakerPatternOpt = Annotated[
    str | None,
    typer.Option("--speaker-pattern", metavar="REGEX",
                 help="--dataset folder without a labels CSV, of one folder per emotion: the speaker is the one group "
                      "of REGEX in each file's name (e.g. '^(\\d\\d)' for 03a01Fa.wav). Default: the pattern the "
                      "checkpoint's training folder was read with, if any (said in one line); '' for none (the "
                      "folder's speaker folders)."),
]

SPLIT_HELP = ("Score one official split of the corpus (MELD: train, dev or test; default: every take the folder has, "
              "of all its splits).")
EvalProtocolOpt = Annotated[
    str | None, typer.Option("--protocol", help="IEMOCAP label protocol: iemocap4 or iemocap6 (paper 002). Default: the "
                                                "checkpoint's, when it trained on one of them; else iemocap4.")
]


@app.command()
def evaluate(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="A checkpoint folder from `avemo train`.")],
    root: RootOpt,
    dataset: EvalDatasetOpt = None,
    visual_table: TableOpt = None,
    labels: LabelsOpt = None,
    speaker_pattern: EvalSpeakerPatternOpt = None,
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
                          speakers=_speakers(speakers), labels_csv=labels, speaker_pattern=speaker_pattern,
                          protocol=_checkpoint_protocol(ckpt, dataset, protocol), media=media)
    if split is not None:
        data = select_split(data, split)
    with contextlib.ExitStack() as stack:  # a bad destination fails now, not after the work
        stack.enter_context(removing_new_folders(plots))
        if plots is not None:
            prepare_folder(plots)
        report = stack.enter_context(_output(json_out, "--json", _read_tables(dataset, root, labels, visual_table)))
        cache = _cache(cache_dir)
        with _extracting(len(data.takes)) as progress, _naming_reader_skips(data.skipped):
            ev = _evaluate_checkpoint(ckpt, data, cache=cache, workers=workers or _cores(), adapt=adapt, progress=progress)
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


def _speaker_pattern(ckpt, dataset: str, root: Path, labels: Path | None, given: str | None) -> str | None:
    """The speaker pattern ``avemo evaluate`` reads a folder dataset with: the one given (``''``: none), else,
    for a folder without labels CSV, the one the checkpoint's training folder was read with (checkpoint.json's
    ``speaker_pattern``; said in one line), so that its files get the speakers they trained with (without it
    such a folder was refused, or read from its speaker folders). Of several folder corpora: the one whose
    recorded root is ``root``'s, else theirs if they agree; else one line asking for --speaker-pattern. A
    labels CSV of the training other than labels.csv is said in one line when none is given."""
    from avemo.datasets.folder import DEFAULT_LABELS_FILE
    from avemo.models.checkpoint import recorded_path

    if given is not None:
        return given or None
    if dataset != "folder" or labels is not None or (root / DEFAULT_LABELS_FILE).exists():
        return None
    data = ckpt.meta.get("data") or {}
    corpora = [c for c in data.get("corpora", ()) if c.get("dataset") == "folder"] or (
        [data] if data.get("dataset") == "folder" else [])
    corpora = [c for c in corpora if c.get("root") == recorded_path(root)] or corpora
    csvs = sorted({c["labels_csv"] for c in corpora if c.get("labels_csv")})
    if csvs:
        console_err.print(escape(f"the checkpoint's training folder was labelled by {', '.join(csvs)}: give --labels "
                                 f"FILE to read a labels CSV other than {DEFAULT_LABELS_FILE} here"), soft_wrap=True)
    patterns = sorted({c.get("speaker_pattern") or "" for c in corpora})
    if len(patterns) > 1:
        said = ", ".join(f"{c.get('name')} " + (f"'{c['speaker_pattern']}'" if c.get("speaker_pattern") else "none")
                         for c in corpora)
        raise AvemoError(f"the checkpoint's folder corpora were read with different speaker patterns ({said}): give "
                         "--speaker-pattern REGEX for this folder ('' for none: its speaker folders)", root)
    if not patterns or not patterns[0]:
        return None
    console_err.print(escape(f"speakers read with the checkpoint's speaker pattern '{patterns[0]}', as its training "
                             "folder was (--speaker-pattern REGEX: another; '' for none)"), soft_wrap=True)
    return patterns[0]


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
    told, when the checkpoint's training had them for its text (:func:`~avemo.training.scoring.transcribes_like_training`),
    a folder read with the checkpoint's speaker pattern unless given one (:func:`_speaker_pattern`)."""
    from avemo.training import load_data
    from avemo.training.scoring import transcribes_like_training

    # before the corpus is read or transcribed; a late-fusion model's optional inputs may be left out, not all
    _check_tables(ckpt.inputs, options.get("visual_table"), optional=True)
    if transcribe is None and transcribes_like_training(ckpt):
        transcribe = True
        console_err.print("the checkpoint's text came from speech recognition: clips without a transcript are "
                          "transcribed the same way (--no-transcribe: not)")
    options["speaker_pattern"] = _speaker_pattern(ckpt, options["dataset"], options["root"], options["labels_csv"],
                                                  options["speaker_pattern"])
    modalities = {s.modality for s in ckpt.inputs.values()}
    transcribe = _worth_transcribing(bool(transcribe), modalities, "the checkpoint's model")
    asr = {"transcribe": True, "cache": _cache(cache_dir)} if transcribe else {}
    with _transcribing(bool(transcribe)) as progress:
        data = load_data(**options, progress=progress, dialogue_context=ckpt.model.dialogue_context, **asr)
    _say_transcribed(data.transcripts)
    _say_text_unread(data.takes, modalities, "the checkpoint's model")
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
