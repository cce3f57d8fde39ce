"""RAVDESS-AU benchmark (issue 4), end to end and reproducible: every model, the answers, the report.

    python benchmarks/ravdess_au.py [--root ../shared/data/ravdess/speech_audio] \\
        [--visual-table ../shared/data/ravdess/openface_au_means.csv] [--out docs/results] \\
        [--cache /tmp/avemo-cache] [--work /tmp/avemo-ravdess-au] [--parts explore,main,svm,random,timing,report]

The protocol is the guide's (``../shared/GUIDE.md``, "The honest protocol"): the built-in
``ravdess_au`` plan, 5 folds of 4 test speakers, early stopping / best epoch / calibration on 2
validation speakers carved from the training speakers, the test speakers unseen until the end.

The suite -- entries, training settings, exploration candidates, the papers' numbers -- is data:
``src/avemo/evaluation/suites/ravdess_au.toml`` (:mod:`avemo.evaluation.suite`).

Parts (each stores its results under ``--work``, so one part can be rerun alone; ``report``
assembles whatever is there):

* ``explore`` -- the choices of the recommended recipe (the suite's ``[[explore]]`` candidates), scored on *inner* splits
  (:func:`avemo.evaluation.benchmark.inner_splits`: in each fold the validation speakers are the
  inner test set and two other training speakers the inner validation set; the fold's test
  speakers are never used). Every hyper-parameter of ``default`` was picked from these scores.
* ``main`` -- the suite's entries (``benchmark_entries(extended=True)``): every zoo model
  (audio only, AU only, every fusion method with ``au_mlp``), paper 000's fusion methods with the
  Whisper audio encoder, speaker-normalised variants, and ``default`` (a 5-seed ensemble), on the
  5 speaker-disjoint folds. One entry at a time, saved as it finishes (an interrupted run resumes).
* ``svm`` -- the floor: an RBF SVM on MFCC / log-mel statistics + AU means, C chosen on the
  validation speakers (:func:`avemo.evaluation.benchmark.svm_baseline`), with and without
  speaker normalisation.
* ``random`` -- paper 004's pipeline (``mfa_fercnn``) and ``default`` on random 5-fold splits of the
  takes (speakers on both sides, as paper 004 evaluates), next to their speaker-disjoint numbers.
* ``timing`` -- ``avemo benchmark ravdess_au --models default`` in a fresh process with an empty
  feature cache: the whole 5-fold run of the recommended model, feature extraction included.
* ``report`` -- ``OUT/ravdess_au.{json,md}`` (+ figures in ``OUT/ravdess_au/``) with the answers,
  and ``OUT/ravdess_au_random.{json,md}``.

``--from-json`` writes ``OUT/ravdess_au_random.md`` again from its JSON alone (no data, no training);
``ravdess_au.md`` needs the part results under ``--work``.

Threads: ``OMP_WAIT_POLICY=PASSIVE`` (idle OpenMP threads sleep: other jobs share the 2 cores) and
``--threads`` torch threads (default: 2 for the papers' sequence models, 1 for the small MLPs on
vectors, where a second thread only adds synchronisation).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from parts import load, log, parse_parts, run_parts, save  # noqa: E402

SHARED = REPO.parent / "shared" / "data" / "ravdess"
PARTS = ("explore", "main", "svm", "random", "timing", "report")

#: targets of the issue (accuracy, %)
TARGET_BEST, TARGET_AUDIO, TARGET_AU = 80.0, 70.0, 60.0
#: budget of the recommended model's cold-cache 5-fold run (s)
TARGET_SECONDS = 600.0

def set_threads(ctx, sequence_model: bool) -> None:
    """``--threads``, or automatically 2 for models on sequences (convolutions, LSTMs) and 1 for the
    small MLPs on vectors (where a second thread only adds synchronisation on a shared machine)."""
    import torch

    torch.set_num_threads(ctx.threads or (2 if sequence_model else 1))


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def pct_sd(m: dict) -> str:
    """``m``'s mean ± std accuracy over the folds, in percent; the mean alone for one fold (its std is
    None, :func:`avemo.metrics.summarise_folds`: no spread was measured)."""
    from avemo.evaluation.benchmark import mean_sd_text

    return mean_sd_text(m["mean_accuracy"], m.get("std_accuracy"), ".1f")


def n_folds(models: dict) -> int:
    """How many folds the results of ``models`` (a result file's ``models``) are over."""
    return max((len(m.get("fold_accuracy", ())) for m in models.values()), default=0)


# ----------------------------------------------------------------------------- parts


def part_explore(ctx) -> None:
    """The suite's exploration candidates (``[[explore]]`` of ``ravdess_au.toml``) on the inner splits."""
    from avemo.evaluation.benchmark import inner_splits, run_fold
    from avemo.models import default_inputs

    splits = inner_splits(ctx.data, ctx.suite.fold_plan().folds)
    saved = load(ctx.work / "explore.pkl", {})
    rows = {}
    for entry in ctx.suite.explore_entries():
        name, question, model, config, train, seeds = (entry.name, entry.group, entry.model, entry.model_config,
                                                        entry.train, entry.seeds)
        old = saved.get(name)
        same = old and (old["model"], old["model_config"], old["train"], old["seeds"]) == (model, config, train,
                                                                                            list(seeds))
        if same and "nll" in old:
            rows[name] = old  # same candidate, already scored (runs are deterministic)
            continue
        set_threads(ctx, any(s.kind == "sequence" for s in default_inputs(model, **config).values()))
        t0 = time.perf_counter()
        rs = [run_fold(entry, s, ctx.data, str(ctx.cache.root), ctx.base) for s in splits]
        acc = [r.metrics["accuracy"] for r in rs]
        nll = [float(-np.log(np.clip(r.probabilities[np.arange(len(r.labels)), r.labels], 1e-7, 1)).mean())
               for r in rs]
        rows[name] = {"question": question, "model": model, "model_config": config, "train": train,
                      "seeds": list(seeds), "inner_accuracy": acc, "mean": float(np.mean(acc)),
                      "std": float(np.std(acc)), "inner_nll": nll, "nll": float(np.mean(nll)),
                      "best_epochs": [r.best_epochs for r in rs], "seconds": round(time.perf_counter() - t0, 1)}
        log(f"explore {name}: {pct(rows[name]['mean'])} ± {pct(rows[name]['std'])} (inner), NLL {np.mean(nll):.3f}")
        save(ctx.work / "explore.pkl", rows)


def part_main(ctx) -> None:
    from avemo.evaluation.benchmark import run_benchmark
    from avemo.models import default_inputs

    # the slow recurrent models (those with training overrides) last, so every other result is there early
    entries = sorted(ctx.suite.benchmark_entries(ctx.models, extended=True),
                     key=lambda e: e.model in ctx.suite.train_overrides)
    for i, entry in enumerate(entries, 1):
        path = ctx.work / "main" / f"{entry.name}.pkl"
        if path.exists():
            continue
        set_threads(ctx, any(s.kind == "sequence" for s in default_inputs(entry.model, **entry.model_config).values()))
        t0 = time.perf_counter()
        res = run_benchmark([entry], ctx.data, ctx.speaker_splits, cache=ctx.cache, train_config=ctx.base,
                            workers=ctx.workers, executor=ctx.executor, progress=lambda r: log(
                                f"  {r.entry} fold {r.fold}: {pct(r.metrics['accuracy'])} ({r.train_seconds:.0f} s)"))
        save(path, res)
        m = res["models"][entry.name]
        log(f"main [{i}/{len(entries)}] {entry.name}: {pct_sd(m)} "
            f"({time.perf_counter() - t0:.0f} s)")


def baselines() -> dict[str, tuple[Any, str]]:
    """The scikit-learn baselines: name -> (:class:`~avemo.evaluation.benchmark.SvmBaseline`, group).
    Their names differ from the suite's models (``whisper_sklearn_logreg``, not the registry's
    ``whisper_logreg``): a baseline's row would replace the model's of the same name in the report."""
    from avemo.evaluation.benchmark import SvmBaseline

    logreg = {"classifier": "logreg", "grid": (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)}
    whisper = {"audio": (("whisper_base", ()),), "tables": False, **logreg}
    au = {"audio": (), "tables": True, **logreg}
    out = {}
    for suffix, norm in (("", False), ("_spknorm", True)):
        extra = " + speaker norm" if norm else ""
        out[f"svm_floor{suffix}"] = (SvmBaseline(speaker_norm=norm), "floor (SVM)")
        out[f"whisper_sklearn_logreg{suffix}"] = (SvmBaseline(speaker_norm=norm, **whisper), f"audio only{extra}")
        out[f"au_logreg{suffix}"] = (SvmBaseline(speaker_norm=norm, **au), f"visual only (AU){extra}")
    return out


def part_svm(ctx) -> None:
    """The floor (an RBF SVM on MFCC / log-mel statistics + AU means) and logistic regressions on the
    Whisper embedding alone and on the AU means alone; C always chosen on the validation speakers."""
    from avemo.evaluation.benchmark import svm_baseline

    path = ctx.work / "svm.pkl"
    out = load(path, {})
    for name, (config, _group) in baselines().items():
        if name in out and out[name][0] == config:
            continue
        out[name] = (config, svm_baseline(ctx.data, ctx.speaker_splits, ctx.cache, config, name=name))
        acc = [f.metrics["accuracy"] for f in out[name][1]]
        log(f"svm {name}: {pct(np.mean(acc))} ± {pct(np.std(acc))}, C per fold {[f.metrics['C'] for f in out[name][1]]}")
        save(path, out)


def part_random(ctx) -> None:
    from avemo.evaluation.benchmark import run_benchmark

    splits = ctx.suite.splits(ctx.data, "random", seed=0)
    entries = ctx.suite.benchmark_entries(["mfa_fercnn", "default"])
    res = run_benchmark(entries, ctx.data, splits, cache=ctx.cache, train_config=ctx.base, workers=ctx.workers)
    save(ctx.work / "random.pkl", res)
    for name, m in res["models"].items():
        log(f"random {name}: {pct_sd(m)}")


def part_timing(ctx) -> None:
    """The recommended model's whole 5-fold run from a cold cache, in a fresh process."""
    with tempfile.TemporaryDirectory(prefix="avemo-cold-") as tmp:
        cmd = [sys.executable, "-m", "avemo.cli", "benchmark", "ravdess_au", "--root", str(ctx.root),
               "--visual-table", str(ctx.table), "--models", "default", "--cache", f"{tmp}/cache",
               "--out", f"{tmp}/out", "--workers", str(ctx.workers)]
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"timing run failed ({proc.returncode}): {proc.stderr[-2000:]}")
        result = json.loads(Path(f"{tmp}/out/ravdess_au.json").read_text())
    m = result["models"]["default"]
    timing = {"command": "avemo benchmark ravdess_au --root ROOT --visual-table CSV --models default "
                         f"--cache EMPTY_DIR --out DIR --workers {ctx.workers} (fresh process)",
              "wall_seconds": round(wall, 1), "extract_seconds": result["extract_seconds"],
              "train_seconds": m["train_seconds"], "mean_accuracy": m["mean_accuracy"],
              "fold_accuracy": m["fold_accuracy"], "load_average_before": [round(x, 2) for x in load_before],
              "load_average_after": [round(x, 2) for x in os.getloadavg()]}
    save(ctx.work / "timing.pkl", timing)
    log(f"timing: {timing['wall_seconds']} s wall (extraction {timing['extract_seconds']} s), "
        f"accuracy {pct(m['mean_accuracy'])}")


