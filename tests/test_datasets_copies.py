"""Byte-identical files under different takes: one recording under two speakers (a leak through the
speaker-disjoint folds), under two labels (a labelling conflict), or copied (counted twice)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from avemo.collect import collect_inputs
from avemo.datasets import read_dataset


def labelled_folder(root: Path, make_clip, rows: list[tuple[str, int, str, str]]) -> Path:
    """A folder + labels.csv of ``(path, seed, emotion, speaker)`` rows: the same seed, the same bytes."""
    lines = ["path,emotion,speaker"]
    for name, seed, emotion, speaker in rows:
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(make_clip("v.wav", duration=0.3, audio="voice", seed=seed), target)
        lines.append(f"{name},{emotion},{speaker}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_one_recording_under_two_speakers_is_said_to_break_the_speaker_disjoint_folds(tmp_path, make_clip, caplog):
    root = labelled_folder(tmp_path, make_clip, [("s1/x.wav", 1, "angry", "s1"), ("s2/y.wav", 1, "angry", "s2"),
                                                 ("s2/z.wav", 2, "sad", "s2")])
    with caplog.at_level(logging.WARNING, logger="avemo.datasets"):
        scan = read_dataset("folder", root)
    line = ("byte-identical files s1/x.wav (speaker s1, angry), s2/y.wav (speaker s2, angry): one recording under "
            "speakers s1, s2: speaker-disjoint folds are not speaker-disjoint for it (it can be trained on and tested on)")
    assert scan.warnings == [line] and [r.getMessage() for r in caplog.records] == [line]
    assert len(scan.clips) == 3  # said, not dropped: which copy is right is the user's call
    assert [[c.path.name for c in g.clips] for g in scan.copies] == [["x.wav", "y.wav"]] and scan.copies[0].crosses_speakers


def test_one_recording_with_two_labels_is_a_labelling_conflict(tmp_path, make_clip):
    root = labelled_folder(tmp_path, make_clip, [("a.wav", 1, "angry", "s1"), ("b.wav", 1, "Sad", "s1"),
                                                 ("c.wav", 2, "happy", "s1")])
    assert read_dataset("folder", root).warnings == [
        "byte-identical files a.wav (speaker s1, angry), b.wav (speaker s1, sad): labelled angry and sad: a labelling "
        "conflict"]


def test_a_copied_file_is_said_to_count_twice_and_extract_lists_it_too(tmp_path, make_clip, caplog):
    root = labelled_folder(tmp_path, make_clip, [("a.wav", 3, "calm", "7"), ("copy/a.wav", 3, "calm", "7"),
                                                 ("b.wav", 4, "calm", "7")])
    line = "byte-identical files a.wav (speaker 7, calm), copy/a.wav (speaker 7, calm): copies of one recording, which counts 2 times"
    assert read_dataset("folder", root).warnings == [line]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="avemo.datasets"):
        clips, _, _ = collect_inputs(root, dataset="folder")  # what `avemo extract` lists
    assert len(clips) == 3 and [r.getMessage() for r in caplog.records] == [line]


def test_every_reader_is_checked_and_a_link_is_a_copy(tmp_path, make_ravdess):
    """A RAVDESS file linked under a second actor's name: the name-parsed readers are checked as the
    folder reader is, and two names of one file are one recording."""
    root = tmp_path / "corpus"
    shutil.copytree(make_ravdess(("01", "02")), root)
    source = root / "Actor_01" / "03-01-05-01-01-01-01.wav"
    (root / "Actor_02" / "03-01-05-01-02-01-02.wav").symlink_to(source)
    scan = read_dataset("ravdess", root)
    assert len(scan.copies) == 1 and [c.speaker for c in scan.copies[0].clips] == ["01", "02"]
    assert scan.warnings[0].startswith("byte-identical files Actor_01/03-01-05-01-01-01-01.wav (speaker 01, angry), "
                                       "Actor_02/03-01-05-01-02-01-02.wav (speaker 02, angry): one recording under "
                                       "speakers 01, 02")


def test_distinct_and_empty_files_are_no_copies(tmp_path, make_clip):
    """Empty files (not media: their error comes when they are decoded) are all alike, and are not said."""
    root = labelled_folder(tmp_path, make_clip, [("a.wav", 5, "angry", "s1"), ("b.wav", 6, "angry", "s2")])
    for name in ("e1.wav", "e2.wav"):
        (root / name).write_bytes(b"")
    (root / "labels.csv").write_text("path,emotion,speaker\na.wav,angry,s1\nb.wav,angry,s2\ne1.wav,sad,s1\ne2.wav,sad,s2\n")
    scan = read_dataset("folder", root)
    assert len(scan.clips) == 4 and scan.copies == [] and scan.warnings == []


@pytest.fixture
def leaking_corpus(tmp_path, make_ravdess) -> Path:
    root = tmp_path / "corpus"
    shutil.copytree(make_ravdess(("01", "02")), root)
    shutil.copyfile(root / "Actor_01" / "03-01-05-01-01-01-01.wav", root / "Actor_02" / "03-01-05-01-02-01-02.wav")
    return root


def test_benchmark_refuses_a_recording_under_two_speakers_before_any_work(leaking_corpus, tmp_path, avemo_main):
    suite = tmp_path / "mine.toml"
    suite.write_text('name = "mine"\ntitle = "t"\ndataset = "ravdess"\nplan = "ravdess"\n'
                     '[[entries]]\nmodels = ["mfcc_cnn1d"]\n')
    code, _, err = avemo_main("benchmark", suite, "--root", leaking_corpus, "--out", tmp_path / "report",
                              "--cache", tmp_path / "cache")
    assert code == 2, err
    assert (f"avemo: error: {leaking_corpus}: 1 recording(s) are byte-identical files under two speakers (e.g. "
            "Actor_01/03-01-05-01-01-01-01.wav (speaker 01) and Actor_02/03-01-05-01-02-01-02.wav (speaker 02)): the "
            "speaker-disjoint folds would not be speaker-disjoint for them; remove the copies, or give --allow-copies "
            "to go on (the report says so)") in " ".join(err.split())
    assert not (tmp_path / "report").exists() and not (tmp_path / "cache").exists()


def test_a_recording_in_two_corpora_of_one_run_is_said_under_both_qualified_speakers(tmp_path, make_ravdess, caplog):
    """A RAVDESS file copied into the user's folder under their speaker "01" (another person, another
    corpus): each corpus alone has no copy, so only a check across the corpora of the run sees that
    the speaker-disjoint split can train on the recording and test on it."""
    from avemo.training.corpora import CorpusSpec
    from avemo.training.experiment import load_corpora

    ravdess = make_ravdess(("01", "02"))
    mine = tmp_path / "mine"
    mine.mkdir()
    for name, source in (("a", "Actor_01/03-01-05-01-01-01-01"), ("b", "Actor_02/03-01-03-01-01-01-02"),
                         ("c", "Actor_02/03-01-03-01-01-02-02")):
        shutil.copyfile(ravdess / f"{source}.wav", mine / f"{name}.wav")
    (mine / "labels.csv").write_text("path,emotion,speaker\na.wav,Angry,01\nb.wav,joy,01\nc.wav,ang,02\n")
    with caplog.at_level(logging.WARNING, logger="avemo"):
        data = load_corpora([CorpusSpec("ravdess", ravdess), CorpusSpec("folder", mine, name="mine")])
    assert sorted(tuple(sorted(g.speakers)) for g in data.copies if g.crosses_speakers) == [
        ("mine:01", "ravdess:01"), ("mine:01", "ravdess:02"), ("mine:02", "ravdess:02")]
    said = sorted(r.getMessage() for r in caplog.records if r.name == "avemo.training.experiment")
    assert len(said) == 3 and all(line.startswith("byte-identical files ") for line in said)
    first = next(line for line in said if "mine/a.wav" in line)
    assert "mine/a.wav (speaker mine:01, angry)" in first and "Actor_01/03-01-05-01-01-01-01.wav (speaker ravdess:01, " \
        "angry)" in first and first.endswith("speaker-disjoint folds are not speaker-disjoint for it (it can be trained "
                                             "on and tested on)")
    assert sum("labelled " in line and "a labelling conflict" in line for line in said) == 1  # c.wav: ang, happy


def test_one_folder_read_as_two_corpora_is_all_copies_said_in_a_few_lines(tmp_path, make_clip, caplog):
    """The same folder under two names: every take id is the same in both, and two takes of one id
    in two corpora are two takes (the check compared the bare ids and found no copy)."""
    from avemo.training.corpora import CorpusSpec
    from avemo.training.experiment import corpora_copies, load_corpora

    root = labelled_folder(tmp_path, make_clip, [(f"{i}.wav", 10 + i, ("angry", "sad")[i % 2], f"s{i % 3}")
                                                 for i in range(14)])
    with caplog.at_level(logging.WARNING, logger="avemo"):
        data = load_corpora([CorpusSpec("folder", root, name="a"), CorpusSpec("folder", root, name="b")])
    assert len(data.copies) == 14 and all(len({c.dataset for c in g.clips}) == 2 for g in data.copies)
    said = [r.getMessage() for r in caplog.records if r.name == "avemo.training.experiment"]
    assert len(said) == 11 and said[-1].startswith("4 more recording(s) are byte-identical files in two corpora")
    assert corpora_copies([t for t in data.takes if t.dataset == "a"], root) == []  # within one corpus: its reader's


def test_benchmark_refuses_a_test_corpus_holding_copies_of_the_suites_recordings(tmp_path, make_ravdess, make_clip,
                                                                                 avemo_main):
    """A folder of the user's speakers with one RAVDESS file copied in, given as --test-corpus of a RAVDESS
    suite: the folds train on that recording, so it is not out of domain (it was scored as if it were)."""
    ravdess = make_ravdess(("01", "02"))
    mine = labelled_folder(tmp_path / "mine", make_clip, [("b.wav", 71, "sad", "u1"), ("c.wav", 72, "angry", "u2")])
    shutil.copyfile(ravdess / "Actor_02" / "03-01-03-01-01-01-02.wav", mine / "a.wav")
    with (mine / "labels.csv").open("a") as f:
        f.write("a.wav,happy,u1\n")
    suite = tmp_path / "mine.toml"
    suite.write_text('name = "mine"\ntitle = "t"\ndataset = "ravdess"\nplan = "ravdess"\n'
                     '[[entries]]\nmodels = ["mfcc_cnn1d"]\n')
    code, _, err = avemo_main("benchmark", suite, "--root", ravdess, "--test-corpus", f"folder={mine}",
                              "--out", tmp_path / "report", "--cache", tmp_path / "cache")
    assert code == 2, err
    assert (f"avemo: error: --test-corpus 'folder={mine}': 1 take(s) are byte-identical files of the suite's corpus "
            f"(e.g. {mine / 'a.wav'}), so the folds train on them: not out of domain; remove the copies, or give "
            "--allow-copies to go on") in " ".join(err.split())
    assert not (tmp_path / "report").exists() and not (tmp_path / "cache").exists()


def _train(avemo_main, tmp_path, *corpora, extra=()):
    """``avemo train`` of a cheap model on ``corpora`` (``(dataset, root)`` pairs), one epoch."""
    pairs = [a for dataset, root in corpora for a in ("--dataset", dataset, "--root", root)]
    return avemo_main("train", *pairs, "--model", "egemaps_mlp", "--epochs", "1", "-j", "1",
                      "--out", tmp_path / "run", "--cache", tmp_path / "cache", *extra)


def test_train_refuses_a_recording_under_two_speakers_before_any_work_unless_allowed(leaking_corpus, tmp_path,
                                                                                    avemo_main, caplog):
    """The same recording under speakers 01 and 02: a split by speakers can train on it and validate on it
    (early stopping and the best epoch see training data). `train` only warned; it now refuses as
    `benchmark` does, and --allow-copies goes on with a warning line."""
    code, _, err = _train(avemo_main, tmp_path, ("ravdess", leaking_corpus))
    assert code == 2, err
    assert (f"avemo: error: {leaking_corpus}: 1 recording(s) are byte-identical files under two speakers (e.g. "
            "Actor_01/03-01-05-01-01-01-01.wav (speaker 01) and Actor_02/03-01-05-01-02-01-02.wav (speaker 02)): the "
            "split by speakers would not be speaker-disjoint for them") in " ".join(err.split())
    assert "give --allow-copies to go on" in " ".join(err.split())
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()
    with caplog.at_level(logging.WARNING, logger="avemo"):
        code, _, err = _train(avemo_main, tmp_path, ("ravdess", leaking_corpus),
                              extra=["--allow-copies", "--val-speakers", "02"])
    assert code == 0, err
    assert any(r.getMessage().endswith("(--allow-copies: going on)") for r in caplog.records)
    assert (tmp_path / "run" / "checkpoint.json").exists()


def test_train_refuses_a_recording_in_two_corpora_under_two_speakers(tmp_path, make_ravdess, make_clip, avemo_main):
    """A RAVDESS file copied into the user's folder: each corpus alone has no copy; the run has one."""
    ravdess = make_ravdess(("01", "02"))
    mine = labelled_folder(tmp_path / "mine", make_clip, [("b.wav", 81, "sad", "u1"), ("c.wav", 82, "angry", "u2")])
    shutil.copyfile(ravdess / "Actor_02" / "03-01-03-01-01-01-02.wav", mine / "a.wav")
    with (mine / "labels.csv").open("a") as f:
        f.write("a.wav,happy,u1\n")
    code, _, err = _train(avemo_main, tmp_path, ("ravdess", ravdess), ("folder", mine))
    assert code == 2, err
    said = " ".join(err.split())
    assert "1 recording(s) are byte-identical files under two speakers" in said and "(speaker folder:u1)" in said \
        and "(speaker ravdess:02)" in said, said
    assert not (tmp_path / "run").exists()


