"""The IEMOCAP reader on a generated copy of the official release layout (no IEMOCAP file is in the
project), its label protocols, the leave-one-session-out plan, and dialogue leakage checks."""

from __future__ import annotations

import csv
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from avemo.datasets import (
    IEMOCAP4,
    IEMOCAP6,
    Fold,
    builtin_plan,
    check_leakage,
    iemocap_label_set,
    pair_takes,
    read_dataset,
    split,
)
from avemo.datasets.iemocap import MANIFEST, read_manifest
from avemo.datasets.iemocap_video import prepare_iemocap, speaker_side
from avemo.errors import AvemoError, ConfigError, DatasetError, LeakageError, MediaError
from avemo.media import load_audio, read_frames
from avemo.media.cut import video_encoder
from avemo.training import load_data

FPS = 10  # of the generated dialogue videos
ANNOTATORS = "C-E2:\tNeutral;\t()\nC-E3:\tNeutral;\t()\nA-E3:\tval 3; act 2; dom  2;\t()\n"

# dialogue -> utterances as (start, end, name, label, transcript or None); listed out of time order
SESSION1 = {
    "Ses01F_impro01": [
        (10.0100, 11.3925, "Ses01F_impro01_F001", "exc", "Oh, that's great!"),
        (6.2901, 8.2357, "Ses01F_impro01_F000", "neu", "Excuse me."),
        (7.5712, 10.4750, "Ses01F_impro01_M000", "hap", "Do you have your forms?"),
        (12.0, 13.5, "Ses01F_impro01_M001", "xxx", "Yeah."),
        (14.0, 15.0, "Ses01F_impro01_F002", "fru", "This is the wrong line\u2026"),
        (16.0, 17.0, "Ses01F_impro01_M002", "ang", None),
    ],
    "Ses01F_script01_1": [
        (1.5, 3.0, "Ses01F_script01_1_M000", "sad", "I miss him."),
        (3.5, 4.0, "Ses01F_script01_1_F000", "oth", "Me too."),
    ],
}


def _other_session(n: int) -> dict:
    dialogue = f"Ses0{n}M_impro02"
    return {dialogue: [(2.0, 3.0, f"{dialogue}_M000", "ang", "Get out."), (0.5, 1.5, f"{dialogue}_F000", "neu", "Hi.")]}


