"""Generalisation benchmark (issue 11): the recipe on speakers, languages and recordings it never saw,
next to its in-domain number.

    python benchmarks/generalisation.py [--parts extract,copies,select,crosscorpus,loco,multicorpus,degraded,audio_au,report]
        [--suite benchmarks/generalisation_suite.toml] [--out docs/results] [--work DIR]
        [--data ../shared/data] [--cache DIR] [--workers 2] [--test-fraction F] [--conditions A,B] [--quick]

The suite -- the recipe, the augmentation, the data, the degraded conditions, the targets -- is data:
``benchmarks/generalisation_suite.toml``. Every number is speaker-disjoint and nothing is chosen on a
test corpus, fold or speaker: the recipe's hyper-parameters come from validation data (see the suite
file); validation speakers are always training-side speakers.

Parts (each stores its results under ``--work``, so one part can be rerun alone; ``report`` assembles
whatever is there into ``OUT/generalisation.{md,json}`` and the figures in ``OUT/generalisation/``):

* ``select`` -- how strong the augmentation is (the share of training clips that get degraded
  copies), chosen on **validation speakers**: per RAVDESS fold, the recipe trained with each candidate
  fraction of the suite's ``[augment.select]``, scored on a sample of that fold's validation speakers'
  clips, clean and through every degraded condition (channel seed of its own, babble of the fold's
  training speakers). The fraction with the best mean accuracy over clean and degraded validation
  audio is the choice; the report says whether the suite's ``[augment.channels] fraction`` is it.
* ``crosscorpus`` -- the recipe trained on RAVDESS only (validation speakers 22, 23) and scored on
  EmoDB-dev and on the CREMA-D clips over the labels they share (RAVDESS calm counted as neutral,
  EmoDB boredom left out: :func:`avemo.training.scoring.evaluate_checkpoint`); accuracy, UAR,
  macro-F1, confusion, expected calibration error and reliability diagram; with and without the
  degraded-audio augmentation. Each checkpoint is also scored with test-time mean adaptation
  (``adapt="mean"``: the test corpus's own mean replaces the training mean; unsupervised), stored
  under the results' ``"adapted"`` key (``{variant: {test set: scores}}``; a set too small to adapt
  to holds ``{"refused": reason}``).
* ``loco`` -- leave one corpus out with RAVDESS and EmoDB-dev: train on one, test on the other;
  with and without test-time mean adaptation, as in ``crosscorpus``.
* ``multicorpus`` -- RAVDESS + EmoDB-dev in one label space (:mod:`avemo.training.corpora`), leave one
  EmoDB speaker out (5 folds; validation speakers RAVDESS 22, 23): the estimate of "unseen EmoDB
  speakers".
* ``degraded`` -- the speaker-disjoint 5 folds of RAVDESS (built-in plan ``ravdess_au``); each fold's
  test clips (all, or the ``--test-fraction`` chosen by CRC32 of the clip id) through the suite's
  conditions (babble made of that fold's training speakers only); accuracy per condition, the drop
  from clean on the same clips, the mean drop and the worst condition; models trained without and
  with the augmentation of ``TrainConfig.augment.channels``. The clean test scores of the full folds
  are the in-domain number (RAVDESS 5-fold, audio only). A condition this machine cannot apply (a
  codec its PyAV build lacks: :func:`~avemo.media.channels.applicable_channels`) is logged, skipped,
  left out of the mean drop and named in the report and its JSON (``degraded.unavailable``).
* ``audio_au`` -- audio + AU in domain, next to its degraded-audio figures: on the same RAVDESS
  folds, the suite's ``[audio_au]`` fusion (``late_calibrated``: the recipe as its audio expert,
  fitted in closed form as it trains alone, and ``au_mlp`` on the 35 OpenFace AU means of the
  matching audio-visual take; temperatures and weights fitted on the fold's validation speakers),
  a seed ensemble (mean probabilities), without and with the augmentation (copies degrade the audio
  only; a copy keeps its clip's AU means); scored on the clean test clips and, as in ``degraded``,
  on the same sample of test clips through every condition, the AU means unchanged.
* ``extract`` / ``copies`` -- fill the feature cache ahead of training: the degraded conditions of
  the test clips (on ``--workers`` processes), and the augmentation copies of every training set
  (they can run side by side, in two processes).
* ``report`` -- the report.

``--quick`` runs every part on a few clips with a cheap extractor (the suite's ``[quick]`` table) into
``--out``: the smoke test of ``tests/test_benchmark_generalisation.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
SUITE = REPO / "benchmarks" / "generalisation_suite.toml"
PARTS = ("extract", "copies", "select", "crosscorpus", "loco", "multicorpus", "degraded", "audio_au", "report")
VARIANTS = ("plain", "augmented")

from parts import load, log, parse_parts, run_parts, save, save_merged  # noqa: E402


def pct(x: float | None) -> str:
    return "n/a" if x is None or x != x else f"{100 * x:.1f}"


def pct_sd(mean: float | None, sd: float | None) -> str:
    """``mean ± sd`` as :func:`pct` writes them; the mean alone where no spread was measured (one fold: ``sd``
    None, as :func:`avemo.metrics.summarise_folds` gives it)."""
    from avemo.evaluation.benchmark import mean_sd_text

    return pct(mean) if mean is None or mean != mean else mean_sd_text(mean, sd, ".1f")


# ----------------------------------------------------------------------------- context
def fraction_variant(fraction: float) -> str:
    """The name of the recipe trained with degraded copies of ``fraction`` of the clips (select part)."""
    return f"fraction {fraction:g}"


class Context:
    """The suite, the data (read on first use), the cache, and how to train and score the recipe."""

    def __init__(self, args):
        from avemo import config as cfg
        from avemo.cache import FeatureCache
        from avemo.media.channels import applicable_channels
        from avemo.models.inputs import InputSpec
        from avemo.training.config import ChannelAugmentConfig, TrainConfig

        self.args, self.quick = args, args.quick
        self.variants = [v for v in VARIANTS if v in args.variants.split(",")]
        self.degraded_folds = {int(f) for f in args.degraded_folds.split(",") if f.strip()}
        self.suite = cfg.load_file(args.suite)
        recipe = dict(self.suite["recipe"])
        self.degraded = dict(self.suite["degraded"])
        channels = dict(self.suite["augment"]["channels"])
        self.select = dict(self.suite["augment"]["select"])
        if self.quick:
            q = self.suite["quick"]
            recipe.update(model=q["model"], model_config=q["model_config"], feature=q["feature"], train=q["train"])
            self.degraded["conditions"] = q["conditions"]
            channels.update(q["augment"])
            self.select.update(q["select"])
        if args.test_fraction is not None:
            self.degraded["test_fraction"] = args.test_fraction
        if args.conditions:
            unknown = sorted(set(args.conditions.split(",")) - set(self.degraded["conditions"]))
            if unknown:
                raise SystemExit(f"conditions {unknown} are not in the suite: {self.degraded['conditions']}")
            self.degraded["conditions"] = args.conditions.split(",")
        self.degraded["conditions"], self.unavailable = applicable_channels(self.degraded["conditions"])
        for condition, reason in self.unavailable.items():  # a codec this machine lacks: reported, skipped
            log(f"degraded condition {condition} skipped: {reason}")
        self.model, self.feature = recipe["model"], recipe["feature"]
        self.recipe_override = dict(args.recipe_config)
        self.model_config = {**recipe["model_config"], **self.recipe_override}
        self.train = {plain: cfg.from_dict(TrainConfig, {**recipe["train"], **extra})
                      for plain, extra in (("plain", {}), ("augmented", {"augment": {"channels": channels}}))}
        for fraction in self.select["fractions"]:  # the candidates of the select part
            self.train[fraction_variant(fraction)] = cfg.from_dict(
                TrainConfig, {**recipe["train"], "augment": {"channels": {**channels, "fraction": fraction}}})
        self.channels = cfg.from_dict(ChannelAugmentConfig, channels, where="augment.channels")
        self.cache = FeatureCache(args.cache)
        self.work, self.out, self.workers = args.work, args.out, args.workers
        self.roots = {k: (args.data / v).resolve() for k, v in self.suite["data"].items()
                      if k in ("ravdess", "emodb_dev", "crema_d")}
        self._data: dict[str, Any] = {}
        self.audio_specs = {"audio": InputSpec("audio", self.feature, {}, (None,), "vector")}  # what the recipe reads

    def data(self, name: str):
        """The DataBundle of ``ravdess``, ``emodb`` (EmoDB-dev) or ``crema_d`` (a few clips each with --quick);
        ``ravdess_au``: RAVDESS with the suite's ``[audio_au] visual_table`` (the OpenFace AU means)."""
        if name not in self._data:
            from avemo.training import load_data

            corpus = "ravdess" if name == "ravdess_au" else name
            root = self.roots["emodb_dev" if corpus == "emodb" else corpus]
            table = self.args.data / self.suite["audio_au"]["visual_table"] if name == "ravdess_au" else None
            speakers = self.suite["quick"].get(f"{corpus}_speakers") if self.quick else None
            bundle = load_data(corpus, root, speakers=speakers, visual_table=table)
            if self.quick:
                every = self.suite["quick"].get(f"{corpus}_every", self.suite["quick"]["every"])
                by: dict[str, list] = {}
                for t in sorted(bundle.takes, key=lambda t: t.key):
                    by.setdefault(t.speaker, []).append(t)
                bundle.takes = [t for takes in by.values() for t in takes[::every]]
            self._data[name] = bundle
        return self._data[name]

    def is_degraded(self, fold: int) -> bool:
        """Whether fold ``fold`` is scored on degraded audio and trained with augmentation (``--degraded-folds``)."""
        return not self.degraded_folds or fold in self.degraded_folds

    @property
    def ravdess_val(self) -> list[str]:
        return [self.suite["quick"]["ravdess_speakers"][1]] if self.quick else list(self.suite["data"]["ravdess_val"])

    def ravdess_folds(self):
        """The speaker-disjoint folds of RAVDESS (with --quick: one fold of the quick speakers)."""
        from avemo.datasets import Fold, builtin_plan

        if self.quick:
            s = self.suite["quick"]["ravdess_speakers"]
            return [Fold(1, test=(s[0],), val=(s[1],), train=tuple(s[2:]))]
        return list(builtin_plan(self.suite["data"]["ravdess_plan"]).folds)

    def fit(self, data, train, val, out_dir: Path, variant: str, model: tuple[str, dict] | None = None,
            seed: int | None = None) -> Path:
        """The recipe (or ``model``: name and config) trained on ``train`` (model selection on ``val``)
        with the variant's training config (and ``seed``); the checkpoint folder (reused when a finished
        one is there)."""
        import dataclasses

        from avemo.training import train_run

        name, config = model or (self.model, self.model_config)
        train_config = self.train[variant] if seed is None else dataclasses.replace(self.train[variant], seed=seed)
        if not (out_dir / "checkpoint.json").exists():
            t0 = time.perf_counter()
            train_run(name, data, train_takes=train, val_takes=val, model_config=config,
                      train_config=train_config, cache=self.cache, out_dir=out_dir, workers=self.workers,
                      plots=False)
            log(f"  trained {out_dir.relative_to(self.work)} on {len(train)} takes ({time.perf_counter() - t0:.0f} s)")
        return out_dir

    def score(self, checkpoint: Path | list[Path], data, takes=None, perturb=None) -> dict[str, Any]:
        """:meth:`evaluate`'s scores, as a dict."""
        return self.evaluate(checkpoint, data, takes, perturb).to_dict()

    def evaluate(self, checkpoint: Path | list[Path], data, takes=None, perturb=None):
        """:func:`~avemo.training.scoring.evaluate_checkpoint` on ``takes`` of ``data`` (default: all);
        several checkpoints (a seed ensemble) are scored on their mean probabilities. The
        :class:`~avemo.training.scoring.Evaluation`, with each scored take's probabilities."""
        import dataclasses

        from avemo.metrics import compute_metrics
        from avemo.training.scoring import evaluate_checkpoint

        subset = data if takes is None else dataclasses.replace(data, takes=list(takes))
        evs = [evaluate_checkpoint(c, subset, cache=self.cache, workers=self.workers, perturb=perturb)
               for c in (checkpoint if isinstance(checkpoint, list) else [checkpoint])]
        ev = evs[0]
        if len(evs) > 1:
            if any(e.takes != ev.takes for e in evs):
                raise SystemExit("the ensemble's checkpoints scored different takes")
            probs = np.mean([e.probabilities for e in evs], axis=0)
            ev = dataclasses.replace(ev, probabilities=probs, metrics=compute_metrics(ev.y_true, probs,
                                                                                      ev.metrics.labels))
        return ev

    def score_adapted(self, checkpoint: Path, data) -> dict[str, Any]:
        """``checkpoint`` scored on all of ``data`` with test-time mean adaptation, or ``{"refused": reason}``
        when the set is too small to adapt to."""
        from avemo.errors import DatasetError
        from avemo.training.scoring import evaluate_checkpoint

        try:
            return evaluate_checkpoint(checkpoint, data, cache=self.cache, workers=self.workers, adapt="mean").to_dict()
        except DatasetError as exc:
            return {"refused": exc.reason}


