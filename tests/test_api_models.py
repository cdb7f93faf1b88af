"""GET /v1/models and the checkpoint download (.tar.gz of model.safetensors + model.json)."""
from __future__ import annotations

import io
import math
import tarfile
from pathlib import Path

from models import TrainedModel
from tests.api_support import (api_app, api_client, make_model, other_auth,  # noqa: F401
                                    quiet_settings)


def test_model_fields_and_list(api_client, auth, other_auth, sessions, settings):
    model_id = make_model(api_client, auth, sessions, settings)
    body = api_client.get(f"/v1/models/{model_id}", headers=auth).get_json()
    assert body["num_params"] == 1234 and body["steps"] == 10 and body["vocab"] == "abc xyz.\n"
    assert math.isclose(body["val_bpc"], 1.0 / math.log(2))
    job = api_client.get(f"/v1/training-jobs/{body['training_job_id']}", headers=auth).get_json()
    assert job["model_id"] == model_id and job["status"] == "succeeded"
    assert {"architecture", "vocab_size", "val_loss", "corpus_id", "created_at"} <= set(body)
    listing = api_client.get("/v1/models", headers=auth).get_json()
    assert [m["id"] for m in listing["data"]] == [model_id]
    assert api_client.get("/v1/models", headers=other_auth).get_json()["data"] == []
    assert api_client.get(f"/v1/models/{model_id}", headers=other_auth).status_code == 404
    r = api_client.delete(f"/v1/corpora/{body['corpus_id']}", headers=auth)
    assert r.status_code == 409 and r.get_json()["error"]["details"]["models"] == [model_id]


def test_checkpoint_download_streams_weights_and_config_only(api_client, auth, other_auth,
                                                             sessions, settings):
    model_id = make_model(api_client, auth, sessions, settings)
    r = api_client.get(f"/v1/models/{model_id}/checkpoint", headers=auth)
    assert r.status_code == 200 and r.mimetype == "application/gzip"
    assert r.is_streamed
    assert f"charq-model-{model_id}.tar.gz" in r.headers["Content-Disposition"]
    with tarfile.open(fileobj=io.BytesIO(r.data), mode="r:gz") as tar:
        names = tar.getnames()
        weights = tar.extractfile(f"charq-model-{model_id}/model.safetensors").read()
    assert sorted(names) == [f"charq-model-{model_id}/model.json",
                             f"charq-model-{model_id}/model.safetensors"]
    assert weights == b"\x00weights" * 1000
    assert api_client.get(f"/v1/models/{model_id}/checkpoint",
                          headers=other_auth).status_code == 404


def test_missing_or_escaping_checkpoint_is_404(api_client, auth, sessions, settings):
    model_id = make_model(api_client, auth, sessions, settings, files=False)
    r = api_client.get(f"/v1/models/{model_id}/checkpoint", headers=auth)
    assert r.status_code == 404 and "missing" in r.get_json()["error"]["message"]
    outside = Path(settings.data_dir).parent / "outside"
    outside.mkdir(exist_ok=True)
    for name in ("model.safetensors", "model.json"):
        (outside / name).write_text("secret")
    with sessions() as s:
        s.get(TrainedModel, model_id).checkpoint_path = "../outside"
        s.commit()
    assert api_client.get(f"/v1/models/{model_id}/checkpoint", headers=auth).status_code == 404