# ----------------------------------------------------------------------------- report


def _merge_main(ctx) -> dict[str, Any] | None:
    merged = None
    executors: dict[str, list[str]] = {}
    for entry in ctx.suite.benchmark_entries(ctx.models, extended=True):
        path = ctx.work / "main" / f"{entry.name}.pkl"
        if not path.exists():
            continue
        res = load(path)
        executors.setdefault(res["executor"], []).append(entry.name)
        if merged is None:
            merged = res
        else:
            merged["models"].update(res["models"])
            merged["_folds"].update(res["_folds"])
    if merged is not None:  # summaries from the fold results (the same code as run_benchmark's, current version)
        from avemo.evaluation.benchmark import summarise_results

        for name, folds in merged["_folds"].items():
            merged["models"][name].update(summarise_results(folds))
        if len(executors) > 1:  # e.g. a slow model's folds trained in parallel with --executor ray
            main = max(executors, key=lambda e: len(executors[e]))
            how = {"ray": "ray (folds in parallel, one torch thread each)"}
            merged["executor"] = how.get(main, main) + "".join(
                f"; {how.get(e, e)} for {', '.join(names)}" for e, names in executors.items() if e != main)
    return merged


def _cell(m: dict | None) -> str:
    return pct_sd(m) if m else "n/a"