# ----------------------------------------------------------------------------- cross-corpus
def crosscorpus_split(ctx: Context) -> tuple[Any, list, list]:
    """RAVDESS and its cross-corpus training and validation takes: every speaker but the validation
    speakers trains."""
    rav = ctx.data("ravdess")
    return (rav, [t for t in rav.takes if t.speaker not in ctx.ravdess_val],
            [t for t in rav.takes if t.speaker in ctx.ravdess_val])


def crosscorpus_run(ctx: Context, variant: str) -> Path:
    """Where the recipe trained on :func:`crosscorpus_split` with ``variant`` keeps its checkpoint."""
    return ctx.work / "runs" / f"ravdess_{variant}"


def part_crosscorpus(ctx: Context) -> None:
    """RAVDESS-only training, scored on EmoDB-dev and the CREMA-D clips."""
    rav, train, val = crosscorpus_split(ctx)
    out = load(ctx.work / "crosscorpus.pkl", {})
    for variant in ctx.variants:
        ckpt = ctx.fit(rav, train, val, crosscorpus_run(ctx, variant), variant)
        out[variant] = {target: ctx.score(ckpt, ctx.data(target)) for target in ("emodb", "crema_d")}
        adapted = out.setdefault("adapted", {})[variant] = {
            target: ctx.score_adapted(ckpt, ctx.data(target)) for target in ("emodb", "crema_d")}
        log("crosscorpus " + variant + ": " + ", ".join(
            f"{k} UAR {pct(v['uar'])} acc {pct(v['accuracy'])} ECE {v['ece']:.3f}" for k, v in out[variant].items())
            + "; adapted: " + ", ".join(f"{k} {_uar(v)}" for k, v in adapted.items()))
    save_merged(ctx.work / "crosscorpus.pkl", out)


def _uar(e: dict) -> str:
    """An adapted score's UAR for the log, or why it was refused."""
    return f"refused ({e['refused']})" if "refused" in e else f"UAR {pct(e['uar'])}"


