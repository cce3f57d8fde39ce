"""Cross-validation benchmarks: every model of a list, every fold of a speaker-disjoint plan.

:func:`run_benchmark` extracts every feature the models need once (cached, on the chosen
executor), then trains and tests each (model, fold) pair -- model selection on the fold's
validation speakers only -- optionally averaging the probabilities of several seeds (a seed
ensemble), and aggregates: per-fold accuracy, mean ± std of accuracy, macro-F1 and UAR, the
pooled confusion matrix and ROC curves, training curves, parameters and training time.
:func:`write_report` turns the result into ``NAME.json`` and ``NAME.md`` with PNG figures;
:func:`rewrite_report` writes the ``NAME.md`` of a ``NAME.json`` again without training.

``executor="ray"`` runs one Ray task per (model, fold) on a local or remote cluster; the
results are the same as with the local executor for the same seeds.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avemo import config as cfg
from avemo.cache.store import FeatureCache
from avemo.datasets.folds import Fold, Split, split
from avemo.errors import ConfigError, DatasetError
from avemo.extraction.core import each_file_warned_once
from avemo.metrics import compute_metrics, summarise_folds
from avemo.modality import MODALITIES
from avemo.output_file import OutputFile
from avemo.training.config import TrainConfig
from avemo.training.corpora import resolved_balance
from avemo.training.experiment import DataBundle

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchmarkEntry:
    """One row of a benchmark: a registered model with its config and training overrides."""

    name: str
    model: str
    model_config: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    group: str = ""  # e.g. "audio", "video", "late fusion", "model-level fusion"
    note: str = ""


def plan_splits(data: DataBundle, folds: Sequence[Fold]) -> list[Split]:
    """The takes of ``data`` split by each fold of a speaker-disjoint plan (every speaker of the data
    must be in the plan)."""
    return [split(data.takes, f) for f in folds]


def check_splits(data: DataBundle, splits: Sequence[Split], plan: Sequence[Split] | None = None, *,
                 quiet: bool = False) -> None:
    """A one-line DatasetError for the first split without training or test takes (a fold whose speakers
    are not in the data, e.g. a plan of 24 speakers on a folder of a few), naming the folds of the ``plan``
    (default: ``splits``) that have both, before any extraction or training; a warning for a split
    without validation takes (nothing selects the epoch there), unless ``quiet`` (a check before
    :func:`run_benchmark`, which says it)."""
    for s in splits:
        for part, takes in (("training", s.train), ("test", s.test)):
            if not takes:
                runnable = [str(f.number) for f in (plan or splits) if f.train and f.test]
                then = (f"run the folds that have them (--folds {','.join(runnable)})" if runnable else
                        "no fold of the plan has both: give a plan of these speakers")
                raise DatasetError(f"fold {s.number} has no {part} takes: none of its {part} speakers is in the data "
                                   f"(speakers {', '.join(data.speakers)}); {then}", data.root)
    for s in splits:
        if not s.val and not quiet:
            log.warning("fold %d: none of its validation speakers is in the data: no validation takes", s.number)


def random_splits(data: DataBundle, k: int = 5, val_fraction: float = 0.1, seed: int = 0) -> list[Split]:
    """k folds over takes drawn at random, speakers on both sides (as paper 004 evaluates).

    Only for showing the gap to speaker-disjoint numbers; never a reported result on its own.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data.takes))
    parts = np.array_split(order, k)
    splits = []
    for i in range(k):
        rest = np.concatenate([parts[j] for j in range(k) if j != i])
        n_val = max(1, int(round(val_fraction * len(rest))))
        splits.append(Split(train=[data.takes[j] for j in rest[n_val:]], val=[data.takes[j] for j in rest[:n_val]],
                            test=[data.takes[j] for j in parts[i]], number=i + 1))
    return splits


def inner_splits(data: DataBundle, folds: Sequence[Fold]) -> list[Split]:
    """Splits for choosing hyper-parameters without the test speakers (nested, inside each fold).

    For each fold: its *validation* speakers become the inner test set, the ``len(fold.val)``
    training speakers that follow them in sorted order (wrapping around) become the inner
    validation set (early stopping, calibration), and the other training speakers train. The
    fold's test speakers are left out entirely, so a choice made on these scores never sees them.
    """
    from avemo.datasets.scan import speaker_sort_key

    out = []
    for f in folds:
        train = sorted(f.train, key=speaker_sort_key)
        last = max(f.val, key=speaker_sort_key)
        after = [s for s in train if speaker_sort_key(s) > speaker_sort_key(last)]
        ordered = after + [s for s in train if s not in after]
        inner_val = tuple(ordered[: len(f.val)])
        inner = Fold(f.number, test=tuple(f.val), val=inner_val, train=tuple(s for s in train if s not in inner_val))
        kept = [t for t in data.takes if t.speaker not in f.test]  # the fold's test speakers: left out
        out.append(split(kept, inner))
    return out


def summarise_results(rs: Sequence[FoldResult]) -> dict[str, Any]:
    """The per-model numbers of a result file from its fold results (sorted by fold)."""
    acc = [r.metrics["accuracy"] for r in rs]
    f1 = [r.metrics["macro_f1"] for r in rs]
    uar = [r.metrics["uar"] for r in rs]
    auc = [float(np.mean(list(r.metrics["auc"].values()))) for r in rs if r.metrics.get("auc")]
    mean_acc, std_acc = summarise_folds(acc)
    return {
        "fold_accuracy": acc,
        "mean_accuracy": mean_acc,
        "std_accuracy": std_acc,
        "macro_f1": summarise_folds(f1)[0],
        "std_macro_f1": summarise_folds(f1)[1],
        "uar": summarise_folds(uar)[0],
        "std_uar": summarise_folds(uar)[1],
        "fold_macro_f1": f1,
        "fold_uar": uar,
        "fold_n": [len(r.labels) for r in rs],  # test takes of each fold (fewer than the plan's where a feature failed)
        "auc_macro": summarise_folds(auc)[0] if auc else None,
        "params": rs[0].params if rs else 0,
        "train_seconds": round(sum(r.train_seconds for r in rs), 2),
        "best_epochs": [r.best_epochs for r in rs],
        "confusion": np.sum([np.array(r.metrics["confusion"]) for r in rs], axis=0).tolist() if rs else [],
    }


