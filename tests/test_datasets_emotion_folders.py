"""A folder of one subfolder per emotion, read by ``--dataset folder`` when it has no labels CSV."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avemo.datasets import read_dataset, read_folder
from avemo.errors import ConfigError, DatasetError


def make_files(root: Path, names: list[str]) -> Path:
    """Empty files (the reader reads names only) at ``names`` under ``root``."""
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    return root


def labels(scan, root: Path) -> dict[str, tuple]:
    return {c.path.relative_to(root).as_posix(): (c.emotion, c.speaker, c.take, c.modalities) for c in scan}


def reasons(scan, root: Path) -> dict[str, str]:
    return {s.path.relative_to(root).as_posix(): s.reason for s in scan.skipped}


def test_emotion_then_speaker_folders(tmp_path):
    make_files(tmp_path, ["Anger/anna/1.wav", "Anger/bob/2.WAV", "fear/anna/3.mp4", "neutral/bob/4.flac"])
    scan = read_dataset("folder", tmp_path)
    assert labels(scan, tmp_path) == {
        "Anger/anna/1.wav": ("angry", "anna", "Anger/anna/1", ("audio",)),
        "Anger/bob/2.WAV": ("angry", "bob", "Anger/bob/2", ("audio",)),
        "fear/anna/3.mp4": ("fearful", "anna", "fear/anna/3", ("audio", "video")),
        "neutral/bob/4.flac": ("neutral", "bob", "neutral/bob/4", ("audio",)),
    }
    assert not scan.skipped and scan.speakers == ("anna", "bob")


def test_speaker_then_emotion_folders(tmp_path):
    make_files(tmp_path, ["Actor_01/happy/a.wav", "Actor_01/SAD/b.wav", "Actor_02/happiness/c.wav"])
    scan = read_folder(tmp_path)
    assert labels(scan, tmp_path) == {
        "Actor_01/SAD/b.wav": ("sad", "Actor_01", "Actor_01/SAD/b", ("audio",)),
        "Actor_01/happy/a.wav": ("happy", "Actor_01", "Actor_01/happy/a", ("audio",)),
        "Actor_02/happiness/c.wav": ("happy", "Actor_02", "Actor_02/happiness/c", ("audio",)),
    }
    assert not scan.warnings


def test_emotion_folders_without_speakers_say_what_to_give(tmp_path):
    """Files straight in emotion folders name no speaker: never guessed (one speaker per file, or one
    for the whole folder, would make the speaker-disjoint folds meaningless)."""
    make_files(tmp_path, ["angry/03a01Wa.wav", "happy/03a01Fa.wav", "happy/08a01Fd.wav", "sad/10a02Ta.wav"])
    with pytest.raises(DatasetError) as info:
        read_folder(tmp_path)
    assert str(info.value) == (
        f"{tmp_path}: no labels CSV, and the emotion folders (angry, happy, sad) name no speakers: put the files in "
        "<emotion>/<speaker>/ or <speaker>/<emotion>/ folders, give a speaker pattern (avemo's --speaker-pattern "
        "REGEX, speaker_pattern= in a --corpora or --test-corpus file entry or in Python: one group over the file "
        "name, e.g. '^(\\d+)_'), or write a labels.csv (columns path, emotion, speaker)")
    make_files(tmp_path, ["sad/notes.wav"])
    scan = read_folder(tmp_path, speaker_pattern=r"^(\d\d)")
    assert {k: v[:2] for k, v in labels(scan, tmp_path).items()} == {
        "angry/03a01Wa.wav": ("angry", "03"), "happy/03a01Fa.wav": ("happy", "03"),
        "happy/08a01Fd.wav": ("happy", "08"), "sad/10a02Ta.wav": ("sad", "10")}
    assert reasons(scan, tmp_path) == {
        "sad/notes.wav": "the speaker pattern '^(\\\\d\\\\d)' finds no speaker in the file name"}


def test_tess_folders_end_in_their_emotion(tmp_path):
    """TESS's folders are the speaker's code and the emotion (``OAF_angry``, ``YAF_pleasant_surprised``)."""
    make_files(tmp_path, ["OAF_angry/OAF_back_angry.wav", "OAF_Pleasant_surprise/OAF_back_ps.wav",
                          "YAF_fear/YAF_bar_fear.wav"])
    scan = read_folder(tmp_path, speaker_pattern="^([A-Z]+)_")
    assert {k: v[:2] for k, v in labels(scan, tmp_path).items()} == {
        "OAF_angry/OAF_back_angry.wav": ("angry", "OAF"), "OAF_Pleasant_surprise/OAF_back_ps.wav": ("surprised", "OAF"),
        "YAF_fear/YAF_bar_fear.wav": ("fearful", "YAF")}


def test_a_speaker_pattern_names_the_speakers_of_any_layout(tmp_path):
    make_files(tmp_path, ["angry/take1/s1_a.wav", "sad/take2/s2_b.wav"])
    scan = read_folder(tmp_path, speaker_pattern="^(s\\d)_")
    assert {k: v[:2] for k, v in labels(scan, tmp_path).items()} == {
        "angry/take1/s1_a.wav": ("angry", "s1"), "sad/take2/s2_b.wav": ("sad", "s2")}


def test_files_outside_the_layout_are_skipped_with_the_reason(tmp_path):
    make_files(tmp_path, ["angry/s1/a.wav", "happy/s1/b.wav", "sad/s2/c.wav", "angry/s2/d.wav",
                          "top.wav", "angry/e.wav", "angry/s1/deeper/f.wav", "contempt/s1/g.wav",
                          "angry/happy/h.wav", "s3/sad/i.wav", "angry/s1/notes.txt"])
    scan = read_folder(tmp_path, emotions=("angry", "happy"))
    assert sorted(labels(scan, tmp_path)) == ["angry/s1/a.wav", "angry/s2/d.wav", "happy/s1/b.wav"]
    layout = "<emotion>/<speaker>/FILE"
    assert reasons(scan, tmp_path) == {
        "angry/e.wav": f"not in the folder's layout {layout} (1 folder deep)",
        "angry/happy/h.wav": "folders 'angry' and 'happy' both name an emotion: which one is its emotion is not clear",
        "angry/s1/deeper/f.wav": f"not in the folder's layout {layout} (3 folders deep)",
        "contempt/s1/g.wav": f"folder 'contempt' is no emotion (layout {layout}); a labels CSV gives emotions of "
                             "your own",
        "s3/sad/i.wav": f"in the layout <speaker>/<emotion>/FILE, the folder's is {layout} (one layout for all "
                        "files, or a labels CSV)",
        "sad/s2/c.wav": "emotion 'sad' is not one of angry, happy",
        "top.wav": f"not in the folder's layout {layout} (0 folders deep)",
    }
    with pytest.raises(DatasetError, match="^.*: not in the folder's layout"):
        read_folder(tmp_path, strict=True)


def test_a_folder_with_nothing_usable_is_one_error(tmp_path):
    make_files(tmp_path, ["a/angry/1.wav", "angry/b/2.wav"])  # as many files in one layout as in the other
    with pytest.raises(DatasetError) as info:
        read_folder(tmp_path)
    assert str(info.value) == (f"{tmp_path}: as many files are in <emotion>/<speaker>/ folders as in "
                               "<speaker>/<emotion>/ ones (1 each): which level names the emotion is not clear; use "
                               "one layout or write a labels.csv (columns path, emotion, speaker)")
    other = make_files(tmp_path / "other", ["angry/s1/1.wav", "sad/s2/2.wav"])
    with pytest.raises(DatasetError) as info:
        read_folder(other, emotions=("happy",))
    assert str(info.value) == (f"{other}: no usable file in the folder's layout <emotion>/<speaker>/FILE: 2 skipped, "
                               "e.g. angry/s1/1.wav (emotion 'angry' is not one of happy)")
    deep = make_files(tmp_path / "deep", ["s1/angry/session1/1.wav", "s2/sad/session1/2.wav"])
    with pytest.raises(DatasetError) as info:
        read_folder(deep)
    assert str(info.value) == (f"{deep}: the files under emotion folders are 3 folders deep; the layouts read are "
                               "<emotion>/<speaker>/FILE, <speaker>/<emotion>/FILE, or <emotion>/FILE with a speaker "
                               "pattern; else write a labels.csv (columns path, emotion, speaker)")


def test_one_speaker_folder_is_warned_of(tmp_path):
    """A download that wraps the corpus in one folder (``TESS data/OAF_angry/``) reads as one speaker."""
    make_files(tmp_path, ["TESS data/OAF_angry/a.wav", "TESS data/OAF_sad/b.wav"])
    scan = read_folder(tmp_path)
    assert scan.speakers == ("TESS data",)
    assert scan.warnings == [f"{tmp_path}: every file is under one speaker folder, TESS data: if it is no speaker "
                             "(a folder the corpus came in), read that folder instead"]


def test_a_labels_csv_wins_and_a_folder_with_neither_is_refused(tmp_path):
    make_files(tmp_path, ["angry/s1/a.wav", "sad/s2/b.wav"])
    (tmp_path / "labels.csv").write_text("path,emotion,speaker\nangry/s1/a.wav,happy,x\n")
    scan = read_folder(tmp_path)
    assert labels(scan, tmp_path) == {"angry/s1/a.wav": ("happy", "x", "angry/s1/a", ("audio",))}
    assert reasons(scan, tmp_path) == {"sad/s2/b.wav": "not listed in labels.csv"}
    with pytest.raises(DatasetError) as info:
        read_folder(tmp_path, speaker_pattern="(s)")
    assert str(info.value) == (f"{tmp_path / 'labels.csv'}: a speaker pattern is for a folder without labels CSV; "
                               "labels.csv's speaker column names the speakers")
    plain = make_files(tmp_path / "plain", ["clips/a.wav"])
    with pytest.raises(DatasetError) as info:
        read_folder(plain)
    assert str(info.value) == (f"{plain}: no labels CSV: the folder has no labels.csv and no other labels CSV was "
                               "given (avemo's --labels, a --corpora or --test-corpus file entry's labels=, or "
                               "labels_csv= in Python), and no emotion folders (<emotion>/<speaker>/FILE, "
                               "<speaker>/<emotion>/FILE, or "
                               "<emotion>/FILE with a speaker pattern)")


@pytest.mark.parametrize(("pattern", "reason"), [
    ("(", "speaker pattern '(' is not a regular expression (missing ), unterminated subpattern at position 0)"),
    ("^s", "speaker pattern '^s' has 0 groups; it needs one, around the speaker id in the file name (e.g. '^(\\d+)_')"),
    ("(a)(b)", "speaker pattern '(a)(b)' has 2 groups; it needs one, around the speaker id in the file name "
               "(e.g. '^(\\d+)_')"),
])
def test_a_speaker_pattern_that_cannot_work_is_one_line(tmp_path, pattern, reason):
    make_files(tmp_path, ["angry/a.wav"])
    with pytest.raises(DatasetError) as info:
        read_folder(tmp_path, speaker_pattern=pattern)
    assert str(info.value) == reason


def test_a_speaker_pattern_is_for_folder_datasets_only(tmp_path, avemo_main):
    from avemo.training.corpora import read_corpora_file

    with pytest.raises(DatasetError) as info:
        read_dataset("emodb", tmp_path, speaker_pattern="(..)")
    assert str(info.value) == ("a speaker pattern (avemo's --speaker-pattern, or speaker_pattern= in Python) is for the "
                               "folder dataset; emodb reads its speakers from its own files")
    path = tmp_path / "corpora.toml"
    path.write_text("[[corpora]]\ndataset = \"folder\"\nroot = \"mine\"\nspeaker_pattern = '^(\\d\\d)'\n\n"
                    "[[corpora]]\ndataset = \"emodb\"\nroot = \"e\"\nspeaker_pattern = '^(\\d\\d)'\n")
    with pytest.raises(ConfigError) as bad:
        read_corpora_file(path)
    assert str(bad.value) == (f"{path}: corpus emodb: speaker_pattern is for folder corpora; emodb reads its speakers "
                              "from its own files")
    path.write_text(path.read_text().split("\n\n")[0])
    assert [s.speaker_pattern for s in read_corpora_file(path)] == ["^(\\d\\d)"]
    code, _, err = avemo_main("train", "-d", "folder", "-r", tmp_path, "-d", "emodb", "-r", tmp_path,
                              "--speaker-pattern", "(..)", "--out", tmp_path / "run")
    assert code == 2 and err.strip() == ("avemo: error: --speaker-pattern reads one corpus; with several corpora, give "
                                         "speaker_pattern= per corpus in a --corpora file")


def test_extract_reads_emotion_folders_with_a_speaker_pattern(tmp_path):
    from avemo.collect import collect_inputs

    make_files(tmp_path, ["angry/s1_a.wav", "sad/s2_b.wav"])
    clips, skipped, _ = collect_inputs(tmp_path, speaker_pattern="^(s\\d)_")  # the pattern says: a folder dataset
    assert [(c.dataset, c.emotion, c.speaker) for c in clips] == [("folder", "angry", "s1"), ("folder", "sad", "s2")]
    assert not skipped


def test_another_dataset_read_from_emotion_folders_says_to_read_them_as_a_folder(tmp_path):
    """``avemo train --root DIR`` reads RAVDESS by default: on emotion folders it said only that no file
    has a RAVDESS name."""
    from avemo.training import load_data

    make_files(tmp_path, ["angry/clip1.wav", "sad/clip2.wav"])
    with pytest.raises(DatasetError) as info:
        load_data("ravdess", tmp_path)
    assert str(info.value) == (f"{tmp_path}: no labelled ravdess files found: 2 files skipped, e.g. clip1.wav (not a "
                               "RAVDESS name: expected 7 two-digit fields MM-VV-EE-II-SS-RR-AA); its folders are named "
                               "after emotions: read the folder as dataset folder")


@pytest.fixture(scope="module")
def emotion_corpus(tmp_path_factory):
    """A generated corpus of synthetic voices in ``<speaker>/<emotion>/`` folders: 4 speakers, 2 emotions,
    2 clips each (the second emotion a higher voice)."""
    from avemo.media.synth import write_clip

    root = tmp_path_factory.mktemp("emotion_folders")
    for s in range(4):
        for e, emotion in enumerate(("Neutral", "angry")):
            for k in range(2):
                write_clip(root / f"spk{s}" / emotion / f"{s}_{k}.wav", duration=0.6, audio="voice",
                           seed=s * 10 + e * 2 + k, pitch=120.0 + 100.0 * e)
    return root


def test_train_evaluate_extract_and_info_on_emotion_folders(emotion_corpus, tmp_path, avemo_main):
    cache_dir = tmp_path / "cache"
    out = tmp_path / "run"
    code, _, err = avemo_main("train", "--dataset", "folder", "--root", emotion_corpus, "--model", "egemaps_logreg",
                              "--val-speakers", "spk3", "--out", out, "--cache", cache_dir)
    assert code == 0, err
    meta = json.loads((out / "checkpoint.json").read_text())
    assert meta["labels"]["emotions"] == ["neutral", "angry"]
    assert meta["data"]["speakers"]["train"] == ["spk0", "spk1", "spk2"]
    assert meta["data"]["speakers"]["val"] == ["spk3"]
    code, stdout, err = avemo_main("evaluate", "--checkpoint", out, "--dataset", "folder", "--root", emotion_corpus,
                                   "--speakers", "spk3", "--cache", cache_dir)
    assert code == 0 and "4 takes: accuracy" in stdout, err
    summary = tmp_path / "summary.json"
    code, _, err = avemo_main("extract", "--dataset", "folder", "--root", emotion_corpus, "-f", "egemaps",
                              "--cache", cache_dir, "--summary", summary)
    assert code == 0 and json.loads(summary.read_text())["skipped"] == [], err
    # one speaker's folder: its files sit straight in emotion folders, which name no speaker; it may be no dataset
    code, stdout, err = avemo_main("info", emotion_corpus / "spk1", "--json", "--no-faces")
    assert code == 0 and len(json.loads(stdout)) == 4, err
    assert err.startswith(f"avemo: warning: {emotion_corpus / 'spk1'}: no labels CSV, and the emotion folders")
    code, stdout, err = avemo_main("info", emotion_corpus / "spk1", "--json", "--no-faces", "--speaker-pattern", "^(")
    assert code == 2 and err.strip() == "avemo: error: speaker pattern '^(' is not a regular expression (missing ), " \
                                        "unterminated subpattern at position 1)"
    code, stdout, err = avemo_main("info", emotion_corpus, "--json", "--no-faces")
    assert code == 0, err
    described = {Path(r["path"]).relative_to(emotion_corpus).as_posix(): r["labels"] for r in json.loads(stdout)}
    assert described["spk1/angry/1_0.wav"] == {"layout": "<speaker>/<emotion>/FILE", "emotion": "angry",
                                               "speaker": "spk1", "take": "spk1/angry/1_0", "modalities": ["audio"],
                                               "text": None}
    assert len(described) == 16


@pytest.fixture(scope="module")
def pattern_corpus(tmp_path_factory):
    """A generated corpus of synthetic voices straight in emotion folders, the speaker in the file name
    (``angry/s2_1.wav``: speaker ``s2`` by the pattern ``^(s\\d)_``): 4 speakers, 2 emotions, 2 clips each,
    none byte-identical to a file of ``emotion_corpus``."""
    from avemo.media.synth import write_clip

    root = tmp_path_factory.mktemp("pattern_corpus")
    for s in range(4):
        for e, emotion in enumerate(("neutral", "angry")):
            for k in range(2):
                write_clip(root / emotion / f"s{s}_{k}.wav", duration=0.6, audio="voice",
                           seed=100 + s * 10 + e * 2 + k, pitch=130.0 + 100.0 * e)
    return root


@pytest.fixture(scope="module")
def folder_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


PATTERN = r"^(s\d)_"
SAID_PATTERN = ("speakers read with the checkpoint's speaker pattern '^(s\\d)_', as its training folder was "
                "(--speaker-pattern REGEX: another; '' for none)")


def test_evaluate_reads_a_folder_with_the_speaker_pattern_the_checkpoint_trained_with(pattern_corpus, folder_cache,
                                                                                      tmp_path, avemo_main):
    """A checkpoint trained on <emotion>/FILE with --speaker-pattern did not record it: `avemo evaluate` on the
    same folder was refused (its emotion folders name no speakers) unless told the pattern again."""
    out = tmp_path / "run"
    code, _, err = avemo_main("train", "-d", "folder", "-r", pattern_corpus, "--speaker-pattern", PATTERN,
                              "--model", "egemaps_logreg", "--val-speakers", "s3", "--out", out, "--cache", folder_cache)
    assert code == 0, err
    data = json.loads((out / "checkpoint.json").read_text())["data"]
    assert data["speaker_pattern"] == PATTERN and "labels_csv" not in data
    evaluate = ("evaluate", "-c", out, "-r", pattern_corpus, "--cache", folder_cache)
    code, stdout, err = avemo_main(*evaluate, "--speakers", "s3")
    assert code == 0 and "4 takes: accuracy" in stdout, err
    assert err.splitlines()[0] == SAID_PATTERN
    code, stdout, err = avemo_main(*evaluate, "--speaker-pattern", r"^s(\d)_", "--speakers", "3")  # given: it wins
    assert code == 0 and "4 takes: accuracy" in stdout and SAID_PATTERN not in err, err
    code, _, err = avemo_main(*evaluate, "--speaker-pattern", "")  # none: the folders' speakers
    assert code == 2 and "the emotion folders (angry, neutral) name no speakers" in err, err
    meta = json.loads((out / "checkpoint.json").read_text())
    del meta["data"]["speaker_pattern"]  # a checkpoint of an older avemo: loads, and is told the pattern
    (out / "checkpoint.json").write_text(json.dumps(meta))
    code, stdout, err = avemo_main(*evaluate, "--speaker-pattern", PATTERN, "--speakers", "s3")
    assert code == 0 and "4 takes: accuracy" in stdout and SAID_PATTERN not in err, err


def test_a_checkpoint_records_a_labels_csv_other_than_the_folders_own(pattern_corpus, folder_cache, tmp_path,
                                                                       avemo_main):
    from avemo.training.corpora import recorded_reading

    assert recorded_reading(pattern_corpus, pattern_corpus / "labels.csv", None) == {}  # the default: not recorded
    assert recorded_reading(pattern_corpus, pattern_corpus / "lists" / "a.csv", PATTERN) == {
        "labels_csv": "lists/a.csv", "speaker_pattern": PATTERN}
    split = tmp_path / "split.csv"
    split.write_text("path,emotion,speaker\n" + "".join(f"{e}/s{s}_{k}.wav,{e},s{s}\n" for e in ("neutral", "angry")
                                                        for s in range(4) for k in range(2)))
    out = tmp_path / "run"
    code, _, err = avemo_main("train", "-d", "folder", "-r", pattern_corpus, "--labels", split, "--model",
                              "egemaps_logreg", "--val-speakers", "s3", "--out", out, "--cache", folder_cache)
    assert code == 0, err
    data = json.loads((out / "checkpoint.json").read_text())["data"]
    assert data["labels_csv"] == f"{tmp_path.name}/split.csv" and "speaker_pattern" not in data
    code, _, err = avemo_main("evaluate", "-c", out, "-r", pattern_corpus, "--cache", folder_cache)
    assert code == 2 and err.splitlines()[0] == (f"the checkpoint's training folder was labelled by {tmp_path.name}/"
                                                 "split.csv: give --labels FILE to read a labels CSV other than "
                                                 "labels.csv here"), err


def test_evaluate_a_checkpoint_of_several_corpora_reads_a_folder_corpus_as_it_trained(
        pattern_corpus, emotion_corpus, folder_cache, tmp_path, avemo_main):
    corpora = tmp_path / "corpora.toml"
    corpora.write_text(f'[[corpora]]\ndataset = "folder"\nroot = "{pattern_corpus}"\nname = "pat"\n'
                       f"speaker_pattern = '{PATTERN}'\n\n"
                       f'[[corpora]]\ndataset = "folder"\nroot = "{emotion_corpus}"\nname = "spk"\n')
    out = tmp_path / "run"
    code, _, err = avemo_main("train", "--corpora", corpora, "--model", "egemaps_logreg", "--out", out,
                              "--cache", folder_cache)
    assert code == 0, err
    recorded = json.loads((out / "checkpoint.json").read_text())["data"]["corpora"]
    assert [c.get("speaker_pattern") for c in recorded] == [PATTERN, None]
    evaluate = ("evaluate", "-c", out, "--cache", folder_cache, "-r")
    code, stdout, err = avemo_main(*evaluate, pattern_corpus)  # the corpus whose root it is: its pattern
    assert code == 0 and "16 takes: accuracy" in stdout and err.splitlines()[0] == SAID_PATTERN, err
    code, stdout, err = avemo_main(*evaluate, emotion_corpus)  # its speaker folders, no pattern
    assert code == 0 and "16 takes: accuracy" in stdout and SAID_PATTERN not in err, err
    code, _, err = avemo_main(*evaluate, emotion_corpus / "spk1")  # another folder: which corpus's is not clear
    assert code == 2 and err.strip() == (
        f"avemo: error: {emotion_corpus / 'spk1'}: the checkpoint's folder corpora were read with different speaker "
        f"patterns (pat '{PATTERN}', spk none): give --speaker-pattern REGEX for this folder ('' for none: its "
        "speaker folders)")
    code, stdout, err = avemo_main(*evaluate, emotion_corpus / "spk1", "--speaker-pattern", r"^(\d)_")
    assert code == 0 and "4 takes: accuracy" in stdout, err


def test_benchmark_reads_a_test_corpus_file_with_a_speaker_pattern(make_ravdess, pattern_corpus, emotion_corpus,
                                                                   folder_cache, tmp_path, avemo_main):
    """``--test-corpus folder=ROOT`` could not say how to read ROOT: a corpora file can, one corpus per entry."""
    suite = tmp_path / "suite.toml"
    suite.write_text('name = "mine"\ntitle = "t"\ndataset = "ravdess"\nplan = "ravdess"\n'
                     '[[entries]]\nmodels = ["egemaps_logreg"]\n')
    tests = tmp_path / "tests.toml"
    tests.write_text(f'[[corpora]]\ndataset = "folder"\nroot = "{pattern_corpus}"\nname = "pat"\n'
                     f"speaker_pattern = '{PATTERN}'\n")
    bench = ("benchmark", suite, "--root", make_ravdess(("01", "05", "07")), "--folds", "2", "--out", tmp_path / "out",
             "--cache", folder_cache)
    code, _, err = avemo_main(*bench, "--test-corpus", f"folder={pattern_corpus}")
    assert code == 2 and "speaker_pattern= in a --corpora or --test-corpus file entry" in err, err
    code, stdout, err = avemo_main(*bench, "--test-corpus", tests, "--test-corpus", f"folder={emotion_corpus}")
    assert code == 0, err
    report = json.loads((tmp_path / "out" / "mine.json").read_text())
    assert {n: (c["takes"], c.get("speaker_pattern")) for n, c in report["out_of_domain"].items()} == {
        "pat": (16, PATTERN), "folder": (16, None)}
    assert report["models"]["egemaps_logreg"]["out_of_domain"]["pat"]["n"] == [16]
    assert "pat: UAR" in stdout and "folder: UAR" in stdout
    tests.write_text(tests.read_text() + "weight = 2.0\n")
    code, _, err = avemo_main(*bench, "--test-corpus", tests)
    assert code == 2 and err.strip() == (
        f"avemo: error: --test-corpus {tests}: corpora entry 1 (pat): unknown keys weight (known: dataset, "
        "labels, media, name, protocol, root, speaker_pattern)")
    code, _, err = avemo_main(*bench, "--test-corpus", f"folder={emotion_corpus}", "--test-corpus", f"folder={tmp_path}")
    assert code == 2 and err.strip() == ("avemo: error: --test-corpus folder given twice: give each test corpus its own "
                                         "name= in a corpora file")
