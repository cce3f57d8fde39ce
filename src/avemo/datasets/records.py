"""The typed record a dataset reader yields: :class:`Clip`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avemo.errors import ConfigError
from avemo.modality import Modality, ordered

#: the official partitions a corpus may define (:attr:`Clip.split`)
SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Clip:
    """One media file of a dataset, with its labels.

    Attributes:
        path: the media file; for a clip that carries text only (MELD without its video files), the
            annotation file its text was read from.
        dataset: reader name (``"ravdess"``, ``"crema_d"``, ``"emodb"``, ``"folder"``, ``"meld"``,
            ``"iemocap"``).
        emotion: canonical emotion name from the dataset's :class:`~avemo.datasets.labels.LabelSet`
            (``None`` for unlabelled files of a generic folder).
        speaker: the speaker's id within the dataset (``"01"`` for RAVDESS actor 1).
        take: id shared by every file of one performance (RAVDESS: the 01/02/03 files of a
            take share it), unique within the dataset.
        modalities: what the clip carries, in canonical order (:mod:`avemo.modality`):
            ``("audio",)``, ``("video",)`` (a silent video), ``("audio", "video")``, and ``"text"``
            when :attr:`text` is known (``("text",)`` for a text-only clip).
        fields: the dataset's own parsed fields (RAVDESS intensity, statement, repetition,
            vocal channel, gender; CREMA-D sentence and level; ...).
        text: what is said in the clip (a transcript), or None.
        dialogue: the conversation the clip is an utterance of, unique within the dataset
            (MELD ``"train:0"``, IEMOCAP ``"Ses01F_impro01"``), or None for isolated clips.
        turn: the clip's position in its dialogue (0, 1, ...; dialogue order), None without a
            dialogue. Turns may have gaps where a corpus lacks an utterance.
        split: the corpus's official partition (``"train"``, ``"dev"``, ``"test"``) where it has
            one (MELD), else None.
    """

    path: Path
    dataset: str
    emotion: str | None
    speaker: str
    take: str
    modalities: tuple[Modality, ...]
    fields: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
    text: str | None = None
    dialogue: str | None = None
    turn: int | None = None
    split: str | None = None

    def __post_init__(self) -> None:
        given = (self.modalities,) if isinstance(self.modalities, str) else self.modalities
        object.__setattr__(self, "modalities", ordered(given, where=f"{self.path}: modalities"))
        if not self.modalities:
            raise ConfigError(f"{self.path}: a clip carries at least one modality")
        if self.has("text") != (self.text is not None):
            raise ConfigError(f"{self.path}: a clip carries the text modality exactly when its text is known")
        if (self.turn is None) != (self.dialogue is None):
            raise ConfigError(f"{self.path}: a clip has a turn exactly when it has a dialogue")
        if self.split is not None and self.split not in SPLITS:
            raise ConfigError(f"{self.path}: split {self.split!r} is not one of {', '.join(SPLITS)}")

    @property
    def speaker_key(self) -> str:
        """Speaker id qualified by dataset, unique across datasets (``"ravdess:01"``)."""
        return f"{self.dataset}:{self.speaker}"

    @property
    def take_key(self) -> str:
        """Take id qualified by dataset (``"ravdess:01-07-02-02-01-01"``)."""
        return f"{self.dataset}:{self.take}"

    @property
    def dialogue_key(self) -> str | None:
        """Dialogue id qualified by dataset (``"meld:train:0"``), None without a dialogue."""
        return None if self.dialogue is None else f"{self.dataset}:{self.dialogue}"

    def has(self, modality: Modality) -> bool:
        """Whether the file carries ``modality``."""
        return modality in self.modalities

    @property
    def kind(self) -> str:
        """The modalities as one word for messages: ``"audio"``, ``"audio+video"``."""
        return "+".join(self.modalities)