@dataclass
class FoldResult:
    entry: str
    fold: int
    metrics: dict[str, Any]
    probabilities: np.ndarray
    labels: np.ndarray
    history: list[dict[str, float]]
    best_epochs: list[int]
    params: int
    train_seconds: float
    #: out-of-domain scores of this run on each test corpus (:func:`score_ood`), by corpus name
    ood: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class OodCorpus:
    """A corpus that every (model, fold) run of a benchmark is also scored on, out of domain: over
    the labels it shares with the benchmark's corpus (:func:`~avemo.datasets.labels.comparison_map`),
    never trained or selected on. ``name``: its key in the results (the dataset name on the command line)."""

    name: str
    data: DataBundle


_GATHERED: dict[tuple, Any] = {}


def _memoised(key: tuple, make: Callable[[], Any]) -> Any:
    """``make()`` once per ``key`` in this process (a benchmark's gathered inputs, shared by its folds
    and models); at most 9 kept, so that a long-lived Ray worker does not hold every corpus."""
    if key not in _GATHERED:
        if len(_GATHERED) > 8:
            _GATHERED.clear()
        _GATHERED[key] = make()
    return _GATHERED[key]


def _specs_key(specs: Mapping[str, Any]) -> tuple:
    return tuple(sorted((n, repr(s)) for n, s in specs.items()))


def run_fold(entry: BenchmarkEntry, split: Split, data: DataBundle, cache_root: str, base: TrainConfig,
             ood: Sequence[OodCorpus] = ()) -> FoldResult:
    """Train and test one entry on one split (every seed); the probabilities of the seeds are averaged.
    Each seed's model is also run on every clip of each corpus of ``ood`` that can give its inputs,
    and the seeds' mean probabilities scored there (:func:`score_ood`)."""
    from avemo.models import default_inputs
    from avemo.training.data import gather
    from avemo.training.experiment import train_run
    from avemo.training.scoring import model_probabilities

    specs = default_inputs(entry.model, **entry.model_config)
    gathered = _memoised((id(data), _specs_key(specs)),  # the same inputs serve every fold and model that share them
                         lambda: gather(data.takes, specs, tables=data.tables, cache=FeatureCache(cache_root)))
    scoring = _ood_sets(entry, data, ood, cache_root)
    ood_probs: dict[str, list[np.ndarray]] = {name: [] for name in scoring}
    probs, seconds, best, history, params, y = [], 0.0, [], [], 0, None
    for seed in entry.seeds:
        train_cfg = cfg.from_dict(TrainConfig, {**cfg.to_dict(base), **entry.train, "seed": seed})
        run = train_run(entry.model, data, train_takes=split.train, val_takes=split.val, test_takes=split.test,
                        model_config=entry.model_config, train_config=train_cfg, cache=FeatureCache(cache_root),
                        gathered=gathered, plots=False, keep_model=bool(scoring))
        for name, sset in scoring.items():  # the test corpora are only scored: nothing here chooses anything
            ood_probs[name].append(model_probabilities(run.model, run.normalizer, sset))
        probs.append(run.test_probabilities)
        y = run.test_labels
        seconds += run.train_seconds
        best.append(run.best_epoch)
        history = history or run.history
        params = run.params
    mean_probs = np.mean(probs, axis=0)
    metrics = compute_metrics(y, mean_probs, data.labels.emotions).to_dict()
    scores = {name: score_ood(scoring[name], np.mean(p, axis=0)) for name, p in ood_probs.items()}
    return FoldResult(entry.name, split.number, metrics, mean_probs, y, history, best, params, seconds, scores)


def ood_inputs(entry: BenchmarkEntry, corpus: OodCorpus) -> tuple[dict[str, Any] | None, str]:
    """The inputs ``entry``'s model is scored with on ``corpus``, and a note:
    :func:`avemo.training.scoring.scorable_inputs` (``avemo evaluate`` decides the same way)."""
    from avemo.models import default_inputs
    from avemo.training.scoring import scorable_inputs

    specs, _, note = scorable_inputs(default_inputs(entry.model, **entry.model_config), corpus.data)
    return specs, note


def _ood_sets(entry: BenchmarkEntry, data: DataBundle, ood: Sequence[OodCorpus], cache_root: str) -> dict[str, Any]:
    """The :class:`~avemo.training.scoring.ScoringSet` of each corpus of ``ood`` that ``entry`` can run
    on (the inputs gathered once per process for every fold and model that share them)."""
    from avemo.datasets.labels import comparison_map
    from avemo.training.scoring import scoring_set

    out = {}
    for corpus in ood:
        specs, _ = ood_inputs(entry, corpus)
        if specs is None:
            continue
        key = ("ood", corpus.name, str(corpus.data.root), len(corpus.data.takes), tuple(data.labels.emotions),
               _specs_key(specs))  # the suite's labels too: they make the comparison
        out[corpus.name] = _memoised(key, functools.partial(
            scoring_set, comparison_map(data.labels, corpus.data.labels), specs, corpus.data,
            cache=FeatureCache(cache_root)))
    return out


def score_ood(scoring, probabilities: np.ndarray) -> dict[str, Any]:
    """One run's out-of-domain numbers: its (seed-mean) class ``probabilities`` for the takes of
    ``scoring`` scored as ``avemo evaluate`` scores a checkpoint (:func:`avemo.training.scoring.score`)."""
    from avemo.training.scoring import score

    d = score(scoring, probabilities).to_dict()
    return {k: d[k] for k in ("accuracy", "uar", "macro_f1", "weighted_f1", "n", "labels", "confusion", "ece")}


def _local_map(tasks, fn, progress):
    for task in tasks:
        result = fn(*task)
        if progress is not None:
            progress(result)
        yield result


