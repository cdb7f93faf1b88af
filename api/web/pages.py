"""Dashboard pages: jobs, a job's loss curve, a model's generate form, corpus upload, new training.

Form posts go through the same schemas and services as /v1 (errors are shown on the form); pages
read rows directly and their JavaScript (static/charq.js) polls the JSON API for live values.
"""
from __future__ import annotations

import json
from typing import Any

from flask import flash, g, redirect, render_template, request, session, url_for
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from api import services
from api.context import celery, db_session, parse, settings
from api.errors import ApiError, Invalid
from api.schemas import GenerationJobIn, ModelOut, TrainingJobIn, TrainingJobOut
from api.web import bp, safe_next
from models import Corpus, GenerationJob, JobStatus, Sample, TrainedModel, TrainingJob

TRAIN_FIELDS = ["hidden_size", "layers", "seq_len", "batch_size", "max_steps", "learning_rate",
                "eval_every", "checkpoint_every"]
GENERATE_FIELDS = ["num_samples", "max_length", "temperature", "top_k", "top_p", "seed"]


@bp.errorhandler(ApiError)
@bp.errorhandler(HTTPException)
def error_page(exc):
    db_session().rollback()
    status = getattr(exc, "status", None) or getattr(exc, "code", 500) or 500
    message = getattr(exc, "message", None) or getattr(exc, "description", str(exc))
    return render_template("error.html", status=status, message=message), status


# --- login ----------------------------------------------------------------------------------

@bp.route("/login", methods=["GET", "POST"])
def login():
    target = safe_next(request.values.get("next"))
    if not settings().auth_enabled:
        return redirect(target)
    error = None
    if request.method == "POST":
        key = request.form.get("api_key", "").strip()
        if key and services.authenticate(db_session(), key) is not None:
            session.clear()  # a fresh session (and CSRF token) for the new identity
            session["api_key"] = key
            return redirect(target)
        error = "That API key is not valid (or was revoked). Create one with `charq keys create`."
    return render_template("login.html", error=error, next=target), 401 if error else 200


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("web.login"))


# --- jobs -----------------------------------------------------------------------------------

@bp.get("/")
def index():
    jobs, _ = services.list_owned(db_session(), TrainingJob, g.tenant, None, 50)
    models, _ = services.list_owned(db_session(), TrainedModel, g.tenant, None, 20)
    return render_template("index.html", jobs=[TrainingJobOut.of(j) for j in jobs],
                           models=[ModelOut.of(m) for m in models])


@bp.get("/jobs/<int:job_id>")
def job_page(job_id: int):
    job = services.get_owned(db_session(), TrainingJob, job_id, g.tenant)
    corpus = db_session().get(Corpus, job.corpus_id)
    return render_template("job.html", job=TrainingJobOut.of(job), corpus=corpus,
                           sample=_latest_sample(job))


def _latest_sample(job: TrainingJob) -> Sample | None:
    """The first sample of the newest succeeded generation job of this job's model, if any."""
    if job.model is None:
        return None
    latest = (select(GenerationJob.id).where(GenerationJob.model_id == job.model.id,
                                             GenerationJob.status == JobStatus.SUCCEEDED)
              .order_by(GenerationJob.id.desc()).limit(1).scalar_subquery())
    return db_session().scalar(select(Sample).where(Sample.generation_job_id == latest)
                               .order_by(Sample.index).limit(1))


@bp.post("/jobs/<int:job_id>/cancel")
def cancel(job_id: int):
    job = services.cancel_job(db_session(), TrainingJob, job_id, g.tenant)
    flash(f"Job {job.id} is {job.status.value}.")
    return redirect(url_for("web.job_page", job_id=job.id))


