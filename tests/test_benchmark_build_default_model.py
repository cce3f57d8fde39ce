"""benchmarks/build_default_model.py: the logic of the speaker-normalised head's measurements and of the
degraded-audio summary, on generated data (the build itself trains on the shared corpora)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest


def test_speaker_statistics_from_a_subset_of_clips():
    from avemo.models.inputs import InputSpec
    from avemo.models.normalization import ArraySet, Normalizer, speaker_normalised

    rng = np.random.default_rng(0)
    arrays = [rng.normal(3.0, 2.0, size=4).astype(np.float32) for _ in range(12)]
    chosen = [1, 4, 7]
    out = speaker_normalised(arrays, "vector", chosen)
    ref = np.stack([arrays[i] for i in chosen]).astype(np.float64)
    expected = (np.stack(arrays) - ref.mean(0)) / ref.std(0)
    assert np.allclose(np.stack(out), expected, atol=1e-5)
    assert np.allclose(np.stack(out)[chosen].mean(0), 0, atol=1e-5)  # the reference clips are centred
    assert not np.allclose(np.stack(out).mean(0), 0, atol=1e-3)  # the others are not, in general
    # all clips: what the Normalizer does to each speaker before its global statistics
    spec = {"audio": InputSpec("audio", "x", {}, (4,), "vector")}
    data = ArraySet({"audio": arrays + [a + 5 for a in arrays]}, ["a"] * 12 + ["b"] * 12)
    norm = Normalizer.fit(data, spec, speaker_norm=True)
    per_speaker = norm.per_speaker(data)["audio"]
    assert np.allclose(np.stack(per_speaker[:12]), np.stack(speaker_normalised(arrays, "vector")))
    assert np.allclose(np.stack(per_speaker[12:]), np.stack(per_speaker[:12]), atol=1e-5)  # offset removed


def test_clip_draws_sizes_and_determinism(benchmark_script):
    draws = benchmark_script("build_default_model").clip_draws
    out = draws(30, [5, 10, 20, 40], 4, np.random.default_rng(0))
    assert list(out) == ["5", "10", "20", "all"]  # k = 40 > 30 clips: only "all"
    for k in ("5", "10", "20"):
        assert len(out[k]) == 4
        for chosen in out[k]:
            assert len(chosen) == int(k) and len(set(chosen.tolist())) == int(k) and chosen.max() < 30
    assert [c.tolist() for c in out["all"]] == [list(range(30))]
    again = draws(30, [5, 10, 20, 40], 4, np.random.default_rng(0))
    assert all(np.array_equal(a, b) for k in out for a, b in zip(out[k], again[k], strict=True))


def test_k_clips_summary_pools_speakers_per_draw(benchmark_script):
    summary = benchmark_script("build_default_model").k_clips_summary
    labels = ["a", "b"]
    right = np.array([[0.9, 0.1], [0.2, 0.8]])
    wrong = right[:, ::-1]
    y = np.array([0, 1])
    # k = "5": draw 1 right on both speakers, draw 2 wrong on speaker s2
    k_clips = {"5": [[(right, y, "s1"), (right, y, "s2")], [(right, y, "s1"), (wrong, y, "s2")]],
               "all": [[(right, y, "s1"), (right, y, "s2")]]}
    out = summary(k_clips, labels)
    # one draw: no spread was measured (0.0 would say that it was, and was nil), as avemo.metrics.summarise_folds says
    assert out["all"] == {"draws": 1, "speakers": ["s1", "s2"], "uar": 1.0, "uar_std": None, "accuracy": 1.0,
                          "accuracy_std": None, "speaker_uar": 1.0}
    assert out["5"]["draws"] == 2
    assert out["5"]["uar"] == pytest.approx(0.75) and out["5"]["uar_std"] == pytest.approx(0.25)
    assert out["5"]["speaker_uar"] == pytest.approx(0.75)



def test_estimates_of_one_fold_print_the_mean_alone(benchmark_script):
    """The estimates table printed "mean ± std over folds" with np.std: "100.0 % ± 0.0 %" for one fold, a
    spread that was never measured; avemo's reports print the mean alone there. Two folds keep their form."""
    script = benchmark_script("build_default_model")
    right, y = np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([0, 1])
    preds = {"in_domain": [(right, y)], "unseen_speakers": [(right, y), (right[:, ::-1], y)]}
    folds = [{"estimate": kind, "fold": fold, "n": 2, "accuracy": a, "macro_f1": a, "uar": a}
             for kind, fold, a in (("in_domain", "1", 1.0), ("unseen_speakers", "03", 1.0), ("unseen_speakers", "08", 0.0))]
    est = script.calibrated(preds, folds, ["a", "b"], {"calibration": {"min_accuracy": 0.5}})
    assert est["in_domain"]["std_uar"] is None and est["in_domain"]["std_accuracy"] is None
    assert est["unseen_speakers"]["std_uar"] == pytest.approx(0.5)
    lines = script.estimate_lines(est, None)
    rows = [[cell.strip() for cell in line.split("|")] for line in lines[2:lines.index("")]]  # the estimates table
    over_folds = {row[1]: row[6] for row in rows}
    assert over_folds == {"in domain": "100.0 %", "unseen speakers": "50.0 % ± 50.0 %"}

