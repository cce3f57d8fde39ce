"""Serving the app with uvicorn: in the foreground (``avemo serve``) or in a background thread.

:class:`BackgroundServer` runs a real uvicorn server on a loopback port in a thread of the current
process, for the browser and contract tests and for scripts; ``port=0`` picks a free port.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from typing import Any

import uvicorn

from avemo.errors import ConfigError
from avemo.serving.app import create_app
from avemo.serving.settings import ServeSettings

log = logging.getLogger("avemo.serving")


def _config(app, settings: ServeSettings, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        lifespan="on",
        timeout_keep_alive=5,
        timeout_graceful_shutdown=settings.shutdown_grace,
        server_header=False,
    )


def bind_sockets(settings: ServeSettings) -> list[socket.socket]:
    """Sockets bound to ``settings``' host and port, for :func:`run_server`: one per address the host
    has (``localhost``: 127.0.0.1 and ::1), as uvicorn's own start binds them (asyncio's
    ``create_server``). ``avemo serve`` binds them before the model loads, so that a port in use (or
    a host that is not this machine's) stops it at once with one line (a ConfigError), not after the
    load with uvicorn's log and exit code 3."""
    where = f"{settings.host}:{settings.port}"
    try:
        infos = socket.getaddrinfo(settings.host, settings.port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0,
                                   socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {where}: unknown host ({exc.strerror})") from None
    sockets: list[socket.socket] = []
    for family, kind, proto, _, address in dict.fromkeys(infos):
        try:
            sock = socket.socket(family, kind, proto)
        except OSError:  # a family this machine lacks (IPv6 off): skipped, as asyncio does
            continue
        sockets.append(sock)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio does: a port in TIME_WAIT is free
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # its IPv4 address has a socket of its own
        try:
            sock.bind(address)
        except OSError as exc:
            for other in sockets:
                other.close()
            hint = "; another server listens there: choose another port" if exc.errno == errno.EADDRINUSE else ""
            raise ConfigError(f"cannot listen on {where}: {exc.strerror or exc}{hint}") from None
    return sockets


def run_server(settings: ServeSettings | None = None, predictor: Any = None, log_level: str = "info",
               sockets: list[socket.socket] | None = None) -> None:
    """Load the predictor, build the app and serve it until interrupted (Ctrl-C), on ``sockets``
    (default: :func:`bind_sockets` of the settings)."""
    settings = settings or ServeSettings()
    sockets = sockets or bind_sockets(settings)
    app = create_app(predictor=predictor, settings=settings)
    uvicorn.Server(_config(app, settings, log_level)).run(sockets=sockets)


class BackgroundServer:
    """``with BackgroundServer(app, settings) as server: httpx.get(server.url + "/healthz")``."""

    def __init__(self, app, settings: ServeSettings | None = None, log_level: str = "warning"):
        self.settings = settings or app.state.settings
        self.app = app
        self.log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def __enter__(self) -> BackgroundServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.settings.host, self.settings.port))
        host, port = sock.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        self._server = uvicorn.Server(_config(self.app, self.settings, self.log_level))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="avemo-uvicorn", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the background server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
