"""What every audio-visual fusion model shares: two encoders chosen by name, and mid-level plumbing.

A fusion model's config always has ``audio`` / ``visual`` (registered encoder names, defaulting to
its paper's encoders), ``audio_config`` / ``visual_config`` (their config overrides) and its own
fields. Any audio encoder can be paired with any visual one -- a frame encoder (face crops) or a
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
    visual: str = "resnext3d_50"
    audio_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    visual_config: dict[str, Any] = dataclasses.field(default_factory=dict)


class FusionModel(AvemoModel):
    """Base of the audio-visual models: builds ``audio_encoder`` and ``visual_encoder`` from the config."""

    kind = "fusion"
    Config: type = FusionConfig

    def __init__(self, config: FusionConfig, num_classes: int):
        super().__init__(num_classes)
        self.config = config
        self.audio_encoder: Encoder = get_encoder(config.audio, config.audio_config, modality="audio")
        self.visual_encoder: Encoder = get_encoder(config.visual, config.visual_config, modality="visual")
        self.inputs = {"audio": self.audio_encoder.input_spec, "visual": self.visual_encoder.input_spec}

    @classmethod
    def specs_for(cls, config: FusionConfig) -> dict[str, InputSpec]:
        """The inputs of a model built from ``config``, without building it."""
        out = {}
        for modality, name, overrides in (
            ("audio", config.audio, config.audio_config),
            ("visual", config.visual, config.visual_config),
        ):
            enc_cls = model_class(name)
            spec = enc_cls.spec_for(cfg.from_dict(enc_cls.Config, dict(overrides), where=f"{name} config"))
            out[modality] = spec
        return out

    def encode(self, inputs) -> tuple[Tensor, Tensor]:
        """Both feature vectors ``(B, Fa)``, ``(B, Fv)`` (no mid-level exchange)."""
        return self.audio_encoder(inputs["audio"]), self.visual_encoder(inputs["visual"])


def fusion_points(audio: Encoder, visual: Encoder, n: int) -> list[tuple[int, int]]:
    """Pairs ``(audio stage, visual stage)`` after which to fuse: the last ``n`` of each, aligned from the end."""
    k = min(n, len(audio.stages), len(visual.stages))
    na, nv = len(audio.stages), len(visual.stages)
    return [(na - k + i, nv - k + i) for i in range(k)]


def run_encoders(
    audio: Encoder,
    visual: Encoder,
    xa: Tensor,
    xv: Tensor,
    points: Sequence[tuple[int, int]],
    blocks: Sequence[Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]] | nn.ModuleList,
) -> tuple[Tensor, Tensor]:
    """Run both encoders' stages, applying ``blocks[i](ha, hv)`` after the stages ``points[i]``.

    Returns the last stage outputs (before ``pool``).
    """
    ha, hv = audio.prepare(xa), visual.prepare(xv)
    ia = iv = 0
    for (pa, pv), block in zip(points, blocks, strict=True):
        ha = audio.run_stages(ha, ia, pa + 1)
        hv = visual.run_stages(hv, iv, pv + 1)
        ia, iv = pa + 1, pv + 1
        ha, hv = block(ha, hv)
    return audio.run_stages(ha, ia), visual.run_stages(hv, iv)
