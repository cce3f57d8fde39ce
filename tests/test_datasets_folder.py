"""The generic folder + labels CSV reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from avemo.datasets import label_set_for, normalise_emotion, read_dataset, read_folder
from avemo.datasets.labels import RAVDESS
from avemo.errors import DatasetError


def make_folder(root: Path, files: list[str], csv_text: str, csv_name: str = "labels.csv") -> Path:
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    csv_path = root / csv_name
    csv_path.write_text(csv_text, encoding="utf-8")
    return csv_path


def test_good_folder(tmp_path):
    make_folder(
        tmp_path,
        ["s1/a.wav", "s1/a.mp4", "s2/b.flac", "s2/c.mp4"],
        "Path,Emotion,Speaker,Gender\n"
        "s1/a.wav,Fear,alice,f\n"
        "s1/a.mp4,fear,alice,f\n"
        "s2/b.flac,Happiness,bob,m\n"
        "s2/c.mp4,,bob,m\n",
    )
    scan = read_dataset("folder", tmp_path)
    assert scan.skipped == []
    by_name = {c.path.name: c for c in scan}
    assert [c.path.name for c in scan] == ["a.mp4", "a.wav", "b.flac", "c.mp4"]  # sorted by path
    assert by_name["a.wav"].emotion == "fearful" and by_name["b.flac"].emotion == "happy"
    assert by_name["c.mp4"].emotion is None  # unlabelled
    assert by_name["a.wav"].modalities == ("audio",) and by_name["a.mp4"].modalities == ("audio", "video")
    # default take: the relative path without suffix, so the WAV and MP4 exports pair
    assert by_name["a.wav"].take == by_name["a.mp4"].take == "s1/a"
    assert by_name["b.flac"].speaker == "bob" and by_name["b.flac"].fields == {"gender": "m"}
    assert all(c.dataset == "folder" for c in scan)
    assert label_set_for("mine", (c.emotion for c in scan)).emotions == ("happy", "fearful")


def test_file_column_take_modality_and_explicit_csv(tmp_path):
    csv_path = make_folder(
        tmp_path / "media",
        ["x.mp4", "y.wav"],
        "file;emotion;speaker;take;modality\nx.mp4;contempt;7;t1;video\ny.wav;angry;7;t1;\n",
        csv_name="../table.csv",
    )
    scan = read_folder(tmp_path / "media", labels_csv=csv_path, dataset="mine")
    assert scan.skipped == []
    clips = {c.path.name: c for c in scan}
    assert clips["x.mp4"].modalities == ("video",) and clips["x.mp4"].emotion == "contempt"
    assert {c.take for c in scan} == {"t1"} and {c.dataset for c in scan} == {"mine"}


def test_rows_with_problems_are_reported(tmp_path):
    csv_path = make_folder(
        tmp_path,
        ["a.wav", "b.wav", "c.wav", "d.wav", "e.mp4", "unlisted.wav"],
        "path,emotion,speaker,modality\n"
        "a.wav,happy,s1,\n"
        "missing.wav,sad,s1,\n"
        "b.wav,sad,,\n"
        "a.wav,sad,s1,\n"
        "c.wav,happy,s2,video\n"
        "d.wav,happy,s2,hologram\n"
        "notes.txt,happy,s2,\n"
        "e.mp4,happy,s2,audio_video\n",
    )
    scan = read_folder(tmp_path)
    assert [c.path.name for c in scan] == ["a.wav", "e.mp4"]
    reasons = {s.path.name: s.reason for s in scan.skipped}
    assert "line 3: file not found" in reasons["missing.wav"]
    assert "empty speaker" in reasons["b.wav"]
    assert "listed again" in reasons["a.wav"]
    assert "is an audio format" in reasons["c.wav"]
    assert "modality 'hologram'" in reasons["d.wav"]
    assert "not a media file" in reasons["notes.txt"]
    assert reasons["unlisted.wav"] == f"not listed in {csv_path.name}"
    with pytest.raises(DatasetError, match="line 3: file not found"):
        read_folder(tmp_path, strict=True)


def test_allowed_emotions(tmp_path):
    make_folder(tmp_path, ["a.wav", "b.wav"], "path,emotion,speaker\na.wav,Anger,1\nb.wav,contempt,1\n")
    scan = read_folder(tmp_path, emotions=["angry", "happy"])
    assert [c.emotion for c in scan] == ["angry"]
    assert "emotion 'contempt' is not one of angry, happy" in scan.skipped[0].reason


def test_missing_columns(tmp_path):
    make_folder(tmp_path, ["a.wav"], "path,mood\na.wav,happy\n")
    with pytest.raises(DatasetError) as info:
        read_folder(tmp_path)
    message = str(info.value)
    assert "labels.csv" in message and "lacks column(s) emotion, speaker" in message
    make_folder(tmp_path, [], "name,emotion,speaker\na.wav,happy,1\n")
    with pytest.raises(DatasetError, match=r"lacks column\(s\) path \("):
        read_folder(tmp_path)


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
        (b"", "is empty"),
        (b"path,emotion,speaker\na.wav,happy\n", "line 2 has 2 values for 3 columns"),
        (b"path,emotion,speaker,speaker\n", "repeats column"),
    ],
)
def test_unreadable_labels_csv(tmp_path, content, fragment):
    (tmp_path / "labels.csv").write_bytes(content)
    with pytest.raises(DatasetError) as info:
        read_folder(tmp_path)
    assert fragment in str(info.value) and "labels.csv" in str(info.value)
    assert "\n" not in str(info.value)


def test_no_labels_csv(tmp_path):
    with pytest.raises(DatasetError, match="no labels CSV") as info:
        read_folder(tmp_path)
    # what is missing and how to give it, for a user of the command line as of the library
    assert str(info.value) == (f"{tmp_path}: no labels CSV: the folder has no labels.csv and no other labels CSV "
                               "was given (avemo's --labels, a --corpora or --test-corpus file entry's labels=, or "
                               "labels_csv= in Python), and no emotion folders (<emotion>/<speaker>/FILE, "
                               "<speaker>/<emotion>/FILE, or "
                               "<emotion>/FILE with a speaker pattern)")
    with pytest.raises(DatasetError, match="does not exist"):
        read_folder(tmp_path, labels_csv=tmp_path / "other.csv")


def test_normalise_emotion():
    assert normalise_emotion(" Sadness ") == "sad"
    assert normalise_emotion("SURPRISE") == "surprised"
    assert normalise_emotion("fearful") == "fearful"
    assert normalise_emotion("Frustrated") == "frustrated"
    # the noun forms of the two IEMOCAP classes and IEMOCAP's "Neutral state", as its label files spell them:
    # kept as they were, they met no partner and were left out of a cross-corpus score silently
    assert [normalise_emotion(e) for e in ("Frustration", "Excitement", "Neutral state")] == [
        "frustrated", "excited", "neutral"]


def test_everyday_spellings_are_canonical_emotions(tmp_path):
    """'mad' and 'scared' (as people write them) were kept as categories of their own: against RAVDESS
    they met no partner and were left out; with emotions= a canonical set they were skipped."""
    spellings = {"Mad": "angry", "scared": "fearful", "Frightened": "fearful", "joyful": "happy",
                 "Happy": "happy", "sad": "sad", "disgusted": "disgust", "surprised": "surprised",
                 "calm": "calm", "neutral": "neutral", "afraid": "fearful", "anger": "angry"}
    names = list(spellings)
    make_folder(tmp_path, [f"{i}.wav" for i in range(len(names))],
                "path,emotion,speaker\n" + "".join(f"{i}.wav,{e},s{i % 2}\n" for i, e in enumerate(names)))
    scan = read_folder(tmp_path, emotions=RAVDESS.emotions)
    assert not scan.skipped
    assert {c.path.name: c.emotion for c in scan} == {f"{i}.wav": spellings[e] for i, e in enumerate(names)}
    # the distinct IEMOCAP classes and the 4-class protocol's merge are not spellings of angry / happy
    assert [normalise_emotion(e) for e in ("frustrated", "excited")] == ["frustrated", "excited"]


def test_corpus_codes_are_canonical_emotions(tmp_path):
    """CREMA-D / IEMOCAP codes copied into a labels CSV become the canonical names the corpus readers
    give, so such clips take part in a cross-corpus score; IEMOCAP's oth / xxx stay what they are."""
    from avemo.datasets import crema_d, iemocap
    from avemo.datasets.labels import CANONICAL_EMOTIONS, CORPUS_CODES, EMOTION_ALIASES, comparison_map

    assert {code: normalise_emotion(code) for code in crema_d.EMOTIONS} == crema_d.EMOTIONS
    iemocap6 = iemocap.PROTOCOLS["iemocap6"][1]
    assert {code: normalise_emotion(code.upper()) for code in iemocap6} == iemocap6
    assert [normalise_emotion(c) for c in iemocap.CODES] == [
        "neutral", "happy", "excited", "sad", "angry", "frustrated", "surprised", "fearful", "disgust", "oth", "xxx"]
    # no existing spelling changes meaning: no alias is itself a canonical name, all lead to one
    assert not set(EMOTION_ALIASES) & set(CANONICAL_EMOTIONS)
    assert set(EMOTION_ALIASES.values()) <= set(CANONICAL_EMOTIONS)
    assert all(EMOTION_ALIASES[code] == name for code, name in CORPUS_CODES.items())
    make_folder(tmp_path, [f"{i}.wav" for i in range(6)],
                "path,emotion,speaker\n" + "".join(f"{i}.wav,{code},s{i % 2}\n"
                                                   for i, code in enumerate(("ANG", "dis", "FEA", "hap", "NEU", "SAD"))))
    scan = read_folder(tmp_path)
    labels = label_set_for("mine", (c.emotion for c in scan))
    assert set(labels) == set(crema_d.EMOTIONS.values())
    # against RAVDESS every clip is scored (none maps to "no partner")
    assert None not in comparison_map("ravdess", labels).data.mapping.values()


