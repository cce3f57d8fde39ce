"""The benchmark runner, suites and report: splits, entries, end-to-end runs on a few real clips, the CLI.

Behaviour only: which speakers land where, which entries a suite has, that a run produces
the result file's fields, figures and sections, and one-line errors. No accuracy thresholds.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest

from avemo import config as cfg
from avemo.cache import FeatureCache
from avemo.datasets import builtin_plan, make_plan
from avemo.errors import ConfigError
from avemo.evaluation.benchmark import (
    BenchmarkEntry,
    FoldResult,
    SvmBaseline,
    inner_splits,
    plan_splits,
    random_splits,
    report_markdown,
    rewrite_report,
    run_benchmark,
    summarise_results,
    svm_baseline,
    write_report,
)
from avemo.evaluation.suite import list_suites, load_suite
from avemo.metrics import compute_metrics
from avemo.models import create_model, list_models
from avemo.training import TrainConfig, load_data


def speakers(takes) -> set[str]:
    return {t.speaker for t in takes}


@pytest.fixture(scope="module")
def full_data(ravdess_speech_root, au_table):
    return load_data("ravdess", ravdess_speech_root, visual_table=au_table)


@pytest.fixture(scope="module")
def small_data(ravdess_speech_root, au_table):
    """4 speakers, 10 takes each: enough for 2 folds of 2 epochs in seconds."""
    data = load_data("ravdess", ravdess_speech_root, visual_table=au_table, speakers=["01", "02", "04", "05"])
    return dataclasses.replace(data, takes=data.takes[::6])


# ----------------------------------------------------------------------------- splits


@pytest.mark.shared_data
def test_inner_splits_never_touch_the_test_speakers(full_data):
    folds = builtin_plan("ravdess_au").folds
    for fold, inner in zip(folds, inner_splits(full_data, folds), strict=True):
        assert speakers(inner.test) == set(fold.val)
        assert speakers(inner.val) <= set(fold.train) and len(speakers(inner.val)) == len(fold.val)
        assert speakers(inner.train) == set(fold.train) - speakers(inner.val)
        used = speakers(inner.train) | speakers(inner.val) | speakers(inner.test)
        assert not used & set(fold.test)
    # the inner validation speakers follow the fold's validation speakers (wrapping around)
    assert [sorted(speakers(s.val)) for s in inner_splits(full_data, folds)][:2] == [["08", "09"], ["13", "14"]]


@pytest.mark.shared_data
def test_random_splits_put_speakers_on_both_sides_but_never_a_take(full_data):
    splits = random_splits(full_data, k=5, seed=0)
    tests = [t.key for s in splits for t in s.test]
    assert sorted(tests) == sorted(t.key for t in full_data.takes)  # every take tested exactly once
    for s in splits:
        keys = [{t.key for t in part} for part in (s.train, s.val, s.test)]
        assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
        assert speakers(s.train) & speakers(s.test)  # what makes these numbers optimistic
    again = random_splits(full_data, k=5, seed=0)
    assert [t.key for t in again[2].test] == [t.key for t in splits[2].test]


@pytest.mark.shared_data
def test_a_random_split_report_does_not_claim_unseen_test_speakers(small_data, tmp_path):
    """The protocol line of every report said "test speakers unseen", random splits included."""
    entries = [BenchmarkEntry("au_mlp", "au_mlp")]
    cache, config = FeatureCache(tmp_path / "cache"), TrainConfig(epochs=1)
    spoken = run_benchmark(entries, small_data, random_splits(small_data, k=2), cache=cache, train_config=config)
    assert "RANDOM splits" in spoken["protocol"]["selection"] and "unseen" not in spoken["protocol"]["selection"]
    folds = plan_splits(small_data, list(make_plan(small_data.speakers, 2, n_val=1)))
    disjoint = run_benchmark(entries, small_data, folds[:1], cache=cache, train_config=config)
    assert disjoint["protocol"]["selection"].endswith("test speakers unseen")
    _, md = write_report(disjoint, tmp_path / "out", "one", title="t", command="c")
    assert "; 1 fold, " in md.read_text()


def _result_file(path: Path, folds: list[dict], selection: str) -> Path:
    """A result file as write_report writes it, of a made-up 2-fold run of two models."""
    row = {"model": "late_calibrated", "model_config": {"video": "au_mlp"}, "train": {"epochs": 15, "patience": 5},
           "seeds": [0, 1], "group": "late", "note": "", "paper": "", "inputs": {"audio": "whisper_base (512,)"},
           "fold_accuracy": [0.5, 0.75], "mean_accuracy": 0.625, "std_accuracy": 0.125, "macro_f1": 0.6, "uar": 0.61,
           "auc_macro": 0.8, "params": 1234, "train_seconds": 12.0, "figures": {"roc": "x/late_roc.png"}}
    plain = {**row, "model": "au_mlp", "model_config": {}, "train": {}, "seeds": [0], "figures": {}}
    base = {**cfg.to_dict(TrainConfig()), "lr": 0.01, "augment": {**cfg.to_dict(TrainConfig().augment), "speed": [0.9]}}
    results = {"models": {"late": row, "au_mlp": plain}, "labels": ["a", "b"],
               "protocol": {"dataset": "ravdess", "takes": 40, "folds": folds, "selection": selection,
                            "train_config": base},
               "extract_seconds": 1.5, "executor": "local", "versions": {"avemo": "0"},
               "machine": {"platform": "p", "cpus": 2}, "command": "python make.py"}
    path.write_text(json.dumps(results, indent=2))
    return path


def test_a_report_is_rewritten_from_its_json_with_the_training_configuration(tmp_path):
    """A random-split report written before the protocol line looked at the splits said "test speakers
    unseen"; rewritten from its JSON alone, its protocol line (and the JSON's) follows the folds'
    speakers, every number stays, and the training configuration that ran is stated."""
    random_folds = [{"fold": i, "train_speakers": ["01", "02"], "val_speakers": ["01"], "test_speakers": ["01", "02"]}
                    for i in (1, 2)]
    old = "early stopping and best epoch on the validation speakers; test speakers unseen"
    path = _result_file(tmp_path / "r.json", random_folds, old)
    before = json.loads(path.read_text())
    md = rewrite_report(path, title="T", paper_numbers={"late": "99 (paper)"}, notes=["a note"])
    text = md.read_text()
    after = json.loads(path.read_text())
    assert "RANDOM splits" in after["protocol"]["selection"] and {**after, "protocol": {}} == {**before, "protocol": {}}
    assert "- Protocol: early stopping and best epoch on validation takes; RANDOM splits" in text and "unseen" not in text
    assert "Generated by `python make.py`" in text and "| 62.50 ± 12.50 | 60.00 | 61.00 | 0.800 | 1,234 | 12 | 99 (paper) |" in text
    assert "- Every model: avemo's `TrainConfig` defaults except `lr = 0.01`, `augment.speed = [0.9]`." in text
    assert "- Seeds: 0, unless a row below says otherwise" in text  # of two seed lists as common, the shorter
    assert '| late | late_calibrated | `{"video": "au_mlp"}` | `epochs = 15`, `patience = 5` | 0, 1 |' in text
    assert text.index("## Training configuration") < text.index("## Notes") and text.endswith("- a note\n")

    disjoint = [{"fold": 1, "train_speakers": ["01"], "val_speakers": ["02"], "test_speakers": ["03"]}]
    path = _result_file(tmp_path / "d.json", disjoint, old)
    unchanged = path.read_text()
    assert "- Protocol: " + old + "; 1 fold, 40 takes" in rewrite_report(path, title="T").read_text()
    assert path.read_text() == unchanged
    path.write_text("{}")
    with pytest.raises(ConfigError, match="not a benchmark result file") as err:
        rewrite_report(path, title="T")
    assert str(path) in str(err.value)


def test_one_fold_has_no_spread_in_the_json_the_report_or_the_command_output(tmp_path, capsys):
    """With one fold the report said "50.00 ± 0.00", as if the spread had been measured to be nil: the
    JSON's std is null, and the report and `avemo benchmark`'s summary give the mean alone."""
    from avemo.cli.benchmark import _print_bench
    from avemo.metrics import summarise_folds

    assert summarise_folds([0.5]) == (0.5, None) and summarise_folds([0.5, 0.75]) == (0.625, 0.125)
    one = {"fold": 1, "train_speakers": ["01"], "val_speakers": ["02"], "test_speakers": ["03"]}
    path = _result_file(tmp_path / "one.json", [one], "speaker-disjoint")
    results = json.loads(path.read_text())
    for row in results["models"].values():
        row.update(fold_accuracy=[0.5], mean_accuracy=0.5, std_accuracy=None, std_uar=None,
                   out_of_domain={"emodb": {"status": "scored", "uar": 0.3, "std_uar": None, "accuracy": 0.4,
                                            "std_accuracy": None}})
    results["out_of_domain"] = {"emodb": {"root": "e", "scored_takes": 5, "takes": 6, "labels": ["a", "b"],
                                          "mapping": {"model": {"map": {}}, "data": {"map": {}}}, "left_out": {},
                                          "skipped": []}}
    path.write_text(json.dumps(results))
    text = rewrite_report(path, title="T").read_text()
    assert "| 50.00 | 60.00 | 61.00 | 0.800 |" in text and "| late | 50.00 | 61.00 | 30.00 | 40.00 |" in text
    assert not re.search(r"\d ± ", text)  # the headings still say "mean ± std"
    results["skipped"] = []
    _print_bench(results, tmp_path / "one.md", path)
    out = " ".join(capsys.readouterr().out.split())
    assert "late 50.00 macro-F1 60.00" in out and not re.search(r"\d ± ", out)


def test_the_report_says_when_the_folds_were_not_speaker_disjoint_for_copies(tmp_path):
    """`avemo benchmark --allow-copies` went on with a recording under two speakers: the report says it,
    and a copy of one speaker's take is counted apart."""
    folds = [{"fold": i, "train_speakers": ["01"], "val_speakers": ["02"], "test_speakers": ["03"]} for i in (1, 2)]
    path = _result_file(tmp_path / "c.json", folds, "speaker-disjoint")
    results = json.loads(path.read_text())
    results["copies"] = [{"files": ["a.wav", "b.wav"], "speakers": ["01", "03"], "emotions": ["sad", "sad"]},
                         {"files": ["c.wav", "d.wav"], "speakers": ["01", "01"], "emotions": ["sad", "sad"]}]
    path.write_text(json.dumps(results))
    text = rewrite_report(path, title="T").read_text()
    assert ("- **Not speaker-disjoint for 1 recording(s)**: byte-identical files under two speakers (read with "
            "--allow-copies), so a fold can test on a recording it trained on (listed in `c.json`, `copies`).") in text
    assert "- Copies: 1 recording(s) are byte-identical files of two takes of one speaker" in text


