"""``avemo benchmark``: every model of a suite cross-validated on its fold plan, with a report."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from avemo.cli.app import app, console, console_err
from avemo.cli.files import _cache
from avemo.cli.inputs import _check_device, _check_tables
from avemo.cli.listing import _print_duplicates, _print_skipped
from avemo.cli.options import CacheOpt, MediaOpt, RootOpt, TableOpt, _at_least_one_worker
from avemo.cli.progress import _extraction_bar, _progress
from avemo.errors import AvemoError

WorkersOpt = Annotated[int, typer.Option("--workers", "-j", callback=_at_least_one_worker,
                                         help="Parallel feature-extraction processes.")]

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
    list[str] | None, typer.Option("--test-corpus", help="DATASET=ROOT or FILE (repeatable): a corpus every (model, "
                                   "fold) run is also scored on, out of domain, as `avemo evaluate` scores a checkpoint "
                                   "(over the labels both share); never trained or selected on. DATASET: a reader "
                                   "(emodb, crema_d, ravdess, folder, meld, iemocap); folder=ROOT reads ROOT/labels.csv "
                                   "or its emotion and speaker folders. FILE: a TOML (or YAML/JSON) file of "
                                   "[\\[corpora]] entries as for `avemo train --corpora`, each a test corpus, with "
                                   "dataset=, root=, name= (its name in the report; default: the dataset), labels=, "
                                   "speaker_pattern=; iemocap: protocol=, media=. Its features are extracted with the "
                                   "models' extractors before training; no visual table is read for it, so a model "
                                   "that needs one is n/a there (a late-fusion model runs on its other experts).")
]

BenchAllowCopiesOpt = Annotated[
    bool, typer.Option("--allow-copies", help="Go on when byte-identical files (one recording) are under two speakers: "
                                              "refused otherwise, as the folds would not be speaker-disjoint for them; "
                                              "the report says so. Also: score a --test-corpus whose files are "
                                              "byte-identical to the suite's (a warning line).")
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
    from avemo.evaluation.benchmark import run_benchmark, write_report
    from avemo.evaluation.suite import load_suite
    from avemo.output_file import prepare_folder, removing_new_folders
    from avemo.training.experiment import refuse_shared_copies

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
        refuse_shared_copies(data, allow=allow_copies, then=" (the report says so)",
                             means="the speaker-disjoint folds would not be speaker-disjoint for them")
    ood = _test_corpora(test_corpus or [], data, allow_copies=allow_copies)
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
        report, title = _bench_names(spec, protocol, label_protocol, [s.number for s in splits])
        command = "avemo " + " ".join(shlex.quote(a) for a in sys.argv[1:])  # global options (-v) included
        json_path, md_path = write_report(results, out_dir, name or report, title=title, command=command,
                                          paper_numbers=spec.papers, notes=spec.notes)
    _print_bench(results, md_path, json_path)


def _bench_splits(spec, data, protocol: str, seeds: list[int], folds: list[int]) -> list:
    """The splits ``avemo benchmark`` runs: the suite's (or random ones, seeded by the first of ``seeds``),
    only the ``folds`` given (--folds) where some are; a fold not in the plan, or one without training or
    test speakers in the data, is refused in one line (the latter naming the folds that can run)."""
    from avemo.evaluation.benchmark import check_splits

    splits = spec.splits(data, protocol, seed=seeds[0] if seeds else 0)
    unknown = sorted(set(folds) - {s.number for s in splits})
    if unknown:
        raise AvemoError(f"--folds {unknown} not in the plan (folds 1..{len(splits)})")
    chosen = [s for s in splits if s.number in folds] if folds else splits
    check_splits(data, chosen, plan=splits, quiet=True)  # which folds can run: of the whole plan
    return chosen


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


def _test_corpora(values: list[str], data, *, allow_copies: bool = False) -> list:
    """``--test-corpus`` values -> the corpora read (one-line errors naming the value: those of
    :func:`_test_corpus_specs`, a missing root, no labelled clip, labels that cannot be compared with the
    suite's, no clip with a scored label, the suite's own folder, a corpus of the suite's dataset that
    shares speakers with it, files byte-identical to the suite's unless ``allow_copies``)."""
    from avemo.evaluation.benchmark import OodCorpus, check_ood
    from avemo.training import load_data

    out = []
    for said, spec in _test_corpus_specs(values):
        if spec.root.resolve() == Path(data.root).expanduser().resolve():
            raise AvemoError(f"--test-corpus {said} is the suite's own corpus, not out of domain")
        try:  # the reader's and the label map's errors name the option too (several --test-corpus may be given)
            corpus = OodCorpus(spec.corpus, load_data(spec.dataset, spec.root, labels_csv=spec.labels,
                                                      speaker_pattern=spec.speaker_pattern, protocol=spec.protocol,
                                                      media=spec.media))
            check_ood(data, [corpus])
        except AvemoError as exc:
            where = "" if exc.path is None or Path(exc.path) == spec.root else f"{exc.path}: "
            raise type(exc)(f"--test-corpus {said}: {where}{exc.reason}") from None
        shared = sorted(set(corpus.data.speakers) & set(data.speakers)) if spec.dataset == data.dataset != "folder" else []
        if shared:
            raise AvemoError(f"--test-corpus {said}: speakers {', '.join(shared[:5])}{' ...' if len(shared) > 5 else ''} are in "
                             "the suite's corpus too, so their clips are trained on: not out of domain")
        _refuse_ood_copies(said, corpus.data, data, allow=allow_copies)
        out.append(corpus)
    return out


def _test_corpus_specs(values: list[str]) -> list[tuple[str, object]]:
    """``--test-corpus`` values -> (how an error names it, its :class:`~avemo.training.corpora.CorpusSpec`):
    ``DATASET=ROOT``, or a corpora file of ``[[corpora]]`` entries read as ``avemo train --corpora`` reads
    them, with the keys that say how a folder is read (:data:`~avemo.training.corpora.TEST_CORPUS_KEYS`:
    ``labels=``, ``speaker_pattern=``, ``name=``...). One-line errors: a malformed value, an unknown
    dataset, a file that cannot be read, an entry key not read here, a path of the file that is not
    there, one name twice."""
    from avemo.datasets.readers import list_datasets
    from avemo.training.corpora import TEST_CORPUS_KEYS, CorpusSpec, check_corpora_paths, read_corpora_file

    out: list[tuple[str, CorpusSpec]] = []
    for value in values:
        dataset, sep, root = value.partition("=")
        file = Path(value).expanduser()
        if file.is_file():
            try:
                specs = read_corpora_file(file, keys=TEST_CORPUS_KEYS)
                check_corpora_paths(specs, file)
            except AvemoError as exc:
                exc.option = "--test-corpus"
                raise
            out += [(f"{value!r} (corpus {s.corpus})", s) for s in specs]
        elif not sep or not dataset or not root:
            raise AvemoError(f"--test-corpus {value!r}: give DATASET=ROOT (e.g. emodb=data/emodb) or a corpora file "
                             "(TOML, YAML or JSON: [[corpora]] entries with dataset=, root=, ...)")
        elif dataset not in list_datasets():
            raise AvemoError(f"--test-corpus {value!r}: unknown dataset {dataset!r}; known: {', '.join(list_datasets())}")
        else:
            out.append((repr(value), CorpusSpec(dataset, Path(root).expanduser())))
        names = [s.corpus for _, s in out]
        if len(set(names)) < len(names):
            raise AvemoError(f"--test-corpus {names[-1]} given twice: give each test corpus its own name= in a "
                             "corpora file")
    return out


def _refuse_ood_copies(said: str, test, data, *, allow: bool) -> None:
    """A one-line refusal when files of a test corpus are byte-identical to files of the suite's corpus
    (:func:`~avemo.datasets.copies.recording_digests`: a RAVDESS recording copied into a labelled folder),
    which the folds train on: not out of domain. ``allow`` (``--allow-copies``): a warning line instead."""
    from avemo.datasets.copies import recording_digests

    suite = recording_digests(data.takes)
    copied = [t for t in test.takes if recording_digests([t]) & suite]
    if not copied:
        return
    first = next(iter(copied[0].clips.values())).path
    line = (f"--test-corpus {said}: {len(copied)} take(s) are byte-identical files of the suite's corpus (e.g. "
            f"{first}), so the folds train on them: not out of domain")
    if not allow:
        raise AvemoError(f"{line}; remove the copies, or give --allow-copies to go on")
    console_err.print(f"[yellow]warning:[/] {escape(line)} (--allow-copies: scored anyway)", soft_wrap=True)


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


def _bench_names(spec, protocol: str, label_protocol: str | None, folds_run: Sequence[int] = ()) -> tuple[str, str]:
    """The default report name and the title of ``avemo benchmark``: the suite's name, with the label
    protocol when it is not the suite's own and ``random`` for random splits; the title is the suite's
    own (its ``title``), the corpus part of it for random splits (the suite's title names its folds),
    and which folds ran when ``folds_run`` (--folds) is not the whole plan: a run of 2 folds was
    titled "5-fold CV" like the whole plan."""
    other_labels = label_protocol if label_protocol not in (None, spec.protocol) else None
    name = "_".join(p for p in (spec.name, other_labels, None if protocol == "speaker" else protocol) if p)
    title = spec.title
    if protocol != "speaker":
        corpus = spec.title.split(":")[0] if ":" in spec.title else spec.name
        title = f"{corpus}: RANDOM-SPLIT CV (speakers on both sides; comparison only)"
    title += f", {other_labels} labels" if other_labels else ""
    planned = len(spec.fold_plan().folds)
    if folds_run and len(folds_run) < planned:
        title += f" -- only fold{'s' if len(folds_run) > 1 else ''} {', '.join(map(str, folds_run))} of {planned} run"
    return name, title


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