def _protocol(data: DataBundle, splits: Sequence[Split], base: TrainConfig,
              data_options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The benchmark's protocol as its results record it: the data, the folds, the selection and the
    training configuration that ran."""
    return {
        "dataset": data.dataset,
        "takes": len(data.takes),
        "folds": [{"fold": s.number, "train_speakers": sorted({t.speaker for t in s.train}),
                   "val_speakers": sorted({t.speaker for t in s.val}),
                   "test_speakers": sorted({t.speaker for t in s.test}), "test_takes": len(s.test)} for s in splits],
        "selection": _selection(splits),
        # the weighting that ran ("auto" resolved, as a checkpoint records it)
        "corpora": sorted({t.dataset for t in data.takes}),
        "train_config": cfg.to_dict(dataclasses.replace(
            base, balance=resolved_balance(base.balance, [t.dataset for t in data.takes]))),
        "visual_tables": {n: str(t.source) for n, t in data.tables.items()},
        "label_set": data.labels.name,
        "modalities": {m: sum(m in t for t in data.takes) for m in MODALITIES},  # takes with a file (text) of each
        # takes with a row of each visual table (the AU models' video input is the table, not a video file)
        "table_takes": {n: sum(next(iter(t)) in table for t in data.takes) for n, table in data.tables.items()},
        **(data_options or {}),
    }


@each_file_warned_once()  # a file the decoder cut short is warned of once, not again from the cache per input set
def run_benchmark(
    entries: Sequence[BenchmarkEntry],
    data: DataBundle,
    splits: Sequence[Split],
    *,
    cache: FeatureCache,
    train_config: TrainConfig | None = None,
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
    progress: Callable[[FoldResult], None] | None = None,
    data_options: dict[str, Any] | None = None,
    ood: Sequence[OodCorpus] = (),
    extract_progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Cross-validate every entry on every split; returns the aggregated results (JSON-compatible
    except for the arrays under ``"_folds"``, which :func:`write_report` turns into figures).
    ``data_options``: how the data was read and what its folds are (e.g. ``{"media": DIR,
    "fold_notes": [...]}``), recorded in the protocol beside the label set and the takes of each
    modality, and shown in the report. ``ood``: corpora every (model, fold) run is also scored on
    (checked, and their features extracted, before any training); the results then hold
    ``"out_of_domain"`` (each corpus: labels, mapping, counts, skipped files) and each model's
    ``"out_of_domain"`` numbers per corpus (:func:`_ood_summary`). ``extract_progress(corpus, done,
    total)``: after each file the feature extraction of a corpus finishes."""
    from avemo.models.checkpoint import package_versions

    base = train_config or TrainConfig()
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise ConfigError(f"benchmark entries have duplicate names: {names}")
    if executor not in ("local", "ray"):
        raise ConfigError(f"unknown executor {executor!r}; use 'local' or 'ray'")
    check_splits(data, splits)
    corpora = check_ood(data, ood)  # one-line errors before any extraction or training
    t0, load_before = time.perf_counter(), _load()
    failed = _extract_corpora(entries, data, ood, corpora, extract_progress, cache=cache, workers=workers,
                              executor=executor, address=address)
    extract_seconds = time.perf_counter() - t0
    # one task per (entry, fold)
    tasks = [(e, s, data, str(cache.root), base, tuple(ood)) for e in entries for s in splits]
    if executor == "ray":
        from avemo.parallel import ray_map

        results = list(ray_map(run_fold, tasks, address=address, workers=workers, progress=progress))
    else:
        results = list(_local_map(tasks, run_fold, progress))
    folds = {e.name: sorted((r for r in results if r.entry == e.name), key=lambda r: r.fold) for e in entries}
    models = {e.name: _model_result(e, folds[e.name]) for e in entries}
    for e in entries if ood else ():
        models[e.name]["out_of_domain"] = {c.name: _ood_summary(e, c, folds[e.name]) for c in ood}
    return {
        "models": models,
        "labels": list(data.labels.emotions),
        **({"out_of_domain": corpora} if ood else {}),
        "protocol": _protocol(data, splits, base, data_options),
        "extract_seconds": round(extract_seconds, 2),
        # what no fold scores: files the dataset reader could not use, and files an extractor failed on
        "skipped": [{"file": str(p), "reason": r} for p, r in [*data.skipped, *failed]],
        # files set aside as copies of a take read from another file (not unusable: not needed)
        "duplicates": _duplicate_items(data),
        # byte-identical files of different takes (one recording under two speakers or labels, or copied)
        "copies": _copy_items(data),
        "executor": executor,
        "versions": package_versions(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "load": {"before": load_before, "after": _load()}},
        "_folds": folds,
    }


def _extract_corpora(entries: Sequence[BenchmarkEntry], data: DataBundle, ood: Sequence[OodCorpus],
                     corpora: dict[str, dict[str, Any]], progress: Callable[[str, int, int], None] | None,
                     **options: Any) -> list[tuple[str, str]]:
    """:func:`extract_all` of ``data``, then :func:`extract_ood` of each corpus of ``ood`` (its
    skipped files go to ``corpora[name]["skipped"]``); returns the failures of ``data``."""
    def ticks(what: str):
        return None if progress is None else lambda done, total: progress(what, done, total)

    failed = extract_all(entries, data, progress=ticks(data.dataset), **options)
    for corpus in ood:
        corpora[corpus.name]["skipped"] = extract_ood(entries, data, corpus, progress=ticks(corpus.name), **options)
    return failed


def check_ood(data: DataBundle, ood: Sequence[OodCorpus]) -> dict[str, dict[str, Any]]:
    """Each out-of-domain corpus's record for the results (dataset, root, a folder's labels CSV and speaker
    pattern where given, takes, the scored labels and the label map, the clips left out per label), or a
    one-line error: two corpora of one name, a label set that cannot be compared with ``data``'s, no clip
    with a scored label."""
    from avemo.datasets.labels import comparison_map
    from avemo.training.scoring import scored_takes

    names = [c.name for c in ood]
    if len(set(names)) != len(names):
        raise ConfigError(f"test corpora have duplicate names: {names}")
    out = {}
    for corpus in ood:
        comparison = comparison_map(data.labels, corpus.data.labels)
        scored, left_out = scored_takes(comparison, corpus.data)
        read = {"labels_csv": corpus.data.labels_csv and str(corpus.data.labels_csv),
                "speaker_pattern": corpus.data.speaker_pattern}  # how a folder was read, where given
        out[corpus.name] = {"dataset": corpus.data.dataset, "root": str(corpus.data.root),
                            **{key: value for key, value in read.items() if value is not None},
                            "takes": len(corpus.data.takes), "scored_takes": len(scored), **comparison.to_dict(),
                            "left_out": left_out, "skipped": [], "duplicates": _duplicate_items(corpus.data)}
    return out


def extract_ood(entries: Sequence[BenchmarkEntry], data: DataBundle, corpus: OodCorpus, *, cache: FeatureCache,
                **options: Any) -> list[dict[str, str]]:
    """Extract into ``cache`` the features the entries that can run on ``corpus`` need, for its clips
    with a scored label (``options``: workers, executor, address of :func:`extract_all`); returns the
    files the reader or an extractor could not use, with the reason. A one-line DatasetError when no
    scored clip could be read at all."""
    from avemo.datasets.labels import comparison_map
    from avemo.training.scoring import scored_takes

    scored, _ = scored_takes(comparison_map(data.labels, corpus.data.labels), corpus.data)
    runnable = [e for e in entries if ood_inputs(e, corpus)[0] is not None]
    failed = extract_all(runnable, dataclasses.replace(corpus.data, takes=scored), cache=cache, **options)
    bad = {f for f, _ in failed}
    if runnable and failed and all(all(str(c.path) in bad for c in t) for t in scored):
        raise DatasetError(f"no scored clip of {corpus.name} could be read ({failed[0][1]})", corpus.data.root)
    return [{"file": str(f), "reason": r} for f, r in [*corpus.data.skipped, *failed]]


def _copy_items(data: DataBundle) -> list[dict[str, Any]]:
    """The byte-identical files of different takes of ``data``, one item per recording, for a result file."""
    return [{"files": [str(c.path) for c in g.clips], "speakers": [c.speaker for c in g.clips],
             "emotions": [c.emotion for c in g.clips]} for g in data.copies]


def _duplicate_items(data: DataBundle) -> list[dict[str, str]]:
    """The files of ``data`` set aside as copies of a take read from another file, for a result file."""
    return [{"file": str(f), "reason": r} for f, r in data.duplicates]


def _ood_summary(entry: BenchmarkEntry, corpus: OodCorpus, folds: Sequence[FoldResult]) -> dict[str, Any]:
    """One entry's numbers on one out-of-domain corpus over the folds: per fold and mean ± sd of
    accuracy, UAR and macro-F1, the takes scored, the pooled confusion matrix (summed over folds);
    ``{"status": "n/a", "reason": ...}`` when the model cannot run on the corpus."""
    specs, note = ood_inputs(entry, corpus)
    if specs is None:
        return {"status": "n/a", "reason": note}
    per = [f.ood[corpus.name] for f in folds]
    out: dict[str, Any] = {"status": "scored", "inputs": sorted(specs), "note": note,
                           "labels": per[0]["labels"] if per else [], "n": [p["n"] for p in per]}
    for key in ("accuracy", "uar", "macro_f1"):
        values = [p[key] for p in per]
        out[f"fold_{key}"] = values
        out[key], out[f"std_{key}"] = summarise_folds(values) if values else (None, None)
    out["confusion"] = np.sum([np.array(p["confusion"]) for p in per], axis=0).tolist() if per else []
    return out


def _load() -> list[float] | None:
    """The machine's load averages (1, 5, 15 min), None where the system has none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _load_text(results: dict[str, Any]) -> str:
    """`` load average (1/5/15 min) 1.2/1.5/1.6 before, 2.1/1.9/1.7 after;`` (empty for an older result file)."""
    load = results["machine"].get("load") or {}
    parts = [f"{'/'.join(f'{x:g}' for x in load[k])} {k}" for k in ("before", "after") if load.get(k)]
    return f" load average (1/5/15 min) {', '.join(parts)};" if parts else ""


def _selection(splits: Sequence[Split]) -> str:
    """How the splits keep the test data apart, in words for the report: the speakers, or (random
    splits, :func:`random_splits`) only the takes."""
    def speakers(takes) -> set[str]:
        return {t.speaker for t in takes}

    return _selection_of([(speakers(s.train) | speakers(s.val), speakers(s.test)) for s in splits])


def _selection_of(folds: Sequence[tuple[set[str], set[str]]]) -> str:
    """:func:`_selection` from each fold's (training and validation speakers, test speakers)."""
    if all(not seen & test for seen, test in folds):
        return "early stopping and best epoch on the validation speakers; test speakers unseen"
    return ("early stopping and best epoch on validation takes; RANDOM splits: the test speakers' other takes "
            "are trained on (speakers on both sides), not a speaker-independent result")


def _recorded_selection(protocol: dict[str, Any]) -> str:
    """The selection line of a result file's protocol, derived again from the speakers its folds
    record (a report written before :func:`_selection` looked at the splits said "test speakers
    unseen" of random splits too); the recorded words when the folds do not list speakers."""
    folds = protocol.get("folds") or []
    if folds and all("test_speakers" in f for f in folds):
        return _selection_of([(set(f.get("train_speakers", ())) | set(f.get("val_speakers", ())),
                               set(f["test_speakers"])) for f in folds])
    return protocol["selection"]


def extract_all(entries: Sequence[BenchmarkEntry], data: DataBundle, *, cache: FeatureCache, workers: int = 1,
                executor: str = "local", address: str | None = None,
                progress: Callable[[int, int], None] | None = None) -> list[tuple[str, str]]:
    """Every feature any entry's model needs, for every take, extracted once into ``cache`` on the
    executor; returns ``(file, "extractor: reason")`` for each failure (those takes are left out of
    the folds of the models that need the feature). ``progress(done, total)``: after each file."""
    from avemo.extraction import ExtractorSpec, run_extraction
    from avemo.extraction.core import decoder_warnings, not_yet_warned
    from avemo.models import default_inputs
    from avemo.training.scoring import corpus_inputs

    wanted: dict[tuple, tuple[ExtractorSpec, str]] = {}
    for e in entries:  # what the data can give (an out-of-domain corpus may lack a late-fusion model's table)
        for spec in corpus_inputs(default_inputs(e.model, **e.model_config), data)[0].values():
            if spec.feature not in data.tables:
                es = ExtractorSpec.of(spec.feature, **dict(spec.config))
                wanted[(es, spec.modality)] = (es, spec.modality)
    jobs = []
    for modality in MODALITIES:
        specs = [es for es, m in wanted.values() if m == modality]
        if specs:
            clips = [t.clip_for(modality) for t in data.takes]
            jobs.append((sorted({str(c.path) for c in clips if c is not None}), specs))
    total, done = sum(len(paths) for paths, _ in jobs), [0]

    def tick(_outcome) -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    failed: list[tuple[str, str]] = []
    for paths, specs in jobs:
        report = run_extraction(paths, specs, cache=cache, workers=workers, executor=executor, address=address,
                                progress=tick)
        for line in decoder_warnings(not_yet_warned(report.outcomes)):  # the decoder cut a file short (a truncated WAV)
            log.warning(line)
        failed += [(o.path, f"{name}: {reason}") for o in report.failed for name, reason in o.errors.items()]
    return failed


def _model_result(entry: BenchmarkEntry, folds: Sequence[FoldResult]) -> dict[str, Any]:
    """One entry's row of a result file: what it is, then its numbers over the folds."""
    from avemo.models import default_inputs, model_info

    return {
        "model": entry.model,
        "model_config": entry.model_config,
        "train": entry.train,
        "seeds": list(entry.seeds),
        "group": entry.group,
        "note": entry.note,
        "paper": model_info(entry.model)["paper"],
        "inputs": {n: f"{s.feature} {_shape_text(s.shape)}" for n, s in default_inputs(entry.model, **entry.model_config).items()},
        **summarise_results(folds),
    }


def _shape_text(shape: Sequence[int | None]) -> str:
    """An input's shape for a report: ``(T, 40)``, ``T`` for the axis of as many frames as the clip has
    (``None`` in the model's input spec, which the reports printed raw: ``mfcc (None, 40)``)."""
    dims = ["T" if d is None else str(d) for d in shape]
    return f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(dims)})"


