"""``avemo serve``: the REST API and the web page."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from avemo.cli.app import app, console_err
from avemo.cli.files import _options_naming_files
from avemo.cli.options import _SERVE, DEVICE_HELP, ENGINE_HELP, MODEL_HELP
from avemo.cli.predict import say_if_exporting
from avemo.errors import AvemoError, ConfigError
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
    from avemo.serving import run_server
    from avemo.serving.server import bind_sockets

    settings = _settings(ctx, config, {
        "--host": ("host", host), "--port": ("port", port), "--workers": ("workers", workers),
        "--queue": ("queue_size", queue), "--max-upload-mb": ("max_upload_bytes", max_upload_mb),
        "--max-duration": ("max_duration", max_duration), "--timeout": ("request_timeout", timeout),
        "--upload-dir": ("upload_dir", upload_dir), "--modalities": ("modalities", modalities),
        "--text-model": ("text_model", text_model), "--model": ("model", model), "--engine": ("engine", engine),
        "--device": ("device", device),
    })
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


def _settings(ctx: typer.Context, config: Path | None, options: dict[str, tuple[str, object]]):
    """The serve settings of ``--config`` with the ``options`` given on the command line on top (option ->
    (settings field, value as typed); one left at its default does not override the file). A value out of
    range names the option as typed, ``--max-upload-mb must be at least 1 KiB, got 0``; one from the file
    names the file and its key."""
    from avemo.serving.settings import SettingError, load_settings, shown

    given = {option: str(value) if isinstance(value, Path) else value for option, (_, value) in options.items()
             if value is not None and (source := ctx.get_parameter_source(option.lstrip("-").replace("-", "_")))
             is not None and source.name != "DEFAULT"}
    mb = given.get("--max-upload-mb")
    if mb is not None and not math.isfinite(mb):
        raise ConfigError(f"--max-upload-mb must be a finite number of MiB, got {shown(mb)}")
    fields = {options[option][0]: int(value * MIB) if option == "--max-upload-mb" else value
              for option, value in given.items()}
    try:
        return load_settings(config, **fields)
    except SettingError as exc:
        option = next((o for o in given if options[o][0] == exc.field), None)
        if option is None:  # from the file
            raise
        raise ConfigError(f"{option} {exc.rule}, got {shown(given[option])}") from None