def _one_fold(models: dict) -> dict:
    """``models`` (a result file's) as a run of one fold would have them: the first fold, no std."""
    out = {}
    for name, m in models.items():
        m = {k: v[:1] if k.startswith("fold_") or k == "best_epochs" else None if k.startswith("std_") else v
             for k, v in m.items()}
        out[name] = {**m, "mean_accuracy": m["fold_accuracy"][0]}
    return out


def test_the_ravdess_au_reports_of_one_fold_give_the_mean_alone(benchmark_script, tmp_path):
    """A result of one fold (its std None, `summarise_folds`): the script's report sections formatted the
    std as a number (a TypeError) and its titles said "5-fold" whatever the folds."""
    from avemo.evaluation.suite import load_suite

    script, suite = benchmark_script("ravdess_au"), load_suite("ravdess_au")
    results = json.loads((Path(__file__).resolve().parents[1] / "docs" / "results" / "ravdess_au_random.json").read_text())
    results["models"] = _one_fold(results["models"])
    (tmp_path / "ravdess_au_random.json").write_text(json.dumps(results))
    text = script.rewrite_random_report(tmp_path).read_text()
    assert text.startswith("# RAVDESS-AU: RANDOM-SPLIT 1-fold CV") and not re.search(r"\d ± ", text)
    default = results["models"]["default"]
    models = {f"{n}{suffix}": default for n in suite.model_set("table_1") for suffix in ("", "_whisper")}
    speaker = {"models": {**models, **results["models"]}, "_folds": {}}
    timing = {"command": "c", "wall_seconds": 1.0, "extract_seconds": 0.5, "train_seconds": 0.5, "mean_accuracy": 0.5,
              "fold_accuracy": [0.5], "load_average_before": [1.0], "load_average_after": [1.0]}
    sections = dict(script.answer_sections(suite, speaker, {}, {}, results, timing))
    said = "\n".join(line for lines in sections.values() for line in lines)
    assert "one fold: no fold-to-fold spread was measured" in said and "1 random fold(s)" in said
    assert "for the 1 fold(s)" in said and not re.search(r"\d ± ", said) and "None" not in said


