"""RAVDESS -> EmoDB-dev with the recipe's hyper-parameters chosen without the test speakers (issue 11).

    python benchmarks/crosscorpus_nested.py [--parts copies,candidates,report]
        [--suite benchmarks/generalisation_suite.toml] [--out docs/results] [--work DIR]
        [--data ../shared/data] [--cache DIR] [--workers 2] [--variants plain,augmented] [--quick]

The recipe's ``C`` and ``combine`` were chosen in an exploration that used EmoDB-dev as a validation
corpus, so the crosscorpus figure of ``generalisation.py`` (EmoDB-dev as the test corpus) is optimistic
about them. This script gives the honest figure by a nested, speaker-disjoint selection:

* every candidate of the suite's ``[nested] grid`` (model-config overrides of the recipe, their
  cartesian product) is trained as the crosscorpus part trains the recipe (RAVDESS only, every speaker
  but the validation speakers, variants ``plain`` and ``augmented``, the same training config) and
  scored on every EmoDB-dev clip over the shared labels (RAVDESS calm counted as neutral, EmoDB
  boredom left out) and on the CREMA-D clips;
* for each EmoDB-dev speaker as the test speaker, the candidate with the best UAR on the clips of the
  other EmoDB-dev speakers (pooled) is chosen (ties: the first in the grid's order) and scores the test
  speaker's clips; the held-out predictions of all the speakers are pooled (accuracy, UAR, macro-F1);
* the CREMA-D clips are scored with the candidate chosen on all the EmoDB-dev speakers (CREMA-D
  chooses nothing); the fixed recipe is scored on the same clips for comparison.

Parts (results under ``--work``, shared with ``generalisation.py``: the recipe's own crosscorpus
checkpoints are reused): ``copies`` (the augmentation copies of the crosscorpus training set, into
the feature cache), ``candidates`` (train and score every candidate), ``report``
(``OUT/crosscorpus_nested.{md,json}``). ``--quick``: a few clips, the suite's ``[quick]`` recipe and
``nested_grid`` (the smoke test of ``tests/test_benchmark_crosscorpus_nested.py``).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import generalisation as gen  # noqa: E402
from parts import load, log, save  # noqa: E402

PARTS = ("copies", "candidates", "report")
TARGETS = ("emodb", "crema_d")


# ----------------------------------------------------------------------------- candidates
def grid_table(ctx: gen.Context) -> dict[str, list]:
    """The suite's grid: model-config key -> the values to try (``[quick] nested_grid`` with ``--quick``)."""
    return ctx.suite["quick"]["nested_grid"] if ctx.quick else ctx.suite["nested"]["grid"]


def grid(ctx: gen.Context) -> list[dict[str, Any]]:
    """The candidates: the cartesian product of the grid's values, in its order (first key slowest)."""
    table = grid_table(ctx)
    keys = list(table)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(table[k] for k in keys))]


def candidate_name(overrides: dict[str, Any]) -> str:
    """A candidate's name, e.g. ``combine=concat C=0.03`` (also its run folder, without the spaces)."""
    return " ".join(f"{k}={json.dumps(v, separators=(',', ':')).strip(chr(34))}" for k, v in overrides.items())


def is_recipe(ctx: gen.Context, overrides: dict[str, Any]) -> bool:
    return {**ctx.model_config, **overrides} == ctx.model_config


def run_dir(ctx: gen.Context, variant: str, overrides: dict[str, Any]) -> Path:
    """The recipe's own crosscorpus checkpoint for the recipe; a folder of its own for another candidate."""
    if is_recipe(ctx, overrides):
        return gen.crosscorpus_run(ctx, variant)
    return ctx.work / "runs" / "nested" / f"{variant}_{re.sub(r'[^A-Za-z0-9.=_-]+', '_', candidate_name(overrides))}"


RECIPE = "recipe"  # the key of the fixed recipe's scores


