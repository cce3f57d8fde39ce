"""Errors as JSON: every failed request is answered with ``{"error": {"status", "code", "message"}}``.

:class:`ApiError` is what the service's own code raises; the app factory turns it, FastAPI's
validation errors, Starlette's HTTP errors, :class:`~avemo.errors.AvemoError` and any unexpected
exception into this one JSON shape. The message is one line written for the user; stack traces
go to the server log only.
"""

from __future__ import annotations

from http import HTTPStatus

from fastapi.responses import JSONResponse


class ApiError(Exception):
    """A request that cannot be served: an HTTP status, a stable machine-readable code, a one-line message."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = int(status)
        self.code = code
        self.message = " ".join(str(message).split())
        self.headers = headers or {}

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


def error_body(status: int, code: str, message: str) -> dict:
    return {"error": {"status": int(status), "code": code, "message": " ".join(str(message).split())}}


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error_body(error.status, error.code, error.message), status_code=error.status,
                        headers=error.headers)


def status_code_name(status: int) -> str:
    """``404`` -> ``"not_found"``: the code used for plain HTTP errors."""
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "http_error"
