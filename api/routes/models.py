"""/v1/models: trained models, and their checkpoint as a streamed .tar.gz (safetensors + JSON)."""
from __future__ import annotations

from flask import Blueprint, Response, stream_with_context

from api import services, storage
from api.context import db_session, parse_query, settings, tenant
from api.errors import NotFound
from api.responses import one, page_body
from api.schemas import ModelOut, PageQuery
from models import TrainedModel

bp = Blueprint("models", __name__, url_prefix="/models")


@bp.get("")
def list_models():
    q = parse_query(PageQuery, page_size_max=settings().page_size_max)
    rows, more = services.list_owned(db_session(), TrainedModel, tenant(), q.after, q.limit)
    return page_body([ModelOut.of(row) for row in rows], more)


@bp.get("/<int:model_id>")
def get_model(model_id: int):
    return one(ModelOut.of(services.get_owned(db_session(), TrainedModel, model_id, tenant())))


@bp.get("/<int:model_id>/checkpoint")
def download_checkpoint(model_id: int):
    model = services.get_owned(db_session(), TrainedModel, model_id, tenant())
    files = storage.checkpoint_files(settings().data_dir, model.checkpoint_path)
    if files is None:
        raise NotFound(f"model {model.id}'s checkpoint files are missing on the server")
    name = f"charq-model-{model.id}"
    return Response(stream_with_context(storage.stream_tar_gz(files, name)),
                    mimetype="application/gzip",
                    headers={"Content-Disposition": f'attachment; filename="{name}.tar.gz"',
                             "X-Checkpoint-Sha256": model.sha256})