def _mean(models, names, key="mean_accuracy") -> float:
    vals = [models[n][key] for n in names if n in models]
    return float(np.mean(vals)) if vals else float("nan")


def _line(models, name) -> str:
    m = models[name]
    return (f"`{name}` {pct_sd(m)} % "
            f"(macro-F1 {pct(m['macro_f1'])}, UAR {pct(m['uar'])})")


def answer_sections(suite, results, explore, svm, random_res, timing) -> list[tuple[str, list[str]]]:
    """The report's sections derived from the numbers: the answers, paper 000's claim, paper 004's
    random split, and the exploration."""
    models = results["models"]
    sections = [("Answers", _answers(results, svm, timing)),
                ("Paper 000's claim: model-level vs early vs late fusion", _paper_000_claim(suite, models))]
    if random_res:
        sections.append(("Paper 004: random split vs speaker-disjoint", _random_vs_speaker(models, random_res)))
    if explore:
        sections.append(("Exploration (validation speakers only)", _exploration_table(explore)))
        sections.append(("What was tried and what helped (inner scores)", effect_lines(explore)))
    return sections


def _best(pool, pred=lambda n, m: True):
    cands = [(m["mean_accuracy"], n) for n, m in pool.items() if pred(n, m)]
    return max(cands)[1] if cands else None