def part_loco(ctx: Context) -> None:
    """Leave one corpus out with RAVDESS and EmoDB-dev: train on one, test on the other."""
    (rav, rav_train, rav_val), emo = crosscorpus_split(ctx), ctx.data("emodb")
    emo_val = [emo.speakers[-1]]
    out = load(ctx.work / "loco.pkl", {})
    for variant in ctx.variants:
        to_emodb = ctx.fit(rav, rav_train, rav_val, crosscorpus_run(ctx, variant), variant)
        to_ravdess = ctx.fit(emo, [t for t in emo.takes if t.speaker not in emo_val],
                             [t for t in emo.takes if t.speaker in emo_val],
                             ctx.work / "runs" / f"emodb_{variant}", variant)
        out[variant] = {"ravdess->emodb": ctx.score(to_emodb, emo), "emodb->ravdess": ctx.score(to_ravdess, rav),
                        "emodb_val_speakers": emo_val}
        adapted = out.setdefault("adapted", {})[variant] = {
            "ravdess->emodb": ctx.score_adapted(to_emodb, emo), "emodb->ravdess": ctx.score_adapted(to_ravdess, rav)}
        log("loco " + variant + ": " + ", ".join(
            f"{k} UAR {pct(v['uar'])}" for k, v in out[variant].items() if isinstance(v, dict))
            + "; adapted: " + ", ".join(f"{k} {_uar(v)}" for k, v in adapted.items()))
    save_merged(ctx.work / "loco.pkl", out)


# ----------------------------------------------------------------------------- multi-corpus
def part_multicorpus(ctx: Context) -> None:
    """RAVDESS + EmoDB-dev in one label space, leave one EmoDB speaker out."""
    from avemo.metrics import compute_metrics, expected_calibration_error, summarise_folds
    from avemo.training import train_run
    from avemo.training.corpora import CorpusSpec, qualify
    from avemo.training.experiment import load_corpora
    from avemo.training.scoring import CALIBRATION_BINS

    rav, emo = ctx.data("ravdess"), ctx.data("emodb")
    data = load_corpora([CorpusSpec("ravdess", rav.root, speakers=tuple(rav.speakers)),
                         CorpusSpec("emodb", emo.root, speakers=tuple(emo.speakers))])
    keep = {t.key for t in rav.takes} | {t.key for t in emo.takes}  # the --quick subset of clips
    data.takes = [t for t in data.takes if f"{t.dataset}:{t.take}" in keep or not ctx.quick]
    val_ids = {qualify("ravdess", s) for s in ctx.ravdess_val}
    out = load(ctx.work / "multicorpus.pkl", {"folds": {}})
    out["label_space"] = list(data.labels.emotions)
    for variant in ctx.variants:
        probs, labels, folds = [], [], {}
        for speaker in emo.speakers:
            test_id = qualify("emodb", speaker)
            test = [t for t in data.takes if t.speaker == test_id]
            val = [t for t in data.takes if t.speaker in val_ids]
            train = [t for t in data.takes if t.speaker not in val_ids and t.speaker != test_id]
            run = train_run(ctx.model, data, train_takes=train, val_takes=val, test_takes=test,
                            model_config=ctx.model_config, train_config=ctx.train[variant], cache=ctx.cache,
                            workers=ctx.workers, plots=False)
            folds[speaker] = run.test.to_dict()
            probs.append(run.test_probabilities)
            labels.append(run.test_labels)
            log(f"multicorpus {variant} EmoDB speaker {speaker}: UAR {pct(run.test.uar)} acc {pct(run.test.accuracy)}")
        p, y = np.concatenate(probs), np.concatenate(labels)
        pooled = compute_metrics(y, p, data.labels.emotions).to_dict()
        pooled["ece"] = expected_calibration_error(p, y, CALIBRATION_BINS)
        mean_uar, std_uar = summarise_folds([f["uar"] for f in folds.values()])
        out["folds"][variant] = {"per_speaker": folds, "pooled": pooled, "mean_uar": mean_uar, "std_uar": std_uar}
    save_merged(ctx.work / "multicorpus.pkl", out)


# ----------------------------------------------------------------------------- degraded audio
def babble_talkers(train_takes, seed: int, minimum: int) -> tuple[str, ...]:
    """The babble talkers of a fold: one audio file of each training speaker (drawn with ``seed``),
    and more of them in turn while there are fewer than ``minimum`` (a babble channel's talkers)."""
    by: dict[str, list[str]] = {}
    for t in train_takes:
        by.setdefault(t.speaker, []).append(str(t["audio"].path))
    rng = np.random.default_rng(seed)
    pools = [list(np.array(sorted(files))[rng.permutation(len(files))]) for _, files in sorted(by.items())]
    chosen: list[str] = []
    while any(pools) and (not chosen or len(chosen) < minimum):  # rounds of one file per speaker
        chosen += [str(pool.pop()) for pool in pools if pool]
    return tuple(chosen)


def talkers_needed(conditions) -> int:
    from avemo.media.channels import parse_channel

    return max([getattr(parse_channel(c).config, "talkers", 0) for c in conditions] or [0])


def degraded_test(ctx: Context, test) -> list:
    """The test takes that are degraded: all, or ``test_fraction`` of them by CRC32 of the clip id."""
    return sampled(test, float(ctx.degraded["test_fraction"]))


def sampled(takes, fraction: float) -> list:
    """``fraction`` of ``takes``, chosen by CRC32 of the clip id (the same clips in every run)."""
    from avemo.training.channel_copies import crc32

    return [t for t in takes if crc32(t.key) < fraction * 2**32]


def perturb_of(condition: str, seed: int, talkers: tuple[str, ...]) -> dict[str, Any]:
    from avemo.media.channels import parse_channel

    extra = {"sources": talkers} if parse_channel(condition).needs_sources else {}
    return {"channel": condition, "seed": seed, **extra}


def _folds(ctx: Context, degraded_only: bool = False, name: str = "ravdess"):
    """The RAVDESS folds (only those of ``--degraded-folds`` with ``degraded_only``) and their splits
    (of the takes of ``ctx.data(name)``)."""
    from avemo.datasets import split

    rav = ctx.data(name)
    for fold in ctx.ravdess_folds():
        if not degraded_only or ctx.is_degraded(fold.number):
            yield fold, split(rav.takes, fold, extra="drop")


def _fit(ctx: Context, task: tuple) -> Path:
    return ctx.fit(*task)


def fit_in_parallel(ctx: Context, tasks: list[tuple]) -> None:
    """``ctx.fit`` of every task, on ``--workers`` processes (each trains alone: one torch thread)."""
    todo = [t for t in tasks if not (t[3] / "checkpoint.json").exists()]
    if ctx.workers <= 1 or len(todo) <= 1:
        for task in todo:
            ctx.fit(*task)
        return
    import functools
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(ctx.workers) as pool:
        list(pool.map(functools.partial(_fit, ctx), todo))


def part_extract(ctx: Context) -> None:
    """The degraded conditions of the test clips, ahead of ``degraded`` (on ``--workers`` processes;
    one batch over every fold for a condition that needs no training-fold talkers)."""
    from avemo.training.data import gather

    seed = int(ctx.degraded["seed"])
    folds = [(babble_talkers(train, seed, talkers_needed(ctx.degraded["conditions"])), degraded_test(ctx, test))
             for _fold, (train, _val, test) in _folds(ctx, degraded_only=True)]
    for condition in ctx.degraded["conditions"]:  # condition by condition: an interrupted run has whole ones
        t0 = time.perf_counter()
        batches: dict[str, tuple[dict, list]] = {}
        for talkers, chosen in folds:
            perturb = perturb_of(condition, seed, talkers)
            batches.setdefault(json.dumps(perturb, sort_keys=True), (perturb, []))[1].extend(chosen)
        for perturb, takes in batches.values():
            gather(takes, ctx.audio_specs, cache=ctx.cache, workers=ctx.workers, perturb=perturb)
        log(f"extract {condition}: {sum(len(c) for _, c in folds)} clips ({time.perf_counter() - t0:.0f} s)")


