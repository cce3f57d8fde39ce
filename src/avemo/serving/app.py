"""The FastAPI application: ``POST /v1/predict``, ``POST /v1/predict/batch``, ``GET /v1/models``,
``GET /healthz``, the web page.

:func:`create_app` takes the predictor as a dependency (any object with
``predict(path, window=, hop=, modalities=) -> Prediction``, and ``predict_many`` / ``check_speakers``
for the batch endpoint; by default the bundled ``Predictor.default()``) and a
:class:`~avemo.serving.settings.ServeSettings`.

One request to ``/v1/predict`` goes through these steps (``/v1/predict/batch`` through the same code,
:meth:`_Service._serve`, with several files and one job: :mod:`avemo.serving.batch`); each failure is a JSON error
(:mod:`avemo.serving.responses`), never a stack trace:

1. a 503 at once when every prediction slot is taken, or every place of the upload gate;
2. upload: streamed into a fresh private folder, size-limited and sniffed while it arrives, cut
   off when the client stalls or trickles (:func:`~avemo.serving.uploads.receive_form`); it holds
   a place of the upload gate, not a prediction slot (:mod:`avemo.serving.workers`), so slow
   clients cannot lock the others out;
3. the form fields (:mod:`avemo.serving.options`), then a slot of the bounded
   :class:`~avemo.serving.workers.PredictionPool` (else 503);
4. in a worker thread: the duration limit and the decodability check
   (:func:`~avemo.serving.uploads.check_media`), the size of the timeline, then the prediction; the
   request waits at most ``request_timeout`` seconds (504);
5. ``finally``: the folder is removed, at once or, if a timed-out job still reads it, as soon
   as that job ends.

When the server stops, requests still running after ``shutdown_grace`` seconds are answered with
a JSON 503 (``shutting_down``).

The server makes no outgoing requests: it only reads what is uploaded, and the page's
assets are served by the app itself (a Content-Security-Policy of ``'self'`` enforces it in the
browser). FastAPI's ``/docs`` and ``/redoc`` pages are switched off because they load their
scripts from a CDN; the OpenAPI document is at ``/openapi.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import inspect
import logging
import shutil
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi import Path as FastApiPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from avemo.errors import AvemoError, ConfigError, FeatureError, MediaError, MissingStreamError
from avemo.inference.text import TEXT
from avemo.modality import MEDIA_MODALITIES
from avemo.serving.batch import BATCH_FIELDS, batch_form_schema, parse_speakers, run_batch
from avemo.serving.options import PredictOptions, check_timeline, parse_options, predict_form_schema
from avemo.serving.progress import PROGRESS_ID, ProgressBoard
from avemo.serving.responses import ApiError, error_body, error_response, status_code_name
from avemo.serving.schemas import BatchOut, HealthOut, ModelsOut, PredictionOut, ProgressOut, error_responses
from avemo.serving.settings import ServeSettings
from avemo.serving.uploads import FORM_FIELDS, Form, Upload, check_media, receive_form
from avemo.serving.workers import Gate, PoolFull, PredictionPool
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
    with, at least, ``name``, ``labels``, ``modalities`` (``text`` among them when a text expert is
    attached: :meth:`~avemo.inference.predictor.Predictor.with_text_expert`) and the model ``card``
    (Markdown or null)."""
    info = predictor.info() if callable(getattr(predictor, "info", None)) else {}
    info = dict(info or {})
    info.setdefault("name", getattr(predictor, "name", type(predictor).__name__))
    info.setdefault("labels", list(getattr(predictor, "labels", [])))
    info.setdefault("modalities", list(getattr(predictor, "modalities", MEDIA_MODALITIES)))
    if (info.get(TEXT) is not None or getattr(predictor, TEXT, None) is not None) and TEXT not in info["modalities"]:
        info["modalities"] = [*info["modalities"], TEXT]
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


