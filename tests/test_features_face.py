"""Face detection, tracking, alignment, crops and FaceMesh geometry (avemo.features.face)."""

from __future__ import annotations

import math
import sys

import cv2
import numpy as np
import pytest

from avemo.errors import ConfigError, FeatureError, MissingStreamError
from avemo.features import get_extractor, list_extractors
from avemo.features.face import (
    Detection,
    FaceTracker,
    HaarDetector,
    OneEuroFilter,
    TrackerConfig,
    crop_face,
    crop_transform,
    eye_angle,
    feature_names,
    geometry,
    get_detector,
)
from avemo.features.face.landmarks import FUNCTIONALS, GEOMETRY, functionals
from avemo.media.synth import portrait, synth_frame, write_frames

# -- helpers ------------------------------------------------------------------------------------


def face_canvas(faces: list[tuple[int, int, int]], size=(960, 540)) -> np.ndarray:
    """A gray canvas with the portrait pasted at (x, y, height) for each face."""
    w, h = size
    canvas = np.full((h, w, 3), 90, dtype=np.uint8)
    img = portrait()
    for x, y, fh in faces:
        fw = int(img.shape[1] * fh / img.shape[0])
        canvas[y : y + fh, x : x + fw] = cv2.resize(img, (fw, fh), interpolation=cv2.INTER_AREA)
    return canvas


class ScriptedDetector:
    """A FaceDetector returning prepared detections per call (tests the tracker's rules alone)."""

    name = "scripted"

    def __init__(self, script: list[list[tuple[float, float, float, float]]]):
        self.script = list(script)

    def detect(self, image):
        boxes = self.script.pop(0)
        return [Detection(box=np.array(b, dtype=float), score=0.9) for b in boxes]

    def close(self):
        pass


class LocalScriptedDetector(ScriptedDetector):
    """Also answers ``detect_in`` from a second script; counts whole-frame searches."""

    def __init__(self, script, local_script):
        super().__init__(script)
        self.local_script = list(local_script)
        self.full_calls = 0

    def detect(self, image):
        self.full_calls += 1
        return super().detect(image)

    def detect_in(self, image, box):
        boxes = self.local_script.pop(0)
        return [Detection(box=np.array(b, dtype=float), score=0.8) for b in boxes]


def run_script(script, config=None, dt=0.04):
    tracker = FaceTracker(ScriptedDetector(script), config or TrackerConfig(smoothing=False))
    image = np.zeros((480, 640, 3), np.uint8)
    return [tracker.update(i * dt, image) for i in range(len(script))]


# -- registry and config --------------------------------------------------------------------------


def test_extractors_registered():
    video = list_extractors("video")
    assert {"face_crops", "face_landmarks"} <= set(video)


def test_config_errors():
    with pytest.raises(ConfigError, match="one of n_frames / fps"):
        get_extractor("face_crops", fps=10.0)  # n_frames is 16 by default
    with pytest.raises(ConfigError):
        get_extractor("face_crops", detector="dlib")
    with pytest.raises(ConfigError, match="size"):
        get_extractor("face_crops", size=(0, 70))
    with pytest.raises(ConfigError, match="unknown face detector"):
        get_detector("retinaface")
    # the fixed field names of the model zoo are accepted
    ex = get_extractor("face_crops", {"n_frames": 30, "duration": 3.0, "size": [80, 70], "gray": True})
    assert ex.config.size == (80, 70) and ex.config.fps is None


# -- tracker rules (scripted detections) ---------------------------------------------------------


def test_tracker_keeps_the_speaker_when_another_face_appears():
    speaker = (100, 100, 300, 340)
    small = (450, 120, 530, 210)
    large = (380, 40, 630, 330)  # larger than the speaker, appears later
    script = [[speaker]] * 3 + [[small, speaker]] * 3 + [[large, speaker]] * 3
    faces = run_script(script)
    assert all(f is not None for f in faces)
    assert all(np.allclose(f.detection.box, speaker) for f in faces)
    assert {f.track for f in faces} == {1}


def test_tracker_chooses_the_largest_face_first():
    faces = run_script([[(10, 10, 60, 60), (200, 100, 400, 350)]])
    assert np.allclose(faces[0].box, (200, 100, 400, 350))
    central = run_script(
        [[(10, 10, 200, 200), (300, 220, 340, 260)]], TrackerConfig(choose="central", smoothing=False)
    )
    assert np.allclose(central[0].box, (300, 220, 340, 260))


def test_tracker_marks_missing_frames_and_never_reuses_a_box():
    speaker = (100, 100, 300, 340)
    elsewhere = (420, 60, 600, 300)  # another face, not matching the speaker's box
    script = [[speaker], [], [elsewhere], [speaker], [], [speaker]]
    faces = run_script(script)
    assert [f is not None for f in faces] == [True, False, False, True, False, True]
    assert all(np.allclose(f.detection.box, speaker) for f in faces if f is not None)