def test_text_column_gives_clips_their_transcript(tmp_path):
    make_folder(
        tmp_path,
        ["a.wav", "b.mp4", "c.wav"],
        "path,emotion,speaker,text,modality\n"
        "a.wav,happy,1,\"I\u2019m  so glad\u2026\",\n"
        "b.mp4,sad,1,,\n"
        "c.wav,sad,1,hi,audio+text\n",
    )
    scan = read_dataset("folder", tmp_path)
    clips = {c.path.name: c for c in scan}
    assert clips["a.wav"].text == "I'm so glad..." and clips["a.wav"].modalities == ("audio", "text")
    assert clips["b.mp4"].text is None and clips["b.mp4"].modalities == ("audio", "video")
    assert "text" not in clips["a.wav"].fields
    [bad] = scan.skipped
    assert bad.path.name == "c.wav" and "a transcript goes in the text column" in bad.reason


def test_a_take_given_to_two_recordings_is_not_a_copy(tmp_path):
    """Two rows of the take column naming one take for files of two speakers (and labels): the second
    file was set aside as "a copy of take t", as a second format of one recording is; it is another
    recording, skipped with both files named."""
    make_folder(tmp_path, ["x.wav", "y.wav", "z.wav", "z.flac"],
                "path,emotion,speaker,take\nx.wav,angry,1,t\ny.wav,sad,2,t\nz.wav,sad,2,\nz.flac,sad,2,\n")
    scan = read_dataset("folder", tmp_path)
    assert [c.path.name for c in scan] == ["x.wav", "z.wav"]
    assert [str(s) for s in scan.skipped] == [
        f"{tmp_path / 'y.wav'}: take t already has a file of its modalities (audio), {tmp_path / 'x.wav'}, of another "
        "speaker or emotion "
        "(1/angry, this one 2/sad): not a copy; give each recording its own take"]
    assert [s.path.name for s in scan.duplicates] == ["z.flac"]  # one recording in two formats still is a copy