class _AnswerWhenCancelled:
    """Pure ASGI middleware: a request that a stopping server cancels (after ``shutdown_grace``
    seconds) is answered with a JSON 503, instead of uvicorn's plain-text 500 and a CancelledError
    traceback in the log."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except asyncio.CancelledError:
            if started:  # half an answer is out: nothing better can be sent
                raise
            log.warning("%s %s: answered 503, the server stopped before the answer was ready",
                        scope.get("method"), scope.get("path"))
            body = error_body(503, "shutting_down", "the server is shutting down; send the request again in a moment")
            await JSONResponse(body, status_code=503, headers={"Retry-After": "5", "Connection": "close"})(
                scope, receive, send)


@dataclasses.dataclass
class _Service:
    """What the routes of one app share: the predictor, the limits, the pool, the uploads."""

    predictor: Any
    settings: ServeSettings
    model_info: dict[str, Any]
    pool: PredictionPool
    uploads: Gate
    board: ProgressBoard
    accepts_progress: bool
    folders: set[Path] = dataclasses.field(default_factory=set)  # upload folders that exist right now

    @classmethod
    def build(cls, predictor: Any, settings: ServeSettings) -> _Service:
        info = describe_model(predictor)
        settings = settings.model_modalities(info["modalities"])
        lacking = [m for m in settings.offered if m not in info["modalities"]]
        if lacking:
            raise ConfigError(f"serve settings: modalities={settings.modalities}, but the model ({info['name']}) "
                              f"reads {', '.join(info['modalities'])}, not {', '.join(lacking)}"
                              + (" (no text expert is attached: Predictor.with_text_expert)" if TEXT in lacking else ""))
        return cls(predictor, settings, info, PredictionPool(settings.workers, settings.queue_size),
                   Gate(settings.max_uploads), ProgressBoard(), _accepts_progress(predictor))

    @property
    def default_window(self) -> float:
        return float(self.model_info.get("window") or 1.0)

    @property
    def default_hop(self) -> float:
        return float(self.model_info.get("hop") or 0.5)

    @property
    def limits(self) -> dict[str, Any]:
        return self.settings.limits(self.default_window, self.default_hop)

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: FastAPI):
        yield
        # in a thread: the event loop must stay free to answer the requests still in flight
        await asyncio.to_thread(self.pool.shutdown, wait=True)
        for folder in list(self.folders):
            _remove(folder)
            self.folders.discard(folder)

    def busy(self, what: str) -> ApiError:
        return ApiError(503, "busy", f"all {what} are taken; retry in a few seconds", headers={"Retry-After": "5"})

    def run_job(self, upload: Upload, options: PredictOptions) -> dict[str, Any]:
        """In a worker thread: check the media and the timeline's size, predict, make the JSON dict."""
        info = check_media(upload, self.settings)
        check_timeline(upload, info.duration, options.hop or self.default_hop, self.settings)
        extra: dict[str, Any] = {}
        key = options.progress_id
        if key is not None:
            self.board.update(key, 0.0, info.duration)
            if self.accepts_progress:
                extra["progress"] = lambda done, total: self.board.update(key, done, total)
        try:
            if options.transcribe:
                extra["transcribe"] = True
            prediction = self.predictor.predict(upload.path, window=options.window, hop=options.hop,
                                                modalities=options.modalities, **extra)
        except AvemoError as exc:
            reason = exc.reason.replace(str(upload.path), upload.filename).replace(str(upload.path.parent), "")
            raise ApiError(422, _error_code(exc), f"{upload.filename}: {reason}") from None
        return dataclasses.replace(prediction, path=upload.filename).to_dict()

    async def receive(self, request: Request, folder: Path, max_files: int = 1,
                      names: tuple[str, ...] = FORM_FIELDS) -> Form:
        """The upload, received while holding a place of the upload gate (not a prediction slot)."""
        if not self.uploads.try_enter():
            raise self.busy(f"{self.uploads.limit} upload places")
        try:
            return await receive_form(request, folder, self.settings, max_files, names)
        finally:
            self.uploads.leave()

    def _single(self, form: Form, query) -> tuple[Callable[[], dict[str, Any]], PredictOptions, str]:
        """``POST /v1/predict``'s job (see the module docstring), its options and what it is named by."""
        upload = form.files[0]
        options = parse_options(upload, self.settings, self.default_window, query, self.model_info["modalities"])
        return functools.partial(self.run_job, upload, options), options, upload.filename

    def _batch(self, form: Form, query) -> tuple[Callable[[], dict[str, Any]], PredictOptions, str]:
        """``POST /v1/predict/batch``'s job (:mod:`avemo.serving.batch`), its options and what it is named by."""
        options = parse_options(form, self.settings, self.default_window, query, self.model_info["modalities"])
        speakers = parse_speakers(form, options, self.predictor)
        job = functools.partial(run_batch, self.predictor, form, options, speakers, self.settings, self.default_hop,
                                _error_code)
        return job, options, f"the {len(form.files)} files"

    async def predict(self, request: Request) -> JSONResponse:
        """``POST /v1/predict`` (see the module docstring)."""
        return await self._serve(request, self._single)

    async def predict_batch(self, request: Request) -> JSONResponse:
        """``POST /v1/predict/batch``: the steps of ``/v1/predict`` with several files (:mod:`avemo.serving.batch`)."""
        return await self._serve(request, self._batch, self.settings.max_batch_files, BATCH_FIELDS)

    async def _serve(self, request: Request, prepare, max_files: int = 1,
                     names: tuple[str, ...] = FORM_FIELDS) -> JSONResponse:
        """Admit the request, receive its form, ``prepare(form, query)`` its job, run it in a slot of
        the pool within ``request_timeout`` (see the module docstring)."""
        if self.pool.full:  # refused before its upload is read
            raise self.busy(f"{self.pool.capacity} prediction slots")
        folder = Path(tempfile.mkdtemp(prefix="avemo-upload-", dir=self.settings.upload_dir))  # mode 0700
        self.folders.add(folder)
        slot = future = key = None
        try:
            form = await self.receive(request, folder, max_files, names)
            job, options, what = prepare(form, request.query_params)
            try:
                slot = self.pool.reserve()
            except PoolFull:
                raise self.busy(f"{self.pool.capacity} prediction slots") from None
            if options.progress_id is not None:
                if not self.board.add(options.progress_id):
                    raise ApiError(422, "invalid_field", "this progress_id is already in use by another request")
                key = options.progress_id
            future = slot.submit(job)
            try:
                result = await asyncio.wait_for(asyncio.wrap_future(future), self.settings.request_timeout)
            except TimeoutError:
                future.cancel()
                raise ApiError(504, "timeout", f"{what}: no result within {self.settings.request_timeout:g} s") from None
            return JSONResponse(result)
        finally:
            if slot is not None and future is None:
                slot.release()
            self._clean_up(folder, key, future)

    def _clean_up(self, folder: Path, key: str | None, future) -> None:
        """Remove the upload folder and the progress entry, at once or, if a timed-out (or cancelled)
        job still reads the file, as soon as that job ends."""

        def clean(_future=None) -> None:
            _remove(folder)
            self.folders.discard(folder)
            if key is not None:
                self.board.remove(key)

        if future is None or future.done():
            clean()
        else:
            future.add_done_callback(clean)