def test_train_goes_on_with_copies_under_one_speaker_and_with_the_other_speaker_not_read(tmp_path, make_ravdess,
                                                                                        avemo_main, caplog):
    """Two takes of one speaker holding one recording (RAVDESS Actor_07 has such a pair) are not a leak:
    said, and trained on. Nor is a copy whose other speaker the run does not read (--speakers)."""
    root = tmp_path / "corpus"
    shutil.copytree(make_ravdess(("01", "02", "05")), root)
    shutil.copyfile(root / "Actor_01" / "03-01-05-01-01-01-01.wav", root / "Actor_01" / "03-01-05-01-02-01-01.wav")
    with caplog.at_level(logging.WARNING, logger="avemo"):
        code, _, err = _train(avemo_main, tmp_path, ("ravdess", root), extra=["--val-speakers", "05"])
    assert code == 0, err
    assert any(r.getMessage().endswith("copies of one recording, which counts 2 times") for r in caplog.records)
    shutil.copyfile(root / "Actor_01" / "03-01-05-01-01-01-01.wav", root / "Actor_02" / "03-01-05-01-02-01-02.wav")
    code, _, err = _train(avemo_main, tmp_path, ("ravdess", root), extra=["--speakers", "02,05", "--overwrite",
                                                                         "--val-speakers", "05"])
    assert code == 0, err


