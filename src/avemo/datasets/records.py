"""The typed record a dataset reader yields: :class:`Clip`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Modality = Literal["audio", "video", "audio_video"]


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
        modality: what the file carries: ``"audio"``, ``"video"`` (no sound) or ``"audio_video"``.
        fields: the dataset's own parsed fields (RAVDESS intensity, statement, repetition,
            vocal channel, gender; CREMA-D sentence and level; ...).
    """

    path: Path
    dataset: str
    emotion: str | None
    speaker: str
    take: str
    modality: Modality
    fields: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def speaker_key(self) -> str:
        """Speaker id qualified by dataset, unique across datasets (``"ravdess:01"``)."""
        return f"{self.dataset}:{self.speaker}"

    @property
    def take_key(self) -> str:
        """Take id qualified by dataset (``"ravdess:01-07-02-02-01-01"``)."""
        return f"{self.dataset}:{self.take}"

    @property
    def has_audio(self) -> bool:
        return self.modality in ("audio", "audio_video")

    @property
    def has_video(self) -> bool:
        return self.modality in ("video", "audio_video")
