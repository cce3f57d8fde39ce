"""Face detection backends behind one small protocol.

* ``mediapipe`` (default): MediaPipe's BlazeFace *full-range* detector
  (``mediapipe.solutions.face_detection``, ``model_selection=1``; the model ships inside the
  ``mediapipe==0.10.21`` wheel). It finds faces from close-ups down to about 1/10 of the frame
  and gives six keypoints, of which we keep the two eye centres for alignment.
* ``haar``: OpenCV's Viola-Jones frontal-face cascade (``cv2.data.haarcascades``), a fallback
  that needs nothing but OpenCV. It has no keypoints: the eyes are found with the eye cascade in
  the upper half of the face box, or, when that fails, placed where they sit in an upright
  frontal Haar box (``eyes_estimated=True``; such eyes are level, so they do not rotate the crop).

Both detect on a downscaled copy of the frame (``max_side`` pixels on the longer side) for
speed and return boxes in the coordinates of the image they were given. BlazeFace resizes its
input to 192x192 internally anyway, so downscaling a 720p frame costs it no accuracy; for the
Haar cascade the minimum face size is ``min_size`` of the shorter image side.

Besides ``detect(image)`` (the whole frame), a detector has ``detect_in(image, box)``: a search
in an upright square ``LOCAL_CONTEXT`` times the box's size around it (MediaPipe: the
short-range BlazeFace on a 128x128 patch; Haar: the cascade on a 160x160 patch). The tracker
uses it to confirm the face where it just was, which is 3-4 times cheaper than a whole-frame
search. MediaPipe also uses that patch pass to refine the eye keypoints (``refine_eyes``).

Small faces: a tiled search (MediaPipe only; ``tiles=True`` by default). BlazeFace sees the whole
frame at 192 pixels across, so in a wide shot (a 1080p conference or street video where the face
is 1/15-1/25 of the frame height) the face spans only a few of its input pixels and is rarely found
(in wide shots made from the real clips: 22 % of the frames at 1/15, none at 1/20 or 1/25). When
the whole-frame search finds nothing, :meth:`MediaPipeDetector.detect` searches overlapping square
tiles of the full-resolution frame instead (slicing-aided detection: Akyon, Altinuc & Temizel,
"Slicing Aided Hyper Inference and Fine-tuning for Small Object Detection", ICIP 2022, section 2):
each tile is ``tile_size`` times the frame's shorter side (a 1080p frame: 540-pixel tiles, 5 x 3 of
them), neighbours overlap by at least ``tile_overlap`` of a tile, each tile is resized to BlazeFace's
192x192 input, its boxes are mapped back to the frame, and duplicates (the same face in two tiles,
or cut by a tile's edge) are merged by non-maximum suppression, a box cut by an inner tile edge
losing to a whole one. Each face kept must then be found again by the short-range model in its
patch (as ``refine_eyes`` does) with a score of at least ``tile_confirm`` (0.75), and takes that
detection's box and eyes, so its box has the same convention as the tracker's ``detect_in`` boxes.
The confirmation is what keeps the tiles from inventing faces: fifteen searches of a frame give the
full-range model fifteen chances to fire on a face-like blob, and on 60 generated face-free 1080p
scenes (colour gradients with blotches, noise, blurred blocks) it did on 11, none of which the
short-range model confirmed, while it confirmed the faces of every wide shot made from the RAVDESS
and CREMA-D clips (avemo's benchmark report, section "Small faces in wide shots"). A frame where
the whole-frame search finds a face never runs the tiles, so the cost on ordinary videos does not
change; a tiled search costs 13-20 whole-frame searches (100-190 ms for a 1080p frame on our shared
2-core CPU).
:meth:`MediaPipeDetector.detect_tiles` is the tiled search alone; the tracker
(:mod:`avemo.features.face.track`) decides when to run it (after a miss, backing off when it finds
nothing).

Usage::

    detector = get_detector("mediapipe", min_confidence=0.5)
    for det in detector.detect(rgb_image):          # (H, W, 3) uint8 RGB
        print(det.box, det.score, det.eyes)
    detector.close()

If mediapipe cannot be imported, ``get_detector("mediapipe")`` warns and returns the Haar backend.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from avemo.errors import ConfigError
from avemo.native_output import silenced

DETECTORS = ("mediapipe", "haar")

#: the MediaPipe options of the tiled search (a Haar detector ignores them)
TILE_OPTIONS = ("tiles", "tile_size", "tile_overlap", "tile_iou", "tile_confirm")

#: side of the region searched by ``detect_in``, in face-box sizes
LOCAL_CONTEXT = 2.0

#: a tiled-search box whose intersection with a kept box covers this much of the smaller one is
#: the same face (a face cut by a tile edge has a small box inside the whole face's box, so its IoU
#: with it is low)
TILE_MERGE_COVER = 0.5


@dataclass(frozen=True, eq=False)
class Detection:
    """One face found in one image.

    ``box``: (4,) float64 ``[x0, y0, x1, y1]`` in pixels of the image given to the detector.
    ``score``: detector confidence (MediaPipe: probability in [0, 1]; Haar: the cascade's level
    weight, larger is more confident, not a probability).
    ``eyes``: (2, 2) ``[[x, y] of the subject's right eye, [x, y] of the subject's left eye]``
    (in a frontal, non-mirrored view the first is on the image left), or ``None``.
    ``eyes_estimated``: the eyes were placed from the box, not detected.
    """

    box: np.ndarray
    score: float
    eyes: np.ndarray | None = None
    eyes_estimated: bool = False

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def center(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2])


@runtime_checkable
class FaceDetector(Protocol):
    """What the tracker needs from a detector: faces in one RGB image, and a way to free resources."""

    name: str

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in ``image`` ((H, W, 3) RGB uint8, or (H, W) gray), most confident first."""
        ...

    def detect_in(self, image: np.ndarray, box: np.ndarray) -> list[Detection]:
        """Faces in the upright square region ``LOCAL_CONTEXT`` times the size of ``box`` around it.

        A cheaper search the tracker uses to confirm a face where it was in the previous frame;
        coordinates are those of ``image``.
        """
        ...

    def close(self) -> None: ...


