"""Settings: one frozen dataclass read from CHARQ_* environment variables once and passed down.

With nothing set, charq runs embedded: SQLite and a SQLAlchemy-backed Celery broker under ./var.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Settings:
    # Empty URLs mean "embedded under data_dir" (see the properties below).
    database_url: str = ""
    broker_url: str = ""
    data_dir: Path = Path("var")
    device: str = "auto"  # "auto" picks cuda, then cpu
    # API limits
    max_body_bytes: int = 64 * 1024 * 1024  # request bodies, corpus uploads included (413 above)
    page_size_max: int = 100
    connect_timeout_s: float = 5.0  # the API's database connects and /readyz's broker check
    # Jobs
    lease_s: float = 60.0  # a running job's lease; renewed by its heartbeat
    sweep_interval_s: float = 30.0  # how often stale leases and unsent queued jobs are re-enqueued
    progress_interval_s: float = 2.0  # minimum seconds between progress writes to a job row
    max_attempts: int = 3  # tries before a job that keeps killing its workers is failed
    max_runtime_s: float = 24 * 3600.0  # server-wide cap on one job's runtime
    model_cache_size: int = 4  # trained models a generation worker keeps in memory
    # Celery: redelivery of an unacked message after this long (Redis transports only)
    visibility_timeout_s: int = 3600
    # Every /v1 request needs `Authorization: Bearer <key>`; turning it off is logged loudly.
    auth_enabled: bool = True
    # Signs the dashboard's session cookie. Empty: generated once, kept in data_dir/secret_key.
    secret_key: str = ""
    # Worker log lines: "text" for people, "json" for log shippers (one object a line, with job_id).
    log_format: str = "text"

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'charq.db').resolve()}"

    @property
    def broker(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{(self.data_dir / 'broker.db').resolve()}"

    @property
    def embedded(self) -> bool:
        return self.database.startswith("sqlite")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> "Settings":
        """Read CHARQ_<FIELD> for every field (CHARQ_DATABASE_URL, CHARQ_LEASE_S, ...)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"CHARQ_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(raw, type(getattr(cls, f.name)))
        return replace(cls(**values), **overrides)

    def to_env(self) -> dict[str, str]:
        """The CHARQ_* variables that reproduce these settings in a child process."""
        return {f"CHARQ_{f.name.upper()}": str(getattr(self, f.name)) for f in fields(self)}


def _parse(raw: str, kind: type) -> Any:
    if kind is bool:
        if raw.lower() not in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
            raise ValueError(f"expected a boolean, got {raw!r}")
        return raw.lower() in {"1", "true", "yes", "on"}
    return kind(raw)
