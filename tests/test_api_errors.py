"""Errors as JSON, authentication, body limits, and the health checks."""
from __future__ import annotations

import io
import logging
from dataclasses import replace

import pytest

from api import create_app
from api.services import create_api_key, revoke_api_key
from models import Settings
from tests.api_support import (api_app, api_client, corpus_files, counts,  # noqa: F401
                                    quiet_settings, upload)

DEAD = dict(database_url="postgresql+psycopg://postgres@127.0.0.1:1/x",
            broker_url="redis://127.0.0.1:1/0", connect_timeout_s=1.0)


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic abc",
                                    "Bearer charq_wrong", "charq_no_scheme"])
def test_missing_or_wrong_key_is_401(api_client, header):
    headers = {} if header is None else {"Authorization": header}
    r = api_client.get("/v1/corpora", headers=headers)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.get_json()["error"]["code"] == "unauthorized"


def test_revoked_key_is_401(api_client, sessions):
    with sessions() as s:
        key, secret = create_api_key(s, "revoker", "k1")
        _, secret2 = create_api_key(s, "revoker", "k2")
        assert secret.startswith("charq_") and key.key_hash != secret and secret not in key.key_hash
        assert api_client.get("/v1/corpora", headers={"Authorization": f"Bearer {secret}"}
                              ).status_code == 200
        assert revoke_api_key(s, key.id).revoked_at is not None
        assert revoke_api_key(s, secret2[:12]).revoked_at is not None
    for sec in (secret, secret2):
        assert api_client.get("/v1/corpora", headers={"Authorization": f"Bearer {sec}"}
                              ).status_code == 401


def test_unknown_route_and_wrong_method_are_json(api_client, auth):
    r = api_client.get("/v1/nothing-here", headers=auth)
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"
    r = api_client.put("/v1/corpora", headers=auth)
    assert r.status_code == 405 and "GET" in r.headers["Allow"]
    assert r.get_json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize("path", ["/v1/training-jobs", "/v1/generation-jobs"])
def test_malformed_json_and_wrong_content_type(api_client, auth, sessions, path):
    before = counts(sessions)
    r = api_client.post(path, headers=auth, data='{"corpus_id": ', content_type="application/json")
    assert r.status_code == 400 and r.get_json()["error"]["message"] == "malformed JSON body"
    r = api_client.post(path, headers=auth, data={"corpus_id": "1"})
    assert r.status_code == 415
    r = api_client.post(path, headers=auth, data="", content_type="application/json")
    assert r.status_code == 400
    assert counts(sessions) == before


@pytest.fixture(scope="module")
def small_app(quiet_settings):  # noqa: F811
    app = create_app(replace(quiet_settings, max_body_bytes=2000))
    yield app
    app.extensions["charq"].sessions.kw["bind"].dispose()


def test_oversize_bodies_are_413_and_write_nothing(small_app, auth, sessions, settings):
    client = small_app.test_client()
    before, files = counts(sessions), corpus_files(settings)
    r = client.post("/v1/corpora", headers=auth, json={"text": "ab" * 2000})
    assert r.status_code == 413 and r.get_json()["error"]["code"] == "request_entity_too_large"
    r = client.post("/v1/corpora", headers=auth, content_type="multipart/form-data",
                    data={"file": (io.BytesIO(b"ab" * 2000), "big.txt")})
    assert r.status_code == 413 and "error" in r.get_json()
    assert counts(sessions) == before and corpus_files(settings) == files
    assert client.post("/v1/corpora", headers=auth, json={"text": "ab" * 100}).status_code == 201


def test_auth_disabled_uses_the_default_tenant_and_warns(quiet_settings, caplog):  # noqa: F811
    with caplog.at_level(logging.WARNING, logger="api"):
        app = create_app(replace(quiet_settings, auth_enabled=False))
    assert any("AUTHENTICATION IS DISABLED" in r.getMessage() for r in caplog.records)
    client = app.test_client()
    corpus = upload(client, {})
    assert client.get(f"/v1/corpora/{corpus['id']}").status_code == 200
    app.extensions["charq"].sessions.kw["bind"].dispose()


def test_unexpected_errors_are_500_json(quiet_settings):  # noqa: F811
    app = create_app(quiet_settings)

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    r = app.test_client().get("/boom")
    assert r.status_code == 500
    assert r.get_json() == {"error": {"code": "internal_error",
                                      "message": "internal server error", "details": None}}


def test_healthz_and_readyz(api_client):
    assert api_client.get("/healthz").get_json() == {"status": "ok"}
    r = api_client.get("/readyz")
    assert r.status_code == 200
    assert r.get_json()["checks"] == {"database": "ok", "broker": "ok"}


def test_readyz_and_requests_with_the_database_down(tmp_path):
    app = create_app(Settings(data_dir=tmp_path, **DEAD))
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    r = client.get("/readyz")
    assert r.status_code == 503
    checks = r.get_json()["checks"]
    assert checks["database"].startswith("unavailable") and checks["broker"].startswith("unavailable")
    r = client.get("/v1/corpora", headers={"Authorization": "Bearer charq_x"})
    assert r.status_code == 503
    assert r.get_json()["error"] == {"code": "database_unavailable",
                                     "message": "database unavailable", "details": None}


def test_broker_down_still_answers_202_and_leaves_the_job_for_the_sweeper(
        quiet_settings, auth, sessions, caplog):  # noqa: F811
    app = create_app(replace(quiet_settings, broker_url=DEAD["broker_url"]))
    client = app.test_client()
    corpus = upload(client, auth)
    with caplog.at_level(logging.WARNING, logger="api"):
        r = client.post("/v1/training-jobs", headers=auth, json={"corpus_id": corpus["id"]})
    assert r.status_code == 202 and r.get_json()["status"] == "queued"
    assert r.get_json()["enqueued_at"] is None
    assert any("stays queued" in rec.getMessage() for rec in caplog.records)
    got = client.get(f"/v1/training-jobs/{r.get_json()['id']}", headers=auth).get_json()
    assert got["status"] == "queued" and got["enqueued_at"] is None
    app.extensions["charq"].sessions.kw["bind"].dispose()


def test_openapi_lists_every_v1_route_with_schemas(api_client):
    spec = api_client.get("/openapi.json").get_json()
    assert {"/v1/corpora", "/v1/training-jobs/{job_id}/cancel", "/v1/models/{model_id}/checkpoint",
            "/v1/generation-jobs/{job_id}/samples"} <= set(spec["paths"])
    hyper = spec["components"]["schemas"]["Hyperparameters"]["properties"]
    assert "layers" in hyper and hyper["hidden_size"]["anyOf"][0]["maximum"] == 4096