def test_a_label_column_is_the_emotion_column(tmp_path):
    """``file,label,speaker``: the usual names of a researcher's table; ``label`` was refused as "lacks
    column(s) ['emotion']". With an ``emotion`` column too, ``label`` is another column, kept in fields."""
    make_folder(tmp_path, ["a.wav"], "File,Label,Speaker\na.wav,Angry,1\n")
    [clip] = read_folder(tmp_path)
    assert clip.emotion == "angry" and clip.fields == {}
    make_folder(tmp_path, ["a.wav"], "file,emotion,label,speaker\na.wav,sad,take 3,1\n")
    [clip] = read_folder(tmp_path)
    assert clip.emotion == "sad" and clip.fields == {"label": "take 3"}


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_a_table_saved_by_a_spreadsheet(tmp_path, encoding):
    """Excel's CSV: a BOM, ``;``, CRLF, and empty nameless columns at the end of every line (cells once
    used): refused as "repeats column(s) ['']". Its "Unicode Text" (UTF-16 with a BOM, tabs): refused as
    "a binary file"."""
    make_folder(tmp_path, ["Sprecher 1/Wut é.wav", "b.wav"], "")
    sep = ";" if encoding == "utf-8-sig" else "\t"
    lines = ["file", "emotion", "speaker", "text", "", ""], ["Sprecher 1/Wut é.wav", "Angry", "1", "Hi; you", "", ""], \
        ["b.wav", "SAD", "2", "", "", ""]
    text = "".join(sep.join(f'"{v}"' if sep in v else v for v in line) + "\r\n" for line in lines)
    (tmp_path / "labels.csv").write_bytes(text.encode(encoding))
    scan = read_folder(tmp_path)
    assert scan.skipped == []
    assert [(c.path.name, c.emotion, c.speaker, c.text, c.fields) for c in scan] == [
        ("Wut é.wav", "angry", "1", "Hi; you", {}), ("b.wav", "sad", "2", None, {})]
    make_folder(tmp_path, [], 'file;emotion;speaker;notes, misc\nb.wav;sad;2;x, y\n')  # a "," in a ";" table
    assert [(c.emotion, c.fields) for c in read_folder(tmp_path)] == [("sad", {"notes, misc": "x, y"})]
    make_folder(tmp_path, [], "file;emotion;speaker;\nb.wav;sad;2;oops\n")
    with pytest.raises(DatasetError, match="line 2 has 4 values for 3 columns"):  # a value without a column name
        read_folder(tmp_path)


