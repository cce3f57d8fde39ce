"""benchmarks/crosscorpus_nested.py: the nested, speaker-disjoint choice of the recipe's hyper-parameters.

The selection itself is checked on made-up predictions (the test speaker's clips never choose); the
``--quick`` run checks the script's path end to end on a few real clips with a cheap extractor, not its
figures (those come from the full run, docs/results/crosscorpus_nested.md).
"""

from __future__ import annotations

import json

import numpy as np
import pytest


def _candidate(y: np.ndarray, predicted: np.ndarray, speakers: list[str]) -> dict:
    probs = np.full((len(y), 2), 0.1)
    probs[np.arange(len(y)), predicted] = 0.9
    return {"y_true": y, "probabilities": probs, "speakers": speakers, "labels": ["angry", "sad"],
            "takes": [f"t{i}" for i in range(len(y))]}


def test_the_test_speaker_never_chooses(benchmark_script):
    script = benchmark_script("crosscorpus_nested")
    speakers = ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    y = np.array([0, 1, 0, 1] * 3)
    # "fits_a" is right on speaker a only; "fits_bc" on speakers b and c only
    fits_a = _candidate(y, np.where(np.array(speakers) == "a", y, 1 - y), speakers)
    fits_bc = _candidate(y, np.where(np.array(speakers) == "a", 1 - y, y), speakers)
    res = script.nested_selection({"fits_a": fits_a, "fits_bc": fits_bc})
    # speaker a is scored by the candidate the others chose, though the other one is perfect on a
    assert res["per_speaker"]["a"]["chosen"] == "fits_bc" and res["per_speaker"]["a"]["uar"] == 0.0
    assert res["per_speaker"]["a"]["selection_uar"] == 1.0
    # speaker b: a and c choose; fits_a is right on a (4 clips), fits_bc on c (4 clips): a tie, the first wins
    assert res["per_speaker"]["b"]["chosen"] == "fits_a" and res["per_speaker"]["b"]["uar"] == 0.0
    assert res["per_speaker"]["c"]["chosen"] == "fits_a" and res["per_speaker"]["c"]["uar"] == 0.0
    assert res["pooled"]["n"] == 12 and res["pooled"]["accuracy"] == 0.0
    assert res["chosen_on_all"] == "fits_bc"  # right on 8 of the 12 clips
    flipped = script.nested_selection({"fits_bc": fits_bc, "fits_a": fits_a})
    assert flipped["per_speaker"]["b"]["chosen"] == "fits_bc" and flipped["per_speaker"]["b"]["uar"] == 1.0
    with pytest.raises(SystemExit, match="other takes"):
        script.nested_selection({"x": fits_a, "y": {**fits_bc, "takes": fits_bc["takes"][::-1]}})


def test_uar_standard_error(benchmark_script):
    script = benchmark_script("crosscorpus_nested")
    # recalls 1/2 on 4 clips and 1 on 2 clips; the third label has no clip
    se = script.uar_standard_error([[2, 2, 0], [0, 2, 0], [0, 0, 0]])
    assert se == pytest.approx(np.sqrt(0.25 / 4 + 0.0) / 2)


def test_grid_and_run_folders(benchmark_script, tmp_path):
    script = benchmark_script("crosscorpus_nested")

    class Ctx:
        quick, model_config, work = False, {"combine": "concat", "C": 0.03}, tmp_path
        suite = {"nested": {"grid": {"combine": ["mean", "concat"], "C": [0.01, 0.03]}}}

    grid = script.grid(Ctx)
    assert grid == [{"combine": "mean", "C": 0.01}, {"combine": "mean", "C": 0.03},
                    {"combine": "concat", "C": 0.01}, {"combine": "concat", "C": 0.03}]
    assert script.candidate_name(grid[0]) == "combine=mean C=0.01"
    assert script.run_dir(Ctx, "plain", grid[3]) == tmp_path / "runs" / "ravdess_plain"  # the crosscorpus checkpoint
    assert script.run_dir(Ctx, "plain", grid[0]) == tmp_path / "runs" / "nested" / "plain_combine=mean_C=0.01"