def part_copies(ctx: Context) -> None:
    """The augmentation copies of every RAVDESS training set of ``degraded`` and ``crosscorpus``, ahead
    of their training: the copies :func:`~avemo.training.channel_copies.channel_copies` makes there,
    each extracted once (``--shard I/N``: the I-th of N disjoint shares, for N processes side by side)."""
    sets = [train for _f, (train, _val, _test) in _folds(ctx, degraded_only=True)]
    extract_copies(ctx, [*sets, crosscorpus_split(ctx)[1]])


def extract_copies(ctx: Context, sets: list[list], feature: str | None = None) -> None:
    """The augmentation copies of the training sets ``sets`` through ``feature`` (default: the recipe's
    extractor; each copy extracted once; ``--shard I/N``: the I-th of N disjoint shares)."""
    from avemo.extraction import ExtractorSpec, extract_file
    from avemo.training.channel_copies import plan_copies

    unique = {}
    for train in sets:
        for copy in plan_copies(train, ctx.channels)[0]:
            unique.setdefault((copy.take.key, json.dumps(copy.perturb(ctx.channels.seed), sort_keys=True)), copy)
    index, count = (int(x) for x in ctx.args.shard.split("/"))
    mine = [unique[k] for k in sorted(unique)][index::count]
    t0 = time.perf_counter()
    for n, copy in enumerate(mine, 1):
        spec = ExtractorSpec.of(feature or ctx.feature, perturb=copy.perturb(ctx.channels.seed))
        extract_file(copy.take["audio"].path, [spec.build()], ctx.cache)
        if n % 50 == 0:
            log(f"copies {n} / {len(mine)} ({time.perf_counter() - t0:.0f} s)")
    log(f"copies ({feature or ctx.feature}): {len(mine)} of {len(unique)} ({time.perf_counter() - t0:.0f} s)")


def part_degraded(ctx: Context) -> None:
    """Per fold: the recipe without and with augmentation, scored on the clean test clips; then
    condition by condition (an interrupted run has whole conditions), on the degraded ones."""
    rav = ctx.data("ravdess")
    score_folds(ctx, ctx.work / "degraded.pkl", "ravdess", "degraded",
                lambda n, train, val, v: [(rav, train, val, ctx.work / "runs" / f"fold{n}_{v}", v)])


def score_folds(ctx: Context, path: Path, name: str, tag: str, tasks) -> None:
    """The body of the ``degraded`` and ``audio_au`` parts on the folds of ``ctx.data(name)``:
    ``tasks(fold number, train, val, variant)`` gives the :meth:`Context.fit` arguments of the
    checkpoints scored together (one, or a seed ensemble); results in ``path`` (``{fold: {"scores":
    {variant: {"clean_full" | "clean" | condition: scores}}}}``), logged with ``tag``."""
    res = load(path, {})
    seed = int(ctx.degraded["seed"])
    fit_in_parallel(ctx, [task for fold, (train, val, _test) in _folds(ctx, name=name)
                          for v in ctx.variants if ctx.is_degraded(fold.number) or v == "plain"
                          for task in tasks(fold.number, train, val, v)])
    data = ctx.data(name)
    folds = []
    for fold, (train, val, test) in _folds(ctx, name=name):
        talkers = babble_talkers(train, seed, talkers_needed(ctx.degraded["conditions"]))
        chosen = degraded_test(ctx, test)
        degraded = ctx.is_degraded(fold.number)
        variants = ctx.variants if degraded else [v for v in ctx.variants if v == "plain"]
        ckpts = {v: [ctx.fit(*task) for task in tasks(fold.number, train, val, v)] for v in variants}
        ckpts = {v: c[0] if len(c) == 1 else c for v, c in ckpts.items()}
        entry = res.setdefault(fold.number, {"test_speakers": list(fold.test), "scores": {}})
        if degraded:
            entry.update(talkers=list(talkers), degraded_takes=[t.key for t in chosen])
        for v in variants:
            scores = entry["scores"].setdefault(v, {})
            if "clean_full" not in scores:
                scores["clean_full"] = ctx.score(ckpts[v], data, test)
            if degraded and "clean" not in scores:
                scores["clean"] = ctx.score(ckpts[v], data, chosen)
        save_merged(path, res)
        log(f"{tag} fold {fold.number} clean: " + ", ".join(
            f"{v} {pct(entry['scores'][v]['clean_full']['accuracy'])}" for v in variants))
        if degraded:
            folds.append((entry, ckpts, talkers, chosen))
    for condition in ctx.degraded["conditions"]:
        for entry, ckpts, talkers, chosen in folds:
            for v in ckpts:
                if condition not in entry["scores"][v]:
                    entry["scores"][v][condition] = ctx.score(ckpts[v], data, chosen,
                                                              perturb_of(condition, seed, talkers))
            save_merged(path, res)
        s = degraded_summary(res, [condition])
        log(f"{tag} {condition}: " + ", ".join(
            f"{v} {pct(s[v]['conditions'].get(condition, {}).get('accuracy'))}" for v in ctx.variants))


# ----------------------------------------------------------------------------- audio + AU
def audio_au_model(ctx: Context) -> tuple[str, dict[str, Any]]:
    """The suite's ``[audio_au]`` fusion model and its config, with the recipe as its audio expert."""
    au = ctx.suite["audio_au"]
    return au["model"], {"audio": ctx.model, "audio_config": dict(ctx.model_config), **au["model_config"]}


def audio_au_seeds(ctx: Context) -> list[int]:
    return list((ctx.suite["quick"]["audio_au"] if ctx.quick else ctx.suite["audio_au"])["seeds"])


def part_audio_au(ctx: Context) -> None:
    """Audio + AU on the RAVDESS folds, a seed ensemble per fold and variant, clean and degraded audio."""
    data, model, seeds = ctx.data("ravdess_au"), audio_au_model(ctx), audio_au_seeds(ctx)
    started, load_before = time.strftime("%H:%M"), os.getloadavg()
    runs = load(ctx.work / "audio_au_runs.pkl", [])  # when each run of the part ran, and the load
    if runs and (runs[-1]["model"], runs[-1]["seeds"]) != (model, seeds):  # other checkpoints: score them afresh
        (ctx.work / "audio_au.pkl").unlink(missing_ok=True)
    score_folds(ctx, ctx.work / "audio_au.pkl", "ravdess_au", "audio_au", lambda n, train, val, v: [
        (data, train, val, ctx.work / "runs" / "audio_au" / f"fold{n}_{v}_seed{s}", v, model, s) for s in seeds])
    runs.append({"model": model, "seeds": seeds, "started": started, "ended": time.strftime("%H:%M"),
                 "load_before": load_before, "load_after": os.getloadavg()})
    save(ctx.work / "audio_au_runs.pkl", runs)


# ----------------------------------------------------------------------------- augmentation strength
def validation_sample(ctx: Context, val) -> list:
    """The validation takes the select part scores: ``val_fraction`` of them by CRC32 of ``"clip id/val"``
    (a draw of its own, unrelated to the test sample's)."""
    from avemo.training.channel_copies import crc32

    fraction = float(ctx.select["val_fraction"])
    return [t for t in val if crc32(f"{t.key}/val") < fraction * 2**32]


