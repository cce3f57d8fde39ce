"""``avemo serve``: the REST API and the web page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from avemo.cli.app import app, console_err
from avemo.cli.files import _options_naming_files
from avemo.cli.options import _SERVE, DEVICE_HELP, ENGINE_HELP, MODEL_HELP
from avemo.cli.predict import say_if_exporting
from avemo.errors import AvemoError
from avemo.serving.settings import MIB  # light: the web framework loads in `serve` only

_MODALITIES_OPTION = typer.Option(help="Comma-separated modalities requests may ask for: audio, video; add text to load "
                                       "the opt-in text expert on the transcript (see --text-model). A request uses "
                                       "the others unless it asks for text.", show_default="those the model reads")


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = _SERVE.host,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = _SERVE.port,
    workers: Annotated[int, typer.Option("--workers", "-j", help="Prediction threads sharing the loaded model.")
                       ] = _SERVE.workers,
    queue: Annotated[
        int, typer.Option("--queue", help="Uploaded requests that may wait for a prediction thread; more get 503.")
    ] = _SERVE.queue_size,
    max_upload_mb: Annotated[float, typer.Option(help="Largest accepted upload, MiB.")] = _SERVE.max_upload_bytes / MIB,
    max_duration: Annotated[float, typer.Option(help="Longest accepted media, seconds.")] = _SERVE.max_duration,
    timeout: Annotated[
        float, typer.Option(help="Seconds from the end of an upload to its result, queue wait included (504).")
    ] = _SERVE.request_timeout,
    upload_dir: Annotated[
        Path | None, typer.Option(help="Parent folder of the private upload folders.",
                                  show_default="the system temp folder")
    ] = None,
    modalities: Annotated[str | None, _MODALITIES_OPTION] = None,
    text_model: Annotated[
        Path | None, typer.Option(help="The text expert of --modalities ...,text: a text-only checkpoint from "
                                       "`avemo train` (default: the bundled text model, when there is one).")
    ] = None,
    model: Annotated[Path | None, typer.Option("--model", "-m", help=MODEL_HELP)] = None,
    engine: Annotated[str, typer.Option(help=ENGINE_HELP)] = _SERVE.engine,
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = _SERVE.device,
    config: Annotated[
        Path | None, typer.Option("--config", help="Settings file (TOML/YAML/JSON) with any key of ServeSettings, "
                                                   "e.g. read_timeout, min_upload_rate, max_uploads, min_hop, "
                                                   "max_timeline_rows; options given here win.")
    ] = None,
) -> None:
    """Serve the REST API (POST /v1/predict and /v1/predict/batch, GET /v1/models,
    /v1/progress/ID, /healthz, /openapi.json) and the web page at /.

    The model is chosen as in `avemo predict` (--model, --engine, --device) and loaded before the
    server starts: a bad value stops it with a one-line error.
    """
    _check_serve_extra()
    from avemo.serving import load_settings, run_server
    from avemo.serving.server import bind_sockets

    def given(name: str, value):  # an option left at its default does not override the --config file
        source = ctx.get_parameter_source(name)
        return None if source is None or source.name == "DEFAULT" else value

    settings = load_settings(
        config,
        host=given("host", host),
        port=given("port", port),
        workers=given("workers", workers),
        queue_size=given("queue", queue),
        max_upload_bytes=given("max_upload_mb", None if max_upload_mb is None else int(max_upload_mb * MIB)),
        max_duration=given("max_duration", max_duration),
        request_timeout=given("timeout", timeout),
        upload_dir=None if upload_dir is None else str(upload_dir),
        modalities=modalities,
        text_model=None if text_model is None else str(text_model),
        model=None if model is None else str(model),
        engine=given("engine", engine),
        device=given("device", device),
    )
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        console_err.print(f"avemo: warning: listening on {settings.host}: the service has no authentication; put it "
                          "behind a proxy that has.", markup=False, highlight=False, soft_wrap=True)
    sockets = bind_sockets(settings)  # a port in use stops serve now, not after the model has loaded
    served = escape(settings.model) if settings.model else f"the bundled model ({settings.engine} engine)"
    offered = settings.modalities.replace(",", ", ") if settings.modalities else "what it reads"
    console_err.print(f"avemo: loading {served}, then serving {offered} on "
                      f"http://{settings.host}:{settings.port}/ (Ctrl-C stops)", soft_wrap=True)
    try:
        with _options_naming_files({"--model": model, "--text-model": text_model}):
            say_if_exporting(settings.engine, settings.model)
            predictor = settings.load_predictor()
        run_server(settings, predictor=predictor, sockets=sockets)
    finally:
        for sock in sockets:
            sock.close()


def _check_serve_extra() -> None:
    """One line when the 'serve' extra's packages are missing."""
    try:
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise AvemoError(f"the web service needs the 'serve' extra ({exc.name} is missing): pip install 'avemo[serve]'") from None
