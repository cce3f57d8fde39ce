"""Small faces: MediaPipe's tiled search of the full-resolution frame and the tracker's rule 6
(avemo.features.face.detect, avemo.features.face.track)."""

from __future__ import annotations

import numpy as np
import pytest

from avemo.errors import ConfigError
from avemo.features.face import Detection, FaceCropsConfig, FaceTracker, TrackerConfig, get_detector, iou
from avemo.features.face.crops import make_tracker
from avemo.features.face.detect import merge_detections, tile_grid
from avemo.media import sample_frames
from avemo.media.synth import backdrop, wide_shot

WIDE = (1920, 1080)


class TiledScriptedDetector:
    """A detector with a tiled search that finds nothing in the whole frame: ``tiles_script`` answers
    the tiled searches in turn, ``local`` every ``detect_in``; the calls are counted."""

    name = "scripted"
    tiles = True

    def __init__(self, tiles_script, local=None):
        self.tiles_script = list(tiles_script)
        self.local = local or []
        self.calls = {"detect": 0, "detect_in": 0, "detect_tiles": 0}

    def detect(self, image, tiles=None):
        self.calls["detect"] += 1
        assert tiles is False  # the tracker runs the tiles itself, when rule 6 allows
        return []

    def detect_in(self, image, box):
        self.calls["detect_in"] += 1
        return [Detection(box=np.array(b, dtype=float), score=0.8) for b in self.local]

    def detect_tiles(self, image):
        self.calls["detect_tiles"] += 1
        boxes = self.tiles_script.pop(0)
        return [Detection(box=np.array(b, dtype=float), score=0.9) for b in boxes]

    def close(self):
        pass


@pytest.fixture(scope="module")
def close_up(ravdess_video):
    """Three frames of the real RAVDESS clip and the face in each (whole-frame search)."""
    frames = sample_frames(ravdess_video, 3)
    detector = get_detector("mediapipe", tiles=False)
    faces = [detector.detect(image)[0] for image in frames.images]
    detector.close()
    return frames, faces


# -- the tiling and the merge ------------------------------------------------------------------


def test_tile_grid_covers_the_frame_with_the_overlap_asked():
    tiles = tile_grid(1920, 1080, 0.5, 0.25)
    assert {side for _, _, side in tiles} == {540} and len(tiles) == 15
    xs, ys = sorted({x for x, _, _ in tiles}), sorted({y for _, y, _ in tiles})
    assert xs[0] == 0 and xs[-1] + 540 == 1920 and ys[0] == 0 and ys[-1] + 540 == 1080
    assert min(np.diff(xs)) > 0 and max(np.diff(xs)) <= 540 * 0.75
    assert max(np.diff(ys)) <= 540 * 0.75
    assert tile_grid(100, 80, 1.0, 0.25) == [(0, 0, 80), (20, 0, 80)]


def test_merge_keeps_the_whole_face_over_a_copy_cut_by_a_tile_edge():
    whole = Detection(box=np.array([100.0, 100.0, 150.0, 160.0]), score=0.7)
    cut = Detection(box=np.array([100.0, 100.0, 125.0, 160.0]), score=0.9)  # IoU 0.5 with it, inside it
    same = Detection(box=np.array([102.0, 101.0, 152.0, 160.0]), score=0.6)  # the face in another tile
    other = Detection(box=np.array([400.0, 100.0, 450.0, 160.0]), score=0.8)
    kept = merge_detections([(cut, True), (whole, False), (same, False), (other, False)], 0.6)
    assert kept == [other, whole]


def test_tile_options_checked_and_ignored_by_haar():
    with pytest.raises(ConfigError, match="tile_size"):
        get_detector("mediapipe", tile_size=0.0)
    assert get_detector("haar", tiles=True, tile_size=0.3).name == "haar"
    for tiles in (True, False):
        with make_tracker(FaceCropsConfig(tiles=tiles)) as tracker:
            assert tracker.detector.tiles is tiles


# -- the tracker's rule 6 --------------------------------------------------------------------------


def test_tracker_runs_the_tiles_after_a_miss_then_follows_the_face_locally():
    face = (600.0, 500.0, 650.0, 560.0)
    detector = TiledScriptedDetector([[face]], local=[face])
    tracker = FaceTracker(detector, TrackerConfig(smoothing=False, full_detect_interval=0.5))
    image = np.zeros((1080, 1920, 3), np.uint8)
    faces = [tracker.update(0.1 * i, image) for i in range(12)]
    assert all(f is not None and np.allclose(f.box, face) for f in faces)
    # one tiled search; the periodic whole-frame searches that miss the face are followed by detect_in
    assert detector.calls == {"detect": 3, "detect_in": 11, "detect_tiles": 1}


