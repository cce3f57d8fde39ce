"""``mfa_fercnn``: paper 004's Marginal Fisher Analysis feature fusion followed by its FERCNN.

Paper: Srinivas & Mishra, "Human Emotion Recognition by Integrating Facial and Speech Features: An Implementation of Multimodal Framework using CNN" §III.C (audio features: MFCC, zero crossing
rate, autocorrelation pitch, RMS energy), §III.B (video: spatio-temporal Harris interest points),
§III.D (MFA fusion, :mod:`avemo.models.fusion.mfa`), §III.E and Fig. 1 (FERCNN,
:mod:`avemo.models.encoders.fercnn`), §III.F (workflow: features -> fusion -> CNN).

Per clip: the mean and standard deviation over time of the MFCCs (``mfcc``, 40 coefficients) and
of ZCR / RMS energy / F0 / voicing (``pitch_energy``), and the video descriptor (``stip``; or, for the
RAVDESS-AU benchmark, the OpenFace AU means: ``video="au_mlp"`` or
``video="openface_au_means", video_dim=35``), concatenated into one vector ``x``. ``fit``
computes the MFA projection on the training set (``needs_fit = True``) and stores it in buffers
(``feature_mean``, ``projection``, ``fitted``), so it is saved in ``state_dict``; the model then
classifies ``(x - mean) W`` (``latent_dim`` values read as a one-channel sequence) with FERCNN,
trained by gradient descent as usual.

Departures: the paper's latent size is not given (its table implies a 170-long CNN input); ours is
``latent_dim`` = 64 by default, since MFA can give at most as many dimensions as the input has and
the AU benchmark has 35 + 88. The paper first reduces the video features to as many dimensions as
the audio ones; MFA's projection already maps the joint vector to a common latent space, so we
skip that step. A video encoder name is accepted for ``video`` only to read its input (a vector):
MFA replaces the encoder's layers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from avemo.errors import ConfigError
from avemo.models.base import AvemoModel, Encoder, check_min_size, make_head
from avemo.models.encoders.fercnn import MIN_LENGTH, fercnn_stages
from avemo.models.fusion.mfa import marginal_fisher_analysis
from avemo.models.inputs import InputSpec, ModelInputError, check_inputs
from avemo.models.papers import SRINIVAS_MISHRA
from avemo.models.registry import model_class, register_model


@dataclasses.dataclass(frozen=True)
class MfaFerCnnConfig:
    n_mfcc: int = 40
    prosody: bool = True
    prosody_dim: int = 4  # pitch_energy: zcr, rms, f0_hz, voicing
    video: str = "stip"
    video_dim: int | None = None
    latent_dim: int = 64
    k1: int = 5
    k2: int = 20
    reg: float = 1e-3
    dropout: float = 0.2

    def __post_init__(self) -> None:
        check_min_size("mfa_fercnn", "latent_dim", self.latent_dim, MIN_LENGTH)
        check_min_size("mfa_fercnn", "n_mfcc", self.n_mfcc, 1)
        if self.video_dim is not None:
            check_min_size("mfa_fercnn", "video_dim", self.video_dim, 1)


def _video_spec(config: MfaFerCnnConfig) -> InputSpec:
    try:
        cls = model_class(config.video)
    except ConfigError:
        cls = None
    if cls is not None:
        if not (isinstance(cls, type) and issubclass(cls, Encoder) and cls.modality == "video"):
            raise ConfigError(
                f"mfa_fercnn: video={config.video!r} is not a video encoder or a feature name"
            )
        spec = cls.spec_for(cls.Config())
        if spec.kind != "vector":
            raise ConfigError(
                f"mfa_fercnn: video encoder {config.video!r} reads {spec.kind}; MFA needs a per-clip vector"
            )
        return spec
    return InputSpec("video", config.video, {}, (config.video_dim,), "vector")


@register_model
class MfaFerCnn(AvemoModel):
    """MFA latent-space fusion of per-clip audio and video vectors, then FERCNN; see the module docstring."""

    name = "mfa_fercnn"
    kind = "fusion"
    paper = SRINIVAS_MISHRA.cite("§III.D (MFA, Eq. 15-22), §III.E (FERCNN)")
    summary = "Paper 004: MFA (k1 intra-class, k2 inter-class pairs) fitted on training vectors, then FERCNN"
    Config = MfaFerCnnConfig
    needs_fit = True

    def __init__(self, config: MfaFerCnnConfig, num_classes: int):
        super().__init__(num_classes)
        self.config = config
        self.inputs = self.specs_for(config)
        self.stages, _ = fercnn_stages(config.latent_dim, config.dropout)
        self.head = make_head(256, num_classes)
        in_dim = self.input_dim()
        self.register_buffer("feature_mean", torch.zeros(in_dim if in_dim is not None else 0))
        self.register_buffer(
            "projection", torch.zeros(in_dim if in_dim is not None else 0, config.latent_dim)
        )
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @classmethod
    def specs_for(cls, config: MfaFerCnnConfig) -> dict[str, InputSpec]:
        specs = {
            "audio": InputSpec(
                "audio", "mfcc", {"n_mfcc": config.n_mfcc, "deltas": False}, (None, config.n_mfcc), "sequence"
            ),
        }
        if config.prosody:
            specs["prosody"] = InputSpec("audio", "pitch_energy", {}, (None, config.prosody_dim), "sequence")
        specs["video"] = _video_spec(config)
        return specs

    def input_dim(self) -> int | None:
        video = self.inputs["video"].shape[0]
        if video is None:
            return None
        return 2 * self.config.n_mfcc + (2 * self.config.prosody_dim if self.config.prosody else 0) + video

    def vectorize(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """The per-clip joint vector: mean/std over time of the sequences, then the video vector."""
        parts = []
        for name in ("audio", "prosody"):
            if name in self.inputs:
                x = inputs[name]
                parts += [x.mean(dim=1), x.std(dim=1, unbiased=False)]
        parts.append(inputs["video"])
        return torch.cat(parts, dim=1)

    @torch.no_grad()
    def fit(self, inputs: Mapping[str, Tensor], targets: Tensor) -> MfaFerCnn:
        """Fit the MFA projection on the training set (all of it at once: MFA needs every pair)."""
        check_inputs(self.name, self.inputs, inputs)
        x = self.vectorize(inputs).detach().double().cpu().numpy()
        y = torch.as_tensor(targets).detach().cpu().numpy()
        if y.shape != (x.shape[0],):
            raise ModelInputError(
                f"{self.name}: fit targets must have shape ({x.shape[0]},), got {tuple(y.shape)}"
            )
        mean, w = marginal_fisher_analysis(
            x, y, self.config.latent_dim, k1=self.config.k1, k2=self.config.k2, reg=self.config.reg
        )
        device = self.head.weight.device
        self.feature_mean = torch.as_tensor(mean.astype(np.float32), device=device)
        self.projection = torch.as_tensor(w.astype(np.float32), device=device)
        self.fitted.fill_(True)
        return self

    def compute(self, inputs: Mapping[str, Tensor]) -> Tensor:
        if not bool(self.fitted):
            raise ConfigError(f"{self.name}: not fitted; call model.fit(train_inputs, train_targets) first")
        x = self.vectorize(inputs)
        if x.shape[1] != self.feature_mean.shape[0]:
            raise ModelInputError(
                f"{self.name}: the joint input vector has {x.shape[1]} values, the fitted MFA expects "
                f"{self.feature_mean.shape[0]}"
            )
        h = ((x - self.feature_mean.to(x.dtype)) @ self.projection.to(x.dtype)).unsqueeze(1)
        for stage in self.stages:
            h = stage(h)
        return self.head(h)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the input size is learnt from the data when ``video_dim`` is None: take the checkpoint's
        for name in ("feature_mean", "projection"):
            key = prefix + name
            if key in state_dict and state_dict[key].shape != getattr(self, name).shape:
                setattr(self, name, torch.empty(state_dict[key].shape, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