def test_paths_written_on_windows_or_macos_find_their_files(tmp_path):
    """A CSV written on Windows (``Sprecher 1\\a.wav``) or with names in NFD (macOS: ``é`` as e + accent)
    named files that are there: each was "file not found", and the file itself "not listed"."""
    import unicodedata

    make_folder(tmp_path, ["Sprecher 1/a.wav", "Sprecher 1/Wut é.wav"], "")
    make_folder(tmp_path, [], "path,emotion,speaker\n" + "Sprecher 1\\a.wav,angry,1\n"
                + unicodedata.normalize("NFD", "Sprecher 1/Wut é.wav") + ",sad,1\n")
    scan = read_folder(tmp_path)
    assert scan.skipped == []
    assert [c.path for c in scan] == [tmp_path / "Sprecher 1/Wut é.wav", tmp_path / "Sprecher 1/a.wav"]
    assert [c.take for c in scan] == ["Sprecher 1/Wut é", "Sprecher 1/a"]  # the files' names, as written on disk
    make_folder(tmp_path, [], "path,emotion,speaker\nSprecher 1/a.wav,angry,1\nSprecher 1\\a.wav,sad,1\n")
    assert [s.reason for s in read_folder(tmp_path).skipped if s.reason.startswith("listed again")] == [
        "listed again in labels.csv line 3"]  # one file under two spellings is one file


