"""`avemo train --out RUN` on a folder that holds a finished run: refused in one line naming the folder,
what it holds and --overwrite; with --overwrite the new run replaces it only once it is complete
(:func:`avemo.training.state.run_folder`), so a failed or interrupted overwrite leaves the old run whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avemo.training.state import STAGING, finished_run, run_folder


def _train(avemo_main, corpus, run, cache, *extra):
    return avemo_main("train", "-d", "ravdess", "-r", corpus, "-m", "egemaps_mlp", "--epochs", "1", "-j", "1",
                      "--cache", cache, "--out", run, *extra)


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_finished_run_is_refused_and_replaced_only_with_overwrite(make_ravdess, avemo_main, tmp_path):
    corpus, cache, run = make_ravdess(("01", "05", "07")), tmp_path / "cache", tmp_path / "run"
    run.mkdir()  # an empty folder is trained into, as a missing one
    code, _, err = _train(avemo_main, corpus, run, cache)
    assert code == 0, err
    (run / "notes.txt").write_text("mine")  # not a run output: stays through an overwrite
    before = _files(run)

    # refused before the data is read (a --root that does not exist is not reached), nothing touched
    code, _, err = _train(avemo_main, tmp_path / "no_such_corpus", run, cache, "--epochs", "2")
    created = json.loads(before["checkpoint.json"])["created"]
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.strip() == (f"avemo: error: --out {run}: holds a finished run of egemaps_mlp on ravdess, 8 labels, "
                           f"created {created}; give --overwrite to replace it, or another --out folder")
    assert _files(run) == before

    (run / "last").mkdir()  # an old resume state the new run does not write: removed by the overwrite
    (run / "last" / "state.json").write_text("{}")
    code, _, err = _train(avemo_main, corpus, run, cache, "--epochs", "2", "--overwrite")
    assert code == 0, err
    meta = json.loads((run / "checkpoint.json").read_text())
    assert meta["train"]["epochs"] == 2 and meta["created"] >= created
    assert len((run / "history.csv").read_text().strip().splitlines()) == 3  # header + the new run's 2 epochs
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.json", "curves.png", "history.csv",
                                                     "model.safetensors", "notes.txt"]
    assert (run / "notes.txt").read_text() == "mine"


def test_a_resumed_run_says_so(make_ravdess, avemo_main, tmp_path, monkeypatch):
    """The same command after an interruption resumed the run without a word: whether it had started
    over could not be told."""
    import avemo.training.experiment as experiment

    corpus, cache, run = make_ravdess(("01", "05", "07")), tmp_path / "cache", tmp_path / "run"
    with monkeypatch.context() as m:  # interrupted once every epoch is trained, before the checkpoint is written
        m.setattr(experiment, "_save_run", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
        code, _, err = _train(avemo_main, corpus, run, cache, "--epochs", "2")
    assert code == 130 and (run / "last" / "state.json").is_file(), err
    # other settings: refused, and nothing says it was resuming (the line came before the refusal)
    code, _, err = _train(avemo_main, corpus, run, cache, "--epochs", "2", "--seed", "1")
    assert code != 0 and "other settings" in err and "resuming" not in err, err
    code, _, err = _train(avemo_main, corpus, run, cache, "--epochs", "2")
    assert code == 0, err
    assert f"resuming the unfinished run in {run} after epoch 2 of 2" in " ".join(err.split())
    code, _, err = _train(avemo_main, corpus, tmp_path / "fresh", cache)
    assert code == 0 and "resuming" not in err


def test_an_unfinished_run_is_not_refused(tmp_path):
    """An interrupted run (a resume state, no checkpoint) is resumed by the same command, as before."""
    (tmp_path / "last").mkdir()
    (tmp_path / "history.csv").write_text("epoch\n1\n")
    assert finished_run(tmp_path) is None and finished_run(tmp_path / "missing") is None
    (tmp_path / "model.safetensors").write_bytes(b"x")
    assert finished_run(tmp_path) == "a checkpoint (its checkpoint.json is missing or unreadable)"


@pytest.mark.parametrize("failure", [KeyboardInterrupt, RuntimeError])
def test_a_failed_overwrite_leaves_the_old_run_whole(tmp_path, failure):
    old = {"model.safetensors": b"old weights", "checkpoint.json": b"{}", "history.csv": b"epoch\n1\n"}
    for name, content in old.items():
        (tmp_path / name).write_bytes(content)
    (tmp_path / STAGING).mkdir()  # left by a killed overwrite: cleared
    (tmp_path / STAGING / "history.csv").write_text("stale")
    with pytest.raises(failure), run_folder(tmp_path, overwrite=True) as where:
        assert where == tmp_path / STAGING and list(where.iterdir()) == []
        (where / "history.csv").write_text("epoch\n1\n2\n")
        (where / "model.safetensors").write_bytes(b"half")
        raise failure
    assert _files(tmp_path) == old


def test_without_overwrite_or_a_run_the_folder_itself_is_used(tmp_path):
    with run_folder(tmp_path, overwrite=False) as where:
        assert where == tmp_path
    with run_folder(tmp_path, overwrite=True) as where:  # nothing to replace: no staging
        assert where == tmp_path
    assert list(tmp_path.iterdir()) == []


def test_plots_go_where_asked_and_the_checkpoint_folder_holds_what_a_bundled_model_ships(make_ravdess, avemo_main,
                                                                                          tmp_path):
    """Rebuilding the bundled text model by its recipe (`avemo train ... --out src/avemo/inference/text_model`)
    left a curves.png in the package folder, an untracked file beside the shipped weights: `avemo train`
    writes its figures into --out. Now --plots DIR takes them elsewhere, and the recipe gives it."""
    from avemo.inference.text_emotion import DEFAULT_TEXT_MODEL

    corpus, run, figures = make_ravdess(("01", "05", "07")), tmp_path / "run", tmp_path / "figures"
    code, _, err = _train(avemo_main, corpus, run, tmp_path / "cache", "--plots", figures)
    assert code == 0, err
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.json", "history.csv", "model.safetensors"]
    assert {p.name for p in run.iterdir()} <= {p.name for p in DEFAULT_TEXT_MODEL.iterdir()}  # what the package ships
    assert [p.name for p in figures.iterdir()] == ["curves.png"]
    repo = Path(__file__).resolve().parents[1]
    for recipe in (repo / "src/avemo/inference/text_model/MODEL_CARD.md", repo / "benchmarks/meld_text_recipe.toml"):
        command = " ".join(recipe.read_text().replace("\\\n", " ").replace("#", " ").split())
        assert "--out src/avemo/inference/text_model" in command and "--plots runs/text_model" in command, recipe


def test_a_plots_folder_that_cannot_be_written_is_refused_before_the_training(make_ravdess, avemo_main, tmp_path):
    """--plots naming a file: a FileExistsError traceback once the run was trained (exit 1, its checkpoint
    written, no figures). Now one line before the data is extracted, and no --out folder is left."""
    corpus, run, taken = make_ravdess(("01", "05", "07")), tmp_path / "run", tmp_path / "notes.txt"
    taken.write_text("mine")
    code, out, err = _train(avemo_main, corpus, run, tmp_path / "cache", "--plots", taken)
    assert code == 2 and err.strip() == f"avemo: error: {taken}: is a file; give the name of a folder", err
    assert not run.exists() and "training" not in out


def test_train_says_its_split_in_words():
    """``avemo train`` printed the split as a Python dict: "({'plan': 'emodb_5fold', 'fold': 1, ...})"."""
    from avemo.cli.train import split_words

    assert (split_words({"plan": "emodb_5fold", "fold": 1, "test_speakers": ["03"], "val_speakers": ["08", "09"]})
            == "plan emodb_5fold, fold 1; test speakers 03; validation speakers 08, 09")
    assert split_words({"fold": None, "val_speakers": ["08", "09"]}) == "validation speakers 08, 09"


def test_training_progress_moves_within_an_epoch(make_ravdess, avemo_main, tmp_path, monkeypatch):
    """The training bar moved once an epoch, and not at all with --epochs 1 (a bar of one step was no
    bar): one epoch of a 3D ResNeXt on 8 clips took 130 s on a CPU without a word. It now moves after
    every training step, by a fraction of an epoch."""
    from avemo.cli import progress

    monkeypatch.setattr(progress, "PROGRESS_EVERY", 0.0)  # a line at every update (stderr is no terminal here)
    code, _, err = _train(avemo_main, make_ravdess(("01", "05", "07")), tmp_path / "run", tmp_path / "cache",
                          "--batch-size", "2", "--val-speakers", "05,07")  # 8 training clips: 4 steps
    assert code == 0, err
    lines = [line.split(",")[0] for line in err.splitlines() if line.startswith("avemo: training egemaps_mlp:")]
    assert lines == [f"avemo: training egemaps_mlp: {done} of 1 ({percent} %)"
                     for done, percent in (("0.2", 25), ("0.5", 50), ("0.8", 75), ("1", 100), ("1", 100))]


def test_fit_reports_every_step_as_a_fraction_of_the_epochs():
    import numpy as np

    from avemo.models import create_model
    from avemo.models.batching import TensorData
    from avemo.training.config import TrainConfig
    from avemo.training.trainer import fit

    model = create_model("au_mlp", num_classes=3)
    rng = np.random.default_rng(0)
    train = TensorData({"video": list(rng.normal(size=(10, 35)).astype(np.float32))}, np.arange(10) % 3,
                       model.inputs, train=True)
    steps, epochs = [], []
    fit(model, train, None, TrainConfig(epochs=2, batch_size=4, device="cpu"), labels=["a", "b", "c"],
        on_step=steps.append, on_epoch=lambda row: epochs.append(row["epoch"]))
    assert steps == [0.5, 1.0, 1.5, 2.0] and epochs == [1, 2]  # 10 items, batches of 4: 2 steps (the last dropped)
