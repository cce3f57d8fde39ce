"""The IEMOCAP reader on a generated copy of the official release layout (no IEMOCAP file is in the
project), its label protocols, the leave-one-session-out plan, and dialogue leakage checks."""

from __future__ import annotations

from pathlib import Path

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
    read_dataset,
    split,
)
from avemo.errors import DatasetError, LeakageError

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


def _write_session(root: Path, n: int, dialogues: dict, *, no_wav: tuple[str, ...] = (),
                   extra_transcript: str = "") -> None:
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
                t = np.arange(1600) / 16000
                sf.write(wav, (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
        (labels / f"{dialogue}.txt").write_text("\n".join(lines) + "\n")
        (labels / "Categorical" / f"{dialogue}_e1_cat.txt").write_text(f"{utterances[0][2]} :Neutral; ()\n")
        stray = extra_transcript if extra_transcript.startswith(dialogue + "_") else ""
        (transcripts / f"{dialogue}.txt").write_text("\n".join(text_lines) + "\n" + stray)
        (session / "dialog" / "avi" / "DivX" / f"{dialogue}.avi").write_bytes(b"")


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
