"""schemathesis against the app's own /openapi.json, in process: no request gets a 5xx or a non-JSON error.

PostgreSQL only (the production backend), bounded to well under a minute.
"""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import schemathesis
from schemathesis import checks
from hypothesis import HealthCheck, settings
from sqlalchemy import update

from models import JobStatus, Settings, TrainingJob, make_engine, make_sessions


@pytest.fixture(scope="module")
def fuzz_app(pg_settings):
    from api import create_app
    from api.services import create_api_key

    app = create_app(pg_settings)
    sessions = app.extensions["charq"].sessions
    with sessions() as session:
        key, secret = create_api_key(session, tenant_name=f"fuzz-{uuid.uuid4().hex[:8]}",
                                     key_name="fuzz")
        tenant_id = key.tenant_id
    app.config["FUZZ_AUTH"] = {"Authorization": f"Bearer {secret}"}
    yield app
    # Whatever valid jobs the fuzzer submitted must not reach a later test's worker.
    engine = make_engine(pg_settings.database)
    with make_sessions(engine).begin() as s:
        s.execute(update(TrainingJob).where(TrainingJob.tenant_id == tenant_id,
                                            TrainingJob.status == JobStatus.QUEUED)
                  .values(status=JobStatus.CANCELLED))
    engine.dispose()


def load_schema():
    """The document of an app that connects to nothing: building the document needs no database.

    (schemathesis.pytest.from_fixture would build it from fuzz_app, but fails on pytest 9.)
    """
    from api import create_app
    from api.openapi import build_spec

    return schemathesis.openapi.from_dict(build_spec(create_app(Settings(data_dir=Path("var")))))


schema = load_schema()


# Not positive_data_acceptance: some rules live beyond the schema (a corpus must be UTF-8 text,
# Hyperparameters reject an explicit null, strict ints reject 3.0), so a schema-valid request may
# rightly get a 4xx; those 4xx are still checked to be documented JSON errors.
CHECKS = [checks.not_a_server_error, checks.status_code_conformance,
          checks.content_type_conformance, checks.response_schema_conformance]


def json_error_body(ctx, response, case) -> None:
    """Every 4xx/5xx carries {"error": {"code", "message", ...}} as JSON."""
    if response.status_code < 400:
        return
    content_type = {k.lower(): v for k, v in response.headers.items()}.get("content-type", [""])
    assert content_type[0].startswith("application/json"), (
        f"{response.status_code} with Content-Type {content_type}")
    error = response.json()["error"]
    assert error["code"] and error["message"]


@schema.parametrize()
@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error_or_a_non_json_error(case, fuzz_app):
    if case.query:
        case.query.pop("stream", None)  # a stream of a queued job would last until it ends
    case.call_and_validate(app=fuzz_app, headers=fuzz_app.config["FUZZ_AUTH"],
                           checks=CHECKS, additional_checks=[json_error_body])