def _add_error_handlers(app: FastAPI) -> None:
    """Every error as the same JSON shape (:mod:`avemo.serving.responses`), never a stack trace."""

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


def _add_routes(app: FastAPI, service: _Service) -> None:
    static = static_dir()
    single_form = predict_form_schema(service.settings, service.default_window, service.default_hop)
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(static / "index.html", media_type="text/html; charset=utf-8")

    @app.get("/healthz", response_model=HealthOut, summary="Liveness, queue state and limits")
    async def healthz():
        pool = service.pool
        return {
            "status": "ok",
            "version": __version__,
            "model": str(service.model_info.get("name")),
            "model_version": str(service.model_info.get("version") or ""),
            "engine": str(service.model_info.get("engine") or ""),
            "modalities": list(service.settings.offered),
            "queue": {"workers": pool.workers, "capacity": pool.capacity, "in_use": pool.in_use,
                      "uploading": service.uploads.count, "max_uploads": service.uploads.limit},
            "limits": service.limits,
        }

    @app.get("/v1/models", response_model=ModelsOut, summary="The loaded model and its card")
    async def models():
        return {"models": [service.model_info]}

    @app.get(
        "/v1/progress/{progress_id}",
        response_model=ProgressOut,
        summary="Progress of a prediction, by the progress_id sent with its upload",
        description="`queued` (waiting for a worker), `running` (with seconds of media analysed), or "
        "`unknown`: no admitted request has this id right now (still uploading, finished, or never sent).",
        responses=error_responses(404, 422, s422="The progress_id is not 32 lower-case hex digits."),
    )
    async def progress(progress_id: Annotated[str, FastApiPath(pattern=PROGRESS_ID.pattern)]):
        return service.board.get(progress_id) or {"state": "unknown", "done": 0.0, "total": None}

    @app.post(
        "/v1/predict",
        summary="Predict the emotions of an uploaded video or audio file",
        description="A multipart/form-data upload with a `file` field and optional `window`, `hop`, "
        "`modalities`, `transcribe` and `progress_id` fields (`modalities` and `transcribe` also as query "
        "parameters). Returns the same JSON as `avemo predict --format json` with the same options. "
        "`modalities` may include `text` (the text expert on the transcript; implies `transcribe`) when the "
        "server offers it (`GET /healthz` lists what it offers); otherwise 422 `modality_unavailable`.",
        response_model=PredictionOut,
        responses=error_responses(400, 408, 413, 415, 422, 500, 503, 504),
        openapi_extra=single_form,
    )
    async def predict(request: Request):
        return await service.predict(request)

    _add_batch_route(app, service, single_form)