def test_a_file_not_found_says_where_it_was_looked_for(tmp_path):
    """Paths relative to a CSV kept in another folder, or a name in another letter case: "file not found" for
    a file the user sees, with nothing to say why."""
    root = tmp_path / "data"
    make_folder(root, ["s1/a.wav", "s1/B.wav", "meta/notes.txt"], "")
    csv_path = make_folder(root, [], "path,emotion,speaker\n../s1/a.wav,angry,1\ns1/b.wav,sad,1\n", "meta/labels.csv")
    reasons = {s.path.name: s.reason for s in read_folder(root, labels_csv=csv_path).skipped if "line" in s.reason}
    assert reasons["a.wav"] == (f"labels.csv line 2: file not found under the folder {root} (paths are relative to "
                                f"it, not to the CSV's folder, where {root / 's1/a.wav'} is)")
    assert reasons["b.wav"] == "labels.csv line 3: file not found (B.wav differs from b.wav in letter case)"


def test_speaker_ids_written_two_ways_are_warned_of(tmp_path, caplog):
    """``01`` and ``1`` (a column partly retyped, or joined from two tables) were two speakers without a
    word: one person's clips could be on both sides of a speaker-disjoint split."""
    make_folder(tmp_path, ["a.wav", "b.wav", "c.wav", "d.wav", "e.wav", "f.wav"],
                "path,emotion,speaker\na.wav,sad,01\nb.wav,sad,1\nc.wav,sad,1.0\nd.wav,sad,Anna\ne.wav,sad,anna\n"
                "f.wav,sad,10\n")
    with caplog.at_level("WARNING", logger="avemo.datasets"):
        scan = read_dataset("folder", tmp_path)
    assert sorted(scan.speakers) == ["01", "1", "1.0", "10", "Anna", "anna"]  # read as written
    assert scan.warnings == [f"{tmp_path / 'labels.csv'}: speakers 01 / 1 / 1.0; Anna / anna differ only in leading "
                             "zeros, '.0' or letter case and are read as different speakers: write each person's id "
                             "one way if they are one person"]
    assert scan.warnings[0] in caplog.messages
    make_folder(tmp_path, [], "path,emotion,speaker\na.wav,sad,1\nb.wav,sad,10\nc.wav,sad,Anna\nd.wav,sad,Bob\n")
    assert read_folder(tmp_path).warnings == []


def test_a_table_saved_in_windows_ansi_is_read_with_a_warning(tmp_path, caplog):
    """Excel's "CSV (Comma delimited)" on Windows writes cp1252 (``é`` as the byte 0xE9): it was refused
    as "not UTF-8 text", while MELD's reader read such a file with a warning; now the same rule, the same
    line, naming the file."""
    (tmp_path / "café.wav").write_bytes(b"")
    (tmp_path / "labels.csv").write_bytes("path;emotion;speaker;notes\ncafé.wav;happy;Zoë;déjà vu\n".encode("cp1252"))
    with caplog.at_level("WARNING", logger="avemo.datasets"):
        scan = read_dataset("folder", tmp_path)
    assert [(c.path.name, c.speaker, c.fields["notes"]) for c in scan.clips] == [("café.wav", "Zoë", "déjà vu")]
    assert scan.warnings == [f"{tmp_path / 'labels.csv'}: labels CSV is not UTF-8 text (byte 30); read as cp1252"]
    assert scan.warnings[0] in caplog.messages