def _answers(results, svm, timing) -> list[str]:
    """The targets of the issue: best model with and without speaker normalisation, audio only, AU only,
    the SVM floor, the cold-cache run."""
    models = results["models"]
    spk = {n: m for n, m in models.items() if m["train"].get("speaker_norm")}
    plain = {n: m for n, m in models.items() if n not in spk and not n.startswith("svm_floor")}
    lines = []
    b = _best(plain)
    if b:
        ok = 100 * models[b]["mean_accuracy"] >= TARGET_BEST
        lines.append(f"- **Best model, no speaker normalisation**: {_line(models, b)} -- target {TARGET_BEST:.0f} % "
                     f"{'reached' if ok else 'NOT reached'}.")
    b2 = _best(spk)
    if b2:
        ok = 100 * models[b2]["mean_accuracy"] >= TARGET_BEST
        lines.append(f"- **Best model with speaker normalisation** (each test speaker's features z-normalised with "
                     f"that speaker's own statistics: needs several unlabelled clips of the speaker): "
                     f"{_line(models, b2)} -- target {'reached' if ok else 'NOT reached'}.")
    if "default" in models:
        lines.append(f"- **Recommended model** (`default` = `late_calibrated`: Whisper-base embedding MLP x AU-means "
                     f"MLP, calibrated product of experts, {len(models['default']['seeds'])}-seed ensemble): "
                     f"{_line(models, 'default')}; with speaker normalisation "
                     + (_line(models, "default_spknorm") if "default_spknorm" in models else "n/a") + ".")
    lines += _unimodal_answers(models, plain, spk)
    for name in svm or {}:
        if name in models and name.startswith("svm_floor"):
            cs = [f.metrics["C"] for f in results["_folds"][name]]
            lines.append(f"- **SVM floor** ({'with' if 'spknorm' in name else 'without'} speaker normalisation; "
                         f"{svm[name][0].describe()}; C per fold {cs}): {_line(models, name)}.")
    if timing:
        ok = timing["wall_seconds"] <= TARGET_SECONDS
        lines.append(f"- **Cold-cache run of the recommended model** (`{timing['command']}`): "
                     f"{timing['wall_seconds']:.0f} s wall-clock for the {len(timing['fold_accuracy'])} fold(s) x {len(models.get('default', {}).get('seeds', [0]))} seeds, "
                     f"of which feature extraction {timing['extract_seconds']:.0f} s and training "
                     f"{timing['train_seconds']:.0f} s -- budget {TARGET_SECONDS / 60:.0f} min "
                     f"{'met' if ok else 'NOT met'} (load average before/after: {timing['load_average_before']} / "
                     f"{timing['load_average_after']}; accuracy {pct(timing['mean_accuracy'])} %).")
    return lines