def part_copies(ctx: gen.Context) -> None:
    """The augmentation copies of the crosscorpus training set (the augmented variant's), into the cache."""
    if "augmented" in ctx.variants:
        gen.extract_copies(ctx, [gen.crosscorpus_split(ctx)[1]])


def part_candidates(ctx: gen.Context) -> None:
    """Every candidate (and the fixed recipe) trained on RAVDESS, scored on every EmoDB-dev and CREMA-D clip."""
    rav, train, val = gen.crosscorpus_split(ctx)
    path = ctx.work / "nested.pkl"
    res = load(path, {"scores": {}, "runs": []})
    started, load_before = time.strftime("%H:%M"), os.getloadavg()
    speaker = {t.key: t.speaker for t in ctx.data("emodb").takes}
    todo = [(RECIPE, {})] + [(candidate_name(o), o) for o in grid(ctx) if not is_recipe(ctx, o)]
    for variant in ctx.variants:
        for name, overrides in todo:
            if (variant, name) in res["scores"]:
                continue
            model = (ctx.model, {**ctx.model_config, **overrides})
            ckpt = ctx.fit(rav, train, val, run_dir(ctx, variant, overrides), variant, model=model)
            scores = {}
            for target in TARGETS:
                ev = ctx.evaluate(ckpt, ctx.data(target))
                scores[target] = {"takes": list(ev.takes), "y_true": ev.y_true, "probabilities": ev.probabilities,
                                  "labels": list(ev.metrics.labels), "left_out": dict(ev.left_out)}
            scores["emodb"]["speakers"] = [speaker[k] for k in scores["emodb"]["takes"]]
            res["scores"][(variant, name)] = scores
            save(path, res)
            log(f"nested {variant} {name}: trained and scored ({len(scores['emodb']['takes'])} EmoDB-dev clips, "
                f"{len(scores['crema_d']['takes'])} CREMA-D clips)")
    res["runs"].append({"started": started, "ended": time.strftime("%H:%M"), "load_before": load_before,
                        "load_after": os.getloadavg()})
    save(path, res)


