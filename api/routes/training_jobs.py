"""/v1/training-jobs: submit, list, get, cancel, and the job's metrics, events and checkpoints."""
from __future__ import annotations

from flask import Blueprint

from api import event_stream, services
from api.context import (celery, db_session, idempotency_key, json_body, parse, parse_query,
                         settings, tenant)
from api.responses import one, page_body
from api.schemas import (CheckpointOut, EventOut, JobPageQuery, MetricOut, TrainingJobIn,
                         TrainingJobOut)
from models import Checkpoint, Event, TrainingJob, TrainingMetric

bp = Blueprint("training_jobs", __name__, url_prefix="/training-jobs")


@bp.post("")
def create_training_job():
    req = parse(TrainingJobIn, json_body(), max_runtime_s=settings().max_runtime_s)
    job, _ = services.submit_training_job(db_session(), celery(), settings(), tenant(), req,
                                          idempotency_key())
    return one(TrainingJobOut.of(job)), 202, {"Location": f"/v1/training-jobs/{job.id}"}


@bp.get("")
def list_training_jobs():
    q = parse_query(JobPageQuery, page_size_max=settings().page_size_max)
    where = [TrainingJob.status == q.status] if q.status else []
    jobs, more = services.list_owned(db_session(), TrainingJob, tenant(), q.after, q.limit, *where)
    return page_body([TrainingJobOut.of(job) for job in jobs], more)


@bp.get("/<int:job_id>")
def get_training_job(job_id: int):
    return one(TrainingJobOut.of(_job(job_id)))


@bp.post("/<int:job_id>/cancel")
def cancel_training_job(job_id: int):
    job = services.cancel_job(db_session(), TrainingJob, job_id, tenant())
    return one(TrainingJobOut.of(job)), 202 if job.status == "cancelling" else 200


@bp.get("/<int:job_id>/metrics")
def list_metrics(job_id: int):
    rows = services.children(db_session(), TrainingMetric.training_job_id, _job(job_id).id,
                             TrainingMetric.step)
    return {"object": "list", "data": [one(MetricOut.model_validate(r)) for r in rows]}


@bp.get("/<int:job_id>/events")
def list_events(job_id: int):
    """The job's events: a JSON list, or live Server-Sent Events (Accept: text/event-stream)."""
    job = _job(job_id)
    if event_stream.wanted():
        return event_stream.training_job_events(job.id)
    rows = services.children(db_session(), Event.training_job_id, job.id, Event.id)
    return {"object": "list", "data": [one(EventOut.model_validate(r)) for r in rows]}


@bp.get("/<int:job_id>/checkpoints")
def list_checkpoints(job_id: int):
    rows = services.children(db_session(), Checkpoint.training_job_id, _job(job_id).id,
                             Checkpoint.step)
    return {"object": "list", "data": [one(CheckpointOut.model_validate(r)) for r in rows]}


def _job(job_id: int) -> TrainingJob:
    return services.get_owned(db_session(), TrainingJob, job_id, tenant())
