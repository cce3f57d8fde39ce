"""Build the bundled default model (``src/avemo/inference/default_model/``) with the cross-corpus recipe.

The recipe is data (``benchmarks/default_model_recipe.toml``): the zoo audio head and its options,
the corpora (RAVDESS speech audio and EmoDB) in one shared label space, the training config
(corpus balance, degraded copies) and what the calibration is fitted on. Every step runs the
library's multi-corpus training (:func:`avemo.training.experiment.load_corpora`,
:func:`avemo.training.train_run`); nothing here re-implements a model.

1. **In-domain estimate**: speaker-disjoint folds over the RAVDESS speakers (plan ``ravdess_au``:
   5 folds of 4 test speakers); each fold's head trains on the other RAVDESS speakers *and all
   EmoDB speakers*, as the bundle does. The recipe has no setting to choose (C, the features and the
   augmentation were fixed beforehand on validation data), so no validation speakers are carved out.
2. **Unseen speakers of another language**: leave one EmoDB speaker out (both EmoDB folders' clips
   of that speaker are held out); each head trains on all RAVDESS speakers and the other EmoDB speakers.
3. **Calibration** on held-out predictions only: the temperature T (Guo et al. 2017, "On Calibration
   of Modern Neural Networks", §4.2) and the uncertainty threshold tau
   (:mod:`avemo.inference.calibration`) are fitted on the pooled out-of-fold predictions of 1 and 2;
   the expected calibration error before and after is reported per held-out set.
4. **Speaker-normalised head** (recipe ``[speaker_norm]``): the same recipe trained with
   ``TrainConfig.speaker_norm`` (each speaker's embeddings z-normalised with that speaker's own
   statistics), measured as in 1 and 2 on held-out speakers only, each held-out speaker's clips
   normalised with the statistics of all its own clips (both EmoDB folders' clips of one speaker
   together); its own T and tau from its pooled out-of-fold predictions. **How many clips are needed**:
   on the unseen-speaker folds, the held-out speaker's statistics from k random clips of it (recipe
   ``k_clips``, ``draws``, ``seed``) and all its clips scored; reported, not used to choose
   (``min_clips`` is fixed in the recipe).
5. **Degraded audio** (recipe ``[degraded]``): each in-domain fold's main head on that fold's RAVDESS
   test clips, the generalisation suite's sample, clean and through the suite's conditions, with its
   functions (:mod:`generalisation`: babble talkers, sample, perturbation), so the degraded features
   are the suite's feature-cache entries; accuracy per condition, drop from clean, mean drop, worst.
6. **Final heads** on every clip of every corpus (``OUT/audio``, ``OUT/audio_spknorm``); the main head's
   weights are compared with those already in ``OUT`` (bitwise, and max abs difference); the
   **unseen-corpus check**: the final main head on the CREMA-D clips (other actors, other sentences,
   compressed audio), accuracy, UAR and ECE at T = 1 and at the fitted T. No choice is made on these
   clips; their actors have fewer clips than ``min_clips``, so the speaker-normalised head is not
   scored on them.
7. ``OUT/model.json`` (bundle configuration with 6 labels, T, tau, the VAD speech share and least
   seconds of speech (``min_speech``, chosen by ``benchmarks/short_speech.py``), the crowd
   detector already in ``OUT`` and ``speaker_norm``, plus the metrics and provenance) and the generated
   blocks of ``OUT/model_card.md`` (between its ``<!-- NAME:begin -->`` / ``<!-- NAME:end -->`` markers:
   ``build``, ``degraded``, ``spknorm``).

    python benchmarks/build_default_model.py [--recipe benchmarks/default_model_recipe.toml]
        [--cache DIR] [--workers 1] [--skip-estimates | --estimates-without-copies] [--reuse-main-estimates]
        [--skip-degraded | --degraded-only] [--degraded-conditions C1,C2] [--report-only | --abstention-only]

``--estimates-without-copies`` trains the held-out estimates' heads without the degraded copies
(the final heads keep them). A babble copy mixes clips of the *training* speakers, so every fold
needs its own babble copies (about 350 more Whisper passes per fold than the final head);
where that is too slow, this flag estimates the recipe without the copies and says so in
``model.json`` and the card. ``--reuse-main-estimates`` keeps the main head's estimates of the
``model.json`` in ``OUT`` (valid only while the head is the same: the build stops when its weights
differ), and with ``--skip-degraded`` its degraded-audio figures too; ``--degraded-only`` adds the degraded-audio figures to an existing bundle.
``--report-only`` rewrites the card's generated blocks from the ``model.json`` already in ``OUT``;
``--abstention-only`` writes the recipe's ``[calibration]`` gates (``speech_share``, ``min_speech``: no
training depends on them) into it first.
The video weight is not fitted (no labelled video of the target domain exists in the project; the
real clips are the test set): it is a fixed choice, ``--video-weight``, justified in the model card.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "src" / "avemo" / "inference" / "default_model"
RECIPE = Path(__file__).resolve().parent / "default_model_recipe.toml"
#: the recipe's top-level keys beside [[corpora]], all read here (the corpora reader refuses any other)
RECIPE_KEYS = ("audio_model", "model_config", "label_space", "train", "speaker_norm", "estimate", "degraded",
               "calibration")
SPKNORM_DIR = "audio_spknorm"  # the speaker-normalised head's folder in the bundle


def bare(speaker: str) -> str:
    """The corpus's own speaker id of a qualified one (``"emodb:03"`` -> ``"03"``)."""
    from avemo.training.corpora import QUALIFIER

    return speaker.split(QUALIFIER, 1)[1]


def reader_of(data) -> dict[str, str]:
    """Corpus name -> the dataset reader it was read with."""
    return {s.corpus: s.dataset for s in data.corpora.specs}


