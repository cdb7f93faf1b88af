"""/v1/generation-jobs: submit, list, get, cancel, and the samples (JSON pages or JSON Lines)."""
from __future__ import annotations

from flask import Blueprint

from api import services
from api.context import (celery, db_session, idempotency_key, json_body, parse, parse_query,
                         settings, tenant)
from api.responses import jsonl, one, page_body
from api.schemas import (EventOut, GenerationJobIn, GenerationJobOut, JobPageQuery,
                         SampleOut, SamplePageQuery)
from models import Event, GenerationJob

bp = Blueprint("generation_jobs", __name__, url_prefix="/generation-jobs")


@bp.post("")
def create_generation_job():
    req = parse(GenerationJobIn, json_body())
    job, _ = services.submit_generation_job(db_session(), celery(), settings(), tenant(), req,
                                            idempotency_key())
    return _out(job), 202, {"Location": f"/v1/generation-jobs/{job.id}"}


@bp.get("")
def list_generation_jobs():
    q = parse_query(JobPageQuery, page_size_max=settings().page_size_max)
    where = [GenerationJob.status == q.status] if q.status else []
    jobs, more = services.list_owned(db_session(), GenerationJob, tenant(), q.after, q.limit,
                                     *where)
    return page_body([_view(job) for job in jobs], more)


@bp.get("/<int:job_id>")
def get_generation_job(job_id: int):
    return _out(_job(job_id))


@bp.post("/<int:job_id>/cancel")
def cancel_generation_job(job_id: int):
    job = services.cancel_job(db_session(), GenerationJob, job_id, tenant())
    return _out(job), 202 if job.status == "cancelling" else 200


@bp.get("/<int:job_id>/events")
def list_events(job_id: int):
    rows = services.children(db_session(), Event.generation_job_id, _job(job_id).id, Event.id)
    return {"object": "list", "data": [one(EventOut.model_validate(r)) for r in rows]}


@bp.get("/<int:job_id>/samples")
def list_samples(job_id: int):
    """Whatever samples exist so far, with the job's status: a running job's list only grows."""
    job = _job(job_id)
    q = parse_query(SamplePageQuery, page_size_max=settings().page_size_max)
    if q.format == "jsonl":
        rows = services.iter_samples(db_session(), job.id)
        return jsonl((one(SampleOut.model_validate(r)) for r in rows), f"samples-{job.id}.jsonl")
    rows, more = services.sample_page(db_session(), job.id, q.after, q.limit)
    body = page_body([SampleOut.model_validate(r) for r in rows], more, cursor="index")
    return {**body, "samples": body["data"], "status": job.status.value}


def _job(job_id: int) -> GenerationJob:
    return services.get_owned(db_session(), GenerationJob, job_id, tenant())


def _view(job: GenerationJob) -> GenerationJobOut:
    return GenerationJobOut.of(job, services.count_samples(db_session(), job.id))


def _out(job: GenerationJob) -> dict:
    return one(_view(job))
