"""Base classes of the model zoo: :class:`Encoder`, :class:`AvemoModel` and :class:`UnimodalModel`.

**Encoder** (one modality). An encoder turns the trainer's tensor for one input into a feature
vector, through a list of *stages* so that mid-level fusion (MMTM, MSAF) can act between them:

* ``prepare(x)``: trainer layout (channels-last, see :mod:`avemo.models.inputs`) -> stage-0 input
  (channels-first; frame encoders also normalise colours here);
* ``stages``: an ``nn.ModuleList``; the output of every stage is channels-first, ``(B, C, ...)``
  with ``C = stage_channels[i]`` and any number of trailing dims (time, height, width) -- for a
  vector encoder the stages are its hidden layers and their outputs are ``(B, C)``;
* ``pool(h)``: last stage output -> ``(B, feature_dim)`` (the penultimate layer of the paper's
  unimodal network, the one fusion models use);
* ``tokens(h)``: last stage output as a sequence ``(B, L, C)`` for attention-based fusion.

**AvemoModel** (what :func:`avemo.models.create_model` returns). ``model(inputs)`` takes
``dict[str, Tensor]`` and returns logits ``(B, num_classes)`` usable with ``F.cross_entropy``.
``model.inputs`` declares what it consumes. Hooks for the trainer:

* ``forward_outputs(inputs) -> dict`` with ``"logits"`` and model-specific extras (e.g. the
  per-branch logits of a late-fusion model);
* ``loss(outputs, targets)``: the training loss from ``forward_outputs``'s dict (or from plain
  logits); default cross-entropy on the logits, overridden by models with auxiliary losses;
* ``needs_fit`` / ``fit(inputs, targets)``: a non-gradient fit on training data (MFA), whose result
  is stored in buffers (so it is part of ``state_dict``), to call before training;
* ``closed_form`` / ``fit_closed_form(inputs, targets, weights, allowed)``: a model fitted in one
  call on all training data instead of by epochs (``whisper_logreg``); the trainer calls it;
* ``build_args``: ``{"name", "num_classes", "config"}`` with which :func:`create_model` rebuilds it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avemo import config as cfg
from avemo.errors import ConfigError
from avemo.models.inputs import InputSpec, Modality, check_inputs


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """Config of a component without options."""


def resolve_config(cls: type, config: Any, overrides: Mapping[str, Any], where: str) -> Any:
    """Build config dataclass ``cls`` from ``None`` / a dict / an instance, plus keyword overrides."""
    if config is None:
        data: dict[str, Any] = {}
    elif isinstance(config, Mapping):
        data = dict(config)
    elif isinstance(config, cls):
        data = cfg.to_dict(config)
    else:
        raise ConfigError(f"{where}: config must be a dict or {cls.__name__}, got {type(config).__name__}")
    data.update(overrides)
    return cfg.from_dict(cls, data, where=f"{where} config")


class Encoder(nn.Module):
    """One modality's network, split into stages (see module docstring)."""

    name: ClassVar[str] = ""
    modality: ClassVar[Modality]
    #: the paper and section it follows, by reference: ``ZHANG_ZHENG.cite("§4.3")`` (:mod:`avemo.models.papers`)
    paper: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Config: ClassVar[type] = NoOptions
    #: config overrides giving the smallest input this encoder accepts (smoke tests, quick benchmarks)
    smoke_config: ClassVar[dict[str, Any]] = {}
    #: memory layout ``prepare`` gives frame clips (``channels_last_3d`` when the trainer converts
    #: the 3D convolutions to it on a GPU, :func:`avemo.models.memory_format.use_channels_last_3d`)
    memory_format: torch.memory_format = torch.contiguous_format

    def __init__(self, config: Any = None, **overrides: Any):
        super().__init__()
        self.config = resolve_config(self.Config, config, overrides, self.name or type(self).__name__)
        self.input_spec: InputSpec = self.spec_for(self.config)
        self.stages = nn.ModuleList()
        self.stage_channels: list[int] = []
        self.feature_dim: int = 0

    @classmethod
    def spec_for(cls, config: Any) -> InputSpec:
        """The input this encoder consumes with ``config`` (no weights are built)."""
        raise NotImplementedError

    @property
    def input_name(self) -> str:
        """Key of this encoder's tensor in the model's input dict."""
        return self.modality

    def prepare(self, x: Tensor) -> Tensor:
        """Trainer layout -> input of stage 0."""
        return x

    def run_stages(self, h: Tensor, start: int = 0, stop: int | None = None) -> Tensor:
        for stage in self.stages[start:stop]:
            h = stage(h)
        return h

    def pool(self, h: Tensor) -> Tensor:
        """Last stage output -> ``(B, feature_dim)``."""
        return h.flatten(1)

    def tokens(self, h: Tensor) -> Tensor:
        """Last stage output ``(B, C, ...)`` -> ``(B, L, C)`` (``L = 1`` for a vector)."""
        if h.dim() == 2:
            return h.unsqueeze(1)
        return h.flatten(2).transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.run_stages(self.prepare(x)))

    def extra_repr(self) -> str:
        return f"name={self.name!r}, feature_dim={self.feature_dim}, stage_channels={self.stage_channels}"


