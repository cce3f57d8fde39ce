"""Tests of avemo.media: probing, audio decoding and resampling, frames, windows, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from avemo.errors import MediaError, MissingStreamError
from avemo.media import (
    AUDIO_SUFFIXES,
    VIDEO_SUFFIXES,
    iter_audio,
    iter_frames,
    iter_windows,
    load_audio,
    probe,
    read_frames,
    sample_frames,
)
from avemo.media.probe import read_through
from avemo.media.synth import write_clip, write_shifted

SMALL = (96, 72)
VIDEO_CONTAINERS = [".mp4", ".mov", ".mkv", ".webm", ".avi", ".flv", ".ts", ".wmv"]
AUDIO_CONTAINERS = [".wav", ".flac", ".mp3", ".ogg", ".wma"]


# --- probe -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", VIDEO_CONTAINERS)
def test_probe_generated_video(make_clip, suffix):
    path = make_clip(f"probe{suffix}", duration=1.0, size=SMALL, fps=25)
    info = probe(path)
    assert suffix in VIDEO_SUFFIXES
    assert info.has_video and info.has_audio
    assert (info.video.width, info.video.height) == SMALL
    assert info.video.fps == pytest.approx(25.0, rel=1e-3)
    assert info.duration == pytest.approx(1.0, abs=0.15)
    assert info.audio.channels == 1
    assert info.size_bytes == path.stat().st_size


@pytest.mark.parametrize("suffix", AUDIO_CONTAINERS)
def test_probe_generated_audio(make_clip, suffix):
    path = make_clip(f"probe{suffix}", duration=1.0, sample_rate=16000, channels=2)
    info = probe(path)
    assert suffix in AUDIO_SUFFIXES
    assert info.has_audio and not info.has_video  # an mp3 has no cover art here either
    assert info.audio.channels == 2
    # Opus (.ogg) only runs at 48 kHz; the others keep the rate they were written at
    assert info.audio.sample_rate == (48000 if suffix == ".ogg" else 16000)
    assert info.duration == pytest.approx(1.0, abs=0.05)


@pytest.mark.shared_data
def test_probe_real_files(shared_data, ravdess_video, crema_videos):
    stereo = shared_data / "ravdess" / "original_wav_samples" / "03-01-02-01-01-02-01.wav"
    info = probe(stereo)
    assert info.audio.sample_rate == 48000 and info.audio.channels == 2 and info.video is None
    flac = next((shared_data / "ravdess" / "speech_audio" / "Actor_01").glob("*.flac"))
    info = probe(flac)
    assert info.audio.codec == "flac" and info.audio.sample_rate == 48000 and 2.0 < info.duration < 6.0
    info = probe(ravdess_video)
    assert (info.video.width, info.video.height) == (640, 480)
    assert info.video.fps == pytest.approx(29.97, abs=0.01)
    assert info.duration == pytest.approx(4.0, abs=0.05)
    assert info.audio.sample_rate == 44100
    assert len(crema_videos) == 6
    info = probe(crema_videos[0])
    assert info.container == "flv" and (info.video.width, info.video.height) == (480, 360)
    assert info.audio.sample_rate == 44100


# --- audio -------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_stereo_original_is_mixed_down_to_mono(shared_data):
    path = shared_data / "ravdess" / "original_wav_samples" / "03-01-02-01-01-02-01.wav"
    raw, rate = sf.read(path, dtype="float32")
    assert raw.ndim == 2 and raw.shape[1] == 2 and rate == 48000
    native = load_audio(path, sr=48000)
    np.testing.assert_allclose(native, raw.mean(axis=1), atol=1e-7)
    at_16k = load_audio(path)
    assert at_16k.dtype == np.float32 and at_16k.ndim == 1
    assert len(at_16k) == pytest.approx(len(raw) / 3, abs=1)
    np.testing.assert_allclose(at_16k, soxr.resample(raw.mean(axis=1), 48000, 16000, quality="HQ"), atol=1e-5)


def test_channels_in_opposite_polarity_are_not_mixed_to_silence(tmp_path):
    """The same voice in both channels, one inverted (a miswired microphone): their average is
    silence, and the prediction used to say "the audio track is silent". The loudest channel is
    used where the average cancels, with a warning; other stereo is still averaged."""
    from avemo.media.synth import synth_audio

    voice = synth_audio(2.0, 16000, "speech", seed=0)[:, 0]
    inverted, plain = tmp_path / "inverted.wav", tmp_path / "plain.wav"
    sf.write(inverted, np.stack([voice, -voice], axis=1), 16000, subtype="FLOAT")
    sf.write(plain, np.stack([voice, 0.5 * voice[::-1]], axis=1), 16000, subtype="FLOAT")
    said: list[str] = []
    np.testing.assert_allclose(load_audio(inverted, warn=said.append), voice, atol=1e-6)
    assert len(said) == 1 and "cancel each other" in said[0] and "(2.0 s)" in said[0]
    said.clear()
    np.testing.assert_allclose(load_audio(plain, warn=said.append), (voice + 0.5 * voice[::-1]) / 2, atol=1e-6)
    assert said == []


def _tone_file(tmp_path, freq: float, sr: int = 48000, seconds: float = 1.0):
    t = np.arange(int(sr * seconds)) / sr
    path = tmp_path / f"tone{int(freq)}.wav"
    sf.write(path, 0.5 * np.sin(2 * np.pi * freq * t), sr, subtype="FLOAT")
    return path


def _spectrum_peak(y: np.ndarray, sr: int) -> tuple[float, float]:
    y = y[len(y) // 10 : -len(y) // 10]  # away from the resampler's edges
    mag = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.fft.rfftfreq(len(y), 1 / sr)[mag.argmax()]), float(np.sqrt(np.mean(y**2)))


def test_resampling_keeps_a_5khz_tone(tmp_path):
    y = load_audio(_tone_file(tmp_path, 5000.0))
    assert len(y) == 16000
    peak_hz, rms = _spectrum_peak(y, 16000)
    assert peak_hz == pytest.approx(5000.0, abs=2.0)
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.01)  # amplitude kept


def test_resampling_removes_a_10khz_tone_without_aliasing(tmp_path):
    # 10 kHz is above the 8 kHz Nyquist of 16 kHz; plain decimation would fold it to 6 kHz
    y = load_audio(_tone_file(tmp_path, 10000.0))
    _, rms = _spectrum_peak(y, 16000)
    assert rms < 1e-4 * (0.5 / np.sqrt(2))  # > 80 dB down
    band = np.abs(np.fft.rfft(y[1600:-1600]))
    freqs = np.fft.rfftfreq(len(y) - 3200, 1 / 16000)
    assert band[np.abs(freqs - 6000) < 50].max() < 1e-3


@pytest.mark.parametrize("suffix", [".flac", ".mp3", ".ogg", ".wma", ".mp4", ".webm", ".flv"])
def test_segment_decode_equals_slice_of_full_decode(make_clip, suffix):
    # Lossy files carry a tone: FFmpeg's AAC encoder codes the synthetic voice's noise floor
    # with perceptual noise substitution, which the decoder re-synthesises with a random
    # generator, so noise differs between any two decodes. A one-sample misalignment of the
    # 440 Hz tone would still change samples by up to 0.09.
    spec = {"duration": 4.0, "sample_rate": 44100, "audio": "voice" if suffix == ".flac" else "tone"}
    if suffix in VIDEO_SUFFIXES:
        spec["size"] = SMALL
    path = make_clip(f"seg{suffix}", **spec)
    full = load_audio(path)
    for start in (1.7, 2.5):  # > 1 s, so the decoder really seeks where the container allows
        segment = load_audio(path, start=start, duration=0.5)
        first = int(round(start * 16000))
        assert len(segment) == 8000
        np.testing.assert_allclose(segment, full[first : first + 8000], atol=1e-5)


@pytest.mark.shared_data
def test_segment_decode_of_real_files(ravdess_speech_root, shared_data):
    for path in (
        sorted((ravdess_speech_root / "Actor_01").glob("*.flac"))[0],
        sorted((shared_data / "crema_d" / "AudioMP3").glob("*.mp3"))[0],
    ):
        full = load_audio(path)
        segment = load_audio(path, start=1.5, duration=0.5)
        np.testing.assert_allclose(segment, full[24000:32000], atol=1e-5)


def test_iter_audio_blocks_concatenate_to_load_audio(make_clip):
    path = make_clip("blocks.wav", duration=2.3, sample_rate=22050, channels=2)
    blocks = list(iter_audio(path, block_seconds=0.5))
    assert all(len(b) == 8000 for b in blocks[:-1]) and 0 < len(blocks[-1]) <= 8000
    np.testing.assert_array_equal(np.concatenate(blocks), load_audio(path))
    assert len(load_audio(path)) == pytest.approx(2.3 * 16000, abs=2)


# --- video -------------------------------------------------------------------------------


def _portrait_as_a_phone_stores_it(path: Path, upright: np.ndarray, frames: int = 4) -> Path:
    """An mp4 whose frames are ``upright`` turned a quarter counter-clockwise (the sensor's landscape
    frame), with the display matrix of a 90-degree clockwise turn in the track header, as phones
    write portrait videos (every player shows them upright)."""
    import struct

    import av

    stored = np.ascontiguousarray(np.rot90(upright, k=1))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = stored.shape[1], stored.shape[0], "yuv420p"
        for _ in range(frames):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(stored, format="rgb24")))
        out.mux(stream.encode())
    data = bytearray(path.read_bytes())
    header = data.find(b"tkhd") - 4  # version 0: the matrix follows 40 bytes of fields
    matrix = header + 8 + 40
    assert struct.unpack(">9i", data[matrix:matrix + 36])[::4] == (0x10000, 0x10000, 0x40000000)  # identity
    data[matrix:matrix + 36] = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, stored.shape[0] << 16, 0, 0x40000000)
    path.write_bytes(bytes(data))
    return path


def test_a_rotated_video_is_decoded_upright(tmp_path):
    """A phone's portrait video: its frames used to come out sideways (the face detector then missed
    most faces: 22 % face coverage instead of 100 % on a RAVDESS clip turned so)."""
    upright = np.zeros((64, 48, 3), np.uint8)
    upright[:16] = 255  # a white band at the top of the picture
    path = _portrait_as_a_phone_stores_it(tmp_path / "portrait.mp4", upright)
    frames = read_frames(path)
    assert frames.images.shape[1:] == (64, 48, 3)  # height, width of the picture as shown
    assert np.abs(frames.images[0].astype(int) - upright).mean() < 8  # up to the codec's loss
    small = sample_frames(path, 1, size=(24, 32))
    assert small.images.shape[1:] == (32, 24, 3) and small.images[0, :6].mean() > 200 > 50 > small.images[0, 10:].mean()


def test_info_shows_the_displayed_size_of_a_rotated_video(tmp_path, avemo_main):
    upright = np.zeros((64, 48, 3), np.uint8)
    path = _portrait_as_a_phone_stores_it(tmp_path / "portrait.mp4", upright)
    code, out, err = avemo_main("info", path, "--json", "--no-faces")
    assert code == 0, err
    video = json.loads(out)["video"]
    assert (video["width"], video["height"], video["rotation"]) == (48, 64, 90)  # clockwise, as a phone's tag says
    assert json.loads(out)["streams"][0]["details"] == "64x48, 10 fps, shown 48x64 (turned 90 degrees clockwise)"
    plain = tmp_path / "plain.mp4"
    write_clip(plain, duration=0.4, size=(48, 64), fps=10)
    video = json.loads(avemo_main("info", plain, "--json", "--no-faces")[1])["video"]
    assert (video["width"], video["height"], video["rotation"]) == (48, 64, None)


def test_info_says_in_a_few_words_that_a_users_file_follows_no_dataset_convention(tmp_path, avemo_main):
    """``avemo info my_video.mp4`` listed why each dataset's name parser refused the name."""
    mine = write_clip(tmp_path / "my_video.mp4", duration=0.4, size=(48, 64), fps=10)
    code, out, err = avemo_main("info", mine, "--json", "--no-faces")
    assert code == 0, err
    assert json.loads(out)["labels"] == {
        "unparsed": "the name follows no known dataset's naming convention (ravdess, crema_d, emodb)"}
    near = write_clip(tmp_path / "03-01-09-01-01-01-01.mp4", duration=0.4, size=(48, 64), fps=10)
    unparsed = json.loads(avemo_main("info", near, "--json", "--no-faces")[1])["labels"]["unparsed"]
    assert unparsed.startswith("named after the ravdess convention, but RAVDESS emotion code 09 is not one of")