def _downscale(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """``image`` shrunk so that its longer side is at most ``max_side``; and the factor applied."""
    h, w = image.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return image, 1.0
    scale = max_side / max(h, w)
    small = cv2.resize(
        image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    return small, scale


def _as_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim == 3 and image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2RGB)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB or (H, W) gray image, got shape {image.shape}")
    return image


def _square_patch(
    image: np.ndarray, center: np.ndarray, side: float, out: int
) -> tuple[np.ndarray, float, np.ndarray]:
    """An upright square of about ``side`` pixels around ``center``, resized to ``out`` x ``out``.

    What lies outside the image is black. Returns ``(patch, scale, origin)``: the patch point
    ``q`` (continuous coordinates, as MediaPipe's relative ones times ``out``) is the source
    point ``q / scale + origin``.
    """
    h, w = image.shape[:2]
    x0, y0 = int(np.floor(center[0] - side / 2)), int(np.floor(center[1] - side / 2))
    n = max(2, int(np.ceil(side)))
    x1, y1 = x0 + n, y0 + n
    region = image[max(y0, 0) : max(min(y1, h), 0), max(x0, 0) : max(min(x1, w), 0)]
    if region.size == 0:
        return (
            np.zeros((out, out) + image.shape[2:], image.dtype),
            out / n,
            np.array([x0, y0], dtype=np.float64),
        )
    region = cv2.copyMakeBorder(
        region, max(0, -y0), max(0, y1 - h), max(0, -x0), max(0, x1 - w), cv2.BORDER_CONSTANT, value=0
    )
    interp = cv2.INTER_AREA if n > out else cv2.INTER_LINEAR
    patch = cv2.resize(region, (out, out), interpolation=interp)
    return patch, out / n, np.array([x0, y0], dtype=np.float64)


def tile_grid(width: int, height: int, size: float, overlap: float) -> list[tuple[int, int, int]]:
    """Square tiles ``(x, y, side)`` covering a ``width`` x ``height`` image.

    ``side`` is ``size`` times the shorter image side; along each axis the tiles are spread evenly
    from edge to edge, as few as keep neighbours overlapping by at least ``overlap`` of a tile.
    """
    side = max(1, min(round(size * min(width, height)), width, height))

    def starts(length: int) -> list[int]:
        if length <= side:
            return [0]
        n = math.ceil((length - side) / max(side * (1.0 - overlap), 1.0)) + 1
        return [round(v) for v in np.linspace(0, length - side, n)]

    return [(x, y, side) for y in starts(height) for x in starts(width)]


def _box_cover(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """``(IoU, intersection / the smaller box's area)`` of two ``[x0, y0, x1, y1]`` boxes."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0, 0.0
    inter = iw * ih
    area_a, area_b = (a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])
    union = area_a + area_b - inter
    return (float(inter / union) if union > 0 else 0.0), float(inter / max(min(area_a, area_b), 1e-9))


def merge_detections(found: list[tuple[Detection, bool]], iou_threshold: float) -> list[Detection]:
    """Non-maximum suppression over the tiles' detections ``(detection, cut by an inner tile edge)``.

    Whole boxes come before cut ones, then higher scores first; a box overlapping a kept one with
    IoU above ``iou_threshold``, or lying mostly inside it or around it (``TILE_MERGE_COVER``), is
    the same face and dropped.
    """
    kept: list[Detection] = []
    for det, _ in sorted(found, key=lambda item: (item[1], -item[0].score)):
        if all(
            (cover := _box_cover(det.box, k.box))[0] <= iou_threshold and cover[1] < TILE_MERGE_COVER
            for k in kept
        ):
            kept.append(det)
    return kept


class MediaPipeDetector:
    """BlazeFace through MediaPipe solutions: full-range (``model_selection=1``) or short-range (``0``).

    Two models are loaded: the whole-frame one (full-range by default), and the short-range one
    (128x128 input, faces filling a good part of it), which runs on 128x128 upright patches
    ``LOCAL_CONTEXT`` (2) times the size of a face box:

    * ``refine_eyes``: BlazeFace gives its keypoints at its input resolution (192x192 for the
      whole frame), where a face in a 720p frame spans a few dozen pixels, so the eye positions
      are off by up to 10 degrees of roll. With ``refine_eyes`` each face found in the whole
      frame is detected again in its patch and its box and eyes are taken from there (so that
      whole-frame and patch detections, which the tracker mixes, have the same box convention:
      the two models' boxes differ by about 5 % in size); when the second pass misses, the
      whole-frame detection is kept as it is. The score stays the whole-frame one.
    * :meth:`detect_in`: the patch search alone, which the tracker uses between whole-frame
      detections (about 1.5 ms instead of 6 ms per frame on our CPU).

    ``tiles`` (default on): when the whole-frame search finds nothing, search overlapping tiles of
    the full-resolution frame (``tile_size``, ``tile_overlap``; see the module docstring);
    ``tile_iou``: the IoU above which two tiles' boxes are the same face; ``tile_confirm``: the
    short-range model's score needed, in the patch around a tile's face, to keep that face.
    """

    name = "mediapipe"

    PATCH = 128  # short-range BlazeFace's input size

    def __init__(
        self,
        min_confidence: float = 0.5,
        model_selection: int = 1,
        max_side: int | None = 640,
        refine_eyes: bool = True,
        tiles: bool = True,
        tile_size: float = 0.5,
        tile_overlap: float = 0.25,
        tile_iou: float = 0.3,
        tile_confirm: float = 0.75,
    ):
        import mediapipe as mp  # imported here: it is slow to import and optional for Haar users

        if model_selection not in (0, 1):
            raise ConfigError(f"mediapipe detector: model_selection must be 0 or 1, got {model_selection}")
        if not 0 < tile_size <= 1:
            raise ConfigError(f"mediapipe detector: tile_size must be in (0, 1], got {tile_size}")
        if not 0 <= tile_overlap < 1:
            raise ConfigError(f"mediapipe detector: tile_overlap must be in [0, 1), got {tile_overlap}")
        self.min_confidence = float(min_confidence)
        self.max_side = max_side
        self.refine_eyes = refine_eyes
        self.tiles = bool(tiles)
        self.tile_size, self.tile_overlap, self.tile_iou = float(tile_size), float(tile_overlap), float(tile_iou)
        self.tile_confirm = float(tile_confirm)
        with silenced(2):  # MediaPipe's TFLite and absl start-up notices
            self._impl = mp.solutions.face_detection.FaceDetection(
                model_selection=model_selection, min_detection_confidence=self.min_confidence
            )
            self._local = mp.solutions.face_detection.FaceDetection(
                model_selection=0, min_detection_confidence=self.min_confidence
            )
            blank = np.zeros((self.PATCH, self.PATCH, 3), dtype=np.uint8)
            self._impl.process(blank)  # the graphs start (and print) on their first image
            self._local.process(blank)

    @staticmethod
    def _parse(result, w: float, h: float) -> list[Detection]:
        """MediaPipe's relative boxes and keypoints in pixels of a ``w`` x ``h`` image."""
        found = []
        for det in result.detections or []:
            rel = det.location_data.relative_bounding_box
            box = np.array(
                [rel.xmin * w, rel.ymin * h, (rel.xmin + rel.width) * w, (rel.ymin + rel.height) * h],
                dtype=np.float64,
            )
            kps = det.location_data.relative_keypoints
            eyes = None
            if len(kps) >= 2:  # 0: right eye, 1: left eye (the subject's)
                eyes = np.array(
                    [[kps[0].x * w, kps[0].y * h], [kps[1].x * w, kps[1].y * h]], dtype=np.float64
                )
            found.append(Detection(box=box, score=float(det.score[0]), eyes=eyes))
        return found

    def _in_patch(self, rgb: np.ndarray, box: np.ndarray) -> list[Detection]:
        """Short-range detections in the patch around ``box``, in source coordinates, nearest first."""
        side = max(box[2] - box[0], box[3] - box[1]) * LOCAL_CONTEXT
        if side < 8:
            return []
        centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        patch, scale, origin = _square_patch(rgb, centre, side, self.PATCH)
        found = []
        for d in self._parse(self._local.process(np.ascontiguousarray(patch)), self.PATCH, self.PATCH):
            eyes = None if d.eyes is None else d.eyes / scale + origin
            found.append(Detection(box=d.box / scale + np.tile(origin, 2), score=d.score, eyes=eyes))
        found.sort(key=lambda d: float(np.hypot(*(d.center - centre))))
        return found

    def _refined(self, rgb: np.ndarray, det: Detection) -> Detection:
        for local in self._in_patch(rgb, det.box):  # the nearest one only
            if local.eyes is not None and np.hypot(*(local.center - det.center)) < 0.5 * max(det.width, 1.0):
                return Detection(box=local.box, score=det.score, eyes=local.eyes)
            break
        return det

    def detect(self, image: np.ndarray, tiles: bool | None = None) -> list[Detection]:
        """Faces in the whole frame; when none is found and ``tiles`` (default: the detector's
        option) is true, the tiled search's faces (:meth:`detect_tiles`)."""
        rgb = _as_rgb(image)
        h, w = rgb.shape[:2]
        small, _ = _downscale(rgb, self.max_side)
        found = self._parse(self._impl.process(np.ascontiguousarray(small)), w, h)
        if self.refine_eyes:
            found = [self._refined(rgb, d) for d in found]
        found.sort(key=lambda d: -d.score)
        if not found and (self.tiles if tiles is None else tiles):
            return self.detect_tiles(rgb)
        return found

    def detect_tiles(self, image: np.ndarray) -> list[Detection]:
        """Faces in overlapping tiles of the full-resolution frame (see the module docstring): the
        :meth:`tile_candidates` that the short-range model confirms, most confident first."""
        rgb = _as_rgb(image)
        confirmed = [c for d in self.tile_candidates(rgb) if (c := self._confirmed(rgb, d))]
        confirmed.sort(key=lambda d: -d.score)
        return confirmed

    def tile_candidates(self, image: np.ndarray) -> list[Detection]:
        """The full-range model's faces in every tile, in frame coordinates, merged; not confirmed."""
        rgb = _as_rgb(image)
        h, w = rgb.shape[:2]
        size = 192  # the full-range model's input
        found: list[tuple[Detection, bool]] = []
        for x, y, side in tile_grid(w, h, self.tile_size, self.tile_overlap):
            region = rgb[y : y + side, x : x + side]
            interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
            tile = cv2.resize(region, (size, size), interpolation=interp)
            for d in self._parse(self._impl.process(np.ascontiguousarray(tile)), side, side):
                box = d.box + np.array([x, y, x, y], dtype=np.float64)
                eyes = None if d.eyes is None else d.eyes + np.array([x, y], dtype=np.float64)
                inner = (x > 0 and box[0] <= x + 1) or (y > 0 and box[1] <= y + 1)
                inner |= (x + side < w and box[2] >= x + side - 1) or (y + side < h and box[3] >= y + side - 1)
                found.append((Detection(box=box, score=d.score, eyes=eyes), bool(inner)))
        return merge_detections(found, self.tile_iou)

    def _confirmed(self, rgb: np.ndarray, det: Detection) -> Detection | None:
        """A tile's face detected again by the short-range model in its patch with a score of at least
        ``tile_confirm``, with that detection's box and eyes (and the tile's score); else None."""
        for local in self._in_patch(rgb, det.box):  # the nearest one only
            near = np.hypot(*(local.center - det.center)) < 0.5 * max(det.width, 1.0)
            if near and local.score >= self.tile_confirm:
                return Detection(box=local.box, score=det.score, eyes=local.eyes)
            break
        return None

    def detect_in(self, image: np.ndarray, box: np.ndarray) -> list[Detection]:
        return self._in_patch(_as_rgb(image), np.asarray(box, dtype=np.float64))

    def close(self) -> None:
        self._impl.close()
        self._local.close()


class HaarDetector:
    """OpenCV Viola-Jones frontal-face cascade, eyes from the eye cascade or estimated from the box."""

    name = "haar"

    #: where the eye centres sit in an upright frontal Haar box, as fractions of its width/height
    #: (measured against MediaPipe's eyes on the synthetic portrait, RAVDESS and CREMA-D frames)
    EYE_X = (0.32, 0.68)
    EYE_Y = 0.41

    def __init__(
        self,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: float = 0.1,
        max_side: int | None = 480,
        find_eyes: bool = True,
        cascade: str = "haarcascade_frontalface_default.xml",
    ):
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_size = float(min_size)
        self.max_side = max_side
        self.find_eyes = find_eyes
        self._face = self._load(cascade)
        self._eye = self._load("haarcascade_eye.xml") if find_eyes else None

    @staticmethod
    def _load(name: str) -> cv2.CascadeClassifier:
        path = str(cv2.data.haarcascades) + name
        classifier = cv2.CascadeClassifier(path)
        if classifier.empty():
            raise ConfigError(
                f"haar detector: cannot load the cascade {path} (OpenCV 5 ships none; use opencv<5)"
            )
        return classifier

    @staticmethod
    def _gray(image: np.ndarray) -> np.ndarray:
        if image.ndim == 3:
            return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.shape[2] == 3 else image[:, :, 0]
        return image

    def _cascade(self, gray: np.ndarray, min_px: int) -> list[Detection]:
        """Faces in a gray image (its own coordinates)."""
        gray = cv2.equalizeHist(gray)
        boxes, _, weights = self._face.detectMultiScale3(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(min_px, min_px),
            outputRejectLevels=True,
        )
        found = []
        for (x, y, bw, bh), weight in zip(
            np.asarray(boxes).reshape(-1, 4), np.asarray(weights).ravel(), strict=True
        ):
            box = np.array([x, y, x + bw, y + bh], dtype=np.float64)
            eyes = self._eyes(gray, (x, y, bw, bh))
            estimated = eyes is None
            found.append(
                Detection(
                    box=box,
                    score=float(weight),
                    eyes=self._estimated_eyes(box) if eyes is None else eyes,
                    eyes_estimated=estimated,
                )
            )
        found.sort(key=lambda d: -d.score)
        return found

    @staticmethod
    def _moved(det: Detection, scale: float, origin: np.ndarray) -> Detection:
        eyes = None if det.eyes is None else det.eyes / scale + origin
        return Detection(
            box=det.box / scale + np.tile(origin, 2),
            score=det.score,
            eyes=eyes,
            eyes_estimated=det.eyes_estimated,
        )

    def detect(self, image: np.ndarray) -> list[Detection]:
        small, scale = _downscale(self._gray(image), self.max_side)
        min_px = max(12, int(self.min_size * min(small.shape[:2])))
        return [self._moved(d, scale, np.zeros(2)) for d in self._cascade(small, min_px)]

    def detect_in(self, image: np.ndarray, box: np.ndarray) -> list[Detection]:
        box = np.asarray(box, dtype=np.float64)
        side = max(box[2] - box[0], box[3] - box[1]) * LOCAL_CONTEXT
        if side < 8:
            return []
        centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        patch, scale, origin = _square_patch(self._gray(image), centre, side, 160)
        found = [self._moved(d, scale, origin) for d in self._cascade(patch, 40)]
        found.sort(key=lambda d: float(np.hypot(*(d.center - centre))))
        return found

    def _eyes(self, gray: np.ndarray, face: tuple[int, int, int, int]) -> np.ndarray | None:
        """Eye centres from the eye cascade, or None when it does not find a plausible pair.

        The upper part of the face (15-62 % of its height) is resized to a 160-pixel-wide face
        and searched; the largest eye in each half is kept, and the pair is accepted only if
        the eyes are 25-65 % of the face width apart and tilted by less than 30 degrees (the
        eye cascade also fires on brows and nostrils: a wrong pair would rotate the crop).
        """
        if self._eye is None:
            return None
        x, y, w, h = (int(v) for v in face)
        top, bottom = y + int(0.15 * h), y + int(0.62 * h)
        roi = gray[top:bottom, x : x + w]
        if roi.size == 0 or w < 24:
            return None
        k = 160.0 / w
        roi = cv2.resize(roi, (160, max(1, round(roi.shape[0] * k))), interpolation=cv2.INTER_AREA)
        eyes = self._eye.detectMultiScale(
            roi, scaleFactor=1.1, minNeighbors=3, minSize=(16, 16), maxSize=(56, 56)
        )
        halves: tuple[list, list] = ([], [])
        for ex, ey, ew, eh in np.asarray(eyes).reshape(-1, 4):
            cx, cy = ex + ew / 2, ey + eh / 2
            halves[0 if cx < 80 else 1].append((ew * eh, (x + cx / k, top + cy / k)))
        if not halves[0] or not halves[1]:
            return None
        pair = np.array([max(halves[0])[1], max(halves[1])[1]], dtype=np.float64)
        dx, dy = pair[1] - pair[0]
        if not (0.25 * w <= np.hypot(dx, dy) <= 0.65 * w) or abs(np.degrees(np.arctan2(dy, dx))) > 30:
            return None
        return pair

    def _estimated_eyes(self, box: np.ndarray) -> np.ndarray:
        w, h = box[2] - box[0], box[3] - box[1]
        y = box[1] + self.EYE_Y * h
        return np.array([[box[0] + self.EYE_X[0] * w, y], [box[0] + self.EYE_X[1] * w, y]], dtype=np.float64)

    def close(self) -> None:
        pass


def get_detector(name: str = "mediapipe", **options: Any) -> FaceDetector:
    """Build a detector by backend name (``"mediapipe"`` or ``"haar"``) with backend options.

    ``"mediapipe"`` falls back to ``"haar"`` with a warning when mediapipe cannot be imported
    (options that only MediaPipe knows are then dropped; ``min_confidence`` and the tiled search's
    options, ``TILE_OPTIONS``, are ignored by Haar).
    """
    if name == "mediapipe":
        try:
            import mediapipe  # noqa: F401
        except Exception as exc:  # ImportError, or a broken protobuf/numpy combination
            warnings.warn(
                f"mediapipe cannot be imported ({type(exc).__name__}: {exc}); using the Haar face detector",
                RuntimeWarning,
                stacklevel=2,
            )
            name = "haar"
            options = {k: v for k, v in options.items() if k in {"max_side"}}
        else:
            return MediaPipeDetector(**options)
    if name == "haar":
        options = {k: v for k, v in options.items() if k != "min_confidence" and k not in TILE_OPTIONS}
        return HaarDetector(**options)
    raise ConfigError(f"unknown face detector {name!r}; known: {', '.join(DETECTORS)}")