def _add_batch_route(app: FastAPI, service: _Service, single_form: dict[str, Any]) -> None:
    """``POST /v1/predict/batch`` (:mod:`avemo.serving.batch`); ``single_form``: ``/v1/predict``'s request body."""

    @app.post(
        "/v1/predict/batch",
        summary="Predict several files in one request, optionally grouped by speaker",
        description="A multipart/form-data upload with 1 to `max_batch_files` `file` fields, optional `speaker` "
        "fields (one per file, in the order of the files) or `group_by_speaker=true` (all files one speaker), and "
        "the `window`, `hop`, `modalities` and `transcribe` fields of POST /v1/predict. Each speaker's files are "
        "speaker-normalised together, as `avemo predict FILES --speakers CSV` / `--group-by-speaker` do "
        "(`speaker`, `modalities.audio.speaker_normalised`, `speaker_clips` in each result). Returns `results`, "
        "one item per file in the order of the upload: its prediction, or its name and error (the batch goes on "
        "without a file that is not media, empty, corrupt or too long). The files together "
        "are held to the upload and duration limits of one POST /v1/predict.",
        response_model=BatchOut,
        responses=error_responses(400, 408, 413, 415, 422, 500, 503, 504,
                                  s400="Malformed request (as POST /v1/predict), or more than max_batch_files "
                                  "files (too_many_files). An empty file is an item of the 200 answer.",
                                  s415="The request is not multipart/form-data (unsupported_content_type). A file "
                                  "that is not audio or video is an item of the 200 answer (unsupported_media).",
                                  s413="The files together are larger than the upload limit, or longer than the "
                                  "duration limit.",
                                  s422="Invalid form fields (a speaker count that is not the file count...), or "
                                  "speaker grouping with a model that has no speaker-normalised head "
                                  "(speaker_grouping_unavailable). A file the decoders or the predictor cannot use "
                                  "is an item of the 200 answer, not a 422."),
        openapi_extra=batch_form_schema(single_form, service.settings),
    )
    async def predict_batch(request: Request):
        return await service.predict_batch(request)


def create_app(predictor: Any = None, settings: ServeSettings | None = None) -> FastAPI:
    """Build the application around ``predictor``; without one, the predictor that the settings'
    ``model``, ``engine``, ``device`` and ``text_model`` name is loaded now
    (:meth:`~avemo.serving.settings.ServeSettings.load_predictor`: as ``avemo predict`` loads it
    from the same options; by default the bundled model on torch).

    Settings that offer the text modality need a predictor with a text expert attached (the
    settings' own predictor has it), else a ConfigError; the speech recogniser is then loaded now
    too, so that missing weights stop the server at its start, not each request."""
    settings = settings or ServeSettings()
    if predictor is None:
        predictor = settings.load_predictor()
    service = _Service.build(predictor, settings)
    settings = service.settings  # its modalities: those the model reads, when none were given
    if TEXT in settings.offered:
        from avemo.inference.transcripts import load_recogniser_now

        load_recogniser_now()
    app = FastAPI(
        title="avemo",
        version=__version__,
        summary="Audio-visual emotion recognition: upload a video or audio file, get its emotions over time.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=service.lifespan,
    )
    app.state.settings = settings
    app.state.predictor = predictor
    app.state.pool = service.pool
    app.state.upload_folders = service.folders
    app.state.progress = service.board
    app.add_middleware(_AnswerWhenCancelled)
    app.add_middleware(_SecurityHeaders)  # outermost: the 503 of a cancelled request gets the headers too
    _add_error_handlers(app)
    _add_routes(app, service)
    return app
