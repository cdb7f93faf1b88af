"""A training job's live progress as Server-Sent Events, polled from the database.

Messages: `event` (an Event row; its SSE id is the row id, so Last-Event-ID resumes after it),
`sample` (a preview of the model's writing at each checkpoint, also an Event row), `progress`
(step, losses, chars/s, ETA) and `status` (the whole job, on every status change).
The stream ends after the job reaches a final state and its last events are sent.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any, Iterator

from flask import Response, request
from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from api.context import charq, close_session
from api.errors import Invalid
from api.schemas import EventOut, TrainingJobOut
from models import Event, TrainingJob

log = logging.getLogger(__name__)

POLL_S = 0.5  # how often the database is asked; each poll is one short session
KEEPALIVE_S = 10.0  # a comment line after this much silence keeps proxies from closing the stream
BATCH = 200  # events per poll at most; a backlog drains over a few polls
FINAL = {"succeeded", "failed", "cancelled"}


def wanted() -> bool:
    """Accept: text/event-stream (preferred over JSON), or ?stream=true."""
    if request.args.get("stream", "").lower() in ("1", "true", "yes"):
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/event-stream"])
    return best == "text/event-stream" and request.accept_mimetypes[best] > 0


def training_job_events(job_id: int) -> Response:
    """The response for a job the caller may read; the request's session is closed before streaming."""
    after = _last_event_id()
    sessions = charq().sessions
    close_session()  # the stream may last hours: it must hold no connection between polls
    return Response(sse(sessions, job_id, after), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _last_event_id() -> int:
    raw = request.headers.get("Last-Event-ID", "").strip()
    if not raw:
        return 0
    if not raw.isdigit() or len(raw) > 10:
        raise Invalid.field("Last-Event-ID", "must be the id of an event (digits)", "int_parsing")
    return int(raw)


def sse(sessions: sessionmaker, job_id: int, after: int, poll_s: float = POLL_S,
        keepalive_s: float = KEEPALIVE_S) -> Iterator[str]:
    yield "retry: 1000\n\n"  # also sends the headers at once
    status = progress = None
    quiet_since = time.monotonic()
    while True:
        try:
            job, events = _poll(sessions, job_id, after)
        except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError) as exc:
            log.warning("event stream of training job %s: database unavailable: %s", job_id, exc)
            job, events = None, []
        sent = False
        for event in events:
            after = event["id"]
            # A sample preview (see worker/jobs.py) gets a type of its own, so clients can pick it out.
            yield message("sample" if event["kind"] == "sample" else "event", event, event_id=after)
            sent = True
        if job is not None and job["progress"] != progress:
            progress = job["progress"]
            yield message("progress", progress)
            sent = True
        if job is not None and job["status"] != status:
            status = job["status"]
            yield message("status", job)
            sent = True
        if job is not None and status in FINAL and len(events) < BATCH:
            return
        if sent:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= keepalive_s:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        time.sleep(poll_s)


def _poll(sessions: sessionmaker, job_id: int, after: int) -> tuple[dict[str, Any], list[dict]]:
    # The job first, then its events: a final status and its closing event commit together, so
    # a final status seen here means its event is seen too.
    with sessions() as s:
        job = TrainingJobOut.of(s.get(TrainingJob, job_id)).model_dump(mode="json")
        rows = s.scalars(select(Event).where(Event.training_job_id == job_id, Event.id > after)
                         .order_by(Event.id).limit(BATCH))
        return job, [EventOut.model_validate(r).model_dump(mode="json") for r in rows]


def message(kind: str, data: dict[str, Any], event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
