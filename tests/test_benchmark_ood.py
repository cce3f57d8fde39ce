"""``avemo benchmark --test-corpus``: every (model, fold) run also scored on another corpus.

On a few real clips: the out-of-domain numbers of a fold are those ``avemo evaluate`` gives for
the same run's checkpoint, a model whose input the corpus cannot give is n/a (a late-fusion
model runs on its other expert and says so), the report's "Out of domain" table, and the
one-line refusals that come before any extraction or training. No accuracy thresholds.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from avemo.cache import FeatureCache
from avemo.datasets import make_plan
from avemo.errors import ConfigError, DatasetError
from avemo.evaluation import benchmark as bench
from avemo.evaluation.benchmark import (
    BenchmarkEntry,
    OodCorpus,
    plan_splits,
    rewrite_report,
    run_benchmark,
    write_report,
)
from avemo.training import TrainConfig, evaluate_checkpoint, load_data
from avemo.training.experiment import train_run

pytestmark = pytest.mark.shared_data

SIX = ["angry", "disgust", "fearful", "happy", "sad", "neutral"]


@pytest.fixture(scope="module")
def small_data(ravdess_speech_root, au_table):
    """4 RAVDESS speakers, 10 takes each, with the AU table: 2 folds of 2 epochs in seconds."""
    data = load_data("ravdess", ravdess_speech_root, visual_table=au_table, speakers=["01", "02", "04", "05"])
    return dataclasses.replace(data, takes=data.takes[::6])


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def run(small_data, small_emodb, cache_dir):
    """au_mlp (needs the AU table: n/a on EmoDB), mfcc_cnn1d, and late_calibrated (AU + eGeMAPS
    experts) as a 2-seed ensemble, on 2 folds, each run also scored on EmoDB."""
    splits = plan_splits(small_data, list(make_plan(small_data.speakers, 2, n_val=1)))
    entries = [BenchmarkEntry("au_mlp", "au_mlp"), BenchmarkEntry("mfcc_cnn1d", "mfcc_cnn1d"),
               BenchmarkEntry("calibrated", "late_calibrated", model_config={"audio": "egemaps_mlp"}, seeds=(0, 1))]
    ticks = []
    results = run_benchmark(entries, small_data, splits, cache=FeatureCache(cache_dir),
                            train_config=TrainConfig(epochs=2), ood=[OodCorpus("emodb", load_data("emodb", small_emodb))],
                            extract_progress=lambda corpus, done, total: ticks.append((corpus, done, total)))
    return results, splits, ticks


def test_every_fold_is_scored_on_the_test_corpus_over_the_shared_labels(run, small_emodb):
    results, splits, ticks = run
    corpus = results["out_of_domain"]["emodb"]
    assert corpus["labels"] == SIX and corpus["left_out"] == {"boredom": 2}
    assert corpus["mapping"]["model"]["map"]["calm"] == "neutral" and corpus["mapping"]["model"]["map"]["surprised"] is None
    assert corpus["takes"] == 15 and corpus["scored_takes"] == 13  # the corrupt file is an "angry" take
    assert {item["file"] for item in corpus["skipped"]} == {str(small_emodb / "08a01Wz.wav")}
    # extraction progress for the suite's corpus and for the test corpus, each up to its total
    assert {c for c, _, _ in ticks} == {"ravdess", "emodb"} and ("emodb", 13, 13) in ticks
    for name in ("mfcc_cnn1d", "calibrated"):
        o = results["models"][name]["out_of_domain"]["emodb"]
        assert o["status"] == "scored" and o["labels"] == SIX and o["n"] == [12, 12]  # the corrupt take not scored
        assert len(o["fold_uar"]) == len(splits) and o["uar"] == pytest.approx(np.mean(o["fold_uar"]))
        assert o["std_accuracy"] == pytest.approx(np.std(o["fold_accuracy"]))  # population sd, as in-domain
        confusion = np.array(o["confusion"])
        assert confusion.shape == (6, 6) and confusion.sum() == 24  # pooled: 12 takes x 2 folds
        folds = results["_folds"][name]
        assert [f.ood["emodb"]["accuracy"] for f in folds] == o["fold_accuracy"]
    assert results["models"]["mfcc_cnn1d"]["out_of_domain"]["emodb"]["note"] == ""


def test_a_model_that_needs_the_au_table_is_na_and_late_fusion_runs_on_its_audio_expert(run):
    results, _, _ = run
    au = results["models"]["au_mlp"]["out_of_domain"]["emodb"]
    assert au == {"status": "n/a", "reason": "video reads the openface_au_means table, which emodb was not given"}
    assert all("emodb" not in f.ood for f in results["_folds"]["au_mlp"])  # never run there
    cal = results["models"]["calibrated"]["out_of_domain"]["emodb"]
    assert cal["inputs"] == ["audio"] and cal["note"].startswith("scored without video, from audio alone")


def test_the_out_of_domain_numbers_are_those_evaluate_gives_for_the_same_run(run, small_data, small_emodb, cache_dir,
                                                                             tmp_path):
    """Fold 1 of mfcc_cnn1d trained again with its checkpoint saved, then `evaluate` on EmoDB: the
    same run (same seed, same data) gives the same probabilities, hence the same numbers."""
    results, splits, _ = run
    s = splits[0]
    out = tmp_path / "fold1"
    train_run("mfcc_cnn1d", small_data, train_takes=s.train, val_takes=s.val, test_takes=s.test,
              train_config=TrainConfig(epochs=2, seed=0), cache=FeatureCache(cache_dir), out_dir=out, plots=False)
    ev = evaluate_checkpoint(out, load_data("emodb", small_emodb), cache=FeatureCache(cache_dir)).to_dict()
    fold = results["_folds"]["mfcc_cnn1d"][0].ood["emodb"]
    for key in ("accuracy", "uar", "macro_f1", "weighted_f1", "ece"):
        assert fold[key] == pytest.approx(ev[key], abs=1e-9), key
    assert fold["confusion"] == ev["confusion"] and fold["n"] == ev["n"] and fold["labels"] == ev["labels"]


def test_the_seed_ensemble_is_scored_on_its_mean_probabilities(run, small_data, small_emodb, cache_dir):
    """The two seeds' probabilities over the model's own classes are averaged, then mapped and scored
    (as in-domain), by the library steps `evaluate` uses."""
    from avemo.datasets.labels import comparison_map
    from avemo.training.scoring import model_probabilities, score, scoring_set

    results, splits, _ = run
    s, emodb = splits[1], load_data("emodb", small_emodb)
    probs, sset = [], None
    for seed in (0, 1):
        r = train_run("late_calibrated", small_data, train_takes=s.train, val_takes=s.val, test_takes=s.test,
                      model_config={"audio": "egemaps_mlp"}, train_config=TrainConfig(epochs=2, seed=seed),
                      cache=FeatureCache(cache_dir), plots=False, keep_model=True)
        assert r.model is not None and r.normalizer is not None
        specs = {"audio": r.model.inputs["audio"]}  # EmoDB has no AU table
        sset = sset or scoring_set(comparison_map(small_data.labels, emodb.labels), specs, emodb,
                                   cache=FeatureCache(cache_dir))
        probs.append(model_probabilities(r.model, r.normalizer, sset))
    expected = score(sset, np.mean(probs, axis=0)).metrics
    fold = results["_folds"]["calibrated"][1].ood["emodb"]
    assert fold["uar"] == pytest.approx(expected.uar) and fold["confusion"] == expected.confusion


def test_the_report_has_an_out_of_domain_table_next_to_the_in_domain_numbers(run, tmp_path):
    results, _, _ = run
    json_path, md_path = write_report(results, tmp_path, "ood", title="t", command="avemo benchmark x")
    text = md_path.read_text()
    assert text.index("| model | group |") < text.index("## Out of domain") < text.index("## Training configuration")
    assert "| model | in-domain accuracy | in-domain UAR | emodb UAR | emodb accuracy |" in text
    m = results["models"]["mfcc_cnn1d"]
    o = m["out_of_domain"]["emodb"]
    assert (f"| mfcc_cnn1d | {100 * m['mean_accuracy']:.2f} ± {100 * m['std_accuracy']:.2f} | "
            f"{100 * m['uar']:.2f} ± {100 * m['std_uar']:.2f} | {100 * o['uar']:.2f} ± {100 * o['std_uar']:.2f} | "
            f"{100 * o['accuracy']:.2f} ± {100 * o['std_accuracy']:.2f} |") in text
    assert "| au_mlp |" in text and "n/a (video reads the openface_au_means table, which emodb was not given) | n/a |" in text
    assert "- calibrated on emodb: scored without video, from audio alone" in text
    assert "13 of 15 takes scored over 6 labels" in text and "left out: boredom 2" in text
    assert "merged: calm -> neutral" in text and "skipped: 1 file(s)" in text
    saved = json.loads(json_path.read_text())
    load = saved["machine"]["load"]  # the machine's load averages when the run started and ended, in the report
    assert len(load["before"]) == len(load["after"]) == 3
    assert f"load average (1/5/15 min) {'/'.join(f'{x:g}' for x in load['before'])} before, " in text
    assert saved["out_of_domain"]["emodb"]["left_out"] == {"boredom": 2}
    assert saved["models"]["au_mlp"]["out_of_domain"]["emodb"]["status"] == "n/a"
    md_path.unlink()
    assert rewrite_report(json_path, title="t").read_text() == text  # the JSON alone gives the same report


def test_test_corpora_are_checked_before_any_extraction(small_data, small_emodb, shared_data, tmp_path, monkeypatch):
    def refuse(*_, **__):
        raise AssertionError("features were extracted before the test corpora were checked")

    monkeypatch.setattr(bench, "extract_all", refuse)
    splits = plan_splits(small_data, list(make_plan(small_data.speakers, 2, n_val=1)))
    entries = [BenchmarkEntry("mfcc_cnn1d", "mfcc_cnn1d")]
    kw = dict(cache=FeatureCache(tmp_path / "c"), train_config=TrainConfig(epochs=1))
    emodb = OodCorpus("emodb", load_data("emodb", small_emodb))
    with pytest.raises(ConfigError, match="test corpora have duplicate names"):
        run_benchmark(entries, small_data, splits, ood=[emodb, emodb], **kw)
    bored = tmp_path / "bored"
    bored.mkdir()
    for f in sorted((shared_data / "emodb_dev" / "wav").glob("08*L*.flac"))[:2]:
        (bored / f.name).symlink_to(f)
    with pytest.raises(DatasetError, match=r"no clip has a label that ravdess can be scored on \(boredom: 2"):
        run_benchmark(entries, small_data, splits, ood=[OodCorpus("emodb", load_data("emodb", bored))], **kw)


@pytest.fixture(scope="module")
def fold1_root(ravdess_subset):
    """6 clips each of speakers 01 (a fold-1 test speaker), 06 (validation) and 08 (training)."""
    return ravdess_subset(("01", "06", "08"), step=10)


def test_cli_benchmark_with_a_test_corpus(fold1_root, au_table, small_emodb, tmp_path, avemo_main):
    out = tmp_path / "results"
    code, stdout, err = avemo_main(
        "benchmark", "ravdess_au", "--root", fold1_root, "--visual-table", au_table, "--models", "au_mlp,mfcc_cnn1d",
        "--folds", "1", "--epochs", "1", "--test-corpus", f"emodb={small_emodb}", "--out", out, "--cache", tmp_path / "c")
    assert code == 0, err
    saved = json.loads((out / "ravdess_au.json").read_text())
    assert saved["out_of_domain"]["emodb"]["root"] == str(small_emodb)
    o = saved["models"]["mfcc_cnn1d"]["out_of_domain"]["emodb"]
    assert o["status"] == "scored" and o["n"] == [12] and len(o["fold_uar"]) == 1
    assert saved["models"]["au_mlp"]["out_of_domain"]["emodb"]["status"] == "n/a"
    assert f"emodb: UAR {100 * o['uar']:5.2f}" in stdout and "emodb: n/a" in stdout
    assert "08a01Wz.wav" in err  # the test corpus's unreadable file is listed
    assert "## Out of domain" in (out / "ravdess_au.md").read_text()


def _labelled_folder(root, shared_data, emotions):
    root.mkdir()
    rows = ["path,emotion,speaker"]
    for f, emotion in zip(sorted((shared_data / "emodb" / "wav").glob("*.wav")), emotions, strict=False):
        (root / f.name).symlink_to(f)
        rows.append(f"{f.name},{emotion},x")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.parametrize("value, message", [
    ("emodb", "--test-corpus 'emodb': give DATASET=ROOT"),
    ("tess={tmp}", "unknown dataset 'tess'; known: "),
    # the reader's and the label map's errors did not say which --test-corpus they were about
    ("emodb={tmp}/missing", "--test-corpus 'emodb={tmp}/missing': emodb folder does not exist"),
    ("folder={tmp}/mine", "--test-corpus 'folder={tmp}/mine': label sets ravdess"),
    ("emodb={tmp}/bored", "--test-corpus 'emodb={tmp}/bored': no clip has a label that ravdess can be scored on "
                          "(boredom: 1 left out)"),
    ("ravdess={root}", "is the suite's own corpus, not out of domain"),
    ("ravdess={other}", "speakers 01 are in the suite's corpus too"),
])
def test_cli_test_corpus_errors_are_one_line_before_training(fold1_root, au_table, shared_data, tmp_path, value,
                                                             message, avemo_main, monkeypatch, ravdess_subset):
    def refuse(*_, **__):
        raise AssertionError("trained or extracted before the test corpus was checked")

    monkeypatch.setattr(bench, "extract_all", refuse)
    monkeypatch.setattr(bench, "run_fold", refuse)
    _labelled_folder(tmp_path / "mine", shared_data, ("contempt", "pride", "contempt"))
    (tmp_path / "bored").mkdir()
    (tmp_path / "bored" / "08a01Lc.flac").symlink_to(shared_data / "emodb_dev" / "wav" / "08a01Lc.flac")
    code, _, err = avemo_main("benchmark", "ravdess_au", "--root", fold1_root, "--visual-table", au_table,
                              "--models", "mfcc_cnn1d", "--folds", "1", "--out", tmp_path / "out",
                              "--cache", tmp_path / "c", "--test-corpus", value.format(tmp=tmp_path, root=fold1_root,
                                                                       other=ravdess_subset(("01", "03"), step=20)))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert message.format(tmp=tmp_path) in err, err
    assert not (tmp_path / "out").exists()


def test_cli_refuses_the_same_test_dataset_twice(fold1_root, au_table, small_emodb, tmp_path, avemo_main):
    code, _, err = avemo_main("benchmark", "ravdess_au", "--root", fold1_root, "--visual-table", au_table,
                              "--models", "mfcc_cnn1d", "--out", tmp_path / "out", "--test-corpus",
                              f"emodb={small_emodb}", "--test-corpus", f"emodb={small_emodb}")
    assert code == 2 and "--test-corpus emodb given twice" in err and len(err.strip().splitlines()) == 1
