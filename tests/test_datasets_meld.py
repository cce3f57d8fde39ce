"""The MELD reader: splits, text normalisation, dialogue order, optional media, bad input."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest

from avemo.datasets import MELD, read_dataset
from avemo.datasets.text import normalise_text
from avemo.errors import DatasetError, LeakageError

HEADER = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID",
          "Season", "Episode", "StartTime", "EndTime"]


def _write(path: Path, rows: list[list[str]], encoding: str = "utf-8") -> Path:
    with open(path, "w", newline="", encoding=encoding) as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        for i, row in enumerate(rows, start=1):
            writer.writerow([str(i), *row[:3], "neutral", *row[3:], "1", "1", "00:00:01,000", "00:00:02,000"])
    return path


def _rows(*specs):
    """(text, speaker, emotion, dialogue, turn) tuples as CSV cells."""
    return [[t, s, e, str(d), str(u)] for t, s, e, d, u in specs]


@pytest.fixture
def meld(tmp_path):
    _write(tmp_path / "train_sent_emo.csv", _rows(
        ("Oh my God!", "Monica", "surprise", 0, 1),
        ("Hi.", "Ross", "neutral", 0, 0),
        ("I\u00e2\u0080\u0099m fine\u2026", "Rachel", "joy", 1, 0),
        ("You\x92re late.", "Joey", "anger", 1, 3),
    ))
    _write(tmp_path / "dev_sent_emo.csv", _rows(
        ("Go away.", "Phoebe", "disgust", 0, 0),
        ("No!", "Chandler", "fear", 0, 1),
        ("I lost it.", "Ross", "sadness", 0, 2),
    ))
    return tmp_path


def test_reads_every_split_in_dialogue_order_with_canonical_emotions(meld):
    scan = read_dataset("meld", meld)
    assert [(c.split, c.dialogue, c.turn) for c in scan] == [
        ("train", "train:0", 0), ("train", "train:0", 1), ("train", "train:1", 0), ("train", "train:1", 3),
        ("dev", "dev:0", 0), ("dev", "dev:0", 1), ("dev", "dev:0", 2)]
    assert [c.emotion for c in scan] == ["neutral", "surprised", "happy", "angry", "disgust", "fearful", "sad"]
    assert set(scan.emotions) <= set(MELD)
    first = scan.clips[0]
    assert first.modalities == ("text",) and first.path == meld / "train_sent_emo.csv"
    assert first.speaker == "Ross" and first.take == "train_dia0_utt0" and first.text == "Hi."
    assert first.fields["sentiment"] == "neutral" and first.fields["line"] == 3
    assert len({c.take for c in scan}) == len(scan) and not scan.skipped


def test_dialogue_ids_never_collide_across_splits(meld):
    scan = read_dataset("meld", meld)
    assert {c.dialogue_key for c in scan if c.split == "train"}.isdisjoint(
        {c.dialogue_key for c in scan if c.split == "dev"})


def test_mojibake_is_repaired():
    assert normalise_text("I\u00e2\u0080\u0099m fine\u2026") == "I'm fine..."
    assert normalise_text("You\x92re  late.\n") == "You're late."
    assert normalise_text("caf\u00e9 \u201cna\u00efve\u201d") == 'caf\u00e9 "na\u00efve"'


def test_texts_are_normalised(meld):
    texts = {c.take: c.text for c in read_dataset("meld", meld)}
    assert texts["train_dia1_utt0"] == "I'm fine..." and texts["train_dia1_utt3"] == "You're late."


def test_missing_turns_are_kept_in_order_and_recorded(meld):
    scan = read_dataset("meld", meld)
    gaps = {c.take: c.fields["missing_before"] for c in scan}
    assert gaps["train_dia1_utt3"] == 2 and gaps["train_dia1_utt0"] == 0
    assert any("1 dialogue(s) have missing turns" in w for w in scan.warnings)


def test_splits_option_and_missing_split(meld):
    assert {c.split for c in read_dataset("meld", meld, splits=["dev"])} == {"dev"}
    with pytest.raises(DatasetError, match="test_sent_emo.csv"):
        read_dataset("meld", meld, splits=["test"])
    with pytest.raises(DatasetError, match="MELD splits are"):
        read_dataset("meld", meld, splits=["val"])


def test_folder_without_csv_is_one_line_error(tmp_path):
    with pytest.raises(DatasetError, match="no MELD annotation CSV"):
        read_dataset("meld", tmp_path)


def test_missing_column_names_file_and_column(tmp_path):
    header = [h for h in HEADER if h != "Utterance_ID"]
    path = tmp_path / "train_sent_emo.csv"
    path.write_text(",".join(header) + "\n1,Hi.,Ross,neutral,neutral,0,1,1,a,b\n")
    with pytest.raises(DatasetError, match=r"lacks column\(s\) Utterance_ID;") as info:
        read_dataset("meld", tmp_path)
    assert "train_sent_emo.csv" in str(info.value) and "\n" not in str(info.value)


def test_non_utf8_csv_is_read_as_cp1252_with_a_warning(tmp_path):
    _write(tmp_path / "dev_sent_emo.csv", _rows(("It\u2019s me.", "Ross", "neutral", 0, 0)), encoding="cp1252")
    scan = read_dataset("meld", tmp_path)
    assert scan.clips[0].text == "It's me."
    assert any("not UTF-8" in w and "cp1252" in w for w in scan.warnings)


def test_bad_rows_are_skipped_with_reasons(tmp_path):
    _write(tmp_path / "train_sent_emo.csv", _rows(
        ("  ", "Ross", "neutral", 0, 0),
        ("Hi.", "Ross", "contempt", 0, 1),
        ("Hi.", "Ross", "neutral", "x", 2),
        ("Hi.", "Ross", "neutral", 0, 3),
        ("Again.", "Ross", "neutral", 0, 3),
    ))
    scan = read_dataset("meld", tmp_path)
    assert [c.take for c in scan] == ["train_dia0_utt3"]
    reasons = " | ".join(s.reason for s in scan.skipped)
    assert len(scan.skipped) == 4
    for part in ("empty utterance text", "'contempt' is not a MELD emotion", "not whole numbers", "repeated"):
        assert part in reasons
    with pytest.raises(DatasetError):
        read_dataset("meld", tmp_path, strict=True)


def test_media_files_of_the_official_layout_are_used(tmp_path):
    _write(tmp_path / "train_sent_emo.csv", _rows(("", "Ross", "neutral", 0, 0), ("Hi.", "Ross", "joy", 0, 1),
                                                 ("Bye.", "Ross", "joy", 0, 2)))
    folder = tmp_path / "train_splits"
    folder.mkdir()
    for name in ("dia0_utt0.mp4", "dia0_utt1.mp4", "dia0_utt2.wav"):
        (folder / name).write_bytes(b"")
    clips = {c.take: c for c in read_dataset("meld", tmp_path)}
    assert clips["train_dia0_utt0"].modalities == ("audio", "video") and clips["train_dia0_utt0"].text is None
    assert clips["train_dia0_utt1"].modalities == ("audio", "video", "text")
    assert clips["train_dia0_utt1"].path == folder / "dia0_utt1.mp4"
    assert clips["train_dia0_utt2"].modalities == ("audio", "text")  # an audio file: no video


@pytest.mark.shared_data
def test_real_meld_annotations(shared_data):
    scan = read_dataset("meld", shared_data / "meld")
    by_split = {s: [c for c in scan if c.split == s] for s in ("train", "dev")}
    assert len(by_split["train"]) == 9989 and len(by_split["dev"]) == 1109
    assert len({c.dialogue for c in by_split["train"]}) == 1038 and len({c.dialogue for c in by_split["dev"]}) == 114
    assert set(scan.emotions) == set(MELD) and not scan.skipped
    assert all(c.text and c.modalities == ("text",) for c in scan)
    assert all(ord(ch) < 0x80 or ch.isalpha() for c in scan for ch in c.text)


def test_official_split_keeps_dialogues_and_allows_recurring_speakers(meld):
    from avemo.datasets import check_leakage, official_split

    clips = list(read_dataset("meld", meld))
    train, val, test = official_split(clips)
    assert {c.split for c in train} == {"train"} and {c.split for c in val} == {"dev"} and test == []
    assert {c.speaker for c in train} & {c.speaker for c in val} == {"Ross"}  # TV characters recur: allowed
    with pytest.raises(LeakageError, match="speaker meld:Ross"):
        check_leakage(train, val, test)
    moved = [c for c in train if c.dialogue == "train:0"]
    with pytest.raises(LeakageError, match="dialogue meld:train:0 is in train .* and val"):
        check_leakage([moved[0]], [moved[1]], [], speakers=False)
    with pytest.raises(DatasetError, match="no official split"):
        official_split([dataclasses.replace(clips[0], split=None)])


def test_a_skipped_row_is_a_missing_turn(tmp_path):
    _write(tmp_path / "dev_sent_emo.csv", _rows(("Hi.", "Ross", "neutral", 0, 0), ("", "Ross", "neutral", 0, 1),
                                               ("Bye.", "Ross", "neutral", 0, 2)))
    scan = read_dataset("meld", tmp_path)
    assert [(c.turn, c.fields["missing_before"]) for c in scan] == [(0, 0), (2, 1)]


@pytest.mark.shared_data
def test_a_meld_folder_read_as_another_dataset_says_to_read_it_as_meld(shared_data, avemo_main, tmp_path):
    """``avemo extract MELD`` (no --dataset: media files only) said only "no media files to process", and
    ``avemo train --root MELD`` (default dataset ravdess) only "no labelled ravdess files found"; the folders
    of the other datasets get "read the folder as dataset X"."""
    from avemo.training.experiment import load_data

    root = shared_data / "meld"
    code, _, err = avemo_main("extract", root, "--cache", tmp_path / "cache")
    assert code == 2 and err.strip() == (f"avemo: error: {root}: no media files to process; the folder is laid out as "
                                         "meld's (its annotation CSVs): read it with --dataset meld")
    with pytest.raises(DatasetError) as info:
        load_data("ravdess", root)
    assert str(info.value) == (f"{root}: no labelled ravdess files found; the folder is laid out as meld's (its "
                               "annotation CSVs): read the folder as dataset meld")
