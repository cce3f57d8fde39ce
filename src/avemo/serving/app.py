"""The FastAPI application: ``POST /v1/predict``, ``GET /v1/models``, ``GET /healthz``, the web page.

:func:`create_app` takes the predictor as a dependency (any object with
``predict(path, window=, hop=, modalities=) -> Prediction``; by default the bundled
``Predictor.default()``) and a :class:`~avemo.serving.settings.ServeSettings`.

One request to ``/v1/predict`` goes through these steps; each failure is a JSON error
(:mod:`avemo.serving.responses`), never a stack trace:

1. admission: a slot of the bounded :class:`~avemo.serving.workers.PredictionPool`, else 503;
2. upload: streamed into a fresh private folder, size-limited and sniffed while it arrives
   (:func:`~avemo.serving.uploads.receive_upload`);
3. in a worker thread: the duration limit and the decodability check
   (:func:`~avemo.serving.uploads.check_media`), then the prediction; the request waits at most
   ``request_timeout`` seconds (504);
4. ``finally``: the folder is removed, at once or, if a timed-out job still reads it, as soon
   as that job ends.

The server makes no outgoing requests: it only reads what is uploaded, and the page's
assets are served by the app itself (a Content-Security-Policy of ``'self'`` enforces it in the
browser). FastAPI's ``/docs`` and ``/redoc`` pages are switched off because they load their
scripts from a CDN; the OpenAPI document is at ``/openapi.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import math
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi import Path as FastApiPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from avemo.errors import AvemoError, FeatureError, MediaError, MissingStreamError
from avemo.modality import MODALITIES
from avemo.serving.progress import PROGRESS_ID, ProgressBoard
from avemo.serving.responses import ApiError, error_body, error_response, status_code_name
from avemo.serving.schemas import HealthOut, ModelsOut, PredictionOut, ProgressOut, error_responses
from avemo.serving.settings import ServeSettings
from avemo.serving.uploads import MAX_FIELD_BYTES, Upload, check_media, receive_upload
from avemo.serving.workers import PoolFull, PredictionPool
from avemo.version import __version__

log = logging.getLogger("avemo.serving")


#: the browser may load nothing from anywhere but this server (blob: for the local preview of the
#: chosen file and the camera recording)
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob: mediastream:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(self), microphone=(self), geolocation=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


def static_dir() -> Path:
    """The folder of the page's HTML, JS and CSS (shipped as package data)."""
    return Path(str(resources.files("avemo.serving") / "static"))


class _SecurityHeaders:
    """Pure ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                names = {name for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def describe_model(predictor: Any) -> dict[str, Any]:
    """The loaded model as ``GET /v1/models`` shows it: the predictor's ``info()`` (when it has one)
    with, at least, ``name``, ``labels``, ``modalities`` and the model ``card`` (Markdown or null)."""
    info = predictor.info() if callable(getattr(predictor, "info", None)) else {}
    info = dict(info or {})
    info.setdefault("name", getattr(predictor, "name", type(predictor).__name__))
    info.setdefault("labels", list(getattr(predictor, "labels", [])))
    info.setdefault("modalities", list(getattr(predictor, "modalities", MODALITIES)))
    if "card" not in info:
        card = getattr(predictor, "card", None)
        info["card"] = card() if callable(card) else card
    info["card"] = _card_text(info["card"], getattr(predictor, "bundle_dir", None))
    return info


def _card_text(card: Any, bundle_dir: Any) -> str | None:
    """The model card as Markdown text. A bundle names its card by a path relative to the bundle
    folder (the bundled model: ``model_card.md``, shipped inside the package) or an absolute one;
    ``None`` when it cannot be found."""
    if card is None or not isinstance(card, str):
        return None
    if "\n" in card or not card.endswith(".md"):
        return card
    place = Path(card)
    if not place.is_absolute():
        if bundle_dir is None:
            return None
        place = Path(bundle_dir) / place
    return place.read_text(encoding="utf-8") if place.is_file() else None


def _number(upload: Upload, name: str) -> float | None:
    text = upload.field(name)
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise ApiError(422, "invalid_field", f"form field '{name}' must be a number of seconds") from None
    if not math.isfinite(value):
        raise ApiError(422, "invalid_field", f"form field '{name}' must be a finite number")
    return value


@dataclasses.dataclass(frozen=True)
class PredictOptions:
    """The prediction options of one request (form fields ``window``, ``hop``, ``modalities``);
    ``None`` = the model's default, as in ``avemo predict``."""

    window: float | None
    hop: float | None
    modalities: tuple[str, ...]
    progress_id: str | None = None