def test_tracker_reacquires_after_a_long_loss():
    first = (100, 100, 300, 340)
    second = (400, 80, 600, 320)
    # 0.04 s per frame; reacquire_after=0.1 s: the track is dropped after 3 frames without it
    script = [[first]] + [[second]] * 5
    faces = run_script(script, TrackerConfig(smoothing=False, reacquire_after=0.1))
    assert faces[1] is None and faces[2] is None
    later = [f for f in faces[3:] if f is not None]
    assert later and all(np.allclose(f.box, second) for f in later)
    assert faces[0].track == 1 and later[0].track == 2


def test_tracker_confirms_locally_and_searches_the_frame_before_giving_up():
    face = (100, 100, 300, 340)
    moved = (110, 104, 310, 344)
    # frame 0: whole-frame search; 1: confirmed locally; 2: local search misses, the whole frame
    # still has it; 3: neither finds it -> missing; 4: 0.13 s after the last whole-frame search,
    # the whole frame again
    full = [[face], [face], []]
    local = [[moved], [], []]
    detector = LocalScriptedDetector(full + [[face]], local)
    tracker = FaceTracker(detector, TrackerConfig(smoothing=False, full_detect_interval=0.1))
    image = np.zeros((480, 640, 3), np.uint8)
    faces = [tracker.update(t, image) for t in (0.0, 0.04, 0.08, 0.12, 0.25)]
    assert np.allclose(faces[0].box, face) and np.allclose(faces[1].box, moved)
    assert np.allclose(faces[2].box, face)
    assert faces[3] is None
    assert np.allclose(faces[4].box, face)
    assert detector.full_calls == 4 and not detector.local_script  # frames 0, 2, 3 and 4


def test_tracker_smoothing_only_smooths_detected_frames():
    rng = np.random.default_rng(0)
    base = np.array([200.0, 150.0, 360.0, 350.0])
    jitter = [base + rng.normal(0, 4, 4) for _ in range(30)]
    raw = run_script([[tuple(b)] for b in jitter])
    smooth = run_script([[tuple(b)] for b in jitter], TrackerConfig(smoothing=True))
    raw_c = np.array([f.center for f in raw])
    smooth_c = np.array([f.center for f in smooth])
    assert np.std(np.diff(smooth_c, axis=0)) < 0.5 * np.std(np.diff(raw_c, axis=0))


def test_one_euro_filter():
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    assert np.allclose(f(0.0, [5.0, 1.0]), [5.0, 1.0])
    assert np.allclose(f(0.1, [5.0, 1.0]), [5.0, 1.0])  # a constant stays constant
    y = f(0.2, [6.0, 1.0])
    assert 5.0 < y[0] < 6.0  # a step is low-passed
    assert np.allclose(f(0.2, [9.0, 9.0]), y)  # no time step: state unchanged
    for i in range(100):
        y = f(0.3 + 0.1 * i, [6.0, 1.0])
    assert np.allclose(y, [6.0, 1.0], atol=1e-3)  # and converges


# -- detection and alignment on real pixels ------------------------------------------------------


def test_detectors_find_the_portrait():
    image = face_canvas([(300, 60, 420)])
    for name in ("mediapipe", "haar"):
        detector = get_detector(name)
        found = detector.detect(image)
        detector.close()
        assert found, name
        best = max(found, key=lambda d: d.area)
        assert 300 < best.center[0] < 700 and 60 < best.center[1] < 480
        assert (
            best.eyes is not None and best.eyes[0, 0] < best.eyes[1, 0]
        )  # subject's right eye on the image left


def test_haar_fallback_when_mediapipe_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # makes `import mediapipe` fail
    with pytest.warns(RuntimeWarning, match="Haar"):
        detector = get_detector("mediapipe", min_confidence=0.7)
    assert isinstance(detector, HaarDetector)


def test_alignment_levels_the_eyes_of_a_rotated_face():
    image = face_canvas([(300, 60, 420)])
    h, w = image.shape[:2]
    rotated = cv2.warpAffine(
        image, cv2.getRotationMatrix2D((w / 2, h / 2), 15, 1.0), (w, h), borderValue=(90, 90, 90)
    )
    detector = get_detector("mediapipe")
    face = max(detector.detect(rotated), key=lambda d: d.area)
    before = math.degrees(eye_angle(face.eyes))
    assert abs(abs(before) - 15) < 5
    aligned = crop_face(rotated, face, size=(224, 224), align=True, margin=0.4)
    upright = crop_face(rotated, face, size=(224, 224), align=False, margin=0.4)
    after = detector.detect(aligned)
    not_aligned = detector.detect(upright)
    detector.close()
    assert after and not_aligned
    assert abs(math.degrees(eye_angle(after[0].eyes))) < 4
    assert abs(math.degrees(eye_angle(not_aligned[0].eyes)) - before) < 5


