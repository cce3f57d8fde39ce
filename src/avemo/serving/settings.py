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
from avemo.errors import ConfigError
from avemo.inference.engines import check_engine
from avemo.inference.windows import MAX_ROWS, MIN_HOP
from avemo.modality import MEDIA_MODALITIES, parse_modalities

MIB = 1024 * 1024


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
            (1 <= self.port <= 65535 or self.port == 0, f"port must be 0..65535, got {self.port}"),
            (self.workers >= 1, f"workers must be >= 1, got {self.workers}"),
            (self.queue_size >= 0, f"queue_size must be >= 0, got {self.queue_size}"),
            (self.max_upload_bytes >= 1024, f"max_upload_bytes must be >= 1024, got {self.max_upload_bytes}"),
            (self.max_duration > 0, f"max_duration must be > 0, got {self.max_duration}"),
            (self.max_batch_files >= 1, f"max_batch_files must be >= 1, got {self.max_batch_files}"),
            (self.request_timeout > 0, f"request_timeout must be > 0, got {self.request_timeout}"),
            (self.upload_timeout > 0, f"upload_timeout must be > 0, got {self.upload_timeout}"),
            (self.max_uploads >= 1, f"max_uploads must be >= 1, got {self.max_uploads}"),
            (self.read_timeout > 0, f"read_timeout must be > 0, got {self.read_timeout}"),
            (self.min_upload_rate >= 0, f"min_upload_rate must be >= 0, got {self.min_upload_rate}"),
            (self.shutdown_grace >= 0, f"shutdown_grace must be >= 0, got {self.shutdown_grace}"),
            (0 < self.min_window <= self.max_window, "need 0 < min_window <= max_window"),
            (MIN_HOP <= self.min_hop <= self.max_window,
             f"need {MIN_HOP:g} (the library's shortest hop) <= min_hop <= max_window, got {self.min_hop:g}"),
            (1 <= self.max_timeline_rows <= MAX_ROWS,
             f"max_timeline_rows must lie in 1..{MAX_ROWS} (the library's bound), got {self.max_timeline_rows}"),
        ]
        for ok, reason in checks:
            if not ok:
                raise ConfigError(f"serve settings: {reason}")
        if self.upload_dir is not None and not Path(self.upload_dir).is_dir():
            raise ConfigError("upload_dir is not an existing folder", self.upload_dir)
        check_engine(self.engine)
        offered = self.offered  # checks the names
        if offered == ("text",):
            raise ConfigError("serve settings: modalities: text needs audio or video next to it (the text expert adds "
                              "to the other experts), e.g. audio,video,text")
        if self.text_model is not None and "text" not in offered:
            raise ConfigError("serve settings: a text model is given but text is not among the modalities "
                              "(use --modalities audio,video,text)")

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