# ----------------------------------------------------------------------------- nested selection
def scores_of(y_true: np.ndarray, probabilities: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Accuracy, UAR, macro-F1, confusion (:func:`~avemo.metrics.compute_metrics`) and ECE of predictions."""
    from avemo.metrics import compute_metrics, expected_calibration_error
    from avemo.training.scoring import CALIBRATION_BINS

    out = compute_metrics(y_true, probabilities, labels).to_dict()
    out["ece"] = expected_calibration_error(probabilities, y_true, CALIBRATION_BINS)
    out["uar_se"] = uar_standard_error(out["confusion"])
    return out


def uar_standard_error(confusion: list[list[int]]) -> float:
    """The binomial standard error of a UAR, ``sqrt(sum_c r_c (1 - r_c) / n_c) / K`` over the K labels
    with clips (recall ``r_c`` on ``n_c`` clips, taken as independent: clips of one speaker are not,
    so it understates the error)."""
    cm = np.asarray(confusion, dtype=np.float64)
    n = cm.sum(axis=1)
    r = np.diag(cm)[n > 0] / n[n > 0]
    return float(np.sqrt(np.sum(r * (1 - r) / n[n > 0])) / len(r))


def pct2(x: float) -> str:
    """A share in % with two decimals (where one decimal would round across a target)."""
    return f"{100 * x:.2f}"


def nested_selection(candidates: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Leave one speaker out over ``candidates`` (name -> ``{"y_true", "probabilities", "speakers",
    "labels", "takes"}``, the same takes in the same order, in the order ties are broken): for each
    speaker, the candidate with the best UAR on the other speakers' clips scores that speaker's clips.

    Returns ``{"per_speaker": {speaker: {"chosen", "selection_uar", "n", "uar", "accuracy"}},
    "pooled": scores of the pooled held-out predictions, "chosen_on_all": the best candidate on every clip}``.
    """
    from avemo.metrics import compute_metrics

    first = next(iter(candidates.values()))
    for name, c in candidates.items():
        if c["takes"] != first["takes"] or c["labels"] != first["labels"]:
            raise SystemExit(f"candidate {name} scored other takes or labels than {next(iter(candidates))}")
    y, labels = np.asarray(first["y_true"]), first["labels"]
    speakers = np.asarray(first["speakers"])

    def uar(c: dict, mask: np.ndarray) -> float:
        return compute_metrics(y[mask], np.asarray(c["probabilities"])[mask], labels).uar

    def best(mask: np.ndarray) -> tuple[str, float]:
        values = {name: uar(c, mask) for name, c in candidates.items()}
        name = max(values, key=lambda k: values[k])  # the first of the best, in the candidates' order
        return name, values[name]

    probs = np.zeros_like(np.asarray(first["probabilities"], dtype=np.float64))
    per_speaker = {}
    for s in sorted(set(speakers.tolist())):
        test = speakers == s
        chosen, selection_uar = best(~test)
        probs[test] = np.asarray(candidates[chosen]["probabilities"])[test]
        held = scores_of(y[test], probs[test], labels)
        per_speaker[s] = {"chosen": chosen, "selection_uar": selection_uar, "n": int(test.sum()),
                          "uar": held["uar"], "accuracy": held["accuracy"]}
    chosen_on_all, _ = best(np.ones(len(y), dtype=bool))
    return {"per_speaker": per_speaker, "pooled": scores_of(y, probs, labels), "chosen_on_all": chosen_on_all}


def summarise(ctx: gen.Context, res: dict) -> dict[str, Any]:
    """Per variant with every candidate scored: the nested selection, the fixed recipe on the same clips
    (pooled and per speaker), the CREMA-D clips, and each candidate's pooled EmoDB-dev UAR (not a result)."""
    names = [candidate_name(o) for o in grid(ctx)]
    recipe_in_grid = [candidate_name(o) for o in grid(ctx) if is_recipe(ctx, o)]
    out = {}
    for variant in gen.VARIANTS:
        scores = {n: res["scores"].get((variant, RECIPE if n in recipe_in_grid else n)) for n in names}
        recipe = res["scores"].get((variant, RECIPE))
        if recipe is None or any(s is None for s in scores.values()):
            continue
        emodb = {n: s["emodb"] for n, s in scores.items()}
        nested = nested_selection(emodb)
        r = recipe["emodb"]
        speakers = np.asarray(r["speakers"])
        fixed = {s: scores_of(np.asarray(r["y_true"])[speakers == s], np.asarray(r["probabilities"])[speakers == s],
                              r["labels"])["uar"] for s in nested["per_speaker"]}
        crema = {name: scores_of(s["crema_d"]["y_true"], s["crema_d"]["probabilities"], s["crema_d"]["labels"])
                 for name, s in (("chosen", scores[nested["chosen_on_all"]]), ("recipe", recipe))}
        out[variant] = {
            **nested,
            "recipe": scores_of(r["y_true"], r["probabilities"], r["labels"]),
            "recipe_per_speaker_uar": fixed,
            "crema_d": {**crema, "chosen_candidate": nested["chosen_on_all"]},
            "left_out": {"emodb": r["left_out"], "crema_d": recipe["crema_d"]["left_out"]},
            "candidates_pooled_uar_not_a_result": {
                n: scores_of(e["y_true"], e["probabilities"], e["labels"])["uar"] for n, e in emodb.items()},
        }
    return out


# ----------------------------------------------------------------------------- report
def _answers(ctx: gen.Context, summary: dict, target: float) -> list[str]:
    """The report's answer lines: the nested UAR per variant against the target, and CREMA-D."""
    answers = []
    if summary:
        answers.append(f"- **RAVDESS -> EmoDB-dev UAR, nested** (target >= {target:.0f} %): " + ", ".join(
            f"{v} {pct2(s['pooled']['uar'])} % (standard error about {100 * s['pooled']['uar_se']:.1f} points)"
            for v, s in summary.items())
            + f" -- {gen._verdict({v: s['pooled']['uar'] for v, s in summary.items()}, target)}. "
            "The fixed recipe on the same clips (its C chosen with EmoDB-dev in view): " + ", ".join(
            f"{v} {pct2(s['recipe']['uar'])} %" for v, s in summary.items()) + ".")
        answers.append("- **RAVDESS -> CREMA-D clips**, the candidate chosen on all of EmoDB-dev: " + ", ".join(
            f"{v} ({s['crema_d']['chosen_candidate']}) {gen.pct(s['crema_d']['chosen']['accuracy'])} % accuracy, "
            f"UAR {gen.pct(s['crema_d']['chosen']['uar'])} % on {s['crema_d']['chosen']['n']} clips"
            for v, s in summary.items()) + ".")
    missing = [v for v in ctx.variants if v not in summary]
    if missing:
        answers.append(f"- Not run (not every candidate scored under `--work`): {', '.join(missing)}.")
    return answers


def _variant_section(ctx: gen.Context, v: str, s: dict) -> list[str]:
    """One variant's section: held-out speakers, pooled rows, confusion, every candidate (not a result)."""
    lines = [f"## {v}", "", "**Held-out EmoDB-dev speakers**", "",
             "| test speaker | clips | chosen on the other speakers | its UAR there | test speaker UAR "
             "(held out) | fixed recipe UAR |", "|---|---|---|---|---|---|"]
    for sp, r in s["per_speaker"].items():
        lines.append(f"| {sp} | {r['n']} | {r['chosen']} | {gen.pct(r['selection_uar'])} | {gen.pct(r['uar'])} | "
                     f"{gen.pct(s['recipe_per_speaker_uar'][sp])} |")
    lines += ["", "**Pooled over the speakers**", "", *gen.EVAL_HEAD,
              gen._eval_row("EmoDB-dev, nested (held-out predictions)", s["pooled"]),
              gen._eval_row(f"EmoDB-dev, fixed recipe ({candidate_name(ctx.model_config)})", s["recipe"]),
              gen._eval_row(f"CREMA-D, chosen on all of EmoDB-dev ({s['crema_d']['chosen_candidate']})",
                            s["crema_d"]["chosen"]),
              gen._eval_row("CREMA-D, fixed recipe", s["crema_d"]["recipe"]), "",
              f"Left out (no partner label): EmoDB-dev {s['left_out']['emodb'] or 'none'}, "
              f"CREMA-D {s['left_out']['crema_d'] or 'none'}.", "",
              "Confusion of the nested held-out predictions, EmoDB-dev:", "", *gen._confusion(s["pooled"]), "",
              "**Every candidate's pooled EmoDB-dev UAR -- NOT a result**: choosing the best of these would "
              "choose on the test speakers; shown only to see how much the choice matters.", "",
              "| candidate | pooled UAR | chosen for speakers |", "|---|---|---|"]
    recipes = {candidate_name(o) for o in grid(ctx) if is_recipe(ctx, o)}
    for name, u in s["candidates_pooled_uar_not_a_result"].items():
        chosen_for = [sp for sp, r in s["per_speaker"].items() if r["chosen"] == name]
        lines.append(f"| {name}{' (the recipe)' if name in recipes else ''} | "
                     f"{gen.pct(u)} | {', '.join(chosen_for)} |")
    lines.append("")
    return lines


def part_report(ctx: gen.Context) -> None:
    import report as bench_report

    from avemo.models.checkpoint import package_versions
    from avemo.output_file import OutputFile

    res = load(ctx.work / "nested.pkl", {"scores": {}, "runs": []})
    summary = summarise(ctx, res)
    target = float(ctx.suite["targets"]["ravdess_to_emodb_uar"])
    command = gen.report_command("crosscorpus_nested.py")
    recipe = f"`{ctx.model}` {json.dumps(ctx.model_config)}"
    table = grid_table(ctx)
    lines = ["# RAVDESS -> EmoDB-dev with C and combine chosen without the test speakers (nested)", "",
             f"- Command: `{command}` (parts: {', '.join(PARTS)}; results under `--work`)",
             f"- Date: {time.strftime('%Y-%m-%d %H:%M')}; machine: {bench_report.machine()}",
             f"- Versions: {bench_report.versions('scikit-learn')}",
             *(f"- Candidates trained and scored {r['started']}-{r['ended']} UTC, load average (1/5/15 min) "
               f"{' / '.join(f'{x:.2f}' for x in r['load_before'])} at the start and "
               f"{' / '.join(f'{x:.2f}' for x in r['load_after'])} at the end (2 cores shared by several jobs)"
               for r in res["runs"]),
             f"- Load average at the report (1/5/15 min): {bench_report.load()}",
             f"- Recipe (fixed, for comparison): {recipe} on `{ctx.feature}`; training "
             f"{json.dumps(ctx.suite['quick' if ctx.quick else 'recipe']['train'])}; augmentation (variant "
             "'augmented'): `TrainConfig.augment.channels` " + json.dumps(dict(vars(ctx.channels))),
             f"- Candidates: {' x '.join(f'{k} in {json.dumps(v)}' for k, v in table.items())} "
             f"({len(grid(ctx))}), each overriding the recipe's model config", "",
             "## Protocol", "",
             "Each candidate is trained as the crosscorpus part of `benchmarks/generalisation.py` trains the recipe: "
             f"RAVDESS only, every speaker but the validation speakers {ctx.ravdess_val}, the same training config, "
             "without ('plain') and with ('augmented') the degraded copies. Every candidate is scored on every "
             "EmoDB-dev clip over the labels EmoDB shares with RAVDESS (RAVDESS calm counted as neutral, EmoDB "
             "boredom left out). Then, for each EmoDB-dev speaker as the test speaker, the candidate with the best "
             "UAR on the pooled clips of the **other** EmoDB-dev speakers is chosen (ties: the first in the grid's "
             "order) and scores the test speaker's clips; the test speaker's clips never choose. The held-out "
             "predictions of all the speakers are pooled. The CREMA-D clips are scored with the candidate chosen "
             "on all the EmoDB-dev speakers (EmoDB-dev as a validation corpus; CREMA-D chooses nothing).", ""]
    answers = _answers(ctx, summary, target)
    lines += ["## Answers", "", *answers, ""]
    for v, s in summary.items():
        lines += _variant_section(ctx, v, s)
    notes = list(ctx.suite.get("nested", {}).get("notes", [])) if not ctx.quick else []
    if notes:
        lines += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    ctx.out.mkdir(parents=True, exist_ok=True)
    with OutputFile(ctx.out / "crosscorpus_nested.md") as fh:
        fh.commit("\n".join(lines).rstrip() + "\n")
    result = {"command": command, "quick": ctx.quick, "recipe": {"model": ctx.model, "model_config": ctx.model_config,
                                                                  "feature": ctx.feature},
              "grid": table, "augment_channels": vars(ctx.channels), "versions": package_versions(),
              "target_uar": target, "runs": res["runs"], "variants": summary}
    with OutputFile(ctx.out / "crosscorpus_nested.json") as fh:
        fh.commit(json.dumps(result, indent=1, default=float) + "\n")
    log(f"wrote {ctx.out / 'crosscorpus_nested.md'}")


def main(argv: list[str] | None = None) -> None:
    ap = gen.parser(__doc__.splitlines()[0], PARTS, ["candidates", "report"])
    gen.run(ap.parse_args(argv), PARTS, globals())


if __name__ == "__main__":
    main()