@bp.route("/jobs/new", methods=["GET", "POST"])
def new_job():
    corpora, _ = services.list_owned(db_session(), Corpus, g.tenant, None, 100)
    errors, form = [], request.form
    if request.method == "POST":
        try:
            body = {"corpus_id": _number(form.get("corpus_id", "")),
                    "hyperparameters": {**_numbers(form, TRAIN_FIELDS), **_more(form)}}
            if form.get("name", "").strip():
                body["name"] = form["name"].strip()
            req = parse(TrainingJobIn, body, max_runtime_s=settings().max_runtime_s)
            job, _ = services.submit_training_job(db_session(), celery(), settings(), g.tenant, req)
            return redirect(url_for("web.job_page", job_id=job.id))
        except Invalid as exc:
            errors = exc.details or [{"field": "", "message": exc.message}]
    return render_template("new_job.html", corpora=corpora, errors=errors, form=form,
                           selected=request.values.get("corpus_id", type=int)), 422 if errors else 200


# --- corpora --------------------------------------------------------------------------------

@bp.route("/corpora", methods=["GET", "POST"])
def corpora():
    errors = []
    if request.method == "POST":
        upload = request.files.get("file")
        data = upload.read() if upload is not None else b""
        data = data or request.form.get("text", "").encode("utf-8")
        name = request.form.get("name", "").strip() or (upload.filename if upload else "") or "corpus"
        try:
            corpus, _ = services.create_corpus(db_session(), settings().data_dir, g.tenant,
                                               name[:255], data, field="file")
            flash(f"Uploaded corpus {corpus.id} ({corpus.num_chars} characters).")
            return redirect(url_for("web.new_job", corpus_id=corpus.id))
        except Invalid as exc:
            errors = exc.details or [{"field": "file", "message": exc.message}]
    rows, _ = services.list_owned(db_session(), Corpus, g.tenant, None, 100)
    return render_template("corpora.html", corpora=rows, errors=errors), 422 if errors else 200


# --- models ---------------------------------------------------------------------------------

@bp.get("/models/<int:model_id>")
def model_page(model_id: int, errors: list | None = None, status: int = 200):
    model = services.get_owned(db_session(), TrainedModel, model_id, g.tenant)
    recent = db_session().scalars(select(GenerationJob).where(GenerationJob.model_id == model.id)
                                  .order_by(GenerationJob.id.desc()).limit(10)).all()
    generation = request.args.get("generation", type=int)
    if generation is not None:
        generation = services.get_owned(db_session(), GenerationJob, generation, g.tenant)
    samples = generation.samples if generation is not None else []
    return render_template("model.html", model=ModelOut.of(model), recent=recent,
                           generation=generation, samples=samples, errors=errors or [],
                           form=request.form), status


@bp.post("/models/<int:model_id>/generate")
def generate(model_id: int):
    form = request.form
    try:
        body = {"model_id": model_id, "prompt": form.get("prompt", ""),
                **_numbers(form, GENERATE_FIELDS)}
        job, _ = services.submit_generation_job(db_session(), celery(), settings(), g.tenant,
                                                parse(GenerationJobIn, body))
    except Invalid as exc:
        return model_page(model_id, exc.details or [{"field": "", "message": exc.message}], 422)
    return redirect(url_for("web.model_page", model_id=model_id, generation=job.id))


# --- form values ----------------------------------------------------------------------------

def _number(raw: str) -> Any:
    """"64" -> 64, "0.5" -> 0.5; anything else stays a string for the schema to reject by name."""
    raw = raw.strip()
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def _numbers(form, names: list[str]) -> dict[str, Any]:
    """The filled-in fields among names; an empty field means "the default"."""
    return {name: _number(form[name]) for name in names if form.get(name, "").strip()}


def _more(form) -> dict[str, Any]:
    """The "more hyperparameters" box: a JSON object merged over the fields above."""
    raw = form.get("more", "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise Invalid.field("more", f"not valid JSON: {exc.msg}", "json_invalid") from None
    if not isinstance(value, dict):
        raise Invalid.field("more", "must be a JSON object", "dict_type")
    return value
