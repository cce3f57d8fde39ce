"""``face_crops``: the speaker's face in N frames, tracked, aligned by the eyes, cropped to a fixed size.

This is the input of the frame-based video encoders: paper 001
(Sultana et al., "Multimodal Emotion Recognition through Deep Fusion of Audio-Visual Data", section II.B.2 "Input Video Pre-processing":
30 grayscale 80x70 frames from a 3-second window -> ``n_frames=30, duration=3, size=(80, 70),
gray=True``; the paper does not say which of 80/70 is the width, we read it as width x height)
and the 3D ResNeXt of paper 000 (16-30 RGB 112x112 frames -> the defaults).

Departures from paper 001: it does not describe its face detector or any alignment; we detect
with MediaPipe's full-range BlazeFace, follow one face (:mod:`avemo.features.face.track`) and
align by the eyes (:mod:`avemo.features.face.align`), because unaligned crops mix head pose
into what the network sees. Paper 001 pads or truncates to a fixed count; we sample frames
uniformly over the window (repeating frames when it has fewer), which also gives a fixed count.

Output (:data:`~avemo.features.base.Features`):

* ``"x"``: (N, H, W, C) uint8 crops, C = 1 for gray, 3 for RGB; zeros where no face was found;
* ``"mask"``: (N,) bool, True where the speaker's face was found in that frame;
* ``"times"``: (N,) float64 seconds; ``"coverage"``: () float64, the fraction of frames with a face;
* ``"boxes"``: (N, 4) float32 smoothed ``[x0, y0, x1, y1]`` in source pixels, NaN where missing;
* ``"eyes"``: (N, 2, 2) float32 eye centres (subject's right, left), NaN where missing or unknown;
* ``"scores"``: (N,) float32 detector scores, NaN where missing;
* ``"distinct"``: () int64, how many of the N frames are distinct decoded frames (fewer than N where
  the window has fewer frames than N, or the video fewer per second than ``fps``: frames repeated).
* ``"still"``: () bool, the face's region showed one still picture in every frame (a cover image:
  :mod:`avemo.features.face.still`).

A frame without the face is never given an earlier frame's box. If no frame has a face the
extractor raises ``FeatureError("no face found in any of N frames")``: the caller decides
(the predictor falls back to audio only).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from avemo.errors import ConfigError, FeatureError
from avemo.features.base import Features, VideoExtractor, register_extractor
from avemo.features.face.align import crop_face
from avemo.features.face.sampling import FrameCount, check_sampling, iter_sampled_frames
from avemo.features.face.still import Stillness
from avemo.features.face.track import FaceTracker, TrackerConfig


@dataclass(frozen=True)
class FaceCropsConfig:
    """Options of ``face_crops`` (field names are fixed: model configs refer to them).

    ``n_frames`` / ``fps``: N frames spread over the window, or frames at a rate (one of them;
    both None = every frame); ``start`` / ``duration``: the window in seconds (None = to the end);
    ``size``: (width, height) of a crop; ``gray``: one channel; ``align``: eyes horizontal;
    ``detector``: ``"mediapipe"`` or ``"haar"``; ``margin``: fraction of the face box added on
    each side; ``smoothing``: One-Euro smoothing of the tracked box; ``choose``: which face is
    the speaker's when tracking starts; ``min_confidence``: MediaPipe's detection threshold;
    ``full_detect_interval``: seconds between whole-frame detections while the face is tracked
    (in between, the face is confirmed in its neighbourhood; 0 = whole frame every time);
    ``tiles``: MediaPipe's tiled search of the full-resolution frame when the whole-frame search
    finds no face (small faces in wide shots; :mod:`avemo.features.face.detect`).
    """

    n_frames: int | None = 16
    fps: float | None = None
    start: float = 0.0
    duration: float | None = None
    size: tuple[int, int] = (112, 112)
    gray: bool = False
    align: bool = True
    detector: Literal["mediapipe", "haar"] = "mediapipe"
    margin: float = 0.25
    smoothing: bool = True
    choose: Literal["largest", "confident", "central"] = "largest"
    min_confidence: float = 0.5
    full_detect_interval: float = 0.5
    tiles: bool = True


def make_tracker(config) -> FaceTracker:
    """A :class:`FaceTracker` (owning its detector) for a face extractor's config.

    Reads ``detector``, ``min_confidence``, ``tiles``, ``smoothing``, ``choose`` and ``full_detect_interval``.
    """
    options = (
        {"min_confidence": config.min_confidence, "tiles": config.tiles} if config.detector == "mediapipe" else {}
    )
    tracking = TrackerConfig(
        choose=config.choose, smoothing=config.smoothing, full_detect_interval=config.full_detect_interval
    )
    return FaceTracker(config.detector, tracking, **options)


@register_extractor
class FaceCrops(VideoExtractor):
    """The speaker's face crops over a window (see the module docstring)."""

    name = "face_crops"
    Config = FaceCropsConfig
    version = "1"
    summary = "tracked, eye-aligned face crops (N, H, W, C) uint8 with a face mask and coverage"

    def feature_names(self) -> list[str]:
        """The channels of the crops: ``gray``, or ``red``, ``green``, ``blue``."""
        return ["gray"] if self.config.gray else ["red", "green", "blue"]

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        c = self.config
        check_sampling(c.n_frames, c.fps, c.start, c.duration, self.name)
        if len(c.size) != 2 or min(c.size) <= 0:
            raise ConfigError(f"{self.name}: size must be (width, height) > 0, got {c.size}")
        if c.margin < 0:
            raise ConfigError(f"{self.name}: margin must be >= 0, got {c.margin}")

    def extract(self, path: str | Path) -> Features:
        c = self.config
        w, h = c.size
        channels = 1 if c.gray else 3
        crops: list[np.ndarray] = []
        times: list[float] = []
        boxes: list[np.ndarray] = []
        eyes: list[np.ndarray] = []
        scores: list[float] = []
        nan_box = np.full(4, np.nan)
        nan_eyes = np.full((2, 2), np.nan)
        blank = np.zeros((h, w, channels), dtype=np.uint8)
        previous: tuple[float, int, tuple] | None = None  # (time, id(image), outputs) of a repeated frame
        count, still = FrameCount(), Stillness()
        with make_tracker(c) as tracker:
            for t, image in iter_sampled_frames(
                path, n_frames=c.n_frames, fps=c.fps, start=c.start, duration=c.duration, count=count
            ):
                if previous is not None and previous[0] == t and previous[1] == id(image):
                    out = previous[2]  # the same frame repeated (a window with fewer frames than n_frames)
                else:
                    face = tracker.update(t, image)
                    still.see(image, None if face is None else face.box)
                    if face is None:
                        out = (blank, nan_box, nan_eyes, np.nan)
                    else:
                        out = (
                            crop_face(image, face, size=(w, h), gray=c.gray, align=c.align, margin=c.margin),
                            face.box,
                            face.eyes if face.eyes is not None else nan_eyes,
                            face.score,
                        )
                    previous = (t, id(image), out)
                crops.append(out[0])
                boxes.append(out[1])
                eyes.append(out[2])
                scores.append(out[3])
                times.append(t)
        n = len(times)
        if n == 0:
            raise FeatureError("holds no video frames in the requested window", path)
        score_arr = np.asarray(scores, dtype=np.float32)
        mask = ~np.isnan(score_arr)
        if not mask.any():
            raise FeatureError(f"no face found in any of {n} frames", path)
        return {
            "x": np.stack(crops),
            "mask": mask,
            "times": np.asarray(times, dtype=np.float64),
            "coverage": np.asarray(mask.mean(), dtype=np.float64),
            "boxes": np.stack(boxes).astype(np.float32),
            "eyes": np.stack(eyes).astype(np.float32),
            "scores": score_arr,
            "distinct": np.asarray(count.distinct, dtype=np.int64),
            "still": np.asarray(still.still),
        }
