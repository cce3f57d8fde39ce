"""Follow the speaker's face across frames: choose it once, match it frame to frame, smooth its box.

:class:`FaceTracker` is a streaming object: ``tracker.update(time, image)`` runs the detector
on one frame and returns the speaker's :class:`TrackedFace`, or ``None`` when that face is not
found in this frame. It is what the face extractors use, and what a predictor can call on the
frames of each window of a long video (frames must come in increasing time).

The rules, in order:

1. **Acquisition.** With no face being tracked, the speaker is the detection preferred by
   ``choose``: ``"largest"`` box (default: in talking-head material the speaker is the largest
   face), ``"confident"`` (highest detector score) or ``"central"`` (closest to the image centre).
2. **Matching.** While a face is tracked, a detection continues it if its box overlaps the last
   matched box with IoU >= ``min_iou`` or its centre moved less than ``max_shift`` times the
   box size (``sqrt(w*h)``); of several, the best IoU (then the nearest centre) wins. Other
   faces, even larger ones, are ignored: a second face entering the frame does not steal the track.
3. **Loss.** A frame where no detection matches returns ``None``: no box is carried over from
   an earlier frame, ever (a stale box would crop background and call it a face). After
   ``reacquire_after`` seconds without a match the track is dropped and rule 1 applies again,
   so the speaker is found again after a cut or a long occlusion.
4. **Smoothing.** The matched box (centre, width, height) and eye positions go through a
   One-Euro filter (Casiez, Roussel & Vogel, CHI 2012): a low-pass filter whose cut-off rises
   with speed, so a still face does not jitter and a moving one does not lag. Values are in units
   of the image height, so ``beta`` does not depend on resolution; the filter handles uneven
   time steps (sparse frame sampling) and restarts with each new track. Only frames with a
   detection are filtered and returned: smoothing never invents a box.

5. **Cheap confirmation.** A whole-frame detection runs on the first frame, whenever the track
   is lost, and at least every ``full_detect_interval`` seconds. On the frames in between the
   detector only searches the region around the last box (``detector.detect_in``: MediaPipe's
   short-range model on a 128x128 patch, 3-4 times cheaper); if it does not find the face
   there, a whole-frame detection runs on that same frame before the frame is called missing.
   So every returned box is a detection on that very frame, never a prediction or a carried-over
   box. ``full_detect_interval=0`` searches the whole frame every time.
6. **Small faces.** With a detector that has a tiled search (MediaPipe's ``tiles`` option, on by
   default: :mod:`avemo.features.face.detect`), a whole-frame search that finds nothing is
   followed, while a face is tracked, by the local search around its last box (a face too small
   for the whole-frame search is followed by ``detect_in`` alone), and then by the tiled search
   of the full-resolution frame. So a small face is found once by the tiles and then followed
   cheaply. A tiled search costs 13-20 whole-frame searches, so after one that found nothing
   the next runs only ``tile_interval`` seconds later, and each further empty one doubles that wait,
   up to ``tile_interval_max`` (1, 2, 4, 8, 8... seconds): a video without a face pays little for
   them, and a small face that appears is found within that wait. A face found (by any search)
   resets the wait. Frames where the whole-frame search finds a face never run the tiles; with the
   detector's ``tiles`` off the tracker does exactly what rules 1-5 say.

   The tiles are for faces too small for the whole-frame search, not for a background face while
   the speaker's is missing: a close-up speaker who looks down, turns away or is occluded for a
   moment leaves the whole frame without a face, and the tiles then find whatever small face is
   left (a person far behind, a poster, a photo), which rule 1 would take and rule 2 keep. So a
   face the tiled search finds less than ``small_face_ratio`` (0.5) of the height of the face the
   tracker followed last is not taken (the frame is missing, and that tiled search counts as an
   empty one for the wait) until ``small_face_after`` (3) seconds after that face was last followed;
   after that long without any face (a cut to a wide shot), the tiles may find any face again. Half
   the height: within a shot the speaker's face changes size far less (leaning in or back: in the
   RAVDESS and CREMA-D clips its tracked height varies by 7-15 % within a clip), while a face
   that the tiles alone find is under about 1/10 of the frame height and a close-up speaker's is
   0.28-0.40 of it in those clips. Three seconds: a look down or aside of a couple of seconds is
   covered, and a cut to a wide shot costs no more than a shorter window of over 1 s would (with
   the default waits the tiled searches after the cut run at 0, 1 and 3 s, so its face is taken
   at 3 s). A video that starts with a small face has followed no face yet, so the tiles find it
   at once. Faces found by the whole-frame or local search are never checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from avemo.errors import ConfigError
from avemo.features.face.detect import Detection, FaceDetector, get_detector

Choice = Literal["largest", "confident", "central"]


@dataclass(frozen=True)
class TrackerConfig:
    """Options of :class:`FaceTracker` (see the module docstring for what each rule does)."""

    choose: Choice = "largest"
    min_iou: float = 0.2
    max_shift: float = 0.5
    reacquire_after: float = 0.5
    full_detect_interval: float = 0.5
    #: seconds after a tiled search that found nothing before the next one, doubled after each
    #: further empty one up to ``tile_interval_max`` (rule 6)
    tile_interval: float = 1.0
    tile_interval_max: float = 8.0
    #: a tiled-search face under this fraction of the height of the face followed last is not taken
    #: until ``small_face_after`` seconds after that face was last followed (rule 6)
    small_face_ratio: float = 0.5
    small_face_after: float = 3.0
    smoothing: bool = True
    #: One-Euro filter: cut-off frequency (Hz) of a still face, and its growth with speed
    #: (Hz per image-height/second)
    min_cutoff: float = 1.0
    beta: float = 20.0
    d_cutoff: float = 1.0


@dataclass(frozen=True, eq=False)
class TrackedFace:
    """The speaker's face in one frame.

    ``box``: smoothed (4,) ``[x0, y0, x1, y1]`` in pixels; ``eyes``: smoothed (2, 2) eye
    centres (subject's right, subject's left) or ``None``; ``detection``: the raw detection
    of this frame; ``track``: which track this is (incremented at every (re)acquisition).
    """

    time: float
    box: np.ndarray
    eyes: np.ndarray | None
    score: float
    detection: Detection
    track: int

    @property
    def center(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2])

    @property
    def size(self) -> float:
        """The box's geometric-mean side, ``sqrt(w*h)``, in pixels."""
        return math.sqrt(max(self.box[2] - self.box[0], 0.0) * max(self.box[3] - self.box[1], 0.0))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two ``[x0, y0, x1, y1]`` boxes."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