def test_the_random_split_report_is_what_its_json_gives(benchmark_script, tmp_path):
    """docs/results/ravdess_au_random.md is what `benchmarks/ravdess_au.py --from-json` writes from its JSON."""
    results = Path(__file__).resolve().parents[1] / "docs" / "results"
    (tmp_path / "ravdess_au_random.json").write_bytes((results / "ravdess_au_random.json").read_bytes())
    md = benchmark_script("ravdess_au").rewrite_random_report(tmp_path)
    assert md.read_text() == (results / "ravdess_au_random.md").read_text()
    assert (tmp_path / "ravdess_au_random.json").read_bytes() == (results / "ravdess_au_random.json").read_bytes()


@pytest.mark.shared_data
def test_speaker_splits_follow_the_plan(full_data):
    splits = plan_splits(full_data, builtin_plan("ravdess_au").folds)
    assert sorted(speakers(splits[0].test)) == ["01", "02", "04", "05"]
    for s in splits:
        assert not speakers(s.train) & speakers(s.test) and not speakers(s.val) & speakers(s.test)


# ----------------------------------------------------------------------------- suites


SUITE = load_suite("ravdess_au")
DEFAULT_SEEDS = (0, 1, 2, 3, 4)


def test_suite_has_every_model_once_and_the_recommended_ensemble():
    entries = SUITE.benchmark_entries()
    names = [e.name for e in entries]
    assert len(names) == len(set(names))
    # every audio and fusion model, except those that read text: RAVDESS has no transcripts
    reads_text = {n for n in list_models("fusion") if "text" in {s.modality for s in create_model(n, num_classes=8).inputs.values()}}
    assert reads_text == {"gao_dialogue"}
    assert (set(list_models("audio")) | set(list_models("fusion"))) - reads_text | {"au_mlp", "default"} == set(names)
    by = {e.name: e for e in entries}
    assert by["default"].seeds == DEFAULT_SEEDS and by["default"].group == "recommended"
    assert all(by[n].model_config.get("video") == "au_mlp" for n in set(list_models("fusion")) - reads_text)
    assert by["msaf"].group == "model-level fusion" and by["mcbp"].group == "early fusion"
    assert by["late_product"].group == "late fusion" == SUITE.group_of("late_calibrated")
    for name in SUITE.train_overrides:  # the recurrent models on long sequences get a smaller epoch budget
        assert by[name].train == SUITE.train_overrides[name] and by[name].train["epochs"] < SUITE.train["epochs"]
    assert by["msaf"].train == {}


def test_extended_suite_adds_whisper_and_speaker_norm_variants():
    by = {e.name: e for e in SUITE.benchmark_entries(extended=True)}
    for name in SUITE.model_set("table_1"):
        e = by[f"{name}_whisper"]
        assert e.model == name and e.model_config == {"audio": "whisper_mlp", "video": "au_mlp"}
        assert e.group.startswith(SUITE.group_of(name))
    spk = by["default_spknorm"]
    assert spk.train["speaker_norm"] is True and spk.seeds == DEFAULT_SEEDS and spk.model == "default"
    assert "speaker_norm" not in by["default"].train
    assert SUITE.benchmark_entries(["au_mlp", "default"]) == [by["au_mlp"], by["default"]]