class AvemoModel(nn.Module):
    """A complete model: input dict -> logits (see module docstring)."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""  # "audio" | "video" | "fusion"
    paper: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    needs_fit: ClassVar[bool] = False
    #: every trainable parameter gets a gradient from every training step's loss (all inputs
    #: present, as in training); a model for which this is False makes the trainer turn on
    #: ``find_unused_parameters`` of DistributedDataParallel (a slower all-reduce). Checked over
    #: the registry by tests/test_models_shared.py.
    trains_all_parameters: ClassVar[bool] = True
    #: ``None``: the model reads single clips. An int ``H >= 0``: it reads dialogue windows, the
    #: data layer (:class:`~avemo.models.batching.TensorData`) adds padding masks and the ``H``
    #: previous utterances of the same dialogue (see :mod:`avemo.models.batching`).
    dialogue_context: int | None = None
    #: per-class weights of the default loss, set by the trainer during ``class_balance="loss"`` training
    class_weights: Tensor | None = None

    def __init__(self, num_classes: int):
        super().__init__()
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
            raise ConfigError(f"{self.name}: num_classes must be an integer >= 2, got {num_classes!r}")
        self.num_classes = num_classes
        self.inputs: dict[str, InputSpec] = {}
        self.build_args: dict[str, Any] = {}

    @classmethod
    def context_for(cls, config: Any) -> int | None:
        """The ``dialogue_context`` of a model built from ``config``, without building it."""
        return None

    # -- the trainer's interface -------------------------------------------------------------
    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        return self.forward_outputs(inputs)["logits"]

    def forward_outputs(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Check ``inputs`` against ``self.inputs`` and run the model; ``"logits"`` is always there."""
        check_inputs(self.name, self.inputs, inputs)
        out = self.compute(inputs)
        return out if isinstance(out, dict) else {"logits": out}

    def compute(self, inputs: Mapping[str, Tensor]) -> Tensor | dict[str, Tensor]:
        """The model proper, on inputs already checked."""
        raise NotImplementedError

    def loss(self, outputs: Tensor | Mapping[str, Tensor], targets: Tensor) -> Tensor:
        """Training loss; default cross-entropy on the logits, weighted by ``class_weights`` when the
        trainer set them (``class_balance="loss"``)."""
        logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs
        weight = self.class_weights.to(logits.device, logits.dtype) if self.class_weights is not None else None
        return F.cross_entropy(logits, targets, weight=weight)

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The optimizer's parameter groups; a group may set its own ``lr`` (fine-tuned pretrained layers)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def fit(self, inputs: Mapping[str, Tensor], targets: Tensor) -> AvemoModel:
        """Non-gradient fit on training data (only for models with ``needs_fit = True``)."""
        raise ConfigError(f"{self.name}: this model has no fit step (needs_fit is False)")

    def extra_repr(self) -> str:
        return f"name={self.name!r}, num_classes={self.num_classes}"


def make_head(in_dim: int, num_classes: int) -> nn.Linear:
    """The classification layer on an encoder's feature vector (the paper's last dense layer)."""
    return nn.Linear(in_dim, num_classes)


class UnimodalModel(AvemoModel):
    """An encoder plus its classification layer: what ``create_model`` gives for an encoder name."""

    def __init__(self, encoder: Encoder, num_classes: int):
        self.name = encoder.name
        self.kind = encoder.modality
        self.paper = encoder.paper
        self.summary = encoder.summary
        super().__init__(num_classes)
        self.encoder = encoder
        self.head = make_head(encoder.feature_dim, num_classes)
        self.inputs = {encoder.input_name: encoder.input_spec}

    def compute(self, inputs: Mapping[str, Tensor]) -> Tensor:
        return self.head(self.encoder(inputs[self.encoder.input_name]))

    @property
    def closed_form(self) -> bool:
        """Whether the model is fitted by :meth:`fit_closed_form` (its encoder says so) instead of by epochs."""
        return bool(getattr(self.encoder, "closed_form", False))

    def fit_closed_form(self, inputs: Mapping[str, Tensor], targets: Tensor, weights: Tensor | None = None,
                        allowed: Tensor | None = None) -> dict[str, float]:
        """Fit the head on all training ``inputs`` at once (encoders with ``closed_form``: a logistic
        regression, :func:`avemo.models.closed_form.fit_logistic`); the fit's final objective."""
        if not self.closed_form:
            raise ConfigError(f"{self.name}: this model is trained by epochs, not in closed form")
        from avemo.models.closed_form import fit_encoder_head

        return fit_encoder_head(self.encoder, self.head, inputs[self.encoder.input_name], targets, weights=weights,
                                allowed=allowed)


def frames_to_channels_first(x: Tensor, mean: Tensor | None = None, std: Tensor | None = None, *,
                             memory_format: torch.memory_format = torch.contiguous_format) -> Tensor:
    """``(B, N, H, W, C)`` in ``[0, 1]`` -> ``(B, C, N, H, W)``, optionally normalised per channel.

    ``memory_format=torch.channels_last_3d`` keeps the channels innermost in memory, the layout
    the permuted input already has (no copy), for 3D convolutions in that format on a GPU."""
    x = x.permute(0, 4, 1, 2, 3)
    if mean is not None and std is not None:
        x = (x - mean.view(1, -1, 1, 1, 1).to(x.dtype)) / std.view(1, -1, 1, 1, 1).to(x.dtype)
    return x.contiguous(memory_format=memory_format)


def check_min_size(where: str, what: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise ConfigError(f"{where}: {what} must be at least {minimum} for this architecture, got {value}")


def global_average(h: Tensor) -> Tensor:
    """Mean over all dims after the channel dim: ``(B, C, ...)`` -> ``(B, C)``."""
    return h.flatten(2).mean(dim=2) if h.dim() > 2 else h


def expand_like(gate: Tensor, h: Tensor) -> Tensor:
    """Reshape a ``(B, C)`` gate to broadcast over ``h``'s trailing dims."""
    return gate.view(*gate.shape, *([1] * (h.dim() - 2)))


__all__ = [
    "AvemoModel",
    "Encoder",
    "NoOptions",
    "UnimodalModel",
    "check_min_size",
    "expand_like",
    "frames_to_channels_first",
    "global_average",
    "make_head",
    "resolve_config",
]