def test_crop_geometry_size_colour_and_border():
    image = np.full((200, 300, 3), 200, np.uint8)
    det = Detection(
        box=np.array([100.0, 50.0, 180.0, 150.0]), score=1.0, eyes=np.array([[120.0, 80.0], [160.0, 80.0]])
    )
    rgb = crop_face(image, det, size=(80, 70))
    gray = crop_face(image, det, size=(80, 70), gray=True)
    assert rgb.shape == (70, 80, 3) and rgb.dtype == np.uint8
    assert gray.shape == (70, 80, 1)
    matrix = crop_transform(det, size=(80, 70), margin=0.25)
    centre = matrix @ np.array([140.0, 100.0, 1.0])
    assert np.allclose(centre, [39.5, 34.5])  # box centre -> crop centre
    # a face at the image corner: what lies outside the frame is black, not smeared
    corner = Detection(box=np.array([-40.0, -40.0, 40.0, 40.0]), score=1.0)
    crop = crop_face(image, corner, size=(64, 64), margin=0.0)
    assert crop[:20, :20].max() == 0 and crop[-10:, -10:].min() == 200
    # a big face cropped small is area-averaged: same mean brightness, no aliasing blow-up
    stripes = np.zeros((1000, 1000, 3), np.uint8)
    stripes[:, ::2] = 255
    big = Detection(box=np.array([100.0, 100.0, 900.0, 900.0]), score=1.0)
    small = crop_face(stripes, big, size=(32, 32), margin=0.0, align=False)
    assert abs(float(small.mean()) - 127.5) < 10 and small.std() < 20


# -- face_crops on files ---------------------------------------------------------------------------


@pytest.mark.shared_data
def test_face_crops_on_ravdess(ravdess_video):
    feats = get_extractor("face_crops").extract(ravdess_video)
    assert feats["x"].shape == (16, 112, 112, 3) and feats["x"].dtype == np.uint8
    assert feats["mask"].shape == (16,) and feats["mask"].dtype == bool
    assert float(feats["coverage"]) >= 0.9
    assert np.isfinite(feats["boxes"][feats["mask"]]).all()
    assert np.all(np.diff(feats["times"]) > 0)
    # the face is in the middle of the letterboxed 640x480 frame
    centres = (feats["boxes"][:, :2] + feats["boxes"][:, 2:]) / 2
    assert np.all((centres[:, 0] > 200) & (centres[:, 0] < 440))


@pytest.mark.shared_data
def test_face_crops_paper001_on_crema_flv(crema_videos):
    assert len(crema_videos) == 6
    ex = get_extractor("face_crops", n_frames=30, duration=3.0, size=(80, 70), gray=True)
    for path in crema_videos[:3]:
        feats = ex.extract(path)
        assert feats["x"].shape == (30, 70, 80, 1)
        assert float(feats["coverage"]) >= 0.9, path.name
        assert feats["x"][feats["mask"]].std() > 10  # real image content where a face was found


@pytest.mark.shared_data
def test_face_crops_with_haar(ravdess_video):
    feats = get_extractor("face_crops", detector="haar", n_frames=6, size=(64, 64)).extract(ravdess_video)
    assert feats["x"].shape == (6, 64, 64, 3)
    assert float(feats["coverage"]) >= 0.8


def test_face_crops_mask_follows_a_face_that_comes_and_goes(tmp_path):
    pattern = [True] * 5 + [False] * 4 + [True] * 4 + [False, True] * 3
    frames = [synth_frame(i / 25, (480, 360), face=f) for i, f in enumerate(pattern)]
    path = write_frames(tmp_path / "come_and_go.mp4", frames)
    feats = get_extractor("face_crops", n_frames=None, size=(48, 48)).extract(path)
    assert feats["x"].shape == (len(pattern), 48, 48, 3)
    assert feats["mask"].tolist() == pattern
    missing = ~feats["mask"]
    assert np.isnan(feats["boxes"][missing]).all() and np.isnan(feats["scores"][missing]).all()
    assert np.isfinite(feats["boxes"][~missing]).all()
    assert feats["x"][missing].max() == 0 and feats["x"][~missing].std() > 10
    assert float(feats["coverage"]) == pytest.approx(sum(pattern) / len(pattern))


def test_face_crops_at_a_frame_rate(make_clip):
    clip = make_clip("face.mp4", duration=2.0, fps=25.0, size=(480, 360), audio=None)
    feats = get_extractor("face_crops", n_frames=None, fps=5.0, start=0.5, duration=1.0).extract(clip)
    assert len(feats["times"]) == 5
    assert feats["times"][0] >= 0.5 - 1e-6 and feats["times"][-1] < 1.5
    assert feats["mask"].all()


