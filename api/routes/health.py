"""/healthz (the process answers) and /readyz (the database and the broker answer); no auth."""
from __future__ import annotations

import logging

from flask import Blueprint
from sqlalchemy import text

from api.context import charq

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    checks = {"database": _check(_database), "broker": _check(_broker)}
    ready = all(v == "ok" for v in checks.values())
    return {"status": "ok" if ready else "unavailable", "checks": checks}, 200 if ready else 503


def _check(probe) -> str:
    try:
        probe()
        return "ok"
    except Exception as exc:  # any failure means "not ready", never a 500
        log.warning("readiness check %s failed: %s", probe.__name__, exc)
        return f"unavailable: {type(exc).__name__}"


def _database() -> None:
    with charq().sessions() as session:
        session.execute(text("SELECT 1"))


def _broker() -> None:
    timeout = charq().settings.connect_timeout_s
    with charq().celery.connection_for_read() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
