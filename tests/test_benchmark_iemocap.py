"""IEMOCAP as a benchmark suite (``avemo benchmark iemocap``: papers 002 and 003, label protocols,
--media, the modality check) and per-corpus ``protocol`` / ``media`` in a corpora file, on the
generated IEMOCAP release of test_datasets_iemocap (no IEMOCAP file is in the project)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from avemo.cli import app
from avemo.errors import AvemoError, ConfigError
from avemo.evaluation.suite import load_suite
from avemo.training.corpora import read_corpora_file
from avemo.training.experiment import load_corpora, load_data
from test_datasets_iemocap import SESSION1, _other_session, _write_session

VIDEO_MODELS = ["gao_dialogue", "gao_mha_residual", "cai_fer1", "cai_fer2", "cai_mer1", "cai_mer2"]


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """Sessions 1-5 (session 1 with a split-screen video of its first dialogue, for avemo prepare)."""
    root = tmp_path_factory.mktemp("iemocap_suite") / "IEMOCAP_full_release"
    _write_session(root, 1, SESSION1, videos={"Ses01F_impro01": 18.0})
    for n in range(2, 6):
        _write_session(root, n, _other_session(n))
    return root


@pytest.fixture(scope="module")
def media(release, tmp_path_factory) -> Path:
    from avemo.datasets.iemocap_video import prepare_iemocap

    out = tmp_path_factory.mktemp("iemocap_suite_media") / "media"
    report = prepare_iemocap(release, out)
    assert len(report.cut) == 5  # the labelled utterances of Ses01F_impro01
    return out


def _bench(*args: str) -> object:
    return CliRunner().invoke(app, ["benchmark", *args])


def test_the_builtin_suite_says_the_papers_protocols_and_numbers():
    suite = load_suite("iemocap")
    assert (suite.dataset, suite.protocol, suite.plan) == ("iemocap", "iemocap6", "iemocap_loso")
    assert "sessions 1-4 train and validation, session 5 test" in suite.notes_for([1, 5])[0]
    assert len(suite.notes_for([1, 5])) == 1 and suite.fold_plan().folds[4].test == ("Ses05F", "Ses05M")
    assert suite.papers["gao_dialogue"].startswith("61.7 acc, 61.0 F1 (002 Tab. 2; 6 classes")
    assert suite.papers["cai_mer2"].startswith("70.24 WA (003 Tab. II; 4 classes = iemocap4")
    names = [e.name for e in suite.benchmark_entries()]
    assert set(names) == {"gao_dialogue", "gao_mha_residual", "gao_bilstm_attention",
                          "cai_ser1", "cai_ser2", "cai_fer1", "cai_fer2", "cai_mer1", "cai_mer2"}
    assert "--media DIR" in suite.modalities["video"] and "transcripts" in suite.modalities["text"]
    assert suite.train_config().lr == 3e-4 and suite.train_config().weight_decay == 5e-5  # paper 002, 5.1


def test_a_suite_with_a_protocol_its_dataset_lacks_is_refused(tmp_path):
    text = 'name = "x"\ntitle = "x"\ndataset = "{d}"\nplan = "{p}"\nprotocol = "{proto}"\n{extra}\n' \
           '[[entries]]\nmodels = ["cai_ser1"]\n'
    for fill, reason in (({"d": "ravdess", "p": "ravdess_au", "proto": "iemocap6", "extra": ""}, "it has none"),
                         ({"d": "iemocap", "p": "iemocap_loso", "proto": "iemocap5", "extra": ""}, "iemocap4, iemocap6"),
                         ({"d": "iemocap", "p": "iemocap_loso", "proto": "iemocap4",
                           "extra": '[fold_notes]\n"6" = "no such fold"'}, "folds ['6'] are not in the plan"),
                         ({"d": "iemocap", "p": "iemocap_loso", "proto": "iemocap4",
                           "extra": '[modalities]\nsmell = "a nose"'}, "modalities: unknown smell;")):
        path = tmp_path / "suite.toml"
        path.write_text(text.format(**fill))
        with pytest.raises(ConfigError, match="suite.toml") as err:
            load_suite(path)
        assert reason in str(err.value) and "\n" not in str(err.value)


def test_models_needing_video_without_media_stop_the_command_before_training(release, tmp_path, monkeypatch):
    import avemo.evaluation.benchmark as bench

    monkeypatch.setattr(bench, "run_benchmark", lambda *a, **k: pytest.fail("trained without the video"))
    out = tmp_path / "out"
    result = _bench("iemocap", "--root", str(release), "--out", str(out), "--cache", str(tmp_path / "cache"))
    assert isinstance(result.exception, AvemoError), result.output
    line = str(result.exception)
    assert "\n" not in line and line.startswith(f"the iemocap suite's models {', '.join(VIDEO_MODELS)} need video")
    assert "--media DIR" in line and line.endswith("--models gao_bilstm_attention,cai_ser1,cai_ser2")
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_with_media_the_video_models_can_run(release, media, tmp_path):
    suite = load_suite("iemocap")
    entries = suite.benchmark_entries()
    with_media = suite.load_data(release, media=media)
    assert suite.missing_modalities(entries, with_media) is None
    assert sum("video" in t for t in with_media.takes) == 5 and with_media.labels.name == "iemocap6"
    # text is checked the same way: a release without transcript lines has no text
    bare = tmp_path / "bare"
    for n in range(1, 6):
        _write_session(bare, n, {d: [(*u[:4], None) for u in us] for d, us in _other_session(n).items()})
    text_only = dataclasses.replace(entries[0], model_config={"modalities": ["text"]})
    line = suite.missing_modalities([text_only, entries[2]], suite.load_data(bare))
    assert line == ("the iemocap suite's models gao_dialogue need text, which no take of the data has (text needs "
                    "the utterance transcripts of the release (dialog/transcriptions)); or leave them out: "
                    "--models gao_bilstm_attention")


def test_tiny_benchmark_of_text_and_audio_models_writes_the_report(release, tmp_path):
    """1 fold (paper 002's split), 1 epoch, small text + audio models through a suite file of the
    built-in's shape; the report's rows, paper numbers and protocol lines are those of the run."""
    suite = tmp_path / "tiny.toml"
    audio = '{ n_mels = 16, hidden = 8, lstm_layers = 1, linear_layers = 1 }'
    suite.write_text(f'''name = "tiny"
title = "tiny"
dataset = "iemocap"
protocol = "iemocap6"
plan = "iemocap_loso"
[modalities]
video = "--media DIR"
[fold_notes]
"5" = "paper 002's split."
[papers]
gao_dialogue = "61.7 (002 Tab. 2)"
[[entries]]
models = ["gao_dialogue"]
model_config = {{ modalities = ["text", "audio"], text_hidden = 8, d_model = 16, heads = 2, audio_config = {audio} }}
[[entries]]
models = ["gao_bilstm_attention"]
model_config = {audio}
''')
    out = tmp_path / "out"
    result = _bench(str(suite), "--root", str(release), "--out", str(out), "--cache", str(tmp_path / "cache"),
                    "--folds", "5", "--epochs", "1")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "tiny.json").read_text())
    protocol = report["protocol"]
    assert [f["test_speakers"] for f in protocol["folds"]] == [["Ses05F", "Ses05M"]]
    assert protocol["folds"][0]["val_speakers"] == ["Ses01F", "Ses01M"]
    assert protocol["label_set"] == "iemocap6" and report["labels"] == ["neutral", "happy", "sad", "angry",
                                                                        "excited", "frustrated"]
    assert protocol["takes"] == 14 and protocol["modalities"] == {"audio": 14, "video": 0, "text": 13}
    assert protocol["media"] is None
    assert report["models"]["gao_dialogue"]["inputs"].keys() == {"text", "audio"}
    md = (out / "tiny.md").read_text()
    assert "1 fold, 14 takes of iemocap." in md
    assert "- Classes: iemocap6, 6 (neutral, happy, sad, angry, excited, frustrated)." in md
    assert "- Takes with an audio file 14, with a text 13." in md and "- Fold 5: paper 002's split." in md
    rows = {line.split(" ")[1]: line for line in md.splitlines() if line.startswith("| gao_") and "[confusion]" in line}
    assert set(rows) == {"gao_dialogue", "gao_bilstm_attention"}
    assert rows["gao_dialogue"].endswith("| 61.7 (002 Tab. 2) |") and rows["gao_bilstm_attention"].endswith("|  |")
    for name, m in report["models"].items():  # 2 test utterances: the accuracy is 0, 1/2 or 1, as in the row
        assert m["fold_accuracy"] == [m["mean_accuracy"]] and m["mean_accuracy"] in (0.0, 0.5, 1.0)
        # one fold: the mean alone, no spread ("± 0.00" said it was measured to be nil)
        inputs = "; ".join(f"{k}: {v}" for k, v in m["inputs"].items())
        assert m["std_accuracy"] is None and f"| {inputs} | {100 * m['mean_accuracy']:.2f} |" in rows[name]


def test_the_label_protocol_and_media_come_from_the_command_line(release, media, tmp_path):
    out = tmp_path / "out"
    result = _bench("iemocap", "--root", str(release), "--out", str(out), "--cache", str(tmp_path / "cache"),
                    "--media", str(media), "--protocol", "iemocap4", "--models", "cai_ser1", "--folds", "5",
                    "--epochs", "1")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "iemocap_iemocap4.json").read_text())  # not the suite's own classes: named so
    assert report["labels"] == ["neutral", "happy", "sad", "angry"] and report["protocol"]["media"] == str(media)
    assert report["protocol"]["modalities"]["video"] == 4  # Ses01F_impro01's cuts under iemocap4 (F002 is fru)
    md = (out / "iemocap_iemocap4.md").read_text()
    assert md.startswith("# IEMOCAP: leave-one-session-out CV (papers 002 and 003), iemocap4 labels -- only fold 5 of 5 run\n")  # the suite's title, and the fold that ran
    assert f"- Video: the utterance videos under `{media}` (avemo prepare)." in md
    assert "56.01 WA (003 Tab. II; 4 classes = iemocap4" in md
    for bad, reason in (("iemocap5", "'iemocap5' is not one of speaker, random, iemocap4, iemocap6"),
                        ("iemocap4,iemocap6", "takes one split protocol")):
        refused = _bench("iemocap", "--root", str(release), "--out", str(tmp_path / "x"), "--protocol", bad)
        assert isinstance(refused.exception, AvemoError) and reason in str(refused.exception)
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------- corpora files
def _corpora(tmp_path: Path, *entries: str) -> Path:
    path = tmp_path / "corpora.toml"
    path.write_text("\n".join(f"[[corpora]]\n{e}\n" for e in entries))
    return path


def test_a_corpora_file_gives_each_iemocap_corpus_its_protocol_and_media(release, media, tmp_path):
    # one release read twice, each name with other sessions' speakers (one person under two names is refused)
    six = f'dataset = "iemocap"\nroot = "{release}"\nname = "iemo6"\nprotocol = "iemocap6"\nmedia = "{media}"'
    first = '\nspeakers = ["Ses01F", "Ses01M", "Ses02F", "Ses02M", "Ses03F", "Ses03M"]'
    four = f'dataset = "iemocap"\nroot = "{release}"\nname = "iemo4"\nspeakers = ["Ses04F", "Ses04M", "Ses05F", "Ses05M"]'
    specs = read_corpora_file(_corpora(tmp_path, six + first, four))
    assert (specs[0].protocol, specs[0].media, specs[1].protocol, specs[1].media) == ("iemocap6", media, None, None)
    data = load_corpora(specs, "union_masked")
    space = data.corpora.space
    assert space.sources["iemo6"].name == "iemocap6" and space.sources["iemo4"].name == "iemocap4"
    assert {t.emotion for t in data.takes if t.dataset == "iemo6"} >= {"excited", "frustrated"}
    assert sum("video" in t for t in data.takes if t.dataset == "iemo6") == 5
    assert not any("video" in t for t in data.takes if t.dataset == "iemo4")
    recorded = {c["name"]: c for c in data.corpora.to_dict()["corpora"]}
    assert recorded["iemo6"]["protocol"] == "iemocap6" and recorded["iemo6"]["media"].endswith("/media")
    assert "protocol" not in recorded["iemo4"] and "media" not in recorded["iemo4"]
    # one corpus in a file is read as `avemo train` reads one: with its protocol and media
    from avemo.cli.train import _train_data

    one = _train_data(None, None, _corpora(tmp_path, six), label_space=None, visual_table=None,
                      speakers=None, labels=None)
    assert one.labels.name == "iemocap6" and sum("video" in t for t in one.takes) == 5
    assert len(one.takes) == len(load_data("iemocap", release, protocol="iemocap6").takes)


def test_a_corpora_file_with_bad_keys_is_refused_in_one_line_naming_the_corpus(release, tmp_path):
    cases = (
        (f'dataset = "iemocap"\nroot = "{release}"\nprotocl = "iemocap6"', "corpora entry 1 (iemocap): unknown keys protocl (known"),
        ('dataset = "emodb"\nroot = "x"\nprotocol = "iemocap6"',
         "corpus emodb: protocol 'iemocap6' is not a label protocol of emodb (it has none)"),
        (f'dataset = "iemocap"\nroot = "{release}"\nname = "iemo"\nprotocol = "iemocap7"',
         "corpus iemo: protocol 'iemocap7' is not a label protocol of iemocap (iemocap4, iemocap6)"),
        ('dataset = "ravdess"\nroot = "x"\nmedia = "m"', "corpus ravdess: media (prepared utterance videos) is for "
                                                         "iemocap corpora, not ravdess"),
    )
    for entry, reason in cases:
        path = _corpora(tmp_path, entry)
        with pytest.raises(ConfigError) as err:
            read_corpora_file(path)
        assert str(err.value).startswith(str(path)) and reason in str(err.value) and "\n" not in str(err.value)
    result = CliRunner().invoke(app, ["train", "--dataset", "iemocap", "--root", str(release), "--dataset", "iemocap",
                                      "--root", str(release), "--protocol", "iemocap6", "--out", str(tmp_path / "r")])
    assert isinstance(result.exception, AvemoError) and "give protocol= and media= per iemocap corpus" in \
        str(result.exception)
