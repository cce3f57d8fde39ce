"""Cross-corpus evaluation: the comparison map between label sets, probability summing, left-out
clips, the expected calibration error, and ``avemo evaluate`` of a RAVDESS checkpoint on other corpora."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from avemo.cache import FeatureCache
from avemo.cli import app
from avemo.datasets import CREMA_D, EMODB, RAVDESS, Fold, comparison_map, label_set_for, split
from avemo.errors import ConfigError
from avemo.metrics import expected_calibration_error, reliability_bins
from avemo.plots import plot_reliability
from avemo.training import TrainConfig, evaluate_checkpoint, load_data, train_run

FOLDER = label_set_for("folder", ["angry", "happy", "sad", "neutral", "contempt"])
SETS = {"ravdess": RAVDESS, "crema_d": CREMA_D, "emodb": EMODB, "folder": FOLDER}
SIX = {"angry", "disgust", "fearful", "happy", "sad", "neutral"}
EXPECTED_SCORED = {
    frozenset({"ravdess", "crema_d"}): SIX,
    frozenset({"ravdess", "emodb"}): SIX,
    frozenset({"crema_d", "emodb"}): SIX,
    frozenset({"ravdess", "folder"}): {"angry", "happy", "sad", "neutral"},
    frozenset({"crema_d", "folder"}): {"angry", "happy", "sad", "neutral"},
    frozenset({"emodb", "folder"}): {"angry", "happy", "sad", "neutral"},
}


# ------------------------------------------------------------------------------ the map

@pytest.mark.parametrize(("model", "data"), list(itertools.permutations(SETS, 2)))
def test_comparison_map_of_every_pair(model, data):
    c = comparison_map(SETS[model], SETS[data])
    assert set(c.labels) == EXPECTED_SCORED[frozenset({model, data})]
    assert c.model.source == SETS[model] and c.data.source == SETS[data]
    assert c.model.target == c.data.target == c.labels
    assert list(c.labels) == [e for e in dict.fromkeys(c.data.mapping.values()) if e is not None]  # corpus order
    for side in (c.model, c.data):
        assert set(side.mapping) == set(side.source)
        for source, target in side.mapping.items():
            assert target is None or target in c.labels
            if target is None or target != source:
                assert source in side.notes  # every drop or merge says why
    calm = "neutral" if "ravdess" in (model, data) else None
    ravdess_side = c.model if model == "ravdess" else c.data if data == "ravdess" else None
    if ravdess_side is not None:
        assert ravdess_side("calm") == calm and ravdess_side("surprised") is None
        assert "scored as neutral" in ravdess_side.notes["calm"]
    emodb_side = c.model if model == "emodb" else c.data if data == "emodb" else None
    if emodb_side is not None:
        assert emodb_side("boredom") is None
    assert not c.identity


def test_same_label_set_compares_one_to_one():
    c = comparison_map("ravdess", "ravdess")
    assert c.identity and c.labels.emotions == RAVDESS.emotions
    assert c.model.dropped == c.data.dropped == () and c.model("calm") == "calm"
    probs = np.random.default_rng(0).dirichlet(np.ones(8), size=5)
    np.testing.assert_allclose(c.probabilities(probs), probs)


def test_to_dict_writes_both_directions_and_notes():
    d = comparison_map("ravdess", "emodb").to_dict()
    assert d["labels"] == ["angry", "disgust", "fearful", "happy", "sad", "neutral"]
    assert d["mapping"]["model"]["label_set"] == "ravdess" and d["mapping"]["data"]["label_set"] == "emodb"
    assert d["mapping"]["model"]["map"]["calm"] == "neutral" and d["mapping"]["model"]["map"]["surprised"] is None
    assert d["mapping"]["data"]["map"]["boredom"] is None and d["mapping"]["data"]["map"]["fearful"] == "fearful"
    assert set(d["notes"]) == {"calm", "surprised", "boredom"}
    json.dumps(d)  # plain JSON


def test_calm_stays_calm_when_both_sides_have_it():
    folder = label_set_for("folder", ["calm", "neutral", "happy"])
    c = comparison_map("ravdess", folder)
    assert list(c.labels) == ["neutral", "calm", "happy"] and c.model("calm") == "calm"


def test_probabilities_are_summed_over_merged_classes_and_renormalised():
    c = comparison_map("ravdess", "emodb")  # scored: angry, disgust, fearful, happy, sad, neutral
    # ravdess order: neutral, calm, happy, sad, angry, fearful, disgust, surprised
    probs = np.array([[0.20, 0.25, 0.05, 0.05, 0.10, 0.05, 0.10, 0.20]])
    mapped = c.probabilities(probs)
    expected = np.array([0.10, 0.10, 0.05, 0.05, 0.05, 0.45]) / 0.80
    np.testing.assert_allclose(mapped, [expected])
    assert c.labels.emotions[int(mapped.argmax())] == "neutral"  # calm + neutral beats the lone surprised
    # the arg max is over the mapped classes: surprised (dropped) is the largest source class here
    probs = np.array([[0.05, 0.05, 0.10, 0.05, 0.15, 0.05, 0.05, 0.50]])
    assert c.labels.emotions[int(c.probabilities(probs).argmax())] == "angry"


def test_probabilities_of_the_wrong_width_are_refused():
    with pytest.raises(Exception, match=r"expected \(n, 8\) ravdess probabilities"):
        comparison_map("ravdess", "emodb").probabilities(np.ones((2, 7)) / 7)


def test_unmappable_label_sets_name_both_sets_and_the_lone_labels():
    other = label_set_for("mine", ["contempt", "happy", "pride"])
    with pytest.raises(ConfigError) as err:
        comparison_map("emodb", other)
    message = str(err.value)
    assert "\n" not in message
    assert "emodb" in message and "mine" in message and "cannot be compared" in message
    assert "emodb angry, boredom, disgust, fearful, sad, neutral" in message
    assert "mine contempt, pride" in message


# ------------------------------------------------------------------------------ calibration

def test_ece_on_hand_computed_cases():
    # two predictions at confidence 0.9 (one right), two at 0.6 (both right):
    # ECE = 0.5 * |0.5 - 0.9| + 0.5 * |1.0 - 0.6| = 0.4
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.6, 0.4]])
    y = np.array([0, 1, 1, 0])
    assert expected_calibration_error(probs, y, bins=15) == pytest.approx(0.4)
    assert expected_calibration_error(probs, y, bins=1) == pytest.approx(abs(0.75 - 0.75))
    # perfectly confident and right: 0
    assert expected_calibration_error(np.eye(3), np.arange(3)) == pytest.approx(0.0)
    # a confidence on a bin edge falls in the bin it closes: (0.4, 0.6] with 5 bins
    bins = reliability_bins(np.array([[0.6, 0.4]]), np.array([1]), bins=5)
    assert [b.count for b in bins] == [0, 0, 1, 0, 0] and bins[2].accuracy == 0.0


def test_reliability_bins_cover_every_prediction(tmp_path):
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(4), size=200)
    y = rng.integers(0, 4, size=200)
    bins = reliability_bins(probs, y)
    assert len(bins) == 15 and sum(b.count for b in bins) == 200
    assert bins[0].lower == 0.0 and bins[-1].upper == 1.0
    for b in bins:
        if b.count:
            assert b.lower < b.confidence <= b.upper
        else:
            assert b.to_dict()["accuracy"] is None
    png = plot_reliability(bins, tmp_path / "rel.png", title="t", ece=expected_calibration_error(probs, y))
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="expected"):
        reliability_bins(probs, y[:10])


# ------------------------------------------------------------------------------ a trained checkpoint

@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def ravdess_checkpoint(tmp_path_factory, ravdess_subset, cache_dir):
    """A 1-epoch mfcc_cnn1d on 10 clips of each of three RAVDESS speakers (behaviour only, not accuracy)."""
    data = load_data("ravdess", ravdess_subset(("01", "02", "05"), step=6))
    tr, va, _ = split(data.takes, Fold(number=0, test=(), val=("05",), train=("01", "02")))
    out = tmp_path_factory.mktemp("ckpt") / "run"
    train_run("mfcc_cnn1d", data, train_takes=tr, val_takes=va, train_config=TrainConfig(epochs=1),
              cache=FeatureCache(cache_dir), out_dir=out, plots=False)
    return out


@pytest.mark.shared_data
def test_evaluate_ravdess_checkpoint_on_emodb(ravdess_checkpoint, small_emodb, cache_dir, tmp_path):
    data = load_data("emodb", small_emodb)
    ev = evaluate_checkpoint(ravdess_checkpoint, data, cache=FeatureCache(cache_dir))
    d = ev.to_dict()
    assert d["labels"] == ["angry", "disgust", "fearful", "happy", "sad", "neutral"]
    assert d["left_out"] == {"boredom": 2}
    assert d["n"] == 12 and np.array(d["confusion"]).shape == (6, 6) and np.array(d["confusion"]).sum() == 12
    assert d["mapping"]["model"]["map"]["calm"] == "neutral"
    assert any("08a01Wz" in s.get("take", s.get("file", "")) for s in d["skipped"])
    assert 0.0 <= d["ece"] <= 1.0 and sum(b["count"] for b in d["reliability"]) == 12
    np.testing.assert_allclose(ev.probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert d["accuracy"] == pytest.approx(np.mean(ev.probabilities.argmax(axis=1) == ev.y_true))
    assert {k for k in d} >= {"accuracy", "uar", "macro_f1", "n", "labels", "confusion", "mapping", "notes",
                              "left_out", "skipped", "ece"}


@pytest.mark.shared_data
def test_evaluating_the_speakers_a_checkpoint_was_trained_on_says_so(ravdess_checkpoint, small_emodb, ravdess_subset,
                                                                      cache_dir, tmp_path):
    """The clips of the checkpoint's training (01, 02) and validation (05) speakers used to be scored
    as if held out, silently; now the JSON counts them and the command warns in one line."""
    for root, dataset, seen in ((ravdess_subset(("01", "02", "05"), step=6), "ravdess", {"train": 20, "val": 10}),
                                (small_emodb, "emodb", {"train": 0, "val": 0})):
        report = tmp_path / f"{dataset}.json"
        result = CliRunner().invoke(app, [str(a) for a in (
            "evaluate", "--checkpoint", ravdess_checkpoint, "--dataset", dataset, "--root", root, "--json", report,
            "--cache", cache_dir, "--workers", 1)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert json.loads(report.read_text())["seen"] == seen
        warned = "30 of the 30 scored takes are not held out: 20 trained and 10 validated this checkpoint"
        assert (warned in result.output) == (dataset == "ravdess")


def test_seen_takes_of_a_multi_corpus_run_and_of_an_official_split(tmp_path):
    from avemo.datasets import pair_takes
    from avemo.datasets.records import Clip
    from avemo.training.scoring import seen_in_training

    def takes(dataset, speakers, split=None):
        clips = [Clip(tmp_path / f"{dataset}_{s}_{i}.wav", dataset, "angry", s, f"{s}_{i}", ("audio",), split=split)
                 for s in speakers for i in range(2)]
        return list(pair_takes(clips).values())

    multi = {"data": {"dataset": "ravdess+emo", "speakers": {"train": ["emo:03", "ravdess:01"], "val": ["emo:08"]},
                      "corpora": [{"name": "ravdess", "dataset": "ravdess"}, {"name": "emo", "dataset": "emodb"}]},
             "split": {"fold": None}}
    assert seen_in_training(multi, takes("emodb", ["03", "08", "09"])) == {"train": 2, "val": 2}
    assert seen_in_training(multi, takes("crema_d", ["03"])) == {"train": 0, "val": 0}
    official = {"data": {"dataset": "meld", "speakers": {"train": ["Ross"], "val": ["Ross"]}},
                "split": {"split": "official", "train": "train", "val": "dev", "test": None}}
    assert seen_in_training(official, takes("meld", ["Ross"], "dev") + takes("meld", ["Ross"], "test")) == {
        "train": 0, "val": 2}


def test_recordings_the_checkpoint_trained_on_copied_into_another_corpus_are_counted_as_seen(
        make_ravdess, make_clip, tmp_path, avemo_main):
    """A RAVDESS file the checkpoint trained on (speaker 01) and one it validated on (02), copied into
    the user's folder under their own speaker: another corpus, another speaker id, so the score was
    reported as held out (``seen`` 0 and no warning)."""
    import shutil

    ravdess = make_ravdess(("01", "02"))
    out, mine = tmp_path / "run", tmp_path / "mine"
    code, _, err = avemo_main("train", "--root", ravdess, "--model", "egemaps_logreg", "--val-speakers", "02",
                              "--out", out, "--cache", tmp_path / "cache")
    assert code == 0, err
    mine.mkdir()
    shutil.copyfile(ravdess / "Actor_01" / "03-01-05-01-01-01-01.wav", mine / "a.wav")
    shutil.copyfile(ravdess / "Actor_02" / "03-01-03-01-01-01-02.wav", mine / "b.wav")
    for name, seed in (("c.wav", 91), ("d.wav", 92)):
        shutil.copyfile(make_clip("own.wav", duration=1.0, audio="voice", seed=seed), mine / name)
    (mine / "labels.csv").write_text("path,emotion,speaker\na.wav,angry,u1\nb.wav,happy,u1\nc.wav,sad,u2\n"
                                     "d.wav,neutral,u2\n")
    code, _, err = avemo_main("evaluate", "--checkpoint", out, "--dataset", "folder", "--root", mine,
                              "--json", tmp_path / "e.json", "--cache", tmp_path / "cache")
    assert code == 0, err
    assert json.loads((tmp_path / "e.json").read_text())["seen"] == {"train": 1, "val": 1}
    assert "2 of the 4 scored takes are not held out: 1 trained and 1 validated this checkpoint" in " ".join(err.split())


def test_a_folder_take_counts_once_and_by_its_files_when_the_checkpoint_records_them(tmp_path):
    """A run on two labelled folders a and b (a:01 trained, b:01 validated: two people) scored on a folder
    whose speaker is "01": its take was counted as trained and as validated ("20 of the 10 scored
    takes are not held out"); the files say which, and a take counts once."""
    from avemo.datasets import pair_takes
    from avemo.datasets.copies import DIGEST_CHARS
    from avemo.datasets.records import Clip
    from avemo.digest import file_digest
    from avemo.training.scoring import seen_in_training

    files = []
    for name in ("x.wav", "y.wav"):
        (tmp_path / name).write_bytes(name.encode() * 10)
        files.append(tmp_path / name)
    takes = list(pair_takes([Clip(f, "folder", "angry", "01", f.stem, ("audio",)) for f in files]).values())
    meta = {"data": {"dataset": "a+b", "speakers": {"train": ["a:01", "b:02"], "val": ["a:02", "b:01"]},
                     "corpora": [{"name": "a", "dataset": "folder"}, {"name": "b", "dataset": "folder"}],
                     "digests": {"train": ["0" * DIGEST_CHARS], "val": [file_digest(files[1])[:DIGEST_CHARS]]}},
            "split": {"fold": None}}
    assert seen_in_training(meta, takes) == {"train": 0, "val": 1}  # y.wav validated; x.wav is new
    del meta["data"]["digests"]  # an older checkpoint: by speaker id, once each
    assert seen_in_training(meta, takes) == {"train": 2, "val": 0}


@pytest.mark.shared_data
def test_cli_evaluate_across_corpora(ravdess_checkpoint, small_emodb, cache_dir, shared_data, tmp_path):
    report = tmp_path / "emodb.json"
    result = CliRunner().invoke(app, [str(a) for a in (
        "evaluate", "--checkpoint", ravdess_checkpoint, "--dataset", "emodb", "--root", small_emodb,
        "--json", report, "--plots", tmp_path / "fig", "--cache", cache_dir, "--workers", 1)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "ravdess model on emodb labels" in result.output and "boredom: 2" in result.output
    assert "calm -> neutral" in result.output
    d = json.loads(report.read_text())
    assert d["n"] == 12 and d["left_out"] == {"boredom": 2}
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically
    for png in ("confusion.png", "reliability.png"):
        assert (tmp_path / "fig" / png).read_bytes()[:4] == b"\x89PNG"

    report = tmp_path / "crema.json"
    result = CliRunner().invoke(app, [str(a) for a in (
        "evaluate", "--checkpoint", ravdess_checkpoint, "--dataset", "crema_d",
        "--root", shared_data / "crema_d", "--json", report, "--cache", cache_dir, "--workers", 1)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    d = json.loads(report.read_text())
    assert set(d["labels"]) == SIX and d["left_out"] == {} and d["n"] == 12  # 6 audio files + 6 videos' sound


@pytest.mark.shared_data
def test_train_and_evaluate_say_how_the_extraction_goes(ravdess_checkpoint, small_emodb, emodb_subset, avemo_main,
                                                        tmp_path, monkeypatch):
    """``extract`` and ``benchmark`` showed their extraction's progress; ``train`` and ``evaluate`` extracted a
    corpus not in the cache yet (minutes for RAVDESS) without a word until they were done."""
    from avemo.cli import progress

    monkeypatch.setattr(progress, "PROGRESS_EVERY", 0.0)  # a line at every step (stderr is no terminal here)
    emodb = emodb_subset(("03", "08", "09"), step=10)
    total = len(list(emodb.iterdir()))
    code, _, err = avemo_main("train", "--dataset", "emodb", "--root", emodb, "--model", "egemaps_logreg",
                              "--out", tmp_path / "run", "--cache", tmp_path / "c1", "-j", "1")
    assert code == 0, err
    assert f"avemo: extracting audio: 1 of {total} (" in err and f"avemo: extracting audio: {total} of {total} (100 %)" in err
    code, _, err = avemo_main("evaluate", "--checkpoint", ravdess_checkpoint, "--dataset", "emodb", "--root",
                              small_emodb, "--cache", tmp_path / "c2", "-j", "1")
    assert code == 0, err
    assert "avemo: extracting audio: 13 of 13 (100 %)" in err  # the 13 takes with a label it can be scored on


@pytest.mark.shared_data
def test_a_refusal_after_the_corpus_is_read_says_what_the_reader_skipped(ravdess_checkpoint, shared_data, cache_dir,
                                                                         tmp_path, avemo_main):
    """A labels CSV row without a speaker and one whose file is missing were listed only at the end of a run
    that succeeded: the refusals they caused ("every speaker would be a validation speaker", "label sets ...
    cannot be compared") did not say why the folder had one speaker and one label left."""
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in ("03a01Wa.wav", "03a01Fa.wav"):
        (mine / name).symlink_to(shared_data / "emodb" / "wav" / name)
    (mine / "labels.csv").write_text("path,emotion,speaker\n03a01Wa.wav,angry,s1\n03a01Fa.wav,happy,\n"
                                     "gone.wav,sad,s2\n")
    skipped = " (the dataset reader skipped 2 files, e.g. 03a01Fa.wav (labels.csv line 3: empty speaker))"
    code, _, err = avemo_main("train", "--dataset", "folder", "--root", mine, "--model", "egemaps_logreg",
                              "--out", tmp_path / "run", "--cache", cache_dir)
    assert code == 2 and err.strip() == ("avemo: error: every speaker (s1) would be a validation speaker; a split by "
                                         "speaker needs at least 2 (one trains, one validates): train on more "
                                         f"speakers{skipped}"), err
    code, _, err = avemo_main("evaluate", "--checkpoint", ravdess_checkpoint, "--dataset", "folder", "--root", mine,
                              "--cache", cache_dir)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "cannot be compared" in err, err
    assert err.strip().endswith(skipped)


@pytest.mark.shared_data
def test_cli_refuses_a_corpus_with_nothing_to_score(ravdess_checkpoint, shared_data, cache_dir, tmp_path,
                                                    avemo_main):
    bored = tmp_path / "bored"
    bored.mkdir()
    for f in sorted((shared_data / "emodb_dev" / "wav").glob("08*L*.flac"))[:2]:
        (bored / f.name).symlink_to(f)
    code, _, err = avemo_main("evaluate", "--checkpoint", ravdess_checkpoint, "--dataset", "emodb",
                              "--root", bored, "--cache", cache_dir)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"avemo: error: {bored}: no clip has a label that ravdess can be scored on (boredom: 2")

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("nothing here")
    code, _, err = avemo_main("evaluate", "--checkpoint", ravdess_checkpoint, "--dataset", "emodb",
                              "--root", empty, "--cache", cache_dir)
    assert code == 2 and len(err.strip().splitlines()) == 1 and str(empty) in err


@pytest.mark.shared_data
def test_unmappable_corpus_is_refused_in_one_line(ravdess_checkpoint, shared_data, cache_dir, tmp_path,
                                                  avemo_main):
    root = tmp_path / "mine"
    root.mkdir()
    rows = ["path,emotion,speaker"]
    for f, emotion in zip(sorted((shared_data / "emodb" / "wav").glob("*.wav")), ("contempt", "pride", "happy"),
                          strict=True):
        (root / f.name).symlink_to(f)
        rows.append(f"{f.name},{emotion},x")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    data = load_data("folder", root, labels_csv=root / "labels.csv")
    with pytest.raises(ConfigError, match=r"without a partner: .* folder contempt, pride$"):
        evaluate_checkpoint(ravdess_checkpoint, data, cache=FeatureCache(cache_dir))
    code, _, err = avemo_main("evaluate", "--checkpoint", ravdess_checkpoint, "--dataset", "folder",
                              "--root", root, "--labels", root / "labels.csv", "--cache", cache_dir)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "label sets ravdess" in err and "cannot be compared" in err


@pytest.mark.shared_data
def test_a_folders_label_set_is_its_labels_csvs_whichever_speakers_are_read(ravdess_checkpoint, shared_data,
                                                                              cache_dir, tmp_path):
    """The label set of a folder was made of the takes left after --speakers: scoring speaker s1 alone
    (angry, happy) let the model answer only angry or happy, an easier test than the folder's own three
    labels (a named dataset's set never depended on the speakers read)."""
    root = tmp_path / "mine"
    root.mkdir()
    rows = ["path,emotion,speaker"]
    for f, emotion, speaker in zip(sorted((shared_data / "emodb" / "wav").glob("*.wav")), ("angry", "happy", "sad"),
                                   ("s1", "s1", "s2"), strict=True):
        (root / f.name).symlink_to(f)
        rows.append(f"{f.name},{emotion},{speaker}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    data = load_data("folder", root, speakers=["s1"])
    assert [t.speaker for t in data.takes] == ["s1", "s1"]
    assert data.labels.emotions == ("happy", "sad", "angry")
    ev = evaluate_checkpoint(ravdess_checkpoint, data, cache=FeatureCache(cache_dir))
    assert list(ev.metrics.labels) == ["happy", "sad", "angry"] and ev.metrics.n == 2


@pytest.fixture(scope="module")
def late_checkpoint(tmp_path_factory, ravdess_subset, au_table, cache_dir):
    """A 1-epoch late_calibrated (eGeMAPS audio expert x AU-means expert) on 10 clips of each of three
    RAVDESS speakers, with the AU table (behaviour only, not accuracy)."""
    root = ravdess_subset(("01", "02", "05"), step=6)
    data = load_data("ravdess", root, visual_table=au_table)
    tr, va, _ = split(data.takes, Fold(number=0, test=(), val=("05",), train=("01", "02")))
    out = tmp_path_factory.mktemp("late") / "run"
    train_run("late_calibrated", data, train_takes=tr, val_takes=va, model_config={"audio": "egemaps_mlp"},
              train_config=TrainConfig(epochs=1), cache=FeatureCache(cache_dir), out_dir=out, plots=False)
    return out, root


@pytest.mark.shared_data
def test_evaluate_scores_a_late_fusion_checkpoint_on_the_experts_the_corpus_can_feed(
        late_checkpoint, small_emodb, au_table, cache_dir, tmp_path):
    """`avemo evaluate` refused a late-fusion checkpoint on EmoDB (no AU table) while `avemo benchmark
    --test-corpus` scored the same kind of model there from its audio expert: now evaluate does the
    same, says so in one line, and gives the benchmark's out-of-domain numbers."""
    from avemo.datasets.labels import comparison_map
    from avemo.evaluation.benchmark import BenchmarkEntry, OodCorpus, ood_inputs, score_ood
    from avemo.training import load_checkpoint
    from avemo.training.scoring import model_probabilities, scoring_set

    run, ravdess_root = late_checkpoint
    report = tmp_path / "emodb.json"
    result = CliRunner().invoke(app, [str(a) for a in (
        "evaluate", "--checkpoint", run, "--dataset", "emodb", "--root", small_emodb, "--json", report,
        "--cache", cache_dir, "--workers", 1)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    why = "video reads the openface_au_means table, which emodb was not given"
    assert f"scored without video, from audio alone: {why}\n" in result.output
    d = json.loads(report.read_text())
    assert d["inputs"] == ["audio"] and d["left_out_inputs"] == {"video": why}
    assert {k for k in d} >= {"accuracy", "uar", "macro_f1", "n", "labels", "confusion", "mapping", "left_out",
                              "skipped", "ece", "seen"} and d["n"] == 12 and d["left_out"] == {"boredom": 2}
    # the benchmark's out-of-domain scoring of the same model on the same corpus
    ckpt, emodb = load_checkpoint(run), load_data("emodb", small_emodb)
    specs, note = ood_inputs(BenchmarkEntry("calibrated", "late_calibrated", model_config={"audio": "egemaps_mlp"}),
                             OodCorpus("emodb", emodb))
    assert specs is not None and sorted(specs) == d["inputs"] and note == f"scored without video, from audio alone: {why}"
    sset = scoring_set(comparison_map(ckpt.labels, emodb.labels), specs, emodb, cache=FeatureCache(cache_dir))
    expected = score_ood(sset, model_probabilities(ckpt.model, ckpt.normalizer, sset))
    for key in ("accuracy", "uar", "macro_f1", "weighted_f1", "ece"):
        assert d[key] == pytest.approx(expected[key], abs=1e-9), key
    assert d["confusion"] == expected["confusion"] and d["labels"] == expected["labels"]

    # with the table given (in-domain), both experts are scored and nothing is said
    ev = evaluate_checkpoint(run, load_data("ravdess", ravdess_root, visual_table=au_table), cache=FeatureCache(cache_dir))
    assert ev.to_dict()["inputs"] == ["audio", "video"] and ev.to_dict()["left_out_inputs"] == {}
    assert ev.inputs_note() == ""


@pytest.mark.shared_data
def test_a_required_input_the_corpus_cannot_give_is_still_refused_in_one_line(small_emodb, cache_dir, tmp_path,
                                                                             late_checkpoint):
    """Only *optional* inputs are left out: a checkpoint whose every input is required (here the
    late-fusion one with its experts marked required) is refused in one line, by the library too."""
    from avemo.errors import AvemoError
    from avemo.training import load_checkpoint

    ckpt = load_checkpoint(late_checkpoint[0])
    ckpt.inputs = {n: dataclasses.replace(s, optional=False) for n, s in ckpt.inputs.items()}
    with pytest.raises(AvemoError) as err:
        evaluate_checkpoint(ckpt, load_data("emodb", small_emodb), cache=FeatureCache(cache_dir))
    assert "\n" not in str(err.value) and "'openface_au_means', which is no feature extractor" in str(err.value)


@pytest.mark.shared_data
def test_a_checkpoint_whose_every_input_is_a_table_not_given_is_refused_before_the_corpus_is_read(
        late_checkpoint, au_table, small_emodb, cache_dir, monkeypatch):
    """A checkpoint whose only inputs are optional tables (here the late-fusion one with its AU expert
    alone) on a corpus given without the table has nothing to be scored from: `avemo evaluate` said so
    only after reading (and, asked, transcribing) the corpus; now before, in one line. (No registered
    model has only optional table inputs today: late fusion always has an audio expert.)"""
    import avemo.training
    from avemo.training import load_checkpoint

    run, ravdess_root = late_checkpoint

    def au_only(path):
        ckpt = load_checkpoint(path)
        ckpt.inputs = {"video": ckpt.inputs["video"]}
        return ckpt

    read = []
    monkeypatch.setattr(avemo.training, "load_checkpoint", au_only)
    monkeypatch.setattr(avemo.training, "load_data", lambda *a, **k: read.append(k) or load_data(*a, **k))
    assert {(s.feature, s.optional) for s in au_only(run).inputs.values()} == {("openface_au_means", True)}
    result = CliRunner().invoke(app, [str(a) for a in (
        "evaluate", "--checkpoint", run, "--dataset", "emodb", "--root", small_emodb, "--cache", cache_dir)])
    assert isinstance(result.exception, ConfigError) and read == [], result.exception  # before the corpus is read
    said = str(result.exception)
    assert "\n" not in said and ("every input of the model reads a table that was not given (openface_au_means; "
                                 "tables given: none)") in said, said
    # with the table, nothing is refused early: the corpus is read (then scored from the AU expert)
    result = CliRunner().invoke(app, [str(a) for a in (
        "evaluate", "--checkpoint", run, "--dataset", "ravdess", "--root", ravdess_root, "--visual-table", au_table,
        "--cache", cache_dir)])
    assert len(read) == 1 and result.exit_code == 0, result.output


def test_the_cross_corpus_table_shows_the_scores_of_the_summary_line():
    """``avemo evaluate`` printed weighted F1 on its summary line, but its cross-corpus table had no row for it."""
    from types import SimpleNamespace

    from rich.console import Console

    from avemo.cli.evaluate import _comparison_table
    from avemo.metrics import compute_metrics

    m = compute_metrics([0, 0, 0, 1], np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]]), ["angry", "sad"])
    comparison = comparison_map(RAVDESS, EMODB)
    ev = SimpleNamespace(metrics=m, comparison=comparison, ece=0.25, left_out={"boredom": 2})
    console = Console(width=120, no_color=True, record=True)
    console.print(_comparison_table(ev))
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in console.export_text().splitlines()
            if line.count("│") == 3}
    assert rows["weighted F1"] == f"{m.weighted_f1:.4f}" != rows["macro-F1"]  # 0.7667 and 0.7333
    assert [rows[name] for name in ("accuracy", "UAR", "ECE")] == [f"{m.accuracy:.4f}", f"{m.uar:.4f}", "0.2500"]