def heldout_sets(data, estimate: dict) -> list[tuple[str, str, str, list]]:
    """``(estimate, fold name, fold id, test takes)`` of the in-domain folds (id: the plan's fold
    number) and the leave-one-speaker-out folds (id: the speaker)."""
    from avemo.datasets import builtin_plan

    readers = reader_of(data)
    out = []
    plan = builtin_plan(estimate["ravdess_plan"])
    for fold in plan.folds:
        test = [t for t in data.takes if readers[t.dataset] == plan.dataset and bare(t.speaker) in fold.test]
        out.append(("in_domain", f"fold {fold.number}: {plan.dataset} {', '.join(fold.test)}", str(fold.number), test))
    held = estimate["leave_one_out"]
    for speaker in sorted({bare(t.speaker) for t in data.takes if readers[t.dataset] == held}):
        test = [t for t in data.takes if readers[t.dataset] == held and bare(t.speaker) == speaker]
        out.append(("unseen_speakers", f"{held} {speaker}", speaker, test))
    return out


def scored(probs: np.ndarray, y: np.ndarray, labels, temperature: float) -> dict:
    """Accuracy, macro-F1, UAR, confusion and ECE at T = 1 and at ``temperature``."""
    from avemo.inference.calibration import scaled
    from avemo.metrics import compute_metrics, expected_calibration_error

    log_p = np.log(np.clip(probs, 1e-12, 1.0))
    m = compute_metrics(y, probs, labels).to_dict()
    return {**{k: m[k] for k in ("accuracy", "macro_f1", "uar", "n", "confusion", "labels")},
            "ece_t1": expected_calibration_error(probs, y),
            "ece_t": expected_calibration_error(scaled(log_p, temperature), y)}


def estimate(args, data, gathered, model_config, train_cfg, cache, recipe, head: str, scorer=None,
             kinds: tuple[str, ...] = ("in_domain", "unseen_speakers")) -> dict:
    """Out-of-fold predictions of the recipe (steps 1-3 of the module docstring) for the head ``head``
    (``audio`` or ``audio_spknorm``) on the held-out sets of ``kinds`` (calibrated when both are
    there; else only the folds). Each fold's checkpoint is kept in ``args.work/head/fold id`` for the
    in-domain folds (the degraded-audio scores) and wherever ``scorer`` is given;
    ``scorer(kind, fold id, checkpoint, test takes)`` gives the fold's ``(probabilities, labels)``
    in place of the trainer's own test predictions."""
    from avemo.metrics import compute_metrics
    from avemo.training import train_run

    labels = list(data.labels.emotions)
    preds: dict[str, list] = {"in_domain": [], "unseen_speakers": []}
    folds = []
    for kind, name, fold_id, test in heldout_sets(data, recipe["estimate"]):
        if kind not in kinds:
            continue
        test_keys = {t.key for t in test}
        train = [t for t in data.takes if t.key not in test_keys]
        keep = args.work / head / fold_id if scorer is not None or kind == "in_domain" else None
        t0 = time.perf_counter()
        run = train_run(args.audio_model, data, train_takes=train, val_takes=[], test_takes=test,
                        model_config=model_config, train_config=train_cfg, cache=cache, workers=args.workers,
                        plots=False, gathered=gathered, out_dir=keep)
        probs, y = (run.test_probabilities, run.test_labels) if scorer is None else scorer(kind, fold_id, keep, test)
        seconds = time.perf_counter() - t0
        m = compute_metrics(y, probs, labels)
        preds[kind].append((probs, y))
        folds.append({"estimate": kind, "fold": name, "n": int(len(y)), "accuracy": m.accuracy,
                      "macro_f1": m.macro_f1, "uar": m.uar, "seconds": round(seconds, 1)})
        print(f"{head} {kind} {name}: n {len(y)} accuracy {m.accuracy:.4f} UAR {m.uar:.4f} ({seconds:.0f} s)",
              flush=True)
    return calibrated(preds, folds, labels, recipe) if all(preds.values()) else {"folds": folds}


def calibrated(preds: dict[str, list], folds: list[dict], labels: list[str], recipe: dict) -> dict:
    """The estimates of one head: T and tau fitted on its pooled out-of-fold predictions, and each
    estimate's pooled and per-fold figures."""
    from avemo.inference.calibration import fit_temperature, fit_threshold, scaled
    from avemo.metrics import summarise_folds

    pooled = {k: (np.concatenate([p for p, _ in v]), np.concatenate([y for _, y in v])) for k, v in preds.items()}
    p_all = np.concatenate([p for p, _ in pooled.values()])
    y_all = np.concatenate([y for _, y in pooled.values()])
    log_all = np.log(np.clip(p_all, 1e-12, 1.0))
    t, nll1, nll_t = fit_temperature(log_all, y_all)
    tau = fit_threshold(scaled(log_all, t), y_all, min_accuracy=recipe["calibration"]["min_accuracy"])
    out = {"folds": folds, "calibration": {"temperature": t, "nll_t1": nll1, "nll_t": nll_t, "tau": tau,
                                           "min_accuracy": recipe["calibration"]["min_accuracy"],
                                           "fitted_on": "pooled out-of-fold predictions of in_domain and "
                                                        "unseen_speakers", "n": int(len(y_all))}}
    for kind, (p, y) in pooled.items():
        per_fold = [f for f in folds if f["estimate"] == kind]
        mean_accuracy, std_accuracy = summarise_folds([f["accuracy"] for f in per_fold])
        mean_uar, std_uar = summarise_folds([f["uar"] for f in per_fold])  # std None: one fold, no spread measured
        out[kind] = {"pooled": scored(p, y, labels, t), "mean_accuracy": mean_accuracy, "std_accuracy": std_accuracy,
                     "mean_uar": mean_uar, "std_uar": std_uar}
    return out


# ----------------------------------------------------------------------------- speaker-normalised head
def person_of(data, take) -> str:
    """The person a take is of: its corpus reader and bare speaker id (the two EmoDB folders' speaker 03
    is one person, whose clips share one set of statistics)."""
    return f"{reader_of(data)[take.dataset]}:{bare(take.speaker)}"


