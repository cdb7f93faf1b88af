"""GET /openapi.json (OpenAPI 3.1) and the Swagger UI at /docs, both served by the app itself.

Schemas come from pydantic (the classes that validate requests); apispec assembles the document:
paths from the URL map, each operation from its CONTRACTS entry below.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from apispec import APISpec
from flask import Blueprint, Flask, current_app
from flask_swagger_ui import get_swaggerui_blueprint
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api import schemas

bp = Blueprint("openapi", __name__)


@dataclass(frozen=True)
class Contract:
    out: type[BaseModel] | None = None  # response body; of each item when `page`
    status: int = 200
    body: type[BaseModel] | None = None  # JSON request body
    query: type[BaseModel] | None = None
    page: bool = False  # the list shape {"object": "list", "data": [...], ...}
    errors: tuple[int, ...] = ()  # beyond those every /v1 route or argument implies
    also: tuple[int, ...] = ()  # other statuses answering the same body as `status`
    extra: dict[str, Any] | None = None  # operation fields merged in last (other media types)


GZIP = {"200": {"description": "the checkpoint as .tar.gz (safetensors + JSON)", "content": {
    "application/gzip": {"schema": {"type": "string", "format": "binary"}}}}}
JSONL = {"application/x-ndjson": {"schema": {"type": "string"}}}  # ?format=jsonl
SSE = {"text/event-stream": {"schema": {"type": "string"}}}  # Accept: text/event-stream
MULTIPART = {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary"}, "name": {"type": "string"}}}}}
STREAM_PARAMS = [
    {"name": "stream", "in": "query", "required": False, "schema": {"type": "boolean"},
     "description": "true: Server-Sent Events (event, progress, status) until the job ends"},
    {"name": "Last-Event-ID", "in": "header", "required": False,
     "schema": {"type": "string", "pattern": "^[0-9]{1,10}$"}, "description": "stream: resume after this event"},
]

CONTRACTS: dict[str, Contract] = {
    "health.healthz": Contract(schemas.HealthOut),
    "health.readyz": Contract(schemas.HealthOut, also=(503,)),
    "v1.corpora.create_corpus": Contract(schemas.CorpusOut, 201, schemas.CorpusIn, errors=(409,),
                                         extra={"multipart": MULTIPART}),
    "v1.corpora.list_corpora": Contract(schemas.CorpusOut, query=schemas.PageQuery, page=True),
    "v1.corpora.get_corpus": Contract(schemas.CorpusOut),
    "v1.corpora.delete_corpus": Contract(None, 204, errors=(409,)),
    "v1.training_jobs.create_training_job": Contract(schemas.TrainingJobOut, 202,
                                                     schemas.TrainingJobIn, errors=(404, 409)),
    "v1.training_jobs.list_training_jobs": Contract(schemas.TrainingJobOut,
                                                    query=schemas.JobPageQuery, page=True),
    "v1.training_jobs.get_training_job": Contract(schemas.TrainingJobOut),
    "v1.training_jobs.cancel_training_job": Contract(schemas.TrainingJobOut, errors=(409,),
                                                     also=(202,)),
    "v1.training_jobs.list_metrics": Contract(schemas.MetricOut, page=True),
    "v1.training_jobs.list_events": Contract(schemas.EventOut, page=True,
                                             extra={"stream": SSE}),
    "v1.training_jobs.list_checkpoints": Contract(schemas.CheckpointOut, page=True),
    "v1.generation_jobs.create_generation_job": Contract(
        schemas.GenerationJobOut, 202, schemas.GenerationJobIn, errors=(404, 409)),
    "v1.generation_jobs.list_generation_jobs": Contract(schemas.GenerationJobOut,
                                                        query=schemas.JobPageQuery, page=True),
    "v1.generation_jobs.get_generation_job": Contract(schemas.GenerationJobOut),
    "v1.generation_jobs.cancel_generation_job": Contract(schemas.GenerationJobOut, errors=(409,),
                                                         also=(202,)),
    "v1.generation_jobs.list_events": Contract(schemas.EventOut, page=True),
    "v1.generation_jobs.list_samples": Contract(schemas.SampleOut, query=schemas.SamplePageQuery,
                                                page=True, extra={"jsonl": JSONL}),
    "v1.models.list_models": Contract(schemas.ModelOut, query=schemas.PageQuery, page=True),
    "v1.models.get_model": Contract(schemas.ModelOut),
    "v1.models.download_checkpoint": Contract(extra={"responses": GZIP}),
}

ERRORS = {400: "malformed request", 401: "missing, invalid or revoked API key",
          404: "no such resource (or not this tenant's)", 409: "conflicts with the current state",
          413: "request body too large", 415: "unsupported Content-Type",
          422: "validation failed: details names each field", 503: "database or broker down"}


def register_docs(app: Flask) -> None:
    """/openapi.json, and /docs: Swagger UI from the flask-swagger-ui wheel (no CDN)."""
    app.register_blueprint(bp)
    app.register_blueprint(get_swaggerui_blueprint(
        "/docs", "/openapi.json", config={"app_name": "charq API", "persistAuthorization": True}))


@bp.get("/openapi.json")
def openapi():
    return build_spec(current_app)


def build_spec(app: Flask) -> dict[str, Any]:
    spec = APISpec(title="charq", version="1", openapi_version="3.1.0", info={
        "description": "Train character-level LSTMs on your text and sample from them. "
                       "Every /v1 request needs `Authorization: Bearer <key>` (`charq keys create`)."})
    refs = _add_schemas(spec)
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint not in CONTRACTS and not rule.rule.startswith("/v1"):
            continue  # /openapi.json, /docs and whatever else is not part of the API
        path = rule.rule.replace("<int:", "{").replace("<", "{").replace(">", "}")
        operations = {method.lower(): _operation(app, rule, refs)
                      for method in sorted(rule.methods - {"HEAD", "OPTIONS"})}
        spec.path(path=path, operations=operations)
    doc = spec.to_dict()
    doc["security"] = [{"bearer": []}]
    return doc


def _add_schemas(spec: APISpec) -> dict[type[BaseModel], dict[str, str]]:
    models = {m for c in CONTRACTS.values() for m in (c.out, c.body, c.query) if m is not None}
    models.add(schemas.ErrorOut)
    # Request classes as they validate, response classes as they serialize.
    modes = [(m, "validation" if m in _inputs() else "serialization") for m in models]
    refs, defs = models_json_schema(sorted(modes, key=lambda x: x[0].__name__),
                                    ref_template="#/components/schemas/{model}")
    for name, schema in defs.get("$defs", {}).items():
        spec.components.schema(name, schema)
    return {model: refs[(model, mode)] for model, mode in modes}


def _inputs() -> set[type[BaseModel]]:
    return {m for c in CONTRACTS.values() for m in (c.body, c.query) if m is not None}


def _operation(app: Flask, rule, refs: dict) -> dict[str, Any]:
    c = CONTRACTS.get(rule.endpoint, Contract())
    doc = inspect.getdoc(app.view_functions[rule.endpoint]) or rule.endpoint.split(".")[-1]
    op: dict[str, Any] = {"operationId": rule.endpoint.replace(".", "_"),
                          "summary": doc.splitlines()[0].replace("_", " "),
                          "tags": [rule.endpoint.split(".")[-2]], "parameters": []}
    for arg in sorted(rule.arguments):
        op["parameters"].append({"name": arg, "in": "path", "required": True,
                                 "schema": {"type": "integer", "minimum": 1,
                                            "maximum": schemas.MAX_ID}})
    if c.query is not None:
        op["parameters"] += _query_parameters(c.query)
    errors = set(c.errors) | ({404} if rule.arguments else set())
    if rule.rule.startswith("/v1"):
        errors |= {401, 503}
    else:
        op["security"] = []
    if c.query is not None:
        errors.add(422)
    extra = c.extra or {}
    if c.body is not None:
        examples = c.body.model_json_schema().get("examples", [])
        content = {"application/json": {"schema": refs[c.body], **(
                       {"example": examples[0]} if examples else {})},
                   **extra.get("multipart", {})}
        op["requestBody"] = {"required": True, "content": content}
        op["parameters"].append({"name": "Idempotency-Key", "in": "header", "required": False,
                                 "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                                 "description": "a retried POST with the same key returns the "
                                                "first result"})
        errors |= {400, 413, 415, 422}
    if "stream" in extra:
        op["parameters"] += STREAM_PARAMS
    success = _success(c, refs, extra)
    op["responses"] = {**{str(s): success for s in (c.status, *c.also)}, **_errors(errors, refs)}
    op["responses"].update(extra.get("responses", {}))
    if not op["parameters"]:
        del op["parameters"]
    return op


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    required = set(schema.get("required", []))
    return [{"name": name, "in": "query", "required": name in required, "schema": prop}
            for name, prop in schema["properties"].items()]


def _success(c: Contract, refs: dict, extra: dict[str, Any]) -> dict[str, Any]:
    if c.out is None:
        return {"description": "done" if c.status == 204 else "ok"}
    schema = refs[c.out]
    if c.page:
        schema = {"type": "object", "required": ["object", "data"], "properties": {
            "object": {"const": "list"}, "data": {"type": "array", "items": schema},
            "has_more": {"type": "boolean"},
            "first_id": {"type": ["integer", "null"]}, "last_id": {"type": ["integer", "null"]}}}
    content = {"application/json": {"schema": schema}, **extra.get("jsonl", {}),
               **extra.get("stream", {})}
    return {"description": "ok", "content": content}


def _errors(statuses: set[int], refs: dict) -> dict[str, Any]:
    ref = refs[schemas.ErrorOut]
    return {str(s): {"description": ERRORS[s], "content": {"application/json": {"schema": ref}}}
            for s in sorted(statuses)}
