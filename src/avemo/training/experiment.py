"""Train and evaluate one model on one split of a dataset: the library behind ``avemo train``,
``avemo evaluate`` and the benchmark runner.

:func:`load_data` reads a dataset folder into takes (the files of one performance, paired
across modalities) plus the external visual tables; :func:`train_run` gathers the model's
inputs, fits on the training speakers with model selection on the validation speakers,
tests on the test speakers (if any), and writes a checkpoint with plots;
:func:`avemo.training.scoring.evaluate_checkpoint` scores a checkpoint on any corpus.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avemo import config as cfg
from avemo.cache.store import FeatureCache
from avemo.datasets import (
    DATASET_LABEL_SETS,
    laid_out_as,
    load_au_means,
    pair_takes,
    parse_file_name,
    read_dataset,
)
from avemo.datasets.copies import (
    Copies,
    across_speakers,
    across_speakers_line,
    copy_warnings,
    find_copies_across,
    named_folder,
    recording_digests,
)
from avemo.datasets.folds import Fold, split
from avemo.datasets.labels import LabelSet
from avemo.datasets.pairing import Take
from avemo.datasets.records import Clip
from avemo.errors import AvemoError, ConfigError, DatasetError
from avemo.metrics import Metrics, compute_metrics
from avemo.models.batching import TensorData
from avemo.models.checkpoint import recorded_file, recorded_path, save_checkpoint
from avemo.models.normalization import Normalizer
from avemo.training.config import TrainConfig
from avemo.training.corpora import (
    Corpora,
    CorpusSpec,
    SpaceMode,
    build_label_space,
    check_corpus_names,
    make_objective,
    qualify,
    recorded_reading,
    resolved_balance,
)
from avemo.training.data import (
    Gathered,
    check_labels,
    concat,
    gather,
    previous_utterances,
    refuse_without_dialogues,
)
from avemo.training.trainer import (
    FitResult,
    calibrate,
    fit,
    fit_preprocessing,
    is_main_process,
    predict_proba,
)

log = logging.getLogger(__name__)


@dataclass
class DataBundle:
    """The takes of a dataset folder, its label set, the visual tables, what was skipped (files that
    could not be used) and the ``duplicates`` (files set aside as copies of a take read from another file)."""

    dataset: str
    root: Path
    takes: list[Take]
    labels: LabelSet
    tables: dict[str, Any] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    corpora: Corpora | None = None  # several corpora in one label space (:func:`load_corpora`)
    #: what speech recognition did for takes without a transcript (``transcribe=True``), else None;
    #: several corpora: ``{"source": "asr", "corpora": {name: counts}}``
    transcripts: dict[str, Any] | None = None
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    #: the dialogues that ``speakers`` (:func:`load_data`) kept only some of: the turns of the other
    #: speakers are not in ``takes``, so a model with dialogue context would miss them (:func:`refuse_cut_dialogues`)
    cut_dialogues: list[str] = field(default_factory=list)
    #: byte-identical files of different takes (:attr:`ScanResult.copies <avemo.datasets.scan.ScanResult>`):
    #: one recording under two speakers or labels, or copied (said as warnings when the folder is read);
    #: several corpora: each corpus's, then those found in two corpora (:func:`corpora_copies`)
    copies: list[Copies] = field(default_factory=list)
    #: how a folder dataset was read (:func:`load_data`): the labels CSV given and the speaker pattern, else None
    labels_csv: Path | None = None
    speaker_pattern: str | None = None

    @property
    def speakers(self) -> list[str]:
        return sorted({t.speaker for t in self.takes})


def _dialogues(takes: Iterable[Take]) -> set[str]:
    """The dialogues of ``takes`` (of a conversational corpus; none elsewhere)."""
    return {clip.dialogue for take in takes for clip in take if clip.dialogue is not None}


def refuse_cut_dialogues(data: DataBundle, context: int | None) -> None:
    """A one-line :class:`DatasetError` for a model with dialogue context (``context``: its ``dialogue_context``)
    on data whose ``speakers`` filter kept only some turns of a dialogue: an utterance's context is the
    previous turns of its dialogue, whoever said them, and read without the other speakers' turns it is
    another context (the same utterances scored otherwise than in the whole corpus)."""
    cut = sorted(set(data.cut_dialogues) & _dialogues(data.takes)) if context else []  # of the takes read (one split)
    if cut:
        raise DatasetError(f"the speakers read keep only some turns of {len(cut)} dialogue(s) (e.g. {cut[0]}), and "
                           f"a model with dialogue context (H = {context}) reads each utterance's previous turns, "
                           "whoever said them: read every speaker (--speakers all)", data.root)


#: what a recording under two speakers means for ``avemo train``'s split (:func:`refuse_shared_copies`)
TRAIN_SPLIT_LEAK = ("the split by speakers would not be speaker-disjoint for them (the run could train on such a "
                    "recording and validate on it, so that early stopping and the best epoch see training data, or "
                    "test on it)")


def refuse_shared_copies(data: DataBundle, *, allow: bool = False, means: str = TRAIN_SPLIT_LEAK,
                         then: str = "") -> list[Copies]:
    """A one-line DatasetError when a recording is in ``data`` under two speakers (byte-identical files,
    :func:`~avemo.datasets.copies.across_speakers`, over the clips of its takes; one corpus or several):
    ``means`` says what it does to the command's splits, ``then`` what ``--allow-copies`` does besides
    going on. ``allow`` (``--allow-copies``): a warning line instead. Returns those recordings. The rule
    of ``avemo train`` and ``avemo benchmark``; copies under one speaker are not refused (a copy counted
    twice, or a labelling conflict: said when the folder is read)."""
    shared = across_speakers(data.copies, {str(c.path) for t in data.takes for c in t.clips.values()})
    if shared:
        said = f"{across_speakers_line(shared, data.root)}: {means}"
        if not allow:
            raise DatasetError(f"{said}; remove the copies, or give --allow-copies to go on{then}",
                               named_folder(data.root))
        log.warning("%s (--allow-copies: going on)", said)
    return shared


def _has_emotion_folders(root: Path) -> bool:
    """Whether ``root`` is laid out in emotion folders (:mod:`~avemo.datasets.emotion_folders`), readable or not."""
    from avemo.datasets.emotion_folders import folder_layout

    try:
        return folder_layout(root) is not None
    except DatasetError:  # emotion folders without speakers, or of two layouts
        return True


def _no_labelled_files(dataset: str, root: str | Path, skipped: Sequence) -> DatasetError:
    """The "no labelled DATASET files found" error, with the first skipped file and why, and the dataset its name
    follows when it is another one: ``avemo evaluate --root crema_d`` (the default dataset: ravdess)
    said only "no labelled ravdess files found"."""
    # the dataset, not an option: train and evaluate take --dataset, a --corpora entry dataset=, benchmark
    # --test-corpus DATASET=ROOT ("(--dataset emodb)" asked for an option benchmark does not have)
    layout = laid_out_as(root)
    hint = (f"; the folder is laid out as {layout[0]}'s ({layout[1]}): read the folder as dataset {layout[0]}"
            if layout is not None and layout[0] != dataset else "")
    if not skipped:
        return DatasetError(f"no labelled {dataset} files found{hint}", root)
    first = skipped[0]
    try:
        named = parse_file_name(first.path.name)["dataset"]
    except DatasetError:
        named = None
    if named not in (None, dataset):
        hint = f"; the names are {named}'s: read the folder as dataset {named}"
    if not hint and named is None and dataset != "folder" and _has_emotion_folders(Path(root)):
        hint = "; its folders are named after emotions: read the folder as dataset folder"
    files = f"{len(skipped)} file{'s' if len(skipped) > 1 else ''}"
    return DatasetError(f"no labelled {dataset} files found: {files} skipped, e.g. {first.path.name} ({first.reason})"
                        f"{hint}", root)


def load_data(
    dataset: str,
    root: str | Path,
    *,
    visual_table: str | Path | None = None,
    speakers: Sequence[str] | None = None,
    labels_csv: str | Path | None = None,
    speaker_pattern: str | None = None,
    protocol: str | None = None,
    media: str | Path | None = None,
    transcribe: bool = False,
    cache: FeatureCache | None = None,
    progress: Callable[[int, int], None] | None = None,
    dialogue_context: int | None = None,
) -> DataBundle:
    """Read ``root`` with the ``dataset`` reader, pair files into takes, attach the visual table
    (read first: a missing or unreadable one is refused before the corpus is scanned or transcribed).
    ``labels_csv``, ``speaker_pattern``: a folder dataset's labels CSV, or the speakers of its emotion
    folders (:func:`~avemo.datasets.folder.read_folder`). ``protocol``: the label protocol of IEMOCAP (``iemocap4``, ``iemocap6``); ``media``: IEMOCAP's
    prepared utterance videos (``avemo prepare --dataset iemocap``). ``transcribe``: give the takes
    without a transcript one by speech recognition, through ``cache`` (default: the default feature
    cache), ``progress(done, total)`` after each take (:mod:`avemo.training.transcripts`). No model is
    known here, so this transcribes whatever model will read the data (``avemo train`` and ``avemo
    evaluate`` ask only for a model that reads text, and say so in one line otherwise): pass it only
    when :func:`~avemo.training.transcripts.reads_text` of the model's inputs
    (:func:`~avemo.models.default_inputs`) is true, else the recogniser spends about half a second a
    clip on text nobody reads. ``dialogue_context``: that of the model that will read the data (a corpus
    without dialogues is refused for a model with context, before it is transcribed)."""
    tables = {}
    if visual_table is not None:
        table = load_au_means(visual_table)
        tables[table.name] = table
    options: dict[str, Any] = {key: value for key, value in (("labels_csv", labels_csv),
                                                             ("speaker_pattern", speaker_pattern)) if value is not None}
    if protocol is not None:
        if dataset != "iemocap":
            raise ConfigError(f"protocol {protocol} is for the iemocap dataset (iemocap4, iemocap6), not {dataset}")
        options["protocol"] = protocol
    if media is not None:
        if dataset != "iemocap":
            raise ConfigError(f"media (prepared utterance videos) is for the iemocap dataset, not {dataset}")
        options["media"] = media
    scan = read_dataset(dataset, root, copies_among=speakers, **options)  # copies of the speakers read
    refuse_without_dialogues(scan.clips, dialogue_context, root)
    if transcribe:
        from avemo.training.transcripts import transcribe_missing

        used = None if speakers is None else set(speakers)  # only the clips this run keeps
        scan = transcribe_missing(scan, cache=cache, progress=progress,
                                  select=lambda c: c.emotion is not None and (used is None or c.speaker in used))
    takes = list(pair_takes(scan.clips).values())
    cut: list[str] = []
    if speakers is not None:
        wanted = set(speakers)
        unknown = wanted - {t.speaker for t in takes}
        if unknown:
            raise DatasetError(_unknown_speakers(unknown, {t.speaker for t in takes}), root)
        kept = [t for t in takes if t.speaker in wanted]
        cut = sorted(_dialogues(kept) & _dialogues(t for t in takes if t.speaker not in wanted))
        takes = kept
    unlabelled = [(str(clip.path), "no emotion (an empty emotion cell): not used to train or score")
                  for t in takes if t.emotion is None for clip in t.clips.values()]
    takes = [t for t in takes if t.emotion is not None]
    if not takes:
        raise _no_labelled_files(dataset, root, scan.skipped)
    if protocol is not None:
        from avemo.datasets import iemocap_label_set

        labels = iemocap_label_set(protocol)
    elif dataset in DATASET_LABEL_SETS:
        labels = DATASET_LABEL_SETS[dataset]
    else:  # a folder's: the emotions of its labels CSV, whichever speakers are read (as a named dataset's set)
        from avemo.datasets.labels import label_set_for

        labels = label_set_for(dataset, (c.emotion for c in scan.clips))
    return DataBundle(dataset, Path(root), takes, labels, tables,
                      [*((str(s.path), s.reason) for s in scan.skipped), *unlabelled],
                      transcripts=scan.transcripts, duplicates=[(str(s.path), s.reason) for s in scan.duplicates],
                      cut_dialogues=cut, copies=list(scan.copies),
                      labels_csv=Path(labels_csv) if labels_csv is not None else None, speaker_pattern=speaker_pattern)


@dataclass
class RunResult:
    """What one training run produced."""

    out_dir: Path | None
    model_name: str
    params: int
    best_epoch: int
    train_seconds: float
    history: list[dict[str, float]]
    val: Metrics | None
    test: Metrics | None
    test_probabilities: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    test_takes: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    compile_seconds: float | None = None  # the first compiled training step (``TrainConfig.compile``)
    processes: int = 1  # the DistributedDataParallel processes that trained it (torchrun)
    #: the trained model and its input statistics, kept only when ``train_run(keep_model=True)``
    model: Any = None
    normalizer: Normalizer | None = None


def _tensor_data(gathered: Gathered, norm: Normalizer, labels: LabelSet, specs, *, train: bool, seed: int,
                 groups: np.ndarray | None = None, context: int | None = None):
    """``groups``: the corpus of each item (multi-corpus objectives); ``context``: the model's
    ``dialogue_context`` (windows of previous utterances from ``gathered``)."""
    previous = previous_utterances(gathered.takes) if context else None
    return TensorData(norm.transform(gathered), gathered.labels(labels), specs, train=train, seed=seed,
                      groups=groups, context=context, previous=previous)


def train_run(
    model_name: str,
    data: DataBundle,
    *,
    train_takes: Sequence[Take],
    val_takes: Sequence[Take],
    test_takes: Sequence[Take] = (),
    model_config: dict[str, Any] | None = None,
    train_config: TrainConfig | None = None,
    cache: FeatureCache,
    out_dir: str | Path | None = None,
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
    plots: bool | str | Path = True,
    extra_meta: dict[str, Any] | None = None,
    gathered: Gathered | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    keep_model: bool = False,
    on_step: Callable[[float], None] | None = None,
    on_resume: Callable[[int], None] | None = None,
) -> RunResult:
    """Fit ``model_name`` on ``train_takes`` (model selection on ``val_takes``), test on ``test_takes``.

    ``gathered``: inputs already fetched for these takes (the benchmark shares them between
    models with the same inputs); otherwise they are extracted here through ``cache``.
    ``keep_model``: the result holds the trained model and its normaliser (to score it on more data,
    e.g. the benchmark's out-of-domain corpora). ``plots``: write the figures (:func:`write_plots`) into
    ``out_dir`` (True), into that folder (a path: created if missing; the checkpoint folder then holds the
    checkpoint's files only), or not (False). ``on_epoch``, ``on_step``, ``on_resume``: the training's
    progress (:func:`~avemo.training.trainer.fit`).
    """
    import torch

    from avemo.models import count_parameters, create_model

    train_config = train_config or TrainConfig()
    torch.manual_seed(train_config.seed)
    model = create_model(model_name, num_classes=len(data.labels), **(model_config or {}))
    refuse_cut_dialogues(data, model.dialogue_context)
    specs = dict(model.inputs)
    if gathered is None:
        gathered = gather([*train_takes, *val_takes, *test_takes], specs, tables=data.tables, cache=cache,
                          workers=workers, executor=executor, address=address)
    parts = _partition(gathered, (train_takes, val_takes, test_takes))
    if len(parts[0]) == 0:
        raise DatasetError("no training takes have all the model's inputs", data.root)
    check_labels(parts[0], data.labels)
    warn_untrained_labels(parts, data.labels)
    norm = Normalizer.fit(parts[0], specs, speaker_norm=train_config.speaker_norm)
    extraction = {"cache": cache, "workers": workers, "executor": executor, "address": address}
    result, val_m = _fit_and_validate(model, parts, norm, data, train_config, extraction,
                                      run_dir=Path(out_dir) if out_dir is not None else None,
                                      progress={"on_epoch": on_epoch, "on_step": on_step, "on_resume": on_resume})
    test_m = probs = y_test = None
    if len(parts[2]):
        test_d = _tensor_data(parts[2], norm, data.labels, specs, train=False, seed=train_config.seed,
                              context=model.dialogue_context)
        probs = predict_proba(model, test_d, batch_size=train_config.eval_batch_size,
                              memory_gib=train_config.eval_memory_gib)
        y_test = test_d.labels
        test_m = compute_metrics(y_test, probs, data.labels.emotions)
    run = RunResult(
        out_dir=Path(out_dir) if out_dir is not None else None, model_name=model_name,
        params=count_parameters(model), best_epoch=result.best_epoch, train_seconds=result.seconds,
        history=result.history, val=val_m, test=test_m, test_probabilities=probs, test_labels=y_test,
        test_takes=[t.key for t in parts[2].takes], failed=list(gathered.failed),
        compile_seconds=result.compile_seconds, processes=result.processes,
        model=model if keep_model else None, normalizer=norm if keep_model else None,
    )
    if run.out_dir is not None and is_main_process():  # under torchrun, rank 0 writes the checkpoint
        _save_run(run, model, norm, data, parts, train_config, extra_meta)
        if plots is not False:
            write_plots(run, data.labels, run.out_dir if plots is True else Path(plots))
    return run


def warn_untrained_labels(parts: Sequence[Gathered], labels: LabelSet) -> None:
    """One warning line for the labels of the set that no training take has (a labelled folder whose
    only clips of an emotion are of validation or test speakers): the model cannot learn them."""
    trained = {t.emotion for t in parts[0].takes}
    missing = [e for e in labels.emotions if e not in trained]
    if missing:
        elsewhere = Counter(t.emotion for part in parts[1:] for t in part.takes if t.emotion in missing)
        counts = ", ".join(f"{e} ({elsewhere[e]} validation or test take{'' if elsewhere[e] == 1 else 's'})"
                           for e in missing)
        log.warning(f"no training take has emotion {counts}: the model cannot learn "
                    f"{'it' if len(missing) == 1 else 'them'}; give training speakers such clips, or leave "
                    f"{'it' if len(missing) == 1 else 'them'} out of the data")


def _partition(gathered: Gathered, takes: Sequence[Sequence[Take]]) -> list[Gathered]:
    """The gathered inputs of each list of takes (takes missing an input are left out)."""
    index = {t.key: i for i, t in enumerate(gathered.takes)}
    return [gathered.subset([index[t.key] for t in part if t.key in index]) for part in takes]


def _fit_and_validate(model, parts: list[Gathered], norm: Normalizer, data: DataBundle, config: TrainConfig,
                      extraction: dict[str, Any], *, run_dir: Path | None,
                      progress: dict[str, Callable | None]) -> tuple[FitResult, Metrics | None]:
    """Build the training (with perturbed copies) and validation sets, fit, calibrate on validation."""
    specs, seed = dict(model.inputs), config.seed
    train_g, val_g = parts[0], parts[1]
    augmented = [train_g, *_perturbed_copies(train_g.takes, specs, data, config, **extraction)]
    if config.augment.channels.enabled:  # degraded copies of training clips only
        from avemo.training.channel_copies import channel_copies

        augmented.append(channel_copies(train_g, specs, config.augment.channels, cache=extraction["cache"])[0])
    train_all = concat(augmented)
    space = data.corpora.space if data.corpora is not None else None
    weights = {s.corpus: s.weight for s in data.corpora.specs} if data.corpora is not None else None
    made = make_objective(train_all.takes, train_all.labels(data.labels), len(data.labels), config.balance,
                          space=space, corpus_weights=weights)
    objective, groups = made if made is not None else (None, None)
    context = model.dialogue_context
    train_d = _tensor_data(train_all, norm, data.labels, specs, train=config.augment.random_crop, seed=seed,
                           groups=groups, context=context)
    val_d = _tensor_data(val_g, norm, data.labels, specs, train=False, seed=seed, context=context) \
        if len(val_g) else None
    fit_preprocessing(model, train_d)
    fingerprint = {"model": model.build_args, "train": cfg.to_dict(config),
                   "n": [len(train_d), len(val_d) if val_d else 0]}
    result = fit(model, train_d, val_d, config, labels=list(data.labels.emotions), run_dir=run_dir,
                 fingerprint=fingerprint, objective=objective, **progress)
    calibrate(model, val_d)
    val_m = None
    if val_d is not None:
        probs = predict_proba(model, val_d, batch_size=config.eval_batch_size, memory_gib=config.eval_memory_gib)
        val_m = compute_metrics(val_d.labels, probs, data.labels.emotions)
    return result, val_m


def _save_run(run: RunResult, model, norm: Normalizer, data: DataBundle, parts: list[Gathered],
              config: TrainConfig, extra_meta: dict[str, Any] | None) -> None:
    """Write the run's checkpoint (model, statistics, config, data, metrics) and drop its resume state."""
    # the weighting used, not "auto" (the resume fingerprint keeps the config as asked)
    used = dataclasses.replace(config, balance=resolved_balance(config.balance, [t.dataset for t in parts[0].takes]))
    meta = {
        "train": cfg.to_dict(used),
        "data": {
            "dataset": data.dataset,
            # several corpora: each one's root is in corpora[].root; their common folder ("/" for one under
            # /data and one under /tmp) was recorded as ""
            **({"root": recorded_path(data.root), **recorded_reading(data.root, data.labels_csv, data.speaker_pattern)}
               if data.corpora is None else {}),
            "speakers": {name: sorted({t.speaker for t in part.takes})
                         for name, part in zip(("train", "val", "test"), parts, strict=True)},
            "n": {name: len(part) for name, part in zip(("train", "val", "test"), parts, strict=True)},
            # the files' content: a corpus scored later counts its copies of them as seen (seen_in_training)
            "digests": {name: sorted(recording_digests(part.takes)) for name, part in zip(("train", "val"), parts[:2], strict=True)},
            **(data.corpora.to_dict() if data.corpora is not None else {}),
            **({"transcripts": data.transcripts} if data.transcripts else {}),
            # what the run did not use: files the dataset reader could not read, takes without an input
            **({"skipped": [*({"file": recorded_file(f, data.root), "reason": r} for f, r in data.skipped),
                            *({"take": t, "reason": r} for t, r in run.failed)]} if data.skipped or run.failed else {}),
        },
        "metrics": {"best_epoch": run.best_epoch, "params": run.params,
                    "train_seconds": round(run.train_seconds, 2),
                    "val": run.val.to_dict() if run.val else None, "test": run.test.to_dict() if run.test else None,
                    **({"compile_seconds": round(run.compile_seconds, 2)} if run.compile_seconds is not None else {}),
                    # under torchrun: the batch size is per process, the effective batch this many times it
                    **({"processes": run.processes} if run.processes > 1 else {})},
        **(extra_meta or {}),
    }
    tables = {name: {"columns": list(t.columns), "source": recorded_path(t.source)} for name, t in data.tables.items()}
    save_checkpoint(run.out_dir, model, labels=data.labels, normalizer=norm, extra=meta, tables=tables)
    shutil.rmtree(run.out_dir / "last", ignore_errors=True)  # the run is complete: nothing to resume


def _perturbed_copies(takes, specs, data: DataBundle, config: TrainConfig, *, cache, workers, executor, address):
    """Speed- and pitch-perturbed copies of the training takes' audio inputs (``augment.speed`` / ``pitch``)."""
    from avemo.features.base import extractor_class, list_extractors

    audio = [s for s in specs.values() if s.feature in list_extractors() and extractor_class(s.feature).modality == "audio"]
    if not audio:
        return []
    copies = []
    for kind, values in (("speed", config.augment.speed), ("pitch", config.augment.pitch)):
        for value in values:
            g = gather(takes, specs, tables=data.tables, cache=cache, workers=workers, executor=executor,
                       address=address, perturb={kind: value})
            copies.append(g)
    return copies


def write_plots(run: RunResult, labels: LabelSet, out_dir: Path) -> dict[str, Path]:
    from avemo.plots import plot_confusion, plot_curves, plot_roc

    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    if run.history:
        written["curves"] = plot_curves(run.history, out_dir / "curves.png", title=run.model_name,
                                        best_epoch=run.best_epoch)
    if run.test is not None:
        written["confusion"] = plot_confusion(run.test.confusion, labels.emotions, out_dir / "confusion.png",
                                              title=f"{run.model_name}: test speakers")
        written["roc"] = plot_roc(run.test_labels, run.test_probabilities, labels.emotions, out_dir / "roc.png",
                                  title=f"{run.model_name}: test speakers")
    return written


def _split_of(take: Take) -> str | None:
    """The corpus's own partition of ``take`` (``"train"``, ``"dev"``, ``"test"``: MELD), or None."""
    return next((clip.split for clip in take if clip.split), None)


def select_split(data: DataBundle, split_name: str) -> DataBundle:
    """``data`` restricted to the takes of one official split (a DatasetError naming the splits there are)."""
    found = sorted({s for s in map(_split_of, data.takes) if s is not None})
    takes = [t for t in data.takes if _split_of(t) == split_name]
    if not takes:
        raise DatasetError(f"no {split_name!r} takes in the {data.dataset} folder (official splits here: "
                           f"{found or 'none'})", data.root)
    return dataclasses.replace(data, takes=takes)


def resolve_split(
    data: DataBundle,
    *,
    fold: int | None = None,
    plan: str | Path | None = None,
    val_speakers: Sequence[str] | None = None,
    usable: Collection[str] | None = None,
    quiet: bool = False,
) -> tuple[list[Take], list[Take], list[Take], dict[str, Any]]:
    """The train / validation / test takes of a ``train`` command.

    ``usable``: the keys of the takes that have the model's inputs (:func:`~avemo.training.data.gather`;
    a file the reader listed may still fail to decode). A speaker with none of them (its only file
    corrupt) is then left out before the split, so that a generated plan, the default plan's choice
    and the default validation speakers are made of speakers with usable clips (``info``:
    ``speakers_without_usable_takes``); a plan given by name or file is kept as it is. ``quiet``: no
    warning line of the default validation speakers or of a fold's speakers missing from the data (a
    check before the split that says it).

    With ``fold``: that fold of ``plan`` (a built-in plan name or a JSON file; by default the
    smallest built-in plan of the dataset that covers the speakers, :func:`~avemo.datasets.covering_plan`,
    else a 5-fold plan made from them; several corpora: :func:`~avemo.training.corpora.corpora_plan`,
    5 folds of each corpus joined, so that every fold tests and trains speakers of every corpus).
    Without, on a corpus with an official split (MELD): train on ``train``, select on ``dev``,
    test on ``test`` where the folder has it.
    Without, otherwise: every speaker trains except the validation speakers (``val_speakers``, by
    default the last two in sorted order, the last one only where fewer than 4 speakers (with a
    warning), or the last one of each corpus of a multi-corpus run);
    there is no test partition. Speakers of a multi-corpus run are qualified (``emodb:03``); an
    unqualified validation speaker is accepted when one corpus alone has it.
    """
    from avemo.training.corpora import corpus_of, qualify_speakers

    data, left_out = _usable_data(data, usable, keep_all=plan is not None)
    speakers = data.speakers
    if fold is None and plan is None and not val_speakers and any(map(_split_of, data.takes)):
        return _official_split(data)
    if val_speakers and data.corpora is not None:
        val_speakers = qualify_speakers(val_speakers, speakers)
    if fold is None:
        if plan is not None:
            raise ConfigError(f"plan {plan} needs a fold (which of its folds to run)")
        if val_speakers:
            val = list(val_speakers)
        elif data.corpora is not None:
            val = [max(s for s in speakers if corpus_of(s) == c.corpus) for c in data.corpora.specs]
        else:
            val = _default_val_speakers(speakers, quiet=quiet)
        unknown = sorted(set(val) - set(speakers))
        if unknown:  # or in it, but without a take the model can read (CREMA-D audio-only clips, a frame model)
            what = "have no take with every input the model needs" if set(unknown) <= set(left_out) else \
                "are not in the data"
            raise ConfigError(f"validation speakers {', '.join(unknown)} {what} (speakers: {', '.join(speakers)})")
        if len(val) >= len(speakers):
            raise ConfigError(_no_training_speaker(speakers))
        fold_obj = Fold(number=0, test=(), val=tuple(sorted(val)), train=tuple(s for s in speakers if s not in val))
        info = {"fold": None, "val_speakers": list(fold_obj.val)}
    else:
        if val_speakers:
            raise ConfigError("validation speakers cannot be given with a fold (the plan fixes them)")
        plan_obj = _fold_plan(data, plan)
        if not 1 <= fold <= len(plan_obj.folds):
            raise ConfigError(f"fold must be between 1 and {len(plan_obj.folds)} for plan {plan_obj.name}, got {fold}")
        fold_obj = plan_obj.folds[fold - 1]
        info = {"plan": plan_obj.name, "fold": fold, "test_speakers": list(fold_obj.test),
                "val_speakers": list(fold_obj.val)}
    if left_out:
        info["speakers_without_usable_takes"] = left_out
    tr, va, te = split(data.takes, fold_obj)
    if not tr:  # a built-in plan of the whole corpus on a copy with a few of its speakers
        raise ConfigError(f"fold {fold} of plan {info['plan']} trains on speakers {', '.join(fold_obj.train)}, none "
                          f"of which is in the data (speakers: {', '.join(speakers)}); give a plan of these speakers "
                          "(--plan FILE.json), or train without --fold (validation speakers: --val-speakers)")
    for part, takes in (("validation", va), ("test", te)):  # e.g. --speakers without the fold's own
        named = fold_obj.val if part == "validation" else fold_obj.test
        if named and not takes and not quiet:
            log.warning("fold %s of plan %s: none of its %s speakers (%s) is in the data: no %s takes",
                        fold, info["plan"], part, ", ".join(named), part)
    return tr, va, te, info


def _default_val_speakers(speakers: Sequence[str], *, quiet: bool) -> list[str]:
    """The last two speakers, or the last one where two would leave fewer than two to train on (a folder
    of 3 speakers trained on one of them), said in a warning line; with one speaker, that one (refused)."""
    if len(speakers) >= 4 or len(speakers) < 2:
        return list(speakers[-2:])
    val, train = speakers[-1], speakers[:-1]
    if not quiet:
        log.warning("%d speakers: validating on %s only (the default is the last two) and training on %s%s; "
                    "--val-speakers chooses others", len(speakers), val, ", ".join(train),
                    " alone" if len(train) == 1 else "")
    return [val]


def _no_training_speaker(speakers: Sequence[str]) -> str:
    """Why a split without a fold has no training speaker, and what to do."""
    line = f"every speaker ({', '.join(speakers)}) would be a validation speaker"
    if len(speakers) < 2:
        return line + "; a split by speaker needs at least 2 (one trains, one validates): train on more speakers"
    return line + f"; train on more speakers, or name fewer validation speakers (--val-speakers {speakers[-1]})"


def _official_split(data: DataBundle) -> tuple[list[Take], list[Take], list[Take], dict[str, Any]]:
    """:func:`resolve_split` by the corpus's official partitions (MELD's): one-line errors when a corpus
    of ``data`` has none or when the train or dev partition is empty."""
    from avemo.datasets import official_split

    unsplit = sorted({t.dataset for t in data.takes if _split_of(t) is None})
    if unsplit:  # several corpora, MELD and IEMOCAP say: it said "split it by a fold plan", which cuts MELD's dialogues
        split_by = sorted({t.dataset for t in data.takes if _split_of(t) is not None})
        raise DatasetError(f"{', '.join(split_by)} has an official split and {', '.join(unsplit)} has none: "
                           "they are not split by it together; name the validation speakers (--val-speakers; "
                           "every other speaker trains, the official partitions too)", data.root)
    tr, va, te = official_split(data.takes)  # checks that no take or dialogue is in two partitions
    if not tr or not va:
        missing = [name for name, part in (("train", tr), ("dev", va)) if not part]
        found = ", ".join(sorted({s for s in map(_split_of, data.takes) if s}))
        files = ""
        if data.dataset == "meld":  # a CSV may be there without a usable row (only its header, say)
            from avemo.datasets.meld import CSV_NAMES

            files = f"; MELD reads them from {' and '.join(CSV_NAMES[m] for m in missing)}: missing or no usable row"
        raise DatasetError(f"the official split trains on train takes and selects on dev takes: no "
                           f"{' and no '.join(missing)} takes here (only {found}){files}", data.root)
    return tr, va, te, {"split": "official", "train": "train", "val": "dev", "test": "test" if te else None}


def _fold_plan(data: DataBundle, plan: str | Path | None):
    """The fold plan of :func:`resolve_split`: ``plan`` (a built-in name or a JSON file), else the
    default one of ``data``'s speakers."""
    from avemo.datasets import FoldPlan, builtin_plan, covering_plan, make_plan
    from avemo.training.corpora import corpora_plan

    if plan is None and data.corpora is not None:  # every fold holds speakers of every corpus
        return corpora_plan(data.speakers, [c.corpus for c in data.corpora.specs], 5,
                            name=f"{data.dataset}_by_corpus", dataset=data.dataset)
    if plan is None:
        covering = covering_plan(data.dataset, data.speakers)
        if covering is None and len(data.speakers) < 5:  # make_plan said "cannot make 5 folds", naming no way out
            raise ConfigError(f"--fold needs a plan: the default one has 5 folds (one speaker or more tested in each), "
                              f"and the data has {len(data.speakers)} speakers ({', '.join(data.speakers)}); give a "
                              "plan of your own (--plan FILE.json, as src/avemo/datasets/plans/*.json), or train "
                              "without --fold (validation speakers: --val-speakers)")
        return covering or make_plan(data.speakers, 5, n_val=2, name=f"{data.dataset}_5fold", dataset=data.dataset)
    if Path(str(plan)).suffix == ".json":
        return FoldPlan.from_json(plan)
    return builtin_plan(str(plan))


def refuse_unusable(data: DataBundle, gathered: Gathered) -> None:
    """A one-line :class:`DatasetError` when no take of ``data`` has every input the model needs, or,
    with several corpora, no take of one corpus (``gathered``: :func:`~avemo.training.data.gather`'s
    answer for ``data.takes``): text-only data for a model that needs audio, a folder of corrupt
    files. It names the corpus, the modalities its clips carry and the first reasons; without it,
    the split would be made of the speakers that are left, or of none."""
    from avemo.modality import ordered

    corpora = [(c.corpus, c.root) for c in data.corpora.specs] if data.corpora is not None else [(None, data.root)]
    kept = {t.dataset for t in gathered.takes}
    for corpus, root in corpora:
        if (corpus is None and gathered.takes) or corpus in kept:
            continue
        takes = [t for t in data.takes if corpus is None or t.dataset == corpus]
        keys = {t.key for t in takes}
        reasons = "; ".join([r for key, r in gathered.failed if key in keys][:3])
        carried = ", ".join(ordered(m for t in takes for m in t.modalities)) or "nothing"
        where = f"corpus {corpus}: " if corpus is not None else ""
        raise DatasetError(f"{where}no take has every input the model needs; its clips carry {carried} "
                           f"({reasons})", root)


def _usable_data(data: DataBundle, usable: Collection[str] | None, *, keep_all: bool) -> tuple[DataBundle, list[str]]:
    """``data`` without the takes of the speakers that have no usable take (see :func:`resolve_split`),
    and those speakers; ``data`` itself when ``usable`` is None or ``keep_all`` (a plan given)."""
    if usable is None or keep_all:
        return data, []
    keep = {t.speaker for t in data.takes if t.key in usable}
    left_out = [s for s in data.speakers if s not in keep]
    if not left_out:
        return data, []
    return dataclasses.replace(data, takes=[t for t in data.takes if t.speaker in keep]), left_out


def corpora_copies(takes: Sequence[Take], root: Path, *, said: int = 10) -> list[Copies]:
    """The recordings in two corpora of a multi-corpus run (:func:`~avemo.datasets.copies.find_copies_across`)
    among the ``takes`` it trains on (speakers qualified by corpus, labels mapped into the space), each said
    in a warning line as a corpus's own copies are (the first ``said``, then how many more): one recording
    under two speakers is on both sides of a speaker-disjoint or leave-one-corpus-out split."""
    clips: dict[str, list[Clip]] = {}
    for t in takes:
        clips.setdefault(t.dataset, []).extend(
            dataclasses.replace(c, dataset=t.dataset, speaker=t.speaker, emotion=t.emotion) for c in t.clips.values())
    groups = find_copies_across(clips)
    lines = copy_warnings(groups, root)
    for line in lines[:said]:
        log.warning(line)
    if len(lines) > said:
        log.warning(f"{len(lines) - said} more recording(s) are byte-identical files in two corpora "
                    "(the same folder read as two corpora?)")
    return groups


#: datasets whose speaker ids are people of the corpus (RAVDESS actor 01 is one person wherever she is
#: read); a labelled folder's ids are the user's own, and MELD's characters recur across its dialogues
_PEOPLE_IDS = ("ravdess", "crema_d", "emodb", "iemocap")


def refuse_one_person_twice(bundles: Mapping[str, DataBundle]) -> None:
    """A one-line DatasetError when two corpora of one run read the same speakers of one dataset (RAVDESS
    given twice under two names): qualified by corpus (``ravdess:01``, ``rav2:01``) one person would be two
    speakers, and a split could train on her and test on her. It was refused, if at all, only when the
    split put her takes on two sides, as "take ravdess:01-01-01-01-01-01 is in train and val"."""
    first: dict[tuple[str, str], str] = {}
    for corpus, bundle in bundles.items():
        if bundle.dataset not in _PEOPLE_IDS:
            continue
        for speaker in bundle.speakers:
            other = first.setdefault((bundle.dataset, speaker), corpus)
            if other != corpus:
                both = sorted(s for d, s in first if d == bundle.dataset and s in set(bundle.speakers)
                              and first[(d, s)] == other)
                raise DatasetError(f"corpora {other} and {corpus} both read {bundle.dataset} speakers {', '.join(both)}: one "
                                   "person under two corpus names, whom a split could train and test on; give each "
                                   "corpus other speakers (speakers= in --corpora)", bundle.root)


def _unknown_speakers(unknown: Collection[str], present: Collection[str]) -> str:
    """Why ``--speakers`` names speakers without files, and, for one qualified by its corpus as a run of
    several corpora prints it (``emodb:11``), the name it has in one corpus's folder (``11``)."""
    bare = sorted(s.split(":", 1)[1] for s in unknown if ":" in s and s.split(":", 1)[1] in present)
    hint = f"; a corpus's own folder names them without the corpus: --speakers {','.join(bare)}" if bare else ""
    return f"speakers {', '.join(sorted(unknown))} have no files under the folder{hint}"


def load_corpora(specs: Sequence[CorpusSpec], mode: SpaceMode = "shared", *, visual_table=None,
                 cache: FeatureCache | None = None, progress: Callable[[int, int], None] | None = None,
                 dialogue_context: int | None = None):
    """Read every corpus and return a :class:`DataBundle` over the label
    space (``bundle.corpora`` holds the :class:`Corpora`). Each corpus is read as ``avemo train``
    reads one (unknown dataset, a folder without labelled clips: one-line errors); those with
    ``transcribe`` get transcripts by speech recognition through ``cache`` (:func:`load_data`; whatever
    model will read them: ``avemo train`` clears ``transcribe`` for a model that reads no text)."""
    specs = list(specs)
    if len(specs) < 2:
        raise ConfigError("multi-corpus training needs at least two corpora")
    check_corpus_names(specs)
    bundles = {}
    for s in specs:
        try:
            bundles[s.corpus] = load_data(s.dataset, s.root, speakers=s.speakers, labels_csv=s.labels,
                                          speaker_pattern=s.speaker_pattern, visual_table=visual_table,
                                          protocol=s.protocol, media=s.media, transcribe=s.transcribe,
                                          cache=cache, progress=progress, dialogue_context=dialogue_context)
        except AvemoError as exc:  # which entry (two may read one folder): "speakers 99 have no files"
            exc.reason = f"corpus {s.corpus}: {exc.reason}"
            raise
    refuse_one_person_twice(bundles)
    space = build_label_space({c: b.labels for c, b in bundles.items()}, mode)
    takes, left_out, skipped = [], {}, []
    for c, b in bundles.items():
        skipped += b.skipped
        for t in b.takes:
            target = space.maps[c][t.emotion]
            if target is None:
                left_out.setdefault(c, {}).setdefault(t.emotion, 0)
                left_out[c][t.emotion] += 1
                continue
            takes.append(dataclasses.replace(t, dataset=c, speaker=qualify(c, t.speaker), emotion=target))
    for c in bundles:
        if not any(t.dataset == c for t in takes):
            raise DatasetError(f"corpus {c}: no clip has a label of the space ({', '.join(space.labels.emotions)})",
                               bundles[c].root)
    tables = next(iter(bundles.values())).tables
    root = Path(os.path.commonpath([str(Path(s.root).resolve()) for s in specs]))
    bundle = DataBundle("+".join(bundles), root, takes, space.labels, tables, skipped,
                        duplicates=[d for b in bundles.values() for d in b.duplicates],
                        cut_dialogues=[d for b in bundles.values() for d in b.cut_dialogues],
                        copies=[*(g for b in bundles.values() for g in b.copies), *corpora_copies(takes, root)])
    bundle.corpora = Corpora(specs, space, takes, left_out)
    transcribed = {c: b.transcripts for c, b in bundles.items() if b.transcripts}
    bundle.transcripts = {"source": "asr", "corpora": transcribed} if transcribed else None
    return bundle
