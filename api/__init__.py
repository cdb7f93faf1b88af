"""The charq REST API. `create_app(settings=None)` builds the Flask app; serve it with
`gunicorn 'api:create_app()'` or `flask --app api run`. Building it connects to nothing."""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from api import metrics, web
from api.context import Charq, close_session
from api.errors import register_error_handlers
from api.openapi import register_docs
from api.routes import IdConverter, health, v1_blueprint
from models import Settings, make_engine, make_sessions
from worker.celery_app import create_celery

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__, static_folder=None)
    app.config.update(MAX_CONTENT_LENGTH=settings.max_body_bytes)
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    engine = make_engine(settings.database, **_engine_options(settings))
    app.extensions["charq"] = Charq(settings, make_sessions(engine), create_celery(settings))
    register_error_handlers(app)
    app.url_map.converters["int"] = IdConverter  # before any route is added
    app.register_blueprint(health.bp)
    register_docs(app)
    app.register_blueprint(v1_blueprint())
    metrics.init_app(app)  # GET /metrics and request latency
    web.init_app(app)  # the dashboard under /
    app.teardown_appcontext(close_session)
    if not settings.auth_enabled:
        log.warning("AUTHENTICATION IS DISABLED (CHARQ_AUTH_ENABLED=false): anyone who can reach "
                    "this API acts as tenant 'default'. Never expose it beyond localhost.")
    return app


def _engine_options(settings: Settings) -> dict[str, Any]:
    if settings.database.startswith("postgresql"):
        # libpq counts whole seconds, at least 2.
        return {"connect_args": {"connect_timeout": max(2, round(settings.connect_timeout_s))}}
    return {}
