"""The web dashboard: server-rendered pages under / (pages.py), their login, session and CSRF checks.

How the browser authenticates: /login takes an API key, checks it, and keeps it in Flask's signed,
HttpOnly session cookie. Pages read the tenant from that key. Their JavaScript calls the JSON API
with `Authorization: Bearer <key>`, the key printed into the page it was served with: /v1 never
reads cookies, so another site cannot make the browser call it (no CSRF on the API by design).
Form posts to the pages carry a per-session CSRF token. With auth disabled there is no login.
"""
from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, Flask, abort, g, redirect, request, session, url_for

from api import services
from api.context import db_session, settings

bp = Blueprint("web", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static")
PUBLIC = {"web.login", "web.static"}


def init_app(app: Flask) -> None:
    from api.web import pages  # noqa: F401 - registers the routes on bp

    app.secret_key = secret_key(app.extensions["charq"].settings)
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")
    app.register_blueprint(bp)


def secret_key(s) -> str:
    """CHARQ_SECRET_KEY, else the key in data_dir/secret_key, made on first start.

    Several API processes may start at once: the file is written under a temp name and linked into
    place, so exactly one key wins and every process reads that one.
    """
    if s.secret_key:
        return s.secret_key
    path = Path(s.data_dir) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won
        finally:
            tmp.unlink()
    return path.read_text().strip()


@bp.before_request
def require_login():
    """Set g.tenant (and g.api_key) from the session; check the CSRF token of every form post."""
    if request.method == "POST":
        check_csrf()
    if request.endpoint in PUBLIC:
        return None
    if not settings().auth_enabled:
        g.tenant, g.api_key = services.ensure_default_tenant(db_session()), None
        return None
    key = session.get("api_key")
    tenant = services.authenticate(db_session(), key) if key else None
    if tenant is None:  # never logged in, or the key was revoked since
        session.pop("api_key", None)
        return redirect(url_for("web.login", next=request.full_path.rstrip("?")))
    g.tenant, g.api_key = tenant, key
    return None


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf() -> None:
    sent = request.form.get("csrf_token", "")
    if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
        abort(400, "missing or stale form token: reload the page and try again")


def safe_next(target: str | None) -> str:
    """Only a path on this site: a login must never redirect elsewhere."""
    parts = urlsplit(target or "")
    if not target or parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("web.index")
    return target


@bp.context_processor
def template_globals() -> dict:
    return {"csrf_token": csrf_token, "auth_enabled": settings().auth_enabled,
            "api_key": g.get("api_key"), "tenant": g.get("tenant")}
