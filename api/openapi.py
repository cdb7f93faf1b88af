"""GET /openapi.json: the routes from the URL map, bodies and responses from schemas.py."""
from __future__ import annotations

import inspect
from typing import Any

from flask import Blueprint, current_app
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api import schemas

bp = Blueprint("openapi", __name__)

# endpoint -> (request body schema, response schema, status); lists wrap the response in `data`.
CONTRACTS: dict[str, tuple[type[BaseModel] | None, type[BaseModel] | None, int]] = {
    "v1.corpora.create_corpus": (schemas.CorpusIn, schemas.CorpusOut, 201),
    "v1.corpora.list_corpora": (None, schemas.CorpusOut, 200),
    "v1.corpora.get_corpus": (None, schemas.CorpusOut, 200),
    "v1.corpora.delete_corpus": (None, None, 204),
    "v1.training_jobs.create_training_job": (schemas.TrainingJobIn, schemas.TrainingJobOut, 202),
    "v1.training_jobs.list_training_jobs": (None, schemas.TrainingJobOut, 200),
    "v1.training_jobs.get_training_job": (None, schemas.TrainingJobOut, 200),
    "v1.training_jobs.cancel_training_job": (None, schemas.TrainingJobOut, 200),
    "v1.training_jobs.list_metrics": (None, schemas.MetricOut, 200),
    "v1.training_jobs.list_events": (None, schemas.EventOut, 200),
    "v1.training_jobs.list_checkpoints": (None, schemas.CheckpointOut, 200),
    "v1.generation_jobs.create_generation_job": (schemas.GenerationJobIn,
                                                 schemas.GenerationJobOut, 202),
    "v1.generation_jobs.list_generation_jobs": (None, schemas.GenerationJobOut, 200),
    "v1.generation_jobs.get_generation_job": (None, schemas.GenerationJobOut, 200),
    "v1.generation_jobs.cancel_generation_job": (None, schemas.GenerationJobOut, 200),
    "v1.generation_jobs.list_events": (None, schemas.EventOut, 200),
    "v1.generation_jobs.list_samples": (None, schemas.SampleOut, 200),
    "v1.models.list_models": (None, schemas.ModelOut, 200),
    "v1.models.get_model": (None, schemas.ModelOut, 200),
}


@bp.get("/openapi.json")
def openapi():
    return build_spec()


def build_spec() -> dict[str, Any]:
    models = {m for contract in CONTRACTS.values() for m in contract[:2] if m is not None}
    refs, defs = models_json_schema([(m, "validation" if m.__name__.endswith("In") else
                                      "serialization") for m in models],
                                    ref_template="#/components/schemas/{model}")
    paths: dict[str, dict[str, Any]] = {}
    for rule in current_app.url_map.iter_rules():
        if rule.endpoint == "openapi.openapi":
            continue
        path = rule.rule.replace("<int:", "{").replace("<", "{").replace(">", "}")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            op = _operation(rule.endpoint, refs, method)
            paths.setdefault(path, {})[method.lower()] = op
    return {"openapi": "3.1.0", "info": {"title": "charq", "version": "1"}, "paths": paths,
            "components": {"schemas": defs.get("$defs", {}),
                           "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearer": []}]}


def _operation(endpoint: str, refs: dict, method: str) -> dict[str, Any]:
    view = current_app.view_functions[endpoint]
    body, out, status = CONTRACTS.get(endpoint, (None, None, 200))
    op: dict[str, Any] = {"operationId": endpoint.replace(".", "_"),
                          "summary": (inspect.getdoc(view) or endpoint).splitlines()[0]}
    if body is not None:
        op["requestBody"] = {"content": {"application/json": {
            "schema": refs[(body, "validation")]}}}
    response: dict[str, Any] = {"description": "ok"}
    if out is not None:
        schema = refs[(out, "serialization")]
        if ".list_" in endpoint:
            schema = {"type": "object", "properties": {"data": {"type": "array", "items": schema},
                                                       "has_more": {"type": "boolean"}}}
        response["content"] = {"application/json": {"schema": schema}}
    op["responses"] = {str(status): response}
    return op