def test_baseline_config_errors():
    with pytest.raises(ConfigError, match="classifier must be"):
        SvmBaseline(classifier="forest")
    with pytest.raises(ConfigError, match="needs audio features or tables"):
        SvmBaseline(audio=(), tables=False)


def test_unknown_suite_model_is_a_one_line_config_error():
    with pytest.raises(ConfigError) as err:
        SUITE.benchmark_entries(["msaf", "no_such"])
    assert "no_such" in str(err.value) and "\n" not in str(err.value)


def test_a_suite_is_data_read_from_toml(tmp_path):
    assert "ravdess_au" in list_suites()
    assert SUITE.dataset == "ravdess" and SUITE.fold_plan().name == "ravdess_au" and SUITE.tables == ("openface_au_means",)
    assert SUITE.train_config({"epochs": 3}).epochs == 3 and SUITE.train_config().lr == SUITE.train["lr"]
    assert SUITE.papers["mfa_fercnn"].startswith("95.07") and len(SUITE.explore_entries()) == len(SUITE.explore)
    own = tmp_path / "mine.toml"
    own.write_text('name = "mine"\ntitle = "t"\ndataset = "ravdess"\nplan = "ravdess"\n[train]\nepochs = 2\n'
                   '[groups]\n"audio only" = ["whisper_mlp"]\n[[entries]]\nmodels = ["whisper_mlp"]\n'
                   'name = "{model}_x"\ngroup = "{group}!"\n')
    mine = load_suite(own)
    assert [(e.name, e.group) for e in mine.benchmark_entries()] == [("whisper_mlp_x", "audio only!")]
    assert mine.fold_plan().name == "ravdess" and len(mine.fold_plan()) == 6


@pytest.mark.parametrize("text, message", [
    ('name = "x"\ntitle = "t"\ndataset = "ravdess"\nplan = "p"\ncolour = 1\n', "unknown option(s) colour;"),
    ('name = "x"\ntitle = "t"\ndataset = "ravdess"\nplan = "p"\n[train]\nepochs = "many"\n', "suite.train.epochs"),
    ('name = "x"\ntitle = "t"\ndataset = "ravdess"\nplan = "p"\n[[entries]]\nmodels = ["a"]\nname = "{nope}"\n',
     "unknown placeholder"),
])
def test_bad_suite_files_are_one_line_config_errors(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_suite(path)
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="unknown benchmark suite 'nope'; available: iemocap, ravdess_au"):
        load_suite("nope")


# ----------------------------------------------------------------------------- end to end


@pytest.mark.shared_data
def test_run_benchmark_svm_floor_and_report(small_data, tmp_path):
    splits = plan_splits(small_data, list(make_plan(small_data.speakers, 2, n_val=1)))
    entries = [
        BenchmarkEntry("au_mlp", "au_mlp", group="visual only (AU)"),
        BenchmarkEntry("calibrated", "late_calibrated", model_config={"audio": "egemaps_mlp"}, seeds=(0, 1),
                       group="late fusion"),
    ]
    cache = FeatureCache(tmp_path / "cache")
    results = run_benchmark(entries, small_data, splits, cache=cache, train_config=TrainConfig(epochs=2))
    m = results["models"]["calibrated"]
    for key in ("fold_accuracy", "mean_accuracy", "std_accuracy", "macro_f1", "uar", "params", "train_seconds"):
        assert key in m
    assert len(m["fold_accuracy"]) == 2 and len(m["best_epochs"][0]) == 2  # two folds, two seeds each
    assert np.isclose(m["mean_accuracy"], np.mean(m["fold_accuracy"]))
    assert sum(map(sum, m["confusion"])) == len(small_data.takes)  # every take tested once
    probs = results["_folds"]["calibrated"][0].probabilities
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)

    floor = svm_baseline(small_data, splits, cache, SvmBaseline(grid=(1.0, 10.0)))
    assert [f.fold for f in floor] == [1, 2] and all(f.metrics["C"] in (1.0, 10.0) for f in floor)
    assert floor[0].probabilities.shape == (len(floor[0].labels), len(small_data.labels))
    au_only = svm_baseline(small_data, splits, cache, SvmBaseline(audio=(), classifier="logreg", grid=(0.1, 1.0)),
                           name="au_logreg")
    assert all(f.metrics["C"] in (0.1, 1.0) for f in au_only)
    np.testing.assert_allclose(au_only[0].probabilities.sum(1), 1.0, rtol=1e-6)
    assert au_only[0].params > 0 and au_only[0].params % 36 == 0  # 35 AU weights + a bias per class
    results["models"]["svm_floor"] = {"model": "svm", "group": "floor", "inputs": {}, **summarise_results(floor)}
    results["_folds"]["svm_floor"] = floor

    json_path, md_path = write_report(
        results, tmp_path / "out", "bench", title="t", command="python x", paper_numbers={"au_mlp": "12.3 (paper)"},
        sections=[("Answers", ["- the best model is here"])], extra={"svm": {"C": [f.metrics["C"] for f in floor]}})
    saved = json.loads(json_path.read_text())
    assert set(saved["models"]) == {"au_mlp", "calibrated", "svm_floor"} and saved["svm"]["C"]
    assert "_folds" not in saved and saved["command"] == "python x"
    text = md_path.read_text()
    assert "## Answers" in text and "- the best model is here" in text and "12.3 (paper)" in text
    assert text.index("## Answers") < text.index("| model | group |")
    for name in ("au_mlp", "calibrated", "svm_floor"):
        for fig in ("confusion", "roc"):
            png = tmp_path / "out" / saved["models"][name]["figures"][fig]
            assert png.read_bytes()[:4] == b"\x89PNG" and f"]({saved['models'][name]['figures'][fig]})" in text
    assert "curves" in saved["models"]["calibrated"]["figures"] and "curves" not in saved["models"]["svm_floor"]["figures"]
    # the training configuration that ran: the base once (what differs from the defaults), the models' own settings
    assert "- Every model: avemo's `TrainConfig` defaults except `epochs = 2`." in text
    assert "- Seeds: 0, unless a row below says otherwise" in text
    assert '| calibrated | late_calibrated | `{"audio": "egemaps_mlp"}` | none | 0, 1 |' in text
    assert "| au_mlp |" not in text.split("## Training configuration")[1]  # nothing of its own
    assert "| svm_floor | svm |  | none | none (not trained by epochs) |" in text