def _unimodal_answers(models, plain, spk) -> list[str]:
    """The best audio-only and AU-only models against their targets."""
    lines = []
    audio = {n: m for n, m in plain.items() if m["group"] == "audio only"}
    ba = _best(audio)
    if ba:
        ok = 100 * models[ba]["mean_accuracy"] >= TARGET_AUDIO
        lines.append(f"- **Audio only (from raw audio)**: best {_line(models, ba)} -- target {TARGET_AUDIO:.0f} % "
                     f"{'reached' if ok else 'NOT reached'}. The other audio-only models (the papers' networks are "
                     "trained from scratch on MFCC / log-mel / pyAudioAnalysis features): "
                     + ", ".join(f"`{n}` {pct(m['mean_accuracy'])}" for n, m in sorted(
                         audio.items(), key=lambda kv: -kv[1]["mean_accuracy"]) if n != ba) + ".")
    bv = _best(plain, lambda n, m: m["group"] == "visual only (AU)")
    if bv:
        ok = 100 * models[bv]["mean_accuracy"] >= TARGET_AU
        bv2 = _best(spk, lambda n, m: m["group"].startswith("visual only (AU)"))
        extra = f"; with speaker normalisation, best {_line(models, bv2)}" if bv2 else ""
        others = ", ".join(f"`{n}` {pct(m['mean_accuracy'])}" for n, m in plain.items()
                           if m["group"] == "visual only (AU)" and n != bv)
        lines.append(f"- **AU only**: best {_line(models, bv)} -- target {TARGET_AU:.0f} % "
                     f"{'reached' if ok else 'NOT reached'}" + (f" (also {others})" if others else "") + f"{extra}.")
    return lines


def _paper_000_claim(suite, models) -> list[str]:
    """Paper 000's Table 1 methods here, by fusion stage, with the MFCC CNN and the Whisper audio encoder."""
    TABLE_1, MODEL_LEVEL, EARLY, LATE = (suite.model_set(n) for n in ("table_1", "model_level", "early", "late"))  # noqa: N806
    lines = ["Paper 000 (Table 1) reports model-level fusion (MMTM 73.12, MSAF 74.86, CFN-SR 75.76, CFNSR-LSTM "
             "76.25) above early (Concat+FC 71.04, MCBP 71.32) and late fusion (68.82-70.56). Here, same folds, "
             f"same encoders within a column (mean accuracy over the {n_folds(models)} fold(s), %):", "",
             "| fusion method | stage | MFCC 1D CNN + AU MLP | Whisper MLP + AU MLP |", "|---|---|---|---|"]
    for name in TABLE_1:
        a = models.get(name)
        w = models.get(f"{name}_whisper")
        stage = "model" if name in MODEL_LEVEL else "early" if name in EARLY else "late"
        lines.append(f"| {name} | {stage} | {_cell(a)} | {_cell(w)} |")
    verdicts = []
    for suffix, label in (("", "MFCC CNN audio"), ("_whisper", "Whisper audio")):
        groups = {g: [f"{n}{suffix}" for n in names if n in TABLE_1 and f"{n}{suffix}" in models]
                  for g, names in (("model-level", MODEL_LEVEL), ("early", EARLY), ("late", LATE))}
        if not all(groups.values()):
            continue
        means = {g: _mean(models, names) for g, names in groups.items()}
        bests = {g: max(models[n]["mean_accuracy"] for n in names) for g, names in groups.items()}
        holds = means["model-level"] > max(means["early"], means["late"]) and \
            bests["model-level"] > max(bests["early"], bests["late"])
        stds = [models[n]["std_accuracy"] for names in groups.values() for n in names]
        noise = ("one fold: no fold-to-fold spread was measured" if None in stds else
                 f"fold-to-fold std up to {pct(max(stds))} points: differences of a point or two are within the "
                 f"noise of {n_folds(models)} folds")
        verdicts.append(
            f"- {label}: group means model-level {pct(means['model-level'])}, early {pct(means['early'])}, late "
            f"{pct(means['late'])}; best of each {pct(bests['model-level'])} / {pct(bests['early'])} / "
            f"{pct(bests['late'])}. The claim {'holds' if holds else 'does NOT hold'} here"
            f" ({noise}).")
    return lines + ["", *verdicts]