def parse_options(upload: Upload, settings: ServeSettings, default_window: float = 1.0) -> PredictOptions:
    """Validate the form fields; 422 for anything out of range."""
    window = _number(upload, "window")
    if window is not None and not settings.min_window <= window <= settings.max_window:
        raise ApiError(422, "invalid_field",
                       f"window must lie between {settings.min_window:g} and {settings.max_window:g} s, got {window:g}")
    hop = _number(upload, "hop")
    longest = window if window is not None else default_window
    if hop is not None and not 0 < hop <= longest:
        raise ApiError(422, "invalid_field", f"hop must be > 0 and <= the window ({longest:g} s), got {hop:g}")
    chosen: list[str] = []
    for value in upload.fields.get("modalities", []):
        for item in value.split(","):
            item = item.strip().lower()
            if not item:
                continue
            if item not in MODALITIES:
                raise ApiError(422, "invalid_field",
                               f"unknown modality '{item[:20]}'; use audio, video or audio,video")
            if item not in chosen:
                chosen.append(item)
    if "modalities" in upload.fields and not chosen:
        raise ApiError(422, "invalid_field", "modalities is empty; use audio, video or audio,video")
    progress_id = upload.field("progress_id")
    if progress_id is not None and not PROGRESS_ID.match(progress_id):
        raise ApiError(422, "invalid_field", "progress_id must be 32 lower-case hex digits")
    return PredictOptions(window=window, hop=hop, modalities=tuple(chosen) or MODALITIES, progress_id=progress_id)


def _error_code(exc: AvemoError) -> str:
    if isinstance(exc, MissingStreamError):
        return "missing_stream"
    if isinstance(exc, MediaError):
        return "unreadable_media"
    if isinstance(exc, FeatureError):
        return "no_usable_input"
    return "prediction_failed"


def _accepts_progress(predictor: Any) -> bool:
    """Whether ``predictor.predict`` takes a ``progress`` callback (or any keyword)."""
    try:
        parameters = inspect.signature(predictor.predict).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "progress" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def _predict_form_schema(settings: ServeSettings, default_window: float, default_hop: float) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "additionalProperties": False,
                        "properties": {
                            "file": {
                                "type": "string",
                                "format": "binary",
                                "description": "A video (mp4, mov, mkv, webm, avi, flv) or audio file (wav, flac, "
                                "mp3, ogg, m4a, aac). The content is sniffed; the name is only displayed. At most "
                                f"{settings.max_upload_bytes} bytes and {settings.max_duration:g} s.",
                            },
                            "window": {
                                "type": "number",
                                "minimum": settings.min_window,
                                "maximum": settings.max_window,
                                "default": default_window,
                                "description": "Timeline window length in seconds (default: the model's).",
                            },
                            "hop": {
                                "type": "number",
                                "exclusiveMinimum": 0,
                                "maximum": settings.max_window,
                                "description": f"Timeline hop in seconds, <= window (default: the model's, "
                                f"{default_hop:g} s).",
                            },
                            "modalities": {
                                "type": "string",
                                "pattern": "^(audio|video)(,(audio|video))?$",
                                "maxLength": MAX_FIELD_BYTES,
                                "default": "audio,video",
                                "description": "Which modalities to use: audio, video, or audio,video.",
                            },
                            "progress_id": {
                                "type": "string",
                                "pattern": "^[0-9a-f]{32}$",
                                "description": "A random id (32 hex digits) under which GET /v1/progress/{id} "
                                "reports this request's progress while it runs.",
                            },
                        },
                    },
                    "encoding": {"file": {"contentType": "application/octet-stream"}},
                }
            },
        }
    }