def speaker_normalised_probabilities(checkpoint, gathered, persons: list[str],
                                     reference: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Class probabilities of a speaker-normalised checkpoint for the takes of ``gathered``: each
    person's arrays z-normalised with that person's own statistics, over the person's takes at the
    indices ``reference[person]`` (in the order of ``gathered``; default: all of them), then with the
    checkpoint's training statistics -- what :func:`avemo.training.scoring.evaluate_checkpoint`
    does for such a checkpoint, with persons in place of the takes' corpus-qualified speakers."""
    import dataclasses

    from avemo.models.batching import TensorData
    from avemo.models.checkpoint import load_checkpoint
    from avemo.models.normalization import ArraySet, speaker_normalised
    from avemo.training.trainer import predict_proba

    ckpt = load_checkpoint(checkpoint)
    norm = ckpt.normalizer
    groups: dict[str, list[int]] = {}
    for i, who in enumerate(persons):
        groups.setdefault(who, []).append(i)
    inputs = {}
    for name, kind in norm.kinds.items():
        arrays = list(gathered.inputs[name])
        if kind != "frames":
            for who, idx in groups.items():
                ref = None if reference is None or who not in reference else reference[who]
                for i, a in zip(idx, speaker_normalised([arrays[i] for i in idx], kind, ref), strict=True):
                    arrays[i] = a
        inputs[name] = arrays
    standardised = dataclasses.replace(norm, speaker_norm=False).transform(ArraySet(inputs))
    return predict_proba(ckpt.model, TensorData(standardised, np.zeros(len(persons), np.int64), ckpt.inputs))


def clip_draws(n: int, ks: list[int], draws: int, rng: np.random.Generator) -> dict[str, list[np.ndarray]]:
    """Which of a speaker's ``n`` clips give its statistics: for each ``k`` of ``ks`` (below ``n``),
    ``draws`` random sets of ``k`` clips (without replacement); ``"all"``: the one set of all ``n``."""
    out = {str(k): [np.sort(rng.choice(n, size=k, replace=False)) for _ in range(draws)] for k in ks if k < n}
    out["all"] = [np.arange(n)]
    return out


class SpeakerNormScorer:
    """Scores the held-out speakers of each fold of the speaker-normalised head: every person's clips
    with that person's statistics from all of its clips (refused below ``min_clips``), and, on the
    unseen-speaker folds, from ``k`` random clips (``clip_draws``; all clips scored)."""

    def __init__(self, data, gathered, config: dict):
        self.data, self.gathered, self.config = data, gathered, config
        self.index = {t.key: i for i, t in enumerate(gathered.takes)}
        self.k_clips: dict[str, list[list[tuple[np.ndarray, np.ndarray, str]]]] = {}

    def __call__(self, kind: str, fold_id: str, checkpoint: Path, test: list) -> tuple[np.ndarray, np.ndarray]:
        part = self.gathered.subset([self.index[t.key] for t in test if t.key in self.index])
        persons = [person_of(self.data, t) for t in part.takes]
        counts = {who: persons.count(who) for who in dict.fromkeys(persons)}
        few = {who: n for who, n in counts.items() if n < self.config["min_clips"]}
        if few:
            sys.exit(f"held-out speakers with fewer than {self.config['min_clips']} clips: {few}")
        y = part.labels(self.data.labels)
        if kind == "unseen_speakers":
            self.draw(checkpoint, part, persons, y)
        return speaker_normalised_probabilities(checkpoint, part, persons), y

    def draw(self, checkpoint: Path, part, persons: list[str], y: np.ndarray) -> None:
        """The fold's person scored with statistics of k of its clips, per k and draw."""
        from avemo.training.channel_copies import crc32

        (who,) = set(persons)  # a leave-one-speaker-out fold holds one person
        rng = np.random.default_rng([int(self.config["seed"]), crc32(who)])
        for k, sets in clip_draws(len(persons), list(self.config["k_clips"]), int(self.config["draws"]), rng).items():
            runs = self.k_clips.setdefault(k, [[] for _ in sets])
            for d, chosen in enumerate(sets):
                runs[d].append((speaker_normalised_probabilities(checkpoint, part, persons, {who: chosen}), y, who))


def k_clips_summary(k_clips: dict, labels: list[str]) -> dict:
    """Per k: UAR and accuracy pooled over the held-out speakers, mean and std over the draws (std None for
    one draw: no spread was measured), and the mean over draws of the per-speaker UAR."""
    from avemo.metrics import compute_metrics, summarise_folds

    out = {}
    for k, runs in k_clips.items():
        pooled = [compute_metrics(np.concatenate([y for _, y, _ in r]), np.concatenate([p for p, _, _ in r]), labels)
                  for r in runs]
        per_speaker = [np.mean([compute_metrics(y, p, labels).uar for p, y, _ in r]) for r in runs]
        uar, uar_std = summarise_folds([m.uar for m in pooled])
        accuracy, accuracy_std = summarise_folds([m.accuracy for m in pooled])
        out[k] = {"draws": len(runs), "speakers": [w for _, _, w in runs[0]], "uar": uar, "uar_std": uar_std,
                  "accuracy": accuracy, "accuracy_std": accuracy_std, "speaker_uar": float(np.mean(per_speaker))}
    return out


def unseen_corpus(args, checkpoint: Path, recipe: dict, cache, temperature: float) -> dict:
    """The final head on the unseen corpus (step 4)."""
    from avemo.training import load_data
    from avemo.training.scoring import evaluate_checkpoint

    est = recipe["estimate"]
    root = (args.recipe.parent / est["unseen_root"]).resolve()
    data = load_data(est["unseen_dataset"], root)
    ev = evaluate_checkpoint(checkpoint, data, cache=cache, workers=args.workers)
    out = scored(ev.probabilities, ev.y_true, list(ev.comparison.labels.emotions), temperature)
    out["dataset"] = est["unseen_dataset"]
    speakers = [t.speaker for t in data.takes if t.key in set(ev.takes)]
    out["clips_per_speaker"] = {s: speakers.count(s) for s in sorted(set(speakers))}
    out["clips"] = {k: ev.comparison.labels.emotions[int(i)] for k, i in zip(ev.takes, ev.probabilities.argmax(1),
                                                                              strict=True)}
    return out


# ----------------------------------------------------------------------------- degraded audio
def generalisation():
    """``benchmarks/generalisation.py`` as a module: its degraded-audio functions are reused here, so
    that the same condition, seed and babble talkers give the same feature-cache entries."""
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    import generalisation as gen

    return gen


def degraded_folds(args, data, recipe: dict) -> tuple[dict, dict]:
    """The degraded-audio setting (the conditions and seed of the suite's ``[degraded]`` table, the
    recipe's test fraction) and, per in-domain fold id, ``(RAVDESS data with all its labels, babble
    talkers, the degraded test takes, all test takes)``: the generalisation suite's folds and sample."""
    from avemo import config as cfg
    from avemo.datasets import builtin_plan, split
    from avemo.media.channels import applicable_channels
    from avemo.training import load_data

    gen = generalisation()
    deg = dict(recipe["degraded"])
    suite = (args.recipe.parent / deg["suite"]).resolve()
    table = cfg.load_file(suite)["degraded"]
    conditions = args.degraded_conditions.split(",") if args.degraded_conditions else list(table["conditions"])
    unknown = sorted(set(conditions) - set(table["conditions"]))
    if unknown:
        sys.exit(f"--degraded-conditions {unknown} are not in {suite}: {table['conditions']}")
    conditions, unavailable = applicable_channels(conditions)
    for condition, reason in unavailable.items():  # a codec this machine lacks: reported, skipped
        print(f"degraded condition {condition} skipped: {reason}", flush=True)
    setting = {"suite": suite.name, "conditions": conditions, "seed": int(table["seed"]),
               "test_fraction": float(deg["test_fraction"]), "unavailable": unavailable}
    plan = builtin_plan(recipe["estimate"]["ravdess_plan"])
    spec = next(s for s in data.corpora.specs if s.dataset == plan.dataset and s.speakers is None)
    rav = load_data(plan.dataset, spec.root)
    folds = {}
    for fold in plan.folds:
        train, _val, test = split(rav.takes, fold, extra="drop")
        talkers = gen.babble_talkers(train, setting["seed"], gen.talkers_needed(conditions))
        folds[str(fold.number)] = (rav, talkers, gen.sampled(test, setting["test_fraction"]), test)
    return setting, folds


def degraded_audio(args, data, recipe: dict, cache) -> dict:
    """Each in-domain fold's main head (kept by :func:`estimate` in ``args.work/audio``) on that fold's
    sampled RAVDESS test clips, clean and through every condition (condition by condition over the
    folds); accuracy pooled over the folds, the drop from clean on the same clips, mean drop and worst."""
    import dataclasses

    from avemo.training.scoring import evaluate_checkpoint

    gen = generalisation()
    setting, folds = degraded_folds(args, data, recipe)

    def score(fold_id: str, takes: list, perturb=None) -> dict:
        rav = folds[fold_id][0]
        return evaluate_checkpoint(args.work / "audio" / fold_id, dataclasses.replace(rav, takes=list(takes)),
                                   cache=cache, workers=args.workers, perturb=perturb).to_dict()

    res = {f: {"scores": {"bundle": {"clean_full": score(f, test), "clean": score(f, chosen)}}}
           for f, (_rav, _talkers, chosen, test) in folds.items()}
    for condition in setting["conditions"]:
        t0 = time.perf_counter()
        for f, (_rav, talkers, chosen, _test) in folds.items():
            res[f]["scores"]["bundle"][condition] = score(f, chosen, gen.perturb_of(condition, setting["seed"], talkers))
        acc = gen.degraded_summary(res, [condition], variants=("bundle",))["bundle"]["conditions"][condition]
        print(f"degraded {condition}: accuracy {acc['accuracy']:.4f}, drop {100 * acc['drop']:.1f} points "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return degraded_metrics(gen.degraded_summary(res, setting["conditions"], variants=("bundle",))["bundle"], res,
                            setting)


def degraded_metrics(summary: dict, res: dict, setting: dict) -> dict:
    """What ``model.json`` keeps of the degraded-audio scores (``summary``: generalisation.degraded_summary)."""
    return {**setting, "n": summary["n_degraded"], "clean": summary["clean_degraded_clips"],
            "conditions": summary["conditions"], "mean_drop": summary["mean_drop"], "worst": summary["worst"],
            "missing": summary["missing"],
            "folds": {f: {"n": r["scores"]["bundle"]["clean"]["n"],
                          "clean": r["scores"]["bundle"]["clean"]["accuracy"],
                          "clean_full": r["scores"]["bundle"]["clean_full"]["accuracy"]} for f, r in res.items()}}


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def pct_sd(mean: float, sd: float | None) -> str:
    """``mean ± sd`` as :func:`pct` writes them; the mean alone where no spread was measured (one fold or
    draw: ``sd`` None, as :func:`avemo.metrics.summarise_folds` gives it)."""
    from avemo.evaluation.benchmark import mean_sd_text

    return mean_sd_text(mean, sd, ".1f", unit=" %")


ESTIMATES = {"in_domain": "RAVDESS speakers never trained on (speaker-disjoint 5 folds, plan ravdess_au; "
                           "EmoDB always in training)",
             "unseen_speakers": "EmoDB speakers never trained on (leave one of 03, 08, 09, 10, 11 out; "
                                "RAVDESS always in training)"}


def estimate_lines(est: dict, unseen: dict | None) -> list[str]:
    """The estimates table of one head (and the unseen-corpus row), its calibration and per-fold tables."""
    c = est["calibration"]
    lines = ["| estimate | protocol | clips | accuracy (pooled) | UAR (pooled) | UAR mean ± std over folds | ECE T=1 -> T |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for kind, text in ESTIMATES.items():
        e = est[kind]
        p = e["pooled"]
        lines.append(f"| {kind.replace('_', ' ')} | {text} | {p['n']} | {pct(p['accuracy'])} | {pct(p['uar'])} | "
                     f"{pct_sd(e['mean_uar'], e['std_uar'])} | {pct(p['ece_t1'])} -> {pct(p['ece_t'])} |")
    if unseen:
        lines.append(f"| unseen corpus | the final head on the {unseen['n']} CREMA-D clips (actors 1001, 1002; never "
                     f"trained on, nothing chosen on them) | {unseen['n']} | {pct(unseen['accuracy'])} | "
                     f"{pct(unseen['uar'])} | | {pct(unseen['ece_t1'])} -> {pct(unseen['ece_t'])} |")
    lines += ["", f"Calibration: T = {c['temperature']:.3f} (NLL {c['nll_t1']:.3f} -> {c['nll_t']:.3f}) and "
              f"tau = {c['tau']:.3f} (the least top probability where held-out answers are right at least "
              f"{pct(c['min_accuracy'])} of the time), both fitted on the {c['n']} pooled out-of-fold "
              f"predictions above; an answer below tau is flagged uncertain.", "",
              "Per fold:", "", "| estimate | held out | clips | accuracy | macro-F1 | UAR |", "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {f['estimate'].replace('_', ' ')} | {f['fold']} | {f['n']} | {pct(f['accuracy'])} | "
              f"{pct(f['macro_f1'])} | {pct(f['uar'])} |" for f in est["folds"]]
    return lines


def confusion_lines(est: dict) -> list[str]:
    lines = []
    for kind in ESTIMATES:
        p = est[kind]["pooled"]
        lines += ["", f"Confusion, {kind.replace('_', ' ')} (rows: true, columns: predicted):", "",
                  "| | " + " | ".join(p["labels"]) + " |", "|---" * (len(p["labels"]) + 1) + "|"]
        lines += [f"| {name} | " + " | ".join(str(v) for v in row) + " |"
                  for name, row in zip(p["labels"], p["confusion"], strict=True)]
    return lines


def without_copies_note(est: dict, train_config: dict) -> list[str]:
    if est.get("degraded_copies", True) or not train_config["augment"]["channels"]["enabled"]:
        return []
    return ["**The fold heads below were trained without the degraded copies** (`--estimates-without-copies`): "
            "the figures estimate the recipe minus that augmentation; the bundled head has the copies.", ""]


def card_block(meta: dict) -> str:
    """The generated numbers block of the model card (the main, single-clip head)."""
    t = meta["training"]
    m = meta["metrics"]
    corpora = ", ".join(f"{c['name']} ({c['n']} clips)" for c in t["data"]["corpora"])
    lines = [f"Audio head: `{t['audio_model']}` with `{json.dumps(t['model_config'])}` ({t['params']:,} parameters) on "
             f"the `whisper_base` embedding, trained with `avemo.training.train_run` on {corpora}, labels "
             f"{', '.join(meta['config']['labels'])}; training options `{json.dumps(t['recipe'].get('train', {}))}`; "
             f"built {t['built']} by `{t['command']}` in {t['seconds']:.0f} s (both heads and their measurements)."]
    same = t.get("main_head_unchanged")
    if same:
        lines[-1] += (f" The head's weights are {'bitwise identical to' if same['bitwise'] else 'not bitwise identical to'}"
                      f" those of the previous bundle (max abs difference {same['max_abs_diff']:g}).")
    lines.append("")
    est = m.get("estimates")
    if est:
        if est.get("reused_from"):
            lines += [f"The held-out estimates below are those of the bundle v{est['reused_from']} build (same recipe "
                      "and code path; the head is bitwise the same), kept rather than recomputed.", ""]
        lines += without_copies_note(est, t["train_config"])
        lines += estimate_lines(est, m.get("unseen_corpus")) + confusion_lines(est)
    fusion = meta["config"]["fusion"]
    ab = meta["config"]["abstention"]
    lines += ["", f"Fusion: audio weight {fusion['audio_weight']}, temperature {fusion['audio_temperature']:.3f}; video "
              f"weight {fusion['video_weight']}, temperature {fusion['video_temperature']}. Abstention: tau "
              f"{ab['tau']:.3f}, speech share {ab['speech_share']}, min speech {ab.get('min_speech', 0.0):g} s."]
    return "\n".join(lines)


def degraded_block(meta: dict) -> str:
    """The generated block of the card's "Degraded audio" section."""
    d = meta["metrics"].get("degraded")
    if not d:
        return "Not measured by this build (`--skip-degraded` or `--skip-estimates`)."
    lines = [f"Each in-domain fold's head (trained as the bundle is: the other RAVDESS speakers and all EmoDB "
             f"speakers, with the degraded copies) on {pct(d['test_fraction'])} of its RAVDESS test speakers' clips "
             f"(CRC32 of the clip id; {d['n']} clips over {len(d['folds'])} folds, scored over the 6 labels: RAVDESS "
             f"surprised left out, calm counted as neutral), clean and through each condition of "
             f"`benchmarks/{d['suite']}` `[degraded]` (seed {d['seed']}; babble: clips of the fold's training "
             "speakers only, one per speaker): the generalisation suite's sample and channels "
             "(`benchmarks/generalisation.py`), so its figures for the RAVDESS-only recipe can be set beside these.",
             "", f"Clean accuracy on these clips: **{pct(d['clean'])}**. Mean drop over the {len(d['conditions'])} "
             f"conditions: **{100 * d['mean_drop']:.1f} points** (issue 11 target: at most 8); worst condition: "
             f"**{d['worst']}** ({100 * d['conditions'][d['worst']]['drop']:.1f} points).", "",
             "| condition | accuracy | drop from clean (points) |", "|---|---:|---:|"]
    lines += [f"| {c} | {pct(r['accuracy'])} | {100 * r['drop']:.1f} |" for c, r in d["conditions"].items()]
    if d["missing"]:
        lines += ["", f"Not measured: {', '.join(d['missing'])}."]
    lines += generalisation().unavailable_lines(d.get("unavailable") or {})
    lines += ["", f"One condition's accuracy on {d['n']} clips is uncertain by about "
              f"{100 * (0.25 / d['n']) ** 0.5:.0f} points (binomial standard error at 50 %); the drops are paired "
              "(same clips) and the mean drop is steadier than any one of them."]
    return "\n".join(lines)


def update_card(card: Path, block: str, name: str = "build") -> None:
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = card.read_text(encoding="utf-8")
    if begin not in text or end not in text:
        sys.exit(f"{card} has no {begin} / {end} markers; numbers block not written")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    from avemo.output_file import OutputFile

    with OutputFile(card) as out:
        out.commit(f"{head}{begin}\n{block}\n{end}{tail}")


def spknorm_block(meta: dict) -> str:
    """The generated block of the card's section on the speaker-normalised head."""
    sn = meta["metrics"].get("speaker_norm")
    if not sn:
        return "This build has no speaker-normalised head."
    c = meta["config"]["speaker_norm"]
    lines = [f"Head `{c['audio']}/`: the recipe above trained with `speaker_norm = true` (each training speaker's "
             "embeddings z-normalised with that speaker's own mean and standard deviation, then the global training "
             f"statistics), on every clip of both corpora; used for a speaker with at least {c['min_clips']} clips "
             f"(fixed beforehand, not chosen on any figure below); T = {c['temperature']:.3f}, tau = {c['tau']:.3f}. "
             "Every figure: held-out speakers only, each z-normalised with the statistics of all its own held-out "
             "clips (both EmoDB folders' clips of speaker 03 together).", ""]
    est = sn.get("estimates")
    if est:
        lines += without_copies_note(est, meta["training"]["train_config"])
        lines += estimate_lines(est, None) + confusion_lines(est)
    k = sn.get("k_clips")
    if k:
        lines += ["", "**How many clips of a speaker are needed** (unseen EmoDB speakers, leave one out; the held-out "
                  f"speaker's statistics from k of its clips drawn at random, {sn['k_clips_setting']['draws']} draws "
                  f"with seed {sn['k_clips_setting']['seed']}, then all its clips scored; reported, not used to choose "
                  f"anything: min_clips stays {c['min_clips']}):", "",
                  "| k clips give the statistics | draws | UAR pooled, mean ± std over draws | accuracy pooled | "
                  "per-speaker UAR, mean |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {kk} | {r['draws']} | {pct_sd(r['uar'], r['uar_std'])} | {pct(r['accuracy'])} | "
                  f"{pct(r['speaker_uar'])} |" for kk, r in k.items()]
    u = sn.get("unseen_corpus")
    if u:
        lines += ["", f"Unseen corpus: {u['reason']}"]
    return "\n".join(lines)


def write_card(card: Path, meta: dict) -> None:
    """Every generated block of the model card, from ``meta`` (``model.json``)."""
    update_card(card, card_block(meta))
    update_card(card, degraded_block(meta), "degraded")
    update_card(card, spknorm_block(meta), "spknorm")


def bundle_config(args, labels, est: dict | None, recipe: dict, spk: dict | None, crowd: str | None):
    """The bundle's configuration: its labels, the timeline grid, the video expert's options, the fusion
    weights and temperatures (the audio T from the estimates), the abstention (tau from the estimates;
    ``crowd``: the crowd detector the bundle already has, built by build_crowd_detector.py) and the
    speaker-normalised head (its own T and tau, from its estimates)."""
    from avemo.inference.abstention import AbstentionConfig
    from avemo.inference.bundle import BundleConfig, SpeakerNormConfig
    from avemo.inference.fusion import FusionConfig
    from avemo.inference.video import VideoExpertConfig

    default = {"temperature": 1.0, "tau": AbstentionConfig.tau}
    calibration = est["calibration"] if est else default
    spk_cal = spk["calibration"] if spk else default
    return BundleConfig(
        name="avemo-default", version=args.version, labels=tuple(labels), window=1.0, hop=0.5,
        audio="audio", video=VideoExpertConfig(fps=args.video_fps),
        fusion=FusionConfig(audio_weight=1.0, video_weight=args.video_weight,
                            audio_temperature=calibration["temperature"], video_temperature=1.0),
        abstention=AbstentionConfig(tau=calibration["tau"], speech_share=recipe["calibration"]["speech_share"],
                                    min_speech=recipe["calibration"]["min_speech"], crowd=crowd),
        speaker_norm=SpeakerNormConfig(audio=SPKNORM_DIR, temperature=spk_cal["temperature"], tau=spk_cal["tau"],
                                       min_clips=int(recipe["speaker_norm"]["min_clips"]))
        if recipe["speaker_norm"]["enabled"] else None,
    )


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=RECIPE,
                        help="TOML: audio_model, [model_config], label_space, [[corpora]], [train], [speaker_norm], "
                             "[estimate], [degraded], [calibration]")
    parser.add_argument("--skip-estimates", action="store_true",
                        help="no held-out estimates and no degraded audio (T = 1, default tau; for quick tries, "
                             "not for a release)")
    parser.add_argument("--estimates-without-copies", action="store_true",
                        help="train the held-out estimates without the recipe's degraded copies (recorded; with "
                             "--reuse-main-estimates: those of the speaker-normalised head)")
    parser.add_argument("--reuse-main-estimates", action="store_true",
                        help="keep the main head's held-out estimates of OUT/model.json (its in-domain fold heads are "
                             "still trained, with the copies, for the degraded audio, and must give its fold figures "
                             "again; the final head must come out bitwise identical)")
    parser.add_argument("--skip-degraded", action="store_true",
                        help="no degraded-audio figures (with --reuse-main-estimates: those of OUT/model.json kept)")
    parser.add_argument("--degraded-only", action="store_true",
                        help="only the degraded-audio figures of the main head, added to OUT/model.json and the card "
                             "(its in-domain fold heads must give the fold figures of OUT/model.json again)")
    parser.add_argument("--degraded-conditions", default="",
                        help="comma-separated subset of the suite's degraded conditions (default: all; recorded)")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the card's generated blocks from OUT/model.json")
    parser.add_argument("--abstention-only", action="store_true",
                        help="write the recipe's [calibration] speech_share and min_speech into OUT/model.json "
                             "(nothing trained) and rewrite the card's generated blocks")
    parser.add_argument("--video-weight", type=float, default=0.5)
    parser.add_argument("--video-fps", type=float, default=8.0)
    parser.add_argument("--cache", type=Path, default=None, help="feature cache (default: ~/.cache/avemo/features)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--version", default="4")
    return parser.parse_args()


def prepare(args) -> SimpleNamespace:
    """The recipe, its training configs (main and speaker-normalised, and those of the estimates), the
    corpora and their gathered features."""
    from avemo import config as cfg
    from avemo.cache import FeatureCache
    from avemo.models import create_model
    from avemo.training import TrainConfig
    from avemo.training.corpora import read_corpora_file
    from avemo.training.data import gather
    from avemo.training.experiment import load_corpora

    recipe = cfg.load_file(args.recipe)
    specs = read_corpora_file(args.recipe, reads=RECIPE_KEYS)  # first: a key nobody reads is refused
    args.audio_model = recipe["audio_model"]
    model_config = dict(recipe.get("model_config", {}))
    train_cfg = cfg.from_dict(TrainConfig, dict(recipe.get("train", {})))
    if train_cfg.speaker_norm:
        sys.exit("[train] must not set speaker_norm: the main head predicts one file at a time "
                 "(the speaker-normalised head is [speaker_norm])")
    est_cfg = train_cfg
    if args.estimates_without_copies:
        est_cfg = dataclasses.replace(train_cfg, augment=dataclasses.replace(
            train_cfg.augment, channels=dataclasses.replace(train_cfg.augment.channels, enabled=False)))
    cache = FeatureCache(args.cache)
    data = load_corpora(specs, recipe.get("label_space", "shared"))
    print(f"{len(data.takes)} takes of {len(data.speakers)} speakers, labels {list(data.labels.emotions)}; "
          f"left out: {data.corpora.left_out}", flush=True)
    model = create_model(args.audio_model, num_classes=len(data.labels), **model_config)
    gathered = gather(data.takes, dict(model.inputs), tables=data.tables, cache=cache, workers=args.workers)
    if gathered.failed:
        print(f"{len(gathered.failed)} takes without features (left out): {gathered.failed[:5]}", flush=True)
    return SimpleNamespace(recipe=recipe, model_config=model_config, train=train_cfg, est=est_cfg,
                           spk=dataclasses.replace(train_cfg, speaker_norm=True),
                           spk_est=dataclasses.replace(est_cfg, speaker_norm=True), cache=cache, data=data,
                           gathered=gathered)


def previous_bundle(out: Path) -> tuple[dict | None, bytes | None]:
    """The ``model.json`` and main-head weights already in ``out`` (None where there are none)."""
    meta = json.loads((out / "model.json").read_text(encoding="utf-8")) if (out / "model.json").is_file() else None
    weights = out / "audio" / "model.safetensors"
    return meta, weights.read_bytes() if weights.is_file() else None


def reused_degraded(args, previous: dict | None) -> dict | None:
    """``--skip-degraded``: with ``--reuse-main-estimates``, the degraded-audio figures of ``previous``
    (they describe the main head, which the build then checks is bitwise the same); else none."""
    if not args.reuse_main_estimates or previous is None:
        return None
    return previous.get("metrics", {}).get("degraded")


def main_estimates(args, s, previous: dict | None) -> dict | None:
    """The main head's estimates: computed, or (``--reuse-main-estimates``) those of ``previous`` once
    its in-domain fold heads, trained again for the degraded audio, give its fold figures again."""
    if args.skip_estimates:
        return None
    if not args.reuse_main_estimates:
        est = estimate(args, s.data, s.gathered, s.model_config, s.est, s.cache, s.recipe, "audio")
        est["degraded_copies"] = s.est.augment.channels.enabled
        return est
    if not previous or not (previous["metrics"] or {}).get("estimates"):
        sys.exit(f"--reuse-main-estimates: {args.out / 'model.json'} has no estimates to reuse")
    est = {"reused_from": previous["config"]["version"], **previous["metrics"]["estimates"]}
    if args.skip_degraded:  # no fold head needed: the final head's bitwise check guards the reuse
        return est
    kept = {f["fold"]: f for f in est["folds"]}
    for f in estimate(args, s.data, s.gathered, s.model_config, s.train, s.cache, s.recipe, "audio",
                      kinds=("in_domain",))["folds"]:
        old = kept[f["fold"]]
        if any(abs(f[k] - old[k]) > 1e-12 for k in ("accuracy", "macro_f1", "uar")):
            sys.exit(f"--reuse-main-estimates: {f['fold']} gives {f} now, {old} in {args.out / 'model.json'}")
    return est


def final_head(args, s, folder: str, train_cfg):
    from avemo.training import train_run

    print(f"final head {folder}: training on every clip", flush=True)
    run = train_run(args.audio_model, s.data, train_takes=s.data.takes, val_takes=[], model_config=s.model_config,
                    train_config=train_cfg, cache=s.cache, out_dir=args.out / folder, workers=args.workers,
                    plots=False, gathered=s.gathered)
    for extra in ("history.csv", "curves.png"):
        (args.out / folder / extra).unlink(missing_ok=True)
    return run


def unchanged(args, old: bytes | None) -> dict | None:
    """Whether the main head's weights are those of the previous bundle: bitwise, and the max abs difference."""
    if old is None:
        return None
    from safetensors.numpy import load

    new_bytes = (args.out / "audio" / "model.safetensors").read_bytes()
    a, b = load(old), load(new_bytes)
    diff = max((float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)))) if a[k].shape == b[k].shape
                else float("inf")) for k in a) if set(a) == set(b) else float("inf")
    return {"bitwise": old == new_bytes, "max_abs_diff": diff}


