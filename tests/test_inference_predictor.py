"""The Predictor on real clips and on generated edge cases (one bundled model loaded per module)."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pandas as pd
import pytest

from avemo.datasets.labels import CREMA_D, RAVDESS, LabelSet
from avemo.errors import AvemoError, CheckpointError, MediaError, MissingStreamError
from avemo.inference.bundle import read_bundle
from avemo.inference.windows import WindowGrid

LABELS = read_bundle()[0].labels  # the bundled model's classes (its fusion space)


def check_prediction(r, *, audio: bool, video: bool):
    """Invariants every prediction must satisfy (``tau``, ``speech_share``: the bundled model's abstention)."""
    from avemo.inference.bundle import BUNDLE_DIR

    abstention = read_bundle(BUNDLE_DIR)[0].abstention
    tau, speech_share = abstention.tau, abstention.speech_share
    assert list(r.probabilities) == list(LABELS)
    assert sum(r.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert r.emotion in LABELS
    assert set(r.modalities) == {"audio", "video"}
    assert r.modalities["audio"].used is audio and r.modalities["video"].used is video
    for status in r.modalities.values():
        assert (status.reason is None) == status.used
        if status.used:
            assert sum(status.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    if audio != video:  # a lone expert: the clip's distribution is that expert's own
        assert r.probabilities == pytest.approx(r.modalities["audio" if audio else "video"].probabilities, abs=1e-6)
    assert r.uncertain is (max(r.probabilities.values()) < tau)
    assert not audio or r.speech > 0  # the VAD found speech in the audio track
    bounds = WindowGrid().bounds(r.duration)
    assert len(r.timeline) == len(bounds)
    for w, (start, end) in zip(r.timeline, bounds, strict=True):
        assert (w.start, w.end) == pytest.approx((start, end))
        if audio:  # the audio expert votes on the windows with enough speech, and only on those
            assert w.audio is (w.speech >= speech_share)
        else:
            assert not w.audio
        if w.emotion is None:  # no speech and no face in this window
            assert w.probabilities is None and w.uncertain and not w.video
        else:
            assert sum(w.probabilities.values()) == pytest.approx(1.0, abs=1e-5) and w.emotion in LABELS
            assert w.uncertain is (max(w.probabilities.values()) < tau)
    assert not audio or any(w.audio for w in r.timeline)
    data = r.to_dict()
    assert data["emotion"] == r.emotion and len(data["timeline"]) == len(r.timeline)
    assert data["uncertain"] is r.uncertain and all(isinstance(w["uncertain"], bool) for w in data["timeline"])


# ----------------------------------------------------------------------------- real clips
@pytest.mark.shared_data
def test_real_ravdess_video_uses_both_modalities(predictor, ravdess_video):
    r = predictor.predict(ravdess_video)
    check_prediction(r, audio=True, video=True)
    assert r.duration == pytest.approx(4.0, abs=0.05)
    assert r.face_coverage > 0.9  # a frontal face in every frame
    assert all(w.video for w in r.timeline)
    assert r.model["name"] == "avemo-default" and r.model["engine"] == "torch"
    timeline = r.timeline_frame()
    assert isinstance(timeline, pd.DataFrame) and len(timeline) in (7, 8)  # 4.0 s; 8 if the tail is >= 0.5 s
    assert list(timeline.columns) == ["start", "end", "emotion", *LABELS, "audio", "video", "speech",
                                      "uncertain", "crowd", "crowd_gated"]  # the crowd columns as in the CSV
    assert timeline["crowd"].tolist() == pytest.approx([w.crowd for w in r.timeline], nan_ok=True)
    assert timeline["crowd"].notna().all() and not timeline["crowd_gated"].any()  # one speaker: scored, not gated
    assert r.timeline[0].speech < 0.5  # the silence before the sentence
    assert timeline["start"].tolist()[:7] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    assert timeline["end"].iloc[-1] == pytest.approx(r.duration)


@pytest.mark.shared_data
def test_real_crema_d_flv_and_mp3(predictor, crema_videos, shared_data):
    r = predictor.predict(crema_videos[0])
    check_prediction(r, audio=True, video=True)
    assert 1.0 < r.duration < 3.5
    mp3 = sorted((shared_data / "crema_d" / "AudioMP3").glob("*.mp3"))[0]
    r = predictor.predict(mp3)
    check_prediction(r, audio=True, video=False)
    assert "audio-only" in r.modalities["video"].reason and r.face_coverage is None
    assert not any(w.video for w in r.timeline)


@pytest.mark.shared_data
def test_audio_expert_clip_embedding_equals_the_whisper_extractor(predictor, ravdess_video):
    """One encoder pass pooled over the clip == the whisper_base features the head was trained on."""
    from avemo.features.base import get_extractor
    from avemo.inference.audio import WhisperAudioExpert

    audio = predictor._backend.audio
    if not isinstance(audio, WhisperAudioExpert):
        pytest.skip("the bundled audio head is not a whisper_base model")
    clip, windows, duration, _ = audio.embed(ravdess_video, WindowGrid())
    spec = next(iter(audio.ckpt.inputs.values()))  # the head's input: layer average or concatenated layer means
    reference = get_extractor("whisper_base", **dict(spec.config)).extract(ravdess_video)["x"]
    np.testing.assert_allclose(clip, reference, atol=1e-4)
    assert duration == pytest.approx(4.0, abs=0.05) and sorted(windows)[:2] == [0, 1]


def test_whisper_states_concatenate_the_layers_as_the_extractor_does():
    """combine="concat": per-frame states joined over the 7 layers; their frame mean is the layer means, layer 0 first."""
    import torch

    from avemo.features.base import get_extractor
    from avemo.inference.audio import _whisper_states_class, load_whisper_encoder

    y = np.random.default_rng(1).normal(scale=0.1, size=16000).astype(np.float32)
    module = _whisper_states_class()(load_whisper_encoder(), None, "concat")
    with torch.inference_mode():
        states = module(torch.from_numpy(y)[None])[0].numpy()
    assert states.shape == (50, 7 * 512)
    reference = get_extractor("whisper_base").from_signal(y, 16000)["layer_means"].reshape(-1)
    np.testing.assert_allclose(states.mean(axis=0), reference, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("combine", ["mean", "concat"])
def test_layer_norm_head_reads_the_extractors_view_on_torch_and_onnx(combine, make_clip, tmp_path):
    """A head trained with ``layer_norm``: the expert's pooled clip embedding (layer means standardised,
    then combined) is the extractor's ``x``, and the ONNX graphs plus the export's ``pooling`` give the
    same logits as torch."""
    import torch

    from avemo.features.base import get_extractor
    from avemo.inference.audio import WhisperAudioExpert, make_audio_expert
    from avemo.models import create_model
    from avemo.models.checkpoint import load_checkpoint, save_checkpoint
    from avemo.models.normalization import ArraySet, Normalizer

    torch.manual_seed(0)
    model = create_model("whisper_logreg", num_classes=len(RAVDESS), combine=combine, layer_norm=True)
    width = 512 * (7 if combine == "concat" else 1)
    norm = Normalizer.fit(ArraySet({"audio": list(np.random.default_rng(0).normal(size=(6, width)))}),
                          dict(model.inputs))
    ckpt = load_checkpoint(save_checkpoint(tmp_path / "ckpt", model, labels=RAVDESS, normalizer=norm))
    clip = make_clip("ln.wav", duration=1.5, audio="voice")
    expert = make_audio_expert(ckpt, device="cpu")
    assert isinstance(expert, WhisperAudioExpert) and expert.pooling == {"layer_norm": True, "combine": combine}
    embedding, windows, _, _ = expert.embed(clip, WindowGrid())
    reference = get_extractor("whisper_base", combine=combine, layer_norm=True).extract(clip)["x"]
    np.testing.assert_allclose(embedding, reference, atol=1e-4)
    assert embedding.shape == (width,) and all(w.shape == (width,) for w in windows.values())
    if combine == "mean":  # the graphs: states of every layer out of the encoder, the pooling in numpy
        expert.export_onnx(tmp_path / "onnx")
        graphs = WhisperAudioExpert.from_onnx(tmp_path / "onnx", expert.name, expert.labels, pooling=expert.pooling)
        np.testing.assert_allclose(graphs.analyse(clip, WindowGrid()).clip_logits,
                                   expert.analyse(clip, WindowGrid()).clip_logits, atol=1e-3)


def test_cached_whisper_encoder_equals_the_package_weights():
    import torch

    from avemo.features.audio.whisper_encoder import load_encoder
    from avemo.inference.audio import _load_encoder_uncached, encoder_cache_file

    cached = _load_encoder_uncached()  # made from the packages on first use, from the cache file after
    assert encoder_cache_file().is_file()
    cached = _load_encoder_uncached()
    reference = load_encoder()
    a, b = cached.state_dict(), reference.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(cached.mel_filters, reference.mel_filters) and torch.equal(cached.window, reference.window)


def test_audio_is_encoded_in_overlapping_passes_and_windows_are_pooled_across_them(predictor, make_clip, monkeypatch):
    """A fake encoder whose frames carry their time in the pass shows which frames each window pools: a
    65 s file is read in passes of 6 s overlapping by 2 s, each giving its middle 4 s (the first its first
    4 s, the last its end), so no frame lies more than 5 s into a pass; the passes of one length go to the
    encoder 5 at a time (as many frames as one 30 s pass)."""
    from avemo.inference.audio import WhisperAudioExpert

    audio = predictor._backend.audio
    if not isinstance(audio, WhisperAudioExpert):
        pytest.skip("the bundled audio head is not a whisper_base model")

    class FakeEncoder:
        calls: list[tuple[int, int]] = []

        def __call__(self, audio):
            self.calls.append(audio.shape)
            where = (np.arange(-(-audio.shape[1] // 320)) + 0.5) * 0.02  # each frame's time in its pass
            return {"states": np.broadcast_to(where[None, :, None], (audio.shape[0], len(where), 512)).astype(np.float32)}

    fake = FakeEncoder()
    monkeypatch.setattr(audio, "encoder", fake)
    batches = []
    clip, windows, duration, _ = audio.embed(make_clip("long.wav", duration=65.0, audio="tone"), WindowGrid(),
                                             on_windows=lambda w: batches.append(sorted(w)))
    # 5 s (no context before it), 15 passes of 6 s every 4 s in calls of 5, the last 2 s
    assert fake.calls == [(1, 80000), (5, 96000), (5, 96000), (5, 96000), (1, 32000)]
    # windows are handed over as soon as they are complete: after each pass, and the last one at the end
    assert [(b[0], b[-1]) for b in batches][:2] == [(0, 6), (7, 14)] and batches[-1] == [129]
    assert sum(batches, []) == list(range(130)) and windows == {}  # each window once, nothing kept
    seen = {}
    audio.embed(make_clip("long.wav", duration=65.0, audio="tone"), WindowGrid(), on_windows=seen.update)
    assert seen[0][0] == pytest.approx(0.5) and seen[8][0] == pytest.approx(1.5)  # [4, 5) s: the 2nd pass's 1-2 s
    assert seen[7][0] == pytest.approx((25 * 3.75 + 25 * 1.25) / 50)  # [3.5, 4.5): from both passes
    assert max(w[0] for w in seen.values()) < 5.0 and seen[129][0] == pytest.approx(1.75)
    assert duration == pytest.approx(65.0) and clip[0] == pytest.approx((200 * 2.0 + 3000 * 3.0 + 50 * 1.5) / 3250)


@pytest.mark.shared_data
def test_a_voice_is_read_alike_wherever_it_lies_in_a_long_file(predictor, ravdess_video, tmp_path):
    """The same utterance 0 s and 20 s into a 30 s recording: read in one 30 s encoder pass, its windows at
    20 s came out neutral (p(disgust) 0.00 where it was 0.98 at the start of the file). And the clip:
    the mean over the whole file's frames, 26 s of them silence, read "neutral" (p 0.47, uncertain) at
    either offset, where the utterance alone reads disgust and so does every window with its speech."""
    import soundfile as sf

    from avemo.media import load_audio

    voice = load_audio(ravdess_video)
    alone = predictor.predict(ravdess_video, modalities="audio")
    read = []
    for offset in (0, 20):
        y = np.zeros(30 * 16000, dtype=np.float32)
        y[offset * 16000 : offset * 16000 + len(voice)] = voice
        sf.write(tmp_path / f"at_{offset}.wav", y, 16000)
        r = predictor.predict(tmp_path / f"at_{offset}.wav")
        windows = [w for w in r.timeline if w.audio]
        read.append(([w.emotion for w in windows], np.mean([w.probabilities["disgust"] for w in windows])))
        assert r.emotion == alone.emotion == "disgust" and not r.uncertain
    assert read[0][0] == ["disgust"] * 5 and read[1][0] == read[0][0]
    assert read[1][1] == pytest.approx(read[0][1], abs=0.1)


@pytest.mark.shared_data
def test_video_only_and_audio_only_requests(predictor, ravdess_video):
    r = predictor.predict(ravdess_video, modalities="video")
    check_prediction(r, audio=False, video=True)
    assert r.modalities["audio"].reason == "not requested"
    assert r.emotion != "calm"  # without audio, calm is merged into neutral
    r = predictor.predict(ravdess_video, modalities=["audio"])
    check_prediction(r, audio=True, video=False)
    assert r.face_coverage is None


@pytest.mark.shared_data
def test_other_window_sizes_and_progress(predictor, ravdess_video):
    seen = []
    r = predictor.predict(ravdess_video, window=2.0, hop=1.0, progress=lambda done, total: seen.append((done, total)))
    assert [w.start for w in r.timeline] == [0.0, 1.0, 2.0, 3.0]  # 4.004 s: the last window [3, 4.004) is kept
    assert [w.end for w in r.timeline[:3]] == [2.0, 3.0, 4.0] and r.timeline[-1].end == pytest.approx(r.duration)
    assert seen and all(0 <= d <= t for d, t in seen) and seen[-1][0] == pytest.approx(seen[-1][1], abs=0.5)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


@pytest.mark.shared_data
def test_concurrent_predictions_agree_with_sequential_ones(predictor, crema_videos):
    paths = crema_videos[:2]
    expected = [predictor.predict(p).probabilities for p in paths]
    results: dict[int, dict] = {}

    def run(i):
        results[i] = predictor.predict(paths[i]).probabilities

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(2):
        assert results[i] == pytest.approx(expected[i], abs=1e-5)


# ----------------------------------------------------------------------------- generated edge cases
def test_video_without_audio_track_predicts_from_the_face(predictor, make_clip):
    r = predictor.predict(make_clip("noaudio.mp4", duration=2.0, size=(320, 240), fps=25, face=True, audio=None))
    check_prediction(r, audio=False, video=True)
    assert r.modalities["audio"].reason == "the file has no audio track"
    assert r.emotion != "calm"


def test_clip_without_a_face_predicts_from_the_voice(predictor, make_clip):
    r = predictor.predict(make_clip("noface.mp4", duration=2.0, size=(320, 240), fps=25, face=False, audio="speech"))
    check_prediction(r, audio=True, video=False)
    assert r.modalities["video"].reason.startswith("no face detected in any of the")
    assert r.face_coverage == 0.0


def _two_faces(path, seconds: float = 1.0, fps: int = 10):
    """A video call's split screen: two generated speakers side by side (no audio)."""
    import av

    from avemo.media.synth import synth_frame

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(int(seconds * fps)):
            halves = [synth_frame(i / fps, (160, 240), True, phase) for phase in (0.0, 2.0)]
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.hstack(halves), format="rgb24")))
        out.mux(stream.encode())
    return path


def test_two_faces_in_view_are_said(predictor, make_clip, tmp_path):
    """Of several faces the video expert reads one (the largest where the track starts): a video call's
    result came from one of its two people without a word."""
    r = predictor.predict(_two_faces(tmp_path / "call.mp4"))
    check_prediction(r, audio=False, video=True)
    assert [w for w in r.warnings if "faces in a frame" in w] == [
        "up to 2 faces in a frame: the video's emotion is that of one face, the largest where it was first found "
        "(taken for the speaker's)"]
    alone = predictor.predict(make_clip("noaudio.mp4", duration=2.0, size=(320, 240), fps=25, face=True, audio=None))
    assert not [w for w in alone.warnings if "faces" in w]


def test_a_video_slower_than_the_experts_rate_says_its_frames_were_repeated(predictor, make_clip):
    """The video expert reads 8 frames per second; a 4 fps video gave each frame twice without a word (8
    frames, from 0 to 1.75 s: 15 analysis times up to the last one)."""
    r = predictor.predict(make_clip("slow.mp4", duration=2.0, size=(320, 240), fps=4, face=True, audio=None))
    check_prediction(r, audio=False, video=True)
    assert [w for w in r.warnings if "distinct frames" in w] == [
        "video: only 8 distinct frames for the 15 the video expert reads (8 per second): frames were repeated "
        "to fill them"]
    r = predictor.predict(make_clip("noaudio.mp4", duration=2.0, size=(320, 240), fps=25, face=True, audio=None))
    assert not [w for w in r.warnings if "distinct frames" in w]


def test_a_still_picture_held_over_the_file_is_not_read_as_a_face(predictor, make_clip, tmp_path):
    """A podcast's cover image over its sound (one picture at 2 frames per second, H.264 at CRF 35): the
    photo's expression was the video's vote for every window of the file."""
    from avemo.media.synth import synth_frame, write_frames

    cover = write_frames(tmp_path / "cover.mp4", [synth_frame(0.0, (320, 240), True)] * 8, fps=2, crf=35)
    r = predictor.predict(cover)
    assert not r.modalities["video"].used and r.face_coverage == 1.0
    assert r.modalities["video"].reason.startswith("a still picture: the face shows the same image throughout")
    assert not [w for w in r.warnings if "distinct frames" in w]
    moving = predictor.predict(make_clip("noaudio.mp4", duration=2.0, size=(320, 240), fps=25, face=True, audio=None))
    assert moving.modalities["video"].used


@pytest.mark.shared_data
def test_a_small_talking_face_in_a_wide_shot_is_not_a_still_picture(predictor, ravdess_video, tmp_path):
    """The real clip's speaker, her face 1/20 of a 1920x1080 static scene's height (a conference's wide
    shot; the tiled search finds it): 0.2 % of the frame's pixels change, as in a re-encoded still, and
    the whole-frame rule took her face's vote away. Her face's own region changes by half."""
    from avemo.media import iter_frames
    from avemo.media.synth import backdrop, wide_shot, write_frames

    scene = backdrop((1920, 1080), "gradient")
    frames = [wide_shot(image, 200.0, 1 / 20, scene)[0] for t, image in iter_frames(ravdess_video, fps=8.0) if t < 2.5]
    r = predictor.predict(write_frames(tmp_path / "wide.mp4", frames, fps=8, crf=23))
    assert r.modalities["video"].used and r.modalities["video"].reason is None
    assert r.face_coverage == 1.0 and r.probabilities is not None


@pytest.mark.shared_data
def test_a_still_face_over_speech_is_a_still_picture(predictor, ravdess_video, tmp_path):
    """A frame of the real clip held for 3 s over speech, H.264 at CRF 35 with a keyframe every 8 frames
    (each keyframe re-encodes the picture, not quite alike): its face gets no vote, the voice does."""
    from avemo.media import iter_frames
    from avemo.media.synth import write_frames

    image = next(image for t, image in iter_frames(ravdess_video, fps=8.0) if t >= 1.0)
    still = write_frames(tmp_path / "still.mp4", [image] * 75, fps=25, preset="medium", crf=35, keyframes=8,
                         audio="speech")
    r = predictor.predict(still)
    assert r.modalities["audio"].used and not r.modalities["video"].used
    assert r.modalities["video"].reason.startswith("a still picture")


def test_a_photo_beside_a_moving_waveform_is_a_still_picture(predictor, tmp_path):
    """An audiogram: a cover photo with the sound's waveform moving beside it. The whole frame changed (4 %
    of it), so the photo's expression was read as the speaker's; its face's region does not change."""
    from avemo.media.synth import synth_frame, write_frames

    photo = synth_frame(0.0, (320, 240), True)
    frames = []
    for k in range(24):
        canvas = np.zeros((240, 640, 3), dtype=np.uint8)
        canvas[:, :320] = photo
        for j in range(20):
            bar = int(100 * abs(np.sin(0.7 * j + 0.9 * k)))
            canvas[120 - bar : 120 + bar, 340 + 14 * j : 348 + 14 * j] = (230, 200, 60)
        frames.append(canvas)
    r = predictor.predict(write_frames(tmp_path / "audiogram.mp4", frames, fps=8, crf=23, audio="speech"))
    assert r.modalities["audio"].used and not r.modalities["video"].used
    assert r.modalities["video"].reason.startswith("a still picture")


def test_recordings_joined_in_one_mpeg_ts_file_are_predicted_whole(predictor, make_clip, tmp_path):
    """``cat a.ts b.ts``: the result covered the first recording only (its length was the container's)."""
    part = make_clip("part.ts", duration=2.0, size=(320, 240), fps=10, face=True, audio="speech")
    joined = tmp_path / "joined.ts"
    joined.write_bytes(part.read_bytes() * 2)
    one, two = predictor.predict(part), predictor.predict(joined)
    assert two.duration == pytest.approx(2 * one.duration, abs=0.1)
    # the first recording's sound runs 0.05 s past its last frame, and the second's first frame comes 0.06 s
    # after its sound: kept under it, it begins 0.11 s after the first's end, and one frame is read twice
    assert not [w for w in two.warnings if "distinct frames" not in w]
    assert two.timeline[-1].end == pytest.approx(two.duration) and two.timeline[-1].video


def test_silent_audio_track_is_reported_not_used(predictor, make_clip):
    r = predictor.predict(make_clip("silent.mp4", duration=2.0, size=(320, 240), fps=25, face=True, audio="silence"))
    check_prediction(r, audio=False, video=True)
    assert "silent" in r.modalities["audio"].reason


def test_the_timeline_frame_of_a_silent_clip_has_the_models_probability_columns(predictor, make_clip):
    """The columns came from the result's probabilities: a clip without emotion had none (as the CSV had)."""
    r = predictor.predict(make_clip("silent.wav", duration=1.2, audio="silence"))
    assert r.emotion is None and r.timeline and r.labels == tuple(LABELS)
    frame = r.timeline_frame()
    assert list(frame.columns) == ["start", "end", "emotion", *LABELS, "audio", "video", "speech", "uncertain",
                                   "crowd", "crowd_gated"]
    assert frame[list(LABELS)].isna().all().all()
    assert dataclasses.replace(r, path="copy.wav").labels == r.labels  # kept by a copy of the result


def test_short_clip_and_8khz_stereo_wav(predictor, make_clip):
    r = predictor.predict(make_clip("short.mp4", duration=0.2, size=(320, 240), fps=25, face=True, audio="speech"))
    check_prediction(r, audio=False, video=True)  # 0.2 s is shorter than the VAD's least speech (0.25 s)
    assert "no speech" in r.modalities["audio"].reason and r.speech == 0.0
    assert len(r.timeline) == 1 and r.timeline[0].end == pytest.approx(r.duration)
    r = predictor.predict(make_clip("stereo8k.wav", duration=1.5, audio="speech", sample_rate=8000, channels=2))
    check_prediction(r, audio=True, video=False)


@pytest.mark.parametrize("suffix", [".webm", ".mkv", ".mov", ".avi", ".flv"])
def test_video_containers(predictor, make_clip, suffix):
    r = predictor.predict(make_clip(f"c{suffix}", duration=1.2, size=(320, 240), fps=25, face=True, audio="speech"))
    assert r.modalities["audio"].used and r.modalities["video"].used


def test_bad_files_raise_one_line_errors_naming_the_file(predictor, make_clip, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    good = make_clip("forcorrupt.mp4", duration=1.0, size=(320, 240), fps=25, face=True, audio="voice")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(good.read_bytes()[:400])
    for path in (tmp_path / "missing.mp4", empty, text, corrupt):
        with pytest.raises(MediaError) as err:
            predictor.predict(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_unusable_modality_requests(predictor, make_clip):
    wav = make_clip("voice.wav", duration=1.0, audio="voice")
    with pytest.raises(MissingStreamError, match="no video stream.*modalities=video"):
        predictor.predict(wav, modalities="video")
    mute = make_clip("mute_noface.mp4", duration=1.0, size=(320, 240), fps=25, face=False, audio=None)
    r = predictor.predict(mute)  # analysed, and nothing found: a result without emotion, not an error
    assert r.emotion is None and r.probabilities is None and r.uncertain and r.timeline == ()
    assert r.modalities["audio"].reason == "the file has no audio track"
    assert r.modalities["video"].reason.startswith("no face detected")
    with pytest.raises(AvemoError, match="modalities"):
        predictor.predict(wav, modalities="text")


def test_predict_many_keeps_going_and_lists_failures(predictor, make_clip, tmp_path):
    good = make_clip("voice.wav", duration=1.0, audio="voice")
    bad = tmp_path / "bad.mp4"
    bad.write_text("garbage")
    outcomes = list(predictor.predict_many([good, bad, tmp_path / "missing.wav", good], modalities="audio"))
    assert [o.ok for o in outcomes] == [True, False, False, True]
    assert outcomes[1].error.startswith(str(bad)) and "not a media file" in outcomes[1].error
    assert "file not found" in outcomes[2].error
    assert outcomes[3].prediction.probabilities == pytest.approx(outcomes[0].prediction.probabilities)


def test_info_describes_the_model(predictor):
    info = predictor.info()
    assert info["name"] == "avemo-default" and info["labels"] == list(LABELS)
    assert info["window"] == 1.0 and info["hop"] == 0.5
    assert info["fusion"]["video_weight"] >= 0 and info["fusion"]["audio_temperature"] > 0


# ----------------------------------------------------------------------------- zoo checkpoints (--model)
def _frame_model_checkpoint(folder, name: str):
    """A small frame-based audio-video zoo model ``name`` saved as a trainer checkpoint (random weights)."""
    import torch

    from avemo.models import create_model
    from avemo.models.checkpoint import save_checkpoint
    from avemo.models.normalization import Normalizer

    torch.manual_seed(0)
    model = create_model(name, audio="mfcc_cnn1d", video="sultana_video_cnn3d",
                         audio_config={"n_frames": 28}, video_config={"n_frames": 16, "size": (16, 16)})
    norm = Normalizer(kinds={"audio": "sequence", "video": "frames"},
                      mean={"audio": np.zeros(13, np.float32)}, std={"audio": np.full(13, 10.0, np.float32)})
    return save_checkpoint(folder / name, model, labels=RAVDESS, normalizer=norm)


@pytest.fixture(scope="module")
def frame_checkpoint(tmp_path_factory):
    """A late-fusion model: each of its inputs is optional."""
    return _frame_model_checkpoint(tmp_path_factory.mktemp("ckpt"), "late_average")


@pytest.fixture(scope="module")
def joint_checkpoint(tmp_path_factory):
    """A joint model (feature concatenation): it needs both inputs."""
    return _frame_model_checkpoint(tmp_path_factory.mktemp("ckpt"), "concat_fc")


def test_frame_based_zoo_checkpoint_predicts_clip_and_windows(frame_checkpoint, make_clip):
    from avemo import Predictor

    p = Predictor.from_checkpoint(frame_checkpoint, device="cpu")
    r = p.predict(make_clip("zoo.mp4", duration=2.0, size=(320, 240), fps=25, face=True, audio="speech"))
    assert r.modalities["audio"].used and r.modalities["video"].used and r.face_coverage == 1.0
    assert len(r.timeline) == 3 and all(w.audio and w.video for w in r.timeline)
    assert r.model["name"] == "late_average"
    # an optional modality that is missing is dropped: the late-fusion model predicts from the voice
    r = p.predict(make_clip("zoo_noface.mp4", duration=1.5, size=(320, 240), fps=25, face=False, audio="speech"))
    assert r.modalities["audio"].used and not r.modalities["video"].used
    assert "no face" in r.modalities["video"].reason


def test_a_checkpoint_predictor_lists_the_modalities_its_inputs_read(frame_checkpoint, tmp_path):
    """``info()["modalities"]`` (what ``GET /v1/models`` shows) is what the checkpoint's inputs read: a
    video-only model listed audio and video, as the bundled model does."""
    import torch

    from avemo import Predictor
    from avemo.models import create_model
    from avemo.models.checkpoint import save_checkpoint
    from avemo.models.normalization import Normalizer

    assert Predictor.from_checkpoint(frame_checkpoint, device="cpu").info()["modalities"] == ["audio", "video"]
    torch.manual_seed(0)
    face = create_model("sultana_video_cnn3d", num_classes=len(RAVDESS), n_frames=16, size=(16, 16))
    save_checkpoint(tmp_path / "face", face, labels=RAVDESS, normalizer=Normalizer(kinds={"video": "frames"}))
    predictor = Predictor.from_checkpoint(tmp_path / "face", device="cpu")
    assert predictor.modalities == ("video",) and predictor.info()["modalities"] == ["video"]


def test_a_frame_model_on_a_clip_shorter_than_its_frames_says_how_many_were_distinct(frame_checkpoint, make_clip):
    """A frame model reads 16 frames; a 0.3 s clip has 7 (repeated to 16, silently): the prediction now
    says how many distinct frames the model saw, for the clip and for the windows, with the same answer."""
    from avemo import Predictor

    p = Predictor.from_checkpoint(frame_checkpoint, device="cpu")
    r = p.predict(make_clip("zoo_short.mp4", duration=0.3, size=(320, 240), fps=25, face=True, audio=None))
    assert r.modalities["video"].used and r.emotion is not None
    assert [w for w in r.warnings if "distinct frames" in w] == [
        "video: only 8 distinct frames for the 16 the model reads (face_crops): frames were repeated to fill them",
        f"video: in {len(r.timeline)} of {len(r.timeline)} timeline windows only 8 distinct frames for the 16 the "
        "model reads (face_crops): frames were repeated to fill them"]
    r = p.predict(make_clip("zoo_long.mp4", duration=2.0, size=(320, 240), fps=25, face=True, audio=None))
    assert not [w for w in r.warnings if "distinct frames" in w]


def test_a_frame_model_gives_no_vote_to_a_still_picture(frame_checkpoint, joint_checkpoint, tmp_path):
    """A checkpoint's frame model read a cover image held over speech as the speaker's face (the still
    rule was the bundle's alone): now it answers from the voice, as the bundle does; a joint model,
    which reads the face with the voice, refuses the file in one line, as it does a file without a face."""
    from avemo import Predictor
    from avemo.errors import FeatureError
    from avemo.media.synth import synth_frame, write_frames

    cover = write_frames(tmp_path / "cover.mp4", [synth_frame(0.0, (320, 240), True)] * 60, fps=25, preset="medium",
                         crf=35, keyframes=8, audio="speech")
    r = Predictor.from_checkpoint(frame_checkpoint, device="cpu").predict(cover)
    assert r.modalities["audio"].used and not r.modalities["video"].used and r.face_coverage == 1.0
    assert r.modalities["video"].reason.startswith("a still picture: the face shows the same image throughout")
    assert r.timeline and not any(w.video for w in r.timeline)
    with pytest.raises(FeatureError, match="a still picture"):
        Predictor.from_checkpoint(joint_checkpoint, device="cpu").predict(cover)


def test_a_checkpoint_tells_what_the_decoder_skipped_in_a_damaged_video(frame_checkpoint, make_clip, damage_middle,
                                                                        tmp_path, caplog):
    """A damaged middle: the checkpoint's video extractors logged the decoder's "video packets ... skipped"
    (once per window that met the damage), and the prediction's warnings held only the audio's. Now they
    are said in the prediction, once, as the bundled model says them, and no longer logged."""
    from avemo import Predictor

    clip = make_clip("zoo_damaged.mp4", duration=4.0, size=(160, 120), fps=30, face=True, audio="speech")
    path = damage_middle(clip, tmp_path / "zoo_damaged.mp4")
    with caplog.at_level("WARNING", logger="avemo.media"):
        r = Predictor.from_checkpoint(frame_checkpoint, device="cpu").predict(path)
    assert r.modalities["video"].used
    skipped = [w for w in r.warnings if "video packets could not be decoded and were skipped" in w]
    assert len(skipped) == 1 and not skipped[0].startswith(str(path))
    assert any("audio packets could not be decoded" in w for w in r.warnings)
    assert not [rec for rec in caplog.records if "could not be decoded" in rec.getMessage()]


@pytest.mark.parametrize("kind", ["silence", "noise"])
def test_a_checkpoint_abstains_without_speech_like_the_bundle(frame_checkpoint, make_clip, kind):
    """``avemo predict --model RUN`` gave an emotion for silence and white noise: a checkpoint had none of
    the bundle's speech gate. Now the file's audio is not used ("no speech"), and with nothing else to
    read the answer is no emotion, not an error; the windows keep their speech share."""
    from avemo import Predictor
    from avemo.cli.options import MODEL_HELP

    p = Predictor.from_checkpoint(frame_checkpoint, device="cpu")
    r = p.predict(make_clip(f"{kind}.wav", duration=1.5, audio=kind))
    assert r.emotion is None and r.probabilities is None and r.uncertain and r.speech == 0.0
    audio = r.modalities["audio"]
    assert not audio.used and "no speech" in audio.reason
    assert len(r.timeline) == 2 and all(w.emotion is None and not w.audio and w.speech == 0.0 for w in r.timeline)
    assert p.info()["abstention"]["tau"] == 0.5  # the default: a checkpoint has no calibrated tau of its own
    assert "no speech, no audio vote" in MODEL_HELP


def test_a_checkpoint_on_speech_answers_and_its_windows_carry_the_speech_share(frame_checkpoint, make_clip):
    from avemo import Predictor

    p = Predictor.from_checkpoint(frame_checkpoint, device="cpu")
    r = p.predict(make_clip("zoo_speech.wav", duration=2.5, audio="speech"))
    assert r.modalities["audio"].used and r.emotion in RAVDESS.emotions and r.speech > 0.9
    assert len(r.timeline) == 4 and all(w.audio and w.emotion and w.speech >= 0.5 for w in r.timeline)
    assert not any("too little speech" in w for w in r.warnings)
    # windows with too little speech get no audio vote: for an audio-only input, no emotion there
    r = p.predict(make_clip("speech_then_silence.wav", duration=3.0, audio="speech_then_silence"))  # 1.5 s + 1.5 s
    assert r.modalities["audio"].used and r.emotion is not None and 0.3 < r.speech < 0.7
    by_start = {w.start: w for w in r.timeline}
    assert all(by_start[t].audio and by_start[t].speech >= 0.5 and by_start[t].emotion for t in (0.0, 0.5))
    for t in (1.5, 2.0):
        w = by_start[t]
        assert w.speech < 0.5 and not w.audio and w.emotion is None and w.probabilities is None and w.uncertain


def test_a_checkpoints_clip_of_a_long_file_is_the_mean_of_its_windows_with_speech(frame_checkpoint, make_clip):
    """10 s of audio, speech in its first half: the model on the whole file read a fixed-length MFCC
    sequence cut from its middle, and the mean of the rest was silence. A file longer than one
    encoder pass answers from its windows with an audio vote, as the bundle does."""
    from avemo import Predictor
    from avemo.inference.audio import PASS_SECONDS

    p = Predictor.from_checkpoint(frame_checkpoint, device="cpu")
    r = p.predict(make_clip("long_speech_then_silence.wav", duration=10.0, audio="speech_then_silence"))
    voiced = [w for w in r.timeline if w.audio]
    assert r.duration > PASS_SECONDS and 0 < len(voiced) < len(r.timeline)
    for label in RAVDESS.emotions:
        assert r.probabilities[label] == pytest.approx(np.mean([w.probabilities[label] for w in voiced]), abs=1e-6)


def test_a_checkpoint_flags_answers_from_too_little_speech(frame_checkpoint, make_clip):
    import copy

    from avemo import Predictor
    from avemo.inference.abstention import AbstentionConfig

    p = copy.copy(Predictor.from_checkpoint(frame_checkpoint, device="cpu"))
    p.abstention = AbstentionConfig(tau=0.0)  # tau 0: only min_speech flags (the backend keeps min_speech 1 s)
    r = p.predict(make_clip("zoo_short.wav", duration=0.8, audio="speech"))
    assert r.modalities["audio"].used and r.emotion is not None and r.uncertain
    assert 0.0 < r.speech * r.duration < 1.0
    [warning] = [w for w in r.warnings if w.startswith("too little speech")]
    assert "under the 1 s the voice needs to be trusted" in warning
    assert r.timeline and all(w.audio and w.uncertain for w in r.timeline)
    r = p.predict(make_clip("zoo_speech.wav", duration=2.5, audio="speech"))
    assert not r.uncertain and not any(w.uncertain for w in r.timeline)  # enough speech: not flagged


def test_a_face_without_speech_late_fusion_reads_the_face_a_joint_model_abstains(frame_checkpoint,
                                                                                 joint_checkpoint, make_clip):
    from avemo import Predictor

    clip = make_clip("zoo_face_silence.mp4", duration=2.0, size=(320, 240), fps=25, face=True, audio="silence")
    r = Predictor.from_checkpoint(frame_checkpoint, device="cpu").predict(clip)
    assert not r.modalities["audio"].used and "no speech" in r.modalities["audio"].reason
    assert r.modalities["video"].used and r.emotion is not None and r.face_coverage == 1.0
    assert r.timeline and all(w.video and not w.audio and w.emotion and w.speech == 0.0 for w in r.timeline)
    r = Predictor.from_checkpoint(joint_checkpoint, device="cpu").predict(clip)
    assert r.emotion is None and r.uncertain and "no speech" in r.modalities["audio"].reason
    assert not r.modalities["video"].used and "together with the voice" in r.modalities["video"].reason
    assert all(w.emotion is None and not w.video for w in r.timeline)
    speech = make_clip("zoo_face_speech.mp4", duration=2.0, size=(320, 240), fps=25, face=True, audio="speech")
    r = Predictor.from_checkpoint(joint_checkpoint, device="cpu").predict(speech)
    assert r.modalities["audio"].used and r.modalities["video"].used and r.emotion is not None


def test_a_joint_model_answers_the_windows_with_speech_and_abstains_where_the_voice_stops(joint_checkpoint,
                                                                                          make_clip):
    """A face throughout, speech for 1.5 s then silence: the windows of the speech part read voice and
    face together; the silent windows have no audio vote, and a joint model cannot read the face alone,
    so they give no emotion (and are flagged), while the clip answers from its speech."""
    from avemo import Predictor

    clip = make_clip("zoo_face_speech_silence.mp4", duration=3.0, size=(320, 240), fps=25, face=True,
                     audio="speech_then_silence")
    r = Predictor.from_checkpoint(joint_checkpoint, device="cpu").predict(clip)
    assert r.modalities["audio"].used and r.modalities["video"].used and r.emotion is not None
    assert 0.3 < r.speech < 0.7 and r.face_coverage == 1.0
    by_start = {w.start: w for w in r.timeline}
    for t in (0.0, 0.5):
        w = by_start[t]
        assert w.speech >= 0.5 and w.audio and w.video and w.emotion in RAVDESS.emotions
    for t in (1.5, 2.0):
        w = by_start[t]
        assert w.speech < 0.5 and not w.audio and not w.video and w.emotion is None and w.uncertain


def test_checkpoint_refusals(tmp_path, frame_checkpoint):
    import shutil

    import torch

    from avemo import Predictor
    from avemo.models import create_model
    from avemo.models.checkpoint import save_checkpoint
    from avemo.models.normalization import Normalizer

    with pytest.raises(CheckpointError, match="no such checkpoint"):
        Predictor.from_checkpoint(tmp_path / "nowhere")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "checkpoint.json").write_text('{"format": "keras"}')
    with pytest.raises(CheckpointError, match="not an avemo checkpoint"):
        Predictor.from_checkpoint(foreign)
    broken = tmp_path / "broken"
    shutil.copytree(frame_checkpoint, broken)
    (broken / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="safetensors"):
        Predictor.from_checkpoint(broken)
    crema = create_model("sultana_video_cnn3d", num_classes=len(CREMA_D), n_frames=16, size=(16, 16))
    save_checkpoint(tmp_path / "crema", crema, labels=CREMA_D, normalizer=Normalizer(kinds={"video": "frames"}))
    assert Predictor.from_checkpoint(tmp_path / "crema", device="cpu").labels == CREMA_D.emotions  # any known set
    with pytest.raises(CheckpointError, match="crema_d labels.*needs"):
        Predictor.from_checkpoint(tmp_path / "crema", labels="ravdess")
    own = create_model("sultana_video_cnn3d", num_classes=2, n_frames=16, size=(16, 16))
    save_checkpoint(tmp_path / "own", own, labels=LabelSet("own", ("happy", "contempt")),
                    normalizer=Normalizer(kinds={"video": "frames"}))
    with pytest.raises(CheckpointError, match=r"avemo does not know: contempt \(known"):
        Predictor.from_checkpoint(tmp_path / "own")
    torch.manual_seed(0)
    au = create_model("au_mlp")
    save_checkpoint(tmp_path / "au", au, labels=RAVDESS, normalizer=Normalizer(
        kinds={"video": "vector"}, mean={"video": np.zeros(35, np.float32)}, std={"video": np.ones(35, np.float32)}))
    with pytest.raises(CheckpointError, match="table 'openface_au_means'"):
        Predictor.from_checkpoint(tmp_path / "au")
    save_checkpoint(tmp_path / "spk", au, labels=RAVDESS, normalizer=Normalizer(
        kinds={"video": "vector"}, mean={"video": np.zeros(35, np.float32)}, std={"video": np.ones(35, np.float32)},
        speaker_norm=True))
    with pytest.raises(CheckpointError, match="speaker-level normalisation"):
        Predictor.from_checkpoint(tmp_path / "spk")


def test_load_predictor_errors_name_the_file_and_no_command_line_option(tmp_path):
    """Called from Python, :func:`load_predictor` names the file and the reason; the option that gave
    the file (``--model``) is the CLI's to add (tests/test_inference_cli.py), not the library's."""
    from avemo.errors import ConfigError
    from avemo.inference.predictor import load_predictor

    with pytest.raises(CheckpointError) as err:
        load_predictor(tmp_path / "nowhere", device="cpu")
    assert str(err.value) == f"{tmp_path / 'nowhere'}: no such checkpoint" and err.value.option is None
    with pytest.raises(ConfigError) as err:
        load_predictor(engine="tensorrt")
    assert str(err.value) == "engine must be one of torch, onnx, got 'tensorrt'"


def test_a_matroska_file_whose_streams_start_late_has_its_length_and_a_timeline_to_match(predictor, tmp_path):
    """A 2.5 s Matroska file whose streams start at 5 s (a cut that keeps its recording's times) was
    7.5 s long: its duration and the timeline ran 5 s past the last frame and sample."""
    from avemo.media import probe
    from avemo.media.synth import write_clip, write_shifted

    src = write_clip(tmp_path / "src.mkv", duration=2.5, size=(320, 240), fps=25, face=True, audio="speech")
    r = predictor.predict(write_shifted(src, tmp_path / "cut.mkv", 5.0))
    check_prediction(r, audio=True, video=True)
    assert r.duration == pytest.approx(probe(write_shifted(src, tmp_path / "copy.mkv", 0.0)).duration, abs=1e-3)
    assert r.timeline[-1].end == pytest.approx(r.duration) and all(w.video for w in r.timeline)


def test_recordings_joined_in_one_mpeg_ts_file_are_predicted_whole_by_a_zoo_checkpoint(frame_checkpoint, make_clip,
                                                                                       tmp_path):
    """``cat a.ts b.ts`` with ``--model RUN``, a face in the first recording only. The zoo backend took the
    container's stated length (the first recording's): its timeline ended there and its clip's frames
    were drawn from the first recording (a face in all of them); it now takes the bundle's length
    (backends.clip_length: decode.joined_length), and a window's frames, which are sought, are found in
    the second recording (none were: "holds no video frames in the requested window")."""
    from avemo import Predictor

    p = Predictor.from_checkpoint(frame_checkpoint, device="cpu")
    face, none = (make_clip(f"zoo_{k}.ts", duration=2.0, size=(320, 240), fps=25, face=k == "face", audio="speech")
                  for k in ("face", "none"))
    joined = tmp_path / "zoo_joined.ts"
    joined.write_bytes(face.read_bytes() + none.read_bytes())
    one, two = p.predict(face), p.predict(joined)
    assert two.duration == pytest.approx(2 * one.duration, abs=0.1)
    assert two.timeline[-1].end == pytest.approx(two.duration) and len(two.timeline) > len(one.timeline)
    assert one.face_coverage == 1.0 and two.face_coverage == pytest.approx(0.5, abs=0.1)
    assert two.timeline[0].video and two.timeline[-1].audio and not two.timeline[-1].video  # no face there