@pytest.fixture(scope="module")
def fold1_root(ravdess_subset):
    """6 clips each of speakers 01 (a fold-1 test speaker), 06 (validation) and 08 (training)."""
    return ravdess_subset(("01", "06", "08"), step=10)


@pytest.mark.shared_data
def test_cli_benchmark_writes_the_report(fold1_root, au_table, tmp_path, avemo_main):
    out = tmp_path / "results"
    code, _, err = avemo_main("benchmark", "ravdess_au", "--root", fold1_root, "--visual-table", au_table, "--models",
                              "au_mlp", "--folds", "1", "--epochs", "1", "--out", out, "--cache", tmp_path / "c")
    assert code == 0, err
    saved = json.loads((out / "ravdess_au.json").read_text())
    assert list(saved["models"]) == ["au_mlp"] and saved["protocol"]["folds"][0]["test_speakers"] == ["01"]
    assert saved["protocol"]["train_config"]["epochs"] == 1 and saved["models"]["au_mlp"]["seeds"] == [0]
    # the weighting that ran, as a checkpoint records it: "auto" is "none" with one corpus
    assert saved["protocol"]["corpora"] == ["ravdess"] and saved["protocol"]["train_config"]["balance"] == "none"


@pytest.mark.shared_data
def test_cli_benchmark_says_once_that_a_fold_has_no_validation_takes(fold1_root, au_table, tmp_path, avemo_main,
                                                                     caplog):
    """Fold 2 on speakers 01, 06, 08 (its validation speakers 11, 12 missing): the command's check of the
    folds and the benchmark's own both said so, the same warning line twice."""
    with caplog.at_level("WARNING", logger="avemo.evaluation.benchmark"):
        code, _, err = avemo_main("benchmark", "ravdess_au", "--root", fold1_root, "--visual-table", au_table,
                                  "--models", "au_mlp", "--folds", "2", "--epochs", "1", "--out", tmp_path / "r",
                                  "--cache", tmp_path / "c")
    assert code == 0, err
    said = [r.getMessage() for r in caplog.records if "fold 2: none of its validation speakers" in r.getMessage()]
    assert len(said) == 1, said


@pytest.mark.shared_data
def test_cli_epochs_override_the_suites_per_model_epochs(fold1_root, au_table, tmp_path, avemo_main):
    """`--epochs 1` is one epoch for every model: a suite's per-model epochs (as ravdess_au gives the
    recurrent models 15) used to win over it, while the report's train_config said 1."""
    suite = tmp_path / "suite.toml"
    suite.write_text('name = "tiny"\ntitle = "tiny"\ndataset = "ravdess"\nplan = "ravdess_au"\ntables = ["openface_au_means"]\n'
                     '[train]\nepochs = 4\npatience = 4\n[train_overrides]\nau_mlp = { epochs = 3 }\n'
                     '[[entries]]\nmodels = ["au_mlp"]\ntrain = { patience = 3 }\n')
    out = tmp_path / "results"
    args = ["-v", "benchmark", suite, "--root", fold1_root, "--visual-table", au_table, "--folds", "1", "--epochs", "1",
            "--out", out, "--cache", tmp_path / "c"]
    code, _, err = avemo_main(*args)
    assert code == 0, err
    saved = json.loads((out / "tiny.json").read_text())
    row = saved["models"]["au_mlp"]
    assert saved["protocol"]["train_config"]["epochs"] == 1
    assert row["train"] == {"epochs": 1, "patience": 3} and row["best_epochs"] == [[1]]
    # the command as given, global options included (it used to say "avemo benchmark benchmark ...", without -v)
    assert saved["command"] == "avemo " + " ".join(map(str, args))


