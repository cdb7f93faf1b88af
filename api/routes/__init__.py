"""Blueprints: /v1 (authenticated) holds one blueprint per resource; health checks sit outside it."""
from __future__ import annotations

from flask import Blueprint

from api.auth import authenticate
from api.routes import corpora, generation_jobs, models, training_jobs


def v1_blueprint() -> Blueprint:
    v1 = Blueprint("v1", __name__, url_prefix="/v1")
    v1.before_request(authenticate)
    for module in (corpora, training_jobs, generation_jobs, models):
        v1.register_blueprint(module.bp)
    return v1
