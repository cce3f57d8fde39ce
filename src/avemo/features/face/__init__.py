"""Face features: detect, track, align and crop the speaker's face; FaceMesh geometry.

Building blocks (each usable on its own, e.g. by the predictor on the frames of a stream):

* :mod:`~avemo.features.face.detect`: :class:`FaceDetector` protocol, backends ``mediapipe``
  (BlazeFace full-range, default) and ``haar`` (OpenCV), :func:`get_detector`;
* :mod:`~avemo.features.face.track`: :class:`FaceTracker` (``update(time, image) ->
  TrackedFace | None``), speaker choice, matching, One-Euro box smoothing, no stale boxes;
* :mod:`~avemo.features.face.align`: :func:`crop_face` (eye alignment, margin, size, colour);
* :mod:`~avemo.features.face.still`: :class:`Stillness`, whether the face's region is one still
  picture throughout (a cover image);

Registered extractors: ``face_crops`` (:mod:`~avemo.features.face.crops`) and
``face_landmarks`` (:mod:`~avemo.features.face.landmarks`).
"""

from avemo.features.face.align import crop_face, crop_transform, eye_angle
from avemo.features.face.crops import FaceCrops, FaceCropsConfig
from avemo.features.face.detect import (
    DETECTORS,
    Detection,
    FaceDetector,
    HaarDetector,
    MediaPipeDetector,
    get_detector,
)
from avemo.features.face.landmarks import (
    FaceLandmarks,
    FaceLandmarksConfig,
    FaceMesh,
    feature_names,
    geometry,
)
from avemo.features.face.track import FaceTracker, OneEuroFilter, TrackedFace, TrackerConfig, iou

__all__ = [
    "DETECTORS",
    "Detection",
    "FaceCrops",
    "FaceCropsConfig",
    "FaceDetector",
    "FaceLandmarks",
    "FaceLandmarksConfig",
    "FaceMesh",
    "FaceTracker",
    "HaarDetector",
    "MediaPipeDetector",
    "OneEuroFilter",
    "TrackedFace",
    "TrackerConfig",
    "crop_face",
    "crop_transform",
    "eye_angle",
    "feature_names",
    "geometry",
    "get_detector",
    "iou",
]