def test_face_crops_say_how_many_of_their_frames_are_distinct(make_clip):
    """A clip shorter than the frames a model reads (0.2 s: 5 frames for 16), or slower than the rate
    asked for (10 fps read at 25), gives its frames repeated, which nothing said: ``distinct`` counts the
    decoded frames among them. The crops themselves are as before: a repeat is a copy of its frame."""
    short = make_clip("short_face.mp4", duration=0.2, fps=25.0, size=(320, 240), audio=None)
    feats = get_extractor("face_crops", size=(32, 32)).extract(short)
    assert feats["x"].shape[0] == 16 and int(feats["distinct"]) == 5
    assert len(np.unique(feats["times"])) == 5  # each repeat has its frame's time
    first = feats["times"] == feats["times"][0]
    assert first.sum() > 1 and (feats["x"][first] == feats["x"][0]).all()
    slow = make_clip("slow_face.mp4", duration=1.0, fps=10.0, size=(320, 240), audio=None)
    feats = get_extractor("face_crops", n_frames=None, fps=25.0, size=(32, 32)).extract(slow)
    assert len(feats["times"]) == 23 and int(feats["distinct"]) == 10  # 25 per second up to the last frame (0.9 s)
    whole = make_clip("face.mp4", duration=2.0, fps=25.0, size=(480, 360), audio=None)
    assert int(get_extractor("face_crops", size=(32, 32)).extract(whole)["distinct"]) == 16


def test_face_crops_no_face_raises(make_clip):
    clip = make_clip("x.mp4", face=False)
    with pytest.raises(FeatureError, match="no face found in any of 16 frames") as info:
        get_extractor("face_crops").extract(clip)
    assert str(clip) in str(info.value) and "\n" not in str(info.value)


def test_face_extractors_reject_audio_files(make_clip):
    audio = make_clip("voice.wav")
    for name in ("face_crops", "face_landmarks"):
        with pytest.raises(MissingStreamError, match="has no video stream") as info:
            get_extractor(name).extract(audio)
        assert str(audio) in str(info.value)


# -- face_landmarks ------------------------------------------------------------------------------


def test_geometry_is_invariant_to_similarity_transforms():
    rng = np.random.default_rng(1)
    points = rng.uniform(0, 100, size=(478, 2))
    points[33], points[133], points[362], points[263] = [20, 40], [40, 40], [60, 40], [80, 40]
    angle = math.radians(20)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    moved = 2.5 * points @ rot.T + [300, -50]
    a, b = geometry(points), geometry(moved)
    roll = GEOMETRY.index("head_roll")
    keep = np.arange(len(GEOMETRY)) != roll
    assert np.allclose(a[keep], b[keep])
    assert a[roll] == pytest.approx(0.0) and b[roll] == pytest.approx(20.0)


def test_functionals_skip_missing_frames():
    frames = np.array([[1.0, 2.0], [np.nan, np.nan], [3.0, 6.0], [5.0, 10.0]])
    times = np.array([0.0, 0.1, 0.2, 0.3])
    x = functionals(frames, times).reshape(2, len(FUNCTIONALS))
    stats = dict(zip(FUNCTIONALS, x[0], strict=True))
    assert stats["mean"] == pytest.approx(3.0) and stats["min"] == 1.0 and stats["max"] == 5.0
    assert stats["speed"] == pytest.approx(20.0)  # only the pair (0.2, 0.3) s is consecutive


@pytest.mark.shared_data
def test_face_landmarks_on_ravdess(ravdess_video):
    ex = get_extractor("face_landmarks", fps=5.0, duration=2.0)
    feats = ex.extract(ravdess_video)
    names = feature_names()
    assert feats["x"].shape == (len(names),) == (len(GEOMETRY) * len(FUNCTIONALS),)
    assert len(set(names)) == len(names) and ex.feature_names() == names
    assert np.isfinite(feats["x"]).all()
    assert feats["frames"].shape == (10, len(GEOMETRY)) and len(feats["times"]) == 10
    assert float(feats["coverage"]) >= 0.9
    values = dict(zip(names, feats["x"], strict=True))
    assert 0.5 < values["mouth_width_mean"] < 1.5  # mouth about as wide as the eyes are apart
    assert 0.05 < values["eye_aspect_right_mean"] < 0.6
    assert values["brow_mid_left_mean"] > 0  # brows above the eyes
    assert abs(values["head_roll_mean"]) < 20


def test_face_landmarks_no_face_raises(make_clip):
    with pytest.raises(FeatureError, match="no face found in any of"):
        get_extractor("face_landmarks", fps=5.0).extract(make_clip("x.mp4", face=False))