def speaker_norm_head(args, s, labels: list[str]) -> dict | None:
    """The speaker-normalised head's estimates (held-out speakers with their own statistics), its k-clips
    figures, and the reason the unseen corpus is not scored with it."""
    if args.skip_estimates or not s.recipe["speaker_norm"]["enabled"]:
        return None
    scorer = SpeakerNormScorer(s.data, s.gathered, s.recipe["speaker_norm"])
    est = estimate(args, s.data, s.gathered, s.model_config, s.spk_est, s.cache, s.recipe, SPKNORM_DIR, scorer)
    est["degraded_copies"] = s.spk_est.augment.channels.enabled
    setting = {k: s.recipe["speaker_norm"][k] for k in ("k_clips", "draws", "seed")}
    return {"estimates": est, "k_clips": k_clips_summary(scorer.k_clips, labels), "k_clips_setting": setting}


def spknorm_unseen(unseen: dict, min_clips: int) -> dict:
    few = {s: n for s, n in unseen["clips_per_speaker"].items() if n < min_clips}
    return {"scored": not few, "reason": (
        f"not scored: the {unseen['dataset']} speakers have {', '.join(f'{s}: {n}' for s, n in few.items())} clips, "
        f"fewer than min_clips ({min_clips}); their statistics from so few clips would be noise, and the predictor "
        "gives such a speaker's files the single-clip head." if few else "scored")}


