"""The typed record a dataset reader yields: :class:`Clip`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avemo.errors import ConfigError
from avemo.modality import Modality, ordered


@dataclass(frozen=True)
class Clip:
    """One media file of a dataset, with its labels.

    Attributes:
        path: the media file.
        dataset: reader name (``"ravdess"``, ``"crema_d"``, ``"emodb"``, ``"folder"``).
        emotion: canonical emotion name from the dataset's :class:`~avemo.datasets.labels.LabelSet`
            (``None`` for unlabelled files of a generic folder).
        speaker: the speaker's id within the dataset (``"01"`` for RAVDESS actor 1).
        take: id shared by every file of one performance (RAVDESS: the 01/02/03 files of a
            take share it), unique within the dataset.
        modalities: what the file carries, in canonical order (:mod:`avemo.modality`):
            ``("audio",)``, ``("video",)`` (a silent video) or ``("audio", "video")``.
        fields: the dataset's own parsed fields (RAVDESS intensity, statement, repetition,
            vocal channel, gender; CREMA-D sentence and level; ...).
    """

    path: Path
    dataset: str
    emotion: str | None
    speaker: str
    take: str
    modalities: tuple[Modality, ...]
    fields: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        given = (self.modalities,) if isinstance(self.modalities, str) else self.modalities
        object.__setattr__(self, "modalities", ordered(given, where=f"{self.path}: modalities"))
        if not self.modalities:
            raise ConfigError(f"{self.path}: a clip carries at least one modality")

    @property
    def speaker_key(self) -> str:
        """Speaker id qualified by dataset, unique across datasets (``"ravdess:01"``)."""
        return f"{self.dataset}:{self.speaker}"

    @property
    def take_key(self) -> str:
        """Take id qualified by dataset (``"ravdess:01-07-02-02-01-01"``)."""
        return f"{self.dataset}:{self.take}"

    def has(self, modality: Modality) -> bool:
        """Whether the file carries ``modality``."""
        return modality in self.modalities

    @property
    def kind(self) -> str:
        """The modalities as one word for messages: ``"audio"``, ``"audio+video"``."""
        return "+".join(self.modalities)
