"""What every audio-visual fusion model shares: two encoders chosen by name, and mid-level plumbing.

A fusion model's config always has ``audio`` / ``video`` (registered encoder names, defaulting to
its paper's encoders), ``audio_config`` / ``video_config`` (their config overrides) and its own
fields. Any audio encoder can be paired with any video one -- a frame encoder (face crops) or a
vector encoder (``au_mlp`` on OpenFace AU means) -- because fusion only uses the
:class:`~avemo.models.base.Encoder` interface: ``stages`` with ``stage_channels`` for mid-level
fusion, ``pool`` for the feature vector and ``tokens`` for attention.

:func:`fusion_points` pairs the last ``n`` stages of the two encoders (aligned from the end, as
MSAF pairs ResNeXt's layer3/layer4 with the MFCC CNN's last two blocks), and
:func:`run_encoders` runs both encoders, calling a fusion block after each pair of stages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from avemo import config as cfg
from avemo.models.base import AvemoModel, Encoder
from avemo.models.inputs import InputSpec
from avemo.models.registry import get_encoder, model_class


@dataclasses.dataclass(frozen=True)
class FusionConfig:
    audio: str = "mfcc_cnn1d"
    video: str = "resnext3d_50"
    audio_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    video_config: dict[str, Any] = dataclasses.field(default_factory=dict)


class FusionModel(AvemoModel):
    """Base of the audio-visual models: builds ``audio_encoder`` and ``video_encoder`` from the config."""

    kind = "fusion"
    Config: type = FusionConfig

    def __init__(self, config: FusionConfig, num_classes: int):
        super().__init__(num_classes)
        self.config = config
        self.audio_encoder: Encoder = get_encoder(config.audio, config.audio_config, modality="audio")
        self.video_encoder: Encoder = get_encoder(config.video, config.video_config, modality="video")
        self.inputs = {"audio": self.audio_encoder.input_spec, "video": self.video_encoder.input_spec}

    @classmethod
    def specs_for(cls, config: FusionConfig) -> dict[str, InputSpec]:
        """The inputs of a model built from ``config``, without building it."""
        out = {}
        for modality, name, overrides in (
            ("audio", config.audio, config.audio_config),
            ("video", config.video, config.video_config),
        ):
            enc_cls = model_class(name)
            spec = enc_cls.spec_for(cfg.from_dict(enc_cls.Config, dict(overrides), where=f"{name} config"))
            out[modality] = spec
        return out

    def encode(self, inputs) -> tuple[Tensor, Tensor]:
        """Both feature vectors ``(B, Fa)``, ``(B, Fv)`` (no mid-level exchange)."""
        return self.audio_encoder(inputs["audio"]), self.video_encoder(inputs["video"])


def fusion_points(audio: Encoder, video: Encoder, n: int) -> list[tuple[int, int]]:
    """Pairs ``(audio stage, video stage)`` after which to fuse: the last ``n`` of each, aligned from the end."""
    k = min(n, len(audio.stages), len(video.stages))
    na, nv = len(audio.stages), len(video.stages)
    return [(na - k + i, nv - k + i) for i in range(k)]


def run_encoders(
    audio: Encoder,
    video: Encoder,
    xa: Tensor,
    xv: Tensor,
    points: Sequence[tuple[int, int]],
    blocks: Sequence[Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]] | nn.ModuleList,
) -> tuple[Tensor, Tensor]:
    """Run both encoders' stages, applying ``blocks[i](ha, hv)`` after the stages ``points[i]``.

    Returns the last stage outputs (before ``pool``).
    """
    ha, hv = audio.prepare(xa), video.prepare(xv)
    ia = iv = 0
    for (pa, pv), block in zip(points, blocks, strict=True):
        ha = audio.run_stages(ha, ia, pa + 1)
        hv = video.run_stages(hv, iv, pv + 1)
        ia, iv = pa + 1, pv + 1
        ha, hv = block(ha, hv)
    return audio.run_stages(ha, ia), video.run_stages(hv, iv)