@dataclass(frozen=True)
class SvmBaseline:
    """A plain classifier on clip statistics: the floor every model must beat (on RAVDESS-AU).

    Clip features: for each extractor in ``audio`` (name, config), the mean and standard
    deviation over frames of a sequence feature, or a per-clip vector feature as it is (e.g.
    ``whisper_base``), concatenated with every visual table of the data (the AU means) when
    ``tables``. Standardised with training statistics (or per speaker first, ``speaker_norm``);
    then, per value of ``grid``, an RBF SVM (``classifier="svm"``, ``gamma="scale"``) or a
    multinomial logistic regression (``"logreg"``); C is the one with the best accuracy on the
    fold's validation speakers, and that model predicts the test speakers. SVM class scores are
    the softmax of scikit-learn's one-vs-rest decision values (its one-vs-one votes plus a bounded
    confidence), whose argmax is the prediction; logistic regression gives probabilities.
    """

    audio: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = (
        ("mfcc", (("deltas", False), ("n_mfcc", 20))),
        ("logmel", (("n_mels", 64),)),
    )
    grid: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
    speaker_norm: bool = False
    tables: bool = True
    classifier: str = "svm"

    def __post_init__(self) -> None:
        if self.classifier not in ("svm", "logreg"):
            raise ConfigError(f"classifier must be 'svm' or 'logreg', got {self.classifier!r}")
        if not self.audio and not self.tables:
            raise ConfigError("the baseline needs audio features or tables")

    def describe(self) -> str:
        feats = [f"{n}({', '.join(f'{k}={v}' for k, v in c)})" for n, c in self.audio]
        if self.tables:
            feats.append("visual table means")
        model = "RBF SVM" if self.classifier == "svm" else "logistic regression"
        return f"{' + '.join(feats)}; {model}, C in {list(self.grid)} chosen on validation speakers"

    def make(self, c: float):
        if self.classifier == "svm":
            from sklearn.svm import SVC

            return SVC(C=c, kernel="rbf", gamma="scale", decision_function_shape="ovr")
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=c, max_iter=5000)


