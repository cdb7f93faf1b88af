"""ApiError subclasses and the handlers that turn every failure into {"error": {code, message, details}}."""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, current_app, g
from pydantic import ValidationError
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, details: Any = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"

    def __init__(self, message: str, details: Any = None):
        super().__init__(message, details, {"WWW-Authenticate": 'Bearer realm="charq"'})


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class UnsupportedMediaType(ApiError):
    status, code = 415, "unsupported_media_type"


class Invalid(ApiError):
    """422; details is a list of {"field", "message", "type"}."""

    status, code = 422, "validation_error"

    @classmethod
    def field(cls, field: str, message: str, type_: str = "value_error") -> "Invalid":
        return cls(f"{field}: {message}", [{"field": field, "message": message, "type": type_}])


class Unavailable(ApiError):
    status, code = 503, "unavailable"


def error_response(status: int, code: str, message: str, details: Any = None,
                   headers: dict[str, str] | None = None):
    return {"error": {"code": code, "message": message, "details": details}}, status, headers or {}


def field_errors(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    """Pydantic errors as {"field": "hyperparameters.hidden_size", "message", "type"}."""
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        path = ".".join(str(part) for part in err["loc"])
        field = ".".join(p for p in (prefix, path) if p)
        out.append({"field": field, "message": err["msg"], "type": err["type"]})
    return out


def invalid_from(exc: ValidationError, prefix: str = "") -> Invalid:
    details = field_errors(exc, prefix)
    first = details[0]
    message = f"{first['field'] or 'body'}: {first['message']}" if details else "invalid request"
    return Invalid(message, details)


def _rollback() -> None:
    # A failed statement poisons the request's session; nothing half-done may be committed later.
    session = g.get("db")
    if session is None:
        return
    try:
        session.rollback()
    except Exception:  # the connection may be the thing that broke
        log.debug("rollback failed", exc_info=True)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def on_api_error(exc: ApiError):
        _rollback()
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.errorhandler(ValidationError)
    def on_validation_error(exc: ValidationError):
        _rollback()
        err = invalid_from(exc)
        return error_response(err.status, err.code, err.message, err.details)

    @app.errorhandler(HTTPException)
    def on_http_error(exc: HTTPException):
        _rollback()
        code = (exc.name or "error").lower().replace(" ", "_")
        headers = {}
        if getattr(exc, "valid_methods", None):
            headers["Allow"] = ", ".join(exc.valid_methods)
        message, details = exc.description or exc.name, None
        if exc.code == 413:
            limit = current_app.config["MAX_CONTENT_LENGTH"]
            message, details = f"request body larger than {limit} bytes", {"max_body_bytes": limit}
        return error_response(exc.code or 500, code, message, details, headers)

    @app.errorhandler(sa_exc.IntegrityError)
    def on_integrity_error(exc: sa_exc.IntegrityError):
        _rollback()
        log.warning("integrity error: %s", exc.orig)
        return error_response(409, "conflict", "the request conflicts with a concurrent change")

    @app.errorhandler(sa_exc.OperationalError)
    @app.errorhandler(sa_exc.InterfaceError)
    @app.errorhandler(sa_exc.TimeoutError)
    def on_database_down(exc: Exception):
        _rollback()
        log.error("database unavailable: %s", exc)
        return error_response(503, "database_unavailable", "database unavailable", None,
                              {"Retry-After": "5"})

    @app.errorhandler(Exception)
    def on_unexpected(exc: Exception):
        _rollback()
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal server error")

