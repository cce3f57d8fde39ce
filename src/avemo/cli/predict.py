"""``avemo predict`` and ``avemo demo``: the emotion of each file, printed or written."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from avemo.cli.app import app, console, console_err
from avemo.cli.files import _media_files, _options_naming_files, _refuse_output_on_inputs
from avemo.cli.options import _SERVE, DEVICE_HELP, ENGINE_HELP, MODEL_HELP
from avemo.cli.progress import _PredictProgress
from avemo.errors import AvemoError


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


def say_if_exporting(engine: str, model: Path | str | None) -> None:
    """One line on stderr before the onnx engine's first use exports the bundled model or the --model
    checkpoint (several seconds without output otherwise), saying where the graphs are kept for the next runs."""
    from avemo.inference.predictor import pending_onnx_export

    folder = pending_onnx_export(engine, model)
    if folder is not None:
        what = "the bundled model" if model is None else f"the model {model}"
        console_err.print(f"avemo: exporting {what} to ONNX once (several seconds); cached in {folder}",
                          markup=False, highlight=False, soft_wrap=True)


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
                                         "before the work starts (a missing folder, one of the files to "
                                         "predict or the --speakers file is refused); "
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
    from avemo.device import check_device_option
    from avemo.inference.formats import output_format
    from avemo.inference.predictor import load_predictor
    from avemo.inference.text import split_text
    from avemo.modality import parse_modalities
    from avemo.output_file import OutputFile

    check_device_option(device)  # before the model loads ("unknown device" came after "loading")
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
    _refuse_output_on_inputs("--out", out, [*(("one of the files to predict", f) for f in files),
                                            ("the --speakers file", speakers_csv)])
    speakers = _speakers_of(files, group_by_speaker, speakers_csv)
    copies = None if speakers is None else _content_copies(files, speakers)
    with OutputFile(out) if out is not None else contextlib.nullcontext() as output:
        with _options_naming_files({"--model": model, "--text-model": text_model}):
            say_if_exporting(engine, model)
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
    if failures:
        _print_not_predicted(failures, len(files) + len(problems))
        raise typer.Exit(1)


def _print_not_predicted(failures: list[tuple[str, str]], total: int) -> None:
    """On stderr, one unwrapped line per file that could not be predicted (so that the list can be
    grepped); the list of supported containers is said once (:func:`~avemo.media.sniff.supported_said_once`)."""
    from avemo.media.sniff import supported_said_once  # not at import: it imports PyAV

    print(f"Not predicted ({len(failures)} of {total}):", file=sys.stderr)
    for (path, _), reason in zip(failures, supported_said_once([r for _, r in failures]), strict=True):
        print(f"  {path}: {reason}", file=sys.stderr)


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
    say_if_exporting(engine, None)
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