def test_tracker_backs_off_after_tiled_searches_that_found_nothing():
    face = (600.0, 500.0, 650.0, 560.0)
    detector = TiledScriptedDetector([[]] * 5 + [[face], [], []])
    tracker = FaceTracker(detector, TrackerConfig(tile_interval=1.0, tile_interval_max=4.0, reacquire_after=0.2))
    image = np.zeros((1080, 1920, 3), np.uint8)
    tiled_at = []
    for i in range(int(16.5 / 0.125)):  # 0 .. 16.375 s, nothing in the whole frame nor around the face
        t = 0.125 * i
        before = detector.calls["detect_tiles"]
        face_found = tracker.update(t, image)
        if detector.calls["detect_tiles"] > before:
            tiled_at.append(t)
            assert (face_found is not None) == (t == 15.0)
    # waits of 1, 2, 4, 4 s; the face found at 15 s resets the wait: lost on the next frame, it is
    # searched for at once, and then 1 s later
    assert tiled_at == [0.0, 1.0, 3.0, 7.0, 11.0, 15.0, 15.125, 16.125]


class SceneDetector:
    """A scripted scene the test changes before each frame: ``big`` faces (found by the whole-frame
    search), ``small`` ones (found by the tiled search only); ``detect_in`` finds any of them whose
    centre lies in its region. Tiled searches are counted."""

    name = "scene"
    tiles = True

    def __init__(self):
        self.big, self.small, self.tiled = [], [], 0

    @staticmethod
    def _faces(boxes):
        return [Detection(box=np.array(b, dtype=float), score=0.9) for b in boxes]

    def detect(self, image, tiles=None):
        assert tiles is False
        return self._faces(self.big)

    def detect_in(self, image, box):
        side = 2.0 * np.sqrt((box[2] - box[0]) * (box[3] - box[1]))
        centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        return [d for d in self._faces(self.big + self.small) if np.all(np.abs(d.center - centre) < side / 2)]

    def detect_tiles(self, image):
        self.tiled += 1
        return self._faces(self.big + self.small)

    def close(self):
        pass


SPEAKER = (700.0, 200.0, 1100.0, 700.0)  # a close-up's face, 500 px of 1080
BACKGROUND = (1600.0, 100.0, 1630.0, 135.0)  # a face far behind it, 35 px: only the tiles see it


def run_scene(detector, scene, end, step=0.125):
    """``scene(t)`` -> (big, small) boxes at each frame time up to ``end``; {time: box followed or None}."""
    tracker = FaceTracker(detector, TrackerConfig(smoothing=False))
    image = np.zeros((1080, 1920, 3), np.uint8)
    out = {}
    for i in range(round(end / step)):
        t = i * step
        detector.big, detector.small = scene(t)
        face = tracker.update(t, image)
        out[t] = None if face is None else tuple(face.box)
    return out


def test_tiles_do_not_switch_to_a_small_background_face_while_the_speaker_looks_down():
    detector = SceneDetector()
    # the speaker's face is missing from 2 s to 4 s; the small face behind is there all along
    faces = run_scene(detector, lambda t: ([] if 2 <= t < 4 else [SPEAKER], [BACKGROUND]), 6.0)
    assert all(faces[t] == SPEAKER for t in faces if t < 2 or t >= 4)
    assert all(faces[t] is None for t in faces if 2 <= t < 4)
    # the tiled searches that found only the small face count as empty: at 2 and 3 s
    assert detector.tiled == 2


def test_tiles_take_a_small_face_after_no_face_was_followed_for_long():
    detector = SceneDetector()
    # a cut at 2 s from the close-up to a wide shot of a small face
    faces = run_scene(detector, lambda t: ([SPEAKER], []) if t < 2 else ([], [BACKGROUND]), 8.0)
    assert all(faces[t] == SPEAKER for t in faces if t < 2)
    # tiled searches at 2, 3 and 5 s: the last face followed (1.875 s) is then over 3 s old
    assert all(faces[t] is None for t in faces if 2 <= t < 5)
    assert all(faces[t] == BACKGROUND for t in faces if t >= 5)


def test_tiles_find_a_small_face_from_the_start_and_faces_of_a_similar_size_later():
    # not a regression of the size check: no face was followed before the first one, and a face over
    # half the height of the last one followed is taken as before (after reacquire_after)
    detector = SceneDetector()
    other = (200.0, 800.0, 222.0, 825.0)  # 25 px, 0.71 of the first face's height
    faces = run_scene(detector, lambda t: ([], [BACKGROUND] if t < 1 else [other]), 3.0)
    assert all(faces[t] == BACKGROUND for t in faces if t < 1)
    assert all(faces[t] is None for t in faces if 1 <= t < 1.5)  # the track on the first one is kept
    assert all(faces[t] == other for t in faces if t >= 1.5)