class OneEuroFilter:
    """One-Euro filter of a vector signal with irregular time steps (Casiez et al., CHI 2012)."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.reset()

    def reset(self) -> None:
        self._t: float | None = None
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    @staticmethod
    def _alpha(dt: float, cutoff: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, t: float, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self._t is None or self._x is None or self._x.shape != x.shape:
            self._t, self._x, self._dx = t, x.copy(), np.zeros_like(x)
            return x.copy()
        dt = t - self._t
        if dt <= 0:  # a repeated frame (or time going back): keep the current estimate
            return self._x.copy()
        dx = (x - self._x) / dt
        a_d = self._alpha(dt, self.d_cutoff)
        self._dx = a_d * dx + (1 - a_d) * self._dx
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        a = self._alpha(dt, cutoff)
        self._x = a * x + (1 - a) * self._x
        self._t = t
        return self._x.copy()


class FaceTracker:
    """Streaming speaker-face tracker over frames given in increasing time (see module docstring).

    ``detector``: a :class:`FaceDetector` or a backend name for :func:`get_detector` (then
    ``detector_options`` are passed to it and the tracker owns and closes it).
    """

    def __init__(
        self,
        detector: FaceDetector | str = "mediapipe",
        config: TrackerConfig | None = None,
        **detector_options: Any,
    ):
        self.config = config or TrackerConfig()
        if self.config.choose not in ("largest", "confident", "central"):
            raise ConfigError(
                f"face tracker: choose must be largest, confident or central, got {self.config.choose!r}"
            )
        if isinstance(detector, str):
            self.detector: FaceDetector = get_detector(detector, **detector_options)
            self._owns_detector = True
        else:
            self.detector = detector
            self._owns_detector = False
        self._filter = OneEuroFilter(self.config.min_cutoff, self.config.beta, self.config.d_cutoff)
        self.most_faces = 0  # the most faces a whole-frame (or tiled) search found in one frame (a video call: 2 or more)
        self.reset()

    def reset(self) -> None:
        """Forget the current track (the next face found starts a new one)."""
        self._last: Detection | None = None  # last matched raw detection
        self._last_time: float | None = None  # when it was matched
        self._last_height = 0.0  # its height, kept after the track is dropped (rule 6's size check)
        self._full_time: float | None = None  # when the whole frame was last searched
        self._tile_miss: float | None = None  # when a tiled search last found nothing (rule 6)
        self._tile_wait = self.config.tile_interval  # how long after it the next one may run
        self._track = 0
        self._filter.reset()

    # -- the rules -------------------------------------------------------------------------

    def _choose(self, detections: list[Detection], shape: tuple[int, ...]) -> Detection:
        rule = self.config.choose
        if rule == "largest":
            return max(detections, key=lambda d: d.area)
        if rule == "confident":
            return max(detections, key=lambda d: d.score)
        centre = np.array([shape[1] / 2, shape[0] / 2])
        return min(detections, key=lambda d: float(np.hypot(*(d.center - centre))))

    def _match(self, detections: list[Detection]) -> Detection | None:
        last = self._last
        assert last is not None
        size = math.sqrt(max(last.area, 1e-9))
        best, best_key = None, None
        for det in detections:
            overlap = iou(det.box, last.box)
            shift = float(np.hypot(*(det.center - last.center))) / size
            if overlap < self.config.min_iou and shift > self.config.max_shift:
                continue
            key = (overlap, -shift)
            if best_key is None or key > best_key:
                best, best_key = det, key
        return best

    def _smoothed(
        self, time: float, det: Detection, image_height: int
    ) -> tuple[np.ndarray, np.ndarray | None]:
        if not self.config.smoothing:
            return det.box.copy(), None if det.eyes is None else det.eyes.copy()
        unit = float(max(image_height, 1))
        cx, cy = det.center
        values = [cx, cy, det.width, det.height]
        if det.eyes is not None:
            values += list(det.eyes.ravel())
        state = self._filter(time, np.asarray(values) / unit) * unit
        cx, cy, w, h = state[:4]
        box = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
        eyes = state[4:8].reshape(2, 2) if det.eyes is not None else None
        return box, eyes

    # -- the streaming API ---------------------------------------------------------------------

    def update(self, time: float, image: np.ndarray) -> TrackedFace | None:
        """Detect faces in ``image`` (RGB uint8) at ``time`` seconds; the speaker's face or ``None``."""
        c = self.config
        tracking = (
            self._last is not None
            and self._last_time is not None
            and time - self._last_time <= c.reacquire_after
            and self._full_time is not None
            and time - self._full_time < c.full_detect_interval
            and hasattr(self.detector, "detect_in")
        )
        if tracking:
            assert self._last is not None
            face = self.update_with(time, self.detector.detect_in(image, self._last.box), image.shape)
            if face is not None:
                return face
            # not confirmed where it was: search the whole frame before calling it missing
        self._full_time = time
        if getattr(self.detector, "tiles", False):
            detections = self._search_small(time, image, local_tried=tracking)
        else:
            detections = self.detector.detect(image)
            self.most_faces = max(self.most_faces, len(detections))
        return self.update_with(time, detections, image.shape)

    def _search_small(self, time: float, image: np.ndarray, local_tried: bool) -> list[Detection]:
        """Rule 6: the whole frame, then (a face tracked) its neighbourhood, then the tiles."""
        detector: Any = self.detector
        c = self.config
        found = detector.detect(image, tiles=False)
        self.most_faces = max(self.most_faces, len(found))
        last = self._last
        recent = last is not None and self._last_time is not None and time - self._last_time <= c.reacquire_after
        if not found and recent and not local_tried and hasattr(detector, "detect_in"):
            assert last is not None
            found = detector.detect_in(image, last.box)
        if not found:
            if self._tile_miss is not None and time - self._tile_miss < self._tile_wait:
                return []
            found = detector.detect_tiles(image)
            self.most_faces = max(self.most_faces, len(found))
            found = self._not_much_smaller(time, found)
        if found:
            self._tile_miss, self._tile_wait = None, c.tile_interval
        else:  # an empty tiled search: wait longer before the next one
            if self._tile_miss is not None:
                self._tile_wait = min(2 * self._tile_wait, max(c.tile_interval_max, c.tile_interval))
            self._tile_miss = time
        return found

    def _not_much_smaller(self, time: float, found: list[Detection]) -> list[Detection]:
        """Rule 6: the tiled search's faces, less those much smaller than a face followed recently."""
        c = self.config
        if self._last_time is None or time - self._last_time > c.small_face_after:
            return found
        return [d for d in found if d.height >= c.small_face_ratio * self._last_height]

    def update_with(
        self, time: float, detections: list[Detection], shape: tuple[int, ...]
    ) -> TrackedFace | None:
        """Advance the track with detections computed elsewhere (``shape``: the image's shape)."""
        if self._last is not None and self._last_time is not None:
            if time - self._last_time > self.config.reacquire_after:
                self._last = None  # lost for too long: drop the track
        chosen: Detection | None = None
        if self._last is None:
            if detections:
                chosen = self._choose(detections, shape)
                self._track += 1
                self._filter.reset()
        elif detections:
            chosen = self._match(detections)
        if chosen is None:
            return None
        self._last, self._last_time, self._last_height = chosen, time, chosen.height
        box, eyes = self._smoothed(time, chosen, int(shape[0]))
        return TrackedFace(
            time=time, box=box, eyes=eyes, score=chosen.score, detection=chosen, track=self._track
        )

    def close(self) -> None:
        if self._owns_detector:
            self.detector.close()

    def __enter__(self) -> FaceTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
