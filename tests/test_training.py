"""Training end to end on real RAVDESS clips: train -> checkpoint -> evaluate -> JSON; resume; refusals."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from avemo.cache import FeatureCache
from avemo.cli import app
from avemo.datasets import Fold, make_plan, split
from avemo.errors import CheckpointError, ConfigError, LeakageError
from avemo.training import (
    AugmentConfig,
    TrainConfig,
    evaluate_checkpoint,
    load_checkpoint,
    load_data,
    train_run,
)

pytestmark = pytest.mark.shared_data

SPEAKERS = ("01", "02", "05", "06")


@pytest.fixture(scope="module")
def small_ravdess(ravdess_subset):
    """10 clips of each of 4 speakers (links to the shared files), in the original Actor_XX layout."""
    return ravdess_subset(SPEAKERS, step=6)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_train_checkpoint_evaluate_json(small_ravdess, au_table, cache_dir, tmp_path):
    out = tmp_path / "ckpt"
    result = _cli(
        "train", "--root", small_ravdess, "--visual-table", au_table, "--model", "late_average",
        "--model-config", '{"video": "au_mlp"}', "--speakers", "01,02,05", "--val-speakers", "05",
        "--epochs", "2", "--out", out, "--cache", cache_dir,
    )
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "checkpoint.json").read_text())
    assert meta["model"]["name"] == "late_average" and meta["model"]["config"]["video"] == "au_mlp"
    assert meta["labels"]["emotions"][0] == "neutral" and len(meta["labels"]["emotions"]) == 8
    assert meta["data"]["speakers"] == {"train": ["01", "02"], "val": ["05"], "test": []}
    assert meta["inputs"]["audio"]["extractor"]["name"] == "mfcc"
    assert meta["inputs"]["video"]["table"]["columns"][0] == "AU01_r"
    assert set(meta["normalization"]["mean"]) == {"audio", "video"}
    assert "torch" in meta["versions"] and meta["train"]["epochs"] == 2
    assert len((out / "history.csv").read_text().strip().splitlines()) == 3  # header + 2 epochs
    assert not (out / "last").exists()  # finished: no resume state left behind
    for png in ("curves.png",):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"

    report = tmp_path / "eval.json"
    result = _cli("evaluate", "--checkpoint", out, "--root", small_ravdess, "--visual-table", au_table,
                  "--speakers", "06", "--json", report, "--cache", cache_dir)
    assert result.exit_code == 0, result.output
    metrics = json.loads(report.read_text())
    assert metrics["n"] == 10
    assert set(metrics) >= {"accuracy", "macro_f1", "uar", "n", "confusion"}
    assert np.array(metrics["confusion"]).shape == (8, 8) and np.array(metrics["confusion"]).sum() == 10
    assert 0.0 <= metrics["accuracy"] <= 1.0

    # the library gives the same numbers as the command
    data = load_data("ravdess", small_ravdess, visual_table=au_table, speakers=["06"])
    m = evaluate_checkpoint(out, data, cache=FeatureCache(cache_dir)).metrics
    assert m.accuracy == pytest.approx(metrics["accuracy"]) and m.confusion == metrics["confusion"]


def test_resume_after_interruption_gives_the_same_result(small_ravdess, au_table, cache_dir, tmp_path):
    data = load_data("ravdess", small_ravdess, visual_table=au_table)
    fold = Fold(number=1, test=("06",), val=("05",), train=("01", "02"))
    tr, va, te = split(data.takes, fold)
    # random crops, SpecAugment, noise and mixup: every source of randomness must replay identically
    config = TrainConfig(epochs=4, patience=10, batch_size=8,
                         augment=AugmentConfig(specaugment=True, noise_std=0.05, mixup_alpha=0.2))

    def run(out, on_epoch=None):
        return train_run("late_product", data, train_takes=tr, val_takes=va, test_takes=te,
                         model_config={"video": "au_mlp"}, train_config=config, cache=FeatureCache(cache_dir),
                         out_dir=out, plots=False, on_epoch=on_epoch)

    straight = run(tmp_path / "a")

    class Interrupt(Exception):
        pass

    def stop_after_two(row):
        if row["epoch"] == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        run(tmp_path / "b", on_epoch=stop_after_two)
    assert (tmp_path / "b" / "last" / "state.json").is_file()
    resumed = run(tmp_path / "b")
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    assert [round(r["train_loss"], 6) for r in resumed.history] == [round(r["train_loss"], 6) for r in straight.history]
    a = load_file(str(tmp_path / "a" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    np.testing.assert_allclose(resumed.test_probabilities, straight.test_probabilities, rtol=0, atol=1e-6)

    # a leftover run with other settings is not silently mixed into a new one
    with pytest.raises(Interrupt):
        run(tmp_path / "c", on_epoch=stop_after_two)
    with pytest.raises(CheckpointError, match="other settings"):
        train_run("late_average", data, train_takes=tr, val_takes=va, model_config={"video": "au_mlp"},
                  train_config=config, cache=FeatureCache(cache_dir), out_dir=tmp_path / "c", plots=False)


def test_leakage_check_refuses_a_plan_that_mixes_a_speaker(small_ravdess, au_table, tmp_path, avemo_main):
    with pytest.raises(LeakageError, match=r"speaker\(s\) 01 in both train and test"):
        Fold(number=1, test=("06", "01"), val=("05",), train=("01", "02"))
    good = tmp_path / "good.json"
    make_plan(list(SPEAKERS), 2, n_val=1, name="two", dataset="ravdess").to_json(good)
    plan = json.loads(good.read_text())
    mixed_speaker = plan["folds"][0]["train"][0]
    plan["folds"][0]["test"].append(mixed_speaker)  # one speaker on both sides
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(plan))
    code, _, err = avemo_main("train", "--root", small_ravdess, "--visual-table", au_table,
                              "--model", "au_mlp", "--fold", "1", "--plan", path, "--epochs", "1", "--out", tmp_path / "x")
    assert code == 2
    assert err.startswith(f"avemo: error: {path}: fold 1: speaker(s) {mixed_speaker} in both train and test")
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x" / "model.safetensors").exists()


def test_a_model_that_reads_a_table_without_visual_table_is_refused_before_the_data_is_read(
        small_ravdess, tmp_path, avemo_main, monkeypatch):
    """The default model reads the OpenFace AU table: without --visual-table the command said so only
    once the whole corpus had been read and its Whisper features extracted."""
    import avemo.training

    def read(*_, **__):
        raise AssertionError("the data was read although the model's table was known to be missing")

    monkeypatch.setattr(avemo.training, "load_data", read)
    code, _, err = avemo_main("train", "--root", small_ravdess, "--epochs", "1", "--out", tmp_path / "run")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("avemo: error: input 'video' needs 'openface_au_means', which is no feature extractor: "
                          "it must be given as a table (e.g. --visual-table CSV); tables given: none"), err
    assert not (tmp_path / "run").exists()
    # what to do with audio alone: the model the bundle's audio expert is (it reads audio, and no table)
    assert "; with audio only, train an audio model instead: --model " in err, err
    from avemo.inference.bundle import audio_model_name
    from avemo.models import default_inputs

    hinted = audio_model_name()
    assert err.rstrip().endswith(f"; with audio only, train an audio model instead: --model {hinted} (the bundled "
                                 "model's audio expert)"), err
    assert {s.modality for s in default_inputs(hinted).values()} == {"audio"}
    import avemo.extraction  # the library's gathering, too, checks the tables before extracting any input
    from avemo.models import default_inputs
    from avemo.training.data import gather

    monkeypatch.setattr(avemo.extraction, "run_extraction", read)
    with pytest.raises(ConfigError, match="'openface_au_means', which is no feature extractor"):
        gather([], default_inputs("default"), tables={}, cache=FeatureCache(tmp_path / "cache"))


def _refuse_reading(*_, **__):
    raise AssertionError("the corpus was read although the table was already known to be missing")


def test_a_missing_or_unreadable_table_is_refused_before_the_corpus_is_read_or_transcribed(
        small_ravdess, tmp_path, monkeypatch):
    """load_data read the --visual-table last, after scanning the corpus and transcribing it
    (--transcribe: half a second a clip), so a wrong path was said only then; train, evaluate and
    benchmark all read the data through it."""
    import avemo.training.experiment as experiment
    from avemo.errors import AvemoError

    monkeypatch.setattr(experiment, "read_dataset", _refuse_reading)
    bad = tmp_path / "au.csv"
    bad.write_text("video,AU01_r\n01-01-01-01-01-01-01,x\n")
    for table in (tmp_path / "missing.csv", bad):
        with pytest.raises(AvemoError) as err:
            load_data("ravdess", small_ravdess, visual_table=table, transcribe=True)
        assert err.value.path is not None and str(table) in str(err.value) and "\n" not in str(err.value)


def test_evaluate_refuses_a_checkpoint_whose_table_is_not_given_before_reading_the_data(
        small_ravdess, au_table, cache_dir, tmp_path, monkeypatch, avemo_main):
    """`avemo train` refused a model's missing --visual-table before reading the data; `avemo evaluate`
    said so only in the evaluation, once the corpus had been read (and transcribed, for a model that
    also reads text)."""
    import avemo.training

    data = load_data("ravdess", small_ravdess, visual_table=au_table, speakers=["01", "02", "05"])
    tr, va, _ = split(data.takes, Fold(number=0, test=(), val=("05",), train=("01", "02")))
    run = tmp_path / "au"
    train_run("au_mlp", data, train_takes=tr, val_takes=va, train_config=TrainConfig(epochs=1),
              cache=FeatureCache(cache_dir), out_dir=run, plots=False)
    monkeypatch.setattr(avemo.training, "load_data", _refuse_reading)
    code, _, err = avemo_main("evaluate", "--checkpoint", run, "--root", small_ravdess, "--cache", cache_dir)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("avemo: error: input 'video' needs 'openface_au_means', which is no feature extractor: "
                          "it must be given as a table (e.g. --visual-table CSV); tables given: none"), err


def test_train_lists_the_files_the_reader_skipped(ravdess_subset, au_table, tmp_path, avemo_main):
    """A malformed file name (or a labels-CSV row whose file is missing) was left out of training
    silently, while `extract` and `evaluate` list such files; `train` lists them at the end too."""
    root = ravdess_subset(("01", "02", "05"), step=12)
    (root / "Actor_01" / "03-01-09-01-01-01-01.wav").write_bytes(b"")  # emotion 09 does not exist
    code, _, err = avemo_main("train", "--root", root, "--visual-table", au_table, "--model", "au_mlp",
                              "--val-speakers", "05", "--epochs", "1", "--out", tmp_path / "run")
    assert code == 0, err
    assert "skipped" in err and "03-01-09-01-01-01-01.wav" in err


def test_a_fold_whose_validation_speakers_are_not_in_the_data_says_so(small_ravdess, au_table, caplog):
    """Speakers 01 02 05 06 and fold 2 of ravdess_au (validation 11, 12): trained without validation
    silently, while the split info named 11 and 12."""
    from avemo.training import resolve_split

    data = load_data("ravdess", small_ravdess, visual_table=au_table)
    with caplog.at_level("WARNING", logger="avemo.training.experiment"):
        _, va, te, info = resolve_split(data, fold=2)
    assert not va and te and info["val_speakers"] == ["11", "12"]
    assert "none of its validation speakers (11, 12) is in the data" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="avemo.training.experiment"):
        resolve_split(data, fold=5)  # validation 01, 02: there (fold 1's 06, 07 are too, but none of its training 08..23)
    assert "validation" not in caplog.text and "none of its test speakers (20, 21, 22, 23)" in caplog.text


def test_train_says_once_that_a_folds_speakers_are_not_in_the_data(small_ravdess, au_table, avemo_main, caplog,
                                                                    tmp_path):
    """avemo train --fold 2 on speakers 01 02 05 06 (validation 11, 12 of ravdess_au missing): the check
    before the extraction and the split after it both said so, the same warning line twice."""
    with caplog.at_level("WARNING", logger="avemo.training.experiment"):
        code, _, err = avemo_main("train", "--root", small_ravdess, "--visual-table", au_table, "--model", "au_mlp",
                                  "--fold", "2", "--epochs", "1", "--out", tmp_path / "run")
    assert code == 0, err
    said = [r.getMessage() for r in caplog.records if "none of its validation speakers (11, 12)" in r.getMessage()]
    assert len(said) == 1, said


def test_a_fold_without_any_of_its_training_speakers_is_refused_naming_them(make_ravdess):
    """A researcher's copy with a few RAVDESS actors (01, 05, 07) and --fold 1: the default plan is the
    built-in one that covers them (ravdess_au), whose fold 1 trains on 08..23, none of them here; the
    run went on to extract every feature and then said "no training takes have all the model's inputs",
    as if the files were to blame."""
    from avemo.training import resolve_split

    data = load_data("ravdess", make_ravdess(("01", "05", "07")))
    with pytest.raises(ConfigError) as err:
        resolve_split(data, fold=1)
    assert str(err.value) == (
        "fold 1 of plan ravdess_au trains on speakers 08, 09, 11, 12, 13, 14, 15, 16, 18, 19, 20, 21, 22, 23, none "
        "of which is in the data (speakers: 01, 05, 07); give a plan of these speakers (--plan FILE.json), or train "
        "without --fold (validation speakers: --val-speakers)")
    train, _, _, _ = resolve_split(data, fold=2)  # fold 2 trains on 01 and 05, among others: it runs
    assert {t.speaker for t in train} == {"01", "05"}


@pytest.mark.parametrize(("actors", "val"), [(("01", "05"), "05"), (("01", "05", "07"), "07")])
def test_a_few_speakers_validate_on_the_last_one_with_a_warning(make_ravdess, caplog, actors, val):
    """A folder of 3 speakers trained on one of them (the default validated on the last two), and one of 2
    was refused: with fewer than 4 speakers the last one validates, a warning line says so; the split
    stays speaker-disjoint. Four speakers keep the default of two."""
    from avemo.training import resolve_split

    data = load_data("ravdess", make_ravdess(actors))
    with caplog.at_level(logging.WARNING, logger="avemo"):
        train, val_takes, _, info = resolve_split(data)
    assert info["val_speakers"] == [val] and {t.speaker for t in val_takes} == {val}
    assert {t.speaker for t in train} == set(actors) - {val}
    assert f"{len(actors)} speakers: validating on {val} only (the default is the last two)" in caplog.text
    assert "--val-speakers" in caplog.text
    caplog.clear()
    _, _, _, info = resolve_split(load_data("ravdess", make_ravdess(("01", "05", "07", "09"))))
    assert info["val_speakers"] == ["07", "09"] and "validating on" not in caplog.text
    with pytest.raises(ConfigError) as err:  # naming every speaker is still refused, naming the way out
        resolve_split(data, val_speakers=list(actors))
    assert str(err.value) == (f"every speaker ({', '.join(actors)}) would be a validation speaker; train on more "
                              f"speakers, or name fewer validation speakers (--val-speakers {actors[-1]})")


def test_a_validation_speaker_without_a_usable_take_is_not_called_absent(make_ravdess):
    """CREMA-D's actor 1002 has audio only: a frame model has no take of it, and --val-speakers 1002 was
    refused as "not in the data", although the folder holds its files."""
    from avemo.training import resolve_split

    data = load_data("ravdess", make_ravdess(("01", "05", "07")))
    usable = {t.key for t in data.takes if t.speaker != "07"}
    with pytest.raises(ConfigError) as err:
        resolve_split(data, val_speakers=["07"], usable=usable)
    assert str(err.value) == ("validation speakers 07 have no take with every input the model needs "
                              "(speakers: 01, 05)")
    with pytest.raises(ConfigError, match=r"validation speakers 09 are not in the data"):
        resolve_split(data, val_speakers=["09"], usable=usable)


def test_a_fold_of_a_folder_with_fewer_than_five_speakers_names_the_ways_out(make_ravdess, tmp_path):
    """A labelled folder of 3 speakers and --fold 1: the default plan (5 folds) failed with "cannot make 5
    folds from 3 speakers (need 2 <= k <= speakers)", and `avemo train` has no option to change k."""
    from avemo.training import resolve_split

    corpus = make_ravdess(("01", "05", "07"))
    rows = [f"{p.relative_to(corpus).as_posix()},sad,S{p.stem[-2:]}" for p in sorted(corpus.rglob("*.wav"))]
    (tmp_path / "labels.csv").write_text("\n".join(["path,emotion,speaker", *rows]) + "\n")
    data = load_data("folder", corpus, labels_csv=tmp_path / "labels.csv")
    with pytest.raises(ConfigError) as err:
        resolve_split(data, fold=1)
    assert str(err.value) == (
        "--fold needs a plan: the default one has 5 folds (one speaker or more tested in each), and the data has 3 "
        "speakers (S01, S05, S07); give a plan of your own (--plan FILE.json, as src/avemo/datasets/plans/*.json), "
        "or train without --fold (validation speakers: --val-speakers)")