def create_app(predictor: Any = None, settings: ServeSettings | None = None) -> FastAPI:
    """Build the application around ``predictor`` (default: ``Predictor.default()``, loaded now)."""
    settings = settings or ServeSettings()
    if predictor is None:
        from avemo.inference import Predictor

        predictor = Predictor.default()
    model_info = describe_model(predictor)
    default_window = float(model_info.get("window") or 1.0)
    default_hop = float(model_info.get("hop") or 0.5)
    limits = settings.limits(default_window, default_hop)
    pool = PredictionPool(settings.workers, settings.queue_size)
    board = ProgressBoard()
    accepts_progress = _accepts_progress(predictor)
    folders: set[Path] = set()  # upload folders that exist right now

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        pool.shutdown(wait=True)
        for folder in list(folders):
            _remove(folder)
            folders.discard(folder)

    app = FastAPI(
        title="avemo",
        version=__version__,
        summary="Audio-visual emotion recognition: upload a video or audio file, get its emotions over time.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.predictor = predictor
    app.state.pool = pool
    app.state.upload_folders = folders
    app.state.progress = board
    app.add_middleware(_SecurityHeaders)

    # ------------------------------------------------------------------ errors as JSON
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError):
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else status_code_name(exc.status_code)
        return JSONResponse(error_body(exc.status_code, status_code_name(exc.status_code), message),
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse(error_body(422, "invalid_request", f"{where}: {first.get('msg', 'invalid')}"),
                            status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception):
        log.exception("unexpected error")
        return JSONResponse(error_body(500, "internal_error", "internal server error (details in the server log)"),
                            status_code=500)

    # ------------------------------------------------------------------ the page
    static = static_dir()
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(static / "index.html", media_type="text/html; charset=utf-8")

    # ------------------------------------------------------------------ API
    @app.get("/healthz", response_model=HealthOut, summary="Liveness, queue state and limits")
    async def healthz():
        return {
            "status": "ok",
            "version": __version__,
            "model": str(model_info.get("name")),
            "queue": {"workers": pool.workers, "capacity": pool.capacity, "in_use": pool.in_use},
            "limits": limits,
        }

    @app.get("/v1/models", response_model=ModelsOut, summary="The loaded model and its card")
    async def models():
        return {"models": [model_info]}

    @app.get(
        "/v1/progress/{progress_id}",
        response_model=ProgressOut,
        summary="Progress of a prediction, by the progress_id sent with its upload",
        description="`queued` (waiting for a worker), `running` (with seconds of media analysed), or "
        "`unknown`: no admitted request has this id right now (still uploading, finished, or never sent).",
        responses=error_responses(404, 422, s422="The progress_id is not 32 lower-case hex digits."),
    )
    async def progress(progress_id: Annotated[str, FastApiPath(pattern=PROGRESS_ID.pattern)]):
        return board.get(progress_id) or {"state": "unknown", "done": 0.0, "total": None}

    def run_job(upload: Upload, options: PredictOptions) -> dict[str, Any]:
        """In a worker thread: check the media, predict, make the JSON dict."""
        info = check_media(upload, settings)
        extra: dict[str, Any] = {}
        key = options.progress_id
        if key is not None:
            board.update(key, 0.0, info.duration)
            if accepts_progress:
                extra["progress"] = lambda done, total: board.update(key, done, total)
        try:
            prediction = predictor.predict(upload.path, window=options.window, hop=options.hop,
                                           modalities=options.modalities, **extra)
        except AvemoError as exc:
            reason = exc.reason.replace(str(upload.path), upload.filename).replace(str(upload.path.parent), "")
            raise ApiError(422, _error_code(exc), f"{upload.filename}: {reason}") from None
        return dataclasses.replace(prediction, path=upload.filename).to_dict()

    @app.post(
        "/v1/predict",
        summary="Predict the emotions of an uploaded video or audio file",
        description="A multipart/form-data upload with a `file` field and optional `window`, `hop`, "
        "`modalities` and `progress_id` fields. Returns the same JSON as `avemo predict --format json`.",
        response_model=PredictionOut,
        responses=error_responses(400, 408, 413, 415, 422, 500, 503, 504),
        openapi_extra=_predict_form_schema(settings, default_window, default_hop),
    )
    async def predict(request: Request):
        try:
            slot = pool.reserve()
        except PoolFull:
            raise ApiError(503, "busy", f"all {pool.capacity} prediction slots are taken; retry in a few seconds",
                           headers={"Retry-After": "5"}) from None
        folder = Path(tempfile.mkdtemp(prefix="avemo-upload-", dir=settings.upload_dir))  # mode 0700
        folders.add(folder)
        future = None
        progress_key = None
        try:
            upload = await receive_upload(request, folder, settings)
            options = parse_options(upload, settings, default_window)
            if options.progress_id is not None:
                if not board.add(options.progress_id):
                    raise ApiError(422, "invalid_field", "this progress_id is already in use by another request")
                progress_key = options.progress_id
            future = slot.submit(run_job, upload, options)
            try:
                result = await asyncio.wait_for(asyncio.wrap_future(future), settings.request_timeout)
            except TimeoutError:
                future.cancel()
                raise ApiError(504, "timeout",
                               f"{upload.filename}: no result within {settings.request_timeout:g} s") from None
            return JSONResponse(result)
        finally:
            if future is None:
                slot.release()

            def cleanup(_future=None, folder=folder, key=progress_key):
                _remove(folder)
                folders.discard(folder)
                if key is not None:
                    board.remove(key)

            if future is None or future.done():
                cleanup()
            else:  # a timed-out job still reads the file: remove it when the job ends
                future.add_done_callback(cleanup)

    return app