def _random_vs_speaker(models, random_res) -> list[str]:
    """Paper 004's random split next to the speaker-disjoint folds."""
    lines = ["Paper 004 reports 95.07 % on RAVDESS with a random split of the clips (the same actors on both "
             f"sides). The same pipeline and the recommended model, {n_folds(random_res['models'])} random fold(s) of "
             "the takes (validation takes drawn from the training part) vs the "
             f"{n_folds(models)} speaker-disjoint fold(s):", "",
             "| model | random split (speakers on both sides) | speaker-disjoint | gap (points) |",
             "|---|---|---|---|"]
    for name, m in random_res["models"].items():
        s = models.get(name)
        gap = f"{100 * (m['mean_accuracy'] - s['mean_accuracy']):+.1f}" if s else "n/a"
        lines.append(f"| {name} | {pct_sd(m)} | {_cell(s)} | {gap} |")
    return lines + ["", "The random-split numbers are optimistic by construction (the model has heard the test "
                    "speakers) and are only reported next to the speaker-disjoint ones; the full random-split "
                    "report is `ravdess_au_random.md`."]


def _exploration_table(explore) -> list[str]:
    lines = ["How the recipe was chosen, with scores that never saw a test speaker: in each fold the 2 "
             "validation speakers are the inner test set, the next 2 training speakers the inner validation "
             "set (early stopping, calibration), the other 12 train (`inner_splits`). Mean ± std over the 5 "
             "inner test sets (10 speakers, 600 takes); differences under ~2 points are noise.", "",
             "| candidate | question | inner accuracy | per inner fold | inner NLL | s |",
             "|---|---|---|---|---|---|"]
    for name, r in explore.items():
        lines.append(f"| {name} | {r['question']} | {pct(r['mean'])} ± {pct(r['std'])} | "
                     + ", ".join(pct(a) for a in r["inner_accuracy"]) + f" | {r['nll']:.3f} | {r['seconds']:.0f} |")
    return lines


#: the candidate each exploration question compares against
REFERENCE = {"audio head": "whisper_mlp linear", "AU head": "au_mlp (128, 64), dropout 0.3",
             "fusion": "late_calibrated: Whisper linear x AU", "seed spread": "late_calibrated: Whisper linear x AU"}


def reference_of(name: str, row: dict, explore: dict) -> str | None:
    if row["question"] == "zoo training":
        return next((n for n, r in explore.items() if r["question"] == "zoo training" and r["model"] == row["model"]
                     and not r["train"]), None)
    if row["question"] == "speaker norm":
        return next((n for n, r in explore.items() if r["question"] == "fusion" and r["model"] == row["model"]
                     and r["model_config"] == row["model_config"] and r["seeds"] == row["seeds"]), None)
    return REFERENCE.get(row["question"])


def effect_lines(explore: dict) -> list[str]:
    """One line per candidate: its paired difference to the reference of its question, and a verdict."""
    lines = ["Paired differences to the reference candidate of each question, over the 5 inner test sets: mean ± "
             "standard error of the per-fold differences (accuracy points), and the NLL difference. 'helped' / "
             "'hurt' = the mean difference is at least twice its standard error, else 'no clear effect' (with 5 "
             "inner folds, a rough two-sided ~10 % test; the 'seed spread' rows show what one configuration "
             "scores with other seeds)."]
    for name, row in explore.items():
        ref = reference_of(name, row, explore)
        if ref is None or ref == name or ref not in explore:
            continue
        diffs = 100 * (np.array(row["inner_accuracy"]) - np.array(explore[ref]["inner_accuracy"]))
        d, se = float(diffs.mean()), float(diffs.std(ddof=1) / np.sqrt(len(diffs)))
        d_nll = row["nll"] - explore[ref]["nll"]
        verdict = "helped" if d >= 2 * se and d > 0 else "hurt" if -d >= 2 * se and d < 0 else "no clear effect"
        lines.append(f"- {name}: {d:+.1f} ± {se:.1f} points, NLL {d_nll:+.3f} vs `{ref}` -- {verdict}.")
    return lines


