"""A still picture where the speaker's face should be: a face region that does not change over a video.

A podcast's or a song's cover image held over its sound shows a face with no expression to follow
over time: read as the speaker's, the photo's expression was the video's vote in every window.
:class:`Stillness` follows the region of the first face box it is given, enlarged and fixed in
place, and compares it with that first frame's in every later frame, a face found there or not (a
face that moved away changes it too). It looks at the face's region, not the whole frame: a talking
face 1/20 of a wide shot's height changes 0.2 % of the frame, as a re-encoded still does, but half of
its own region; and a photo beside a moving part (an audiogram's waveform) is still.

Used on the frames the video expert reads (:mod:`avemo.inference.video`) and on those of the face
extractors (``face_crops``, ``face_landmarks``: their ``"still"`` output), so that the bundled model
and a checkpoint of the model zoo give no video vote to such a file (:mod:`avemo.inference.backends`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StillRule:
    """The region of the first face (its box ``box`` times as wide and high), grey and shrunk to at most
    ``width`` pixels wide (pixels averaged), is still when it differs from the first frame's in at most
    ``share`` of its pixels by more than ``change`` grey levels in every later frame.

    Measured (the largest share over a file's 8-per-second frames; docs/benchmarks/still_faces.md): a
    RAVDESS frame held still 3 s, x264 with a keyframe every 8 frames, at CRF 23 0.0000 (full size, and
    pasted at 1/10, 1/20, 1/25 of a 1920x1080 scene's height) and at CRF 35 0.0000 (full size, 1/10),
    0.0039 (1/20), 0.0215 (1/25); an audiogram 0.0000; talking faces: the 7 real clips 0.147 (a CREMA-D
    clip) to 0.57 (RAVDESS), the RAVDESS clip in such wide shots 0.56 (1/10), 0.57 (1/15, 1/20), 0.58
    (1/25). ``share`` 0.05 is 2.3 times the stills' largest and 1/2.9 of the talking faces' smallest.
    The whole frame (a thumbnail 160 pixels wide) could not separate them: 0.0011 and 0.0019 for the
    talking face at 1/25 and 1/20, 0.0032 for the full-size still at CRF 35."""

    box: float = 1.25
    width: int = 32
    change: float = 24.0
    share: float = 0.05


class Stillness:
    """Whether the speaker's face stays one picture, up to the codec's loss (see the module docstring):
    ``see`` each distinct frame in turn with the face box found in it; ``changed`` is the largest share
    of the region that changed (None: no face yet), ``still`` whether a face was seen and its region
    never changed beyond ``rule.share``."""

    def __init__(self, rule: StillRule | None = None):
        self.rule = rule or StillRule()
        self.region: tuple[int, int, int, int] | None = None
        self.first: np.ndarray | None = None
        self.changed: float | None = None

    @property
    def still(self) -> bool:
        return self.changed is not None and self.changed <= self.rule.share

    def see(self, image: np.ndarray, box: np.ndarray | None) -> None:
        """One frame (RGB), with the speaker's face box ``[x0, y0, x1, y1]`` in it (None: no face)."""
        if self.region is None:
            region = None if box is None else self._region(box, image.shape)
            if region is None or region[2] <= region[0] or region[3] <= region[1]:
                return  # no face, or its box outside the frame
            self.region = region
        patch = self._patch(image)
        if self.first is None:
            self.first, self.changed = patch, 0.0
        elif patch.shape != self.first.shape:  # the video's size changed: another picture
            self.changed = 1.0
        else:
            share = float(np.mean(np.abs(patch - self.first) > self.rule.change))
            self.changed = max(self.changed or 0.0, share)

    def _region(self, box, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        x0, y0, x1, y1 = (float(v) for v in box)
        half_w, half_h = (x1 - x0) * self.rule.box / 2, (y1 - y0) * self.rule.box / 2
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        return (max(0, int(cx - half_w)), max(0, int(cy - half_h)),
                min(shape[1], int(np.ceil(cx + half_w))), min(shape[0], int(np.ceil(cy + half_h))))

    def _patch(self, image: np.ndarray) -> np.ndarray:
        """The region, grey, shrunk (pixels averaged) to at most ``rule.width`` wide: the codec's noise of a
        small face's pixels averaged out, a large face read at the same detail as a small one."""
        import cv2

        x0, y0, x1, y1 = self.region
        patch = image[y0:y1, x0:x1]
        if patch.size == 0:  # a frame smaller than the first: another picture
            return np.zeros((0, 0), dtype=np.int16)
        patch = cv2.cvtColor(np.ascontiguousarray(patch), cv2.COLOR_RGB2GRAY) if patch.ndim == 3 else patch
        w, h = patch.shape[1], patch.shape[0]
        if w > self.rule.width:
            size = (self.rule.width, max(1, round(h * self.rule.width / w)))
            patch = cv2.resize(patch, size, interpolation=cv2.INTER_AREA)
        return patch.astype(np.int16)
