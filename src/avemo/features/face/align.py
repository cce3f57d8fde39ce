"""Cut the face out of a frame: aligned by the eyes, with a margin, at a fixed size and colour.

:func:`crop_face` maps a rotated rectangle around the face onto the output image with one
affine warp:

* **centre**: the centre of the (smoothed) face box;
* **size**: the box's longer side enlarged by ``margin`` on every side, ``S = max(w, h) *
  (1 + 2 * margin)``; the region is ``S`` high and ``S * width/height`` wide for a landscape
  output (``S`` wide for a portrait one), so the square ``S x S`` around the face is always
  inside it and the face keeps its proportions (no stretching to the output's aspect ratio);
* **rotation** (``align=True``): by the angle of the line through the two eyes, so the eyes
  come out horizontal. Rotating the frame about the eye midpoint and then cropping around the
  rotated box centre is the same rectangle, so this is the usual "rotate about the eye
  midpoint" alignment done in one resampling step. Faces without eye positions, or with eyes
  estimated from the box (Haar without the eye cascade), are cropped upright.

The scale comes from the box, not from the inter-ocular distance: the eye distance shrinks
when the head turns (yaw), which would zoom the crop in and out; the detector's box is steadier.
A crop that reaches outside the frame is filled with black. Large down-scalings are first
area-averaged (``cv2.INTER_AREA``) so that small crops of big faces do not alias.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from avemo.features.face.detect import Detection
from avemo.features.face.track import TrackedFace


def eye_angle(eyes: np.ndarray) -> float:
    """Angle in radians of the line from the subject's right eye to the left eye (0 = horizontal)."""
    (x0, y0), (x1, y1) = eyes
    return math.atan2(y1 - y0, x1 - x0)


def _geometry(face: TrackedFace | Detection) -> tuple[np.ndarray, np.ndarray | None, bool]:
    if isinstance(face, TrackedFace):
        return face.box, face.eyes, face.detection.eyes_estimated
    return face.box, face.eyes, face.eyes_estimated


def crop_transform(
    face: TrackedFace | Detection,
    size: tuple[int, int] = (112, 112),
    margin: float = 0.25,
    align: bool = True,
) -> np.ndarray:
    """The 2x3 affine matrix taking source-image pixel coordinates to crop pixel coordinates."""
    out_w, out_h = int(size[0]), int(size[1])
    if out_w <= 0 or out_h <= 0:
        raise ValueError(f"crop size must be positive, got {size}")
    box, eyes, estimated = _geometry(face)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = max(box[2] - box[0], box[3] - box[1], 1.0) * (1 + 2 * margin)
    region_h = side if out_w >= out_h else side * out_h / out_w
    k = out_h / region_h  # output pixels per source pixel
    theta = eye_angle(eyes) if (align and eyes is not None and not estimated) else 0.0
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, s], [-s, c]])  # rotation by -theta: the eye line becomes horizontal
    lin = k * rot
    offset = np.array([(out_w - 1) / 2, (out_h - 1) / 2]) - lin @ np.array([cx, cy])
    return np.hstack([lin, offset[:, None]])


def crop_face(
    image: np.ndarray,
    face: TrackedFace | Detection,
    size: tuple[int, int] = (112, 112),
    gray: bool = False,
    align: bool = True,
    margin: float = 0.25,
) -> np.ndarray:
    """The face region of ``image`` as an (h, w, C) uint8 array (C = 1 if ``gray`` else 3).

    ``image``: (H, W, 3) RGB or (H, W) gray uint8; ``size``: (width, height) of the output;
    ``margin``: fraction of the box size added on each side; ``align``: rotate so the eyes
    are horizontal (see the module docstring).
    """
    out_w, out_h = int(size[0]), int(size[1])
    matrix = crop_transform(face, size, margin, align)
    k = math.hypot(matrix[0, 0], matrix[0, 1])
    src = image
    if k < 0.7:
        # area-average the region first, then warp at (about) unit scale
        inv = cv2.invertAffineTransform(matrix)
        corners = np.array([[0, 0, 1], [out_w, 0, 1], [0, out_h, 1], [out_w, out_h, 1]], dtype=np.float64)
        pts = corners @ inv.T
        h, w = image.shape[:2]
        x0 = int(max(math.floor(pts[:, 0].min()) - 2, 0))
        y0 = int(max(math.floor(pts[:, 1].min()) - 2, 0))
        x1 = int(min(math.ceil(pts[:, 0].max()) + 2, w))
        y1 = int(min(math.ceil(pts[:, 1].max()) + 2, h))
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            roi = image[y0:y1, x0:x1]
            new_w = max(2, round((x1 - x0) * k))
            new_h = max(2, round((y1 - y0) * k))
            src = cv2.resize(roi, (new_w, new_h), interpolation=cv2.INTER_AREA)
            fx, fy = new_w / (x1 - x0), new_h / (y1 - y0)
            # pixel q of the resized region is source p = (q + 0.5) / f - 0.5 + origin (pixel centres)
            lin = matrix[:, :2] @ np.diag([1 / fx, 1 / fy])
            origin = np.array([x0 + 0.5 / fx - 0.5, y0 + 0.5 / fy - 0.5])
            offset = matrix[:, :2] @ origin + matrix[:, 2]
            matrix = np.hstack([lin, offset[:, None]])
    crop = cv2.warpAffine(
        src, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    if crop.ndim == 2:
        crop = crop[:, :, None]
    if gray and crop.shape[2] == 3:
        crop = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)[:, :, None]
    elif not gray and crop.shape[2] == 1:
        crop = np.repeat(crop, 3, axis=2)
    return np.ascontiguousarray(crop)
