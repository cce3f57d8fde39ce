"""Pairing the files of one take: a RAVDESS take exists as a 01 (audio-video), a 02 (video-only)
and a 03 (audio-only) file; a CREMA-D take as a WAV/MP3 and an FLV/MP4 file.

:func:`pair_takes` groups clips by their dataset-qualified take into :class:`Take` records,
one clip per combination of modalities (:attr:`~avemo.datasets.records.Clip.modalities`). It only
reads the clips' labels (no media is decoded) and checks that the files of a take agree on
speaker and emotion.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from avemo.datasets.records import Clip
from avemo.errors import DatasetError
from avemo.modality import MODALITIES, Modality, ordered


def _file_order(modalities: tuple[Modality, ...]) -> tuple[int, tuple[int, ...]]:
    """Files carrying more modalities first, then by the canonical order of their modalities."""
    return (-len(modalities), tuple(MODALITIES.index(m) for m in modalities))


@dataclass(frozen=True)
class Take:
    """The files of one performance, by the modalities each carries (``("audio",)``,
    ``("video",)``, ``("audio", "video")``).

    ``take[modality]`` (and :meth:`clip_for`) is the file to read one modality from: a file that
    carries that modality alone is preferred (smaller to decode), else one that carries it with others.
    """

    dataset: str
    take: str
    speaker: str
    emotion: str | None
    clips: Mapping[tuple[Modality, ...], Clip]

    @property
    def key(self) -> str:
        """The dataset-qualified take id (``"ravdess:01-07-02-02-01-01"``), as :attr:`Clip.take_key`."""
        return f"{self.dataset}:{self.take}"

    @property
    def files(self) -> tuple[tuple[Modality, ...], ...]:
        """The modalities of each file of the take, in iteration order (more modalities first)."""
        return tuple(sorted(self.clips, key=_file_order))

    @property
    def modalities(self) -> tuple[Modality, ...]:
        """Every modality some file of the take carries, in canonical order."""
        return ordered(m for kind in self.clips for m in kind)

    def clip_for(self, modality: str) -> Clip | None:
        """The file to read ``modality`` from (see the class docstring), or None."""
        having = [kind for kind in self.clips if modality in kind]
        return self.clips[min(having, key=lambda k: (len(k), _file_order(k)))] if having else None

    def __getitem__(self, modality: str) -> Clip:
        clip = self.clip_for(modality)
        if clip is None:
            raise DatasetError(f"take {self.key} has no {modality} file (it has {', '.join(self.modalities)})")
        return clip

    def __contains__(self, modality: object) -> bool:
        return any(modality in kind for kind in self.clips)

    def __iter__(self) -> Iterator[Clip]:
        return iter(self.clips[kind] for kind in self.files)


def pair_takes(clips: Iterable[Clip]) -> dict[str, Take]:
    """Group clips into takes: ``{take_key: Take}`` in order of each take's first clip.

    Raises:
        DatasetError: two clips of one take carry the same modalities (name both files), or
            the clips of a take disagree on speaker or emotion.
    """
    grouped: dict[str, dict[tuple[Modality, ...], Clip]] = {}
    for clip in clips:
        files = grouped.setdefault(clip.take_key, {})
        other = files.get(clip.modalities)
        if other is not None:
            raise DatasetError(
                f"take {clip.take_key} has two {clip.kind} files: {other.path} and this one; "
                "read one format only (suffixes=)",
                clip.path,
            )
        first = next(iter(files.values()), None)
        if first is not None and (first.speaker, first.emotion) != (clip.speaker, clip.emotion):
            raise DatasetError(
                f"take {clip.take_key}: speaker/emotion {clip.speaker}/{clip.emotion} disagree with "
                f"{first.speaker}/{first.emotion} of {first.path}",
                clip.path,
            )
        files[clip.modalities] = clip
    takes = {}
    for key, files in grouped.items():
        first = next(iter(files.values()))
        takes[key] = Take(first.dataset, first.take, first.speaker, first.emotion, dict(files))
    return takes