def svm_baseline(data: DataBundle, splits: Sequence[Split], cache: FeatureCache,
                 config: SvmBaseline = SvmBaseline(), name: str = "svm_floor") -> list[FoldResult]:
    """Cross-validate :class:`SvmBaseline` on ``splits``; one :class:`FoldResult` per split."""
    from avemo.models.inputs import InputSpec
    from avemo.models.normalization import Normalizer
    from avemo.training.data import gather

    specs: dict[str, InputSpec] = {}
    for i, (feature, conf) in enumerate(config.audio):
        specs[f"audio{i}"] = InputSpec("audio", feature, dict(conf), (None, None), "sequence")
    for table in data.tables if config.tables else ():
        specs[f"table_{table}"] = InputSpec("video", table, {}, (None,), "vector")
    gathered = gather(data.takes, specs, tables=data.tables, cache=cache)
    stats = {key: [np.concatenate([a.mean(0), a.std(0)]).astype(np.float32) if a.ndim == 2
                   else np.asarray(a, np.float32).ravel() for a in gathered.inputs[key]] for key in specs}
    vectors = {"x": [np.concatenate([stats[k][i] for k in specs]) for i in range(len(gathered))]}
    flat = type(gathered)(gathered.takes, vectors)
    vec_spec = {"x": InputSpec("audio", "stats", {}, (None,), "vector")}
    index = {t.key: i for i, t in enumerate(flat.takes)}
    out = []
    for fold in splits:
        parts = [flat.subset([index[t.key] for t in takes if t.key in index]) for takes in fold]
        norm = Normalizer.fit(parts[0], vec_spec, speaker_norm=config.speaker_norm)
        x = [np.stack(norm.transform(p)["x"]) for p in parts]
        y = [p.labels(data.labels) for p in parts]
        t0 = time.perf_counter()
        best = None
        for c in config.grid:
            clf = config.make(c).fit(x[0], y[0])
            score = float(np.mean(clf.classes_[clf.decision_function(x[1]).argmax(1)] == y[1]))
            if best is None or score > best[0]:
                best = (score, c, clf)
        _, c, clf = best
        seconds = time.perf_counter() - t0
        if config.classifier == "svm":
            scores = np.full((len(y[2]), len(data.labels)), -1e9)
            scores[:, clf.classes_] = clf.decision_function(x[2])
            probs = np.exp(scores - scores.max(1, keepdims=True))
            probs /= probs.sum(1, keepdims=True)
        else:
            probs = np.zeros((len(y[2]), len(data.labels)))
            probs[:, clf.classes_] = clf.predict_proba(x[2])
        metrics = compute_metrics(y[2], probs, data.labels.emotions).to_dict()
        metrics["C"] = c
        size = int(clf.support_.size) if config.classifier == "svm" else int(clf.coef_.size + clf.intercept_.size)
        out.append(FoldResult(name, fold.number, metrics, probs, y[2], [], [], size, seconds))
    return out


