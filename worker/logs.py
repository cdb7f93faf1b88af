"""Worker log lines: text or JSON lines (Settings.log_format), each carrying the id of the job it ran for.

Nothing here runs at import: worker/main.py connects `connect_signals()` and Celery calls the
handlers once it has set up its own logging (after_setup_logger / after_setup_task_logger).
"""
from __future__ import annotations

import logging
from contextvars import ContextVar

from celery.signals import after_setup_logger, after_setup_task_logger, task_postrun, task_prerun
from pythonjsonlogger.json import JsonFormatter

from worker.celery_app import GENERATE_TASK, TRAIN_TASK

FORMATS = ("text", "json")
# The job of the task running in this process (solo pool: one at a time; threads pool: per thread,
# since Celery runs each task in its own context).
_job: ContextVar[tuple[str, int] | None] = ContextVar("charq_job", default=None)
JOB_KIND = {TRAIN_TASK: "training", GENERATE_TASK: "generation"}


class JobFilter(logging.Filter):
    """Adds job_id and job_kind to every record logged while a job's task runs (None outside)."""

    def filter(self, record: logging.LogRecord) -> bool:
        job = _job.get()
        record.job_kind, record.job_id = job if job else (None, None)
        return True


def json_formatter() -> logging.Formatter:
    return JsonFormatter("%(asctime)s %(levelname)s %(name)s %(processName)s %(message)s",
                         rename_fields={"asctime": "time", "levelname": "level", "name": "logger",
                                        "processName": "process"},
                         timestamp=False)


def configure(logger: logging.Logger, log_format: str) -> None:
    """Put the job filter on the logger's handlers and, for "json", the JSON formatter."""
    if log_format not in FORMATS:
        raise ValueError(f"CHARQ_LOG_FORMAT must be one of {', '.join(FORMATS)}, not {log_format!r}")
    for handler in logger.handlers:
        # On the handler, not the logger: records propagated from worker.jobs etc. pass it too.
        if not any(isinstance(f, JobFilter) for f in handler.filters):
            handler.addFilter(JobFilter())
        if log_format == "json":
            handler.setFormatter(json_formatter())


def connect_signals(celery) -> None:
    """Called once by the worker entry point (worker/main.py)."""
    log_format = celery.conf.charq_settings.log_format

    def on_logger_setup(logger: logging.Logger, **_kwargs) -> None:
        configure(logger, log_format)

    def on_task_start(task=None, args=None, kwargs=None, **_kwargs) -> None:
        kind = JOB_KIND.get(getattr(task, "name", None))
        job_id = (args or [None])[0] if args else (kwargs or {}).get("job_id")
        _job.set((kind, job_id) if kind and job_id is not None else None)

    def on_task_end(**_kwargs) -> None:
        _job.set(None)

    # weak=False: the handlers are closures that nothing else keeps alive.
    after_setup_logger.connect(on_logger_setup, weak=False)
    after_setup_task_logger.connect(on_logger_setup, weak=False)
    task_prerun.connect(on_task_start, weak=False)
    task_postrun.connect(on_task_end, weak=False)