def part_report(ctx) -> None:
    from avemo.evaluation.benchmark import summarise_results, write_report
    suite = ctx.suite
    slow = list(suite.train_overrides)
    from avemo.features.audio.whisper_encoder import load_encoder

    results = _merge_main(ctx)
    if results is None:
        raise SystemExit("no main results under --work yet: run --parts main first")
    svm = load(ctx.work / "svm.pkl", {})
    groups = {name: group for name, (_config, group) in baselines().items()}
    for name, (config, folds) in svm.items():
        if name not in groups:  # a baseline of an earlier version of this script (e.g. under its old name)
            continue
        results["models"][name] = {
            "model": "scikit-learn " + ("SVC (RBF)" if config.classifier == "svm" else "LogisticRegression"),
            "model_config": {}, "train": {"speaker_norm": config.speaker_norm}, "seeds": [],
            "group": groups.get(name, "floor (SVM)"), "note": config.describe(),
            "paper": "../shared/GUIDE.md (RAVDESS-AU floor)" if config.classifier == "svm" else "",
            "inputs": {"x": config.describe().split(";")[0]}, **summarise_results(folds),
            "C": [f.metrics["C"] for f in folds]}
        results["_folds"][name] = folds
    explore = load(ctx.work / "explore.pkl", {})
    random_res = load(ctx.work / "random.pkl")
    timing = load(ctx.work / "timing.pkl")
    sections = answer_sections(ctx.suite, results, explore, svm, random_res, timing)
    frozen = sum(p.numel() for p in load_encoder().parameters()) / 1e6
    notes = [
        "Seeds: one per model (0) except `default` / `default_spknorm` (probabilities of 5 seeds averaged).",
        f"`params` are trainable parameters: models on `whisper_base` also run the frozen, pretrained Whisper-base "
        f"encoder ({frozen:.1f} M parameters, not trained here) at feature extraction.",
        "`*_whisper`: paper 000's fusion method with `whisper_mlp` (frozen Whisper-base embedding) as the audio "
        "encoder instead of the MFCC 1D CNN; `*_spknorm`: speaker-level feature normalisation.",
        f"The recurrent models {', '.join(f'`{n}`' for n in slow)} train for at most 15 epochs "
        "(patience 5) instead of 60 (patience 15): 20-120 s per epoch on the shared 2-core CPU "
        f"(`train_overrides` of the suite: {suite.train_overrides[slow[0]]}).",
        "Paper numbers are the papers' own, on their own data and protocols (video frames, other splits): "
        "they are context, not a like-for-like comparison.",
        "`whisper_logreg` is the registry model (the Whisper-base layer means concatenated, fitted in closed form); "
        "`whisper_sklearn_logreg` is this script's scikit-learn LogisticRegression on the `whisper_base` vector, C "
        "chosen on the validation speakers (named `whisper_logreg` in reports written before 2026-12-06). The "
        "registry model with and without channel augmentation, on the same plan: `generalisation.md`, section "
        "\"In-domain: RAVDESS speaker-disjoint 5-fold, audio only\".",
    ]
    missing = [e.name for e in suite.benchmark_entries(ctx.models, extended=True) if e.name not in results["models"]]
    if missing:
        notes.append("Not run (no result under `--work` when this report was written; the suite has them, "
                     "`--parts main --models NAME` runs one): " + ", ".join(f"`{n}`" for n in missing) + ".")
    # the command that reproduces everything in the report (all parts, whatever part wrote it)
    args = [a for i, a in enumerate(sys.argv[1:], 1) if "--parts" not in (a, sys.argv[i - 1])]
    command = " ".join(["python benchmarks/ravdess_au.py", *(shlex.quote(a) for a in args)])
    extra = {"targets": {"best": TARGET_BEST, "audio_only": TARGET_AUDIO, "au_only": TARGET_AU,
                         "cold_cache_seconds": TARGET_SECONDS},
             "exploration": explore, "timing": timing}
    title = f"RAVDESS-AU: speaker-disjoint {n_folds(results['models'])}-fold CV"
    json_path, md_path = write_report(results, ctx.out, "ravdess_au", title=title, command=command,
                                      paper_numbers=suite.papers, notes=notes, sections=sections, extra=extra)
    log(f"wrote {md_path} and {json_path}")
    if random_res:
        write_report(random_res, ctx.out, "ravdess_au_random", command=command,
                     **random_report(suite, n_folds(random_res["models"])))


