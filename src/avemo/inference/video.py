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

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise ConfigError(f"video fps must be positive, got {self.fps}")
        if self.box not in ("haar_like", "detector"):
            raise ConfigError(f"video box must be 'haar_like' or 'detector', got {self.box!r}")
        if not self.box_scale > 0:
            raise ConfigError(f"video box_scale must be positive, got {self.box_scale}")


@dataclass
class VideoExpertOutput:
    """The faces found: ``times`` (n,) of the analysed frames that had the face, their FER2013
    probabilities ``probs`` (n, 7); ``n_frames`` analysed frames in all; ``end``: where the decoded
    video ends (its last frame's time plus one source frame; not the last analysed frame's time plus
    an analysis step, which went up to 0.125 s past what a truncated file held); ``most_faces``: the
    most faces seen in one frame (the tracker's whole-frame searches), of which one is read;
    ``distinct``: how many of the ``n_frames`` were distinct decoded frames (fewer where the video
    has fewer frames per second than the expert reads: frames repeated; None: not counted); ``still``:
    the region of the first face tracked showed the same picture in every analysed frame, ``changed``:
    the largest share of it that changed from that first frame's (None: no face;
    :class:`~avemo.features.face.still.Stillness`)."""

    times: np.ndarray
    probs: np.ndarray
    n_frames: int
    end: float
    most_faces: int = 0
    distinct: int | None = None
    still: bool = False  # the face's region showed the same picture throughout
    changed: float | None = None

    def __post_init__(self) -> None:
        if self.distinct is None:
            self.distinct = self.n_frames

    @property
    def coverage(self) -> float:
        return len(self.times) / self.n_frames if self.n_frames else 0.0


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
        from avemo.features.face.still import Stillness
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

        still = Stillness()
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
