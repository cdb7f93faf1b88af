"""The worker's database access: one engine per URL, created lazily in the process that uses it.

Nothing connects at import; `forget_engines()` runs in each forked pool child (worker_process_init)
so a child never shares a connection pool with its parent.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, TypeVar

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker

from models import Settings, make_engine, make_sessions

log = logging.getLogger(__name__)
T = TypeVar("T")

_sessions: dict[str, sessionmaker] = {}
_lock = threading.Lock()


def sessions_for(settings: Settings) -> sessionmaker:
    url = settings.database
    with _lock:  # --pool=threads: two first jobs must not build two engines
        if url not in _sessions:
            _sessions[url] = make_sessions(make_engine(url))
        return _sessions[url]


def forget_engines() -> None:
    """Drop inherited engines without closing the parent's connections (they are the parent's)."""
    for factory in _sessions.values():
        factory.kw["bind"].dispose(close=False)
    _sessions.clear()


def retry(fn: Callable[[], T], what: str, timeout_s: float = 300.0, first_delay_s: float = 0.5) -> T:
    """Call fn() until it stops raising OperationalError (database down, locked, failed over).

    Each try is its own transaction, so a retry never sees half of an earlier one.
    """
    deadline = time.monotonic() + timeout_s
    delay = first_delay_s
    while True:
        try:
            return fn()
        except OperationalError as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("%s: database error, retrying in %.1fs: %s", what, delay, exc.orig or exc)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
