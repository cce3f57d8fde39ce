"""``late_calibrated``: late fusion as a calibrated, weighted product of experts.

Paper: Zhang & Zheng, "Enhancing Emotion Recognition Accuracy with CFRSN-LSTM" §6, Table 1 -- its late-fusion baselines
(from MSAF, Su et al. 2020) multiply ("Multiplication", 70.56 %) or average the class
probabilities of separately predicting unimodal networks, and "Multiplicative β=0.3" trains them
with Liu et al. 2018's loss ("Learn to Combine Modalities in Multimodal Deep Learning", §3.1).
This model keeps that structure -- each modality an expert with its own classifier and its own
loss -- and makes the product *calibrated and weighted*, the form a product of experts
(Hinton 2002) needs when the experts differ in reliability:

    log p(c | x) = sum_m w_m * log softmax(z_m(x) / T_m)(c) + const,   renormalised over c.

* **Training** (the :meth:`loss` hook): the mean of the experts' cross-entropies, each on its own
  logits, so no expert leans on another (as ``late_product``); the fused output is what is
  evaluated and what early stopping monitors.
* **Closed-form experts**: an expert whose encoder is fitted in closed form (``closed_form``:
  ``whisper_logreg``) trains the way it trains alone -- its head is fitted on all training clips
  by :func:`~avemo.models.closed_form.fit_encoder_head` (the trainer's non-gradient ``fit`` hook,
  before the epochs; the model then has ``needs_fit``) and frozen, so the epochs train only the
  other experts (their cross-entropies; the frozen expert's adds no gradient).
* **Calibration** (the trainer's ``calibrate`` hook, ``needs_calibration = True``), on the
  validation speakers only, after the best epoch is restored: (1) each expert's temperature
  ``T_m`` minimises its own negative log-likelihood (temperature scaling, Guo et al. 2017, "On
  Calibration of Modern Neural Networks", §4.2); (2) the weights ``w_m`` minimise the NLL of
  the fused prediction, over a grid of simplex directions times an overall scale (so ``sum w``
  also acts as a final temperature). With 2-3 experts that is 2-3 numbers fitted on ~120 clips.
  Both are buffers, hence saved in checkpoints. Before calibration ``T = w = 1``: the plain
  product of ``late_product``.

Experts: ``audio`` (default ``whisper_mlp``: a linear head on the frozen Whisper-base embedding),
``video`` (default ``au_mlp``, the OpenFace AU means of RAVDESS-AU) and an optional second audio
expert ``audio2`` (e.g. ``egemaps_mlp``). Every input is optional: a missing modality drops its
term, the product of the others remains.

The registry alias ``default`` is this model with its defaults; the benchmark trains it as a
5-seed ensemble. These choices come from inner validation scores (the test speakers never
seen; ``benchmarks/ravdess_au.py``, "Exploration" in ``docs/results/ravdess_au.md``): on them the
calibrated product matched the uncalibrated one in accuracy and had a clearly lower NLL; a
hidden layer in the audio head, an eGeMAPS expert, mixup and concatenation (early fusion) did not
raise accuracy beyond the seed-to-seed spread.

Departures from paper 000 / MSAF: their product is unweighted and uncalibrated and their late
baselines use the 3D ResNeXt-50 and MFCC CNN on video frames; here the encoders default to a
frozen Whisper-base embedding and AU means (the inputs of RAVDESS-AU), and the weights and
temperatures are fitted on validation speakers (never on the test fold), following Guo et al.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from avemo.errors import ConfigError
from avemo.models.base import Encoder, make_head
from avemo.models.closed_form import fit_encoder_head
from avemo.models.fusion.base import FusionConfig, FusionModel
from avemo.models.inputs import InputSpec
from avemo.models.papers import ZHANG_ZHENG
from avemo.models.registry import get_encoder, model_class, register_alias, register_model

#: temperatures searched (log-spaced) and overall weight scales, see :func:`fit_temperature` / :func:`fit_weights`
TEMPERATURE_RANGE = (0.05, 20.0)
SCALE_RANGE = (0.25, 4.0)


@dataclasses.dataclass(frozen=True)
class LateCalibratedConfig(FusionConfig):
    """``audio2``: an optional second audio expert (encoder name) with ``audio2_config``.
    ``fit_temperatures`` / ``fit_weights``: what :meth:`LateCalibrated.calibrate` fits;
    ``weight_step``: the simplex grid step of the weight search."""

    audio: str = "whisper_mlp"
    video: str = "au_mlp"
    audio2: str | None = None
    audio2_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    fit_temperatures: bool = True
    fit_weights: bool = True
    weight_step: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 < self.weight_step <= 0.5:
            raise ConfigError(f"weight_step must be in (0, 0.5], got {self.weight_step}")


def _nll(log_probs: Tensor, targets: Tensor) -> Tensor:
    """Mean NLL of each candidate: ``log_probs`` (K, N, C) -> (K,)."""
    return -log_probs.gather(2, targets.view(1, -1, 1).expand(log_probs.shape[0], -1, 1)).squeeze(2).mean(1)


def fit_temperature(logits: Tensor, targets: Tensor, points: int = 241) -> float:
    """The temperature in :data:`TEMPERATURE_RANGE` minimising the NLL of ``softmax(logits / T)``
    (a dense log-spaced grid: deterministic, no optimiser state; Guo et al. 2017 §4.2)."""
    temps = torch.logspace(math.log10(TEMPERATURE_RANGE[0]), math.log10(TEMPERATURE_RANGE[1]), points,
                           dtype=torch.float64)
    lp = F.log_softmax(logits.double().unsqueeze(0) / temps.view(-1, 1, 1), dim=2)
    return float(temps[int(torch.argmin(_nll(lp, targets)))])


def simplex_grid(m: int, step: float) -> Tensor:
    """All weight vectors of ``m`` non-negative entries summing to 1 on a grid of ``step`` (K, m)."""
    n = int(round(1.0 / step))
    if m == 1:
        return torch.ones(1, 1, dtype=torch.float64)
    rows = []

    def rec(prefix: list[int], left: int, k: int) -> None:
        if k == 1:
            rows.append([*prefix, left])
            return
        for i in range(left + 1):
            rec([*prefix, i], left - i, k - 1)

    rec([], n, m)
    return torch.tensor(rows, dtype=torch.float64) / n


def fit_weights(log_probs: Tensor, targets: Tensor, step: float = 0.05, scales: int = 25) -> Tensor:
    """Weights ``w`` (M,) minimising the NLL of ``log_softmax(sum_m w_m log_probs[m])``.

    ``log_probs`` (M, N, C) are the experts' (calibrated) log-probabilities. The search covers
    simplex directions on a grid of ``step`` times log-spaced overall scales in :data:`SCALE_RANGE`;
    ties go to the first candidate (the grid is ordered, so the result is deterministic).
    """
    lp = log_probs.double()
    directions = simplex_grid(lp.shape[0], step)  # (K, M)
    scale = torch.logspace(math.log10(SCALE_RANGE[0]), math.log10(SCALE_RANGE[1]), scales, dtype=torch.float64)
    cand = (directions.unsqueeze(0) * scale.view(-1, 1, 1)).reshape(-1, lp.shape[0])  # (K*S, M)
    best, best_w = math.inf, None
    for chunk in cand.split(512):
        fused = F.log_softmax(torch.einsum("km,mnc->knc", chunk, lp), dim=2)
        nll = _nll(fused, targets)
        i = int(torch.argmin(nll))
        if float(nll[i]) < best - 1e-12:
            best, best_w = float(nll[i]), chunk[i]
    return best_w.float()


@register_model
class LateCalibrated(FusionModel):
    """Calibrated, weighted product of per-modality experts; see the module docstring."""

    name = "late_calibrated"
    paper = ZHANG_ZHENG.cite("§6, Table 1 ('Multiplication', late; weighted and temperature-calibrated, Guo et al. 2017)")
    summary = ("Late fusion: product of experts (Whisper-embedding linear head, AU MLP by default), each with its "
               "own loss; temperatures and weights fitted on validation speakers")
    Config = LateCalibratedConfig
    needs_calibration = True
    #: expert order in the ``temperatures`` / ``weights`` buffers
    EXPERTS = ("audio", "audio2", "video")

    def __init__(self, config: LateCalibratedConfig, num_classes: int):
        super().__init__(config, num_classes)
        self.audio2_encoder: Encoder | None = (
            get_encoder(config.audio2, config.audio2_config, modality="audio") if config.audio2 else None
        )
        self.audio_head = make_head(self.audio_encoder.feature_dim, num_classes)
        self.video_head = make_head(self.video_encoder.feature_dim, num_classes)
        self.audio2_head = make_head(self.audio2_encoder.feature_dim, num_classes) if self.audio2_encoder else None
        self.inputs = self.specs_for(config)
        self.register_buffer("temperatures", torch.ones(len(self.EXPERTS)))
        self.register_buffer("weights", torch.ones(len(self.EXPERTS)))
        self.needs_fit = bool(self.closed_form_experts())  # per instance: it depends on the experts chosen

    @classmethod
    def specs_for(cls, config: LateCalibratedConfig) -> dict[str, InputSpec]:
        specs = dict(super().specs_for(config))
        if config.audio2:
            from avemo import config as cfg

            enc_cls = model_class(config.audio2)
            specs["audio2"] = enc_cls.spec_for(
                cfg.from_dict(enc_cls.Config, dict(config.audio2_config), where=f"{config.audio2} config"))
        order = [k for k in cls.EXPERTS if k in specs]
        return {k: dataclasses.replace(specs[k], optional=True) for k in order}

    def _experts(self):
        """(input name, encoder, head) of every expert the model has."""
        return [(key, enc, head) for key, enc, head in (("audio", self.audio_encoder, self.audio_head),
                                                        ("audio2", self.audio2_encoder, self.audio2_head),
                                                        ("video", self.video_encoder, self.video_head))
                if enc is not None]

    def closed_form_experts(self) -> list[str]:
        """The experts fitted in closed form (their encoder has ``closed_form``), by input name."""
        return [key for key, enc, _head in self._experts() if getattr(enc, "closed_form", False)]

    def fit(self, inputs: Mapping[str, Tensor], targets: Tensor) -> LateCalibrated:
        """Fit each closed-form expert's head on all training ``inputs`` (as that expert trains alone)
        and freeze it; the epochs that follow train the other experts."""
        for key, enc, head in self._experts():
            if key in self.closed_form_experts():
                fit_encoder_head(enc, head, inputs[key], targets)
                head.requires_grad_(False)
        return self

    def expert_logits(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Raw logits of every expert whose input is present, by input name."""
        return {key: head(enc(inputs[key])) for key, enc, head in self._experts() if inputs.get(key) is not None}

    def fuse(self, logits: Mapping[str, Tensor]) -> Tensor:
        """``log_softmax(sum_m w_m log_softmax(z_m / T_m))`` over the experts present."""
        total = 0.0
        for key, z in logits.items():
            i = self.EXPERTS.index(key)
            total = total + self.weights[i] * F.log_softmax(z.float() / self.temperatures[i], dim=1)
        return F.log_softmax(total, dim=1)

    def compute(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        logits = self.expert_logits(inputs)
        out = {f"{k}_logits": z for k, z in logits.items()}
        out["logits"] = self.fuse(logits)
        return out

    def loss(self, outputs, targets: Tensor) -> Tensor:
        """Mean of the experts' cross-entropies (plain cross-entropy when given only fused logits)."""
        if not isinstance(outputs, Mapping):
            return F.cross_entropy(outputs, targets)
        branch = [outputs[f"{k}_logits"] for k in self.EXPERTS if f"{k}_logits" in outputs]
        if not branch:
            return F.cross_entropy(outputs["logits"], targets)
        return torch.stack([F.cross_entropy(z.float(), targets) for z in branch]).mean()

    @torch.no_grad()
    def calibrate(self, inputs: Mapping[str, Tensor], targets: Tensor) -> dict[str, float]:
        """Fit temperatures, then weights, on validation data (all experts' inputs present); returns them."""
        was_training = self.training
        self.eval()
        device = self.temperatures.device
        inputs = {k: v.to(device) for k, v in inputs.items() if v is not None}
        targets = targets.to(device)
        logits = {k: z.double() for k, z in self.expert_logits(inputs).items()}
        temps = torch.ones_like(self.temperatures)
        weights = torch.ones_like(self.weights)
        keys = list(logits)
        for key in keys:
            if self.config.fit_temperatures:
                temps[self.EXPERTS.index(key)] = fit_temperature(logits[key], targets)
        if self.config.fit_weights and keys:
            lp = torch.stack([F.log_softmax(logits[k] / float(temps[self.EXPERTS.index(k)]), dim=1) for k in keys])
            w = fit_weights(lp, targets, step=self.config.weight_step)
            for key, value in zip(keys, w.tolist(), strict=True):
                weights[self.EXPERTS.index(key)] = value
        self.temperatures.copy_(temps)
        self.weights.copy_(weights)
        self.train(was_training)
        return {**{f"T_{k}": float(temps[self.EXPERTS.index(k)]) for k in keys},
                **{f"w_{k}": float(weights[self.EXPERTS.index(k)]) for k in keys}}

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, temperatures={self.temperatures.tolist()}, weights={self.weights.tolist()}"


register_alias("default", "late_calibrated")