@pytest.mark.shared_data
def test_quick_run_writes_the_report(benchmark_script, tmp_path):
    script = benchmark_script("crosscorpus_nested")
    out = tmp_path / "out"
    script.main(["--quick", "--out", str(out), "--work", str(tmp_path / "work"), "--cache", str(tmp_path / "cache"),
                 "--workers", "1", "--parts", "copies,candidates,report"])
    text = (out / "crosscorpus_nested.md").read_text()
    for heading in ("## Answers", "**RAVDESS -> EmoDB-dev UAR, nested**", "## plain", "## augmented",
                    "Held-out EmoDB-dev speakers", "EmoDB-dev, nested (held-out predictions)", "NOT a result",
                    "CREMA-D, chosen on all of EmoDB-dev", "Load average"):
        assert heading in text
    result = json.loads((out / "crosscorpus_nested.json").read_text())
    assert result["quick"] and set(result["variants"]) == {"plain", "augmented"}
    assert [r["variants"] for r in result["runs"]] == [["plain", "augmented"]]  # which variants each run trained
    class Ctx:
        quick, suite = True, {"quick": {"nested_grid": result["grid"]}}

    names = {script.candidate_name(o) for o in script.grid(Ctx)}
    assert len(names) == 4
    for v in result["variants"].values():
        assert set(v["per_speaker"]) == {"03", "08"}  # the quick EmoDB-dev speakers, each held out once
        assert all(r["chosen"] in names for r in v["per_speaker"].values())
        assert v["pooled"]["n"] == v["recipe"]["n"] == sum(r["n"] for r in v["per_speaker"].values()) == 13
        assert "boredom" not in v["pooled"]["labels"] and v["left_out"]["emodb"] == {"boredom": 5}
        assert set(v["candidates_pooled_uar_not_a_result"]) == names
        assert v["crema_d"]["chosen_candidate"] in names and v["crema_d"]["chosen"]["n"] == 2
    runs = sorted(p.name for p in (tmp_path / "work" / "runs").iterdir())
    assert runs == ["nested", "ravdess_augmented", "ravdess_plain"]  # the recipe: the crosscorpus checkpoints
    # (4 grid candidates + 2 eGeMAPS candidates + 2 of the third family) x 2 variants; the ensembles are fused
    assert len(list((tmp_path / "work" / "runs" / "nested").iterdir())) == 16
    _check_extended(script, text, result, names)
    _check_third(script, text, result, names)


def _check_extended(script, text: str, result: dict, names: set[str]) -> None:
    """The quick run's extended grid: every family selected nested, each test speaker held out once."""
    assert "## Extended grid: eGeMAPS and Whisper + eGeMAPS ensembles" in text
    assert text.index("## augmented") < text.index("## Extended grid")
    egemaps = {"egemaps_logreg C=0.1", "egemaps_logreg C=1.0"}
    fused = {f"hidden=[] input_dropout=0.0 + 0.5 x {e}" for e in egemaps}
    assert result["egemaps"]["model"] == "egemaps_logreg"
    for v in result["extended"].values():
        families = v["families"]
        assert list(families) == list(script.FAMILIES)
        assert [set(f["pooled_uar_not_a_result"]) for f in families.values()] == [names, egemaps, fused]
        every = v[script.EXTENDED]
        assert set(every["pooled_uar_not_a_result"]) == names | egemaps | fused
        assert set(every["per_speaker"]) == {"03", "08"} and every["pooled"]["n"] == 13
        assert every["crema_d"]["n"] == 2 and every["chosen_on_all"] in names | egemaps | fused
        adapted = v["egemaps_adapted_not_in_the_grid"]
        assert set(adapted) == egemaps
        assert all(isinstance(a["emodb"]["adapted"], float) for a in adapted.values())  # 18 quick clips: adapted
        assert all("needs at least 10 items" in a["crema_d"]["adapted"]
                   for a in adapted.values())  # 2 CREMA-D clips: too few to adapt to, the reason kept
    assert len(result["egemaps_shift"]) == 6 and "Where eGeMAPS moves between the corpora" in text
    # the Whisper family is the nested selection of the section above, recomputed
    for variant, v in result["variants"].items():
        assert result["extended"][variant]["families"][script.FAMILIES[0]]["pooled"] == v["pooled"]


def test_fusion_is_the_weighted_product_of_the_two_candidates(benchmark_script):
    script = benchmark_script("crosscorpus_nested")
    a = {"takes": ["x", "y"], "labels": ["angry", "sad"], "probabilities": np.array([[0.9, 0.1], [0.5, 0.5]])}
    b = {**a, "probabilities": np.array([[0.1, 0.9], [0.2, 0.8]])}
    fused = script.fuse(a, b, 0.5)["probabilities"]
    np.testing.assert_allclose(fused[0], [0.5, 0.5])  # the geometric mean of 0.9/0.1 and 0.1/0.9, renormalised
    np.testing.assert_allclose(fused[1], [1 / 3, 2 / 3])  # sqrt(.5 .2) : sqrt(.5 .8) = 1 : 2
    np.testing.assert_allclose(script.fuse(a, b, 0.0)["probabilities"], a["probabilities"])
    with pytest.raises(SystemExit, match="other takes"):
        script.fuse(a, {**b, "takes": ["y", "x"]}, 0.5)