def test_copies_of_corpora_that_share_only_the_filesystem_root_are_named_by_their_whole_paths(tmp_path, make_clip):
    """Two corpora in two trees (/work/... and /tmp/...): the run's folder is "/", and the files shown
    relative to it read as relative to the working folder ("work/shared/..."); the error began "/: "."""
    from avemo.datasets.copies import copy_warnings, find_copies
    from avemo.datasets.labels import label_set_for
    from avemo.datasets.pairing import pair_takes
    from avemo.datasets.records import Clip
    from avemo.errors import DatasetError
    from avemo.training.experiment import DataBundle, refuse_shared_copies

    source = make_clip("v.wav", duration=0.3, audio="voice", seed=91)
    copy = tmp_path / "copy.wav"
    shutil.copyfile(source, copy)
    clips = [Clip(path=p, dataset="folder", emotion="angry", speaker=s, take=t, modalities=("audio",))
             for p, s, t in ((source, "a:1", "x"), (copy, "b:2", "y"))]
    groups = find_copies(clips)
    root = Path(source.anchor)
    assert str(source) in copy_warnings(groups, root)[0] and str(copy) in copy_warnings(groups, root)[0]
    data = DataBundle("a+b", root, list(pair_takes(clips).values()), label_set_for("folder", ["angry"]),
                      copies=groups)
    with pytest.raises(DatasetError) as refused:
        refuse_shared_copies(data)
    assert str(refused.value).startswith("1 recording(s) are byte-identical files under two speakers (e.g. "
                                         f"{source} (speaker a:1) and {copy} (speaker b:2))")


def test_a_copy_of_a_speaker_not_read_is_not_said(tmp_path, make_ravdess, caplog):
    """`avemo evaluate --speakers 11,12` on RAVDESS warned of the Actor_07 pair: the copies are looked
    for among the clips of the speakers read."""
    from avemo.training import load_data

    root = tmp_path / "corpus"
    shutil.copytree(make_ravdess(("01", "02")), root)
    shutil.copyfile(root / "Actor_02" / "03-01-05-01-01-01-02.wav", root / "Actor_02" / "03-01-05-01-02-01-02.wav")
    with caplog.at_level(logging.WARNING, logger="avemo"):
        data = load_data("ravdess", root, speakers=["01"])
    assert data.copies == [] and not caplog.records
    with caplog.at_level(logging.WARNING, logger="avemo"):
        data = load_data("ravdess", root, speakers=["01", "02"])
    assert [c.speaker for c in data.copies[0].clips] == ["02", "02"] and len(caplog.records) == 1
