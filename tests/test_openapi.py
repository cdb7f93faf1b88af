"""/openapi.json covers every route, is valid OpenAPI 3.1, and its examples hold; /docs is local."""
from __future__ import annotations

import re
from typing import Any, Iterator

import jsonschema
import pytest
from openapi_spec_validator import validate

from api.openapi import CONTRACTS


@pytest.fixture
def spec(client) -> dict[str, Any]:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    return r.get_json()


def api_rules(app):
    return [r for r in app.url_map.iter_rules()
            if r.rule.startswith("/v1") or r.rule in ("/healthz", "/readyz")]


def test_every_v1_and_health_route_is_documented(app, spec):
    for rule in api_rules(app):
        assert rule.endpoint in CONTRACTS, f"{rule.endpoint} has no contract in api/openapi.py"
        path = rule.rule.replace("<int:", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            op = spec["paths"][path][method.lower()]
            assert op["responses"], f"{method} {path}"
            if rule.rule.startswith("/v1"):
                assert "401" in op["responses"] and "security" not in op
    assert spec["paths"]["/healthz"]["get"]["security"] == []


def test_document_is_valid_openapi_3_1(spec):
    assert spec["openapi"] == "3.1.0"
    validate(spec)
    assert spec["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    assert spec["security"] == [{"bearer": []}]


def test_parameters_bodies_and_errors_are_described(spec):
    jobs = spec["paths"]["/v1/training-jobs"]
    assert {p["name"] for p in jobs["get"]["parameters"]} == {"after", "limit", "status"}
    post = jobs["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TrainingJobIn"}
    assert {"202", "400", "401", "404", "409", "413", "415", "422", "503"} <= set(post["responses"])
    assert post["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorOut"}
    one = spec["paths"]["/v1/corpora/{corpus_id}"]["get"]["parameters"]
    assert one == [{"name": "corpus_id", "in": "path", "required": True,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}}]
    events = spec["paths"]["/v1/training-jobs/{job_id}/events"]["get"]
    assert "text/event-stream" in events["responses"]["200"]["content"]
    hyper = spec["components"]["schemas"]["Hyperparameters"]["properties"]
    assert "layers" in hyper and hyper["hidden_size"]["anyOf"][0]["maximum"] == 4096


def examples(node: Any) -> Iterator[tuple[dict, Any]]:
    """(schema, example) for every example in the document: in schemas and in media types."""
    if isinstance(node, dict):
        for example in node.get("examples", []) if isinstance(node.get("examples"), list) else []:
            yield node, example
        if "example" in node and "schema" in node:
            yield node["schema"], node["example"]
        for value in node.values():
            yield from examples(value)
    elif isinstance(node, list):
        for value in node:
            yield from examples(value)


def test_examples_validate_against_their_schemas(spec):
    found = list(examples(spec))
    assert len(found) >= 5  # the three request bodies (twice: schema and media type) and ErrorOut
    for schema, example in found:
        root = {**schema, "components": spec["components"]}  # so "#/components/..." resolves
        jsonschema.Draft202012Validator(root).validate(example)


def test_request_examples_are_accepted_by_the_api(client, auth, spec):
    def example(path: str) -> dict:
        return spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["example"]

    corpus = client.post("/v1/corpora", headers=auth, json=example("/v1/corpora"))
    assert corpus.status_code == 201, corpus.get_json()
    train = {**example("/v1/training-jobs"), "corpus_id": corpus.get_json()["id"]}
    job = client.post("/v1/training-jobs", headers=auth, json=train)
    assert job.status_code == 202, job.get_json()
    client.post(f"/v1/training-jobs/{job.get_json()['id']}/cancel", headers=auth)
    # Valid as a request: what remains is that this tenant has no model 1.
    gen = client.post("/v1/generation-jobs", headers=auth, json=example("/v1/generation-jobs"))
    assert gen.status_code == 404 and gen.get_json()["error"]["code"] == "not_found"


def test_docs_page_serves_swagger_ui_from_the_app(client):
    page = client.get("/docs/")
    assert page.status_code == 200 and b"/docs/swagger-ui-bundle.js" in page.data
    assert b'"url": "/openapi.json"' in page.data
    assert not re.search(rb'(src|href)="(https?:)?//', page.data)  # nothing from a CDN
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js"):
        assert client.get(f"/docs/{asset}").status_code == 200
