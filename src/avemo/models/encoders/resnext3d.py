"""3D ResNeXt-50 (32x4d) frame encoder, the video network of MSAF, CFN-SR and CFNSR-LSTM.

Paper: Zhang & Zheng, "Enhancing Emotion Recognition Accuracy with CFRSN-LSTM" §4.3 and Table 1 ("3D RexNeXt50 (Vid.)
25.88M"). The architecture is Hara et al. 2018 ("Can spatiotemporal 3D CNNs retrace the history of
2D CNNs and ImageNet?", code github kenshohara/3D-ResNets-PyTorch ``models/resnext.py``, the
CVPR2018 version vendored by MSAF as ``ravdess/networks/resnext.py``), which we follow: a 7x7x7
stem with stride (1, 2, 2) and a 3x3x3/2 max-pool, bottleneck blocks of [3, 4, 6, 3] with
cardinality 32 (grouped 3x3x3 convolutions, widths 128/256/512/1024, expansion 2), shortcut type B
(1x1x1 convolution + BN when the shape changes), global average pooling and one fc layer.
With the fc replaced by 8 outputs it has 25,882,056 parameters (paper 000: 25.88 M).

Input: MSAF feeds 30 face frames of 224x224 (``sample_duration=30, sample_size=224`` in its
``main_msaf.py``) normalised with the ImageNet mean/std; that is our default (``face_crops`` with
``n_frames=30, size=(224, 224)``). Departures: global average pooling is computed as a mean
(Hara's fixed-size ``AvgPool3d`` ties the model to one input size; the mean works for any, which
lets tests use 8 frames of 32x32); MSAF's fusion code drops the ReLU after the stem's BN (its
``nn.Sequential`` omits ``video_model.relu``), we keep Hara's ReLU.

Stages: stem (64 ch), layer1 (256), layer2 (512), layer3 (1024), layer4 (2048).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from avemo.errors import ConfigError
from avemo.models.base import Encoder, check_min_size, frames_to_channels_first
from avemo.models.inputs import InputSpec
from avemo.models.layers.checkpointing import CheckpointedBlock
from avemo.models.papers import ZHANG_ZHENG
from avemo.models.registry import register_model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ResNeXtBottleneck(CheckpointedBlock):
    """1x1x1 reduce, grouped 3x3x3, 1x1x1 expand (x2), each with BN; identity or projection shortcut.

    Its activations can be recomputed in the backward pass (``checkpoint_activations`` of the
    training config, :mod:`avemo.models.layers.checkpointing`)."""

    expansion = 2

    def __init__(self, in_planes: int, planes: int, cardinality: int, stride: int = 1):
        super().__init__()
        mid = cardinality * (planes // 32)
        out = planes * self.expansion
        self.conv1 = nn.Conv3d(in_planes, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(mid)
        self.conv2 = nn.Conv3d(mid, mid, 3, stride=stride, padding=1, groups=cardinality, bias=False)
        self.bn2 = nn.BatchNorm3d(mid)
        self.conv3 = nn.Conv3d(mid, out, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != out:  # shortcut type B
            self.shortcut = nn.Sequential(
                nn.Conv3d(in_planes, out, 1, stride=stride, bias=False), nn.BatchNorm3d(out)
            )

    def forward_block(self, x: Tensor) -> Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + self.shortcut(x))


@dataclasses.dataclass(frozen=True)
class ResNeXt3dConfig:
    n_frames: int = 30
    size: tuple[int, int] = (224, 224)  # (width, height) of the face crops
    layers: tuple[int, ...] = (3, 4, 6, 3)
    cardinality: int = 32

    def __post_init__(self) -> None:
        check_min_size("resnext3d_50", "n_frames", self.n_frames, 1)
        check_min_size("resnext3d_50", "crop width", self.size[0], 8)
        check_min_size("resnext3d_50", "crop height", self.size[1], 8)
        if len(self.layers) != 4:
            raise ConfigError(f"layers must list 4 stage depths, got {self.layers}")


@register_model
class ResNeXt3d50(Encoder):
    """3D ResNeXt-50 of Hara et al. as used by MSAF/CFN-SR (paper 000 Table 1); see the module docstring."""

    name = "resnext3d_50"
    modality = "video"
    paper = ZHANG_ZHENG.cite("§4.3, Table 1 (Hara et al. 2018 3D ResNeXt-50)")
    summary = "3D ResNeXt-50 (32x4d, shortcut B) on 30 RGB face crops of 224x224 (25.88 M params)"
    Config = ResNeXt3dConfig
    smoke_config = {"n_frames": 8, "size": (32, 32)}

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        c = self.config
        stem = nn.Sequential(
            nn.Conv3d(3, 64, 7, stride=(1, 2, 2), padding=3, bias=False),
            nn.BatchNorm3d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(3, stride=2, padding=1),
        )
        stages: list[nn.Module] = [stem]
        channels = [64]
        in_planes = 64
        for i, (planes, blocks) in enumerate(zip((128, 256, 512, 1024), c.layers, strict=True)):
            stride = 1 if i == 0 else 2
            layer = [ResNeXtBottleneck(in_planes, planes, c.cardinality, stride)]
            in_planes = planes * ResNeXtBottleneck.expansion
            layer += [ResNeXtBottleneck(in_planes, planes, c.cardinality) for _ in range(1, blocks)]
            stages.append(nn.Sequential(*layer))
            channels.append(in_planes)
        self.stages = nn.ModuleList(stages)
        self.stage_channels = channels
        self.feature_dim = in_planes
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD), persistent=False)
        for m in self.modules():  # Hara et al.'s initialisation
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @classmethod
    def spec_for(cls, config: ResNeXt3dConfig) -> InputSpec:
        w, h = config.size
        return InputSpec(
            "video",
            "face_crops",
            {"n_frames": config.n_frames, "size": (w, h), "gray": False},
            (config.n_frames, h, w, 3),
            "frames",
        )

    def prepare(self, x: Tensor) -> Tensor:
        return frames_to_channels_first(x, self.mean, self.std, memory_format=self.memory_format)

    def pool(self, h: Tensor) -> Tensor:
        return h.flatten(2).mean(dim=2)
