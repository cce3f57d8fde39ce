"""Paper 001's unimodal networks: a 1D CNN on audio features and a 3D CNN on grayscale face frames.

Paper: Sultana et al., "Multimodal Emotion Recognition through Deep Fusion of Audio-Visual Data" §III.B ("CNN Architecture") and §IV.C.

``sultana_audio_cnn1d`` (§III.B.1): "a combination of convolution & max-pooling layers", then two
dense layers of 256 and 64 units with ReLU, then the softmax layer. The paper gives neither the
number of convolutions nor their widths, and describes its input only as "a frame size of
(180x20)". We read that as 180 frames of 20 MFCCs (our ``mfcc`` extractor, 10 ms hop, no deltas,
cropped/padded to 180 frames) and use three blocks conv1d(k=5, 'same') + ReLU + max-pool(2) of 64,
128 and 128 channels -- the common Keras layout of such models; the flatten + dense 256/64 head is
the paper's. The 64-unit layer is the feature used for fusion (the paper's "second last layer").
Departures: the number, widths and kernels of the convolutions (not given) are our choice above.

``sultana_video_cnn3d`` (§III.B.2): "four convolution layers ... 16 channels with kernel (3x3x3) in
the first layer, 16 ... in the second layer, and 32 channels in the last two layers", "two
max-pooling layers", a 64-unit ReLU dense layer, softmax; input 30 grayscale frames of 80x70
(§III.A.2). We place a 2x2x2 max-pool after the 2nd and the 4th convolution and use Keras's default
'valid' padding. Departures: the pooling positions and padding are not given in the paper (its
layer names are Keras's, hence Keras's default padding).
"80x70" is taken as width x height (OpenCV's ``resize`` order). Frames are used as given in [0, 1].
"""

from __future__ import annotations

import dataclasses

from torch import Tensor, nn

from avemo.models.base import Encoder, check_min_size, frames_to_channels_first
from avemo.models.encoders.mfcc_cnn import MfccSequenceEncoder
from avemo.models.inputs import InputSpec
from avemo.models.papers import SULTANA
from avemo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class SultanaAudioConfig:
    n_mfcc: int = 20
    n_frames: int = 180
    channels: tuple[int, ...] = (64, 128, 128)
    kernel_size: int = 5

    def __post_init__(self) -> None:
        check_min_size("sultana_audio_cnn1d", "n_frames", self.n_frames, 2 ** len(self.channels))


@register_model
class SultanaAudioCnn1d(MfccSequenceEncoder):
    """Paper 001's audio 1D CNN (conv/max-pool blocks, dense 256 and 64); see the module docstring."""

    name = "sultana_audio_cnn1d"
    modality = "audio"
    paper = SULTANA.cite("§III.B.1")
    summary = "1D CNN on 180x20 MFCC frames: 3 conv/max-pool blocks, dense 256 and 64 (paper 001)"
    Config = SultanaAudioConfig
    smoke_config = {"n_frames": 16}

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        c = self.config
        blocks, width, length = [], c.n_mfcc, c.n_frames
        for out in c.channels:
            blocks.append(
                nn.Sequential(
                    nn.Conv1d(width, out, c.kernel_size, padding="same"), nn.ReLU(), nn.MaxPool1d(2)
                )
            )
            width, length = out, length // 2
        dense = nn.Sequential(
            nn.Flatten(), nn.Linear(width * length, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU()
        )
        self.stages = nn.ModuleList([*blocks, dense])
        self.stage_channels = [*c.channels, 64]
        self.feature_dim = 64


@dataclasses.dataclass(frozen=True)
class SultanaVideoConfig:
    n_frames: int = 30
    size: tuple[int, int] = (80, 70)  # (width, height)

    def __post_init__(self) -> None:
        for what, value in (
            ("n_frames", self.n_frames),
            ("crop width", self.size[0]),
            ("crop height", self.size[1]),
        ):
            check_min_size("sultana_video_cnn3d", what, value, 16)


def _after_blocks(n: int) -> int:
    """Length of one axis after conv, conv, pool(2), conv, conv, pool(2) with 'valid' 3-wide kernels."""
    return ((n - 4) // 2 - 4) // 2


@register_model
class SultanaVideoCnn3d(Encoder):
    """Paper 001's 3D CNN on 30 grayscale 80x70 frames (convs 16, 16, 32, 32; dense 64); see the module docstring."""

    name = "sultana_video_cnn3d"
    modality = "video"
    paper = SULTANA.cite("§III.B.2, §III.A.2")
    summary = "3D CNN on 30 grayscale 80x70 face frames: conv3d 16,16,32,32 (3x3x3), 2 max-pools, dense 64"
    Config = SultanaVideoConfig
    smoke_config = {"n_frames": 16, "size": (16, 16)}

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        c = self.config
        w, h = c.size
        flat = 32 * _after_blocks(c.n_frames) * _after_blocks(h) * _after_blocks(w)
        self.stages = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Conv3d(1, 16, 3), nn.ReLU(), nn.Conv3d(16, 16, 3), nn.ReLU(), nn.MaxPool3d(2)
                ),
                nn.Sequential(
                    nn.Conv3d(16, 32, 3), nn.ReLU(), nn.Conv3d(32, 32, 3), nn.ReLU(), nn.MaxPool3d(2)
                ),
                nn.Sequential(nn.Flatten(), nn.Linear(flat, 64), nn.ReLU()),
            ]
        )
        self.stage_channels = [16, 32, 64]
        self.feature_dim = 64

    @classmethod
    def spec_for(cls, config: SultanaVideoConfig) -> InputSpec:
        w, h = config.size
        return InputSpec(
            "video",
            "face_crops",
            {"n_frames": config.n_frames, "size": (w, h), "gray": True},
            (config.n_frames, h, w, 1),
            "frames",
        )

    def prepare(self, x: Tensor) -> Tensor:
        return frames_to_channels_first(x, memory_format=self.memory_format)