def main() -> None:
    args = _arguments()
    card = args.out / "model_card.md"
    if args.report_only:
        write_card(card, json.loads((args.out / "model.json").read_text(encoding="utf-8")))
        print(f"rewrote the generated blocks of {card}")
        return
    if args.abstention_only:
        abstention_only(args)
        return
    import torch

    torch.set_num_threads(1)
    s = prepare(args)
    previous, old_weights = previous_bundle(args.out)
    if args.degraded_only:
        degraded_only(args, s, previous)
        return
    labels = list(s.data.labels.emotions)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="avemo-build-") as work:
        args.work = Path(work)
        est = main_estimates(args, s, previous)
        spk = speaker_norm_head(args, s, labels)
        deg = None if args.skip_estimates else (reused_degraded(args, previous) if args.skip_degraded
                                                else degraded_audio(args, s.data, s.recipe, s.cache))
    run = final_head(args, s, "audio", s.train)
    same = unchanged(args, old_weights)
    print(f"main head unchanged: {same}", flush=True)
    if args.reuse_main_estimates and not (same and same["bitwise"]):
        sys.exit("--reuse-main-estimates: the main head changed, so the reused estimates do not describe it")
    if s.recipe["speaker_norm"]["enabled"]:
        final_head(args, s, SPKNORM_DIR, s.spk)
    unseen = unseen_corpus(args, args.out / "audio", s.recipe, s.cache, est["calibration"]["temperature"] if est else 1.0)
    print(f"unseen corpus ({unseen['dataset']}): accuracy {unseen['accuracy']:.4f} UAR {unseen['uar']:.4f}, "
          f"ECE {unseen['ece_t1']:.3f} -> {unseen['ece_t']:.3f}", flush=True)
    if spk:
        spk["unseen_corpus"] = spknorm_unseen(unseen, int(s.recipe["speaker_norm"]["min_clips"]))
    write_bundle(args, s, previous, run, {"estimates": est, "unseen_corpus": unseen, "degraded": deg,
                                          "speaker_norm": spk}, same, time.perf_counter() - t_start)