@pytest.mark.shared_data
def test_cli_benchmark_lists_the_files_no_fold_scores(ravdess_subset, au_table, ravdess_video, ravdess_speech_root,
                                                      tmp_path, avemo_main):
    """A malformed name and a corrupt file used to drop out of every fold silently (the report still
    said "N takes"); now the command lists them and the report counts them."""
    root = ravdess_subset(("01", "06", "08"), step=10)
    (root / "Actor_01" / "03-01-99-01-01-01-01.wav").write_bytes(b"")  # emotion 99 does not exist
    victim = next((root / "Actor_01").glob("*.flac"))
    victim.unlink()
    victim.write_bytes(b"fLaC and then nothing")
    # a stray copy of a take outside the Actor_XX layout (sorting first) is a duplicate, not a skipped file
    kept = sorted((root / "Actor_06").glob("*.flac"))[0]
    (root / "0copies").mkdir()
    (root / "0copies" / kept.name).symlink_to(kept.resolve())
    # the one video of the shared data, with its take's audio: "video 1" is a file, the AU table is a table
    for f in (ravdess_video, ravdess_speech_root / "Actor_01" / "03-01-07-02-02-01-01.flac"):
        if not (root / "Actor_01" / f.name).exists():
            (root / "Actor_01" / f.name).symlink_to(f)
    out = tmp_path / "results"
    code, _, err = avemo_main("benchmark", "ravdess_au", "--root", root, "--visual-table", au_table, "--models",
                              "mfcc_cnn1d", "--folds", "1", "--epochs", "1", "--out", out, "--cache", tmp_path / "c")
    assert code == 0, err
    saved = json.loads((out / "ravdess_au.json").read_text())
    assert sorted(Path(s["file"]).name for s in saved["skipped"]) == sorted(["03-01-99-01-01-01-01.wav", victim.name])
    assert "03-01-99-01-01-01-01.wav" in err and victim.name in err
    assert saved["duplicates"] == [{"file": str(root / "0copies" / kept.name),
                                    "reason": f"a copy of take {kept.stem[3:]} (audio), which is read from {kept}"}]
    assert f"duplicate {root / '0copies' / kept.name}" in " ".join(err.split())
    md = (out / "ravdess_au.md").read_text()
    assert "- Skipped: 2 file(s)" in md and "- Duplicates: 1 file(s) set aside as copies of takes" in md
    n = saved["protocol"]["takes"]  # every take has an audio file and a row of the AU table; one has a video file
    assert saved["protocol"]["table_takes"] == {"openface_au_means": n}
    assert f"- Takes with an audio file {n}, with a video file 1; with a row of the visual table openface_au_means {n}." in md


@pytest.mark.shared_data
@pytest.mark.parametrize("args, message", [
    (["--protocol", "shuffled"], "--protocol 'shuffled' is not one of speaker, random"),
    (["--folds", "9"], "--folds [9] not in the plan"),
    (["--seeds", "a,b"], "comma-separated integers"),
    (["--models", "nope"], "not in the ravdess_au suite"),
    # a fold whose test speakers are not in the folder (11-14) used to end in a numpy traceback after training
    (["--folds", "1,3", "--models", "au_mlp"], "fold 3 has no test takes: none of its test speakers is in the data "
                                               "(speakers 01, 06, 08); run the folds that have them (--folds 1,2)"),
])
def test_cli_benchmark_errors_are_one_line(fold1_root, au_table, tmp_path, args, message, avemo_main):
    code, _, err = avemo_main("benchmark", "ravdess_au", "--root", fold1_root, "--visual-table",
                              au_table, "--out", tmp_path, "--cache", tmp_path / "c", *args)
    assert code == 2 and message in err and err.count("\n") == 1


# ----------------------------------------------------------------------------- the benchmark script's answers

def _model(acc: float, group: str, **train) -> dict:
    return {"mean_accuracy": acc, "std_accuracy": 0.02, "macro_f1": acc - 0.01, "uar": acc, "group": group,
            "train": train, "seeds": [0]}


def test_script_answers_follow_the_numbers(benchmark_script):
    script = benchmark_script("ravdess_au")
    models = {
        "whisper_mlp": _model(0.72, "audio only"), "mfcc_cnn1d": _model(0.47, "audio only"),
        "au_mlp": _model(0.55, "visual only (AU)"), "au_mlp_spknorm": _model(0.70, "visual only (AU) + speaker norm", speaker_norm=True),
        "default": _model(0.83, "recommended"), "default_spknorm": _model(0.90, "x", speaker_norm=True),
    }
    for i, name in enumerate(("late_average", "late_multiplicative", "late_product", "concat_fc", "mcbp")):
        models[name] = _model(0.60 + 0.001 * i, "late")
    for name in ("mmtm", "msaf", "cfn_sr", "cfnsr_lstm"):
        models[name] = _model(0.58, "model-level fusion")
    sections = dict(script.answer_sections(SUITE, {"models": models, "_folds": {}}, {}, {}, None, None))
    answers = "\n".join(sections["Answers"])
    assert "**Best model, no speaker normalisation**: `default` 83.0" in answers and "target 80 % reached" in answers
    assert "with speaker normalisation** (" in answers and "`default_spknorm` 90.0" in answers
    assert "**Audio only (from raw audio)**: best `whisper_mlp` 72.0" in answers and "70 % reached" in answers
    assert "**AU only**: best `au_mlp` 55.0" in answers and "60 % NOT reached" in answers
    assert "with speaker normalisation, best `au_mlp_spknorm` 70.0" in answers
    claim = "\n".join(sections["Paper 000's claim: model-level vs early vs late fusion"])
    assert "| msaf | model | 58.0 ± 2.0 | n/a |" in claim
    assert "MFCC CNN audio: group means model-level 58.0" in claim and "does NOT hold" in claim
    for name in ("mmtm", "msaf", "cfn_sr", "cfnsr_lstm"):
        models[name] = _model(0.65, "model-level fusion")
    claim = "\n".join(dict(script.answer_sections(SUITE, {"models": models, "_folds": {}}, {}, {}, None, None))[
        "Paper 000's claim: model-level vs early vs late fusion"])
    assert "The claim holds here" in claim


