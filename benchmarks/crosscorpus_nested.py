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

The extended grid (the suite's ``[nested.egemaps]``, added after the first report; a section of its
own, the sections above it unchanged): eGeMAPS candidates (``egemaps_logreg``, a closed-form logistic
regression on the 88 eGeMAPS functionals, over its ``grid``), trained as the Whisper candidates, and
ensembles of one Whisper candidate (``ensemble_with``) with each of them, the weighted mean of their
log-probabilities (``w_egemaps``; nothing fitted). The same nested selection within each family
(Whisper grid, eGeMAPS alone, ensembles) and over all of them; each family's candidate chosen on all
of EmoDB-dev scores the CREMA-D clips.

The third family (the suite's ``[nested.layer_norm]``, added after the two sections above had been seen;
a section of its own, the sections above it unchanged): the Whisper grid again, each candidate with the
overrides ``set`` as well (``layer_norm = true``: each Whisper layer mean standardised over its dimensions),
trained as the other Whisper candidates. The same nested selection within the family, over the two
Whisper grids together (without and with the overrides: the choice a user of the toolkit has) and over
every family; each one's candidate chosen on all of EmoDB-dev scores the CREMA-D clips.

Parts (results under ``--work``, shared with ``generalisation.py``: the recipe's own crosscorpus
checkpoints are reused): ``copies`` (the augmentation copies of the crosscorpus training set, into
the feature cache, through the recipe's extractor and the eGeMAPS candidates'), ``candidates`` (train
and score every candidate), ``report``
(``OUT/crosscorpus_nested.{md,json}``). ``--quick``: a few clips, the suite's ``[quick]`` recipe, ``nested_grid``,
``nested_egemaps`` and ``nested_layer_norm`` (the smoke test of ``tests/test_benchmark_crosscorpus_nested.py``).
Two processes (e.g. ``--variants plain`` and ``--variants augmented``) may share a ``--work``: each saves
``nested.pkl`` merged with what the other wrote, under a lock (``parts.save_merged``).
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
from parts import load, log, save_merged  # noqa: E402

PARTS = ("copies", "candidates", "report")
TARGETS = ("emodb", "crema_d")


# ----------------------------------------------------------------------------- candidates
def grid_table(ctx: gen.Context) -> dict[str, list]:
    """The suite's grid: model-config key -> the values to try (``[quick] nested_grid`` with ``--quick``)."""
    return ctx.suite["quick"]["nested_grid"] if ctx.quick else ctx.suite["nested"]["grid"]


def grid(ctx: gen.Context) -> list[dict[str, Any]]:
    """The candidates: the cartesian product of the grid's values, in its order (first key slowest)."""
    return product(grid_table(ctx))


def product(table: dict[str, list]) -> list[dict[str, Any]]:
    """The cartesian product of a grid (key -> the values to try), in its order (first key slowest)."""
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
    return nested_dir(ctx, variant, candidate_name(overrides))


def nested_dir(ctx: gen.Context, variant: str, name: str) -> Path:
    """The run folder of candidate ``name`` (not the recipe) trained with ``variant``."""
    return ctx.work / "runs" / "nested" / f"{variant}_{re.sub(r'[^A-Za-z0-9.=_-]+', '_', name)}"


RECIPE = "recipe"  # the key of the fixed recipe's scores


def part_copies(ctx: gen.Context) -> None:
    """The augmentation copies of the crosscorpus training set (the augmented variant's), into the cache:
    through the recipe's extractor, and through the eGeMAPS candidates' where that is another one."""
    if "augmented" in ctx.variants:
        sets = [gen.crosscorpus_split(ctx)[1]]
        gen.extract_copies(ctx, sets)
        feature = egemaps_feature(ctx)
        if feature is not None and feature != ctx.feature:
            gen.extract_copies(ctx, sets, feature=feature)


def to_train(ctx: gen.Context, variant: str) -> list[tuple[str, tuple[str, dict[str, Any]], Path]]:
    """(score key, (model, config), run folder) of everything trained for ``variant``: the fixed recipe,
    the other candidates of the grid, the eGeMAPS candidates, then the third family's."""
    todo = [(RECIPE, (ctx.model, ctx.model_config), run_dir(ctx, variant, {}))]
    todo += [(candidate_name(o), (ctx.model, {**ctx.model_config, **o}), run_dir(ctx, variant, o))
             for o in grid(ctx) if not is_recipe(ctx, o)]
    todo += [(name, model, nested_dir(ctx, variant, name)) for name, model in egemaps_candidates(ctx)]
    todo += [(score_key(ctx, o), (ctx.model, {**ctx.model_config, **o}), run_dir(ctx, variant, o))
             for o in third_grid(ctx) if not is_recipe(ctx, o)]
    return todo