def abstention_only(args) -> None:
    """``--abstention-only``: the recipe's ``[calibration]`` gates (``speech_share``, ``min_speech``) written
    into ``OUT/model.json``'s abstention and into its copy of the recipe, everything else kept (tau and T
    are fitted on the estimates, which do not change), and the card's generated blocks rewritten."""
    from avemo import config as cfg
    from avemo.inference.bundle import read_bundle, write_bundle_meta

    gates = {k: cfg.load_file(args.recipe)["calibration"][k] for k in ("speech_share", "min_speech")}
    config, meta = read_bundle(args.out)
    config = dataclasses.replace(config, abstention=dataclasses.replace(config.abstention, **gates))
    meta["training"]["recipe"]["calibration"].update(gates)
    extra = {k: v for k, v in meta.items() if k not in ("format", "format_version", "config")}
    write_bundle_meta(args.out, config, extra)
    (args.out / "model.json").chmod(0o644)
    write_card(args.out / "model_card.md", {"config": cfg.to_dict(config), **extra})
    print(f"wrote the abstention {gates} into {args.out / 'model.json'} and the card")


def degraded_only(args, s, previous: dict | None) -> None:
    """``--degraded-only``: the main head's in-domain fold heads trained again (checked against the fold
    figures of ``model.json``), their degraded-audio scores written into ``model.json`` and the card."""
    from avemo.inference.bundle import read_bundle, write_bundle_meta

    args.reuse_main_estimates = True
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="avemo-build-") as work:
        args.work = Path(work)
        main_estimates(args, s, previous)
        deg = degraded_audio(args, s.data, s.recipe, s.cache)
    config, meta = read_bundle(args.out)
    meta["metrics"]["degraded"] = {**deg, "seconds": round(time.perf_counter() - t0, 1), "command": " ".join(
        ["python benchmarks/build_default_model.py", *(shlex.quote(a) for a in sys.argv[1:])])}
    extra = {k: v for k, v in meta.items() if k not in ("format", "format_version", "config")}
    write_bundle_meta(args.out, config, extra)
    (args.out / "model.json").chmod(0o644)
    write_card(args.out / "model_card.md", meta)
    print(f"wrote the degraded-audio figures into {args.out / 'model.json'} and the card")