def test_read_frames_all_and_at_target_fps(make_clip):
    path = make_clip("frames.mp4", duration=2.0, size=SMALL, fps=25)
    every = read_frames(path)
    assert every.images.shape == (50, SMALL[1], SMALL[0], 3) and every.images.dtype == np.uint8
    assert every.fps == pytest.approx(25.0)
    np.testing.assert_allclose(np.diff(every.times), 0.04, atol=1e-6)
    slower = read_frames(path, fps=10)
    assert len(slower) == 20
    np.testing.assert_allclose(slower.times, np.arange(20) / 10, atol=1e-6)
    small = read_frames(path, fps=5, size=(32, 24), gray=True)
    assert small.images.shape == (10, 24, 32)
    segment = read_frames(path, start=0.5, duration=0.4)
    assert segment.times.min() >= 0.5 - 1e-6 and segment.times.max() < 0.9
    assert len(segment) == 10
    # the segment's frames are the same images as in the full decode
    np.testing.assert_array_equal(segment.images[0], every.images[int(round(segment.times[0] * 25))])


def test_iter_frames_streams_the_same_frames(make_clip):
    path = make_clip("frames.mp4", duration=2.0, size=SMALL, fps=25)
    streamed = list(iter_frames(path, fps=10))
    batch = read_frames(path, fps=10)
    assert [t for t, _ in streamed] == pytest.approx(list(batch.times))
    np.testing.assert_array_equal(np.stack([im for _, im in streamed]), batch.images)


