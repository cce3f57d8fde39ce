"""Settings of the prediction service (``avemo serve``): one frozen dataclass with safe defaults.

Every limit the service enforces lives here, so a deployment can tighten or relax them from a
TOML/YAML/JSON file (``avemo serve --config serve.toml``) or from command-line options, and the
page and ``GET /healthz`` can show the limits that apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from avemo.config import from_dict, load_file
from avemo.device import DEVICE_FORMS, is_device_name
from avemo.errors import ConfigError
from avemo.inference.engines import ENGINES
from avemo.inference.windows import MAX_ROWS, MIN_HOP
from avemo.modality import MEDIA_MODALITIES, MODALITIES, parse_modalities

MIB = 1024 * 1024


class SettingError(ConfigError):
    """A serve setting out of its range: ``field`` names it, ``rule`` says what it must be, ``value`` is
    what was given; the message reads ``serve settings: FIELD RULE, got VALUE`` (``avemo serve`` names its
    option instead of the field)."""

    def __init__(self, field: str, rule: str, value: object):
        self.field, self.rule, self.value = field, rule, value
        super().__init__(f"serve settings: {field} {rule}, got {shown(value)}")


def shown(value: object) -> str:
    """A setting's value as a message shows it: ``0``, ``2.5``, ``'foo'``."""
    return f"{value:g}" if isinstance(value, float) else repr(value) if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class ServeSettings:
    """Limits and resources of one service instance.

    The defaults fit the machines this project runs on (2 cores): one prediction at a time, a
    few more waiting, uploads up to 100 MiB and 5 minutes of media.

    Uploads are received before a request takes a prediction slot, by at most ``max_uploads``
    requests at once, each cut off when it stalls (``read_timeout``), trickles (below
    ``min_upload_rate``) or lasts too long (``upload_timeout``): clients that send a few bytes
    and stall cannot keep the prediction slots from the others.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    #: prediction threads sharing the one loaded model (PyAV and torch release the GIL)
    workers: int = 1
    #: uploaded requests allowed to wait for a worker beyond the running ones; one more is
    #: answered with 503 (at once when it arrives, or when its upload is in)
    queue_size: int = 4
    #: uploads received at once; one more is answered at once with 503
    max_uploads: int = 16
    #: largest accepted file, in bytes; enforced while the upload streams in (a batch: its files together)
    max_upload_bytes: int = 100 * MIB
    #: longest accepted media, in seconds; checked from the container's packets before prediction
    #: (a batch: each file, and the files it predicts together)
    max_duration: float = 300.0
    #: the most files one ``POST /v1/predict/batch`` request may carry (413 beyond)
    max_batch_files: int = 32
    #: seconds from the end of the upload to the prediction's result (queue wait included) -> 504
    request_timeout: float = 300.0
    #: seconds a client may take to send its upload -> 408
    upload_timeout: float = 120.0
    #: seconds a client may send nothing in the middle of its upload -> 408
    read_timeout: float = 10.0
    #: bytes per second an upload must average once it has lasted ``read_timeout`` seconds -> 408
    min_upload_rate: float = 16 * 1024
    #: seconds a stopping server waits for the requests in flight; those still running then are
    #: answered with a JSON 503
    shutdown_grace: float = 10.0
    #: parent folder of the private per-request upload folders (default: the system's temp folder)
    upload_dir: str | None = None
    #: the window lengths (seconds) a request may ask for (not under ``min_hop`` either: no hop
    #: would fit); without one, the model's own window and hop apply, and a window sent alone takes
    #: the model's hop, or itself when that is shorter (as in ``avemo predict``)
    min_window: float = 0.25
    max_window: float = 30.0
    #: the shortest hop a request may ask for, and the most timeline windows an answer may hold
    #: (a 300 s file at hop 0.001 s would be 300,000 rows and 100 MB of JSON); at least as strict
    #: as the library's own bounds (:data:`~avemo.inference.windows.MIN_HOP`, ``MAX_ROWS``)
    min_hop: float = 0.1
    max_timeline_rows: int = 10_000
    #: the modalities requests may ask for, as ``avemo predict --modalities``: audio, video; text
    #: loads the text expert on the transcript (requests still use audio and video unless they ask);
    #: None: the media modalities the model reads (:meth:`model_modalities`)
    modalities: str | None = None
    #: the text expert's checkpoint folder (``--text-model``); None: the bundled text model
    text_model: str | None = None
    #: the model served, as ``avemo predict --model / --engine / --device``: a checkpoint folder from
    #: ``avemo train`` (None: the bundled model), the engine (torch or onnx: the bundled model's graphs,
    #: or the checkpoint's, exported on first use) and the device (auto: a GPU when present)
    model: str | None = None
    engine: str = "torch"
    device: str = "auto"

    def __post_init__(self) -> None:
        checks = [
            ("port", 1 <= self.port <= 65535 or self.port == 0, "must be 0..65535"),
            ("workers", self.workers >= 1, "must be >= 1"),
            ("queue_size", self.queue_size >= 0, "must be >= 0"),
            ("max_upload_bytes", self.max_upload_bytes >= 1024, "must be at least 1 KiB"),
            ("max_duration", self.max_duration > 0, "must be > 0 seconds"),
            ("max_batch_files", self.max_batch_files >= 1, "must be >= 1"),
            ("request_timeout", self.request_timeout > 0, "must be > 0 seconds"),
            ("upload_timeout", self.upload_timeout > 0, "must be > 0 seconds"),
            ("max_uploads", self.max_uploads >= 1, "must be >= 1"),
            ("read_timeout", self.read_timeout > 0, "must be > 0 seconds"),
            ("min_upload_rate", self.min_upload_rate >= 0, "must be >= 0"),
            ("shutdown_grace", self.shutdown_grace >= 0, "must be >= 0"),
            ("min_window", 0 < self.min_window <= self.max_window, f"must lie in 0..max_window ({self.max_window:g})"),
            ("min_hop", MIN_HOP <= self.min_hop <= self.max_window,
             f"must lie in {MIN_HOP:g} (the library's shortest hop)..max_window ({self.max_window:g})"),
            ("max_timeline_rows", 1 <= self.max_timeline_rows <= MAX_ROWS,
             f"must lie in 1..{MAX_ROWS} (the library's bound)"),
            ("upload_dir", self.upload_dir is None or Path(self.upload_dir).is_dir(), "must be an existing folder"),
            ("engine", self.engine in ENGINES, f"must be one of {', '.join(ENGINES)}"),
            ("device", is_device_name(self.device), f"must be {DEVICE_FORMS}"),
        ]
        for field, ok, rule in checks:
            if not ok:
                raise SettingError(field, rule, getattr(self, field))
        try:
            offered = self.offered
        except ConfigError:
            raise SettingError("modalities", f"must be a comma-separated subset of {', '.join(MODALITIES)}",
                               self.modalities) from None
        if offered == ("text",):
            raise SettingError("modalities", "needs audio or video next to text (the text expert adds to the other "
                               "experts), e.g. audio,video,text", self.modalities)
        if self.text_model is not None and "text" not in offered:
            raise SettingError("text_model", "needs text among the modalities (use --modalities audio,video,text)",
                               self.text_model)

    @property
    def offered(self) -> tuple[str, ...]:
        """The modalities requests may ask for, in canonical order (``"video,text,audio"`` -> audio, video, text);
        without ``modalities``, audio and video until :meth:`model_modalities` has set them from the model."""
        return parse_modalities(self.modalities, where="serve settings: modalities")

    def model_modalities(self, reads: Sequence[str]) -> ServeSettings:
        """These settings for a model that reads ``reads``: without ``modalities``, the media ones among
        them (an audio-only checkpoint offers audio, not a video it would not read); else unchanged
        (the app refuses those the model cannot use)."""
        if self.modalities is not None:
            return self
        return replace(self, modalities=",".join(m for m in MEDIA_MODALITIES if m in reads))

    def load_predictor(self):
        """The predictor these settings name (``model``, ``engine``, ``device``, and the text expert when
        text is offered), loaded as ``avemo predict`` loads it from the same options
        (:func:`~avemo.inference.predictor.load_predictor`)."""
        from avemo.inference.predictor import load_predictor

        return load_predictor(self.model, engine=self.engine, device=self.device, text_model=self.text_model,
                              with_text="text" in self.offered)

    @property
    def capacity(self) -> int:
        """Uploaded requests held at once (running + waiting); the next one gets 503."""
        return self.workers + self.queue_size

    def limits(self, default_window: float, default_hop: float) -> dict:
        """The limits a client needs to know (shown on the page and in ``GET /healthz``), with the
        model's own timeline window and hop as the defaults."""
        return {
            "max_upload_bytes": self.max_upload_bytes,
            "max_duration": self.max_duration,
            "max_batch_files": self.max_batch_files,
            "request_timeout": self.request_timeout,
            "window": {"default": default_window, "min": max(self.min_window, self.min_hop), "max": self.max_window},
            "default_hop": default_hop,
            "min_hop": self.min_hop,
            "max_timeline_rows": self.max_timeline_rows,
            "upload_timeout": self.upload_timeout,
            "read_timeout": self.read_timeout,
            "min_upload_rate": self.min_upload_rate,
        }


def load_settings(path: str | Path | None = None, **overrides) -> ServeSettings:
    """Settings from a TOML/YAML/JSON file (optional) with ``overrides`` (``None`` values ignored) on top."""
    data = dict(load_file(path)) if path is not None else {}
    if "serve" in data and isinstance(data["serve"], dict):  # allow a [serve] table in a shared file
        data = dict(data["serve"])
    data.update({k: v for k, v in overrides.items() if v is not None})
    return from_dict(ServeSettings, data, where=str(path) if path else "serve settings")
