"""POST/GET/DELETE /v1/corpora: uploads, validation, pagination, idempotency, deletion."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from models import Corpus
from tests.api_support import (TEXT, api_app, api_client, corpus_files, counts,  # noqa: F401
                                    other_auth, quiet_settings, submit_training, upload,
                                    upload_file)


def test_json_upload_stores_file_and_row(api_client, auth, sessions, settings):
    body = upload(api_client, auth, text=TEXT, name="fox")
    assert body["name"] == "fox"
    assert body["size_bytes"] == len(TEXT.encode())
    assert body["num_chars"] == len(TEXT)
    assert body["vocab_size"] == len(set(TEXT))
    assert body["sha256"] == hashlib.sha256(TEXT.encode()).hexdigest()
    with sessions() as s:
        row = s.get(Corpus, body["id"])
    assert not Path(row.path).is_absolute() and row.path.startswith("corpora/")
    assert (Path(settings.data_dir) / row.path).read_text("utf-8") == TEXT
    assert not any(name.endswith(".tmp") for name in corpus_files(settings))


def test_multipart_upload_keeps_bytes_and_takes_filename_as_name(api_client, auth, sessions,
                                                                 settings):
    data = "héllo wörld\r\n".encode() * 10
    r = upload_file(api_client, auth, data, filename="../../etc/passwd")
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["name"] == "../../etc/passwd" and body["size_bytes"] == len(data)
    with sessions() as s:
        path = s.get(Corpus, body["id"]).path
    assert "passwd" not in path  # file names never come from the client
    assert (Path(settings.data_dir) / path).read_bytes() == data
    r = upload_file(api_client, auth, data, name="named")
    assert r.get_json()["name"] == "named"


@pytest.mark.parametrize("data, field, words", [
    (b"abc\xffdef", "file", "byte offset 3"),
    (b"ok text \xe2\x82", "file", "byte offset 8"),
    (b"", "file", "empty"),
    (b"aaaaaaa", "file", "distinct"),
])
def test_bad_file_is_rejected_and_nothing_written(api_client, auth, sessions, settings, data,
                                                  field, words):
    before, files = counts(sessions), corpus_files(settings)
    r = upload_file(api_client, auth, data)
    assert r.status_code == 422
    err = r.get_json()["error"]
    assert err["details"][0]["field"] == field and words in err["message"]
    assert counts(sessions) == before and corpus_files(settings) == files


@pytest.mark.parametrize("body, status, field", [
    ({"name": "x"}, 422, "text"),
    ({"text": 5}, 422, "text"),
    ({"text": "ab", "extra": 1}, 422, "extra"),
    ({"text": "ab", "name": ""}, 422, "name"),
    ({"text": "ab", "name": "n" * 256}, 422, "name"),
    ({"text": "\ud800ab"}, 422, "text"),
    ([], 422, ""),
])
def test_bad_json_upload_is_rejected(api_client, auth, sessions, settings, body, status, field):
    before, files = counts(sessions), corpus_files(settings)
    # json.dumps escapes the lone surrogate as JSON may; the test client's encoder would choke.
    r = api_client.post("/v1/corpora", data=json.dumps(body), content_type="application/json",
                        headers=auth)
    assert r.status_code == status, r.get_json()
    assert r.get_json()["error"]["details"][0]["field"] == field
    assert counts(sessions) == before and corpus_files(settings) == files


def test_missing_file_field_malformed_json_and_wrong_type(api_client, auth, sessions):
    before = counts(sessions)
    r = api_client.post("/v1/corpora", headers=auth, data={"name": "x"},
                        content_type="multipart/form-data")
    assert r.status_code == 422 and r.get_json()["error"]["details"][0]["field"] == "file"
    r = api_client.post("/v1/corpora", headers=auth, data="{nope",
                        content_type="application/json")
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "bad_request"
    r = api_client.post("/v1/corpora", headers=auth, data="plain", content_type="text/plain")
    assert r.status_code == 415 and r.get_json()["error"]["code"] == "unsupported_media_type"
    assert counts(sessions) == before


def test_list_is_newest_first_with_cursor_pages(api_client, auth):
    ids = [upload(api_client, auth, name=f"c{i}")["id"] for i in range(3)]
    first = api_client.get("/v1/corpora?limit=2", headers=auth).get_json()
    assert [c["id"] for c in first["data"]] == ids[::-1][:2]
    assert first["has_more"] is True and first["last_id"] == ids[1]
    rest = api_client.get(f"/v1/corpora?limit=2&after={first['last_id']}", headers=auth).get_json()
    assert [c["id"] for c in rest["data"]] == [ids[0]] and rest["has_more"] is False


@pytest.mark.parametrize("query, field", [
    ("limit=0", "limit"), ("limit=101", "limit"), ("limit=x", "limit"), ("after=-1", "after"),
    ("after=x", "after"), ("bogus=1", "bogus"),
])
def test_bad_list_query_names_the_field(api_client, auth, query, field):
    r = api_client.get(f"/v1/corpora?{query}", headers=auth)
    assert r.status_code == 422
    assert r.get_json()["error"]["details"][0]["field"] == field


def test_other_tenants_and_unknown_ids_answer_404(api_client, auth, other_auth):
    cid = upload(api_client, auth)["id"]
    for headers in (other_auth,):
        assert api_client.get(f"/v1/corpora/{cid}", headers=headers).status_code == 404
        assert api_client.delete(f"/v1/corpora/{cid}", headers=headers).status_code == 404
    assert api_client.get("/v1/corpora", headers=other_auth).get_json()["data"] == []
    r = api_client.get("/v1/corpora/999999", headers=auth)
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"
    assert api_client.get(f"/v1/corpora/{cid}", headers=auth).status_code == 200


def test_delete_removes_row_and_file(api_client, auth, sessions, settings):
    cid = upload(api_client, auth)["id"]
    with sessions() as s:
        path = Path(settings.data_dir) / s.get(Corpus, cid).path
    assert path.exists()
    r = api_client.delete(f"/v1/corpora/{cid}", headers=auth)
    assert r.status_code == 204 and r.data == b""
    assert not path.exists()
    assert api_client.get(f"/v1/corpora/{cid}", headers=auth).status_code == 404


def test_delete_of_corpus_in_use_is_409_naming_the_job(api_client, auth, sessions, settings):
    cid = upload(api_client, auth)["id"]
    job = submit_training(api_client, auth, cid)
    before, files = counts(sessions), corpus_files(settings)
    r = api_client.delete(f"/v1/corpora/{cid}", headers=auth)
    assert r.status_code == 409
    details = r.get_json()["error"]["details"]
    assert details["active_training_jobs"] == [job["id"]]
    assert details["training_jobs"] == [{"id": job["id"], "status": "queued"}]
    assert counts(sessions) == before and corpus_files(settings) == files


def test_idempotent_upload_returns_the_original(api_client, auth, sessions, settings):
    key = {"Idempotency-Key": "upload-1"}
    first = upload(api_client, auth, name="same", **key)
    before, files = counts(sessions), corpus_files(settings)
    again = upload(api_client, auth, name="same", **key)
    assert again == first
    assert counts(sessions) == before and corpus_files(settings) == files
    r = api_client.post("/v1/corpora", json={"name": "same", "text": "different text"},
                        headers={**auth, **key})
    assert r.status_code == 409 and r.get_json()["error"]["details"]["id"] == first["id"]
    assert counts(sessions) == before and corpus_files(settings) == files
