"""``face_landmarks``: MediaPipe FaceMesh on the tracked face, per-frame geometry, clip functionals.

Per sampled frame (``fps`` per second, streamed with :func:`avemo.media.iter_frames`, so a
10-minute video never holds more than one frame): the speaker's face is tracked
(:mod:`avemo.features.face.track`), an upright square around it (``margin`` on each side)
is resized to 256x256 and given to FaceMesh (``refine_landmarks=True``: 468 mesh points + 10
iris points = 478). From the landmarks we compute the :data:`GEOMETRY` features below, in an
eye-aligned frame (origin at the midpoint of the eye centres, x along the eye line, y pointing
down the face) and divided by the inter-ocular distance (IOD, between the eye centres, each the
midpoint of its two corners), so they do not depend on face size, position or in-plane rotation.

Clip-level ``"x"`` is, for each geometry feature in order, the :data:`FUNCTIONALS` over the
frames with a face: mean, std, min, max, 10th/50th/90th percentiles, and ``speed``, the mean
absolute change per second between consecutive sampled frames that both have a face (0 if
there is no such pair). Names: ``f"{feature}_{functional}"``, see :func:`feature_names`.

Landmark indices are those of MediaPipe's canonical face mesh (``mediapipe/modules/
face_geometry/data/canonical_face_model_uv_visualization.png``); "right"/"left" are the subject's.
The eye aspect ratio follows Soukupová & Čech, "Real-time eye blink detection using facial
landmarks" (CVWW 2016), with three lid pairs. The head-pose values are proxies from 2-D
geometry, not a fitted 3-D pose.

Output: ``"x"`` (D,) float32 with D = len(GEOMETRY) * len(FUNCTIONALS); ``"frames"`` (T, F)
float32 per-frame geometry (NaN rows where no face); ``"times"`` (T,); ``"mask"`` (T,) bool;
``"coverage"`` () float64; ``"distinct"`` () int64, how many of the T frames are distinct decoded
frames (fewer where the video has fewer frames per second than ``fps``: frames repeated); ``"still"``
() bool, the face's region showed one still picture throughout (:mod:`avemo.features.face.still`). No
face in any frame raises FeatureError.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from avemo.errors import ConfigError, FeatureError
from avemo.features.base import Features, VideoExtractor, register_extractor
from avemo.features.face.align import crop_face, crop_transform
from avemo.features.face.crops import make_tracker
from avemo.features.face.sampling import FrameCount, check_sampling, iter_sampled_frames
from avemo.features.face.still import Stillness
from avemo.native_output import silenced

MESH_CROP = 256  # side of the square crop given to FaceMesh

# MediaPipe face-mesh indices (subject's right / left)
R_EYE_OUTER, R_EYE_INNER, L_EYE_INNER, L_EYE_OUTER = 33, 133, 362, 263
R_LIDS = ((159, 145), (158, 153), (160, 144))  # (upper, lower) pairs
L_LIDS = ((386, 374), (385, 380), (387, 373))
R_BROW_INNER, R_BROW_MID, R_BROW_OUTER = 107, 105, 70
L_BROW_INNER, L_BROW_MID, L_BROW_OUTER = 336, 334, 300
MOUTH_RIGHT, MOUTH_LEFT = 61, 291
LIP_UPPER_INNER, LIP_LOWER_INNER = 13, 14
LIP_UPPER_OUTER, LIP_LOWER_OUTER = 0, 17
NOSE_TIP, NOSE_BOTTOM = 1, 2
CHIN, FOREHEAD = 152, 10
FACE_RIGHT, FACE_LEFT = 234, 454

#: per-frame geometry features, in output order
GEOMETRY: tuple[str, ...] = (
    "mouth_open",  # inner-lip gap / IOD
    "mouth_open_outer",  # outer-lip height / IOD
    "mouth_width",  # lip-corner distance / IOD
    "mouth_aspect",  # inner-lip gap / mouth width
    "lip_corner_right",  # height of the right lip corner above the inner-lip centre / IOD (smile > 0)
    "lip_corner_left",
    "upper_lip_nose",  # vertical distance nose bottom -> upper lip / IOD
    "eye_aspect_right",  # eye aspect ratio: mean lid gap / eye width
    "eye_aspect_left",
    "brow_inner_right",  # height of the inner brow above the eye centre / IOD
    "brow_mid_right",
    "brow_outer_right",
    "brow_inner_left",
    "brow_mid_left",
    "brow_outer_left",
    "brow_gap",  # horizontal distance between the inner brows / IOD (frown < )
    "jaw_drop",  # chin below the eye line / IOD
    "head_roll",  # angle of the eye line, degrees (positive: left eye lower in the image)
    "head_yaw",  # nose-tip offset from the face-edge midpoint / face width (-0.5..0.5)
    "head_pitch",  # nose-tip height between eye line (0) and chin (1)
)

FUNCTIONALS: tuple[str, ...] = ("mean", "std", "min", "max", "p10", "p50", "p90", "speed")


def feature_names() -> list[str]:
    """The names of ``"x"``, in order: ``f"{feature}_{functional}"`` for GEOMETRY x FUNCTIONALS."""
    return [f"{g}_{f}" for g in GEOMETRY for f in FUNCTIONALS]


def geometry(points: np.ndarray) -> np.ndarray:
    """The :data:`GEOMETRY` features (F,) of one face's (478, 2+) landmarks in pixel coordinates."""
    p = np.asarray(points, dtype=np.float64)[:, :2]
    r_eye = (p[R_EYE_OUTER] + p[R_EYE_INNER]) / 2
    l_eye = (p[L_EYE_OUTER] + p[L_EYE_INNER]) / 2
    axis = l_eye - r_eye
    iod = float(np.hypot(*axis))
    if iod < 1e-6:
        return np.full(len(GEOMETRY), np.nan)
    ux = axis / iod  # along the eye line (image left -> right for a frontal face)
    uy = np.array([-ux[1], ux[0]])  # perpendicular, pointing down the face
    origin = (r_eye + l_eye) / 2
    q = (p - origin) @ np.stack([ux, uy], axis=1) / iod  # eye-aligned, IOD units
    r_c = (q[R_EYE_OUTER] + q[R_EYE_INNER]) / 2
    l_c = (q[L_EYE_OUTER] + q[L_EYE_INNER]) / 2

    def dist(a: int, b: int) -> float:
        return float(np.hypot(*(q[a] - q[b])))

    def ear(lids, outer: int, inner: int) -> float:
        width = dist(outer, inner)
        return float(np.mean([dist(u, v) for u, v in lids]) / width) if width > 1e-9 else np.nan

    mouth_centre_y = (q[LIP_UPPER_INNER, 1] + q[LIP_LOWER_INNER, 1]) / 2
    width = dist(MOUTH_RIGHT, MOUTH_LEFT)
    face_w = q[FACE_LEFT, 0] - q[FACE_RIGHT, 0]
    face_mid = (q[FACE_LEFT, 0] + q[FACE_RIGHT, 0]) / 2
    chin_y = q[CHIN, 1]
    values = {
        "mouth_open": dist(LIP_UPPER_INNER, LIP_LOWER_INNER),
        "mouth_open_outer": dist(LIP_UPPER_OUTER, LIP_LOWER_OUTER),
        "mouth_width": width,
        "mouth_aspect": dist(LIP_UPPER_INNER, LIP_LOWER_INNER) / width if width > 1e-9 else np.nan,
        "lip_corner_right": mouth_centre_y - q[MOUTH_RIGHT, 1],
        "lip_corner_left": mouth_centre_y - q[MOUTH_LEFT, 1],
        "upper_lip_nose": q[LIP_UPPER_OUTER, 1] - q[NOSE_BOTTOM, 1],
        "eye_aspect_right": ear(R_LIDS, R_EYE_OUTER, R_EYE_INNER),
        "eye_aspect_left": ear(L_LIDS, L_EYE_OUTER, L_EYE_INNER),
        "brow_inner_right": r_c[1] - q[R_BROW_INNER, 1],
        "brow_mid_right": r_c[1] - q[R_BROW_MID, 1],
        "brow_outer_right": r_c[1] - q[R_BROW_OUTER, 1],
        "brow_inner_left": l_c[1] - q[L_BROW_INNER, 1],
        "brow_mid_left": l_c[1] - q[L_BROW_MID, 1],
        "brow_outer_left": l_c[1] - q[L_BROW_OUTER, 1],
        "brow_gap": q[L_BROW_INNER, 0] - q[R_BROW_INNER, 0],
        "jaw_drop": chin_y,
        "head_roll": float(np.degrees(np.arctan2(axis[1], axis[0]))),
        "head_yaw": (q[NOSE_TIP, 0] - face_mid) / face_w if abs(face_w) > 1e-9 else np.nan,
        "head_pitch": q[NOSE_TIP, 1] / chin_y if abs(chin_y) > 1e-9 else np.nan,
    }
    return np.array([values[name] for name in GEOMETRY], dtype=np.float64)


