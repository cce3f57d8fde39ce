"""A checkpoint records its data by the corpus name and the folders' last names, never by a path of
the machine that trained it (``avemo.models.checkpoint.recorded_path``); old checkpoints with such
paths still load."""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest

from avemo.cache import FeatureCache
from avemo.datasets import Fold, split
from avemo.models.checkpoint import load_checkpoint, recorded_path
from avemo.training import TrainConfig, load_data, train_run
from avemo.training.corpora import CorpusSpec, qualify
from avemo.training.experiment import load_corpora

INSTALLED = Path(__file__).resolve().parents[1] / "src" / "avemo" / "inference"


def machine_paths(tree, where: str = "") -> list[str]:
    """``where: value`` of every string in a JSON tree that is an absolute path or climbs with ``..``."""
    if isinstance(tree, dict):
        return [p for k, v in tree.items() for p in machine_paths(v, f"{where}.{k}")]
    if isinstance(tree, list):
        return [p for i, v in enumerate(tree) for p in machine_paths(v, f"{where}[{i}]")]
    if isinstance(tree, str) and (PurePosixPath(tree).is_absolute() or PureWindowsPath(tree).is_absolute()
                                  or ".." in PurePosixPath(tree).parts):
        return [f"{where}: {tree}"]
    return []


def test_recorded_path_keeps_the_last_two_names():
    assert recorded_path("/work/wt/bundle/benchmarks/../../shared/data/ravdess/speech_audio") == "ravdess/speech_audio"
    assert recorded_path(Path("/data/emodb_dev/wav/")) == "emodb_dev/wav"
    assert recorded_path(os.path.join("..", "shared", "data", "meld")) == "data/meld"  # relative: same rule
    assert recorded_path("/srv/au_means.csv") == "srv/au_means.csv"


def test_machine_paths_finds_absolute_and_climbing_paths():
    tree = {"a": ["ravdess/speech_audio", "/home/x/data"], "b": {"c": "../shared/data/meld", "d": 3}, "e": "C:\\data"}
    assert machine_paths(tree) == [".a[1]: /home/x/data", ".b.c: ../shared/data/meld", ".e: C:\\data"]


@pytest.mark.parametrize("folder", ["default_model/audio", "text_model"])
def test_bundled_checkpoints_record_no_machine_path(folder):
    meta = json.loads((INSTALLED / folder / "checkpoint.json").read_text())
    assert machine_paths(meta["data"]) == []


def test_a_checkpoint_with_an_absolute_root_still_loads(tmp_path):
    """Checkpoints written before the rule hold the trainer's absolute paths: nothing reads them back."""
    import torch

    from avemo.datasets.labels import RAVDESS
    from avemo.models import create_model
    from avemo.models.checkpoint import save_checkpoint
    from avemo.models.normalization import ArraySet, Normalizer

    model = create_model("whisper_logreg", num_classes=len(RAVDESS), combine="mean")
    norm = Normalizer.fit(ArraySet({"audio": list(torch.randn(6, 512).numpy())}), dict(model.inputs))
    save_checkpoint(tmp_path, model, labels=RAVDESS, normalizer=norm,
                    extra={"data": {"dataset": "ravdess", "root": "/work/shared/data/ravdess/speech_audio"}})
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.meta["data"]["root"] == "/work/shared/data/ravdess/speech_audio"
    assert ckpt.labels == RAVDESS


# ------------------------------------------------------------------------------ written by training
@pytest.fixture(scope="module")
def small_corpora(ravdess_subset, emodb_subset):
    """6 clips of each of 3 RAVDESS speakers and of 2 EmoDB-dev speakers (links to the shared files)."""
    return ravdess_subset(("01", "02", "05"), step=10), emodb_subset(("03", "08"), step=8)


@pytest.mark.shared_data
def test_training_records_no_machine_path_for_one_corpus_and_its_table(small_corpora, au_table, tmp_path):
    rav, _ = small_corpora
    data = load_data("ravdess", rav, visual_table=au_table)
    tr, va, _ = split(data.takes, Fold(number=0, test=(), val=("05",), train=("01", "02")))
    out = tmp_path / "run"
    train_run("late_average", data, train_takes=tr, val_takes=va, model_config={"video": "au_mlp"},
              train_config=TrainConfig(epochs=1), cache=FeatureCache(tmp_path / "cache"), out_dir=out, plots=False)
    meta = json.loads((out / "checkpoint.json").read_text())
    assert machine_paths(meta) == []
    assert meta["data"]["root"] == f"{rav.parent.name}/{rav.name}"
    assert meta["inputs"]["video"]["table"]["source"] == "ravdess/openface_au_means.csv"


@pytest.mark.shared_data
def test_training_records_no_machine_path_for_several_corpora(small_corpora, tmp_path):
    rav, emo = small_corpora
    data = load_corpora([CorpusSpec("ravdess", rav), CorpusSpec("emodb", emo)], "shared")
    val = qualify("ravdess", "05")
    tr = [t for t in data.takes if t.speaker != val]
    va = [t for t in data.takes if t.speaker == val]
    out = tmp_path / "run"
    train_run("mfcc_cnn1d", data, train_takes=tr, val_takes=va, train_config=TrainConfig(epochs=1),
              cache=FeatureCache(tmp_path / "cache"), out_dir=out, plots=False)
    meta = json.loads((out / "checkpoint.json").read_text())
    assert machine_paths(meta) == []
    assert [(c["name"], c["root"]) for c in meta["data"]["corpora"]] == [
        ("ravdess", f"{rav.parent.name}/{rav.name}"), ("emodb", f"{emo.parent.name}/{emo.name}")]
    # no common root: their common folder was recorded ("" when it is "/", one corpus under /tmp)
    assert "root" not in meta["data"]
    assert load_checkpoint(out).labels == data.labels