@pytest.mark.parametrize("n", [1, 8, 80])
def test_sample_frames_count(make_clip, n):
    path = make_clip("frames.mp4", duration=2.0, size=SMALL, fps=25)
    frames = sample_frames(path, n)
    assert frames.images.shape == (n, SMALL[1], SMALL[0], 3)
    assert np.all(np.diff(frames.times) >= 0)  # in time order (repeats allowed when n > frames)
    assert frames.times.min() >= 0 and frames.times.max() < 2.0


@pytest.mark.shared_data
def test_real_video_frames(ravdess_video):
    frames = sample_frames(ravdess_video, 30, size=(80, 70), gray=True)  # paper 001's input shape
    assert frames.images.shape == (30, 70, 80)
    assert frames.fps == pytest.approx(29.97, abs=0.01)


def test_iter_windows_count_and_bounds(make_clip):
    path = make_clip("frames.mp4", duration=2.0, size=SMALL, fps=25)
    windows = list(iter_windows(path, window=1.0, hop=0.5))
    # [0,1), [0.5,1.5), [1,2), and the last, [1.5,2.0+), is at least min_fraction (0.5) long
    assert [w.index for w in windows] == [0, 1, 2, 3]
    assert [w.start for w in windows] == pytest.approx([0.0, 0.5, 1.0, 1.5])
    for w in windows[:3]:
        assert w.end - w.start == pytest.approx(1.0)
        assert len(w.audio) == 16000
        assert len(w.frames) == 25
    for w in windows:
        assert w.frame_times.min() >= w.start - 1e-6 and w.frame_times.max() < w.end
        assert len(w.frames) == len(w.frame_times)
    audio_only = list(iter_windows(path, window=0.5, hop=0.5, video=False))
    assert all(w.frames is None for w in audio_only)
    np.testing.assert_array_equal(np.concatenate([w.audio for w in audio_only]), load_audio(path)[: 4 * 8000])


def test_iter_windows_on_a_clip_shorter_than_a_window(make_clip):
    path = make_clip("short.mp4", duration=0.2, size=SMALL, fps=25)
    windows = list(iter_windows(path, window=1.0, hop=0.5))
    assert len(windows) == 1
    assert 0 < len(windows[0].audio) < 16000 and 1 <= len(windows[0].frames) <= 6


# --- errors ------------------------------------------------------------------------------


def _assert_media_error(excinfo, path, cls=MediaError):
    assert isinstance(excinfo.value, cls)
    message = str(excinfo.value)
    assert str(path) in message and "\n" not in message


def _every_reader_refuses(path, match: str | None = None) -> None:
    """``probe``, ``load_audio`` and ``read_frames`` each raise a one-line MediaError naming ``path``."""
    for call in (probe, load_audio, read_frames):
        with pytest.raises(MediaError, match=match) as excinfo:
            call(path)
        _assert_media_error(excinfo, path)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.mp4"
    _every_reader_refuses(path, "file not found")