def part_select(ctx: Context) -> None:
    """Per fold and candidate fraction: the recipe with that augmentation, scored on the fold's
    validation speakers (a sample), clean and through every degraded condition."""
    path = ctx.work / "select.pkl"
    res = load(path, {})
    seed = int(ctx.select["seed"])
    rav = ctx.data("ravdess")
    conditions = ctx.degraded["conditions"]
    for fold, (train, val, _test) in _folds(ctx):
        chosen = validation_sample(ctx, val)
        talkers = babble_talkers(train, seed, talkers_needed(conditions))
        for fraction in ctx.select["fractions"]:
            variant = fraction_variant(fraction)
            ckpt = ctx.fit(rav, train, val, ctx.work / "runs" / "select" / f"fold{fold.number}_{fraction:g}", variant)
            scores = res.setdefault((fold.number, fraction), {"n": len(chosen)})
            for condition in ("clean", *conditions):
                if condition not in scores:
                    perturb = None if condition == "clean" else perturb_of(condition, seed, talkers)
                    scores[condition] = ctx.score(ckpt, rav, chosen, perturb)["accuracy"]
            save_merged(path, res)
            log(f"select fold {fold.number} {variant}: {len(chosen)} validation clips, clean "
                f"{pct(scores['clean'])}, mean drop {100 * _mean_drop(scores, conditions):.1f}")


def _mean_drop(scores: dict, conditions: list[str]) -> float:
    return float(np.mean([scores["clean"] - scores[c] for c in conditions]))


def select_summary(res: dict, fractions: list[float], conditions: list[str]) -> dict[str, Any]:
    """Per candidate fraction (folds with every condition scored): clean accuracy, mean drop and mean
    accuracy over clean and degraded validation audio (means over folds); the choice: the best mean."""
    rows = {}
    for fraction in fractions:
        folds = [s for (_fold, f), s in sorted(res.items()) if f == fraction and all(c in s for c in ("clean", *conditions))]
        if folds:
            rows[fraction] = {
                "folds": len(folds), "clips": sum(s["n"] for s in folds),
                "clean": float(np.mean([s["clean"] for s in folds])),
                "mean_drop": float(np.mean([_mean_drop(s, conditions) for s in folds])),
                "mean_accuracy": float(np.mean([np.mean([s[c] for c in ("clean", *conditions)]) for s in folds])),
            }
    complete = {f: r for f, r in rows.items() if r["folds"] == max(r["folds"] for r in rows.values())}
    return {"candidates": rows, "chosen": max(complete, key=lambda f: complete[f]["mean_accuracy"]) if complete else None}


# ----------------------------------------------------------------------------- report
def _pooled(res: dict, variant: str, key: str) -> tuple[float | None, int, int]:
    """Accuracy pooled over the folds that scored ``key`` (clips-weighted), the number of those folds, clips."""
    rows = [f["scores"][variant][key] for f in res.values() if key in f["scores"].get(variant, {})]
    n = sum(r["n"] for r in rows)
    return (sum(r["accuracy"] * r["n"] for r in rows) / n if n else None), len(rows), n


def degraded_summary(res: dict, conditions: list[str], variants: tuple[str, ...] = VARIANTS) -> dict[str, Any]:
    """Per variant (of ``variants``): clean accuracy (full folds and the degraded clips), accuracy and
    drop per condition (pooled over the folds' degraded clips), the mean drop and the worst condition."""
    from avemo.metrics import summarise_folds

    out = {}
    for v in variants:
        full = [f["scores"][v]["clean_full"] for f in res.values() if "clean_full" in f["scores"].get(v, {})]
        clean, folds, n = _pooled(res, v, "clean")
        per = {}
        for c in conditions:
            acc, k, m = _pooled(res, v, c)
            if acc is not None and k == folds:
                per[c] = {"accuracy": acc, "drop": clean - acc, "n": m}
        drops = {c: r["drop"] for c, r in per.items()}
        worst = max(drops, key=drops.get) if drops else None
        mean_accuracy, std_accuracy = summarise_folds([r["accuracy"] for r in full]) if full else (None, None)
        out[v] = {
            "folds": folds, "n_degraded": n, "clean_degraded_clips": clean,
            "fold_accuracy": [r["accuracy"] for r in full], "fold_uar": [r["uar"] for r in full],
            "fold_macro_f1": [r["macro_f1"] for r in full],
            "mean_accuracy": mean_accuracy, "std_accuracy": std_accuracy,  # std None: one fold, no spread
            "mean_uar": float(np.mean([r["uar"] for r in full])) if full else None,
            "mean_macro_f1": float(np.mean([r["macro_f1"] for r in full])) if full else None,
            "confusion": np.sum([np.array(r["confusion"]) for r in full], axis=0).tolist() if full else [],
            "labels": full[0]["labels"] if full else [],
            "conditions": per, "mean_drop": float(np.mean(list(drops.values()))) if drops else None,
            "worst": worst, "missing": [c for c in conditions if c not in per],
        }
    return out


def _eval_row(name: str, e: dict) -> str:
    if "refused" in e:  # an adapted score on a set too small to adapt to
        return f"| {name} | refused: {e['refused']} | | | | | |"
    return (f"| {name} | {e['n']} | {pct(e['accuracy'])} | {pct(e['uar'])} | {pct(e['macro_f1'])} | "
            f"{e['ece']:.3f} | {', '.join(e['labels'])} |")


ADAPTED = "adapted (test-corpus mean)"


def _adapted_rows(results: dict, variant: str) -> list[str]:
    """The rows of ``variant`` scored with test-time mean adaptation (none for results of an older run)."""
    return [_eval_row(f"{name}, {ADAPTED}", e) for name, e in results.get("adapted", {}).get(variant, {}).items()]


EVAL_HEAD = ["| test set | clips | accuracy | UAR | macro-F1 | ECE | scored labels |", "|---|---|---|---|---|---|---|"]


def _confusion(e: dict) -> list[str]:
    labels = e["labels"]
    lines = ["| true \\ predicted | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    lines += [f"| {lab} | " + " | ".join(str(x) for x in row) + " |" for lab, row in zip(labels, e["confusion"],
                                                                                         strict=True)]
    return lines


def _verdict(values: dict[str, float | None], target: float, above: bool = True) -> str:
    """Each variant's verdict ("plain NOT met, augmented met"): the variants are two recipes, and the
    better of them on the test data is not a result of either."""
    def one(value: float | None) -> str:
        if value is None:
            return "not measured"
        return "met" if (100 * value >= target if above else 100 * value <= target) else "NOT met"

    return ", ".join(f"{v} {one(value)}" for v, value in values.items())


def _report_head(ctx: Context, command: str) -> list[str]:
    """The report's header: command, date, machine, versions, load, recipe, protocol."""
    import report as bench_report

    from avemo.training.scoring import CALIBRATION_BINS

    return ["# Generalisation: cross-corpus, multi-corpus, degraded audio, in-domain", "",
            f"- Command: `{command}` (parts: {', '.join(PARTS[:-1])}; each stores its results under `--work`)",
            f"- Date: {time.strftime('%Y-%m-%d %H:%M')}; machine: {bench_report.machine()}",
            f"- Versions: {bench_report.versions('scikit-learn', 'av', 'pyroomacoustics')}",
            f"- Load average at the report (1/5/15 min): {bench_report.load()} (2 cores shared by several jobs)",
            f"- Recipe: `{ctx.model}` {json.dumps(ctx.model_config)} on `{ctx.feature}`; training "
            f"{json.dumps(ctx.suite['quick' if ctx.quick else 'recipe']['train'])}; augmentation (variant "
            "'augmented'): `TrainConfig.augment.channels` " + json.dumps(dict(vars(ctx.channels))),
            f"- Degraded-audio settings of this report: test fraction {ctx.degraded['test_fraction']}, folds "
            f"{sorted(ctx.degraded_folds) or 'all'}, conditions {', '.join(ctx.degraded['conditions'])}",
            *([f"- Recipe override (`--recipe-config`): {json.dumps(ctx.recipe_override)} on top of the suite's "
               "recipe; the suite's notes at the end describe runs of the suite's own recipe"]
              if ctx.recipe_override else []),
            "- Protocol: every number is speaker-disjoint; validation speakers are training-side speakers; the "
            "recipe's hyper-parameters were chosen on validation data, never on a test fold or speaker (C saw "
            "EmoDB-dev as a validation corpus: see the notes). "
            f"ECE: {CALIBRATION_BINS} equal-width confidence bins.", ""]