def write_report(
    results: dict[str, Any],
    out_dir: str | Path,
    name: str,
    *,
    title: str,
    command: str,
    paper_numbers: dict[str, str] | None = None,
    notes: Sequence[str] = (),
    sections: Sequence[tuple[str, Sequence[str]]] = (),
    extra: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write ``out_dir/NAME.json``, ``out_dir/NAME.md`` and figures under ``out_dir/NAME/``.

    ``sections``: ``(title, markdown lines)`` placed after the protocol lines, before the table
    (e.g. the answers a benchmark script derives from the results); ``extra``: more JSON-compatible
    results stored in ``NAME.json`` next to ``"models"`` (e.g. the SVM floor, timings).
    """
    out_dir = Path(out_dir)
    (out_dir / name).mkdir(parents=True, exist_ok=True)
    for model_name, m in results["models"].items():
        m["figures"] = _figures(results, model_name, out_dir, name)
    public = {k: v for k, v in results.items() if not k.startswith("_")}
    public["command"] = command
    public.update(extra or {})
    json_path = _write_text(out_dir / f"{name}.json", json.dumps(public, indent=2))
    md = report_markdown(public, name, title=title, paper_numbers=paper_numbers, notes=notes, sections=sections)
    return json_path, _write_text(out_dir / f"{name}.md", md)


def rewrite_report(json_path: str | Path, *, title: str, paper_numbers: dict[str, str] | None = None,
                   notes: Sequence[str] = (), sections: Sequence[tuple[str, Sequence[str]]] = ()) -> Path:
    """Write ``NAME.md`` again next to ``NAME.json`` from the JSON alone: no training, the figures and
    every number as they are (a report written by an older avemo gets the current layout, e.g. its
    training configuration, and a protocol line derived from its folds' speakers). The JSON's
    ``protocol.selection`` is corrected the same way when it disagrees with the folds."""
    json_path = Path(json_path)
    try:
        results = json.loads(json_path.read_text(encoding="utf-8"))
        selection = _recorded_selection(results["protocol"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"not a benchmark result file ({type(exc).__name__}: {exc})", json_path) from None
    if results["protocol"].get("selection") != selection:
        results["protocol"]["selection"] = selection
        _write_text(json_path, json.dumps(results, indent=2))
    md = report_markdown(results, json_path.stem, title=title, paper_numbers=paper_numbers, notes=notes,
                         sections=sections)
    return _write_text(json_path.with_suffix(".md"), md)


def report_markdown(results: dict[str, Any], name: str, *, title: str, paper_numbers: dict[str, str] | None = None,
                    notes: Sequence[str] = (), sections: Sequence[tuple[str, Sequence[str]]] = ()) -> str:
    """The Markdown report of a result file's contents (``NAME.json`` as :func:`write_report` writes
    it: figures and command included): protocol, sections, the model tables, the training
    configuration that ran, notes."""
    protocol = results["protocol"]
    lines = [f"# {title}", "", f"Generated by `{results['command']}`", ""]
    n_folds = len(protocol["folds"])
    lines += [f"- Protocol: {_recorded_selection(protocol)}; {n_folds} fold{'s' if n_folds != 1 else ''}, "
              f"{protocol['takes']} takes of {protocol['dataset']}.",
              *_data_lines(results),
              f"- Machine: {results['machine']['platform']}, {results['machine']['cpus']} CPUs;{_load_text(results)} "
              f"executor {results['executor']}.",
              "- Versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()) + ".",
              f"- Feature extraction (cold or warm cache): {results['extract_seconds']} s.", ""]
    if results.get("skipped"):
        lines[-1:] = [f"- Skipped: {len(results['skipped'])} file(s) that the dataset reader or an extractor could "
                      f"not use, in no fold (listed in `{name}.json`, `skipped`).", ""]
    if results.get("duplicates"):
        lines[-1:] = [f"- Duplicates: {len(results['duplicates'])} file(s) set aside as copies of takes read from "
                      f"another file (listed in `{name}.json`, `duplicates`).", ""]
    lines[-1:] = [*_copy_lines(results.get("copies") or [], name), ""]
    for heading, body in sections:
        lines += [f"## {heading}", "", *body, ""]
    if sections:
        lines += ["## All models", ""]
    lines += _model_tables(results, paper_numbers or {})
    if results.get("out_of_domain"):
        lines += ["", *_ood_lines(results, name)]
    lines += ["", *_training_lines(results)]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


#: what gives a take each modality, for the report's line on the takes (a video file, not the AU table)
_CARRIER = {"audio": "an audio file", "video": "a video file", "text": "a text"}


def _copy_lines(copies: list[dict[str, Any]], name: str) -> list[str]:
    """The report's lines on byte-identical files of different takes: those under two speakers (the
    folds are not speaker-disjoint for them: ``--allow-copies``), then the others (labelling conflicts,
    plain copies counted twice)."""
    shared = [c for c in copies if len({s for s, e in zip(c["speakers"], c["emotions"], strict=True) if e is not None}) > 1]
    lines = []
    if shared:
        lines.append(f"- **Not speaker-disjoint for {len(shared)} recording(s)**: byte-identical files under two "
                     f"speakers (read with --allow-copies), so a fold can test on a recording it trained on "
                     f"(listed in `{name}.json`, `copies`).")
    if len(copies) > len(shared):
        lines.append(f"- Copies: {len(copies) - len(shared)} recording(s) are byte-identical files of two takes "
                     f"of one speaker (counted twice, or labelled twice: listed in `{name}.json`, `copies`).")
    return lines


def _data_lines(results: dict[str, Any]) -> list[str]:
    """The report's lines on the classes, the takes of each modality and the media folder (result
    files of older avemo versions lack them)."""
    protocol, lines = results["protocol"], []
    if "label_set" in protocol:
        labels = results.get("labels", [])
        lines.append(f"- Classes: {protocol['label_set']}, {len(labels)} ({', '.join(labels)}).")
    if "modalities" in protocol:
        have = [f"with {_CARRIER.get(m, m)} {n}" for m, n in protocol["modalities"].items() if n]
        tables = [f"with a row of the visual table {t} {n}" for t, n in protocol.get("table_takes", {}).items()]
        lines.append("- Takes " + ", ".join(have) + "".join(f"; {t}" for t in tables) + ".")
    if protocol.get("media"):
        lines.append(f"- Video: the utterance videos under `{protocol['media']}` (avemo prepare).")
    return lines + [f"- {note}" for note in protocol.get("fold_notes", ())]


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config dict with dotted keys (``augment.speed``)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _settings(values: dict[str, Any]) -> str:
    return ", ".join(f"`{k} = {json.dumps(v)}`" for k, v in _flat(values).items()) or "none"


def _training_lines(results: dict[str, Any]) -> list[str]:
    """The training configuration that ran, enough to reproduce a row: the base ``TrainConfig``
    (what differs from avemo's defaults) and the seeds once, then every model with settings of its
    own (registry model and model config, training settings over the base, seeds)."""
    models = results["models"]
    seed_lists = [tuple(m["seeds"]) for m in models.values() if m.get("seeds")]
    # the most common seed list (of two as common, the shorter): the one stated once
    shared = max(dict.fromkeys(seed_lists), key=lambda s: (seed_lists.count(s), -len(s))) if seed_lists else ()
    lines = ["## Training configuration", ""]
    base = results["protocol"].get("train_config")
    if base is not None:
        default = TrainConfig()
        if results["protocol"].get("corpora"):  # the defaults as they resolve for these corpora ("auto" balance)
            default = dataclasses.replace(default, balance=resolved_balance(default.balance, results["protocol"]["corpora"]))
        defaults = _flat(cfg.to_dict(default))
        differ = {k: v for k, v in _flat(base).items() if k != "seed" and (k not in defaults or defaults[k] != v)}
        lines.append("- Every model: avemo's `TrainConfig` defaults" + (f" except {_settings(differ)}." if differ else "."))
    if shared:
        lines.append(f"- Seeds: {', '.join(map(str, shared))}, unless a row below says otherwise (several seeds: "
                     "the test probabilities of their runs are averaged).")
    base_flat = _flat(base) if base is not None else {}

    def own_train(m: dict[str, Any]) -> dict[str, Any]:
        """A model's training settings that differ from the base (``--epochs 3`` is in both: every row
        was listed as a model with settings of its own, ``epochs = 3``, the base's)."""
        return {k: v for k, v in _flat(m.get("train") or {}).items() if k not in base_flat or base_flat[k] != v}

    own = [(n, m) for n, m in models.items() if m.get("model", n) != n or m.get("model_config") or own_train(m)
           or tuple(m.get("seeds", ())) != shared]
    if own:
        lines += ["", "Models with settings of their own (their training settings apply over the base above):", "",
                  "| model | registry model | model config | training | seeds |", "|---|---|---|---|---|"]
        for n, m in own:
            config = f"`{json.dumps(m['model_config'])}`" if m.get("model_config") else ""
            seeds = ", ".join(map(str, m.get("seeds") or ())) or "none (not trained by epochs)"
            lines.append(f"| {n} | {m.get('model', n)} | {config} | {_settings(own_train(m))} | {seeds} |")
    return lines


def _figures(results: dict[str, Any], model_name: str, out_dir: Path, name: str) -> dict[str, str]:
    """A model's figures under ``out_dir/NAME/`` (paths relative to ``out_dir``): pooled confusion
    matrix and ROC curves, and the training curves of every fold for models trained by epochs."""
    from avemo.plots import plot_confusion, plot_fold_curves, plot_roc

    folds: list[FoldResult] = results["_folds"][model_name]
    if not folds:
        return {}
    fig_dir, labels, m = out_dir / name, results["labels"], results["models"][model_name]
    y = np.concatenate([f.labels for f in folds])
    p = np.concatenate([f.probabilities for f in folds])
    figs = {
        "confusion": plot_confusion(m["confusion"], labels, fig_dir / f"{model_name}_confusion.png",
                                    title=f"{model_name} (all test folds)"),
        "roc": plot_roc(y, p, labels, fig_dir / f"{model_name}_roc.png", title=f"{model_name} (pooled)"),
    }
    if any(f.history for f in folds):  # models trained by epochs (not the SVM floor)
        figs["curves"] = plot_fold_curves([f.history for f in folds], fig_dir / f"{model_name}_curves.png",
                                          title=model_name, folds=[f.fold for f in folds])
    return {k: str(v.relative_to(out_dir)) for k, v in figs.items()}


def _model_tables(results: dict[str, Any], paper_numbers: dict[str, str]) -> list[str]:
    """The report's table of every model (best first) and its table of per-fold accuracies."""
    rows = list(results["models"].items())
    frames = any("(T," in text for _, m in rows for text in m["inputs"].values())
    lines = ["Mean ± std (population) over the folds; macro-F1, UAR and AUC (one-vs-rest ROC AUC averaged over classes) are "
             "fold means; `params`: trainable parameters; `train s`: training time of all folds and seeds "
             "(features cached); figures: pooled confusion matrix, per-class ROC with AUC, training / validation "
             "curves of every fold." + (" Inputs: `T`, as many frames as the clip has." if frames else ""), "",
             "| model | group | inputs | accuracy (mean ± std) | macro-F1 | UAR | AUC | params | train s | paper reports |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for model_name, m in sorted(rows, key=lambda r: -r[1]["mean_accuracy"]):
        inputs = "; ".join(f"{k}: {v}" for k, v in m["inputs"].items())
        links = " ".join(f"[{k}]({v})" for k, v in m["figures"].items())
        lines.append(
            f"| {model_name} {links} | {m['group']} | {inputs} | {_pm(m, 'accuracy')} | "
            f"{100 * m['macro_f1']:.2f} | {100 * m['uar']:.2f} | "
            + (f"{m['auc_macro']:.3f}" if m.get("auc_macro") is not None else "") + " | "
            f"{m['params']:,} | {m['train_seconds']:.0f} | {paper_numbers.get(model_name, '')} |"
        )
    folds = results["protocol"]["folds"]
    table, planned = [], [f.get("test_takes") for f in folds]
    for model_name, m in rows:
        n, cells = m.get("fold_n") or [], []
        for i, accuracy in enumerate(m["fold_accuracy"]):
            fewer = i < len(n) and i < len(planned) and planned[i] is not None and n[i] != planned[i]
            cells.append(f"{100 * accuracy:.1f}" + (f" (n {n[i]})" if fewer else ""))
        table.append(f"| {model_name} | " + " | ".join(cells) + " |")
    marked = any(" (n " in row for row in table)
    lines += ["", *_fold_lines(results["protocol"]),
              "Per-fold accuracy (%" + ("; `n`: a model's test takes where fewer than the fold's" if marked else "")
              + "):", "", "| model | " + " | ".join(f"fold {f['fold']}" for f in folds) + " |",
              "|---|" + "---|" * len(folds), *table]
    return lines


def _fold_lines(protocol: dict[str, Any]) -> list[str]:
    """The report's table of the folds that ran: test and validation speakers of each, and its test takes
    (the speakers were in NAME.json only; result files of older avemo versions lack them, or the takes)."""
    folds = protocol["folds"]
    if not folds or not all("test_speakers" in f for f in folds):
        return []
    if any(set(f["test_speakers"]) & (set(f.get("train_speakers", ())) | set(f.get("val_speakers", ()))) for f in folds):
        return []  # random splits: every speaker on every side (the protocol line says so)
    takes = all("test_takes" in f for f in folds)
    lines = ["Folds (training speakers: the others" + (f"; test takes {sum(f['test_takes'] for f in folds)} of "
                                                       f"{protocol['takes']}" if takes else "") + "):", "",
             "| fold | test speakers | validation speakers |" + (" test takes |" if takes else ""),
             "|---|---|---|" + ("---|" if takes else "")]
    for f in folds:
        lines.append(f"| {f['fold']} | {', '.join(f['test_speakers'])} | {', '.join(f.get('val_speakers', ())) or 'none'} |"
                     + (f" {f['test_takes']} |" if takes else ""))
    return lines + [""]


def mean_sd_text(mean: float, sd: float | None, spec: str = ".2f", sd_spec: str | None = None, unit: str = "") -> str:
    """``mean ± sd`` in percent (``spec``, ``sd_spec``: their formats; ``unit`` after each number, e.g. " %");
    the mean alone when no spread was measured (``sd`` None: one fold, :func:`avemo.metrics.summarise_folds`),
    not "± 0.00"."""
    text = format(100 * mean, spec) + unit
    return text if sd is None else f"{text} ± {format(100 * sd, sd_spec or spec)}{unit}"


def _pm(m: dict[str, Any], key: str) -> str:
    """``m``'s mean ± sd of ``key`` (``mean_accuracy`` / ``std_accuracy``, ``uar`` / ``std_uar``)."""
    return mean_sd_text(m.get(f"mean_{key}", m.get(key)), m.get(f"std_{key}"))


def _ood_lines(results: dict[str, Any], name: str) -> list[str]:
    """The report's "Out of domain" section: each test corpus (scored labels, label map, counts), then
    one row per model: its in-domain accuracy and UAR next to each corpus's UAR and accuracy."""
    corpora = results["out_of_domain"]
    lines = ["## Out of domain", "",
             "Every (model, fold) run of the table above -- its seeds' mean probabilities -- also scored on every clip "
             "of these corpora, never trained or selected on, as `avemo evaluate` scores a checkpoint: over the "
             "labels both sets share (the probabilities of the model's classes summed per scored label, arg max "
             "over them; clips whose label has no partner left out). Mean ± sd over the folds.", ""]
    for corpus, c in corpora.items():
        merged = [f"{s} -> {t}" for side in ("model", "data") for s, t in c["mapping"][side]["map"].items()
                  if t not in (None, s)]
        dropped = [s for s, t in c["mapping"]["model"]["map"].items() if t is None]
        left = ", ".join(f"{e} {n}" for e, n in c["left_out"].items()) or "none"
        lines.append(f"- {corpus} (`{c['root']}`): {c['scored_takes']} of {c['takes']} takes scored over "
                     f"{len(c['labels'])} labels ({', '.join(c['labels'])}; chance UAR {100 / len(c['labels']):.1f}); "
                     f"merged: {', '.join(dict.fromkeys(merged)) or 'none'}; model classes dropped: "
                     f"{', '.join(dropped) or 'none'}; left out: {left}; skipped: {len({i['file'] for i in c['skipped']})} file(s)"
                     + (f"; duplicates: {len(c['duplicates'])} file(s)" if c.get("duplicates") else "")
                     + (f" (listed in `{name}.json`, `out_of_domain`)" if c["skipped"] or c.get("duplicates") else "")
                     + ".")
    heads = [h for corpus in corpora for h in (f"{corpus} UAR", f"{corpus} accuracy")]
    lines += ["", "| model | in-domain accuracy | in-domain UAR | " + " | ".join(heads) + " |",
              "|---|---|---|" + "---|" * len(heads)]
    notes = []
    for model_name, m in sorted(results["models"].items(), key=lambda r: -r[1]["mean_accuracy"]):
        cells = [model_name, _pm(m, "accuracy"), _pm(m, "uar")]
        for corpus in corpora:
            o = (m.get("out_of_domain") or {}).get(corpus)
            if o is None or o["status"] != "scored":
                cells += [f"n/a ({o['reason']})" if o else "n/a (not scored)", "n/a"]
                continue
            mark = ""
            if o.get("note"):
                notes.append(f"- {model_name} on {corpus}: {o['note']}.")
                mark = " *"
            cells += [_pm(o, "uar") + mark, _pm(o, "accuracy") + mark]
        lines.append("| " + " | ".join(cells) + " |")
    if notes:
        lines += ["", "Marked *: scored on the inputs the corpus has:", "", *notes]
    return lines


def _write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (:class:`~avemo.output_file.OutputFile`)."""
    with OutputFile(path) as out:
        out.commit(text)
    return path


__all__ = [
    "BenchmarkEntry",
    "FoldResult",
    "OodCorpus",
    "inner_splits",
    "plan_splits",
    "random_splits",
    "report_markdown",
    "rewrite_report",
    "run_benchmark",
    "run_fold",
    "write_report",
]