# -- real pixels: a wide shot made from the RAVDESS clip -----------------------------------------------


@pytest.mark.shared_data
def test_tiles_find_the_small_face_of_a_wide_shot_where_the_whole_frame_does_not(close_up):
    frames, faces = close_up
    image, close = frames.images[1], faces[1]
    wide, scale, origin = wide_shot(image, close.height, 1 / 20, backdrop(WIDE, "gradient"))
    pasted = np.concatenate([origin, origin + np.array(image.shape[1::-1]) * scale])
    plain, tiled = get_detector("mediapipe", tiles=False), get_detector("mediapipe")
    try:
        assert plain.detect(wide) == []  # the old behaviour: the face is 54 px of 1080
        found = tiled.detect(wide)
        assert len(found) == 1
        box = found[0].box
        assert np.all(box[:2] >= pasted[:2]) and np.all(box[2:] <= pasted[2:])
        assert iou(box, close.box * scale + np.tile(origin, 2)) > 0.7
        assert found[0].eyes is not None and found[0].eyes[0, 0] < found[0].eyes[1, 0]
        # a close-up is found by the whole-frame search: the tiles do not run, nothing changes
        assert np.array_equal(tiled.detect(image)[0].box, close.box)
        # scenes without a face: the tiles find nothing
        for kind in ("gradient", "noise", "blocks"):
            assert tiled.detect_tiles(backdrop(WIDE, kind, seed=5)) == [], kind
    finally:
        plain.close()
        tiled.close()


@pytest.mark.shared_data
def test_tracker_follows_the_small_face_found_by_the_tiles(close_up):
    frames, faces = close_up
    scene = backdrop(WIDE, "gradient")
    shots = [wide_shot(image, f.height, 1 / 20, scene) for image, f in zip(frames.images, faces, strict=True)]
    for tiles in (True, False):
        with FaceTracker("mediapipe", TrackerConfig(smoothing=False), tiles=tiles) as tracker:
            found = [tracker.update(float(t), wide) for t, (wide, _, _) in zip(frames.times, shots, strict=True)]
        if not tiles:
            assert found == [None, None, None]  # the old behaviour
            continue
        assert all(f is not None for f in found)
        for face, close, (_, scale, origin) in zip(found, faces, shots, strict=True):
            x, y = (face.center - origin) / scale  # back in the close-up: on its face
            assert close.box[0] < x < close.box[2] and close.box[1] < y < close.box[3], (x, y, close.box)


@pytest.mark.shared_data
def test_tracker_keeps_the_close_up_speaker_when_a_small_face_is_behind(ravdess_video, crema_videos):
    """Real pixels: a 1080p close-up of the RAVDESS speaker (face 0.35 of the height) with a CREMA-D
    speaker small (1/20) in the background; the speaker's face blurred away from 1 s to 3 s (looking
    down). Before the size check the tiles found the small face, which then kept the track."""
    import cv2

    detector = get_detector("mediapipe", tiles=False)
    frames = sample_frames(ravdess_video, 32)
    other = sample_frames(crema_videos[4], 1).images[0]
    scene, _, _ = wide_shot(other, detector.detect(other)[0].height, 1 / 20, backdrop(WIDE, "gradient", seed=3),
                            at=(0.85, 0.08))
    shots = []
    for i, image in enumerate(frames.images):
        face = detector.detect(image)[0]
        if 8 <= i < 24:
            x0, y0, x1, y1 = face.box.astype(int)
            pad = (y1 - y0) // 3
            part = (slice(max(y0 - pad, 0), y1 + pad), slice(max(x0 - pad, 0), x1 + pad))
            image = image.copy()
            image[part] = cv2.GaussianBlur(image[part], (0, 0), 25)
        wide, scale, origin = wide_shot(image, face.height, 0.35, scene, at=(0.0, 0.0))
        shots.append((wide, face.box * scale + np.tile(origin, 2)))
    detector.close()
    with FaceTracker("mediapipe") as tracker:
        found = [tracker.update(0.125 * i, wide) for i, (wide, _) in enumerate(shots)]
    assert all(f is None for f in found[8:24])
    for f, (_, box) in zip(found[:8] + found[24:], shots[:8] + shots[24:], strict=True):
        assert f is not None and box[0] < f.center[0] < box[2] and box[1] < f.center[1] < box[3]