def _cross_section(ctx: Context, cross: dict, figures: Path, targets: dict, answers: list[str]) -> list[str]:
    from avemo.metrics import ReliabilityBin
    from avemo.plots import plot_confusion, plot_reliability

    lines = ["## RAVDESS only -> EmoDB-dev and CREMA-D (cross-corpus)", "",
              "Trained on every RAVDESS speaker but the validation speakers "
              f"{ctx.ravdess_val}; scored over the labels each test corpus shares with RAVDESS "
              "(RAVDESS calm counted as neutral, EmoDB boredom left out).", ""]
    for v in (vs := [v for v in VARIANTS if v in cross]):
        lines += [f"**{v}**", "", *EVAL_HEAD]
        for target, e in cross[v].items():
            lines.append(_eval_row(target, e))
            tag = f"ravdess_to_{target}_{v}"
            plot_confusion(e["confusion"], e["labels"], figures / f"{tag}_confusion.png",
                           title=f"RAVDESS -> {target} ({v})")
            bins = [ReliabilityBin(**b) for b in e["reliability"]]
            plot_reliability(bins, figures / f"{tag}_reliability.png", title=f"RAVDESS -> {target} ({v})",
                             ece=e["ece"])
        lines += _adapted_rows(cross, v)
        lines += ["", f"Confusion, EmoDB-dev ({v}):", "", *_confusion(cross[v]["emodb"]), "",
                  f"Figures: `generalisation/ravdess_to_emodb_{v}_confusion.png`, "
                  f"`generalisation/ravdess_to_emodb_{v}_reliability.png` (and `..._crema_d_...`).", ""]
    answers.append(f"- **RAVDESS -> EmoDB-dev UAR** (target >= {targets['ravdess_to_emodb_uar']:.0f} %): "
                   + ", ".join(f"{v} {pct(cross[v]['emodb']['uar'])} %" for v in vs)
                   + f" -- {_verdict({v: cross[v]['emodb']['uar'] for v in vs}, targets['ravdess_to_emodb_uar'])}.")
    adapted = {v: e["emodb"] for v, e in cross.get("adapted", {}).items() if "uar" in e.get("emodb", {})}
    if adapted:
        answers.append(f"- RAVDESS -> EmoDB-dev UAR, {ADAPTED}: " + ", ".join(
            f"{v} {pct(e['uar'])} %" for v, e in adapted.items()) + " (optimistic: see the notes).")
    return lines


def _loco_section(loco: dict) -> list[str]:
    vs = [v for v in VARIANTS if v in loco]
    lines = ["## Leave one corpus out (RAVDESS, EmoDB-dev)", "",
              f"EmoDB-dev trains with validation speaker {loco[vs[0]]['emodb_val_speakers']}.", ""]
    for v in vs:
        lines += [f"**{v}**", "", *EVAL_HEAD]
        lines += [_eval_row(k, e) for k, e in loco[v].items() if isinstance(e, dict)]
        lines += [*_adapted_rows(loco, v), ""]
    return lines


def _multi_section(ctx: Context, multi: dict, targets: dict, answers: list[str]) -> list[str]:
    lines = ["## RAVDESS + EmoDB-dev, leave one EmoDB speaker out (unseen EmoDB speakers)", "",
              f"One label space ({', '.join(multi['label_space'])}); each fold tests one EmoDB-dev speaker "
              f"never seen in training; validation speakers RAVDESS {ctx.ravdess_val}.", "",
              "| variant | " + " | ".join(f"EmoDB {s} UAR" for s in next(iter(multi['folds'].values()))[
                  'per_speaker']) + " | mean UAR | pooled UAR | pooled accuracy | pooled ECE |",
              "|---" * (len(next(iter(multi['folds'].values()))['per_speaker']) + 5) + "|"]
    for v, r in multi["folds"].items():
        lines.append(f"| {v} | " + " | ".join(pct(f["uar"]) for f in r["per_speaker"].values())
                     + f" | {pct_sd(r['mean_uar'], r['std_uar'])} | {pct(r['pooled']['uar'])} | "
                     f"{pct(r['pooled']['accuracy'])} | {r['pooled']['ece']:.3f} |")
    lines.append("")
    answers.append(f"- **Unseen EmoDB speakers UAR** (multi-corpus, leave one EmoDB speaker out; target >= "
                   f"{targets['unseen_emodb_speakers_uar']:.0f} %): " + ", ".join(
                       f"{v} {pct(r['mean_uar'])} % (pooled {pct(r['pooled']['uar'])} %)"
                       for v, r in multi["folds"].items())
                   + f" -- {_verdict({v: r['mean_uar'] for v, r in multi['folds'].items()}, targets['unseen_emodb_speakers_uar'])}.")
    return lines


def _n_full(res: dict) -> int:
    """The clean test clips of the folds (plain variant)."""
    return sum(f["scores"]["plain"]["clean_full"]["n"] for f in res.values() if "clean_full" in f["scores"].get("plain", {}))


def _fold_table(s: dict, vs: list[str], figures: Path, tag: str, what: str) -> list[str]:
    """The in-domain table of :func:`degraded_summary` ``s`` (variants ``vs``), and its confusion figures."""
    from avemo.plots import plot_confusion

    lines = ["| variant | folds | accuracy | per fold | UAR | macro-F1 |", "|---|---|---|---|---|---|"]
    for v in vs:
        r = s[v]
        lines.append(f"| {v} | {len(r['fold_accuracy'])} | {pct_sd(r['mean_accuracy'], r['std_accuracy'])} | "
                     + ", ".join(pct(a) for a in r["fold_accuracy"]) + f" | {pct(r['mean_uar'])} | "
                     f"{pct(r['mean_macro_f1'])} |")
        if r["confusion"]:
            plot_confusion(r["confusion"], r["labels"], figures / f"{tag}_{v}_confusion.png",
                           title=f"RAVDESS 5-fold, {what} ({v})")
    return [*lines, ""]


