"""The extractor registry: one place that knows every feature extractor.

An extractor has a registry ``name``, a ``modality`` (:mod:`avemo.modality`: ``"audio"``, ``"video"``,
``"text"``), a
``Config`` dataclass with defaults, ``feature_names()`` (the names of the columns of ``"x"``),
and ``extract(path)`` returning a :data:`Features`
dict of numpy arrays whose main array is under ``"x"`` (extra arrays such as a face
``"mask"`` or ``"coverage"`` sit beside it). Audio extractors also implement
``from_signal(y, sr)`` so that one decoded signal feeds several of them, and so that a
predictor can run them on windows of a stream. Text extractors (:class:`TextExtractor`) read a
string through ``from_texts(texts)`` instead of a file.

The cache key of a result is (file content hash, or text hash for text, ``name``, ``version``, ``config``):
bump ``version`` whenever a change to the algorithm changes the output (a change on long inputs alone
may instead mark its entries and refuse the older ones of long files: :meth:`Extractor.outdated`). Config fields listed
in ``view_fields`` only choose how ``"x"`` is read from the stored arrays (``whisper_base``'s
``combine``): they are left out of the key, and :meth:`Extractor.view` applies them to an entry
loaded from the cache.

Usage::

    from avemo.features import get_extractor, list_extractors
    mfcc = get_extractor("mfcc", n_mfcc=40)
    feats = mfcc.extract("clip.wav")      # {"x": (frames, 120) float32}
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from avemo import config as cfg
from avemo.errors import ConfigError, FeatureError
from avemo.modality import Modality

Features = dict[str, np.ndarray]

_REGISTRY: dict[str, type[Extractor]] = {}


@dataclasses.dataclass(frozen=True)
class NoConfig:
    """Config of an extractor without options."""


class Extractor(ABC):
    """Base class of every feature extractor (see module docstring)."""

    name: ClassVar[str]
    modality: ClassVar[Modality]
    Config: ClassVar[type] = NoConfig
    version: ClassVar[str] = "1"
    #: one line for ``avemo extract --help`` and docs
    summary: ClassVar[str] = ""
    #: config fields that only say how ``"x"`` is read from the other arrays: not part of the cache key
    view_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any = None, **overrides: Any):
        if config is None:
            config = self.Config()
        elif isinstance(config, dict):
            config = cfg.from_dict(self.Config, config, where=f"{self.name} config")
        elif not isinstance(config, self.Config):
            raise ConfigError(f"{self.name}: config must be a {self.Config.__name__}, got {type(config).__name__}")
        if overrides:  # cfg.replace, with errors that name the extractor
            config = cfg.from_dict(self.Config, {**cfg.to_dict(config), **overrides}, where=f"{self.name} config")
        self.config = config

    @abstractmethod
    def extract(self, path: str | Path) -> Features:
        """Compute the features of one media file; raises an AvemoError on bad input."""

    @abstractmethod
    def feature_names(self) -> list[str]:
        """The names of the columns of ``"x"`` with this config, in order: its last axis (the
        dimensions of a (T, D) sequence or a (D,) vector; the channels of (N, H, W, C) frames), as
        opensmile names its columns. ``len(names) == x.shape[-1]``."""

    def cache_spec(self) -> dict[str, Any]:
        """What identifies this extractor's output, apart from the input file's content."""
        spec = self.__dict__.get("_cache_spec")
        if spec is None:  # computed once: the config is frozen
            config = {k: v for k, v in cfg.to_dict(self.config).items() if k not in self.view_fields}
            spec = self.__dict__["_cache_spec"] = {"name": self.name, "version": self.version, "config": config}
        return dict(spec)

    def view(self, feats: Features) -> Features:
        """The features this config returns from a cache entry shared by the configs that differ
        only in ``view_fields`` (identity unless an extractor has such fields)."""
        return feats

    def stored(self, feats: Features) -> Features:
        """What goes into the cache for ``feats``: the view of the ``view_fields``' defaults, so
        that the shared entry is the same whichever of those configs computed it."""
        if not self.view_fields:
            return feats
        defaults = {f.name: f.default for f in dataclasses.fields(self.config) if f.name in self.view_fields}
        return type(self)(dataclasses.replace(self.config, **defaults)).view(feats)

    def outdated(self, entry: Features) -> tuple[float, Features] | None:
        """None when a cache entry under this extractor's key is what this version computes (the default).
        Else ``(seconds, renewed)``: the entry comes from an earlier version whose output equals this one's
        only for a decoded signal of at most ``seconds``; for such a file it is reused and stored again as
        ``renewed`` (marked as this version's, so that the file is checked once), for a longer one computed
        again. This lets an extractor change its output on long inputs alone without a new ``version``,
        which would drop every entry and make every checkpoint trained on the unchanged ones refuse this
        version's features (``whisper_base``'s encoder passes)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"


