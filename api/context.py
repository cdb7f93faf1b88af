"""Per-app and per-request state: settings, the request's session, the Celery client, request parsing."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from celery import Celery
from flask import current_app, g, request
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.exceptions import BadRequest as WerkzeugBadRequest

from api.errors import BadRequest, Invalid, UnsupportedMediaType, invalid_from
from models import Settings, Tenant

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Charq:
    """What create_app puts in app.extensions["charq"]."""

    settings: Settings
    sessions: sessionmaker
    celery: Celery


def charq() -> Charq:
    return current_app.extensions["charq"]


def settings() -> Settings:
    return charq().settings


def celery() -> Celery:
    return charq().celery


def db_session() -> Session:
    """The request's session, opened on first use and closed at teardown."""
    if "db" not in g:
        g.db = charq().sessions()
    return g.db


def close_session(_exc: BaseException | None = None) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.close()


def tenant() -> Tenant:
    return g.tenant


def json_body() -> Any:
    """The parsed JSON body: 415 unless the content type is JSON, 400 if it does not parse."""
    if not request.is_json:
        raise UnsupportedMediaType("expected Content-Type: application/json",
                                   {"content_type": request.content_type})
    try:
        return request.get_json()
    except WerkzeugBadRequest:
        raise BadRequest("malformed JSON body") from None


def parse(model: type[M], data: Any, prefix: str = "", **context: Any) -> M:
    try:
        return model.model_validate(data, context=context or None)
    except ValidationError as exc:
        raise invalid_from(exc, prefix) from None


def parse_query(model: type[M], **context: Any) -> M:
    """Query-string arguments; every value arrives as a string, so models here are not strict."""
    return parse(model, request.args.to_dict(), **context)


def idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= 255:
        raise Invalid.field("Idempotency-Key", "must be 1 to 255 characters", "string_length")
    return key