def _degraded_section(ctx: Context, deg: dict, figures: Path, targets: dict, answers: list[str],
                      audio_au: bool = False) -> tuple[list[str], dict]:
    """The audio-only in-domain and degraded-audio sections (``audio_au``: whether the audio + AU
    section follows, which answers for that combination)."""
    lines: list[str] = []
    conditions = list(ctx.degraded["conditions"])
    s = degraded_summary(deg, conditions)
    lines += ["## In-domain: RAVDESS speaker-disjoint 5-fold, audio only", "",
              f"Built-in plan `{ctx.suite['data']['ravdess_plan']}` (5 folds of 4 test speakers, 2 validation "
              f"speakers from the training speakers); {_n_full(deg)} test clips over the folds.", ""]
    vs = [v for v in VARIANTS if s[v]["fold_accuracy"]]
    lines += _fold_table(s, vs, figures, "ravdess_5fold", "audio only")
    answers.append(f"- **RAVDESS 5-fold, audio only** (target >= {targets['ravdess_5fold_audio']:.0f} %): "
                   + ", ".join(f"{v} {pct(s[v]['mean_accuracy'])} %" for v in vs)
                   + f" over {len(s['plain']['fold_accuracy'])} folds -- "
                   f"{_verdict({v: s[v]['mean_accuracy'] for v in vs}, targets['ravdess_5fold_audio'])}."
                   + ("" if audio_au else " Audio + AU: not run by this benchmark (see `ravdess_au.md`)."))
    fraction = float(ctx.degraded["test_fraction"])
    lines += ["## Degraded audio (RAVDESS folds)", "",
              f"Each fold's test clips ({'all' if fraction >= 1 else f'the {pct(fraction)} % chosen by CRC32 of the clip id'}; "
              f"{s['plain']['n_degraded']} clips over {s['plain']['folds']} folds) through each condition "
              f"(seed {ctx.degraded['seed']}; babble: clips of the fold's training speakers only, one per speaker). "
              "Accuracy pooled over the folds' degraded clips; drop = clean accuracy on the same clips minus the "
              "degraded accuracy (points).", "",
              *_condition_table(s, vs, conditions), *unavailable_lines(ctx.unavailable)]
    drops = {v: s[v]["mean_drop"] for v in vs if s[v]["mean_drop"] is not None}
    if drops:
        answers.append(f"- **Degraded audio mean drop** (target <= {targets['degraded_mean_drop']:.0f} points): "
                       + ", ".join(f"{v} {100 * s[v]['mean_drop']:.1f} (worst {s[v]['worst']})"
                                   for v in vs if s[v]["mean_drop"] is not None)
                       + f" -- {_verdict(drops, targets['degraded_mean_drop'], above=False)}.")
    return lines, s


def unavailable_lines(unavailable: dict[str, str]) -> list[str]:
    """The report's line on the conditions this machine could not apply (none: no line)."""
    if not unavailable:
        return []
    return ["", "Not applied on this machine, hence skipped (not in the mean drop): "
            + "; ".join(f"{c} ({reason})" for c, reason in unavailable.items()) + "."]


def _condition_table(s: dict, vs: list[str], conditions: list[str]) -> list[str]:
    """Accuracy and drop per condition of :func:`degraded_summary` ``s`` (variants ``vs``), then each
    variant's mean drop and worst condition."""
    lines = ["| condition | " + " | ".join(f"{v} accuracy | {v} drop" for v in vs) + " |",
             "|---" * (1 + 2 * len(vs)) + "|",
             "| clean | " + " | ".join(f"{pct(s[v]['clean_degraded_clips'])} | 0.0" for v in vs) + " |"]
    for c in conditions:
        if all(c in s[v]["conditions"] for v in vs):
            lines.append(f"| {c} | " + " | ".join(
                f"{pct(s[v]['conditions'][c]['accuracy'])} | {100 * s[v]['conditions'][c]['drop']:.1f}"
                for v in vs) + " |")
    lines.append("")
    for v in vs:
        r = s[v]
        if r["mean_drop"] is not None:
            lines.append(f"- {v}: mean drop {100 * r['mean_drop']:.1f} points over {len(r['conditions'])} "
                         f"conditions; worst {r['worst']} ({100 * r['conditions'][r['worst']]['drop']:.1f} points)"
                         + (f"; not measured: {', '.join(r['missing'])}" if r["missing"] else "") + ".")
    return [*lines, ""]


def _audio_au_section(ctx: Context, res: dict, runs: list[dict], audio: dict | None, figures: Path, targets: dict,
                      answers: list[str]) -> tuple[list[str], dict]:
    """Audio + AU in domain and on degraded audio; ``audio``: the audio-only summary (for comparison)."""
    conditions = list(ctx.degraded["conditions"])
    s = degraded_summary(res, conditions)
    vs = [v for v in VARIANTS if s[v]["fold_accuracy"]]
    model, config = audio_au_model(ctx)
    seeds = runs[-1]["seeds"] if runs else audio_au_seeds(ctx)
    runs = [r for r in runs if runs and (r["model"], r["seeds"]) == (runs[-1]["model"], seeds)]  # of these results
    lines = ["## In-domain: RAVDESS speaker-disjoint 5-fold, audio + AU", "",
             f"`{model}` {json.dumps(config)}: the recipe as the audio expert (its head fitted in closed form on "
             "all training clips, as it trains alone, then frozen) and `au_mlp` on the 35 OpenFace AU means of "
             f"the matching audio-visual take (`{ctx.suite['audio_au']['visual_table']}`, attached as "
             "`avemo benchmark ravdess_au --visual-table` does); the experts' temperatures and weights fitted on "
             f"each fold's validation speakers; {_seeds(seeds)}. The same plan, labels (the 8 RAVDESS emotions, as the audio-only rows) and "
             f"test clips as above ({_n_full(res)} over the folds); the augmented variant's copies degrade the "
             "audio only and keep their clip's AU means.", "",
             *_fold_table(s, vs, figures, "ravdess_5fold_audio_au", "audio + AU")]
    if audio:
        lines += ["Audio only (the rows above), for comparison: " + ", ".join(
            f"{v} {pct(audio[v]['mean_accuracy'])} %" for v in vs if audio[v]["mean_accuracy"] is not None) + ".", ""]
    lines += ["**Degraded audio, AU means unchanged** (the same test clips, conditions, seeds and babble talkers "
              "as the degraded-audio section above; drop from clean audio + AU on the same clips)", "",
              *_condition_table(s, vs, conditions), *unavailable_lines(ctx.unavailable)]
    lines += ["The AU means stay clean in every condition (a clear face track with degraded audio): these drops "
              "say what the face adds when the sound goes bad, not how the pair does when both degrade.", ""]
    if audio:
        lines += ["Audio only on the same clips: " + ", ".join(
            f"{v} mean drop {100 * audio[v]['mean_drop']:.1f} (worst {audio[v]['worst']})" for v in vs
            if audio[v]["mean_drop"] is not None) + ".", ""]
    lines += [f"Ran {r['started']}-{r['ended']} UTC, load average (1/5/15 min) "
              f"{' / '.join(f'{x:.2f}' for x in r['load_before'])} at the start and "
              f"{' / '.join(f'{x:.2f}' for x in r['load_after'])} at the end (2 shared cores)." for r in runs]
    lines.append("")
    drops = ", ".join(f"{v} {100 * s[v]['mean_drop']:.1f} (worst {s[v]['worst']})"
                      for v in vs if s[v]["mean_drop"] is not None)
    answers.append(f"- **RAVDESS 5-fold, audio + AU** (`{model}`, the recipe + AU means, {_seeds(seeds)}; "
                   f"target >= {targets['ravdess_5fold_audio_au']:.0f} %): "
                   + ", ".join(f"{v} {pct(s[v]['mean_accuracy'])} %" for v in vs)
                   + f" over {len(s['plain']['fold_accuracy'])} folds -- "
                   f"{_verdict({v: s[v]['mean_accuracy'] for v in vs}, targets['ravdess_5fold_audio_au'])}."
                   + (f" Degraded audio, AU unchanged, mean drop: {drops} points." if drops else ""))
    return lines, s


def _seeds(seeds: list[int]) -> str:
    return f"one seed ({seeds[0]})" if len(seeds) == 1 else \
        f"an ensemble of {len(seeds)} seeds ({', '.join(map(str, seeds))}: mean probabilities)"


