"""The modalities avemo knows, one name each, used everywhere: what a dataset file carries
(:attr:`avemo.datasets.Clip.modalities`), what a feature extractor reads
(:attr:`avemo.features.Extractor.modality`), what a model input and an encoder consume
(:attr:`avemo.models.InputSpec.modality`, the registry's model kinds, the names of a fusion
model's inputs and encoders), what the predictor uses and what its JSON reports
(``"modalities": {"audio": ..., "video": ...}``).

A new modality is added in one place: the :data:`Modality` literal below.

``"text"`` is what was said in a clip (a transcript, a dataset's utterance column, speech
recognition); it is carried by a :class:`~avemo.datasets.Clip` (``Clip.text``), not by a stream of a
media file. :data:`MEDIA_MODALITIES` are the modalities a media file's streams carry: those a
prediction on a file uses unless text is asked for, and the default of :func:`parse_modalities`.

**Old checkpoints.** Checkpoints and predictor bundles written by avemo 0.1 before this
vocabulary named the video modality ``"visual"`` (model inputs ``{"audio", "visual"}``, fusion
configs ``visual=`` / ``visual_config=``, weights ``visual_encoder.*``, the bundle's ``"visual"``
expert). They load unchanged: :data:`LEGACY_NAMES` maps the old name, and
:func:`legacy_key` translates the keys of what such a file stores (a key, or a dotted part of a
weight's name, that is an old name or starts with one followed by ``_``) when it is read. Files
are never rewritten.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, get_args

from avemo.errors import ConfigError

Modality = Literal["audio", "video", "text"]

#: every modality, in canonical order (the order of reports, timelines and JSON)
MODALITIES: tuple[Modality, ...] = get_args(Modality)

#: the modalities carried by the streams of a media file (audio and video tracks)
MEDIA_MODALITIES: tuple[Modality, ...] = ("audio", "video")

#: old name -> modality; only for reading files written before the vocabulary was one
LEGACY_NAMES: dict[str, Modality] = {"visual": "video"}


def check_modality(name: object, *, where: str = "modality") -> Modality:
    """``name`` if it is a modality, else a one-line ConfigError listing the modalities."""
    if name not in MODALITIES:
        raise ConfigError(f"{where}: {name!r} is not a modality; modalities: {', '.join(MODALITIES)}")
    return name  # type: ignore[return-value]


def ordered(modalities: Iterable[str], *, where: str = "modalities") -> tuple[Modality, ...]:
    """Checked modalities without repeats, in canonical order (``{"video", "audio"}`` -> ``("audio", "video")``)."""
    wanted = set(modalities)
    for m in sorted(wanted):
        check_modality(m, where=where)
    return tuple(m for m in MODALITIES if m in wanted)


def parse_modalities(value: str | Iterable[str] | None, *, where: str = "modalities") -> tuple[Modality, ...]:
    """``"audio,video"`` / ``"audio+video"`` / ``["video"]`` / None (:data:`MEDIA_MODALITIES`) -> a
    non-empty checked tuple in canonical order; case and spaces do not matter."""
    if value is None:
        return MEDIA_MODALITIES
    if isinstance(value, str):
        items = value.replace("+", ",").split(",")
    else:
        items = list(value)
    items = [str(v).strip().lower() for v in items]
    items = [v for v in items if v]
    unknown = sorted(set(items) - set(MODALITIES))
    if unknown or not items:
        raise ConfigError(f"{where} must be a non-empty subset of {', '.join(MODALITIES)}, got {value!r}")
    return ordered(items, where=where)


def legacy_key(key: str) -> str:
    """A stored key with the old modality names translated, in each dotted part that is one or
    starts with one and ``_``: ``"visual"`` -> ``"video"``, ``"visual_config"`` -> ``"video_config"``,
    ``"fusion.visual_affine.weight"`` -> ``"fusion.video_affine.weight"``."""
    parts = key.split(".")
    for i, part in enumerate(parts):
        for old, new in LEGACY_NAMES.items():
            if part == old or part.startswith(f"{old}_"):
                parts[i] = new + part[len(old):]
    return ".".join(parts)


def legacy_renamed(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """``mapping`` with its keys translated by :func:`legacy_key` (values unchanged)."""
    return {legacy_key(k): v for k, v in mapping.items()}
