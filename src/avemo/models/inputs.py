"""What a model consumes: one :class:`InputSpec` per named input, and the checks made in ``forward``.

Every model has ``model.inputs: dict[str, InputSpec]``. The trainer reads it to decide which
feature extractor to run (``feature`` + ``config``), how to crop/pad it (``shape``) and how to
batch it (``kind``); the model then receives ``dict[name, float32 tensor]`` with a batch dim:

* ``kind="sequence"``: ``(B, T, D)``, standardised per dimension with training-set statistics;
  ``shape=(T, D)`` where ``T=None`` means any length and a fixed ``T`` means the trainer crops or
  pads the sequence to exactly ``T`` frames.
* ``kind="vector"``: ``(B, D)`` standardised; ``shape=(D,)`` (``D=None``: learnt from the data).
* ``kind="frames"``: ``(B, N, H, W, C)`` float in ``[0, 1]``; models do their own channel
  normalisation and permutes.

:func:`check_inputs` raises :class:`ModelInputError` (an ``AvemoError`` and a ``ValueError``) with
one line naming the model and the input when an input is missing or badly shaped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

import torch

from avemo.errors import ConfigError
from avemo.modality import MODALITIES, Modality

Kind = Literal["sequence", "frames", "vector"]

_RANKS = {"sequence": 2, "frames": 4, "vector": 1}


class ModelInputError(ConfigError, ValueError):
    """A model input is missing, or its shape or dtype does not match the model's ``InputSpec``."""


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """One input of a model.

    ``modality``: one of :data:`avemo.modality.MODALITIES` (``"audio"``, ``"video"``).
    ``feature``: a feature-extractor registry name (``"mfcc"``, ``"face_crops"``...) or a table name
    (``"openface_au_means"``).
    ``config``: extractor config overrides (field names of the extractor's ``Config``).
    ``shape``: per-example shape, channels-last as the extractor outputs it; ``None`` = free.
    ``kind``: ``"sequence"`` ``(T, D)``, ``"frames"`` ``(N, H, W, C)`` or ``"vector"`` ``(D,)``.
    ``optional``: the model still runs when this input is absent (late-fusion models can predict
    from one modality); absent inputs are simply left out of the dict.
    ``standardise``: False for an input the model consumes as the extractor gives it (the hidden
    states of a pretrained network whose top layers the model fine-tunes); the
    :class:`~avemo.models.normalization.Normalizer` leaves it unchanged.
    ``speaker_prefix`` (text inputs only): the extractor reads each utterance as ``"Speaker: text"``
    (:func:`avemo.datasets.text.speaker_prefixed`, the clip's speaker; the text alone when the clip
    has none), so that the model sees who speaks in the current utterance and in its dialogue
    context (EmoBERTa's input). The features are cached by the text they read, so prefixed and
    plain texts never share a cache entry.
    """

    modality: Modality
    feature: str
    config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    shape: tuple[int | None, ...] = ()
    kind: Kind = "vector"
    optional: bool = False
    standardise: bool = True
    speaker_prefix: bool = False

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ConfigError(f"InputSpec: modality must be one of {', '.join(MODALITIES)}, got {self.modality!r}")
        if self.kind not in _RANKS:
            raise ConfigError(f"InputSpec: kind must be one of {', '.join(sorted(_RANKS))}, got {self.kind!r}")
        if len(self.shape) != _RANKS[self.kind]:
            raise ConfigError(
                f"InputSpec {self.feature!r}: a {self.kind} has {_RANKS[self.kind]} dims, got shape {self.shape}"
            )
        if self.speaker_prefix and self.modality != "text":
            raise ConfigError(f"InputSpec {self.feature!r}: speaker_prefix is for text inputs, not {self.modality}")
        object.__setattr__(self, "config", dict(self.config))
        object.__setattr__(self, "shape", tuple(self.shape))

    def __hash__(self) -> int:  # ``config`` is a dict: hash its canonical JSON
        from avemo.config import canonical_json

        return hash(
            (self.modality, self.feature, canonical_json(self.config), self.shape, self.kind, self.optional,
             self.standardise, self.speaker_prefix)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form (for result files and ``docs/models.md``)."""
        return {
            "modality": self.modality,
            "feature": self.feature,
            "config": {k: list(v) if isinstance(v, tuple) else v for k, v in self.config.items()},
            "shape": list(self.shape),
            "kind": self.kind,
            "optional": self.optional,
            "standardise": self.standardise,
            "speaker_prefix": self.speaker_prefix,
        }

    def describe(self) -> str:
        """Short text such as ``mfcc(n_mfcc=13, deltas=False) (212, 13) sequence``."""
        conf = ", ".join(f"{k}={v}" for k, v in self.config.items())
        dims = (
            "("
            + ", ".join("*" if d is None else str(d) for d in self.shape)
            + ("," if len(self.shape) == 1 else "")
            + ")"
        )
        return f"{self.feature}({conf}) {dims} {self.kind}" + (" of 'Speaker: text'" if self.speaker_prefix else "")


def check_inputs(model_name: str, specs: Mapping[str, InputSpec], inputs: Any) -> None:
    """Raise :class:`ModelInputError` unless ``inputs`` matches ``specs`` (see module docstring)."""
    if not isinstance(inputs, Mapping):
        raise ModelInputError(
            f"{model_name}: expected a dict of input tensors ({', '.join(sorted(specs))}), got {type(inputs).__name__}"
        )
    present = [name for name in specs if inputs.get(name) is not None]
    missing = [name for name, spec in specs.items() if name not in present and not spec.optional]
    if missing:
        spec = specs[missing[0]]
        raise ModelInputError(
            f"{model_name}: missing input {missing[0]!r} ({spec.modality} {spec.feature}); "
            f"this model cannot run without it (got {', '.join(sorted(k for k in inputs if inputs[k] is not None)) or 'none'})"
        )
    if not present:
        raise ModelInputError(f"{model_name}: none of its inputs ({', '.join(sorted(specs))}) was given")
    batch = None
    for name in present:
        spec, x = specs[name], inputs[name]
        if not isinstance(x, torch.Tensor):
            raise ModelInputError(f"{model_name}: input {name!r} must be a tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise ModelInputError(f"{model_name}: input {name!r} must be a float tensor, got {x.dtype}")
        want = (None, *spec.shape)
        if x.dim() != len(want) or any(w is not None and w != g for w, g in zip(want, x.shape, strict=True)):
            shown = "(B, " + ", ".join("*" if d is None else str(d) for d in spec.shape) + ")"
            raise ModelInputError(
                f"{model_name}: input {name!r} ({spec.feature}, {spec.kind}) must have shape {shown}, "
                f"got {tuple(x.shape)}"
            )
        if x.shape[0] == 0 or any(s == 0 for s in x.shape[1:]):
            raise ModelInputError(f"{model_name}: input {name!r} is empty, shape {tuple(x.shape)}")
        if batch is None:
            batch = x.shape[0]
        elif x.shape[0] != batch:
            raise ModelInputError(
                f"{model_name}: inputs have different batch sizes ({batch} and {x.shape[0]} for {name!r})"
            )


def example_inputs(
    specs: Mapping[str, InputSpec], batch: int = 2, free: int = 16, generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """Random inputs that satisfy ``specs`` (free dims set to ``free``): for tests, benchmarks, ONNX export."""
    out = {}
    for name, spec in specs.items():
        shape = (batch, *(free if d is None else d for d in spec.shape))
        if spec.kind == "frames":
            out[name] = torch.rand(shape, generator=generator)
        else:
            out[name] = torch.randn(shape, generator=generator)
    return out
