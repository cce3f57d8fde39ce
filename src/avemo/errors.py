"""User-facing errors.

Every error a user can cause (a missing file, a corrupt container, a malformed dataset
file name, a checkpoint from another label set...) is raised as an :class:`AvemoError`
whose ``str()`` is one line naming the file and the reason. The CLI prints that line
instead of a traceback; batch jobs catch it per item, record it and keep going.
"""

from __future__ import annotations

from os import PathLike


class AvemoError(Exception):
    """Base class: ``reason`` says what is wrong, ``path`` (optional) which file.

    A library error names the file and the reason, never a command-line option (a caller of
    :class:`~avemo.inference.predictor.Predictor` gave no option); the CLI sets ``option`` to the
    option that named ``path`` (``--model``), shown before it: ``--model RUN: no such checkpoint``."""

    #: the command-line option that gave ``path``, when the CLI knows it
    option: str | None = None

    def __init__(self, reason: str, path: str | PathLike[str] | None = None):
        super().__init__(reason)
        self.reason = " ".join(str(reason).split())  # always one line
        self.path = None if path is None else " ".join(str(path).splitlines())

    def __str__(self) -> str:
        where = f"{self.option} {self.path}" if self.option and self.path else self.path
        return f"{where}: {self.reason}" if where else self.reason


class MediaError(AvemoError):
    """The file cannot be decoded: missing, not a media file, corrupt, truncated."""


class MissingStreamError(MediaError):
    """The container is readable but lacks the stream asked for (no audio track, audio-only file)."""

    def __init__(self, reason: str, path=None, *, stream: str):
        super().__init__(reason, path)
        self.stream = stream


class DatasetError(AvemoError):
    """A dataset folder, file name or label table cannot be interpreted."""


class NameShapeError(DatasetError):
    """A file name without the shape of a dataset's names at all (``my_video.mp4`` for RAVDESS's seven
    two-digit fields), as opposed to one of that shape with a field out of range."""


class FeatureError(AvemoError):
    """A feature cannot be computed for this input (too short, no face in any frame, ...)."""


class ConfigError(AvemoError):
    """An invalid configuration value or file."""


class LeakageError(AvemoError):
    """A split puts the same speaker or take in two partitions."""


class CheckpointError(AvemoError):
    """A checkpoint is unreadable, foreign, or incompatible with the data it is asked to run on."""


class CacheError(AvemoError):
    """A feature cache entry is corrupt or cannot be written."""


class DeviceMemoryError(AvemoError):
    """The model does not fit the device's memory at these settings (the message says what to change)."""


def reason_of(exc: BaseException) -> str:
    """The one-line reason a batch records for an item that failed with ``exc``: an AvemoError's own
    reason, or, for anything else (a bug), ``internal error (TypeError: ...); please report it``."""
    if isinstance(exc, AvemoError):
        return exc.reason
    return " ".join(f"internal error ({type(exc).__name__}: {exc}); please report it".split())
