"""Small helpers for tests that wait on real processes."""
from __future__ import annotations

import threading
import time
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from werkzeug.serving import make_server

FINAL = {"succeeded", "failed", "cancelled"}


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.2,
             what: str = "condition") -> Any:
    """Poll until predicate() is truthy; return its value or raise with what we waited for."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_for_job(client, url: str, headers: dict[str, str], timeout: float = 120.0,
                 statuses: set[str] = FINAL) -> dict[str, Any]:
    """GET url until the job's status is in statuses; return the job JSON."""
    def check():
        body = client.get(url, headers=headers).get_json()
        return body if body["status"] in statuses else None

    return wait_for(check, timeout=timeout, what=f"{url} to reach {sorted(statuses)}")


@contextmanager
def serve(app) -> Iterator[str]:
    """Serve a WSGI app on a free loopback port, in a thread of this process; yield its URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def new_api_key(database_url: str, key_name: str = "test") -> str:
    """The secret of a key for a fresh tenant: a test's listings then show only what it made."""
    from api.services import create_api_key
    from models import make_engine, make_sessions

    engine = make_engine(database_url)
    try:
        with make_sessions(engine)() as session:
            _, secret = create_api_key(session, f"t-{uuid.uuid4().hex[:8]}", key_name)
    finally:
        engine.dispose()
    return secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def make_test_app(settings):
    """create_app(settings) in Flask's testing mode."""
    from api import create_app

    app = create_app(settings)
    app.config["TESTING"] = True
    return app
