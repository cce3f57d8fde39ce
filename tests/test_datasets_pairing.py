"""Pairing the 01/02/03 files of RAVDESS takes (and CREMA-D audio/video) without decoding media."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from avemo.datasets import pair_takes, read_crema_d, read_ravdess
from avemo.errors import DatasetError


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def test_pair_ravdess_modalities(tmp_path):
    touch(
        tmp_path,
        "Actor_01/01-01-07-02-02-01-01.mp4",
        "Actor_01/02-01-07-02-02-01-01.mp4",
        "Actor_01/03-01-07-02-02-01-01.wav",
        "Actor_01/03-01-01-01-01-01-01.wav",  # audio only
        "Actor_02/02-02-03-02-01-02-02.mp4",  # a sung take, video only
    )
    scan = read_ravdess(tmp_path)
    assert scan.skipped == []
    takes = pair_takes(scan)
    assert set(takes) == {"ravdess:01-07-02-02-01-01", "ravdess:01-01-01-01-01-01", "ravdess:02-03-02-01-02-02"}
    full = takes["ravdess:01-07-02-02-01-01"]
    assert full.files == (("audio", "video"), ("audio",), ("video",))
    assert full.modalities == ("audio", "video")
    assert (full.speaker, full.emotion, full.take) == ("01", "disgust", "01-07-02-02-01-01")
    assert full["audio"].path.name == "03-01-07-02-02-01-01.wav"
    assert full.clips[("audio", "video")].path.name.startswith("01-")
    assert full.clip_for("audio").path.name.startswith("03-")  # the audio-only file is preferred for sound
    assert full.clip_for("video").path.name.startswith("02-")  # the silent video for frames
    assert [c.modalities for c in full] == [("audio", "video"), ("audio",), ("video",)]
    audio_only = takes["ravdess:01-01-01-01-01-01"]
    assert audio_only.clip_for("video") is None and "video" not in audio_only
    with pytest.raises(DatasetError, match="has no video file"):
        audio_only["video"]
    song = takes["ravdess:02-03-02-01-02-02"]
    assert song.clip_for("audio") is None and song.clip_for("video").modalities == ("video",)


def test_pair_crema_d_audio_and_video(tmp_path):
    touch(tmp_path, "AudioWAV/1005_TIE_SAD_LO.wav", "VideoFlash/1005_TIE_SAD_LO.flv", "AudioWAV/1006_TIE_SAD_LO.wav")
    takes = pair_takes(read_crema_d(tmp_path))
    assert takes["crema_d:1005_TIE_SAD_LO"].files == (("audio", "video"), ("audio",))
    assert takes["crema_d:1006_TIE_SAD_LO"].files == (("audio",),)


def test_pair_rejects_two_files_of_one_modality_and_disagreeing_labels(tmp_path):
    touch(tmp_path, "a/03-01-07-02-02-01-01.wav", "b/03-01-07-02-02-01-01.flac")
    clips = read_ravdess(tmp_path / "a").clips + read_ravdess(tmp_path / "b").clips
    with pytest.raises(DatasetError) as info:
        pair_takes(clips)
    assert "two audio files" in str(info.value) and "03-01-07-02-02-01-01.flac" in str(info.value)
    wrong = replace(clips[1], modalities=("audio", "video"), emotion="happy")
    with pytest.raises(DatasetError, match="disagree"):
        pair_takes([clips[0], wrong])


def test_takes_of_different_datasets_stay_apart(tmp_path):
    touch(tmp_path / "r", "03-01-07-02-02-01-01.wav")
    clip = read_ravdess(tmp_path / "r").clips[0]
    other = replace(clip, dataset="folder", path=tmp_path / "x.wav")
    takes = pair_takes([clip, other])
    assert len(takes) == 2 and {t.dataset for t in takes.values()} == {"ravdess", "folder"}


@pytest.mark.shared_data
def test_shared_video_pairs_with_its_audio_take(shared_data, ravdess_video):
    audio = read_ravdess(shared_data / "ravdess" / "speech_audio")
    video = read_ravdess(ravdess_video.parent)
    takes = pair_takes(audio.clips + video.clips)
    assert len(takes) == 1200
    take = takes["ravdess:01-07-02-02-01-01"]
    assert take.files == (("audio", "video"), ("audio",))
    assert take["audio"].path.name == "03-01-07-02-02-01-01.flac"
    assert sum(len(t.files) == 2 for t in takes.values()) == 1