def test_person_joins_a_speaker_of_two_folders_of_one_corpus(benchmark_script):
    script = benchmark_script("build_default_model")
    specs = [SimpleNamespace(corpus="emodb", dataset="emodb"), SimpleNamespace(corpus="emodb_wav", dataset="emodb"),
             SimpleNamespace(corpus="ravdess", dataset="ravdess")]
    data = SimpleNamespace(corpora=SimpleNamespace(specs=specs))
    take = lambda corpus, speaker: SimpleNamespace(dataset=corpus, speaker=f"{corpus}:{speaker}")  # noqa: E731
    assert script.person_of(data, take("emodb", "03")) == script.person_of(data, take("emodb_wav", "03")) == "emodb:03"
    assert script.person_of(data, take("ravdess", "03")) == "ravdess:03"


def test_unseen_corpus_speakers_below_min_clips_are_not_scored(benchmark_script):
    spknorm_unseen = benchmark_script("build_default_model").spknorm_unseen
    out = spknorm_unseen({"dataset": "crema_d", "clips_per_speaker": {"1001": 6, "1002": 6}}, 10)
    assert out["scored"] is False and "1001: 6" in out["reason"] and "min_clips (10)" in out["reason"]
    assert spknorm_unseen({"dataset": "x", "clips_per_speaker": {"a": 12}}, 10)["scored"] is True


def _scores(accuracy: float, n: int) -> dict:
    return {"accuracy": accuracy, "n": n, "uar": accuracy, "macro_f1": accuracy, "labels": ["a", "b"],
            "confusion": [[1, 0], [0, 1]]}


def test_degraded_summary_of_the_bundle_head(benchmark_script):
    script = benchmark_script("build_default_model")
    gen = script.generalisation()
    res = {"1": {"scores": {"bundle": {"clean_full": _scores(0.8, 50), "clean": _scores(0.8, 10),
                                       "mp3": _scores(0.7, 10), "babble": _scores(0.4, 10)}}},
           "2": {"scores": {"bundle": {"clean_full": _scores(0.9, 50), "clean": _scores(1.0, 30),
                                       "mp3": _scores(1.0, 30), "babble": _scores(0.8, 30)}}}}
    summary = gen.degraded_summary(res, ["mp3", "babble"], variants=("bundle",))["bundle"]
    out = script.degraded_metrics(summary, res, {"conditions": ["mp3", "babble"], "seed": 0})
    assert out["n"] == 40 and out["clean"] == pytest.approx(0.95)  # pooled over the folds' clips
    assert out["conditions"]["mp3"]["accuracy"] == pytest.approx(0.925)
    assert out["conditions"]["babble"]["drop"] == pytest.approx(0.95 - 0.7)
    assert out["mean_drop"] == pytest.approx((0.025 + 0.25) / 2)
    assert out["worst"] == "babble" and out["missing"] == []
    assert out["folds"]["2"] == {"n": 30, "clean": 1.0, "clean_full": 0.9}
    del res["2"]["scores"]["bundle"]["babble"]  # a condition not scored on every fold is missing, not pooled
    partial = gen.degraded_summary(res, ["mp3", "babble"], variants=("bundle",))["bundle"]
    assert partial["missing"] == ["babble"] and partial["worst"] == "mp3"
    # a condition this machine could not apply (its codec missing) is said on the card, beside the table
    setting = {"conditions": ["mp3", "babble"], "seed": 0, "suite": "s.toml", "test_fraction": 0.25,
               "unavailable": {"aac_24k": "channel aac_24k: this PyAV/FFmpeg build has no aac encoder"}}
    card = script.degraded_block({"metrics": {"degraded": script.degraded_metrics(summary, res, setting)}})
    assert ("Not applied on this machine, hence skipped (not in the mean drop): aac_24k (channel aac_24k: this "
            "PyAV/FFmpeg build has no aac encoder).") in card
    del setting["unavailable"]  # a bundle built before this key: no such line
    assert "Not applied" not in script.degraded_block({"metrics": {"degraded": script.degraded_metrics(summary, res,
                                                                                                       setting)}})