def _write_split_screen(path: Path, seconds: float, fps: int = FPS) -> None:
    """A 720x480 AVI (MPEG-4) in which frame i carries its number in both halves (red 16 * (i % 16),
    blue 16 * (i // 16)) and the halves differ in green (left 220, right 30)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt, stream.bit_rate = 720, 480, "yuv420p", 2_000_000
        for i in range(int(round(seconds * fps))):
            image = np.zeros((480, 720, 3), np.uint8)
            image[..., 0], image[..., 2] = 16 * (i % 16), 16 * (i // 16)
            image[:, :360, 1], image[:, 360:, 1] = 220, 30
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _frame_numbers(images: np.ndarray) -> list[int]:
    """The frame numbers :func:`_write_split_screen` drew into decoded frames (read in their middle)."""
    middle = images[:, 160:320, 120:240].reshape(len(images), -1, 3).mean(axis=1)
    return [int(round(r / 16)) + 16 * int(round(b / 16)) for r, _, b in middle]


def _write_session(root: Path, n: int, dialogues: dict, *, no_wav: tuple[str, ...] = (),
                   extra_transcript: str = "", videos: dict[str, float | None] | None = None) -> None:
    """The release layout of session ``n``. Each wav lasts its span and holds a noise of its own; a
    dialogue's .avi is an empty file, or, for a dialogue in ``videos``, a split-screen video of that
    many seconds (None: no .avi at all)."""
    videos = videos or {}
    session = root / f"Session{n}"
    labels, transcripts = session / "dialog" / "EmoEvaluation", session / "dialog" / "transcriptions"
    for folder in (labels, transcripts, labels / "Categorical", session / "dialog" / "avi" / "DivX"):
        folder.mkdir(parents=True, exist_ok=True)
    for dialogue, utterances in dialogues.items():
        lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        text_lines = []
        for start, end, name, label, text in utterances:
            lines += [f"[{start:.4f} - {end:.4f}]\t{name}\t{label}\t[2.5000, 3.0000, 2.0000]", *ANNOTATORS.splitlines(), ""]
            if text is not None:
                text_lines.append(f"{name} [{start:08.4f}-{end:08.4f}]: {text}")
            if name not in no_wav:
                wav = session / "sentences" / "wav" / dialogue / f"{name}.wav"
                wav.parent.mkdir(parents=True, exist_ok=True)
                noise = np.random.default_rng(zlib.crc32(name.encode())).standard_normal(int((end - start) * 16000))
                sf.write(wav, (0.1 * noise).astype(np.float32), 16000, subtype="PCM_16")
        (labels / f"{dialogue}.txt").write_text("\n".join(lines) + "\n")
        (labels / "Categorical" / f"{dialogue}_e1_cat.txt").write_text(f"{utterances[0][2]} :Neutral; ()\n")
        stray = extra_transcript if extra_transcript.startswith(dialogue + "_") else ""
        (transcripts / f"{dialogue}.txt").write_text("\n".join(text_lines) + "\n" + stray)
        avi = session / "dialog" / "avi" / "DivX" / f"{dialogue}.avi"
        if dialogue not in videos:
            avi.write_bytes(b"")
        elif videos[dialogue] is not None:
            _write_split_screen(avi, videos[dialogue])


@pytest.fixture(scope="module")
def iemocap(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("iemocap") / "IEMOCAP_full_release"
    stray = "Ses01F_impro01_MXX0 [020.0000-021.0000]: Hmm.\n"
    _write_session(root, 1, SESSION1, extra_transcript=stray)
    for n in range(2, 6):
        _write_session(root, n, _other_session(n))
    return root


def test_reads_the_release_layout_with_speakers_dialogues_and_turns(iemocap):
    scan = read_dataset("iemocap", iemocap)
    clips = {c.take: c for c in scan}
    f000 = clips["Ses01F_impro01_F000"]
    assert f000.speaker == "Ses01F" and f000.dialogue == "Ses01F_impro01" and f000.turn == 0
    assert clips["Ses01F_impro01_M000"].speaker == "Ses01M" and clips["Ses01F_impro01_M000"].turn == 1
    assert clips["Ses01F_impro01_F001"].turn == 2 and clips["Ses01F_impro01_M002"].turn == 5  # M001 (xxx) keeps turn 3
    assert f000.path == iemocap / "Session1" / "sentences" / "wav" / "Ses01F_impro01" / "Ses01F_impro01_F000.wav"
    assert f000.fields["session"] == 1 and f000.fields["label"] == "neu" and f000.fields["start"] == 6.2901
    assert f000.fields["dimensions"] == (2.5, 3.0, 2.0)
    assert f000.fields["dialogue_video"].endswith("DivX/Ses01F_impro01.avi")
    assert scan.speakers == tuple(f"Ses0{n}{g}" for n in range(1, 6) for g in "FM")
    order = [(c.dialogue, c.turn) for c in scan]
    assert order == sorted(order, key=lambda d: (d[0][:5], d[0], d[1]))  # session, dialogue, turn order


def test_root_may_hold_the_release_folder(iemocap):
    assert len(read_dataset("iemocap", iemocap.parent)) == len(read_dataset("iemocap", iemocap))


def test_four_class_protocol_merges_excited_into_happy(iemocap):
    scan = read_dataset("iemocap", iemocap)
    emotions = {c.take: c.emotion for c in scan}
    assert emotions["Ses01F_impro01_F001"] == "happy" and emotions["Ses01F_impro01_M000"] == "happy"
    assert set(scan.emotions) == set(IEMOCAP4) and iemocap_label_set("iemocap4") == IEMOCAP4
    assert scan.left_out == {"fru": 1, "oth": 1, "xxx": 1}
    assert any("left out by protocol iemocap4" in w for w in scan.warnings)


def test_six_class_protocol_of_paper_002(iemocap):
    scan = read_dataset("iemocap", iemocap, protocol="iemocap6")
    emotions = {c.take: c.emotion for c in scan}
    assert emotions["Ses01F_impro01_F001"] == "excited" and emotions["Ses01F_impro01_F002"] == "frustrated"
    assert set(scan.emotions) <= set(IEMOCAP6) and scan.left_out == {"oth": 1, "xxx": 1}
    with pytest.raises(DatasetError, match="protocol 'iemocap7'"):
        read_dataset("iemocap", iemocap, protocol="iemocap7")


def test_transcripts_are_aligned_to_their_utterances(iemocap):
    clips = {c.take: c for c in read_dataset("iemocap", iemocap)}
    assert clips["Ses01F_impro01_F000"].text == "Excuse me."
    assert clips["Ses01F_impro01_M000"].text == "Do you have your forms?"
    assert clips["Ses01F_script01_1_M000"].text == "I miss him."
    assert clips["Ses01F_impro01_M000"].modalities == ("audio", "text")
    no_text = clips["Ses01F_impro01_M002"]
    assert no_text.text is None and no_text.modalities == ("audio",)


def test_transcript_line_without_wav_and_utterance_without_wav_are_reported(tmp_path, iemocap):
    scan = read_dataset("iemocap", iemocap)
    stray = [s for s in scan.skipped if "MXX0" in s.reason]
    assert len(stray) == 1 and "matches no wav file" in stray[0].reason
    assert stray[0].path.name == "Ses01F_impro01.txt:6"  # its line in the transcription file
    root = tmp_path / "release"
    _write_session(root, 1, SESSION1, no_wav=("Ses01F_impro01_F000",))
    scan = read_dataset("iemocap", root)
    missing = [s for s in scan.skipped if s.reason.startswith("no wav file")]
    assert len(missing) == 1 and "Ses01F_impro01_F000.wav" in missing[0].reason
    assert any(s.reason == "transcript of Ses01F_impro01_F000 matches no wav file" for s in scan.skipped)
    assert "Ses01F_impro01_F000" not in {c.take for c in scan}
    with pytest.raises(DatasetError, match="no wav file"):
        read_dataset("iemocap", root, strict=True)


def test_bad_label_lines_are_skipped_with_reasons(tmp_path):
    root = tmp_path / "release"
    _write_session(root, 2, {"Ses02F_impro03": [(1.0, 2.0, "Ses02F_impro03_F000", "neu", "Hi."),
                                                (2.0, 3.0, "Ses02F_impro03_F001", "bored", "Hmm."),
                                                (3.0, 4.0, "Ses02F_impro99_M000", "ang", "No.")]})
    scan = read_dataset("iemocap", root)
    reasons = " | ".join(s.reason for s in scan.skipped)
    assert [c.take for c in scan] == ["Ses02F_impro03_F000"]
    assert "'bored' is not an IEMOCAP label" in reasons and "not an utterance name of dialogue" in reasons
    with pytest.raises(DatasetError, match="no IEMOCAP Session1..Session5"):
        read_dataset("iemocap", tmp_path / "release" / "Session2")


def test_leave_one_session_out_plan(iemocap):
    plan = builtin_plan("iemocap_loso")
    assert plan.dataset == "iemocap" and len(plan) == 5
    clips = list(read_dataset("iemocap", iemocap))
    for k in range(1, 6):
        train, val, test = plan.split(clips, k)
        assert {c.fields["session"] for c in test} == {k}
        assert {c.fields["session"] for c in val} == {k % 5 + 1}
        assert {c.fields["session"] for c in train} == set(range(1, 6)) - {k, k % 5 + 1}
    train, val, test = plan.split(clips, 5)  # paper 002: sessions 1-4 train/val, session 5 test
    assert {c.fields["session"] for c in train + val} == {1, 2, 3, 4}


def test_a_plan_splitting_a_dialogue_is_leakage(iemocap):
    clips = list(read_dataset("iemocap", iemocap))
    speakers = sorted({c.speaker for c in clips})
    fold = Fold(1, test=("Ses01M",), val=(), train=tuple(s for s in speakers if s != "Ses01M"))
    with pytest.raises(LeakageError, match="dialogue iemocap:Ses01F_impro01 is in train"):
        split(clips, fold)
    a, b = clips[0], clips[1]
    assert a.dialogue == b.dialogue
    with pytest.raises(LeakageError, match="dialogue"):
        check_leakage([a], [], [b], speakers=False)


# ------------------------------------------------------------------ utterance videos (avemo prepare)


@pytest.fixture(scope="module")
def av_release(tmp_path_factory) -> Path:
    """Session 1 with real split-screen videos (Ses01F_script01_1's ends at 2.0 s, before its M000's span
    [1.5 - 3.0] does), session 2 with an empty .avi, session 3 without its .avi."""
    root = tmp_path_factory.mktemp("iemocap_av") / "IEMOCAP_full_release"
    _write_session(root, 1, SESSION1, videos={"Ses01F_impro01": 18.0, "Ses01F_script01_1": 2.0})
    _write_session(root, 2, _other_session(2))
    _write_session(root, 3, _other_session(3), videos={"Ses03M_impro02": None})
    return root


@pytest.fixture(scope="module")
def prepared(av_release, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "media"
    calls = []
    report = prepare_iemocap(av_release, out, progress=lambda done, total: calls.append((done, total)))
    return out, report, calls


def test_prepare_cuts_each_utterance_from_its_span_and_its_speakers_half(av_release, prepared):
    out, report, calls = prepared
    assert sorted(report.cut) == ["Ses01F_impro01_F000", "Ses01F_impro01_F001", "Ses01F_impro01_F002",
                                  "Ses01F_impro01_M000", "Ses01F_impro01_M002"]  # both protocols' labels
    assert calls[-1] == (8, 8)  # the utterances with a video file: 6 of session 1, 2 of session 2
    entries = read_manifest(out)
    for take, side, green in (("Ses01F_impro01_F000", "left", 220), ("Ses01F_impro01_M000", "right", 30)):
        entry = entries[take]
        assert entry["side"] == side and entry["crop"] == ([0, 0, 360, 480] if side == "left" else [360, 0, 360, 480])
        frames = read_frames(out / entry["file"])
        assert frames.images.shape[1:] == (480, 360, 3)
        assert abs(frames.images[..., 1].mean() - green) < 8  # the speaker's half, no pixel of the other
        start, end = entry["start"], entry["end"]
        expected = [i for i in range(int(18 * FPS)) if start <= i / FPS < end]  # the source frames in the span
        assert _frame_numbers(frames.images) == expected and entry["frames"] == len(expected)
        assert frames.times[0] == pytest.approx(expected[0] / FPS - start, abs=0.5 / FPS)  # timing kept
        wav = av_release / "Session1" / "sentences" / "wav" / "Ses01F_impro01" / f"{take}.wav"
        track, own = load_audio(out / entry["file"], sr=16000), sf.read(wav, dtype="float32")[0]
        assert track.shape == own.shape and np.array_equal(track, own)  # the utterance's wav, bit-exact


def test_reader_gives_audio_video_text_clips_when_prepared_and_audio_text_clips_otherwise(av_release, prepared):
    out, _, _ = prepared
    plain = {c.take: c for c in read_dataset("iemocap", av_release, protocol="iemocap6")}
    scan = read_dataset("iemocap", av_release, protocol="iemocap6", media=out)
    clips = {c.take: c for c in scan}
    f000, m002 = clips["Ses01F_impro01_F000"], clips["Ses01F_impro01_M002"]
    assert f000.path == out / "Session1" / "Ses01F_impro01" / "Ses01F_impro01_F000.mkv"
    assert f000.modalities == ("audio", "video", "text") and m002.modalities == ("audio", "video")  # M002: no text
    assert f000.fields["video_side"] == "left" and clips["Ses01F_impro01_M000"].fields["video_crop"] == (360, 0, 360, 480)
    assert f000.fields["wav"] == str(plain["Ses01F_impro01_F000"].path)
    assert plain["Ses01F_impro01_F000"].modalities == ("audio", "text")
    for take, clip in clips.items():  # everything else as without media
        before = plain[take]
        assert (clip.speaker, clip.dialogue, clip.turn, clip.text, clip.emotion) == \
               (before.speaker, before.dialogue, before.turn, before.text, before.emotion)
        assert {k: clip.fields[k] for k in before.fields} == dict(before.fields)
    failed = clips["Ses01F_script01_1_M000"]  # its cut failed: it stays an audio+text clip
    assert failed.path.suffix == ".wav" and failed.modalities == ("audio", "text")
    assert any("5 of 10 utterances have no prepared video file" in w for w in scan.warnings)
    take = pair_takes(scan.clips)["iemocap:Ses01F_impro01_F000"]
    assert take["video"].path == take["audio"].path == f000.path
    with pytest.raises(DatasetError, match="not a folder written by avemo prepare"):
        read_dataset("iemocap", av_release, media=av_release)


def test_bad_cases_are_reported_and_skipped_and_nothing_half_written_remains(prepared):
    out, report, _ = prepared
    reasons = {str(s.path): s.reason for s in report.failed}
    assert set(reasons) == {"Ses01F_script01_1_M000", "Ses02M_impro02_M000", "Ses02M_impro02_F000",
                            "Ses03M_impro02_M000", "Ses03M_impro02_F000"}
    assert "Ses01F_script01_1.avi: the span [1.50 - 3.00] s ends after the video (2.00 s)" in reasons["Ses01F_script01_1_M000"]
    assert reasons["Ses02M_impro02_F000"].endswith("Ses02M_impro02.avi: file is empty (0 bytes)")
    assert reasons["Ses03M_impro02_F000"] == "no dialogue video dialog/avi/DivX/Ses03M_impro02.avi in Session3"
    assert all("\n" not in r for r in reasons.values())
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == sorted([MANIFEST] + [f"Session1/Ses01F_impro01/{t}.mkv" for t in report.cut])  # no temp file
    assert "no prepared video" not in report.summary() and report.summary().startswith("10 utterances: 5 cut, 0 up to date, 5 failed")


def test_a_failure_while_writing_leaves_nothing(av_release, tmp_path, monkeypatch):
    import avemo.media.cut as cut

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cut, "_copy_audio", interrupted)  # after the video frames were written
    avi = av_release / "Session1" / "dialog" / "avi" / "DivX" / "Ses01F_impro01.avi"
    wav = next((av_release / "Session1" / "sentences" / "wav" / "Ses01F_impro01").glob("*.wav"))
    with pytest.raises(KeyboardInterrupt):
        cut.cut_clip(avi, tmp_path / "cut" / "x.mkv", start=1.0, end=2.0, audio=wav)
    assert list((tmp_path / "cut").iterdir()) == []
    with pytest.raises(MediaError, match=r"has no audio stream"):  # an audio file without audio
        cut.cut_clip(avi, tmp_path / "cut" / "x.mkv", start=1.0, end=2.0, audio=avi)
    assert list((tmp_path / "cut").iterdir()) == []
    with pytest.raises(ConfigError, match="not 0 <= start < end"):
        cut.cut_clip(avi, tmp_path / "x.mkv", start=2.0, end=1.0)


def test_a_rerun_keeps_what_is_up_to_date_and_recuts_what_changed(tmp_path):
    root = tmp_path / "release"
    _write_session(root, 1, {"Ses01F_script01_1": SESSION1["Ses01F_script01_1"]}, videos={"Ses01F_script01_1": 3.5})
    out = tmp_path / "media"
    first = prepare_iemocap(root, out, codec="mpeg4")
    assert first.cut == ["Ses01F_script01_1_M000"] and not first.failed
    path = out / read_manifest(out)["Ses01F_script01_1_M000"]["file"]
    made = path.stat().st_mtime_ns
    again = prepare_iemocap(root, out, codec="mpeg4")
    assert again.kept == ["Ses01F_script01_1_M000"] and again.cut == [] and path.stat().st_mtime_ns == made
    full = prepare_iemocap(root, out, codec="mpeg4", side="full")  # another request: cut again
    assert full.cut == ["Ses01F_script01_1_M000"] and read_manifest(out)["Ses01F_script01_1_M000"]["crop"] == [0, 0, 720, 480]
    assert read_frames(path).images.shape[1:] == (480, 720, 3)
    label_file = root / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_script01_1.txt"
    label_file.write_text(label_file.read_text().replace("[1.5000 - 3.0000]", "[1.6000 - 3.0000]"))
    scan = read_dataset("iemocap", root, media=out)  # the label file moved the span: the file is stale
    assert scan.clips[0].modalities == ("audio", "text") and any("cut from another span" in w for w in scan.warnings)
    assert prepare_iemocap(root, out, codec="mpeg4", side="full").cut == ["Ses01F_script01_1_M000"]
    assert read_dataset("iemocap", root, media=out).clips[0].has("video")


def test_sides_and_options():
    assert speaker_side("Ses01F_impro01_F000") == "left" and speaker_side("Ses01F_impro01_M000") == "right"
    assert speaker_side("Ses05M_script02_2_M010") == "left" and speaker_side("Ses05M_script02_2_F010") == "right"
    assert speaker_side("Ses01F_impro01_M000", "full") == "full"
    with pytest.raises(ConfigError, match="side 'middle'"):
        speaker_side("Ses01F_impro01_M000", "middle")
    with pytest.raises(ConfigError, match="video encoder 'h265'"):
        video_encoder("h265")
    assert video_encoder("auto") in ("libx264", "mpeg4")


def test_prepare_command(av_release, tmp_path):
    from typer.testing import CliRunner

    from avemo.cli import app

    out = tmp_path / "media"
    result = CliRunner().invoke(app, ["prepare", "--root", str(av_release), "--out", str(out), "--protocol", "iemocap4", "-j", "2"])
    assert result.exit_code == 1, result.output  # some utterances could not be cut
    assert "9 utterances: 4 cut, 0 up to date, 5 failed" in result.output and "Not prepared" in result.output
    assert len(read_manifest(out)) == 4
    export = tmp_path / "features"
    extracted = CliRunner().invoke(app, ["extract", "--dataset", "iemocap", "--root", str(av_release), "--media", str(out),
                                         "-f", "mfcc", "--cache", str(tmp_path / "cache"), "--out", str(export)])
    assert extracted.exit_code == 0, extracted.output
    with open(export / "index.csv", newline="") as fh:
        files = [row["path"] for row in csv.DictReader(fh)]
    assert sorted(Path(f).suffix for f in files) == [".mkv"] * 4 + [".wav"] * 5  # the audio of the cuts is read
    refused = CliRunner().invoke(app, ["prepare", "-d", "meld", "--root", str(av_release), "--out", str(tmp_path / "x")])
    assert isinstance(refused.exception, AvemoError) and "only iemocap needs preparing" in str(refused.exception)
    assert not (tmp_path / "x").exists()
    with pytest.raises(ConfigError, match="media .* is for the iemocap dataset"):
        load_data("ravdess", av_release, media=out)


def test_a_4_2_0_frame_is_cropped_plane_by_plane_as_through_rgb():
    from avemo.media.cut import _cropped, crop_box

    rng = np.random.default_rng(0)
    frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (480, 720, 3), dtype=np.uint8), format="rgb24")
    frame = frame.reformat(format="yuv420p")
    rgb = frame.to_ndarray(format="rgb24")
    for region in ((0.0, 0.0, 0.5, 1.0), (0.5, 0.0, 1.0, 1.0), (0.13, 0.09, 0.71, 0.77)):
        x, y, w, h = crop_box(720, 480, region)
        assert x % 2 == y % 2 == w % 2 == h % 2 == 0
        assert np.array_equal(_cropped(frame, (x, y, w, h)).to_ndarray(format="rgb24"), rgb[y:y + h, x:x + w])


def test_an_interrupted_prepare_keeps_what_it_cut_and_a_rerun_resumes(tmp_path, monkeypatch):
    import avemo.datasets.iemocap_video as iemocap_video

    root, out = tmp_path / "release", tmp_path / "media"
    _write_session(root, 1, {"Ses01F_impro01": SESSION1["Ses01F_impro01"]}, videos={"Ses01F_impro01": 18.0})
    cut_one, calls = iemocap_video._run_job, []

    def interrupted_at_the_third(out_dir, job):
        calls.append(job.take)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return cut_one(out_dir, job)

    monkeypatch.setattr(iemocap_video, "_run_job", interrupted_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        prepare_iemocap(root, out, codec="mpeg4")
    assert sorted(read_manifest(out)) == sorted(calls[:2])  # saved on the way out
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == sorted([MANIFEST] + [f"{t}.mkv" for t in calls[:2]])
    monkeypatch.setattr(iemocap_video, "_run_job", cut_one)
    resumed = prepare_iemocap(root, out, codec="mpeg4")
    assert sorted(resumed.kept) == sorted(calls[:2]) and len(resumed.cut) == 3 and not resumed.failed


def _write_face_split_screen(path: Path, face_video: Path, seconds: float) -> None:
    """A 720x480 split-screen AVI (10 fps): a real face (a RAVDESS clip, scaled to 360x270) in the left
    half, grey noise in the right one."""
    frames = read_frames(face_video, fps=FPS, size=(360, 270)).images
    noise = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt, stream.bit_rate = 720, 480, "yuv420p", 2_000_000
        for i in range(int(round(seconds * FPS))):
            image = np.full((480, 720, 3), 40, np.uint8)
            image[105:375, :360] = frames[min(i, len(frames) - 1)]
            image[:, 360:] = noise.integers(90, 160, (480, 360, 1), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


@pytest.mark.shared_data
def test_the_face_detector_finds_the_speakers_face_in_the_prepared_half(tmp_path, ravdess_video):
    """The cut of the utterance spoken by the actor on the left holds that actor's face, found by the
    toolkit's face detector in (nearly) every frame; the cut of the other actor's utterance holds none of it."""
    from avemo.features.face.detect import get_detector

    root = tmp_path / "IEMOCAP_full_release"
    dialogue = {"Ses01F_impro01": [(0.5, 3.5, "Ses01F_impro01_F000", "neu", "Excuse me."),
                                   (1.0, 3.0, "Ses01F_impro01_M000", "ang", "Get out.")]}
    _write_session(root, 1, dialogue, videos={"Ses01F_impro01": 4.0})
    _write_face_split_screen(root / "Session1" / "dialog" / "avi" / "DivX" / "Ses01F_impro01.avi", ravdess_video, 4.0)
    report = prepare_iemocap(root, tmp_path / "media")
    assert sorted(report.cut) == ["Ses01F_impro01_F000", "Ses01F_impro01_M000"] and not report.failed
    entries = read_manifest(tmp_path / "media")
    detector = get_detector("mediapipe")
    try:
        found = {}
        for take in ("Ses01F_impro01_F000", "Ses01F_impro01_M000"):
            images = read_frames(tmp_path / "media" / entries[take]["file"], fps=5).images
            found[take] = np.mean([len(detector.detect(image)) > 0 for image in images])
    finally:
        detector.close()
    assert found["Ses01F_impro01_F000"] >= 0.9, found  # the female actor (the dialogue's F): the left half
    assert found["Ses01F_impro01_M000"] == 0.0, found


def test_an_iemocap_release_read_as_another_dataset_says_to_read_it_as_iemocap(iemocap):
    """``avemo train --root IEMOCAP_full_release`` (default dataset ravdess): its utterance files were skipped
    as not RAVDESS names, without the hint that the other datasets' folders get."""
    from avemo.training.experiment import load_data

    for root in (iemocap, iemocap.parent):  # the release folder, or the folder holding it
        with pytest.raises(DatasetError) as info:
            load_data("ravdess", root)
        assert str(info.value).startswith(f"{root}: no labelled ravdess files found")
        assert str(info.value).endswith("; the folder is laid out as iemocap's (its Session1..5 folders): read the "
                                        "folder as dataset iemocap")