def test_directory(tmp_path):
    with pytest.raises(MediaError, match="directory") as excinfo:
        load_audio(tmp_path)
    _assert_media_error(excinfo, tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(MediaError, match="empty") as excinfo:
        probe(path)
    _assert_media_error(excinfo, path)


def test_non_media_file(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    _every_reader_refuses(path, "not a media file")


def test_truncated_mp4(make_clip, tmp_path):
    data = make_clip("whole.mp4", duration=2.0, size=SMALL).read_bytes()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[: len(data) // 2])
    _every_reader_refuses(path)


def test_truncated_flac_gives_what_decodes_and_says_so(make_clip, tmp_path):
    data = make_clip("whole.flac", duration=3.0).read_bytes()
    path = tmp_path / "truncated.flac"
    path.write_bytes(data[: len(data) // 2])
    warnings = []
    y = np.concatenate(list(iter_audio(path, warn=warnings.append)))
    assert 0.5 < len(y) / 16000 < 2.5
    assert len(warnings) == 1 and "header declares 3.00 s of audio" in warnings[0]
    assert f"only {len(y) / 16000:.2f} s could be decoded" in warnings[0]


def test_a_damaged_middle_decodes_around_the_damage(make_clip, damage_middle, tmp_path):
    clip = make_clip("damaged.mp4", duration=4.0, fps=30, size=(160, 120))
    path = damage_middle(clip, tmp_path / "damaged.mp4")
    warnings = []
    frames = list(iter_frames(path, warn=warnings.append))
    assert 60 < len(frames) < 120  # most of the 120 frames, not all
    assert any("video packets could not be decoded and were skipped" in w for w in warnings)
    audio_warnings = []
    y = np.concatenate(list(iter_audio(path, warn=audio_warnings.append)))
    assert any("audio packet" in w for w in audio_warnings)
    assert len(y) / 16000 == pytest.approx(4.0, abs=0.1)  # lost packets become silence: the times stay right


def test_truncated_matroska_warns_for_both_streams(make_clip, tmp_path):
    clip = make_clip("long.mkv", duration=4.0, fps=30, size=(160, 120))
    path = tmp_path / "cut.mkv"
    path.write_bytes(clip.read_bytes()[: int(clip.stat().st_size * 0.3)])
    warnings = []
    frames = list(iter_frames(path, warn=warnings.append))
    y = np.concatenate(list(iter_audio(path, warn=warnings.append)))
    assert frames and len(y)
    assert [w.split(" s of ")[1].split(",")[0] for w in warnings] == ["video", "audio"]
    # each track's own length (its DURATION tag): the video's 4.00 s, the audio's 4.06 s (the file's)
    assert [w.split(" s of ")[0][-4:] for w in warnings] == ["4.00", "4.06"]


@pytest.mark.parametrize("suffix", [".mkv", ".webm"])
def test_an_audio_track_shorter_than_the_video_is_not_called_truncated(tmp_path, suffix):
    """A Matroska / WebM file whose voice stops at 1.5 s of a 3 s video: the container's length (its longest
    track's) was taken for the audio's, so the file was called truncated, and avemo predict cut the
    timeline to where a decoder stopped."""
    from avemo.media.probe import read_through

    path = write_clip(tmp_path / f"short{suffix}", duration=3.0, size=SMALL, fps=10, audio="tone", audio_end=1.5)
    warnings = []
    y = load_audio(path, warn=warnings.append)
    assert len(y) / 16000 == pytest.approx(1.5, abs=0.07) and warnings == []
    assert read_through(path, probe(path)).warnings == ()


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_an_audio_track_that_starts_after_the_video_keeps_its_times(tmp_path, suffix):
    """A recorder that joined late: the first audio sample is 1 s into the file. The samples were moved
    to the start of the file (the voice of second 1 on the timeline at second 0); a segment decode
    gives the same samples as a slice of the whole."""
    path = write_clip(tmp_path / f"late{suffix}", duration=3.0, size=SMALL, fps=10, audio="tone", audio_start=1.0)
    y = load_audio(path)
    assert np.argmax(np.abs(y) > 0.1) / 16000 == pytest.approx(1.0, abs=0.01)
    assert len(y) / 16000 == pytest.approx(3.0, abs=0.07)
    np.testing.assert_array_equal(load_audio(path, start=0.5, duration=1.0), y[8000:24000])


def _paused(path: Path, pause: float) -> Path:
    """A 0.5 s tone, ``pause`` seconds in which the recorder took nothing (no packets: the time stamps jump,
    as a screen recorder's do when it pauses), and a 0.5 s tone again."""
    import av

    from avemo.media.synth import synth_audio

    tone = np.ascontiguousarray(synth_audio(0.5, 16000, "tone", 1, 0, 160.0).T)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        stream.layout = "mono"
        size = 1024
        for start in (0, int((0.5 + pause) * 16000)):
            for i in range(0, tone.shape[1] - size + 1, size):
                frame = av.AudioFrame.from_ndarray(tone[:, i:i + size], format="fltp", layout="mono")
                frame.sample_rate, frame.pts = 16000, start + i
                out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


@pytest.mark.parametrize("pause", [3.0, 12.0])
def test_a_pause_in_a_recording_is_silence_and_the_sound_after_it_keeps_its_time(tmp_path, pause):
    """A pause of more than 10 s (a screen recording's) was not filled: the sound after it came 12 s early
    (under the video of before the pause) and the file was called truncated."""
    path = _paused(tmp_path / f"paused{pause:g}.m4a", pause)
    warnings = []
    y = load_audio(path, warn=warnings.append)
    assert warnings == [] and len(y) / 16000 == pytest.approx(probe(path).duration, abs=0.01)
    loud = np.abs(y) > 0.1
    assert np.argmax(loud[8000:]) / 16000 + 0.5 == pytest.approx(0.5 + pause, abs=0.05)
    np.testing.assert_array_equal(load_audio(path, start=pause, duration=1.0), y[int(pause * 16000):][:16000])


def test_recordings_joined_in_one_mpeg_ts_file_follow_each_other(make_clip, tmp_path):
    """``cat a.ts b.ts`` (a camcorder's .MTS segments copied into one file): the second recording's time
    stamps start again where the first's did. Its frames were dropped as late, and the file had the
    first recording's length."""
    part = make_clip("part.ts", duration=2.0, size=SMALL, fps=10, audio="tone")
    joined = tmp_path / "joined.ts"
    joined.write_bytes(part.read_bytes() * 2)
    length = probe(part).duration
    frames = read_frames(joined)
    assert len(frames) == 40 and np.all(np.diff(frames.times) > 0)
    assert frames.times[20] == pytest.approx(length, abs=0.1)
    assert read_through(joined, probe(joined)).duration == pytest.approx(2 * length, abs=0.05)
    y = load_audio(joined)
    np.testing.assert_allclose(y[int(length * 16000):][:8000], y[:8000], atol=0.02)  # the second begins anew



def test_a_window_of_a_joined_mpeg_ts_file_has_the_frames_of_a_whole_decode(make_clip, tmp_path):
    """A window past 1 s is sought in the file. In MPEG-TS the seek landed on a frame that is no key frame
    (one a recording here: nothing decoded), and a window in the second of joined recordings, whose time
    stamps restart, was not found: both gave no frames ("holds no video frames"); such a window is now
    read from the file's start."""
    part = make_clip("window.ts", duration=2.0, size=SMALL, fps=10, face=True, audio="tone")
    joined = tmp_path / "joined.ts"
    joined.write_bytes(part.read_bytes() * 2)
    whole = read_frames(joined)
    for path, start in ((part, 1.5), (joined, 1.5), (joined, 2.5), (joined, 3.5)):
        window = read_frames(path, start=start, duration=0.4)
        keep = (whole.times >= start - 1e-6) & (whole.times < start + 0.4 - 1e-6)
        np.testing.assert_allclose(window.times, whole.times[keep], atol=1e-6)
        np.testing.assert_array_equal(window.images, whole.images[keep])

def _move_time_stamp(data: bytes, stream_id: int, n: int, seconds: float) -> bytes:
    """An MPEG-TS file's bytes with the PTS and DTS of the ``n``-th PES packet of ``stream_id`` (0xE0: the
    first video stream, 0xC0: the first audio stream) moved by ``seconds``: one damaged time stamp."""
    buf = bytearray(data)
    starts = []
    for at in range(0, len(buf) - 187, 188):  # transport packets that begin a PES packet
        if buf[at] == 0x47 and buf[at + 1] & 0x40:
            start = at + 4 + (1 + buf[at + 4] if buf[at + 3] & 0x20 else 0)
            if buf[start:start + 4] == b"\0\0\1" + bytes([stream_id]):
                starts.append(start)
    start = starts[n]
    for field in range({2: 1, 3: 2}.get(buf[start + 7] >> 6, 0)):  # PTS, then DTS
        at = start + 9 + 5 * field
        b = buf[at:at + 5]
        value = ((b[0] >> 1) & 7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1
        value = (value + round(seconds * 90000)) % (1 << 33)
        buf[at:at + 5] = bytes([(b[0] & 0xF1) | (value >> 29 & 0xE), value >> 22 & 0xFF, (value >> 14 & 0xFE) | 1,
                                value >> 7 & 0xFF, (value << 1 & 0xFE) | 1])
    return bytes(buf)


@pytest.mark.parametrize(("stream_id", "seconds"), [(0xE0, -20.0), (0xE0, 1000.0), (0xC0, -20.0), (0xC0, 1000.0),
                                                    (0xE0, -3.0)])
def test_one_damaged_time_stamp_moves_nothing_after_it(tmp_path, stream_id, seconds):
    """A broadcast capture or a damaged file: one packet's time stamps jump back or on, the next ones are
    in line again. The offset its jump set was kept for the rest of the stream: the video after it came
    20 s late (1000 s on: never put back) and the file was that much longer. Recordings joined after it
    still follow each other."""
    src = write_clip(tmp_path / "src.ts", duration=2.0, size=SMALL, fps=10, audio="tone")
    part = write_shifted(src, tmp_path / "part.ts", 30.0).read_bytes()  # a capture's clock: 30 s in
    path, joined = tmp_path / "damaged.ts", tmp_path / "joined.ts"
    path.write_bytes(part + _move_time_stamp(part, stream_id, 8, seconds))
    joined.write_bytes(part * 2)
    length = read_through(joined, probe(joined)).duration
    assert length == pytest.approx(2 * probe(tmp_path / "part.ts").duration, abs=0.2)
    np.testing.assert_allclose(read_frames(path).times, read_frames(joined).times, atol=1e-6)
    assert read_through(path, probe(path)).duration == pytest.approx(length, abs=1e-6)
    assert len(load_audio(path)) == len(load_audio(joined))


def _recording_starts(path: Path, parts: int) -> list[tuple[float, float]]:
    """(audio, video) start in seconds of each of ``parts`` equal recordings joined in ``path``, as read."""
    from avemo.media.decode import demuxed
    from avemo.media.probe import audio_stream, open_media, video_stream

    with open_media(path) as container:
        streams = [audio_stream(container), video_stream(container)]
        times: dict[int, list[float]] = {s.index: [] for s in streams}
        for packet in demuxed(container, streams, stop=lambda exc: None):
            if packet.pts is not None:  # not the demuxer's flush packet
                times[packet.stream.index].append(float(packet.pts * packet.time_base))
        audio, video = (times[s.index] for s in streams)
    a, v = len(audio) // parts, len(video) // parts
    return [(min(audio[k * a:(k + 1) * a]), min(video[k * v:(k + 1) * v])) for k in range(parts)]


def test_joined_recordings_keep_their_sound_under_their_frames(make_clip, tmp_path):
    """Each stream of a joined recording was moved to where that stream ended: the audio (whole AAC frames)
    ends after the video, so each join put the sound that much later than the frames (13 ms each for a
    RAVDESS clip, 52 ms by the fifth). One offset for the file keeps them as recorded."""
    part = make_clip("part.ts", duration=2.0, size=SMALL, fps=10, audio="tone")
    joined = tmp_path / "joined.ts"
    joined.write_bytes(part.read_bytes() * 5)
    (audio, video), = _recording_starts(part, 1)
    for k, (a, v) in enumerate(_recording_starts(joined, 5)):
        assert (a - v) == pytest.approx(audio - video, abs=1e-3), k
        assert v >= k * 2.0 - 1e-3  # and after the one before


def test_a_joined_recording_whose_clock_is_earlier_than_a_minute_before_is_not_a_day_on(tmp_path):
    """FFmpeg's MPEG-TS demuxer reads time stamps more than a minute before the file's first as past its
    33-bit clock's wrap (26.5 h on): a recording at 1 h joined after one at 2 h came 26.5 h later, and the
    gap was decoded as 26.5 h of silence."""
    src = write_clip(tmp_path / "src.ts", duration=2.0, size=SMALL, fps=10, audio="tone")
    late, early = (write_shifted(src, tmp_path / f"{h}h.ts", h * 3600.0).read_bytes() for h in (2, 1))
    path = tmp_path / "joined.ts"
    path.write_bytes(late + early)
    length = probe(src).duration
    readable = read_through(path, probe(path))
    assert readable.duration == pytest.approx(2 * length, abs=0.05) and not readable.warnings
    assert read_frames(path).times[-1] < 2 * length
    assert len(load_audio(path)) / 16000 == pytest.approx(2 * length, abs=0.05)


def test_an_mpeg_ts_capture_across_its_clocks_wrap_is_continuous(tmp_path):
    """PTS count 90 kHz ticks in 33 bits: a capture wraps to 0 every 26.5 h. FFmpeg's demuxer unwraps it;
    :class:`~avemo.media.decode.Continuity` must not take the wrap for a joined recording."""
    src = write_clip(tmp_path / "src.ts", duration=2.0, size=SMALL, fps=10, audio="tone")
    path = write_shifted(src, tmp_path / "wrap.ts", 2**33 / 90000 - 1.0)  # wraps 1 s in
    frames = read_frames(path)
    assert len(frames) == 20 and np.allclose(np.diff(frames.times), 0.1)
    assert read_through(path, probe(path)).duration == pytest.approx(probe(src).duration, abs=0.05)


@pytest.mark.parametrize(("name", "spec"), [("plain.mp4", {}), ("plain.mov", {}), ("late.mp4", {"audio_start": 1.0}),
                                           ("short.mp4", {"audio_end": 1.5}), ("rate44.mp4", {"sample_rate": 44100})])
def test_the_audio_of_an_mp4_ends_where_its_edit_list_ends_it(tmp_path, name, spec):
    """AAC in MP4: the encoder pads its last frame (up to 1024 samples), which the edit list leaves out;
    load_audio gave it back as audio, 8-48 ms past the video and the reported duration. Now the track
    ends where the file says, also for a track that starts or ends apart from the video, and a segment
    to the end is as long as the same slice."""
    path = write_clip(tmp_path / name, duration=3.0, size=SMALL, fps=10, audio="tone", **spec)
    y = load_audio(path)
    assert len(y) == round(spec.get("audio_end", 3.0) * 16000)
    if "audio_end" not in spec:
        assert len(y) / 16000 == probe(path).duration == probe(path).video.duration
    # (resampled from 44.1 kHz, a decode that seeks differs from the whole decode by up to 6e-5, as it did)
    np.testing.assert_allclose(load_audio(path, start=1.2), y[19200:], rtol=0, atol=1e-4)


@pytest.mark.shared_data
def test_the_audio_of_a_ravdess_video_is_as_long_as_its_video(ravdess_video):
    info = probe(ravdess_video)
    assert len(load_audio(ravdess_video)) == round(info.video.duration * 16000) == round(info.duration * 16000)


def test_float_audio_with_nan_or_inf_is_named(tmp_path):
    y = (0.3 * np.sin(np.arange(32000) * 2 * np.pi * 200 / 16000)).astype(np.float32)
    y[1000:1100] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, y, 16000, subtype="FLOAT")
    with pytest.raises(MediaError, match="NaN or infinite samples") as excinfo:
        load_audio(path)
    _assert_media_error(excinfo, path)


@pytest.mark.parametrize("default", [0, 1])
def test_of_several_audio_streams_the_one_with_sound_is_used(tmp_path, default):
    from avemo.media.synth import write_audio_streams

    path = write_audio_streams(tmp_path / f"two_{default}.mkv", ("silence", "voice"), default=default)
    assert np.abs(load_audio(path)).max() > 0.1  # stream 0 is silent
    streams = probe(path).streams
    assert [(s.index, s.kind, s.used, s.default) for s in streams] == [
        (0, "audio", False, default == 0), (1, "audio", True, default == 1)]


def test_of_several_silent_streams_the_default_one_is_used(tmp_path):
    from avemo.media.synth import write_audio_streams

    path = write_audio_streams(tmp_path / "mute.mkv", ("silence", "silence"), default=1)
    assert [s.used for s in probe(path).streams] == [False, True]


def test_a_concat_list_named_like_a_video_is_not_followed(make_clip, tmp_path):
    """FFmpeg would read an ffconcat list (and the files it names) whatever the file is called."""
    (tmp_path / "other.mp4").write_bytes(make_clip("other.mp4", duration=1.0, size=SMALL).read_bytes())
    path = tmp_path / "playlist.mp4"
    path.write_text("ffconcat version 1.0\nfile 'other.mp4'\n")  # FFmpeg's concat demuxer reads other.mp4
    _every_reader_refuses(path, "not a media file")


def test_corrupt_header(make_clip, tmp_path):
    data = make_clip("whole.mp4", duration=2.0, size=SMALL).read_bytes()
    path = tmp_path / "header.mp4"
    path.write_bytes(b"\x00" * 64 + data[64:])
    with pytest.raises(MediaError) as excinfo:
        load_audio(path)
    _assert_media_error(excinfo, path)


def test_audio_only_file_asked_for_frames(make_clip):
    path = make_clip("speech.wav", duration=1.0)
    for call in (read_frames, lambda p: sample_frames(p, 4), lambda p: list(iter_frames(p))):
        with pytest.raises(MissingStreamError) as excinfo:
            call(path)
        assert excinfo.value.stream == "video"
        _assert_media_error(excinfo, path, MissingStreamError)


def test_video_without_audio_asked_for_audio(make_clip):
    path = make_clip("silent.mp4", duration=1.0, size=SMALL, audio=None)
    assert not probe(path).has_audio
    for call in (load_audio, lambda p: list(iter_windows(p))):
        with pytest.raises(MissingStreamError) as excinfo:
            call(path)
        assert excinfo.value.stream == "audio"
        _assert_media_error(excinfo, path, MissingStreamError)
    assert len(read_frames(path)) == 25  # the video itself is fine


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".ts"])
def test_a_file_whose_streams_start_late_has_its_frames_timed_as_its_sound(tmp_path, suffix):
    """Every timestamp of the file 5 s on (a cut recording, an MPEG-TS capture): the audio was read from
    the container's start, the video frames at their raw times, so the face came 5 s after the voice
    (and after the end of the timeline). A segment is found by the same times."""
    import av

    src = write_clip(tmp_path / "src.mp4", duration=2.0, size=SMALL, fps=10, audio="tone", audio_start=1.0)
    path = write_shifted(src, tmp_path / f"shifted{suffix}", 5.0)
    with av.open(str(path)) as container:
        assert container.start_time == 5_000_000  # the file really starts at 5 s
    times = [t for t, _ in iter_frames(path)]
    assert times[0] == pytest.approx(0.0, abs=1e-6) and times[-1] == pytest.approx(1.9, abs=1e-6)
    y = load_audio(path)
    assert np.argmax(np.abs(y) > 0.1) / 16000 == pytest.approx(1.0, abs=0.01)  # the tone's onset, as in src
    assert [round(t, 2) for t, _ in iter_frames(path, start=1.0, duration=0.5)] == [1.0, 1.1, 1.2, 1.3, 1.4]


@pytest.mark.parametrize("suffix", [".mkv", ".webm", ".mp4"])
def test_a_file_whose_streams_start_late_is_as_long_as_its_media(tmp_path, suffix):
    """A 4 s Matroska file whose streams start at 5 s was 9 s long (FFmpeg's muxer writes the segment's
    ``Duration`` as the last packet's end time), for ``avemo info`` and ``predict``: the timeline ran 5 s
    past the end and half of the frames sampled over the clip were its last one. MP4 (the offset is an
    edit list's empty edit) was right and stays so: each is as long as the same copy not shifted."""
    src = write_clip(tmp_path / f"src{suffix}", duration=4.06, size=SMALL, fps=25, audio="tone")
    unshifted = write_shifted(src, tmp_path / f"copy{suffix}", 0.0)
    path = write_shifted(src, tmp_path / f"shifted{suffix}", 5.0)
    length = probe(unshifted).duration
    assert length == pytest.approx(4.06, abs=0.15)
    # MP4: shifted, the AAC encoder's priming (64 ms before the video) is no longer cut by the edit list
    tolerance = 0.07 if suffix == ".mp4" else 1e-3
    info = probe(path)
    assert info.duration == pytest.approx(length, abs=tolerance)
    assert info.video.duration == pytest.approx(probe(unshifted).video.duration, abs=tolerance)
    assert read_through(path, info).duration == pytest.approx(info.duration, abs=1e-3)
    times = sample_frames(path, 8, size=(16, 16)).times
    assert len(set(times)) == 8 and times[-1] < info.duration  # spread over the clip, none repeated
    assert times == pytest.approx(sample_frames(unshifted, 8, size=(16, 16)).times, abs=0.07)


def _amplitude(y: np.ndarray, sr: int, freq: float) -> float:
    """The amplitude of the ``freq`` Hz sinusoid in ``y`` (a whole number of its periods), away from the edges."""
    y = y[sr // 10 : len(y) - sr // 10]
    t = np.arange(len(y)) / sr
    return float(2 * np.abs(np.mean(y * np.exp(-2j * np.pi * freq * t))))


def test_the_lfe_channel_of_a_5_1_track_is_left_out_of_the_mono_mix(tmp_path):
    """A 5.1 track was averaged over its six channels: a loud 50 Hz hum in the LFE channel came out at
    1/6 of its level, louder than the voice in the centre. Now it is folded down as ITU-R BS.775 and
    FFmpeg do: the LFE left out, the centre at twice the weight of a surround channel."""
    from avemo.media.synth import write_audio

    sr = 48000
    t = np.arange(2 * sr) / sr
    surround = np.zeros((len(t), 6), np.float32)  # FL FR FC LFE BL BR
    surround[:, 2] = 0.5 * np.sin(2 * np.pi * 440.0 * t)  # the speech band, in the centre
    surround[:, 3] = 0.8 * np.sin(2 * np.pi * 50.0 * t)  # the hum, in the LFE channel
    y = load_audio(write_audio(tmp_path / "hum51.wav", surround, sr, "5.1"))
    assert _amplitude(y, 16000, 50.0) < 0.01 * 0.8 / 6  # averaged, it had 0.8 / 6
    centre = 1 / (2 * np.sqrt(0.5) + 1 + 2 * 0.5)  # C's weight: 1 over the weights' sum (L, R, C, Ls, Rs)
    assert _amplitude(y, 16000, 440.0) == pytest.approx(0.5 * centre, rel=0.02)


@pytest.mark.parametrize("layout", ["2.1", "quad", "5.0", "5.1", "5.1(side)", "6.1", "7.1", "7.1(wide)"])
def test_loudspeaker_layouts_are_mixed_to_mono_as_ffmpeg_does(tmp_path, layout):
    """The mono mix of a loudspeaker layout is FFmpeg's own (libswresample's default rematrix, which
    drops the LFE), scaled so that its weights sum to 1 (a sound in every channel keeps its level)."""
    import av

    from avemo.media.synth import write_audio

    channels = len(av.AudioLayout(layout).channels)
    x = np.random.default_rng(0).uniform(-0.2, 0.2, (16000, channels)).astype(np.float32)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x.T), format="fltp", layout=layout)
    frame.sample_rate, frame.pts = 16000, 0
    resampler = av.AudioResampler(format="flt", layout="mono", rate=16000)
    ffmpeg = np.concatenate([f.to_ndarray().ravel() for f in [*resampler.resample(frame), *resampler.resample(None)]])
    ones = av.AudioFrame.from_ndarray(np.ones((channels, 1024), np.float32), format="fltp", layout=layout)
    ones.sample_rate, ones.pts = 16000, 0
    gain = np.concatenate([f.to_ndarray().ravel() for f in av.AudioResampler(format="flt", layout="mono",
                                                                             rate=16000).resample(ones)])[0]
    ours = load_audio(write_audio(tmp_path / f"{layout}.wav", x, 16000, layout))
    np.testing.assert_allclose(ours, ffmpeg / gain, atol=2e-4)  # WAV stores 16 bits


def test_surround_channels_in_opposite_polarity_use_the_loudest_mixed_channel_not_the_lfe(tmp_path):
    """The cancellation guard of stereo holds for 5.1: L and R in opposite polarity (nothing else but a
    hum in the LFE) mix to near silence, and the loudest channel of the mix is used, never the LFE."""
    from avemo.media.synth import synth_audio, write_audio

    voice = synth_audio(2.0, 16000, "speech", seed=0)[:, 0]
    surround = np.zeros((len(voice), 6), np.float32)
    surround[:, 0], surround[:, 1] = voice, -voice
    surround[:, 3] = 0.9 * np.sin(2 * np.pi * 50.0 * np.arange(len(voice)) / 16000)
    said: list[str] = []
    y = load_audio(write_audio(tmp_path / "inverted51.wav", surround, 16000, "5.1"), warn=said.append)
    np.testing.assert_allclose(y, voice, atol=1e-4)
    assert len(said) == 1 and "cancel each other" in said[0]


def test_info_on_a_labelled_folder_shows_the_rows_of_its_labels_csv(tmp_path, avemo_main):
    """``avemo info FOLDER`` on a folder labelled by a labels.csv (``--dataset folder``) said of each file
    "the name follows no known dataset's naming convention", whatever the CSV said of it."""
    write_clip(tmp_path / "Sprecher 1" / "Wut é.mp4", duration=0.4, size=(48, 64), fps=10)
    write_clip(tmp_path / "extra.mp4", duration=0.4, size=(48, 64), fps=10)
    (tmp_path / "labels.csv").write_text("file;label;speaker;text;gender\nSprecher 1/Wut é.mp4;Angry;01;Hi;f\n"
                                         "gone.wav;sad;2;;m\n", encoding="utf-8")
    code, out, err = avemo_main("info", tmp_path, "--json", "--no-faces")
    assert code == 0, err
    labels = {Path(r["path"]).name: r["labels"] for r in json.loads(out)}
    csv_path = str(tmp_path / "labels.csv")
    assert labels == {
        "Wut é.mp4": {"labels_csv": csv_path, "emotion": "angry", "speaker": "01", "take": "Sprecher 1/Wut é",
                      "modalities": ["audio", "video", "text"], "text": "Hi", "gender": "f"},
        "extra.mp4": {"labels_csv": csv_path, "skipped": "not listed in labels.csv"}}
    assert f"avemo: warning: {tmp_path / 'gone.wav'}: labels.csv line 3: file not found" in err
    (tmp_path / "labels.csv").write_text("file;speaker\nextra.mp4;1\n", encoding="utf-8")
    code, out, err = avemo_main("info", tmp_path, "--json", "--no-faces")
    assert code == 1 and len(json.loads(out)) == 2  # the files are still described, from their names
    assert f"avemo: error: {csv_path}: labels CSV lacks column(s) emotion (" in err