def test_degraded_sample_is_a_fixed_fraction_by_clip_id(benchmark_script):
    gen = benchmark_script("build_default_model").generalisation()
    takes = [SimpleNamespace(key=f"clip{i}") for i in range(400)]
    quarter = gen.sampled(takes, 0.25)
    assert 60 < len(quarter) < 140 and quarter == gen.sampled(list(reversed(takes)), 0.25)[::-1]
    assert gen.sampled(takes, 1.0) == takes and gen.sampled(takes, 0.0) == []


def test_skip_degraded_keeps_the_reused_heads_degraded_figures_only(benchmark_script):
    """``--skip-degraded --reuse-main-estimates`` keeps the degraded-audio figures of the bundle in OUT (the
    same head); without ``--reuse-main-estimates`` (a new head) or without a bundle there are none."""
    reused = benchmark_script("build_default_model").reused_degraded
    previous = {"metrics": {"degraded": {"mean_drop": 7.0, "worst": "babble_5db"}}}
    assert reused(SimpleNamespace(reuse_main_estimates=True), previous) == previous["metrics"]["degraded"]
    assert reused(SimpleNamespace(reuse_main_estimates=False), previous) is None
    assert reused(SimpleNamespace(reuse_main_estimates=True), None) is None
    assert reused(SimpleNamespace(reuse_main_estimates=True), {"metrics": {}}) is None


def test_the_recipe_is_read_with_exactly_the_keys_the_build_reads(benchmark_script):
    """The recipe shares the corpora file's format: the corpora reader refuses a top-level key nobody
    reads, so the build declares the keys it reads (RECIPE_KEYS), each of which it does read."""
    import re

    from avemo.errors import ConfigError
    from avemo.training.corpora import read_corpora_file

    script = benchmark_script("build_default_model")
    specs = read_corpora_file(script.RECIPE, reads=script.RECIPE_KEYS)
    assert [s.corpus for s in specs] == ["ravdess", "emodb", "emodb_wav"]
    source = open(script.__file__, encoding="utf-8").read()
    for key in script.RECIPE_KEYS:
        assert re.search(rf'recipe(\[|\.get\()"{key}"', source), f"RECIPE_KEYS lists {key}, which the build never reads"
    with pytest.raises(ConfigError, match="unknown top-level key audio_model"):
        read_corpora_file(script.RECIPE, reads=[k for k in script.RECIPE_KEYS if k != "audio_model"])


def test_abstention_only_writes_the_recipes_gates_into_the_bundle_and_its_card(benchmark_script, tmp_path):
    """``--abstention-only``: the recipe's speech_share and min_speech go into model.json (its config and its
    copy of the recipe) and the card's numbers block; tau and the heads stay as they were."""
    import json
    import shutil

    from avemo.inference.bundle import BUNDLE_DIR, read_bundle

    script = benchmark_script("build_default_model")
    out = tmp_path / "bundle"
    shutil.copytree(BUNDLE_DIR, out, ignore=shutil.ignore_patterns("audio", "audio_spknorm"))
    before = read_bundle(out)[0]
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(script.RECIPE.read_text().replace("min_speech = 1.0", "min_speech = 0.6"))
    script.abstention_only(SimpleNamespace(recipe=recipe, out=out))
    config, meta = read_bundle(out)
    assert config.abstention.min_speech == 0.6 and config.abstention.tau == before.abstention.tau
    assert config.abstention.speech_share == before.abstention.speech_share and config.fusion == before.fusion
    assert meta["training"]["recipe"]["calibration"]["min_speech"] == 0.6
    assert "min speech 0.6 s." in (out / "model_card.md").read_text()
    assert json.loads((out / "model.json").read_text())["metrics"] == json.loads((BUNDLE_DIR / "model.json").read_text())["metrics"]