def _select_section(ctx: Context, select: dict) -> tuple[list[str], dict]:
    s = select_summary(select, ctx.select["fractions"], ctx.degraded["conditions"])
    used = float(ctx.channels.fraction)
    lines = ["## Augmentation strength, chosen on validation speakers", "",
             f"The share of training clips that get {ctx.channels.copies} degraded copies (`augment.channels.fraction`), "
             "per RAVDESS fold trained as in the degraded part and scored on a "
             f"{pct(float(ctx.select['val_fraction']))} % sample of that fold's **validation** speakers' clips, clean and "
             f"through the {len(ctx.degraded['conditions'])} conditions below (channel seed {ctx.select['seed']}; "
             "babble of the fold's training speakers). No test clip is scored here. Means over the folds.", "",
             "| fraction | folds | validation clips | clean | mean drop (points) | mean accuracy, clean and degraded |",
             "|---|---|---|---|---|---|"]
    for fraction, r in s["candidates"].items():
        mark = " (chosen)" if fraction == s["chosen"] else ""
        lines.append(f"| {fraction:g}{mark} | {r['folds']} | {r['clips']} | {pct(r['clean'])} | "
                     f"{100 * r['mean_drop']:.1f} | {pct(r['mean_accuracy'])} |")
    verdict = ("the suite's fraction is the chosen one" if s["chosen"] == used else
               f"the suite uses {used:g}, not the chosen fraction: change `[augment.channels] fraction`")
    lines += ["", f"Choice: the best mean accuracy over clean and degraded validation audio; {verdict}.", ""]
    return lines, {**s, "used": used}


def report_command(script: str) -> str:
    """The command a report names: this process's arguments without ``--parts`` and ``--work`` (which
    parts wrote the results, and where, do not change them)."""
    scratch = {"--parts", "--work"}
    args = [a for i, a in enumerate(sys.argv[1:], 1) if not {a, sys.argv[i - 1]} & scratch]
    return " ".join([f"python benchmarks/{script}", *(shlex.quote(a) for a in args)])


def part_report(ctx: Context) -> None:
    from avemo.models.checkpoint import package_versions

    targets = ctx.suite["targets"]
    cross, loco, multi, select = (load(ctx.work / f"{p}.pkl") for p in ("crosscorpus", "loco", "multicorpus", "select"))
    deg = load(ctx.work / "degraded.pkl", {})
    audio_au = load(ctx.work / "audio_au.pkl", {})
    figures = ctx.out / "generalisation"
    figures.mkdir(parents=True, exist_ok=True)
    command = report_command("generalisation.py")
    head = _report_head(ctx, command)
    summary: dict[str, Any] = {"command": command, "recipe": {"model": ctx.model, "model_config": ctx.model_config,
                                                              "feature": ctx.feature},
                               "augment_channels": vars(ctx.channels), "versions": package_versions(),
                               "targets": targets, "quick": ctx.quick}
    answers: list[str] = []
    lines: list[str] = []
    if select:
        more, summary["select"] = _select_section(ctx, select)
        lines += more
    if cross:
        lines += _cross_section(ctx, cross, figures, targets, answers)
        summary["crosscorpus"] = cross
    if loco:
        lines += _loco_section(loco)
        summary["loco"] = loco
    if multi:
        lines += _multi_section(ctx, multi, targets, answers)
        summary["multicorpus"] = multi
    audio = None
    if deg:
        more, audio = _degraded_section(ctx, deg, figures, targets, answers, audio_au=bool(audio_au))
        lines += more
        summary["degraded"] = {"summary": audio, "folds": deg, "unavailable": ctx.unavailable}
    if audio_au:
        more, s = _audio_au_section(ctx, audio_au, load(ctx.work / "audio_au_runs.pkl", []), audio, figures,
                                    targets, answers)
        lines += more
        summary["audio_au"] = {"model": audio_au_model(ctx), "summary": s, "folds": audio_au}
    missing = [p for p, r in (("crosscorpus", cross), ("loco", loco), ("multicorpus", multi), ("degraded", deg),
                              ("audio_au", audio_au)) if not r]
    missing += [f"{p} ({v})" for p, r in (("crosscorpus", cross), ("loco", loco), ("multicorpus", (multi or {}).get("folds")))
                if r for v in VARIANTS if v not in r]
    if missing:
        answers.append(f"- Not run (no result under `--work` when this report was written): {', '.join(missing)}.")
    notes = list(ctx.suite.get("report", {}).get("notes", []))
    if deg and float(ctx.degraded["test_fraction"]) < 1:
        n = degraded_summary(deg, [])["plain"]["n_degraded"]
        notes.append(f"The degraded conditions were run on {n} test clips (a {pct(float(ctx.degraded['test_fraction']))} % "
                     "sample of each fold's test speakers' clips): one condition's accuracy has a standard error of "
                     f"about {100 * np.sqrt(0.7 * 0.3 / max(n, 1)):.0f} points; the drops are paired (same clips) "
                     "and the mean drop over the conditions is steadier than any one of them.")
    if notes:
        lines += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    text = "\n".join(head + ["## Answers", "", *answers, ""] + lines).rstrip() + "\n"
    from avemo.output_file import OutputFile

    ctx.out.mkdir(parents=True, exist_ok=True)
    with OutputFile(ctx.out / "generalisation.md") as fh:
        fh.commit(text)
    with OutputFile(ctx.out / "generalisation.json") as fh:
        fh.commit(json.dumps(summary, indent=1, default=float) + "\n")
    log(f"wrote {ctx.out / 'generalisation.md'}")


# ----------------------------------------------------------------------------- main
def parser(description: str, parts: tuple[str, ...], default_parts: list[str]) -> argparse.ArgumentParser:
    """The command line of this script (also read by the scripts that build on its :class:`Context`)."""
    from avemo.cache.store import default_cache_dir

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--suite", type=Path, default=SUITE)
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("AVEMO_SHARED_DATA", REPO.parent / "shared" / "data")),
                    help="the shared data folder (the suite's [data] paths are under it)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "results")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "avemo-generalisation",
                    help="where each part stores its results and checkpoints (resumable)")
    ap.add_argument("--cache", type=Path, default=default_cache_dir(), help="feature cache (shared)")
    ap.add_argument("--parts", default=",".join(default_parts), help=f"comma-separated subset of {','.join(parts)}")
    ap.add_argument("--workers", type=int, default=2, help="feature extraction processes")
    ap.add_argument("--test-fraction", type=float, default=None,
                    help="share of each fold's test clips that are degraded (default: the suite's)")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help="the recipe without ('plain') and with ('augmented') the channel augmentation")
    ap.add_argument("--degraded-folds", default="",
                    help="comma-separated RAVDESS folds scored on degraded audio and trained with augmentation "
                         "(default: all); the others give the in-domain clean number only")
    ap.add_argument("--shard", default="0/1", help="copies part: do the I-th of N disjoint shares (I/N)")
    ap.add_argument("--conditions", default="",
                    help="comma-separated subset of the suite's degraded conditions (default: all)")
    ap.add_argument("--recipe-config", type=_json_object, default={},
                    help='JSON object of model-config settings over the suite\'s recipe, e.g. \'{"layer_norm": true}\' '
                         "(a variant of the recipe: give it its own --out and --work)")
    ap.add_argument("--quick", action="store_true", help="a smoke run on a few clips with a cheap extractor")
    return ap


def _json_object(text: str) -> dict[str, Any]:
    """``--recipe-config``: a JSON object, or an argparse error."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"a JSON object is needed, got {text!r}")
    return value


def run(args: argparse.Namespace, parts: tuple[str, ...], scope: dict) -> None:
    """The parts of ``args.parts`` (of ``parts``, functions ``part_<name>`` of ``scope``) on one torch thread."""
    import torch

    torch.set_num_threads(1)  # small linear heads; the cores are shared
    run_parts(parse_parts(args.parts, parts), parts, scope, Context(args))


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__.splitlines()[0], PARTS, [p for p in PARTS if p not in ("extract", "copies")])
    run(ap.parse_args(argv), PARTS, globals())


if __name__ == "__main__":
    main()
