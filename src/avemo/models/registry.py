"""The model registry: every model of the project constructible by name, timm-style.

Usage::

    from avemo.models import create_model, list_models, model_info

    list_models()                 # every registered name; list_models("fusion") only fusion models
    model = create_model("msaf", num_classes=8)                       # the paper's encoders
    model = create_model("msaf", num_classes=8, video="au_mlp")      # RAVDESS-AU benchmark
    model = create_model("msaf", num_classes=8, audio="mfcc_cnn1d", video="resnext3d_50",
                         video_config={"n_frames": 16, "size": (112, 112)})
    model.inputs                  # {"audio": InputSpec(...), "video": InputSpec(...)}
    logits = model({"audio": a, "video": v})                        # (B, 8)

Three kinds of entries:

* ``audio`` / ``video``: an :class:`~avemo.models.base.Encoder`. ``create_model(name, ...)``
  gives the unimodal model (encoder + classification layer), keyword arguments are the
  encoder's config fields; fusion models take the same names as components.
* ``fusion``: an :class:`~avemo.models.base.AvemoModel` whose config has ``audio``, ``video``
  (encoder names), ``audio_config``, ``video_config`` (their config overrides) and its own fields.

The input contract (what the trainer relies on)
-----------------------------------------------
``model.inputs: dict[str, InputSpec]`` (an instance attribute: it depends on the encoders). For each
name the trainer extracts ``spec.feature`` with ``spec.config`` overrides (a feature extractor name
or a table such as ``openface_au_means``) and feeds ``dict[name, float32 tensor]`` with a batch dim:

* sequences ``(B, T, D)`` standardised per dimension with training-set statistics; a fixed first
  dim ``T`` in ``spec.shape`` means crop/pad to ``T`` frames, ``None`` means any length;
* vectors ``(B, D)`` standardised;
* frames ``(B, N, H, W, C)`` float in ``[0, 1]`` (models normalise and permute themselves).

``model(inputs)`` returns logits ``(B, num_classes)`` for ``F.cross_entropy`` (late-fusion models
over probabilities return log-probabilities, which work the same). ``model.forward_outputs(inputs)``
returns a dict with ``"logits"`` and extras, and ``model.loss(outputs, targets)`` is the training
loss (cross-entropy unless the model defines an auxiliary one, e.g. per-branch losses of late
fusion or Liu et al.'s multiplicative loss). Models with ``needs_fit = True`` (``mfa_fercnn``) must
be given ``model.fit(train_inputs, train_targets)`` before training; what it learns is stored in
buffers, hence in ``state_dict``. Missing or badly shaped inputs raise
:class:`~avemo.models.inputs.ModelInputError` (a ``ConfigError`` and ``ValueError``) naming the model
and the input; an input with ``spec.optional`` may be left out (late fusion predicts from one
modality). Models are device-agnostic (``model.to(device)``; constants are buffers) and run under
``torch.autocast`` (numerically fragile parts, such as MCBP's FFT, run in float32 internally).
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from typing import Any

from torch import nn

from avemo import config as cfg
from avemo.errors import ConfigError
from avemo.modality import MODALITIES
from avemo.models.base import AvemoModel, Encoder, UnimodalModel
from avemo.models.inputs import InputSpec

KINDS = (*MODALITIES, "fusion")

_MODELS: dict[str, type] = {}
_ALIASES: dict[str, str] = {}


def register_model(cls: type) -> type:
    """Class decorator: add an :class:`Encoder` (kind audio/video) or a fusion :class:`AvemoModel`."""
    name = getattr(cls, "name", "")
    if not name:
        raise TypeError(f"{cls.__name__} has no registry name")
    if issubclass(cls, Encoder):
        if cls.modality not in MODALITIES:
            raise TypeError(f"{cls.__name__}.modality must be one of {MODALITIES}")
    elif issubclass(cls, AvemoModel):
        if cls.kind not in KINDS:
            raise TypeError(f"{cls.__name__}.kind must be one of {KINDS}")
    else:
        raise TypeError(f"{cls.__name__} is neither an Encoder nor an AvemoModel")
    if not dataclasses.is_dataclass(getattr(cls, "Config", None)):
        raise TypeError(f"{cls.__name__}.Config must be a dataclass")
    if not cls.paper or not cls.summary:
        raise TypeError(f"{cls.__name__} must name its paper and give a summary")
    if (name in _MODELS and _MODELS[name] is not cls) or name in _ALIASES:
        raise TypeError(f"model {name!r} is registered twice")
    _MODELS[name] = cls
    return cls


def register_alias(alias: str, target: str) -> None:
    """Make ``alias`` another name of the registered model ``target`` (e.g. ``"default"``)."""
    target = _ALIASES.get(target, target)
    if target not in _MODELS:
        raise ConfigError(f"cannot alias {alias!r}: unknown model {target!r}")
    if alias in _MODELS:
        raise ConfigError(f"cannot alias {alias!r}: it is already a model name")
    _ALIASES[alias] = target


def resolve_name(name: str) -> str:
    """The registered name behind ``name`` (itself or the target of an alias)."""
    if not isinstance(name, str):
        raise ConfigError(f"a model name must be a string, got {type(name).__name__}")
    real = _ALIASES.get(name, name)
    if real not in _MODELS:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(sorted(_MODELS))}")
    return real


def model_class(name: str) -> type:
    return _MODELS[resolve_name(name)]


def kind_of(cls: type) -> str:
    return cls.modality if issubclass(cls, Encoder) else cls.kind


def list_models(kind: str | None = None) -> list[str]:
    """Registered model names (aliases excluded), optionally of one kind: audio, video or fusion."""
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"unknown model kind {kind!r}; use one of {list(KINDS)}")
    return sorted(n for n, c in _MODELS.items() if kind is None or kind_of(c) == kind)


def list_aliases() -> dict[str, str]:
    return dict(sorted(_ALIASES.items()))


def get_encoder(name: str, config: Any = None, *, modality: str | None = None) -> Encoder:
    """Build the encoder registered as ``name`` (as a fusion component); checks its modality."""
    cls = model_class(name)
    if not issubclass(cls, Encoder):
        raise ConfigError(
            f"{name!r} is a fusion model, not an encoder; encoders: {[n for m in MODALITIES for n in list_models(m)]}"
        )
    if modality is not None and cls.modality != modality:
        raise ConfigError(
            f"{name!r} encodes {cls.modality}, not {modality}; {modality} encoders: {list_models(modality)}"
        )
    return cls(config)


def create_model(name: str, num_classes: int = 8, **config: Any) -> AvemoModel:
    """Build model ``name`` with ``num_classes`` outputs; keyword arguments are its config fields."""
    real = resolve_name(name)
    cls = _MODELS[real]
    if issubclass(cls, Encoder):
        model: AvemoModel = UnimodalModel(cls(config), num_classes)
        built_config = cfg.to_dict(model.encoder.config)
    else:
        conf = cfg.from_dict(cls.Config, dict(config), where=f"{real} config")
        model = cls(conf, num_classes)
        built_config = cfg.to_dict(conf)
    model.build_args = {"name": real, "num_classes": num_classes, "config": built_config}
    return model


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters; buffers (BN statistics, sketches, projections) not included."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def default_inputs(name: str, **config: Any) -> dict[str, InputSpec]:
    """The inputs ``create_model(name, **config)`` would declare, without building any weights."""
    cls = model_class(name)
    if issubclass(cls, Encoder):
        conf = cfg.from_dict(cls.Config, dict(config), where=f"{name} config")
        spec = cls.spec_for(conf)
        return {spec.modality: spec}
    conf = cfg.from_dict(cls.Config, dict(config), where=f"{name} config")
    return cls.specs_for(conf)


def default_dialogue_context(name: str, **config: Any) -> int | None:
    """The ``dialogue_context`` ``create_model(name, **config)`` would have (None: the model reads single
    clips; H: the H previous utterances of each one's dialogue too), without building any weights."""
    cls = model_class(name)
    if issubclass(cls, Encoder):
        return None
    return cls.context_for(cfg.from_dict(cls.Config, dict(config), where=f"{name} config"))


def model_info(name: str) -> dict[str, Any]:
    """``{"name", "kind", "paper", "summary", "description", "inputs", "config", "aliases", "needs_fit"}``.

    ``description`` is the model's module docstring: the paper sections followed and every departure.
    """
    real = resolve_name(name)
    cls = _MODELS[real]
    defaults = cfg.to_dict(cls.Config())
    return {
        "name": real,
        "kind": kind_of(cls),
        "paper": cls.paper,
        "summary": cls.summary,
        "description": inspect.getdoc(sys.modules[cls.__module__]) or inspect.getdoc(cls) or "",
        "inputs": {k: v.to_dict() for k, v in default_inputs(real).items()},
        "config": defaults,
        "aliases": sorted(a for a, t in _ALIASES.items() if t == real),
        "needs_fit": bool(getattr(cls, "needs_fit", False)),
    }


def smoke_config(name: str, **config: Any) -> dict[str, Any]:
    """Keyword arguments for ``create_model(name, ...)`` giving the smallest inputs the model accepts.

    Encoders declare theirs as ``Encoder.smoke_config`` (e.g. 8 frames of 32x32 for the 3D
    ResNeXt); for a fusion model they are applied to its encoders. ``config`` (e.g. ``video=...``)
    is merged in first. Used by the shared model tests and quick benchmarks.
    """
    cls = model_class(name)
    if issubclass(cls, Encoder):
        return {**cls.smoke_config, **config}
    out = dict(config)
    conf = cfg.from_dict(cls.Config, dict(config), where=f"{name} config")
    for modality in MODALITIES:
        enc_name = getattr(conf, modality, None)
        if not isinstance(enc_name, str):
            continue
        try:
            enc_cls = model_class(enc_name)
        except ConfigError:
            continue  # a feature name, not an encoder (mfa_fercnn)
        key = f"{modality}_config"
        if issubclass(enc_cls, Encoder) and hasattr(conf, key):
            out[key] = {**enc_cls.smoke_config, **dict(config.get(key, {}))}
    return out