class AudioExtractor(Extractor):
    """An extractor computed from the mono audio signal; the file is decoded by :mod:`avemo.media`."""

    modality: ClassVar[Modality] = "audio"

    @property
    def sample_rate(self) -> int:
        return int(getattr(self.config, "sample_rate", 16000))

    def extract(self, path: str | Path) -> Features:
        from avemo.media import load_audio

        y = load_audio(path, sr=self.sample_rate)
        try:
            return self.from_signal(y, self.sample_rate)
        except FeatureError as exc:
            if exc.path is None:
                exc.path = str(path)
            raise

    @abstractmethod
    def from_signal(self, y: np.ndarray, sr: int) -> Features:
        """Features of a mono float32 signal ``y`` sampled at ``sr`` Hz."""


class VideoExtractor(Extractor):
    """An extractor computed from the video frames of a file."""

    modality: ClassVar[Modality] = "video"


class TextExtractor(Extractor):
    """An extractor computed from what is said in a clip (:attr:`avemo.datasets.Clip.text`).

    Its input is a string, not a media file: :meth:`from_texts` embeds a batch of texts (the
    batch never changes a text's features), and the cache keys an entry by the text's digest
    (:func:`avemo.digest.text_digest`). ``extract(path)`` reads a UTF-8 text file (a transcript).
    """

    modality: ClassVar[Modality] = "text"

    def extract(self, path: str | Path) -> Features:
        try:
            text = Path(path).read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise FeatureError("text file not found", path) from None
        except UnicodeDecodeError as exc:
            raise FeatureError(f"not UTF-8 text (byte {exc.start})", path) from None
        except OSError as exc:
            raise FeatureError(f"cannot read ({exc.strerror or exc})", path) from None
        try:
            return self.from_text(text)
        except FeatureError as exc:
            if exc.path is None:
                exc.path = str(path)
            raise

    def from_text(self, text: str) -> Features:
        """Features of one text."""
        return self.from_texts([text])[0]

    @abstractmethod
    def from_texts(self, texts: list[str]) -> list[Features]:
        """Features of each text (one dict per text, in order); an empty text is a FeatureError."""


def register_extractor(cls: type[Extractor]) -> type[Extractor]:
    """Class decorator adding an extractor to the registry under ``cls.name``."""
    name = getattr(cls, "name", None)
    if not name:
        raise TypeError(f"{cls.__name__} has no registry name")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise TypeError(f"feature extractor {name!r} is registered twice")
    if not dataclasses.is_dataclass(cls.Config):
        raise TypeError(f"{cls.__name__}.Config must be a dataclass")
    _REGISTRY[name] = cls
    return cls


def list_extractors(modality: str | None = None) -> list[str]:
    """Names of the registered extractors (optionally only those of one modality: ``"audio"``, ``"video"``, ``"text"``)."""
    return sorted(n for n, c in _REGISTRY.items() if modality is None or c.modality == modality)


def extractor_class(name: str) -> type[Extractor]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown feature extractor {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def get_extractor(name: str, config: Any = None, **overrides: Any) -> Extractor:
    """Build the extractor registered as ``name`` with its config (dataclass, dict or keyword overrides)."""
    return extractor_class(name)(config, **overrides)