def score_key(ctx: gen.Context, overrides: dict[str, Any]) -> str:
    """Where a recipe candidate's scores are kept: under :data:`RECIPE` for the recipe, else its name."""
    return RECIPE if is_recipe(ctx, overrides) else candidate_name(overrides)


def recipe_scores(ctx: gen.Context, res: dict, variant: str, candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """Candidate name -> its scores for ``variant`` (None where not scored) of recipe overrides ``candidates``."""
    return {candidate_name(o): res["scores"].get((variant, score_key(ctx, o))) for o in candidates}


def candidate_scores(ctx: gen.Context, checkpoint: Path) -> dict[str, dict[str, Any]]:
    """A checkpoint's predictions on every EmoDB-dev and CREMA-D clip (takes, labels, probabilities)."""
    speaker = {t.key: t.speaker for t in ctx.data("emodb").takes}
    scores = {}
    for target in TARGETS:
        ev = ctx.evaluate(checkpoint, ctx.data(target))
        scores[target] = {"takes": list(ev.takes), "y_true": ev.y_true, "probabilities": ev.probabilities,
                          "labels": list(ev.metrics.labels), "left_out": dict(ev.left_out)}
    scores["emodb"]["speakers"] = [speaker[k] for k in scores["emodb"]["takes"]]
    return scores


def part_candidates(ctx: gen.Context) -> None:
    """Every candidate (and the fixed recipe) trained on RAVDESS, scored on every EmoDB-dev and CREMA-D clip."""
    rav, train, val = gen.crosscorpus_split(ctx)
    path = ctx.work / "nested.pkl"
    res = load(path, {"scores": {}, "runs": []})
    started, load_before = time.strftime("%H:%M"), os.getloadavg()
    adapted = {name for name, _model in egemaps_candidates(ctx)}  # also scored with test-time mean adaptation
    for variant in ctx.variants:
        for name, model, out_dir in to_train(ctx, variant):
            scores = res["scores"].get((variant, name))
            if scores is not None and (name not in adapted or "adapted" in scores):
                continue
            if scores is None:
                scores = candidate_scores(ctx, ctx.fit(rav, train, val, out_dir, variant, model=model))
            if name in adapted:
                scores["adapted"] = {t: ctx.score_adapted(out_dir, ctx.data(t)) for t in TARGETS}
            res["scores"][(variant, name)] = scores
            save_merged(path, res)
            log(f"nested {variant} {name}: trained and scored ({len(scores['emodb']['takes'])} EmoDB-dev clips, "
                f"{len(scores['crema_d']['takes'])} CREMA-D clips)")
    if egemaps_table(ctx) and "egemaps_shift" not in res:
        res["egemaps_shift"] = feature_shift(ctx)
    res["runs"].append({"started": started, "ended": time.strftime("%H:%M"), "load_before": load_before,
                        "load_after": os.getloadavg(), "variants": list(ctx.variants)})
    save_merged(path, res)


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


# ----------------------------------------------------------------------------- eGeMAPS candidates
def egemaps_table(ctx: gen.Context) -> dict[str, Any] | None:
    """The suite's eGeMAPS candidates (``[nested.egemaps]``; ``[quick] nested_egemaps`` with ``--quick``), or None."""
    return ctx.suite["quick"].get("nested_egemaps") if ctx.quick else ctx.suite["nested"].get("egemaps")


def egemaps_candidates(ctx: gen.Context) -> list[tuple[str, tuple[str, dict[str, Any]]]]:
    """(name, (model, config)) of every eGeMAPS candidate alone: the cartesian product of the table's
    ``grid`` (e.g. ``egemaps_logreg C=0.1``), in its order."""
    table = egemaps_table(ctx)
    if not table:
        return []
    return [(f"{table['model']} {candidate_name(c)}", (table["model"], c)) for c in product(table["grid"])]


def egemaps_feature(ctx: gen.Context) -> str | None:
    """The extractor the eGeMAPS candidates read (their model's audio input), or None without them."""
    from avemo.models import default_inputs

    table = egemaps_table(ctx)
    return default_inputs(table["model"])["audio"].feature if table else None


def ensembles(ctx: gen.Context) -> list[tuple[str, str, str, float]]:
    """(name, the Whisper partner's score key, the eGeMAPS candidate's name, its weight) of every
    ensemble: the table's ``ensemble_with`` (a candidate of the grid) fused with each eGeMAPS
    candidate at each weight of ``w_egemaps``, in that order."""
    table = egemaps_table(ctx)
    if not table:
        return []
    partner = dict(table["ensemble_with"])
    if partner not in grid(ctx):
        raise SystemExit(f"ensemble_with {partner} is not a candidate of the grid {grid_table(ctx)}")
    key = RECIPE if is_recipe(ctx, partner) else candidate_name(partner)
    return [(f"{candidate_name(partner)} + {float(w):g} x {name}", key, name, float(w))
            for name, _model in egemaps_candidates(ctx) for w in table["w_egemaps"]]


def fuse(whisper: dict[str, Any], egemaps: dict[str, Any], w: float) -> dict[str, Any]:
    """Late fusion of two candidates' predictions on one test set: the weighted mean of their
    log-probabilities, renormalised, ``softmax((1 - w) log p_whisper + w log p_egemaps)`` (the product
    of experts of the zoo's ``late_calibrated`` with fixed weights and no temperature)."""
    if whisper["takes"] != egemaps["takes"] or whisper["labels"] != egemaps["labels"]:
        raise SystemExit("the ensemble's candidates scored other takes or labels")
    log_p = ((1 - w) * np.log(np.clip(np.asarray(whisper["probabilities"], dtype=np.float64), 1e-12, None))
             + w * np.log(np.clip(np.asarray(egemaps["probabilities"], dtype=np.float64), 1e-12, None)))
    p = np.exp(log_p - log_p.max(axis=1, keepdims=True))
    return {**whisper, "probabilities": p / p.sum(axis=1, keepdims=True)}


def feature_shift(ctx: gen.Context, top: int = 6) -> list[tuple[str, float, float, float]]:
    """(functional, RAVDESS mean, EmoDB-dev mean, z) of the ``top`` eGeMAPS functionals whose EmoDB-dev mean
    (all its clips) lies farthest from the crosscorpus training clips', in their standard deviations ``z``."""
    from avemo.features.audio.egemaps import functional_names
    from avemo.models import default_inputs
    from avemo.training.data import gather

    specs = default_inputs(egemaps_table(ctx)["model"])
    means, x = {}, {}
    for corpus, takes in (("ravdess", gen.crosscorpus_split(ctx)[1]), ("emodb", ctx.data("emodb").takes)):
        got = gather(takes, specs, cache=ctx.cache, workers=ctx.workers)
        x[corpus] = np.stack(got.inputs["audio"]).astype(np.float64)
        means[corpus] = x[corpus].mean(axis=0)
    sd = x["ravdess"].std(axis=0)
    z = (means["emodb"] - means["ravdess"]) / np.where(sd > 0, sd, 1.0)
    names = functional_names()
    return [(names[i], float(means["ravdess"][i]), float(means["emodb"][i]), float(z[i]))
            for i in np.argsort(-np.abs(z))[:top]]


FAMILIES = ("Whisper (the grid above)", "eGeMAPS alone", "Whisper recipe + eGeMAPS")
EXTENDED = "extended grid (all three)"


def extended_families(ctx: gen.Context, res: dict, variant: str) -> dict[str, dict[str, dict]] | None:
    """Family -> {candidate name -> its scores on both test sets} for ``variant`` (each family in its
    order; the grid's recipe under its grid name), or None while some candidate is not scored."""
    whisper = recipe_scores(ctx, res, variant, grid(ctx))
    egemaps = {n: res["scores"].get((variant, n)) for n, _model in egemaps_candidates(ctx)}
    partners = {key: res["scores"].get((variant, key)) for _n, key, _e, _w in ensembles(ctx)}
    if not egemaps or any(s is None for s in (*whisper.values(), *egemaps.values(), *partners.values())):
        return None
    fused = {name: {t: fuse(partners[key][t], egemaps[e][t], w) for t in TARGETS}
             for name, key, e, w in ensembles(ctx)}
    return dict(zip(FAMILIES, (whisper, egemaps, fused), strict=True))


def selection_with_crema(candidates: dict[str, dict]) -> dict[str, Any]:
    """:func:`nested_selection` on EmoDB-dev over ``candidates`` (name -> scores on both test sets),
    with the CREMA-D scores of the candidate chosen on all of EmoDB-dev and every candidate's pooled
    EmoDB-dev UAR (descriptive: choosing by it would choose on the test speakers)."""
    emodb = {n: s["emodb"] for n, s in candidates.items()}
    nested = nested_selection(emodb)
    crema = candidates[nested["chosen_on_all"]]["crema_d"]
    return {**nested, "crema_d": scores_of(crema["y_true"], crema["probabilities"], crema["labels"]),
            "pooled_uar_not_a_result": {n: scores_of(e["y_true"], e["probabilities"], e["labels"])["uar"]
                                        for n, e in emodb.items()}}


def with_adapted(scores: dict[str, Any]) -> dict[str, dict[str, float | str | None]]:
    """A candidate's UAR on each test set, without and with test-time mean adaptation (its ``adapted``
    scores; None where it was not scored so, the reason where the set was too small to adapt to)."""
    def uar(e: dict | None) -> float | str | None:
        return None if e is None else e.get("refused", e.get("uar"))

    adapted = scores.get("adapted", {})
    return {t: {"plain": scores_of(scores[t]["y_true"], scores[t]["probabilities"], scores[t]["labels"])["uar"],
                "adapted": uar(adapted.get(t))} for t in TARGETS}


def summarise_extended(ctx: gen.Context, res: dict) -> dict[str, Any]:
    """Per variant with every candidate scored: the nested selection within each family and over the
    extended grid (the three families, ties to the first in the order Whisper, eGeMAPS, ensembles)."""
    out = {}
    for variant in gen.VARIANTS:
        families = extended_families(ctx, res, variant)
        if families is None:
            continue
        every = {n: s for f in families.values() for n, s in f.items()}
        out[variant] = {"families": {f: selection_with_crema(c) for f, c in families.items()},
                        EXTENDED: selection_with_crema(every),
                        "egemaps_adapted_not_in_the_grid": {n: with_adapted(res["scores"][(variant, n)])
                                                            for n in families[FAMILIES[1]]}}
    return out


# ----------------------------------------------------------------------------- the third family
def third_table(ctx: gen.Context) -> dict[str, Any] | None:
    """The suite's third family (``[nested.layer_norm]``; ``[quick] nested_layer_norm`` with ``--quick``), or None."""
    return ctx.suite["quick"].get("nested_layer_norm") if ctx.quick else ctx.suite["nested"].get("layer_norm")


def third_grid(ctx: gen.Context) -> list[dict[str, Any]]:
    """The third family's candidates (recipe overrides): its ``grid``'s product, in its order, each with the
    overrides ``set`` as well (e.g. ``combine=mean C=0.003 layer_norm=true``)."""
    table = third_table(ctx)
    return [{**o, **table["set"]} for o in product(table["grid"])] if table else []


def counterparts(ctx: gen.Context) -> dict[str, str]:
    """Third-family candidate name -> the name of the same overrides without the family's ``set``."""
    table = third_table(ctx)
    return {candidate_name({**o, **table["set"]}): candidate_name(o) for o in product(table["grid"])} if table else {}


THIRD = ("the third family alone", "the two Whisper grids together", "everything (all families)")


def third_selections(ctx: gen.Context, res: dict, variant: str) -> dict[str, dict[str, dict]] | None:
    """Selection -> its candidates (name -> scores on both test sets) for ``variant``, each in the order
    ties are broken: the third family alone; the Whisper grid, then the third family (the choice a user of
    the toolkit has); every family in the order they came (Whisper grid, eGeMAPS, ensembles, the third
    family). None while some candidate is not scored."""
    third = recipe_scores(ctx, res, variant, third_grid(ctx))
    whisper = recipe_scores(ctx, res, variant, grid(ctx))
    if not third or any(s is None for s in (*third.values(), *whisper.values())):
        return None
    families = extended_families(ctx, res, variant) if egemaps_table(ctx) else {FAMILIES[0]: whisper}
    if families is None:
        return None
    every = {n: s for f in families.values() for n, s in f.items()}
    if set(every) & set(third):
        raise SystemExit(f"the third family repeats candidates of the others: {sorted(set(every) & set(third))}")
    return dict(zip(THIRD, (third, {**whisper, **third}, {**every, **third}), strict=True))


def summarise_third(ctx: gen.Context, res: dict) -> dict[str, Any]:
    """Per variant with every candidate scored: the nested selection (:func:`selection_with_crema`) over each
    of :func:`third_selections`."""
    out = {}
    for variant in gen.VARIANTS:
        selections = third_selections(ctx, res, variant)
        if selections is not None:
            out[variant] = {name: selection_with_crema(c) for name, c in selections.items()}
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


def _extended_answers(ext: dict, summary: dict, target: float) -> list[str]:
    """The new section's answer lines: the nested figure over the extended grid and per family."""
    def nested(family: str) -> str:
        return ", ".join(f"{v} {pct2(_family(s, family)['pooled']['uar'])} %" for v, s in ext.items())

    def crema(family: str) -> str:
        return ", ".join(f"{v} ({_family(s, family)['chosen_on_all']}) UAR {gen.pct(_family(s, family)['crema_d']['uar'])}"
                         f" % on {_family(s, family)['crema_d']['n']} clips" for v, s in ext.items())

    def best(family: str) -> str:
        return ", ".join(f"{v} {max(u, key=u.get)} {gen.pct(max(u.values()))} %" for v, u in (
            (v, _family(s, family)["pooled_uar_not_a_result"]) for v, s in ext.items()))

    return [
        f"- **RAVDESS -> EmoDB-dev UAR, nested over the extended grid** (target >= {target:.0f} %): " + ", ".join(
            f"{v} {pct2(s[EXTENDED]['pooled']['uar'])} % (standard error about {100 * s[EXTENDED]['pooled']['uar_se']:.1f}"
            " points)" for v, s in ext.items())
        + f" -- {gen._verdict({v: s[EXTENDED]['pooled']['uar'] for v, s in ext.items()}, target)}. Over the Whisper "
        "grid alone (the figures above): " + ", ".join(
            f"{v} {pct2(s['pooled']['uar'])} %" for v, s in summary.items() if v in ext) + ".",
        f"- **eGeMAPS alone**, its C chosen nested: {nested(FAMILIES[1])}; on the CREMA-D clips, the C chosen on all "
        f"of EmoDB-dev: {crema(FAMILIES[1])}.",
        f"- **Whisper recipe + eGeMAPS ensembles**, chosen nested within the family: {nested(FAMILIES[2])}; the best "
        f"ensemble's pooled UAR (NOT a result: chosen on the test speakers): {best(FAMILIES[2])}; on the CREMA-D "
        f"clips, the ensemble chosen on all of EmoDB-dev: {crema(FAMILIES[2])}.",
        f"- **The extended grid on the CREMA-D clips**, the candidate chosen on all of EmoDB-dev: {crema(EXTENDED)}.",
    ]


def _family(s: dict, family: str) -> dict:
    """One variant's selection within ``family``, or over the extended grid."""
    return s[EXTENDED] if family == EXTENDED else s["families"][family]


def _extended_tables(ext: dict) -> list[str]:
    """The nested figure per family and over the extended grid, and its held-out speakers."""
    lines = ["**Nested selection within each family and over the extended grid** (the held-out predictions of "
             "every test speaker pooled; CREMA-D: the candidate chosen on all of EmoDB-dev)", "",
             "| variant | candidates | EmoDB-dev clips | accuracy | UAR | macro-F1 | ECE | chosen on all of EmoDB-dev "
             "| CREMA-D clips | CREMA-D accuracy | CREMA-D UAR |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for v, s in ext.items():
        for family in (*FAMILIES, EXTENDED):
            lines.append(f"| {v} | {_selection_cells(family, _family(s, family))} |")
    lines += ["", "Held-out EmoDB-dev speakers, extended grid:", "",
              "| variant | test speaker | clips | chosen on the other speakers | its UAR there | test speaker UAR (held out) |",
              "|---|---|---|---|---|---|"]
    for v, s in ext.items():
        for sp, r in s[EXTENDED]["per_speaker"].items():
            lines.append(f"| {v} | {_speaker_cells(sp, r)} |")
    for v, s in ext.items():
        lines += ["", f"Confusion of the nested held-out predictions over the extended grid, {v}:", "",
                  *gen._confusion(s[EXTENDED]["pooled"])]
    return lines + [""]


def _selection_cells(label: str, f: dict) -> str:
    """The cells of one nested selection (:func:`selection_with_crema`): its candidates, pooled held-out
    EmoDB-dev scores, the candidate chosen on all of EmoDB-dev and its CREMA-D scores."""
    p, c = f["pooled"], f["crema_d"]
    return (f"{label} ({len(f['pooled_uar_not_a_result'])}) | {p['n']} | {gen.pct(p['accuracy'])} | {gen.pct(p['uar'])} "
            f"| {gen.pct(p['macro_f1'])} | {p['ece']:.3f} | {f['chosen_on_all']} | {c['n']} | {gen.pct(c['accuracy'])} "
            f"| {gen.pct(c['uar'])}")


def _speaker_cells(speaker: str, r: dict) -> str:
    """The cells of one held-out test speaker of a nested selection."""
    return f"{speaker} | {r['n']} | {r['chosen']} | {gen.pct(r['selection_uar'])} | {gen.pct(r['uar'])}"


def _new_candidates_table(ext: dict) -> list[str]:
    """Every new candidate's pooled EmoDB-dev UAR per variant (descriptive, NOT a result)."""
    variants = list(ext)
    lines = ["**Every new candidate's pooled EmoDB-dev UAR -- NOT a result** (as the tables above: choosing by it "
             "would choose on the test speakers). 'Chosen for' is the extended grid's choice.", "",
             "| family | candidate | " + " | ".join(f"{v} pooled UAR | {v} chosen for" for v in variants) + " |",
             "|---|---|" + "---|---|" * len(variants)]
    for family in FAMILIES[1:]:
        for name in ext[variants[0]]["families"][family]["pooled_uar_not_a_result"]:
            cells = []
            for v in variants:
                chosen_for = [sp for sp, r in ext[v][EXTENDED]["per_speaker"].items() if r["chosen"] == name]
                cells += [gen.pct(ext[v]["families"][family]["pooled_uar_not_a_result"][name]), ", ".join(chosen_for)]
            lines.append(f"| {family} | {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def _adapted_table(ext: dict) -> list[str]:
    """The eGeMAPS candidates scored with test-time mean adaptation, next to their plain scores (descriptive)."""
    lines = ["**eGeMAPS alone with test-time mean adaptation -- NOT in the grid, descriptive**: the same checkpoints "
             "scored with each test corpus's own eGeMAPS mean in place of the RAVDESS training mean (unsupervised, no "
             "label read; `avemo evaluate --adapt mean`, the rows 'adapted' of `generalisation.md`). Pooled UAR:", "",
             "| variant | candidate | EmoDB-dev | EmoDB-dev adapted | CREMA-D | CREMA-D adapted |",
             "|---|---|---|---|---|---|"]
    def cell(x: float | str | None) -> str:
        return "not scored" if x is None else f"refused ({x})" if isinstance(x, str) else gen.pct(x)

    for v, s in ext.items():
        for name, uar in s["egemaps_adapted_not_in_the_grid"].items():
            lines.append(f"| {v} | {name} | " + " | ".join(cell(uar[t][k]) for t in TARGETS for k in ("plain", "adapted"))
                         + " |")
    return lines + [""]


def _shift_table(shift: list[tuple[str, float, float, float]]) -> list[str]:
    """The eGeMAPS functionals farthest from the training distribution on EmoDB-dev (why eGeMAPS transfers badly)."""
    if not shift:
        return []
    return ["**Where eGeMAPS moves between the corpora**: the functionals whose mean over the EmoDB-dev clips (all, "
            "boredom included) lies farthest from the RAVDESS training clips', in RAVDESS standard deviations (z):", "",
            "| functional | RAVDESS training mean | EmoDB-dev mean | z |", "|---|---|---|---|",
            *(f"| {name} | {a:.3f} | {b:.3f} | {z:+.1f} |" for name, a, b, z in shift), ""]


def _extended_section(ctx: gen.Context, ext: dict, summary: dict, target: float,
                      shift: list[tuple[str, float, float, float]]) -> list[str]:
    """The section of the extended grid: eGeMAPS alone and its ensembles with the Whisper recipe."""
    table = egemaps_table(ctx)
    if not table or not ext:
        return []
    names = [n for n, _m in egemaps_candidates(ctx)]
    lines = ["## Extended grid: eGeMAPS and Whisper + eGeMAPS ensembles", "",
             f"Candidates added to the Whisper grid above: **eGeMAPS alone** (`{table['model']}`, the 88 eGeMAPS v02 "
             f"functionals of Eyben et al. 2016, standardised; {' x '.join(f'{k} in {json.dumps(v)}' for k, v in table['grid'].items())}: "
             f"{len(names)}), trained exactly as the Whisper candidates (RAVDESS only, validation speakers "
             f"{ctx.ravdess_val}, variants plain and augmented, the augmented one on the eGeMAPS of the same degraded "
             f"copies); and **ensembles** of the Whisper candidate `{candidate_name(table['ensemble_with'])}` with each "
             f"eGeMAPS candidate, `softmax((1 - w) log p_whisper + w log p_egemaps)` for w in "
             f"{json.dumps(table['w_egemaps'])} ({len(names) * len(table['w_egemaps'])}; the two trained candidates' "
             "predictions fused, nothing fitted). The nested selection is the one above (each EmoDB-dev test speaker's "
             "candidate chosen on the other speakers only; ties to the first in the order Whisper grid, eGeMAPS, "
             "ensembles), within each family and over all of them.", "",
             "**Answers**", "", *_extended_answers(ext, summary, target), "",
             *_extended_tables(ext), *_new_candidates_table(ext), *_adapted_table(ext),
             *_shift_table(shift)]
    return lines + _notes(ctx, table, "**Notes on the extended grid**")


def _notes(ctx: gen.Context, table: dict[str, Any], heading: str) -> list[str]:
    """``heading`` and the suite table's ``notes`` as a list (nothing with ``--quick`` or without notes)."""
    notes = list(table.get("notes", [])) if not ctx.quick else []
    return [heading, "", *(f"- {n}" for n in notes), ""] if notes else []


def _third_answers(third: dict, summary: dict, target: float) -> list[str]:
    """The third family's answer lines: each selection's nested figure against the target, with the caveat."""
    def figure(f: dict) -> str:
        return f"{pct2(f['pooled']['uar'])} % (standard error about {100 * f['pooled']['uar_se']:.1f} points)"

    lines = [f"- **RAVDESS -> EmoDB-dev UAR, nested over {name}** ({len(next(iter(third.values()))[name]['pooled_uar_not_a_result'])} "
             f"candidates; target >= {target:.0f} %): " + ", ".join(f"{v} {figure(s[name])}" for v, s in third.items())
             + f" -- {gen._verdict({v: s[name]['pooled']['uar'] for v, s in third.items()}, target)} (a third look at "
             "the same test clips: optimistic, see the notes). On the CREMA-D clips, the candidate chosen on all of "
             "EmoDB-dev: " + ", ".join(f"{v} ({s[name]['chosen_on_all']}) UAR {gen.pct(s[name]['crema_d']['uar'])} % "
                                       f"on {s[name]['crema_d']['n']} clips" for v, s in third.items()) + "."
             for name in THIRD]
    best = {v: s[THIRD[0]]["pooled_uar_not_a_result"] for v, s in third.items()}
    return lines + [
        "- For comparison, the Whisper grid alone (the first sections): " + ", ".join(
            f"{v} {pct2(s['pooled']['uar'])} %" for v, s in summary.items() if v in third)
        + "; the family's best candidate's pooled UAR (NOT a result: chosen on the test speakers): " + ", ".join(
            f"{v} {max(u, key=u.get)} {gen.pct(max(u.values()))} %" for v, u in best.items()) + "."]


def _third_tables(third: dict, summary: dict) -> list[str]:
    """Each selection's pooled figure and CREMA-D, its held-out speakers, and the family's confusion."""
    lines = ["**Nested selection over each set of candidates** (the held-out predictions of every test speaker "
             "pooled; CREMA-D: the candidate chosen on all of EmoDB-dev)", "",
             "| variant | candidates | EmoDB-dev clips | accuracy | UAR | macro-F1 | ECE | chosen on all of EmoDB-dev "
             "| CREMA-D clips | CREMA-D accuracy | CREMA-D UAR |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {v} | {_selection_cells(name, s[name])} |" for v, s in third.items() for name in THIRD]
    lines += ["", "Held-out EmoDB-dev speakers (the Whisper grid's held-out UAR of the first sections for comparison):", "",
              "| variant | candidates | test speaker | clips | chosen on the other speakers | its UAR there | test speaker "
              "UAR (held out) | Whisper grid alone |", "|---|---|---|---|---|---|---|---|"]
    for v, s in third.items():
        for name in THIRD:
            lines += [f"| {v} | {name} | {_speaker_cells(sp, r)} | {gen.pct(summary[v]['per_speaker'][sp]['uar'])} |"
                      for sp, r in s[name]["per_speaker"].items()]
    for v, s in third.items():
        lines += ["", f"Confusion of the nested held-out predictions over {THIRD[0]}, {v}:", "",
                  *gen._confusion(s[THIRD[0]]["pooled"])]
    return lines + [""]


def _third_candidates_table(ctx: gen.Context, third: dict) -> list[str]:
    """Every third-family candidate's pooled EmoDB-dev UAR next to its counterpart's (descriptive, NOT a result)."""
    lines = ["**Every candidate of the family: pooled EmoDB-dev UAR -- NOT a result** (choosing by it would choose on "
             "the test speakers; shown only to see how much the choice matters), next to the same candidate without "
             f"`{candidate_name(third_table(ctx)['set'])}` (the Whisper grid's), and the test speakers each selection "
             "chose it for.", "",
             "| variant | candidate | pooled UAR | without it | " + " | ".join(f"chosen for: {n}" for n in THIRD) + " |",
             "|---|---|---|---|" + "---|" * len(THIRD)]
    pairs = counterparts(ctx)
    for v, s in third.items():
        for name, u in s[THIRD[0]]["pooled_uar_not_a_result"].items():
            chosen = [", ".join(sp for sp, r in s[n]["per_speaker"].items() if r["chosen"] == name) for n in THIRD]
            without = s[THIRD[1]]["pooled_uar_not_a_result"].get(pairs[name])
            lines.append(f"| {v} | {name} | {gen.pct(u)} | {'not in the grid' if without is None else gen.pct(without)} | "
                         f"{' | '.join(chosen)} |")
    return lines + [""]


def _third_section(ctx: gen.Context, third: dict, summary: dict, target: float) -> list[str]:
    """The section of the third family: its own nested figure, the Whisper grids together's, and everything's."""
    table = third_table(ctx)
    if not table or not third:
        return []
    extra = candidate_name(table["set"])
    lines = [f"## {table.get('title', 'Third family')}", "",
             f"Candidates added after the sections above: the Whisper grid again "
             f"({' x '.join(f'{k} in {json.dumps(v)}' for k, v in table['grid'].items())}: {len(third_grid(ctx))}), each "
             f"with `{extra}` as well, trained exactly as the Whisper candidates (RAVDESS only, validation speakers "
             f"{ctx.ravdess_val}, variants plain and augmented). The nested selection is the one above (each EmoDB-dev "
             "test speaker's candidate chosen on the other speakers only), over three sets of candidates: "
             f"**{THIRD[0]}**; **{THIRD[1]}** (without and with `{extra}`: the choice a user of the toolkit has; ties to "
             f"the grid without it); **{THIRD[2]}** (the Whisper grid, eGeMAPS, the ensembles and this family, ties "
             "in that order). Its figures are a **third look** at the same "
             f"{next(iter(third.values()))[THIRD[0]]['pooled']['n']} test clips (see the notes on when and why the "
             "family came): they are optimistic, whatever the verdict.", "",
             "**Answers**", "", *_third_answers(third, summary, target), "",
             *_third_tables(third, summary), *_third_candidates_table(ctx, third)]
    return lines + _notes(ctx, table, "**Notes on this family**")


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
             *(f"- Candidates trained and scored {r['started']}-{r['ended']} UTC"
               f"{' (' + ', '.join(r['variants']) + ')' if 'variants' in r else ''}, load average (1/5/15 min) "
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
    extended = summarise_extended(ctx, res)
    lines += _extended_section(ctx, extended, summary, target, res.get("egemaps_shift", []))
    third = summarise_third(ctx, res)
    lines += _third_section(ctx, third, summary, target)
    lines += _notes(ctx, ctx.suite.get("nested", {}), "## Notes")
    ctx.out.mkdir(parents=True, exist_ok=True)
    with OutputFile(ctx.out / "crosscorpus_nested.md") as fh:
        fh.commit("\n".join(lines).rstrip() + "\n")
    result = {"command": command, "quick": ctx.quick, "recipe": {"model": ctx.model, "model_config": ctx.model_config,
                                                                  "feature": ctx.feature},
              "grid": table, "augment_channels": vars(ctx.channels), "versions": package_versions(),
              "target_uar": target, "runs": res["runs"], "variants": summary,
              "egemaps": egemaps_table(ctx), "extended": extended, "egemaps_shift": res.get("egemaps_shift"),
              "third_family": {"table": third_table(ctx), "variants": third}}
    with OutputFile(ctx.out / "crosscorpus_nested.json") as fh:
        fh.commit(json.dumps(result, indent=1, default=float) + "\n")
    log(f"wrote {ctx.out / 'crosscorpus_nested.md'}")


def main(argv: list[str] | None = None) -> None:
    ap = gen.parser(__doc__.splitlines()[0], PARTS, ["candidates", "report"])
    gen.run(ap.parse_args(argv), PARTS, globals())


if __name__ == "__main__":
    main()
