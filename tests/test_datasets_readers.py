"""Dataset readers: RAVDESS, CREMA-D, EmoDB on the shared recordings and on generated file names."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from avemo.datasets import (
    RAVDESS,
    parse_crema_d_name,
    parse_emodb_name,
    parse_file_name,
    parse_ravdess_name,
    read_crema_d,
    read_dataset,
    read_emodb,
    read_ravdess,
)
from avemo.errors import AvemoError, DatasetError


def touch(root: Path, *names: str) -> list[Path]:
    """Create empty files (readers only read names, never media)."""
    paths = []
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        paths.append(path)
    return paths


# --- RAVDESS ---------------------------------------------------------------------------------


def test_parse_ravdess_name_fields():
    p = parse_ravdess_name("03-01-07-02-02-01-01.flac")
    assert p["dataset"] == "ravdess"
    assert p["emotion"] == "disgust"
    assert p["speaker"] == "01"
    assert p["take"] == "01-07-02-02-01-01"
    assert p["modalities"] == ("audio",)
    assert p["modality_code"] == "03"
    assert p["vocal_channel"] == "speech"
    assert p["intensity"] == "strong"
    assert p["statement"] == 2 and p["statement_text"] == "Dogs are sitting by the door"
    assert p["repetition"] == 1
    assert p["gender"] == "male"


@pytest.mark.parametrize(
    "name, modalities, gender, channel",
    [
        ("01-01-03-01-01-02-12.mp4", ("audio", "video"), "female", "speech"),
        ("02-02-06-01-02-01-23.mp4", ("video",), "male", "song"),
        ("03-02-01-01-01-01-24.wav", ("audio",), "female", "song"),
        ("03-01-08-02-01-02-24", ("audio",), "female", "speech"),  # a bare stem
    ],
)
def test_parse_ravdess_modalities_genders_channels(name, modalities, gender, channel):
    p = parse_ravdess_name(name)
    assert (p["modalities"], p["gender"], p["vocal_channel"]) == (modalities, gender, channel)


def test_ravdess_emotion_codes_follow_label_set_order():
    emotions = [parse_ravdess_name(f"03-01-{i:02d}-01-01-01-01.wav")["emotion"] for i in range(1, 9)]
    assert emotions == list(RAVDESS.emotions)


def test_ravdess_take_is_shared_by_the_three_modalities():
    takes = {parse_ravdess_name(f"{m}-01-05-02-01-02-14.{ext}")["take"] for m, ext in
             (("01", "mp4"), ("02", "mp4"), ("03", "wav"))}
    assert takes == {"01-05-02-01-02-14"}


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("03-01-07-02-02-01.wav", "7 two-digit fields"),
        ("03-01-07-02-02-01-01-01.wav", "7 two-digit fields"),
        ("3-1-7-2-2-1-1.wav", "7 two-digit fields"),
        ("04-01-07-02-02-01-01.wav", "modality code 04"),
        ("03-03-07-02-02-01-01.wav", "vocal channel code 03"),
        ("03-01-09-02-02-01-01.wav", "emotion code 09"),
        ("03-01-07-03-02-01-01.wav", "intensity code 03"),
        ("03-01-07-02-03-01-01.wav", "statement code 03"),
        ("03-01-07-02-02-03-01.wav", "repetition code 03"),
        ("03-01-07-02-02-01-25.wav", "actor code 25"),
        ("03-01-07-02-02-01-00.wav", "actor code 00"),
        ("03-01-01-02-01-01-01.wav", "neutral has no strong"),
        ("03-02-07-01-01-01-01.wav", "song has no disgust"),
        ("03-02-08-01-01-01-01.wav", "song has no surprised"),
        ("03-01-07-02-02-01-01.mp4", "not an audio format"),
        ("01-01-07-02-02-01-01.wav", "not a video format"),
        ("03-01-07-02-02-01-01.txt", "not a media file"),
    ],
)
def test_parse_ravdess_rejects_malformed_names(name, fragment):
    with pytest.raises(DatasetError) as info:
        parse_ravdess_name(name)
    message = str(info.value)
    assert fragment in message and name in message and "\n" not in message


@pytest.mark.shared_data
def test_ravdess_shared_speech_audio(ravdess_speech_root):
    scan = read_ravdess(ravdess_speech_root)
    assert scan.skipped == []
    assert len(scan) == 1200
    assert len(scan.takes) == 1200
    speakers = Counter(c.speaker for c in scan)
    assert len(speakers) == 20 and set(speakers.values()) == {60}
    assert not {"03", "10", "17", "24"} & set(speakers)
    assert scan.speakers == tuple(sorted(speakers))
    assert scan.emotions == tuple(sorted(RAVDESS.emotions))
    assert {c.modalities for c in scan} == {("audio",)}
    assert {c.fields["vocal_channel"] for c in scan} == {"speech"}
    # the speaker is the Actor_XX folder the file sits in
    assert all(c.path.parent.name == f"Actor_{c.speaker}" for c in scan)
    # the path order is sorted, so the result does not depend on the file system
    assert [c.path for c in scan] == sorted((c.path for c in scan), key=lambda p: p.relative_to(ravdess_speech_root).as_posix())
    # per actor: 8 emotions, neutral only at normal intensity (4 takes), the others 8 each
    per_emotion = Counter(c.emotion for c in scan if c.speaker == "01")
    assert per_emotion["neutral"] == 4 and all(per_emotion[e] == 8 for e in RAVDESS.emotions[1:])
    assert Counter(c.fields["gender"] for c in scan) == {"male": 600, "female": 600}


@pytest.mark.shared_data
def test_ravdess_shared_video_and_original_wavs(shared_data, ravdess_video):
    video = read_dataset("ravdess", ravdess_video.parent)
    assert video.skipped == []
    [clip] = video.clips
    assert clip.modalities == ("audio", "video") and clip.emotion == "disgust" and clip.speaker == "01"
    assert clip.take == "01-07-02-02-01-01" and clip.fields["intensity"] == "strong"

    wavs = read_ravdess(shared_data / "ravdess" / "original_wav_samples")
    assert wavs.skipped == [] and len(wavs) == 4
    assert {c.speaker for c in wavs} == {"01", "02", "20"}
    assert all(c.path.suffix == ".wav" and c.modalities == ("audio",) for c in wavs)


@pytest.mark.shared_data
def test_ravdess_whole_shared_folder_reports_format_duplicates(shared_data):
    """The four original WAVs are the same takes as four FLACs of the corpus's Actor_XX layout: the FLACs
    are read (the WAVs sorted first and won, and the FLACs were called files that "could not be used"),
    the stray WAVs are listed as duplicates, not as skipped."""
    scan = read_ravdess(shared_data / "ravdess")
    assert len(scan.takes) == 1200
    assert scan.skipped == [] and len(scan.duplicates) == 4
    assert all(s.path.parent.name == "original_wav_samples" and s.path.suffix == ".wav" for s in scan.duplicates)
    assert all(c.path.suffix == ".flac" for c in scan if c.modalities == ("audio",))
    first = scan.duplicates[0]
    assert first.reason == (f"a copy of take {read_ravdess(first.path.parent).clips[0].take} (audio), which is read "
                            f"from {shared_data / 'ravdess' / 'speech_audio' / 'Actor_01' / first.path.with_suffix('.flac').name}")
    assert scan.summary().endswith("0 skipped, 4 duplicates")
    # the video (audio and video) is not a duplicate of its take's audio file
    assert Counter(c.modalities for c in scan) == {("audio",): 1200, ("audio", "video"): 1}
    only_wav = read_ravdess(shared_data / "ravdess", suffixes=("flac", ".MP4"))
    assert only_wav.skipped == [] and len(only_wav) == 1201


def test_ravdess_a_copy_in_the_actor_folder_wins_over_stray_copies_whatever_the_path_order(tmp_path):
    take = "03-01-02-01-01-01-02"
    touch(tmp_path, f"a_copies/{take}.wav", f"Actor_02/{take}.flac", f"z_copies/{take}.wav", "Actor_01/03-01-01-01-01-01-01.wav")
    scan = read_ravdess(tmp_path)
    assert [c.path.relative_to(tmp_path).as_posix() for c in scan] == [
        "Actor_01/03-01-01-01-01-01-01.wav", f"Actor_02/{take}.flac"]  # path order
    assert [d.path.relative_to(tmp_path).as_posix() for d in scan.duplicates] == [f"a_copies/{take}.wav",
                                                                                   f"z_copies/{take}.wav"]
    assert scan.skipped == [] and all(str(tmp_path / f"Actor_02/{take}.flac") in d.reason for d in scan.duplicates)
    # outside the layout (both stray): the first in path order, as before
    loose = read_ravdess(tmp_path, suffixes=(".wav",))
    assert [d.path.parent.name for d in loose.duplicates] == ["z_copies"]
    with pytest.raises(DatasetError, match="a copy of take 01-02-01-01-01-02 \\(audio\\)"):
        read_ravdess(tmp_path, strict=True)


def test_ravdess_original_layouts(tmp_path):
    names = ["03-01-01-01-01-01-01.wav", "03-01-02-01-01-01-02.wav", "01-01-02-01-01-01-02.mp4"]
    flat = tmp_path / "flat"
    touch(flat, *names)
    nested = tmp_path / "nested"
    touch(nested, *(f"Video_Speech_Actor_{n[-6:-4]}/Actor_{n[-6:-4]}/{n}" for n in names))
    a = read_ravdess(flat)
    b = read_ravdess(nested)
    def labels(scan):
        return sorted((c.path.name, c.take, c.modalities, c.speaker, c.emotion) for c in scan)

    assert labels(a) == labels(b)
    assert len(a) == 3 and a.skipped == [] and b.skipped == []
    assert all(c.path.parent.name == f"Actor_{c.speaker}" for c in b)


def test_a_corpus_of_links_to_speaker_folders_is_read_through_them(tmp_path):
    """A copy assembled from links to its actors' folders (on other disks): ``Path.rglob`` passed links
    to folders by, and the corpus read as "no labelled ravdess files found" (extract: no media files).
    A link back up the tree (a loop) and a second link to one folder are each read once."""
    from avemo.collect import collect_inputs

    disk = tmp_path / "disk"
    touch(disk, "Actor_01/01-01-03-01-01-01-01.mp4", "Actor_02/01-01-04-01-01-01-02.mp4")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for actor in ("Actor_01", "Actor_02"):
        (corpus / actor).symlink_to(disk / actor, target_is_directory=True)
    (corpus / "again").symlink_to(disk / "Actor_01", target_is_directory=True)
    (disk / "Actor_02" / "up").symlink_to(corpus, target_is_directory=True)
    scan = read_ravdess(corpus)
    assert sorted((c.speaker, c.emotion) for c in scan) == [("01", "happy"), ("02", "sad")]
    assert scan.duplicates == [] and scan.skipped == []
    items, _, _ = collect_inputs(corpus)  # extract's auto dataset: any media files
    assert sorted(c.path.name for c in items) == ["01-01-03-01-01-01-01.mp4", "01-01-04-01-01-01-02.mp4"]


def test_ravdess_reports_malformed_and_ignores_non_media(tmp_path):
    touch(
        tmp_path,
        "Actor_01/03-01-01-01-01-01-01.wav",
        "Actor_01/03-01-09-01-01-01-01.wav",  # emotion 09
        "Actor_01/notes.wav",
        "Actor_01/README.txt",  # not media: ignored
        "Actor_01/._03-01-01-01-01-01-01.wav",  # macOS resource fork: hidden, ignored
        ".cache/03-01-01-01-01-02-01.wav",  # hidden folder: ignored
    )
    scan = read_ravdess(tmp_path)
    assert [c.path.name for c in scan] == ["03-01-01-01-01-01-01.wav"]
    reasons = {s.path.name: s.reason for s in scan.skipped}
    assert set(reasons) == {"03-01-09-01-01-01-01.wav", "notes.wav"}
    assert "emotion code 09" in reasons["03-01-09-01-01-01-01.wav"]
    assert "not a RAVDESS name" in reasons["notes.wav"]
    assert str(scan.skipped[0]).startswith(str(scan.skipped[0].path))


def test_strict_mode_raises_with_the_file(tmp_path):
    bad = touch(tmp_path, "03-01-01-01-01-01-01.wav", "03-01-09-01-01-01-01.wav")[1]
    with pytest.raises(DatasetError) as info:
        read_ravdess(tmp_path, strict=True)
    assert info.value.path == str(bad) and "emotion code 09" in info.value.reason


def test_missing_root_and_file_root(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        read_dataset("ravdess", tmp_path / "nope")
    file = touch(tmp_path, "x.wav")[0]
    with pytest.raises(DatasetError, match="not a folder"):
        read_emodb(file)


def test_read_dataset_rejects_unknown_name_and_option(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset 'msp_podcast'"):
        read_dataset("msp_podcast", tmp_path)
    with pytest.raises(DatasetError) as bad:  # it said "dataset 'ravdess' takes no option(s) ['labels_csv']"
        read_dataset("ravdess", tmp_path, labels_csv="x.csv")
    assert str(bad.value) == ("a labels CSV (avemo's --labels, or labels_csv= in Python) is for the folder dataset; "
                              "ravdess reads its labels from its own files")
    with pytest.raises(DatasetError, match="takes no option"):
        read_dataset("ravdess", tmp_path, demographics="x.csv")


# --- CREMA-D ---------------------------------------------------------------------------------


def test_parse_crema_d_name():
    p = parse_crema_d_name("1001_DFA_ANG_XX.flv")
    assert (p["speaker"], p["emotion"], p["take"], p["modalities"]) == ("1001", "angry", "1001_DFA_ANG_XX", ("audio", "video"))
    assert p["sentence"] == "DFA" and p["sentence_text"] == "Don't forget a jacket" and p["level"] == "unspecified"
    assert parse_crema_d_name("1091_IEO_HAP_HI.wav")["modalities"] == ("audio",)
    assert parse_crema_d_name("1091_IEO_HAP_HI.wav")["level"] == "high"


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("1001_DFA_ANG.flv", "not a CREMA-D name"),
        ("1000_DFA_ANG_XX.flv", "actor 1000"),
        ("1092_DFA_ANG_XX.flv", "actor 1092"),
        ("1001_ABC_ANG_XX.flv", "sentence code ABC"),
        ("1001_DFA_JOY_XX.flv", "emotion code JOY"),
        ("1001_DFA_ANG_ZZ.flv", "level code ZZ"),
        ("1001_DFA_ANG_XX", "no suffix"),
        ("1001_DFA_ANG_XX.csv", "not a media file"),
    ],
)
def test_parse_crema_d_rejects(name, fragment):
    with pytest.raises(DatasetError, match=fragment):
        parse_crema_d_name(name)


@pytest.mark.shared_data
def test_crema_d_shared_files_with_demographics(shared_data):
    scan = read_crema_d(shared_data / "crema_d")
    assert scan.skipped == [] and len(scan) == 12
    assert scan.speakers == ("1001", "1002")
    assert scan.emotions == ("angry", "disgust", "fearful", "happy", "neutral", "sad")
    by_speaker = {c.speaker: c for c in scan}
    # VideoDemographics.csv: 1001 is a 51-year-old man, 1002 a 21-year-old woman
    assert by_speaker["1001"].fields["gender"] == "male" and by_speaker["1001"].fields["age"] == 51
    assert by_speaker["1002"].fields["gender"] == "female" and by_speaker["1002"].fields["age"] == 21
    assert {c.modalities for c in scan if c.speaker == "1001"} == {("audio", "video")}
    assert {c.modalities for c in scan if c.speaker == "1002"} == {("audio",)}
    # pointing at a media folder finds the metadata in the parent
    flv = read_crema_d(shared_data / "crema_d" / "VideoFlash")
    assert len(flv) == 6 and all(c.fields["gender"] == "male" for c in flv)
    bare = read_crema_d(shared_data / "crema_d", demographics=False)
    assert "gender" not in bare.clips[0].fields


def test_crema_d_wav_and_mp3_of_one_take(tmp_path):
    touch(tmp_path, "AudioWAV/1005_TIE_SAD_LO.wav", "AudioMP3/1005_TIE_SAD_LO.mp3", "VideoFlash/1005_TIE_SAD_LO.flv")
    scan = read_crema_d(tmp_path)
    # the WAV is a second audio file of the take (AudioMP3 sorts first): a duplicate, naming the kept MP3
    assert len(scan) == 2 and scan.skipped == [] and len(scan.duplicates) == 1
    assert scan.duplicates[0].path.suffix == ".wav"
    assert "a copy of take" in scan.duplicates[0].reason and "AudioMP3/1005_TIE_SAD_LO.mp3" in scan.duplicates[0].reason
    wav_only = read_crema_d(tmp_path, suffixes=(".wav", ".flv"))
    assert wav_only.skipped == [] and sorted(c.modalities for c in wav_only) == [("audio",), ("audio", "video")]


def test_crema_d_bad_demographics_file(tmp_path):
    touch(tmp_path, "1005_TIE_SAD_LO.wav")
    (tmp_path / "VideoDemographics.csv").write_text("ActorID,Age\n1005,30\n")
    with pytest.raises(DatasetError) as info:
        read_crema_d(tmp_path)
    assert "VideoDemographics.csv" in str(info.value) and "lacks column" in str(info.value)


# --- EmoDB -----------------------------------------------------------------------------------


def test_parse_emodb_name():
    p = parse_emodb_name("03a01Fa.wav")
    assert (p["speaker"], p["emotion"], p["take"], p["modalities"]) == ("03", "happy", "03a01Fa", ("audio",))
    assert (p["text"], p["version"], p["gender"]) == ("a01", "a", "male")
    assert parse_emodb_name("16b10Tb.wav")["gender"] == "female"
    assert parse_emodb_name("11b03Lc.wav")["emotion"] == "boredom"


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("03a01F.wav", "not an EmoDB name"),
        ("04a01Fa.wav", "speaker 04"),
        ("03a03Fa.wav", "text code a03"),
        ("03a01Xa.wav", "emotion letter X"),
        ("03a01Fa.mp4", "audio only"),
    ],
)
def test_parse_emodb_rejects(name, fragment):
    with pytest.raises(DatasetError, match=fragment):
        parse_emodb_name(name)


@pytest.mark.shared_data
def test_emodb_shared_files(shared_data):
    scan = read_dataset("emodb", shared_data / "emodb")
    assert scan.skipped == []
    assert {c.take: (c.speaker, c.emotion) for c in scan} == {
        "03a01Fa": ("03", "happy"),
        "03a01Wa": ("03", "angry"),
        "16b10Tb": ("16", "sad"),
    }


# --- one file name, any dataset --------------------------------------------------------------


def test_parse_file_name_identifies_the_convention():
    assert parse_file_name("/data/x/03-01-07-02-02-01-01.flac")["dataset"] == "ravdess"
    assert parse_file_name("1001_DFA_ANG_XX.flv")["dataset"] == "crema_d"
    assert parse_file_name("03a01Fa.wav")["dataset"] == "emodb"
    assert parse_file_name("03a01Fa.wav", dataset="emodb")["emotion"] == "happy"
    # a name of no convention's shape: said in a few words (it listed every parser's reason)
    for name in ("holiday.mp4", "notes.txt", "my_video"):
        with pytest.raises(DatasetError) as info:
            parse_file_name(name)
        assert str(info.value) == f"{name}: the name follows no known dataset's naming convention (ravdess, crema_d, emodb)"
    # a name of one convention's shape with a wrong field: that convention's reason, and only its
    with pytest.raises(DatasetError) as info:
        parse_file_name("03-01-09-01-01-01-01.mp4")
    assert str(info.value) == ("03-01-09-01-01-01-01.mp4: named after the ravdess convention, but RAVDESS emotion code "
                               "09 is not one of 01, 02, 03, 04, 05, 06, 07, 08")
    with pytest.raises(DatasetError, match=r"^03a01Fa.mp4: named after the emodb convention, but EmoDB is audio only; "
                                           r".mp4 is not an audio format$"):
        parse_file_name("03a01Fa.mp4")
    with pytest.raises(DatasetError, match="no file-name convention"):
        parse_file_name("x.wav", dataset="folder")


def test_errors_are_avemo_errors_with_one_line(tmp_path):
    for call in (lambda: parse_file_name("x-y.wav"), lambda: read_dataset("emodb", tmp_path / "missing")):
        with pytest.raises(AvemoError) as info:
            call()
        assert "\n" not in str(info.value)


def test_every_readers_warnings_are_said_once_by_read_dataset(tmp_path, monkeypatch, caplog):
    """A reader's ScanResult.warnings reached the user only where that reader logged them itself (MELD's
    cp1252 fallback was logged by MELD, the folder's by the folder, a reader that forgot said nothing):
    read_dataset, which train / evaluate / extract / benchmark read through, now says each line once."""
    import csv

    from avemo.datasets import readers
    from avemo.datasets.scan import ScanResult

    def quiet_reader(root, *, strict=False):  # a reader that only collects its warnings
        return ScanResult("quiet", Path(root), warnings=["quiet: a thing not as expected"])

    monkeypatch.setitem(readers.READERS, "quiet", quiet_reader)
    meld = tmp_path / "meld"
    meld.mkdir()
    with open(meld / "dev_sent_emo.csv", "w", newline="", encoding="cp1252") as fh:
        csv.writer(fh).writerows([["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID",
                                   "Utterance_ID"], ["1", "It\u2019s me.", "Ross", "neutral", "neutral", "0", "0"]])
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.wav").write_bytes(b"")
    (folder / "labels.csv").write_bytes("path,emotion,speaker\na.wav,happy,Zoë\n".encode("cp1252"))
    for name, root in (("quiet", tmp_path), ("meld", meld), ("folder", folder)):
        caplog.clear()
        with caplog.at_level("WARNING", logger="avemo"):
            scan = read_dataset(name, root)
        assert scan.warnings and caplog.messages == scan.warnings, name
    assert "read as cp1252" in scan.warnings[0]
