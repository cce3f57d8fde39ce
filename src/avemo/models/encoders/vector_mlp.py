"""``au_mlp``: a small MLP on a per-clip feature vector (OpenFace AU means, landmark functionals...).

This is the "vector encoder" that stands in for a paper's frame encoder on the real benchmark of
this project, RAVDESS-AU, where every fusion method of the papers is compared with the paper's
audio encoder and a vector encoder for the AU input in place of the frame encoder.
None of the five papers has such an encoder (departure: it follows no paper; its widths, 128 and
64, are sized for ~1,000 training clips of 35 values); it is named in paper 000's context (Zhang & Zheng, "Enhancing Emotion Recognition Accuracy with CFRSN-LSTM" §4.3, whose video branch it replaces).

Each hidden layer (Linear, ReLU, dropout) is one *stage*, so mid-level fusion (MMTM, MSAF) can
exchange information after every hidden layer, as it does between the stages of a CNN. The input
is any standardised vector: ``feature`` / ``input_dim`` select it (default the 35 OpenFace AU
means of ``openface_au_means``; e.g. ``video_config={"feature": "face_landmarks", "input_dim": 136}``).
"""

from __future__ import annotations

import dataclasses

from torch import nn

from avemo.errors import ConfigError
from avemo.models.base import Encoder, check_min_size
from avemo.models.inputs import InputSpec
from avemo.models.papers import ZHANG_ZHENG
from avemo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class VectorMlpConfig:
    feature: str = "openface_au_means"
    input_dim: int = 35
    hidden: tuple[int, ...] = (128, 64)
    dropout: float = 0.3

    def __post_init__(self) -> None:
        check_min_size("au_mlp", "input_dim", self.input_dim, 1)
        if not self.hidden or min(self.hidden) < 1:
            raise ConfigError(f"hidden must list at least one positive layer width, got {self.hidden}")


@register_model
class AuMlp(Encoder):
    """MLP vector encoder for per-clip features (OpenFace AU means by default); see the module docstring."""

    name = "au_mlp"
    modality = "video"
    paper = ZHANG_ZHENG.cite("§4.3 (replaces its video encoder; not in any paper)")
    summary = "MLP on a per-clip vector (35 OpenFace AU means by default): hidden 128, 64"
    Config = VectorMlpConfig

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        c = self.config
        widths = [c.input_dim, *c.hidden]
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Linear(a, b), nn.ReLU(), nn.Dropout(c.dropout))
            for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.stage_channels = list(c.hidden)
        self.feature_dim = c.hidden[-1]

    @classmethod
    def spec_for(cls, config: VectorMlpConfig) -> InputSpec:
        return InputSpec("video", config.feature, {}, (config.input_dim,), "vector")
