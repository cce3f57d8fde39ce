"""Pairing the files of one take: a RAVDESS take exists as a 01 (audio-video), a 02 (video-only)
and a 03 (audio-only) file; a CREMA-D take as a WAV/MP3 and an FLV/MP4 file.

:func:`pair_takes` groups clips by their dataset-qualified take into :class:`Take` records,
one clip per modality. It only reads the clips' labels (no media is decoded) and checks that
the files of a take agree on speaker and emotion.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from avemo.datasets.records import Clip
from avemo.errors import DatasetError

#: order in which :attr:`Take.audio_clip` / :attr:`Take.video_clip` pick a file: the
#: single-stream file first (smaller to decode), then the audio-video one
_AUDIO_ORDER = ("audio", "audio_video")
_VIDEO_ORDER = ("video", "audio_video")


@dataclass(frozen=True)
class Take:
    """The files of one performance, by modality (``"audio"``, ``"video"``, ``"audio_video"``)."""

    dataset: str
    take: str
    speaker: str
    emotion: str | None
    clips: Mapping[str, Clip]

    @property
    def key(self) -> str:
        """The dataset-qualified take id (``"ravdess:01-07-02-02-01-01"``), as :attr:`Clip.take_key`."""
        return f"{self.dataset}:{self.take}"

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m in ("audio_video", "video", "audio") if m in self.clips)

    def __getitem__(self, modality: str) -> Clip:
        try:
            return self.clips[modality]
        except KeyError:
            have = ", ".join(self.modalities)
            raise DatasetError(f"take {self.key} has no {modality} file (it has {have})") from None

    def __contains__(self, modality: object) -> bool:
        return modality in self.clips

    def __iter__(self) -> Iterator[Clip]:
        return iter(self.clips[m] for m in self.modalities)

    @property
    def audio_clip(self) -> Clip | None:
        """The file to take the sound from: the audio-only file, else the audio-video one."""
        return next((self.clips[m] for m in _AUDIO_ORDER if m in self.clips), None)

    @property
    def video_clip(self) -> Clip | None:
        """The file to take the frames from: the video-only file, else the audio-video one."""
        return next((self.clips[m] for m in _VIDEO_ORDER if m in self.clips), None)


def pair_takes(clips: Iterable[Clip]) -> dict[str, Take]:
    """Group clips into takes: ``{take_key: Take}`` in order of each take's first clip.

    Raises:
        DatasetError: two clips of one take have the same modality (name both files), or
            the clips of a take disagree on speaker or emotion.
    """
    grouped: dict[str, dict[str, Clip]] = {}
    for clip in clips:
        files = grouped.setdefault(clip.take_key, {})
        other = files.get(clip.modality)
        if other is not None:
            raise DatasetError(
                f"take {clip.take_key} has two {clip.modality} files: {other.path} and this one; "
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
        files[clip.modality] = clip
    takes = {}
    for key, files in grouped.items():
        first = next(iter(files.values()))
        takes[key] = Take(first.dataset, first.take, first.speaker, first.emotion, dict(files))
    return takes
