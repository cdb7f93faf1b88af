"""Bearer-key authentication for /v1: sets g.tenant, or answers 401 with WWW-Authenticate."""
from __future__ import annotations

from flask import current_app, g, request

from api import services
from api.context import charq, db_session
from api.errors import Unauthorized


def authenticate() -> None:
    """before_request of the /v1 blueprint."""
    if not charq().settings.auth_enabled:
        g.tenant = _default_tenant()
        return
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized("missing API key: send Authorization: Bearer <key>")
    tenant = services.authenticate(db_session(), secret.strip())
    if tenant is None:
        raise Unauthorized("invalid or revoked API key")
    g.tenant = tenant


def _default_tenant():
    # Looked up on first use, not in create_app: building the app never connects.
    state = current_app.extensions.setdefault("charq_default_tenant", {})
    session = db_session()
    if "id" not in state:
        state["id"] = services.ensure_default_tenant(session).id
    return session.get(services.Tenant, state["id"])
