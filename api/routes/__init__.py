"""Blueprints: /v1 (authenticated) holds one blueprint per resource; health checks sit outside it."""
from __future__ import annotations

from flask import Blueprint
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter

from api.auth import authenticate
from api.routes import corpora, generation_jobs, models, training_jobs
from api.schemas import MAX_ID


class IdConverter(IntegerConverter):
    """`<int:...>` in our routes: an id above MAX_ID can name no row, so it is a 404 (not a DB error).

    Raised here rather than with IntegerConverter(max=...), which makes werkzeug answer 405.
    """

    def to_python(self, value: str) -> int:
        number = super().to_python(value)
        if number > MAX_ID:
            raise NotFound(f"no resource has id {value}")
        return number


def v1_blueprint() -> Blueprint:
    v1 = Blueprint("v1", __name__, url_prefix="/v1")
    v1.before_request(authenticate)
    for module in (corpora, training_jobs, generation_jobs, models):
        v1.register_blueprint(module.bp)
    return v1
