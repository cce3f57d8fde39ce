"""The prediction service: a REST API (FastAPI) and a web page, started by ``avemo serve``.

``create_app(predictor=None, settings=None)`` builds the application; ``ServeSettings`` holds its
limits; ``run_server`` serves it with uvicorn. Needs the ``serve`` extra (fastapi, uvicorn,
python-multipart).
"""

from avemo.serving.settings import ServeSettings, load_settings

__all__ = ["ServeSettings", "create_app", "load_settings", "run_server", "BackgroundServer"]


def __getattr__(name: str):
    # fastapi/uvicorn are imported only when the app is really built
    if name == "create_app":
        from avemo.serving.app import create_app

        return create_app
    if name in ("run_server", "BackgroundServer"):
        from avemo.serving import server

        return getattr(server, name)
    raise AttributeError(f"module 'avemo.serving' has no attribute {name!r}")