def functionals(frames: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Clip functionals (F * len(FUNCTIONALS),) of per-frame features (T, F); NaN rows are skipped."""
    frames = np.asarray(frames, dtype=np.float64)
    valid = ~np.isnan(frames).any(axis=1)
    v = frames[valid]
    if len(v) == 0:
        raise ValueError("no frame with a face")
    pct = np.percentile(v, [10, 50, 90], axis=0)
    both = valid[1:] & valid[:-1]
    dt = np.diff(np.asarray(times, dtype=np.float64))
    keep = both & (dt > 0)
    if keep.any():
        rate = np.abs(np.diff(frames, axis=0)[keep]) / dt[keep][:, None]
        speed = rate.mean(axis=0)
    else:
        speed = np.zeros(frames.shape[1])
    stats = np.stack([v.mean(0), v.std(0), v.min(0), v.max(0), pct[0], pct[1], pct[2], speed], axis=1)
    return stats.ravel()  # feature-major: (F, n_functionals) -> names f"{feature}_{functional}"


class FaceMesh:
    """MediaPipe FaceMesh (478 points with ``refine_landmarks``) on one face crop at a time.

    ``static_image_mode=True``: every crop is processed on its own (the crops come from our
    tracker, so MediaPipe's own frame-to-frame tracking would only add a second, hidden state).
    """

    def __init__(self, min_confidence: float = 0.5):
        import mediapipe as mp

        with silenced(2):  # TFLite and absl start-up notices
            self._impl = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True,
                max_num_faces=1,
                refine_landmarks=True,
                min_detection_confidence=min_confidence,
            )

    def __call__(self, crop: np.ndarray) -> np.ndarray | None:
        """(478, 3) landmarks in crop pixels (z in the same scale as x), or None if no face."""
        h, w = crop.shape[:2]
        with silenced(2):  # the graph prints notices as its parts first run
            result = self._impl.process(np.ascontiguousarray(crop))
        if not result.multi_face_landmarks:
            return None
        lms = result.multi_face_landmarks[0].landmark
        return np.array([(lm.x * w, lm.y * h, lm.z * w) for lm in lms], dtype=np.float64)

    def close(self) -> None:
        self._impl.close()


@dataclass(frozen=True)
class FaceLandmarksConfig:
    """Options of ``face_landmarks``: ``fps`` sampled frames per second over [start, start+duration);
    ``detector``, ``smoothing``, ``choose``, ``full_detect_interval``, ``tiles`` of the tracker (as in
    ``face_crops``); ``margin`` around the face box in the mesh crop; ``min_confidence`` of
    detection and mesh."""

    fps: float = 10.0
    start: float = 0.0
    duration: float | None = None
    detector: Literal["mediapipe", "haar"] = "mediapipe"
    margin: float = 0.35
    smoothing: bool = True
    choose: Literal["largest", "confident", "central"] = "largest"
    min_confidence: float = 0.5
    full_detect_interval: float = 0.5
    tiles: bool = True


@register_extractor
class FaceLandmarks(VideoExtractor):
    """FaceMesh geometry of the speaker's face and its clip functionals (see the module docstring)."""

    name = "face_landmarks"
    Config = FaceLandmarksConfig
    version = "1"
    summary = "FaceMesh geometry (mouth, eyes, brows, head pose) per frame and clip functionals"

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        c = self.config
        check_sampling(None, c.fps, c.start, c.duration, self.name)
        if c.margin < 0:
            raise ConfigError(f"{self.name}: margin must be >= 0, got {c.margin}")

    def feature_names(self) -> list[str]:
        return feature_names()

    def extract(self, path: str | Path) -> Features:
        c = self.config
        rows: list[np.ndarray] = []
        times: list[float] = []
        missing = np.full(len(GEOMETRY), np.nan)
        mesh = FaceMesh(c.min_confidence)
        count, still = FrameCount(), Stillness()
        try:
            with make_tracker(c) as tracker:
                for t, image in iter_sampled_frames(path, fps=c.fps, start=c.start, duration=c.duration, count=count):
                    times.append(t)
                    face = tracker.update(t, image)
                    still.see(image, None if face is None else face.box)
                    if face is None:
                        rows.append(missing)
                        continue
                    size = (MESH_CROP, MESH_CROP)
                    crop = crop_face(image, face, size=size, align=False, margin=c.margin)
                    points = mesh(crop)
                    if points is None:
                        rows.append(missing)
                        continue
                    # back to source pixels (the crop is upright and isotropic: a scale and a shift)
                    matrix = crop_transform(face, size, c.margin, align=False)
                    k = matrix[0, 0]
                    source = (points[:, :2] - matrix[:, 2]) / k
                    rows.append(geometry(source))
        finally:
            mesh.close()
        if not times:
            raise FeatureError("holds no video frames in the requested window", path)
        frames = np.stack(rows)
        mask = ~np.isnan(frames).any(axis=1)
        if not mask.any():
            raise FeatureError(f"no face found in any of {len(times)} frames", path)
        t = np.asarray(times, dtype=np.float64)
        return {
            "x": functionals(frames, t).astype(np.float32),
            "frames": frames.astype(np.float32),
            "times": t,
            "mask": mask,
            "coverage": np.asarray(mask.mean(), dtype=np.float64),
            "distinct": np.asarray(count.distinct, dtype=np.int64),
            "still": np.asarray(still.still),
        }