def write_bundle(args, s, previous: dict | None, run, metrics: dict, same: dict | None, seconds: float) -> None:
    """``model.json`` (keeping the crowd detector the bundle has) and the card's generated blocks."""
    from avemo import config as cfg
    from avemo.inference.bundle import write_bundle_meta
    from avemo.models.checkpoint import package_versions

    crowd = previous["config"]["abstention"].get("crowd") if previous else None
    config = bundle_config(args, s.data.labels.emotions, metrics["estimates"], s.recipe,
                           (metrics["speaker_norm"] or {}).get("estimates"), crowd)
    meta = {
        "training": {
            "recipe": s.recipe, "audio_model": args.audio_model, "model_config": s.model_config, "params": run.params,
            "train_config": cfg.to_dict(s.train), "data": s.data.corpora.to_dict(),
            "command": " ".join(["python benchmarks/build_default_model.py", *(shlex.quote(a) for a in sys.argv[1:])]),
            "built": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"), "seconds": round(seconds, 1),
            "versions": package_versions(), "main_head_unchanged": same,
        },
        "metrics": metrics,
        "card": "model_card.md",
        **({"crowd_detector": previous["crowd_detector"]} if previous and "crowd_detector" in previous else {}),
    }
    write_bundle_meta(args.out, config, meta)
    for file in args.out.rglob("*"):  # package data: readable by every user of an installation
        file.chmod(0o755 if file.is_dir() else 0o644)
    write_card(args.out / "model_card.md", {"config": cfg.to_dict(config), **meta})
    print(f"wrote {args.out} ({sum(p.stat().st_size for p in args.out.rglob('*') if p.is_file()) / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
