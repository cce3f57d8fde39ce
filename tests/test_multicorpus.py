"""Multi-corpus training (label spaces, qualified speakers, balance weights, masked softmax) and
the closed-form ``whisper_logreg`` head (fit, checkpoint, ONNX export, concatenated Whisper input)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from avemo.datasets.labels import EMODB, RAVDESS, LabelSet
from avemo.errors import AvemoError, ConfigError
from avemo.features import get_extractor
from avemo.models import create_model, default_inputs
from avemo.models.batching import TensorData
from avemo.models.checkpoint import load_checkpoint, save_checkpoint
from avemo.models.inputs import InputSpec
from avemo.models.normalization import ArraySet, Normalizer
from avemo.training import TrainConfig, load_data
from avemo.training.corpora import (
    FILE_SETTINGS,
    CorpusObjective,
    balance_weights,
    build_label_space,
    corpora_file_settings,
    corpus_of,
    qualify_speakers,
    read_corpora_file,
)
from avemo.training.trainer import fit, predict_proba

SHARED_6 = ["neutral", "happy", "sad", "angry", "fearful", "disgust"]


# ----------------------------------------------------------------------------- label spaces
def test_shared_space_of_ravdess_and_emodb_merges_calm_and_leaves_out_the_lone_labels():
    space = build_label_space({"ravdess": RAVDESS, "emodb": EMODB}, "shared")
    assert list(space.labels.emotions) == SHARED_6
    assert space.maps["ravdess"]["calm"] == "neutral" and space.maps["ravdess"]["neutral"] == "neutral"
    assert space.maps["ravdess"]["surprised"] is None and space.maps["emodb"]["boredom"] is None
    assert not space.masked and space.allowed_matrix(["ravdess", "emodb"]).all()
    json.dumps(space.to_dict())  # goes into the checkpoint


def test_union_masked_space_keeps_every_label_and_masks_per_corpus():
    space = build_label_space({"ravdess": RAVDESS, "emodb": EMODB}, "union_masked")
    assert set(space.labels.emotions) == set(RAVDESS.emotions) | set(EMODB.emotions)
    assert space.masked and space.maps["ravdess"]["calm"] == "calm"
    allowed = space.allowed_matrix(["ravdess", "emodb"])
    labels = list(space.labels.emotions)
    assert not allowed[0, labels.index("boredom")] and allowed[1, labels.index("boredom")]
    assert not allowed[1, labels.index("calm")] and not allowed[1, labels.index("surprised")]
    assert allowed.sum(axis=1).tolist() == [len(RAVDESS), len(EMODB)]


def test_label_sets_that_cannot_meet_are_refused_in_one_line_naming_both():
    a, b = LabelSet("mine", ("joy", "anger_x")), LabelSet("theirs", ("neutral", "sad", "angry"))
    with pytest.raises(ConfigError) as err:
        build_label_space({"mine": a, "theirs": b}, "shared")
    text = str(err.value)
    assert "\n" not in text and "mine" in text and "theirs" in text and "joy" in text and "neutral" in text


def test_unknown_label_space_is_refused():
    with pytest.raises(ConfigError, match="union_masked"):
        build_label_space({"ravdess": RAVDESS, "emodb": EMODB}, "union")


# ----------------------------------------------------------------------------- masked loss, weights
def test_masked_loss_equals_cross_entropy_of_the_restricted_softmax():
    torch.manual_seed(0)
    logits = torch.randn(5, 4)
    allowed = torch.tensor([[True, True, True, True], [True, False, True, False]])
    objective = CorpusObjective(("a", "b"), torch.ones(2, 4), allowed)
    targets = torch.tensor([[0, 0], [2, 1], [0, 1], [3, 0], [2, 1]])
    expected = []
    for (y, g), row in zip(targets.tolist(), logits, strict=True):
        keep = allowed[g].nonzero().flatten()
        expected.append(F.cross_entropy(row[keep][None], (keep == y).nonzero().flatten()))
    assert torch.allclose(objective.loss(logits, targets), torch.stack(expected).mean(), atol=1e-6)


def test_weights_scale_each_clip_cross_entropy():
    logits = torch.randn(3, 3)
    weights = torch.tensor([[1.0, 2.0, 3.0]])
    objective = CorpusObjective(("a",), weights, torch.ones(1, 3, dtype=torch.bool))
    targets = torch.tensor([[0, 0], [1, 0], [2, 0]])
    ce = F.cross_entropy(logits, targets[:, 0], reduction="none")
    assert torch.allclose(objective.loss(logits, targets), (ce * weights[0]).mean())


@pytest.mark.parametrize("balance", ["none", "corpus", "corpus_class", "auto"])
def test_balance_weights_sum_as_specified(balance):
    corpora = ["r"] * 12 + ["e"] * 4
    labels = np.array([0] * 6 + [1] * 4 + [2] * 2 + [0] * 3 + [1])
    table = balance_weights(corpora, labels, 3, balance)
    g = np.array([0] * 12 + [1] * 4)
    w = table[g, labels]
    assert np.isclose(w.mean(), 1.0)  # scaled to mean 1
    if balance == "none":
        assert np.allclose(w, 1.0)
    if balance in ("corpus", "auto"):  # auto = corpus with several corpora
        assert np.isclose(w[g == 0].sum(), w[g == 1].sum())
    if balance == "corpus_class":
        cells = {(c, y): w[(g == c) & (labels == y)].sum() for c, y in set(zip(g, labels, strict=True))}
        assert np.allclose(list(cells.values()), next(iter(cells.values())))


def test_corpus_weight_multiplies_its_clips():
    corpora, labels = ["a", "a", "b", "b"], np.array([0, 1, 0, 1])
    table = balance_weights(corpora, labels, 2, "corpus", {"b": 3.0})
    assert np.isclose(table[1].sum() / table[0].sum(), 3.0)


# ----------------------------------------------------------------------------- speakers, corpora file
def test_qualified_speakers_and_ambiguous_ids():
    known = ["emodb:03", "emodb:08", "ravdess:01", "ravdess:03"]
    assert qualify_speakers(["08", "ravdess:03", "01"], known) == ["emodb:08", "ravdess:03", "ravdess:01"]
    with pytest.raises(ConfigError, match="ambiguous.*emodb:03, ravdess:03"):
        qualify_speakers(["03"], known)
    with pytest.raises(ConfigError, match="no corpus"):
        qualify_speakers(["99"], known)


def test_corpora_file(tmp_path):
    path = tmp_path / "corpora.toml"
    path.write_text('[[corpora]]\ndataset = "ravdess"\nroot = "r"\n\n'
                    '[[corpora]]\ndataset = "emodb"\nroot = "/data/e"\nspeakers = ["03", "08"]\nweight = 2.0\n')
    a, b = read_corpora_file(path)
    assert (a.dataset, a.root, a.weight, a.speakers) == ("ravdess", tmp_path / "r", 1.0, None)
    assert (b.corpus, str(b.root), b.speakers, b.weight) == ("emodb", "/data/e", ("03", "08"), 2.0)
    path.write_text('[[corpora]]\ndataset = "ravdess"\nroot = "r"\nrate = 3\n')
    with pytest.raises(ConfigError, match="unknown keys"):
        read_corpora_file(path)


@pytest.mark.parametrize(("entry", "reason"), [
    # a string was read as one speaker per character ("0", "3"); numbers lose their leading zero
    ('speakers = "03"', 'speakers must be a non-empty list of speaker ids as strings (e.g. ["03", "08"]), got \'03\''),
    ("speakers = [3, 8]", 'speakers must be a non-empty list of speaker ids as strings (e.g. ["03", "08"]), got [3, 8]'),
    ("speakers = []", 'speakers must be a non-empty list of speaker ids as strings (e.g. ["03", "08"]), got []'),
    ('weight = "x"', "weight must be a number, got 'x'"),  # a traceback (ValueError)
    ("name = 5", "name must be a non-empty string, got 5"),  # a traceback (TypeError)
])
def test_corpora_file_refuses_a_value_of_the_wrong_kind_in_one_line(tmp_path, entry, reason):
    path = tmp_path / "corpora.toml"
    path.write_text(f'[[corpora]]\ndataset = "ravdess"\nroot = "r"\n\n[[corpora]]\ndataset = "emodb"\nroot = "e"\n'
                    f"{entry}\n")
    corpus = "5" if entry == "name = 5" else "emodb"
    with pytest.raises(ConfigError) as bad:
        read_corpora_file(path)
    assert str(bad.value) == f"{path}: corpora entry 2 ({corpus}): {reason}"


@pytest.mark.parametrize(("entry", "reason"), [
    # a misspelt key was said only as "needs dataset= and root=", the typo not named
    ('datset = "emodb"\nroot = "e"', "corpora entry 2: unknown keys datset (known: dataset, labels, media, "
                                     "name, protocol, root, speaker_pattern, speakers, transcribe, "
                                     "weight); needs dataset="),
    ('dataset = "emodb"\nrots = "e"', "corpora entry 2 (emodb): unknown keys rots (known: dataset, labels, "
                                      "media, name, protocol, root, speaker_pattern, speakers, "
                                      "transcribe, weight); needs root="),
    ('dataset = "emodb"', "corpora entry 2 (emodb): needs root="),
])
def test_corpora_file_names_the_misspelt_or_missing_key_of_an_entry(tmp_path, entry, reason):
    path = tmp_path / "corpora.toml"
    path.write_text(f'[[corpora]]\ndataset = "ravdess"\nroot = "r"\n\n[[corpora]]\n{entry}\n')
    with pytest.raises(ConfigError) as bad:
        read_corpora_file(path)
    assert str(bad.value) == f"{path}: {reason}"


def test_corpora_file_names_itself_for_an_unknown_dataset_or_a_labels_csv_of_a_named_dataset(tmp_path):
    path = tmp_path / "corpora.toml"
    path.write_text('[[corpora]]\ndataset = "ravdes"\nroot = "r"\n')
    with pytest.raises(ConfigError) as bad:
        read_corpora_file(path)
    assert str(bad.value) == (f"{path}: corpora entry 1 (ravdes): unknown dataset 'ravdes'; known: crema_d, emodb, "
                              "folder, iemocap, meld, ravdess")
    path.write_text('[[corpora]]\ndataset = "emodb"\nroot = "e"\nlabels = "labels.csv"\n')
    with pytest.raises(ConfigError) as bad:  # it said "dataset 'emodb' takes no option(s) ['labels_csv']"
        read_corpora_file(path)
    assert str(bad.value) == (f"{path}: corpus emodb: labels (a labels CSV) is for folder corpora; emodb reads its "
                              "labels from its own files")


TWO_CORPORA = '[[corpora]]\ndataset = "ravdess"\nroot = "r"\n\n[[corpora]]\ndataset = "emodb"\nroot = "e"\n'


def test_corpora_file_settings_are_read_and_checked(tmp_path):
    path = tmp_path / "corpora.toml"
    path.write_text('label_space = "union_masked"\nbalance = "corpus_class"\n' + TWO_CORPORA)
    assert corpora_file_settings(path) == {"label_space": "union_masked", "balance": "corpus_class"}
    assert [s.corpus for s in read_corpora_file(path, reads=FILE_SETTINGS)] == ["ravdess", "emodb"]
    path.write_text(TWO_CORPORA)
    assert corpora_file_settings(path) == {}
    path.write_text('balance = "speaker"\n' + TWO_CORPORA)
    with pytest.raises(ConfigError) as bad:
        corpora_file_settings(path)
    assert str(bad.value) == f"{path}: balance = 'speaker' is not one of auto, none, corpus, corpus_class"


def test_corpora_file_refuses_a_top_level_key_nobody_reads(tmp_path):
    """A setting at the top of the file used to be ignored without a word (label_space had no effect)."""
    path = tmp_path / "corpora.toml"
    path.write_text('label_sapce = "union_masked"\n' + TWO_CORPORA)  # a typo: nothing reads it
    for read in (corpora_file_settings, lambda p: read_corpora_file(p, reads=FILE_SETTINGS)):
        with pytest.raises(ConfigError) as bad:
            read(path)
        assert str(bad.value) == (f"{path}: unknown top-level key label_sapce: nothing reads it "
                                  "(accepted: balance, corpora, label_space)")
    path.write_text('label_space = "union_masked"\nseed = 3\n' + TWO_CORPORA)
    with pytest.raises(ConfigError, match="unknown top-level keys label_space, seed: nothing reads them "
                                          r"\(accepted: corpora\)"):
        read_corpora_file(path)  # a caller that reads only the [[corpora]] entries
    assert len(read_corpora_file(path, reads=("label_space", "seed"))) == 2  # one that reads both itself


# ----------------------------------------------------------------------------- whisper_logreg
def _separable(n=60, d=12, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centres = rng.normal(0, 4, (classes, d))
    return (centres[y] + rng.normal(0, 1, (n, d))).astype(np.float32), y


def _data(x, y, spec_name="audio", specs=None, groups=None):
    return TensorData({spec_name: list(x)}, y, specs, groups=groups)


def test_whisper_logreg_learns_a_separable_problem_in_closed_form():
    x, y = _separable(d=512)
    model = create_model("whisper_logreg", num_classes=3, combine="mean", C=1.0)
    data = _data(x, y, specs=model.inputs)
    result = fit(model, data, data, TrainConfig(epochs=50), labels=["a", "b", "c"])
    assert result.epochs_run == 1 and len(result.history) == 1  # no epochs: one closed-form fit
    assert (predict_proba(model, data).argmax(1) == y).all()


def test_egemaps_logreg_reads_the_88_functionals_and_fits_in_closed_form():
    assert default_inputs("egemaps_logreg")["audio"] == InputSpec("audio", "egemaps", {}, (88,), "vector")
    x, y = _separable(d=88)
    model = create_model("egemaps_logreg", num_classes=3, C=0.1)
    data = _data(x, y, specs=model.inputs)
    result = fit(model, data, data, TrainConfig(epochs=50), labels=["a", "b", "c"])
    assert result.epochs_run == 1 and model.closed_form  # one closed-form fit, as whisper_logreg
    assert (predict_proba(model, data).argmax(1) == y).all()
    with pytest.raises(ConfigError, match="egemaps_logreg: C must be positive"):
        create_model("egemaps_logreg", num_classes=3, C=0.0)


def test_whisper_logreg_penalty_shrinks_the_weights_with_smaller_c():
    x, y = _separable(d=512)
    norms = []
    for c in (1e-3, 1.0):
        model = create_model("whisper_logreg", num_classes=3, combine="mean", C=c)
        model.fit_closed_form({"audio": torch.from_numpy(x)}, torch.from_numpy(y))
        norms.append(float(model.head.weight.detach().norm()))
    assert norms[0] < norms[1]


def test_whisper_logreg_masked_fit_never_predicts_a_label_its_only_corpus_lacks():
    x, y = _separable(d=512)
    model = create_model("whisper_logreg", num_classes=3, combine="mean", C=1.0)
    keep = y != 2  # class 2 has no clips; the corpus cannot express it
    allowed = torch.tensor([[True, True, False]]).repeat(int(keep.sum()), 1)
    model.fit_closed_form({"audio": torch.from_numpy(x[keep])}, torch.from_numpy(y[keep]), allowed=allowed)
    assert torch.isfinite(model.head.weight).all()


def test_epoch_trained_model_accepts_corpus_targets():
    x, y = _separable(d=88)
    model = create_model("egemaps_mlp", num_classes=3)
    groups = (np.arange(len(y)) % 2).astype(np.int64)
    objective = CorpusObjective(("a", "b"), torch.ones(2, 3), torch.tensor([[True, True, True], [True, True, False]]))
    y = np.where((groups == 1) & (y == 2), 0, y)
    data = _data(x, y, specs=model.inputs, groups=groups)
    result = fit(model, data, None, TrainConfig(epochs=2, batch_size=16, device="cpu"), labels=["a", "b", "c"],
                 objective=objective)
    assert result.epochs_run == 2 and all(np.isfinite(r["train_loss"]) for r in result.history)


def test_objective_needs_groups():
    x, y = _separable(d=88)
    model = create_model("egemaps_mlp", num_classes=3)
    objective = CorpusObjective(("a",), torch.ones(1, 3), torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ConfigError, match="groups"):
        fit(model, _data(x, y, specs=model.inputs), None, TrainConfig(epochs=1), labels=["a", "b", "c"],
            objective=objective)


def test_concat_combine_shares_the_cache_key_and_reads_the_layer_means():
    mean, concat = get_extractor("whisper_base"), get_extractor("whisper_base", combine="concat")
    assert mean.cache_spec() == concat.cache_spec()
    means = np.random.default_rng(0).normal(size=(7, 512)).astype(np.float32)
    stored = {"x": means.mean(axis=0), "layer_means": means}
    assert np.array_equal(concat.view(stored)["x"], means.reshape(-1))
    assert np.allclose(mean.view(stored)["x"], means.mean(axis=0))
    assert len(concat.feature_names()) == 3584
    # whichever config computed it, the cache holds the same entry (the defaults' view: mean)
    computed = concat.view(stored)
    assert computed["x"].shape == (3584,) and concat.stored(computed)["x"].shape == (512,)
    assert np.allclose(concat.stored(computed)["x"], mean.stored(mean.view(stored))["x"])
    with pytest.raises(Exception, match="layer"):
        get_extractor("whisper_base", combine="concat", layer=3)


def test_whisper_logreg_checkpoint_and_onnx_round_trip(tmp_path):
    pytest.importorskip("onnxruntime")
    from avemo.inference.audio import WhisperAudioExpert, whisper_input
    from avemo.inference.engines import OnnxEngine

    x, y = _separable(d=3584)
    model = create_model("whisper_logreg", num_classes=3)
    norm = Normalizer.fit(ArraySet({"audio": list(x)}), model.inputs)
    data = TensorData(norm.transform(ArraySet({"audio": list(x)})), y, model.inputs)
    fit(model, data, None, TrainConfig(), labels=["angry", "happy", "sad"])
    save_checkpoint(tmp_path / "ckpt", model, labels=LabelSet("toy", ("angry", "happy", "sad")), normalizer=norm)
    ckpt = load_checkpoint(tmp_path / "ckpt")
    assert whisper_input(ckpt) == ("audio", None, "concat", False)
    assert np.allclose(predict_proba(ckpt.model, data), predict_proba(model, data), atol=1e-6)
    expert = WhisperAudioExpert.from_checkpoint(ckpt)
    files = expert.export_onnx(tmp_path / "onnx")
    head = OnnxEngine(tmp_path / "onnx" / files["head"])
    emb = x[:4]
    np.testing.assert_allclose(head(embedding=emb)["logits"], expert.logits(emb), rtol=1e-4, atol=1e-4)
    signal = (0.1 * np.random.default_rng(1).standard_normal(16000)).astype(np.float32)
    states = expert.states(signal)
    assert states.shape[1] == 3584
    encoder = OnnxEngine(tmp_path / "onnx" / files["encoder"])
    np.testing.assert_allclose(encoder(audio=signal[None])["states"][0][: len(states)], states, rtol=1e-3, atol=1e-3)
    extracted = get_extractor("whisper_base", combine="concat").from_signal(signal, 16000)["x"]
    np.testing.assert_allclose(states.mean(axis=0), extracted, rtol=1e-3, atol=1e-3)


# ----------------------------------------------------------------------------- CLI end to end
@pytest.fixture(scope="module")
def two_small_corpora(ravdess_subset, emodb_subset):
    """3 RAVDESS speakers x 9 clips and 3 EmoDB-dev speakers x about 8 clips (links to the shared files);
    speaker 08 is in both."""
    return ravdess_subset(("01", "02", "08"), step=7), emodb_subset(("03", "08", "09"), step=6)


@pytest.mark.shared_data
def test_cli_trains_on_two_corpora_union_masked(two_small_corpora, tmp_path):
    from typer.testing import CliRunner

    from avemo.cli import app

    rav, emo = two_small_corpora
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "train", "--dataset", "ravdess", "--root", str(rav), "--dataset", "emodb", "--root", str(emo),
        "--model", "whisper_logreg", "--label-space", "union_masked", "--balance", "corpus_class",
        "--val-speakers", "ravdess:02,09", "--out", str(out), "--cache", str(tmp_path / "cache"), "-j", "1",
    ], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "checkpoint.json").read_text())
    assert meta["labels"]["emotions"][:2] == ["neutral", "calm"] and "boredom" in meta["labels"]["emotions"]
    assert meta["data"]["label_space"]["mode"] == "union_masked"
    assert meta["data"]["speakers"]["val"] == ["emodb:09", "ravdess:02"]
    assert meta["train"]["balance"] == "corpus_class"
    assert {c["name"] for c in meta["data"]["corpora"]} == {"ravdess", "emodb"}
    ckpt = load_checkpoint(out)
    assert ckpt.model.num_classes == len(meta["labels"]["emotions"])


@pytest.mark.shared_data
def test_cli_refuses_ambiguous_speakers_and_unequal_pairs(two_small_corpora, tmp_path, avemo_main):
    rav, emo = two_small_corpora
    base = ["train", "--dataset", "ravdess", "--root", rav, "--dataset", "emodb", "--root", emo,
            "--model", "whisper_logreg", "--out", tmp_path / "r", "--cache", tmp_path / "c"]
    for extra, message in ((["--val-speakers", "08"], "ambiguous"),
                           (["--dataset", "crema_d"], "one --dataset per --root"),
                           # it asked for "speakers= and labels=" when only --speakers was given
                           (["--speakers", "01"], "--speakers reads one corpus; with several corpora, give "
                                                  "speakers= per corpus in a --corpora file")):
        code, _, err = avemo_main(*base, *extra)
        assert code != 0 and message in err


def test_cli_checks_the_label_space_with_one_corpus_and_says_it_is_ignored(two_small_corpora, tmp_path, avemo_main):
    """With one corpus --label-space was never looked at: 'bogus' trained, and union_masked was dropped
    without a word."""
    _, emo = two_small_corpora
    base = ["train", "--dataset", "emodb", "--root", emo, "--model", "whisper_logreg", "--cache", tmp_path / "c",
            "-j", "1"]
    code, _, err = avemo_main(*base, "--label-space", "bogus", "--out", tmp_path / "bogus")
    assert code == 2 and err.strip() == "avemo: error: --label-space 'bogus' is not one of shared, union_masked"
    assert not (tmp_path / "bogus").exists()
    code, _, err = avemo_main(*base, "--label-space", "union_masked", "--out", tmp_path / "one")
    assert code == 0, err
    assert "label space union_masked ignored: one corpus trains on its own labels" in err
    meta = json.loads((tmp_path / "one" / "checkpoint.json").read_text())
    assert meta["labels"]["name"] == "emodb"
    assert meta["train"]["balance"] == "none"  # what the default "auto" stands for with one corpus
    # evaluate reads --root with the layout the checkpoint trained on (it read it as ravdess: "no labelled files")
    code, _, err = avemo_main("evaluate", "-c", tmp_path / "one", "--root", emo, "--json", tmp_path / "ev.json",
                              "--cache", tmp_path / "c")
    assert code == 0, err
    report = json.loads((tmp_path / "ev.json").read_text())
    assert report["n"] > 0 and report["mapping"]["data"]["label_set"] == "emodb"


@pytest.mark.shared_data
def test_cli_records_the_balance_auto_stood_for_and_evaluates_the_run(two_small_corpora, tmp_path, avemo_main):
    """The default balance "auto" was recorded as "auto", not as the weighting the run used: "corpus"
    with two corpora. The run so recorded is evaluated as before."""
    rav, emo = two_small_corpora
    out = tmp_path / "run"
    code, _, err = avemo_main("train", "--dataset", "ravdess", "--root", rav, "--dataset", "emodb", "--root", emo,
                              "--model", "whisper_logreg", "--val-speakers", "ravdess:02,09", "--out", out,
                              "--cache", tmp_path / "cache", "-j", "1")
    assert code == 0, err
    assert json.loads((out / "checkpoint.json").read_text())["train"]["balance"] == "corpus"
    code, _, err = avemo_main("evaluate", "-c", out, "--dataset", "emodb", "--root", emo, "--json", tmp_path / "ev.json",
                              "--cache", tmp_path / "cache")
    assert code == 0, err
    assert json.loads((tmp_path / "ev.json").read_text())["n"] > 0
    # without --dataset: which of its corpora --root is cannot be guessed, one line says so
    code, _, err = avemo_main("evaluate", "-c", out, "--root", emo, "--cache", tmp_path / "cache")
    assert code == 2 and err.count("\n") == 1
    assert "trained on several corpora (emodb, ravdess): say which layout --root has with --dataset" in err


def _train_on_file(avemo_main, tmp_path, settings: str, *options):
    rav, emo = tmp_path.parent / "no_ravdess", tmp_path.parent / "no_emodb"
    path = tmp_path / "corpora.toml"
    path.write_text(settings + f'[[corpora]]\ndataset = "ravdess"\nroot = "{rav}"\n\n'
                               f'[[corpora]]\ndataset = "emodb"\nroot = "{emo}"\n')
    return avemo_main("train", "--corpora", path, "--model", "whisper_logreg", "--out", tmp_path / "run", *options)


@pytest.mark.shared_data
def test_cli_takes_label_space_and_balance_from_the_corpora_file_unless_given(two_small_corpora, tmp_path,
                                                                              avemo_main):
    """The file's label_space and balance apply (they used to be ignored: the options' defaults won);
    the options given on the command line win over them."""
    rav, emo = two_small_corpora
    path = tmp_path / "corpora.toml"
    path.write_text(f'label_space = "union_masked"\nbalance = "corpus_class"\n\n'
                    f'[[corpora]]\ndataset = "ravdess"\nroot = "{rav}"\n\n[[corpora]]\ndataset = "emodb"\nroot = "{emo}"\n')
    base = ["train", "--corpora", path, "--model", "whisper_logreg", "--val-speakers", "ravdess:02,09",
            "--cache", tmp_path / "cache", "-j", "1"]
    for out, options, space, balance in ((tmp_path / "file", [], "union_masked", "corpus_class"),
                                         (tmp_path / "options", ["--label-space", "shared", "--balance", "none"],
                                          "shared", "none")):
        code, _, err = avemo_main(*base, "--out", out, *options)
        assert code == 0, err
        meta = json.loads((out / "checkpoint.json").read_text())
        assert (meta["data"]["label_space"]["mode"], meta["train"]["balance"]) == (space, balance)
        assert ("boredom" in meta["labels"]["emotions"]) == (space == "union_masked")
        # in words: it printed "label space shared ['neutral', ...]; ... ravdess: {'surprised': 3}"
        left = "; ".join(f"{c} " + ", ".join(f"{e} {n}" for e, n in counts.items())
                         for c, counts in meta["data"]["left_out"].items()) or "none"
        assert (f"label space {space}: {', '.join(meta['labels']['emotions'])}; clips left out (no partner): "
                f"{left}\n") in err
        assert space == "union_masked" or left.startswith("ravdess surprised ")


def test_cli_refuses_a_corpora_file_key_it_does_not_read_before_any_work(avemo_main, tmp_path, monkeypatch):
    """The bundled model's build recipe shares the format; `avemo train` reads none of its other sections,
    so they are refused rather than silently dropped."""
    recipe = Path(__file__).resolve().parents[1] / "benchmarks" / "default_model_recipe.toml"
    monkeypatch.setenv("COLUMNS", "300")
    code, _, err = avemo_main("train", "--corpora", recipe, "--out", tmp_path / "run")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.strip() == (f"avemo: error: {recipe}: unknown top-level keys audio_model, calibration, degraded, "
                           "estimate, model_config, speaker_norm, train: nothing reads them "
                           "(accepted: balance, corpora, label_space)")
    assert not (tmp_path / "run").exists()


def test_cli_refuses_a_corpora_or_config_file_that_is_not_utf8_in_one_line(avemo_main, tmp_path):
    """A binary file or one in Latin-1 given as --corpora / --config ended in a UnicodeDecodeError traceback."""
    for option, text in (("--corpora", b"\xff\xfe[[corpora]]\n"), ("--config", b"epochs = 1  # caf\xe9\n")):
        path = tmp_path / "settings.toml"
        path.write_bytes(text)
        args = ("--corpora", path) if option == "--corpora" else ("--root", tmp_path, "--config", path)
        code, _, err = avemo_main("train", *args, "--out", tmp_path / "run")
        byte = text.index(b"\xff" if option == "--corpora" else b"\xe9")
        assert code == 2 and err.strip() == (f"avemo: error: {path}: not UTF-8 text (byte {byte} is "
                                             f"0x{text[byte]:02x})"), err
        assert not (tmp_path / "run").exists()


def test_a_key_given_twice_in_a_yaml_or_json_corpora_file_is_refused(avemo_main, tmp_path):
    """TOML refuses a duplicate key; the YAML and JSON parsers kept the last value without a word
    (balance: corpus, then balance: none trained with none)."""
    from avemo.config import load_file

    files = {"corpora.yaml": ("balance: corpus\nbalance: none\ncorpora:\n  - {dataset: ravdess, root: r}\n",
                              "not valid YAML: the key 'balance' is given twice (line 2)"),
             "corpora.json": ('{"balance": "corpus", "corpora": [{"dataset": "ravdess", "root": "r", "root": "e"}], '
                              '"balance": "none"}', "not valid JSON: the key 'root' is given twice")}
    for name, (text, reason) in files.items():
        (tmp_path / name).write_text(text)
        code, _, err = avemo_main("train", "--corpora", tmp_path / name, "--out", tmp_path / "run")
        assert code == 2 and err.strip() == f"avemo: error: {tmp_path / name}: {reason}", err
    merged = tmp_path / "merge.yaml"  # a key a merge brings in may be overridden: YAML's meaning, not a duplicate
    merged.write_text("base: &b {weight: 1.0, name: x}\nentry:\n  <<: *b\n  weight: 2.0\n")
    assert load_file(merged) == {"base": {"weight": 1.0, "name": "x"}, "entry": {"weight": 2.0, "name": "x"}}


def test_cli_refuses_a_balance_the_two_files_give_differently_unless_the_option_chooses(avemo_main, tmp_path):
    config = tmp_path / "train.toml"
    config.write_text('balance = "none"\n')
    code, _, err = _train_on_file(avemo_main, tmp_path, 'balance = "corpus"\n', "--config", config)
    assert code == 2 and f"--corpora {tmp_path / 'corpora.toml'}: gives balance = 'corpus' and --config {config} " \
                          "gives 'none'; give --balance to choose" in err
    for settings, options in (('balance = "none"\n', []), ('balance = "corpus"\n', ["--balance", "none"])):
        code, _, err = _train_on_file(avemo_main, tmp_path, settings, "--config", config, *options)
        assert code == 2 and "give --balance to choose" not in err and "no_ravdess" in err  # on to reading the data


def test_train_help_shows_the_corpora_table_name(avemo_main, monkeypatch):
    """--help is rendered as console markup: "[[corpora]]" used to come out as "[]"."""
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = avemo_main("train", "--help")
    assert code == 0 and "A TOML (or YAML/JSON) file of [[corpora]] entries" in out


def test_train_help_states_the_training_defaults_as_train_config_has_them():
    """--epochs, --seed, --batch-size, --device and --speaker-norm said "Override ..." without the value they override."""
    import typer

    from avemo.cli import app

    params = {p.name: p for p in typer.main.get_command(app).commands["train"].params}
    defaults = TrainConfig()
    for name, value in (("epochs", defaults.epochs), ("seed", defaults.seed), ("batch_size", defaults.batch_size),
                        ("device", defaults.device), ("speaker_norm", "on" if defaults.speaker_norm else "off")):
        assert params[name].show_default == f"the --config file's, else {value}", name


def test_closed_form_refuses_the_class_balanced_sampler():
    x, y = _separable(d=512)
    model = create_model("whisper_logreg", num_classes=3, combine="mean")
    with pytest.raises(ConfigError, match="corpus_class"):
        fit(model, _data(x, y, specs=model.inputs), None, TrainConfig(class_balance="sampler"), labels=["a", "b", "c"])


@pytest.mark.shared_data
def test_load_corpora_qualifies_speakers_and_splits_by_fold(two_small_corpora):
    from avemo.training import resolve_split
    from avemo.training.corpora import CorpusSpec
    from avemo.training.experiment import load_corpora

    rav, emo = two_small_corpora
    data = load_corpora([CorpusSpec("ravdess", rav), CorpusSpec("emodb", emo)], "shared")
    assert data.speakers == ["emodb:03", "emodb:08", "emodb:09", "ravdess:01", "ravdess:02", "ravdess:08"]
    assert set(data.labels.emotions) == set(SHARED_6)
    assert all(t.emotion in SHARED_6 for t in data.takes)  # calm became neutral; surprised, boredom left out
    tr, va, te, info = resolve_split(data, fold=1)
    assert info["test_speakers"] and all(":" in s for s in info["test_speakers"] + info["val_speakers"])
    sides = [{t.speaker for t in part} for part in (tr, va, te)]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    _, va, _, info = resolve_split(data)  # default: the last speaker of each corpus validates
    assert info["val_speakers"] == ["emodb:09", "ravdess:08"]
    for fold in (1, 2, 3):  # each fold tests, validates on and trains on speakers of both corpora
        parts = resolve_split(data, fold=fold)[:3]
        assert [{corpus_of(t.speaker) for t in part} for part in parts] == [{"emodb", "ravdess"}] * 3, fold


def test_the_default_multi_corpus_plan_cuts_each_corpus_into_the_folds():
    """One plan over the sorted qualified ids used to test all 5 EmoDB speakers in fold 1 (never
    trained on there: a cross-corpus score) and none in folds 2-5."""
    from avemo.training.corpora import corpora_plan

    speakers = [f"emodb:{s}" for s in ("03", "08", "09", "10", "11")] + [f"ravdess:{i:02d}" for i in range(1, 21)]
    plan = corpora_plan(speakers, ["ravdess", "emodb"], name="p", dataset="ravdess+emodb")
    assert len(plan.folds) == 5 and sorted(plan.speakers) == sorted(speakers)
    for fold in plan.folds:
        assert [sum(corpus_of(s) == "emodb" for s in part) for part in (fold.test, fold.val, fold.train)] == [1, 1, 3]
        assert [sum(corpus_of(s) == "ravdess" for s in part) for part in (fold.test, fold.val, fold.train)] == [4, 1, 15]
    two = corpora_plan(speakers[:5] + ["crema_d:1001", "crema_d:1002"], ["emodb", "crema_d"], name="p", dataset="x")
    assert len(two.folds) == 2  # as many as the smaller corpus has speakers; it spares none for validation
    assert all(sum("crema" in s for s in f.test) == 1 and not any("crema" in s for s in f.val) for f in two.folds)
    with pytest.raises(ConfigError, match="corpus crema_d has 1 speaker"):
        corpora_plan(speakers[:5] + ["crema_d:1001"], ["emodb", "crema_d"], name="p", dataset="x")


@pytest.mark.shared_data
def test_load_corpora_refuses_unknown_datasets_and_empty_folders(two_small_corpora, tmp_path):
    from avemo.training.corpora import CorpusSpec
    from avemo.training.experiment import load_corpora

    rav, _ = two_small_corpora
    with pytest.raises(AvemoError, match="emodbx"):
        load_corpora([CorpusSpec("ravdess", rav), CorpusSpec("emodbx", tmp_path)])
    (tmp_path / "empty").mkdir()
    with pytest.raises(AvemoError, match="no labelled emodb files"):
        load_corpora([CorpusSpec("ravdess", rav), CorpusSpec("emodb", tmp_path / "empty")])
    # the error names the entry: two entries may read one folder (it said only "speakers ['99'] have no files")
    with pytest.raises(AvemoError) as bad:
        load_corpora([CorpusSpec("ravdess", rav), CorpusSpec("ravdess", rav, speakers=("99",), name="again")])
    assert str(bad.value) == f"{rav}: corpus again: speakers 99 have no files under the folder"
    with pytest.raises(ConfigError, match="given twice"):
        load_corpora([CorpusSpec("ravdess", rav), CorpusSpec("ravdess", rav)])


def test_two_folder_corpora_with_the_same_speaker_ids_and_file_names_split_as_different_people(tmp_path, make_clip):
    """Speaker "01" of two labelled folders is two people (``a:01``, ``b:01``), and ``01/x.wav`` of each
    two recordings: the leakage check compared the clips under the reader's ids (``folder:01``,
    ``folder:01/x``) and refused a valid split, a:01 training and b:01 validating."""
    import shutil

    from avemo.training import resolve_split
    from avemo.training.corpora import CorpusSpec
    from avemo.training.experiment import load_corpora

    seed = 0
    for corpus in ("a", "b"):
        rows = ["path,emotion,speaker"]
        for speaker in ("01", "02"):
            for name, emotion in (("x.wav", "angry"), ("y.wav", "sad")):
                seed += 1
                target = tmp_path / corpus / speaker / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(make_clip("v.wav", duration=0.3, audio="voice", seed=300 + seed), target)
                rows.append(f"{speaker}/{name},{emotion},{speaker}")
        (tmp_path / corpus / "labels.csv").write_text("\n".join(rows) + "\n")
    data = load_corpora([CorpusSpec("folder", tmp_path / "a", name="a"), CorpusSpec("folder", tmp_path / "b", name="b")])
    train, val, _, info = resolve_split(data, val_speakers=["a:02", "b:01"])
    assert info["val_speakers"] == ["a:02", "b:01"]
    assert sorted({t.speaker for t in train}) == ["a:01", "b:02"] and sorted({t.speaker for t in val}) == ["a:02", "b:01"]
    assert len(train) == len(val) == 4


@pytest.mark.parametrize("value", ["foo", "Corpus", ""])
def test_cli_names_the_balance_option_for_a_value_it_does_not_know(value, tmp_path, avemo_main):
    """It said "train config.balance: 'foo' is not one of [...]": a user who gave no config file was told of one."""
    code, _, err = avemo_main("train", "--root", tmp_path, "--balance", value, "--out", tmp_path / "run")
    assert code == 2 and err.strip() == f"avemo: error: --balance {value!r} is not one of auto, none, corpus, corpus_class"
    assert not (tmp_path / "run").exists()


def test_one_dataset_read_twice_is_refused_when_the_corpora_share_a_speaker(make_ravdess):
    """RAVDESS under two names: actor 02 of both is one person, qualified as two speakers (ravdess:02,
    again:02); a split could train on her and test on her (it was refused, if at all, only when it did,
    as "take ravdess:... is in train and val"). Other speakers of one dataset are two corpora as asked."""
    from avemo.errors import DatasetError
    from avemo.training.corpora import CorpusSpec
    from avemo.training.experiment import load_corpora

    root = make_ravdess(("01", "02", "05"))
    with pytest.raises(DatasetError) as bad:
        load_corpora([CorpusSpec("ravdess", root), CorpusSpec("ravdess", root, name="again", speakers=("02", "05"))])
    assert str(bad.value) == (f"{root}: corpora ravdess and again both read ravdess speakers 02, 05: one person "
                              "under two corpus names, whom a split could train and test on; give each corpus other "
                              "speakers (speakers= in --corpora)")
    data = load_corpora([CorpusSpec("ravdess", root, speakers=("01",)),
                         CorpusSpec("ravdess", root, name="again", speakers=("02", "05"))])
    assert data.speakers == ["again:02", "again:05", "ravdess:01"]


def test_a_corpora_path_not_there_says_it_is_read_against_the_file_s_folder(tmp_path, avemo_main):
    """root=, labels= and media= of a --corpora file are relative to its folder (a labels CSV's rows, to
    root=): a root written relative to the current folder was said as "c/aud: folder folder does not
    exist", the rule not named; now before any corpus is read, in one line."""
    (tmp_path / "aud").mkdir()
    (tmp_path / "c").mkdir()
    corpora = tmp_path / "c" / "corpora.toml"
    corpora.write_text('[[corpora]]\ndataset = "folder"\nroot = "aud"\nname = "a"\n\n'
                       f'[[corpora]]\ndataset = "folder"\nroot = "{tmp_path / "aud"}"\nname = "b"\n')
    code, _, err = avemo_main("train", "--corpora", corpora, "--model", "egemaps_logreg", "--out", tmp_path / "run")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.strip() == (f"avemo: error: {corpora}: corpus a: root= {tmp_path / 'c' / 'aud'} does not exist (a "
                           f"relative path in the file is read against its folder, {tmp_path / 'c'}, not the current "
                           "folder)")


@pytest.mark.shared_data
def test_a_speaker_named_as_a_multi_corpus_run_prints_it_is_told_its_name_in_the_folder(two_small_corpora):
    """A run of two corpora says 'validation speakers emodb:09, ravdess:08'; `avemo evaluate --dataset emodb
    --speakers emodb:09` on the EmoDB folder said only that the speaker has no files."""
    _, emo = two_small_corpora
    with pytest.raises(AvemoError) as bad:
        load_data("emodb", emo, speakers=["emodb:09", "99"])
    assert str(bad.value) == (f"{emo}: speakers 99, emodb:09 have no files under the folder; a corpus's own "
                              "folder names them without the corpus: --speakers 09")