def _check_third(script, text: str, result: dict, names: set[str]) -> None:
    """The quick run's third family: its own section after the extended grid, three nested selections."""
    title = result["third_family"]["table"]["title"]
    assert text.index("## Extended grid") < text.index(f"## {title}")
    third = {"hidden=[] input_dropout=0.25", "hidden=[8] input_dropout=0.25"}
    every = set(result["extended"]["plain"][script.EXTENDED]["pooled_uar_not_a_result"])
    assert set(result["third_family"]["variants"]) == {"plain", "augmented"}
    for variant, v in result["third_family"]["variants"].items():
        assert list(v) == list(script.THIRD)
        assert [set(s["pooled_uar_not_a_result"]) for s in v.values()] == [third, names | third, every | third]
        for s in v.values():
            assert set(s["per_speaker"]) == {"03", "08"} and s["pooled"]["n"] == 13 and s["crema_d"]["n"] == 2
        # the family's candidates scored as the grid's: the same clips, pooled UAR as the extended grid's
        assert v[script.THIRD[1]]["pooled_uar_not_a_result"].items() >= \
            result["extended"][variant]["families"][script.FAMILIES[0]]["pooled_uar_not_a_result"].items()
    assert "nested over the third family alone" in text and "a third look" in text
    assert "| plain | hidden=[8] input_dropout=0.25 |" in text  # the family's candidates, NOT a result


def _ctx(tmp_path, third: dict | None):
    class Ctx:
        quick, model_config, work = False, {"combine": "concat", "C": 0.03}, tmp_path
        suite = {"nested": {"grid": {"combine": ["mean", "concat"], "C": [0.03]},
                            **({"layer_norm": third} if third else {})}}

    return Ctx


def test_third_family_candidates(benchmark_script, tmp_path):
    script = benchmark_script("crosscorpus_nested")
    ctx = _ctx(tmp_path, {"grid": {"combine": ["mean", "concat"], "C": [0.03]}, "set": {"layer_norm": True}})
    third = script.third_grid(ctx)
    assert third == [{"combine": "mean", "C": 0.03, "layer_norm": True}, {"combine": "concat", "C": 0.03, "layer_norm": True}]
    assert script.candidate_name(third[1]) == "combine=concat C=0.03 layer_norm=true"
    assert script.counterparts(ctx) == {"combine=mean C=0.03 layer_norm=true": "combine=mean C=0.03",
                                        "combine=concat C=0.03 layer_norm=true": "combine=concat C=0.03"}
    assert not script.is_recipe(ctx, third[1])  # a run folder of its own, never the recipe's checkpoint
    assert script.run_dir(ctx, "augmented", third[1]) == (
        tmp_path / "runs" / "nested" / "augmented_combine=concat_C=0.03_layer_norm=true")
    assert script.third_grid(_ctx(tmp_path, None)) == []


def test_third_family_selections(benchmark_script, tmp_path):
    script = benchmark_script("crosscorpus_nested")
    ctx = _ctx(tmp_path, {"grid": {"combine": ["mean", "concat"], "C": [0.03]}, "set": {"layer_norm": True}})
    speakers = ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    y = np.array([0, 1, 0, 1] * 3)
    right, wrong = _candidate(y, y, speakers), _candidate(y, 1 - y, speakers)
    crema = _candidate(np.array([0, 1]), np.array([0, 1]), ["x", "y"])

    def scored(emodb: dict) -> dict:
        return {"emodb": emodb, "crema_d": crema}

    # the grid: mean wrong everywhere, concat (the recipe, kept under RECIPE) right everywhere;
    # the third family: mean with layer_norm right everywhere too, concat with it wrong
    scores = {("plain", "combine=mean C=0.03"): scored(wrong), ("plain", script.RECIPE): scored(right),
              ("plain", "combine=mean C=0.03 layer_norm=true"): scored(right),
              ("plain", "combine=concat C=0.03 layer_norm=true"): scored(wrong)}
    res = {"scores": scores}
    out = script.summarise_third(ctx, res)
    assert list(out) == ["plain"] and list(out["plain"]) == list(script.THIRD)
    alone, together, every = (out["plain"][n] for n in script.THIRD)
    assert alone["chosen_on_all"] == "combine=mean C=0.03 layer_norm=true" and alone["pooled"]["uar"] == 1.0
    # a tie between the grid's recipe and the family's mean goes to the grid without layer_norm
    assert together["chosen_on_all"] == "combine=concat C=0.03"
    assert {r["chosen"] for r in together["per_speaker"].values()} == {"combine=concat C=0.03"}
    assert set(every["pooled_uar_not_a_result"]) == set(together["pooled_uar_not_a_result"])  # no eGeMAPS here
    assert together["pooled_uar_not_a_result"]["combine=concat C=0.03 layer_norm=true"] == 0.0
    del scores[("plain", "combine=concat C=0.03 layer_norm=true")]
    assert script.summarise_third(ctx, res) == {}  # not every candidate scored: no selection
    same = _ctx(tmp_path, {"grid": {"combine": ["mean", "concat"], "C": [0.03]}, "set": {}})
    with pytest.raises(SystemExit, match="repeats candidates"):  # a family that repeats the grid's names
        script.summarise_third(same, res)