def test_script_effect_lines_use_paired_differences(benchmark_script):
    script = benchmark_script("ravdess_au")

    def row(question, acc, model="whisper_mlp", **kw):
        return {"question": question, "model": model, "model_config": kw.get("config", {}), "train": kw.get(
            "train", {}), "seeds": [0], "inner_accuracy": acc, "mean": float(np.mean(acc)), "nll": 1.0}

    explore = {
        "whisper_mlp linear": row("audio head", [0.70, 0.72, 0.74, 0.70, 0.80]),
        "consistently better": row("audio head", [0.73, 0.75, 0.77, 0.73, 0.83]),
        "better on one fold": row("audio head", [0.70, 0.72, 0.74, 0.70, 0.95]),
    }
    lines = script.effect_lines(explore)
    assert any(line.startswith("- consistently better: +3.0 ± 0.0 points") and "helped" in line for line in lines)
    assert any(line.startswith("- better on one fold: +3.0 ± 3.0 points") and "no clear effect" in line
               for line in lines)
    assert not any(line.startswith("- whisper_mlp linear") for line in lines)  # the reference itself


def test_script_baselines_do_not_take_the_names_of_suite_models(benchmark_script):
    """The report puts the scikit-learn baselines' rows next to the suite's models by name: a shared
    name (the baseline once called ``whisper_logreg``, now a registry model) would replace the model's row."""
    baselines = set(benchmark_script("ravdess_au").baselines())
    entries = {e.name for e in SUITE.benchmark_entries(None, extended=True)}
    assert "whisper_logreg" in entries and "whisper_sklearn_logreg" in baselines
    assert not baselines & entries


def test_benchmark_reports_are_titled_by_their_suite():
    """Reports were titled "{suite}: speaker-disjoint CV", whatever the suite's own title said."""
    from avemo.cli.benchmark import _bench_names
    from avemo.evaluation.suite import load_suite

    ravdess, iemocap = load_suite("ravdess_au"), load_suite("iemocap")
    assert _bench_names(ravdess, "speaker", None) == ("ravdess_au", "RAVDESS-AU: speaker-disjoint 5-fold CV")
    assert _bench_names(ravdess, "random", None) == (
        "ravdess_au_random", "RAVDESS-AU: RANDOM-SPLIT CV (speakers on both sides; comparison only)")
    assert _bench_names(iemocap, "speaker", "iemocap4") == (
        "iemocap_iemocap4", "IEMOCAP: leave-one-session-out CV (papers 002 and 003), iemocap4 labels")


def test_a_benchmark_of_some_folds_says_so_in_its_title():
    """`--folds 1,3` of the 5-fold plan was titled "speaker-disjoint 5-fold CV", as the whole plan."""
    from avemo.cli.benchmark import _bench_names
    from avemo.evaluation.suite import load_suite

    ravdess = load_suite("ravdess_au")
    assert _bench_names(ravdess, "speaker", None, [1, 3])[1] == (
        "RAVDESS-AU: speaker-disjoint 5-fold CV -- only folds 1, 3 of 5 run")
    assert _bench_names(ravdess, "random", None, [2])[1].endswith("comparison only) -- only fold 2 of 5 run")
    assert _bench_names(ravdess, "speaker", None, [1, 2, 3, 4, 5])[1] == "RAVDESS-AU: speaker-disjoint 5-fold CV"


def test_cli_benchmark_refuses_a_model_whose_table_is_not_given_before_reading_the_data(
        tmp_path, monkeypatch, avemo_main):
    """A suite that declares no table, with a model that reads one: the model's table was missed only
    in its first fold's training, after the corpus had been read (and earlier models trained)."""
    from avemo.evaluation.suite import Suite

    def refuse(*_, **__):
        raise AssertionError("the data was read although a model's table was known to be missing")

    monkeypatch.setattr(Suite, "load_data", refuse)
    own = tmp_path / "mine.toml"
    own.write_text('name = "mine"\ntitle = "t"\ndataset = "ravdess"\nplan = "ravdess"\n'
                   '[[entries]]\nmodels = ["mfcc_cnn1d", "au_mlp"]\n')
    code, _, err = avemo_main("benchmark", own, "--root", tmp_path, "--out", tmp_path / "report")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("avemo: error: au_mlp: input 'video' needs 'openface_au_means', which is no feature "
                          "extractor: it must be given as a table (e.g. --visual-table CSV); tables given: none"), err
    assert not (tmp_path / "report").exists()


