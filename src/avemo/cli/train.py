"""``avemo train``: a model trained on one corpus or several, early-stopped on validation speakers,
written as a checkpoint."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from avemo.cli.app import app, console, console_err
from avemo.cli.files import _cache
from avemo.cli.inputs import (
    _check_device,
    _check_tables,
    _model_config,
    _model_context,
    _model_inputs,
    _naming_reader_skips,
    _speakers,
)
from avemo.cli.listing import _print_duplicates, _print_skipped
from avemo.cli.options import (
    CacheOpt,
    ExtractWorkersOpt,
    LabelsOpt,
    MediaOpt,
    SpeakerPatternOpt,
    TableOpt,
    TrainTranscribeOpt,
    _cores,
)
from avemo.cli.progress import _extracting, _LineProgress, _progress, _transcribing
from avemo.cli.transcripts import _say_text_unread, _say_transcribed, _transcribe_hint, _worth_transcribing
from avemo.device import check_device_option
from avemo.errors import AvemoError

ProtocolOpt = Annotated[
    str | None, typer.Option("--protocol", help="IEMOCAP label protocol: iemocap4 (default) or iemocap6 (paper 002).")
]
MODEL_CONFIG_HELP = (
    "Model options: JSON or a TOML/YAML/JSON file, e.g. for gao_dialogue '{\"modalities\": [\"text\"], \"context\": 3}' "
    "(the modalities it reads, default text, audio and video; context: the H previous utterances of the dialogue it "
    "reads, default 0). Each model's options and their defaults: avemo.models.model_info(NAME)[\"config\"] in "
    "Python; an unknown one is refused, naming those there are."
)


def _train_config(config_file: Path | None, overrides: dict, corpora_file: Path | None = None,
                  from_corpora: dict | None = None):
    """The TrainConfig of ``avemo train``: the --config file's, then the values the --corpora file gives
    (``from_corpora``; one it gives otherwise than the --config file is refused unless the option
    decides), then the options given on the command line (``overrides``, None: not given)."""
    from avemo import config as cfg
    from avemo.training import TrainConfig

    if overrides.get("device") is not None:  # --device foo: named as the option, before the config files are read
        check_device_option(overrides["device"])
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


def _check_model_tables(inputs: Mapping[str, Any], visual_table: Path | None) -> None:
    """The model's table, given? A face table refused (the default model's AU means, no --visual-table)
    names the audio-only model that trains without it: the user may have audio only."""
    try:
        _check_tables(inputs, visual_table)
    except AvemoError as exc:
        if not any(spec.modality == "video" for spec in inputs.values()):
            raise
        from avemo.inference.bundle import audio_model_name

        raise type(exc)(f"{exc.reason}; with audio only, train an audio model instead: --model "
                        f"{audio_model_name()} (the bundled model's audio expert)", exc.path) from None


def _train_data(roots: list[Path] | None, datasets: list[str] | None, corpora_file: Path | None, *,
                label_space: str | None, visual_table: Path | None, speakers: str | None, labels: Path | None,
                speaker_pattern: str | None = None, protocol: str | None = None, media: Path | None = None,
                transcribe: bool = False, cache_dir: Path | None = None, model: str | None = None,
                inputs: Mapping[str, Any] | None = None, context: int | None = None):
    """The DataBundle of ``avemo train``: one corpus as before, or several (repeated pairs or --corpora) in
    ``label_space`` (None: shared; one corpus keeps its labels, and a label space given says it is ignored);
    ``transcribe``: every corpus gets transcripts by speech recognition (else those whose --corpora
    entry says ``transcribe = true``), unless the ``model``'s ``inputs`` (its InputSpecs) read no text;
    ``context``: its dialogue context (a corpus without dialogues is refused before it is transcribed).
    The options are checked, and a table the inputs read is given, before any data is read."""
    from avemo.training import load_data
    from avemo.training.corpora import FILE_SETTINGS, CorpusSpec, check_corpora_paths, read_corpora_file
    from avemo.training.experiment import load_corpora

    roots, datasets = list(roots or []), list(datasets or [])
    if corpora_file is not None:
        if roots or datasets:
            raise AvemoError("give the corpora either as --corpora FILE or as --dataset/--root pairs, not both")
        specs = read_corpora_file(corpora_file, reads=FILE_SETTINGS)
        check_corpora_paths(specs, corpora_file)
    elif not roots:
        raise AvemoError("missing --root (or --corpora FILE.toml)")
    elif len(roots) == 1 and len(datasets) <= 1:
        specs = [CorpusSpec(datasets[0] if datasets else "ravdess", roots[0])]
    elif len(datasets) != len(roots):
        raise AvemoError(f"several corpora need one --dataset per --root: got {len(datasets)} --dataset "
                         f"and {len(roots)} --root")
    else:
        specs = [CorpusSpec(d, r) for d, r in zip(datasets, roots, strict=True)]
    given = [o for o, v in (("--speakers", _speakers(speakers)), ("--labels", labels),
                            ("--speaker-pattern", speaker_pattern)) if v is not None]
    if len(specs) > 1 and given:
        keys = " and ".join(f"{o[2:].replace('-', '_')}=" for o in given)
        raise AvemoError(f"{' and '.join(given)} read{'s' if len(given) == 1 else ''} one corpus; with several "
                         f"corpora, give {keys} per corpus in a --corpora file")
    if len(specs) > 1 and (protocol is not None or media is not None):
        raise AvemoError("--protocol and --media read one IEMOCAP corpus; with several corpora, give protocol= "
                         "and media= per iemocap corpus in a --corpora file")
    if inputs is not None:
        _check_model_tables(inputs, visual_table)
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
                             labels_csv=labels or only.labels, speaker_pattern=speaker_pattern or only.speaker_pattern,
                             protocol=protocol or only.protocol, media=media or only.media,
                             transcribe=only.transcribe, progress=progress, dialogue_context=context, **asr)
        _say_transcribed(data.transcripts)
        return data
    with _transcribing(bool(asr)) as progress:
        data = load_corpora(specs, label_space or "shared", visual_table=visual_table, progress=progress,
                            dialogue_context=context, **asr)
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
                                                "speakers=, weight=, name=, labels=, speaker_pattern=, transcribe=; "
                                                "iemocap: protocol=, media=; paths relative to the file's folder, a "
                                                "labels CSV's own paths to its root=) instead of --dataset/--root; at its top level it "
                                                "may set label_space= and balance= (the options win over them); any "
                                                "other top-level key is refused.")
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


TrainAllowCopiesOpt = Annotated[bool, typer.Option(
    "--allow-copies", help="Go on when byte-identical files (one recording) are under two speakers, within a corpus "
                           "or across the corpora of the run (a warning line): refused otherwise, as the split could "
                           "train on the recording and validate or test on it. Copies under one speaker are said "
                           "and trained on either way.")]


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
    speaker_pattern: SpeakerPatternOpt = None,
    speakers: TrainSpeakersOpt = "all",
    fold: Annotated[int | None, typer.Option(help="Train on fold K of the plan; test on its test speakers.")] = None,
    plan: Annotated[
        str | None, typer.Option(help="Fold plan: a built-in name (ravdess, ravdess_au, iemocap_loso) or a JSON file (default: the smallest built-in "
                                  "plan of the dataset that covers its speakers, else 5 folds; several corpora: 5 "
                                  "folds of each corpus, joined; a default plan: of the speakers whose files decode).")
    ] = None,
    val_speakers: Annotated[
        str | None, typer.Option(help="Validation speakers without --fold (default: the last two speakers, the last one where fewer than 4; with several corpora, the last of each).")
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
    allow_copies: TrainAllowCopiesOpt = False,
) -> None:
    """Train MODEL on a dataset folder with early stopping on validation speakers; write a checkpoint.

    Several corpora (repeated --dataset/--root pairs, or --corpora FILE.toml) train in one label space
    (--label-space) with qualified speakers (emodb:03) and sample weights (--balance). Options given here
    override the --corpora file (label_space=, balance=) and the --config file. Out of GPU memory: lower
    --batch-size, or keep it with --accumulate, or add --checkpoint-activations; the error line says which.
    An --out folder holding a finished run is refused without --overwrite; an unfinished one is resumed."""
    from avemo.training import train_run
    from avemo.training.state import run_folder

    _refuse_a_finished_run(out, overwrite)  # before the data is read
    label_space, from_corpora = _corpora_settings(corpora, label_space, balance)
    train_cfg = _train_config(config, {
        "epochs": epochs, "seed": seed, "speaker_norm": speaker_norm, "device": device, "batch_size": batch_size,
        "accumulate": accumulate, "checkpoint_activations": checkpoint_activations, "balance": balance,
        "eval_batch_size": eval_batch_size, "loader_workers": loader_workers, "compile": compile_model,
    }, corpora, from_corpora)
    data = _train_data(root, dataset, corpora, label_space=label_space, visual_table=visual_table, speakers=speakers,
                       labels=labels, speaker_pattern=speaker_pattern, protocol=protocol, media=media, transcribe=transcribe,
                       cache_dir=cache_dir, model=model, inputs=(inputs := _model_inputs(model, model_config)),
                       context=_model_context(model, model_config))
    split_options = {"fold": fold, "plan": plan, "val_speakers": _speakers(val_speakers)}
    _check_data(data, split_options, allow_copies)
    with _output_folders(out, plots):
        cache = _cache(cache_dir)
        with _naming_reader_skips(data.skipped):
            gathered, (tr, va, te, split_info) = _train_split(model, model_config, inputs, data, cache, workers,
                                                              split_options)
        _say_takes(model, inputs, gathered, (tr, va, te), split_info)
        bar, progress = _training_bar(model, train_cfg.epochs, out)
        with bar, run_folder(out, overwrite=overwrite) as where:
            run = train_run(
                model, data, train_takes=tr, val_takes=va, test_takes=te, model_config=_model_config(model_config),
                train_config=train_cfg, cache=cache, out_dir=where, workers=workers or _cores(),
                extra_meta={"split": split_info}, gathered=gathered, plots=plots if plots is not None else True,
                **progress)
    _print_run(run, out, data)


@contextlib.contextmanager
def _output_folders(out: Path, plots: Path | None):
    """``with`` it, the work of ``avemo train``: --out and --plots are created and checked first (a folder
    that cannot be written fails now, not after the training; --plots naming a file ended a finished
    run in a traceback), and removed again if they were new and the work fails before writing into them."""
    from avemo.output_file import prepare_folder, removing_new_folders

    with removing_new_folders(out), removing_new_folders(plots):
        for folder in filter(None, (out, plots)):
            prepare_folder(folder)
        yield


def _say_takes(model: str, inputs: Mapping[str, Any], gathered, parts, split_info: dict) -> None:
    """The line of the takes that train, validate and test, and one for text the model does not read."""
    n_tr, n_va, n_te = _usable_counts(gathered, parts)
    _say(f"{model}: {n_tr} training, {n_va} validation, {n_te} test takes ({split_words(split_info)})")
    _say_text_unread(gathered.takes, {spec.modality for spec in inputs.values()}, f"model {model}")


def _check_data(data, split_options: dict, allow_copies: bool) -> None:
    """What ``avemo train`` refuses once the data is read, before any feature is extracted: a recording
    under two speakers (unless ``allow_copies``: a warning line), and a split its ``split_options``
    cannot make (checked again on the speakers with usable takes, :func:`_train_split`)."""
    from avemo.training import resolve_split
    from avemo.training.experiment import refuse_shared_copies

    refuse_shared_copies(data, allow=allow_copies)
    with _naming_reader_skips(data.skipped):
        resolve_split(data, **split_options, quiet=True)  # the split after the extraction says its choice


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


def _corpora_settings(corpora: Path | None, label_space: str | None,
                      balance: str | None = None) -> tuple[str | None, dict]:
    """The label space of ``avemo train`` (the option given, else the --corpora file's; None: neither, so
    shared) and the TrainConfig values the --corpora file gives (its balance): the file's settings, checked
    (--label-space too: an unknown one was never looked at with one corpus; and --balance, said as the
    option: it was "train config.balance: 'foo' is not one of ...")."""
    from avemo.training.corpora import BALANCES, SPACE_MODES, corpora_file_settings

    for option, value, values in (("--label-space", label_space, SPACE_MODES), ("--balance", balance, BALANCES)):
        if value is not None and value not in values:
            raise AvemoError(f"{option} {value!r} is not one of {', '.join(values)}")
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