def random_report(suite, folds: int) -> dict[str, Any]:
    """The title (over ``folds`` folds), paper numbers and notes of ``ravdess_au_random.md``."""
    return {"title": f"RAVDESS-AU: RANDOM-SPLIT {folds}-fold CV (speakers on both sides; comparison only)",
            "paper_numbers": {"mfa_fercnn": suite.papers["mfa_fercnn"]},
            "notes": ["Not a reported result: the same speakers are in training and test. See ravdess_au.md "
                      "for the speaker-disjoint numbers."]}


def rewrite_random_report(out: Path) -> Path:
    """``--from-json``: ``OUT/ravdess_au_random.md`` written again from ``OUT/ravdess_au_random.json``
    (no data, no training, figures as they are). ``ravdess_au.md`` cannot be: its answers and
    exploration sections are derived from the per-part results under ``--work``."""
    from avemo.evaluation.benchmark import rewrite_report
    from avemo.evaluation.suite import load_suite

    path = out / "ravdess_au_random.json"
    try:
        folds = n_folds(json.loads(path.read_text(encoding="utf-8"))["models"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        folds = 0  # not a result file: rewrite_report says so in one line
    return rewrite_report(path, **random_report(load_suite("ravdess_au"), folds))


# ----------------------------------------------------------------------------- main


class Context:
    """What every part needs: the data, the speaker-disjoint splits, the cache, the base training config."""

    def __init__(self, args):
        from avemo.cache import FeatureCache
        from avemo.evaluation.suite import load_suite

        self.root, self.table, self.out, self.work = args.root, args.visual_table, args.out, args.work
        self.workers, self.threads, self.executor = args.workers, args.threads, args.executor
        self.models = args.models.split(",") if args.models else None
        self.cache = FeatureCache(args.cache)
        self.suite = load_suite("ravdess_au")
        self.data = self.suite.load_data(args.root, visual_table=args.visual_table)
        self.base = self.suite.train_config()
        self.speaker_splits = self.suite.splits(self.data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=SHARED / "speech_audio")
    ap.add_argument("--visual-table", type=Path, default=SHARED / "openface_au_means.csv")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "results")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "avemo-cache")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "avemo-ravdess-au",
                    help="where each part stores its results (resumable)")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    ap.add_argument("--models", default=None, help="restrict the main part to these suite entries")
    ap.add_argument("--workers", type=int, default=2,
                    help="feature extraction processes (and Ray CPUs with --executor ray)")
    ap.add_argument("--executor", choices=("local", "ray"), default="local",
                    help="main part: train the folds one after another in this process (local), or as "
                         "parallel Ray tasks of one CPU and one torch thread each (ray)")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads for training (0: 2 for sequence models, 1 for vector models)")
    ap.add_argument("--from-json", action="store_true",
                    help="only write OUT/ravdess_au_random.md again from OUT/ravdess_au_random.json (no training; "
                         "ravdess_au.md needs the part results under --work)")
    args = ap.parse_args()
    if args.from_json:
        log(f"wrote {rewrite_random_report(args.out)}")
        return
    run_parts(parse_parts(args.parts, PARTS), PARTS, globals(), Context(args))


if __name__ == "__main__":
    main()