def test_a_speaker_whose_only_file_is_corrupt_takes_no_place_in_the_plan(ravdess_subset, tmp_path, avemo_main):
    """Speaker S99's one file does not decode: the reader lists it (the labels CSV names it), the
    extraction fails on it. The generated plan used to hold 99 (a fold tested nobody); the plan and the split
    are now made of the speakers with usable takes, and the split info names the one left out."""
    from avemo.training import resolve_split

    root = ravdess_subset(("01", "02", "04", "05", "06", "07"), step=12)  # a folder dataset of RAVDESS clips
    rows = [f"{f.relative_to(root)},{('neutral', 'happy')[int(f.name.split('-')[2]) % 2]},{f.parent.name[-2:]}"
            for f in sorted(root.glob("Actor_*/*.flac"))]
    (root / "S99").mkdir()
    (root / "S99" / "only.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(40))
    (root / "labels.csv").write_text("\n".join(["path,emotion,speaker", *rows, "S99/only.wav,happy,S99"]) + "\n")
    data = load_data("folder", root)
    assert "S99" in data.speakers
    usable = {t.key for t in data.takes if t.speaker != "S99"}
    named = set()
    for fold in range(1, 6):
        tr, va, te, info = resolve_split(data, fold=fold, usable=usable)
        named |= {*info["test_speakers"], *info["val_speakers"]}
        assert info["speakers_without_usable_takes"] == ["S99"] and all(t.speaker != "S99" for t in [*tr, *va, *te])
        assert te
    assert "S99" not in named
    _, va, _, info = resolve_split(data, usable=usable)  # the default validation speakers: the last two usable
    assert info["val_speakers"] == ["06", "07"] and va
    code, _, err = avemo_main("train", "--dataset", "folder", "--root", root, "--model", "whisper_mlp", "--fold", "1",
                              "--epochs", "1", "--out", tmp_path / "run")
    assert code == 0, err
    assert "speakers without usable takes S99)" in " ".join(err.split())
    assert "skipped" in err and "S99/only.wav" in err


def test_checkpoint_refused_for_other_features(small_ravdess, au_table, cache_dir, tmp_path, avemo_main):
    data = load_data("ravdess", small_ravdess, visual_table=au_table, speakers=["01", "02", "05"])
    tr, va, _ = split(data.takes, Fold(number=0, test=(), val=("05",), train=("01", "02")))
    out = tmp_path / "ck"
    train_run("mfcc_cnn1d", data, train_takes=tr, val_takes=va, train_config=TrainConfig(epochs=1),
              cache=FeatureCache(cache_dir), out_dir=out, plots=False)

    meta = json.loads((out / "checkpoint.json").read_text())
    meta["inputs"]["audio"]["extractor"]["config"]["n_mels"] = 40  # features computed differently
    (out / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="input 'audio': the checkpoint's features"):
        evaluate_checkpoint(load_checkpoint(out), data, cache=FeatureCache(cache_dir))

    code, _, err = avemo_main("evaluate", "--checkpoint", out, "--root", small_ravdess,
                              "--speakers", "05", "--cache", cache_dir)
    assert code == 2
    assert err.startswith(f"avemo: error: {out}: input 'audio': the checkpoint's features")


@pytest.mark.parametrize("damage", ["not_json", "foreign", "weights", "missing"])
def test_unreadable_or_foreign_checkpoints(tmp_path, damage):
    folder = tmp_path / "ck"
    folder.mkdir()
    if damage == "not_json":
        (folder / "checkpoint.json").write_text("{nope")
        match = "unreadable"
    elif damage == "foreign":
        (folder / "checkpoint.json").write_text(json.dumps({"format": "something-else"}))
        match = "not an avemo checkpoint"
    elif damage == "weights":
        (folder / "checkpoint.json").write_text(json.dumps({
            "format": "avemo.checkpoint", "format_version": 1,
            "model": {"name": "au_mlp", "num_classes": 8, "config": {}},
            "labels": {"name": "ravdess", "emotions": ["a", "b", "c", "d", "e", "f", "g", "h"]},
            "normalization": {"speaker_norm": False, "kinds": {}, "mean": {}, "std": {}},
        }))
        (folder / "model.safetensors").write_bytes(b"garbage")
        match = "not a readable safetensors"
    else:
        shutil.rmtree(folder)
        match = "no such checkpoint"
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(folder)


def test_class_balanced_sampling_is_sharded_across_ddp_ranks():
    """Under DDP each rank draws a disjoint slice of one class-balanced epoch; without DDP the
    balanced sampler draws the same number of items as the dataset holds."""
    from avemo.training.trainer import epoch_sampler

    labels = np.array([0] * 90 + [1] * 10)  # 9:1 imbalance
    config = TrainConfig(class_balance="sampler", seed=3)

    def gen(epoch):  # the epoch's generator, seeded alike on every rank (as the trainer does)
        return torch.Generator().manual_seed(1000 + epoch)

    shards = [list(epoch_sampler(labels, 2, config, epoch=1, gen=gen(1), rank=r, world=3)) for r in range(3)]
    assert [len(s) for s in shards] == [34, 34, 34]  # ceil(100 / 3) per rank
    interleaved = [shards[i % 3][i // 3] for i in range(102)]
    assert np.mean(labels[interleaved] == 1) == pytest.approx(0.5, abs=0.12)  # balanced, not 0.1
    again = list(epoch_sampler(labels, 2, config, epoch=1, gen=gen(1), rank=1, world=3))
    assert again == shards[1]  # every rank draws the same epoch from its equally seeded generator
    assert list(epoch_sampler(labels, 2, config, epoch=2, gen=gen(2), rank=1, world=3)) != shards[1]

    single = list(epoch_sampler(labels, 2, config, epoch=1, gen=gen(1)))
    assert len(single) == 100 and np.mean(labels[single] == 1) == pytest.approx(0.5, abs=0.12)
    uniform = [list(epoch_sampler(labels, 2, TrainConfig(seed=3), epoch=1, gen=gen(1), rank=r, world=2)) for r in range(2)]
    assert sorted(uniform[0] + uniform[1]) == list(range(100))  # a permutation, split in two


@pytest.mark.parametrize(("model", "steps", "verb"), [("whisper_logreg", 1, "fitting (closed form)"),
                                                       ("egemaps_logreg", 1, "fitting (closed form)"),
                                                       ("whisper_mlp", 60, "training"),
                                                       ("default", 60, "training")])
def test_train_progress_counts_one_step_for_a_model_fitted_in_closed_form(model, steps, verb):
    """`avemo train`'s bar: a closed-form model is fitted in one step (it showed '1 of 60' epochs)."""
    from avemo.cli.train import _training_steps

    assert _training_steps(model, 60) == (steps, verb)


def test_a_folder_of_another_corpus_names_the_dataset_its_files_follow(tmp_path):
    """``avemo evaluate --root crema_d`` (the default dataset: ravdess) said only "no labelled ravdess files
    found"; now the first skipped file, why, and the dataset whose names the files have."""
    from avemo.errors import DatasetError

    for name in ("1001_DFA_ANG_XX.flv", "1001_DFA_SAD_XX.flv"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(DatasetError) as refused:
        load_data("ravdess", tmp_path)
    message = str(refused.value)
    assert "no labelled ravdess files found: 2 files skipped, e.g. 1001_DFA_ANG_XX.flv (not a RAVDESS name" in message
    # the dataset, not an option of one command (benchmark --test-corpus takes DATASET=ROOT)
    assert message.endswith("the names are crema_d's: read the folder as dataset crema_d")
    other = tmp_path / "other"
    other.mkdir()
    (other / "clip.wav").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"no labelled ravdess files found: 1 file skipped, e.g. clip.wav \(not a "
                                           r"RAVDESS name[^;]*$"):
        load_data("ravdess", other)  # no hint when the name fits no dataset


def test_unlabelled_rows_of_a_folder_are_listed_as_skipped(tmp_path):
    """A labels CSV row with an empty emotion (an unlabelled clip, which `predict` and `extract` may use) was
    left out of training and scoring without a word: 149 files read, 148 takes trained and scored."""
    for name in ("a.wav", "b.wav", "c.wav"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "labels.csv").write_text("path,emotion,speaker\na.wav,sad,1\nb.wav,,1\nc.wav,angry,2\n")
    data = load_data("folder", tmp_path)
    assert [t.take for t in data.takes] == ["a", "c"]
    assert data.skipped == [(str(tmp_path / "b.wav"), "no emotion (an empty emotion cell): not used to train or score")]


def test_an_emotion_no_training_take_has_is_warned_of(tmp_path, caplog):
    """A labelled folder whose only calm clip is a test speaker's: the label set has calm, no training take
    has it, and the model's calm output was trained on nothing, without a word."""
    from avemo.datasets.labels import label_set_for
    from avemo.training.data import Gathered
    from avemo.training.experiment import warn_untrained_labels

    for name in ("a.wav", "b.wav", "c.wav", "d.wav"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "labels.csv").write_text("path,emotion,speaker\na.wav,sad,1\nb.wav,calm,2\nc.wav,sad,2\nd.wav,angry,1\n")
    data = load_data("folder", tmp_path)
    by_speaker = [Gathered([t for t in data.takes if t.speaker == s], {}) for s in ("1", "2")]
    labels = label_set_for("folder", ("sad", "calm", "angry"))
    with caplog.at_level("WARNING", logger="avemo.training.experiment"):
        warn_untrained_labels([by_speaker[0], Gathered([], {}), by_speaker[1]], labels)
        assert caplog.messages == ["no training take has emotion calm (1 validation or test take): the model cannot "
                                   "learn it; give training speakers such clips, or leave it out of the data"]
        caplog.clear()
        warn_untrained_labels([by_speaker[1], by_speaker[0]], labels)
        assert caplog.messages == ["no training take has emotion angry (1 validation or test take): the model cannot "
                                   "learn it; give training speakers such clips, or leave it out of the data"]
        caplog.clear()
        warn_untrained_labels([Gathered([*by_speaker[0].takes, *by_speaker[1].takes], {})], labels)
        assert caplog.messages == []


def test_a_text_column_the_model_does_not_read_is_said(ravdess_subset, cache_dir, tmp_path):
    """A labels CSV with a `text` column and an audio model: the transcripts were left aside without a word
    by `train` and `evaluate` (a user who wrote them expects them read)."""
    corpus = ravdess_subset(("01", "02", "05"), step=20)
    files = sorted(corpus.rglob("*.flac"))
    rows = [f"{p.relative_to(corpus).as_posix()},{p.name.split('-')[2]},{p.stem[-2:]},{'hello' if i % 2 else ''}"
            for i, p in enumerate(files)]
    (corpus / "labels.csv").write_text("\n".join(["path,emotion,speaker,text", *rows]) + "\n")
    out = tmp_path / "run"
    said = (f"the text of {len(files) // 2} of the {len(files)} takes (a text column, transcripts) is not read: "
            "{} reads no text (only audio)")
    result = _cli("train", "--dataset", "folder", "--root", corpus, "--model", "egemaps_logreg", "--val-speakers", "05",
                  "--out", out, "--cache", cache_dir, "-j", "1")
    assert result.exit_code == 0, result.output
    assert said.format("model egemaps_logreg") in " ".join(result.stderr.split())
    result = _cli("evaluate", "--checkpoint", out, "--root", corpus, "--cache", cache_dir, "-j", "1")
    assert result.exit_code == 0, result.output
    assert said.format("the checkpoint's model") in " ".join(result.stderr.split())