@pytest.mark.shared_data
def test_cli_benchmark_warns_of_a_truncated_file_once_per_run(ravdess_subset, au_table, make_clip, tmp_path,
                                                              avemo_main, caplog):
    """The decoder's line about a truncated file came once when the benchmark extracted the features and
    again when the folds gathered them from the cache (and a warm run said the 'from the cache' line
    twice): now once per run, cold or warm, over two folds."""
    root = ravdess_subset(("01", "06", "08", "11"), step=10)  # fold 1: test 01; fold 2: test 06, 08
    whole = make_clip("whole.wav", duration=1.0).read_bytes()
    cut = root / "Actor_01" / "03-01-05-01-01-01-01.wav"
    for old in (root / "Actor_01").glob(f"{cut.stem}.*"):
        old.unlink()
    cut.write_bytes(whole[: len(whole) // 2])
    args = ["benchmark", "ravdess_au", "--root", root, "--visual-table", au_table, "--models", "mfcc_cnn1d",
            "--folds", "1,2", "--epochs", "1", "--cache", tmp_path / "c"]
    for run in ("cold", "warm"):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            code, _, err = avemo_main(*args, "--out", tmp_path / run)
        assert code == 0, err
        lines = [r.getMessage() for r in caplog.records if cut.name in r.getMessage()]
        assert len(lines) == 1, (run, lines)
        said = "truncated or damaged: the header declares" if run == "cold" else "have features from the cache"
        assert said in lines[0], (run, lines)


def test_report_inputs_name_a_variable_frame_axis_not_none(tmp_path):
    """A model whose input has as many frames as the clip (`fercnn`: mfcc of shape (None, 40) in its spec)
    was listed as `mfcc (None, 40)` in NAME.json and NAME.md (docs/results/ravdess_au.md)."""
    from avemo.evaluation.benchmark import _model_result

    labels = np.array([0, 1, 0, 1])
    fold = FoldResult("fercnn", 1, compute_metrics(labels, np.eye(2)[labels], ["a", "b"]).to_dict(), np.eye(2)[labels], labels,
                      [], [], 10, 1.0)
    row = _model_result(BenchmarkEntry("fercnn", "fercnn"), [fold])
    assert row["inputs"] == {"audio": "mfcc (T, 40)"}
    results = {"models": {"fercnn": {**row, "figures": {}}}, "labels": ["a", "b"],
               "protocol": {"dataset": "d", "takes": 4, "folds": [{"fold": 1}], "selection": "s"},
               "extract_seconds": 0, "executor": "local", "versions": {}, "machine": {"platform": "p", "cpus": 1},
               "command": "c"}
    text = report_markdown(results, "r", title="t")
    assert "mfcc (T, 40)" in text and "`T`, as many frames as the clip has" in text and "None" not in text


@pytest.mark.shared_data
def test_a_report_lists_the_speakers_and_test_takes_of_every_fold(small_data, tmp_path):
    """The speakers of each fold were in NAME.json only, and the test takes of each fold nowhere: a reader
    could not check that the folds cover the corpus, nor which speakers a fold's accuracy is of."""
    entries = [BenchmarkEntry("au_mlp", "au_mlp")]
    folds = plan_splits(small_data, list(make_plan(small_data.speakers, 2, n_val=1)))
    results = run_benchmark(entries, small_data, folds, cache=FeatureCache(tmp_path / "cache"),
                            train_config=TrainConfig(epochs=1))
    _, md = write_report(results, tmp_path / "out", "r", title="t", command="c")
    text = md.read_text()
    assert results["models"]["au_mlp"]["fold_n"] == [len(s.test) for s in folds]
    assert f"test takes {len(small_data.takes)} of {len(small_data.takes)}" in text
    for s in folds:
        row = (f"| {s.number} | {', '.join(sorted(speakers(s.test)))} | {', '.join(sorted(speakers(s.val)))} | "
               f"{len(s.test)} |")
        assert row in text
    for line in text.splitlines():  # every table row has its header's columns
        if line.startswith("| fold |"):
            width = line.count("|")
        elif line.startswith("| ") and line[2:3].isdigit():
            assert line.count("|") == width
    results["models"]["au_mlp"]["fold_n"][0] -= 1  # a take whose feature failed: the model's cell says so
    fewer = report_markdown({**results, "command": "c"}, "r", title="t")
    assert f" (n {len(folds[0].test) - 1}) |" in fewer and "`n`: a model's test takes where fewer" in fewer


def test_the_training_configuration_lists_only_settings_that_differ_from_the_base(tmp_path):
    """`avemo benchmark --epochs 3` puts epochs = 3 in the base and in every model's settings: every model
    was listed under "Models with settings of their own" with `epochs = 3`, the base's value."""
    folds = [{"fold": 1, "train_speakers": ["01"], "val_speakers": ["02"], "test_speakers": ["03"]}]
    path = _result_file(tmp_path / "r.json", folds, "s")
    results = json.loads(path.read_text())
    results["protocol"]["train_config"]["epochs"] = 3
    results["models"]["au_mlp"]["train"] = {"epochs": 3}
    results["models"]["late"]["train"] = {"epochs": 3, "patience": 5}
    path.write_text(json.dumps(results))
    text = rewrite_report(path, title="T").read_text()
    own = text.split("Models with settings of their own")[1]
    assert "| au_mlp |" not in own and "`epochs = 3`" not in own
    assert "| late | late_calibrated | `{\"video\": \"au_mlp\"}` | `patience = 5` | 0, 1 |" in own


def test_the_report_says_which_std_it_gives(tmp_path):
    """The report said "Mean ± std over the folds" without saying which: `summarise_folds` gives the
    population std (ddof 0), 11 % below the sample std over 5 folds."""
    folds = [{"fold": i, "train_speakers": ["01"], "val_speakers": ["02"], "test_speakers": [f"0{i + 2}"]} for i in (1, 2)]
    text = rewrite_report(_result_file(tmp_path / "r.json", folds, "s"), title="T").read_text()
    assert "Mean ± std (population) over the folds" in text


def test_a_base_of_the_defaults_reads_as_such(tmp_path):
    """A run on avemo's `TrainConfig` defaults was reported as "defaults except none."
    (docs/results/ravdess_audio_ood_papers.md)."""
    folds = [{"fold": 1, "train_speakers": ["01"], "val_speakers": ["02"], "test_speakers": ["03"]}]
    path = _result_file(tmp_path / "r.json", folds, "s")
    results = json.loads(path.read_text())
    results["protocol"]["train_config"] = cfg.to_dict(TrainConfig())
    path.write_text(json.dumps(results))
    text = rewrite_report(path, title="T").read_text()
    assert "- Every model: avemo's `TrainConfig` defaults.\n" in text and "except none" not in text
