"""/v1/corpora: upload (multipart or JSON), list, get, delete."""
from __future__ import annotations

from flask import Blueprint, request

from api import services
from api.context import db_session, idempotency_key, json_body, parse, parse_query, settings, tenant
from api.errors import Invalid, UnsupportedMediaType
from api.responses import one, page_body
from api.schemas import CorpusForm, CorpusIn, CorpusOut, PageQuery
from models import Corpus

bp = Blueprint("corpora", __name__, url_prefix="/corpora")


@bp.post("")
def create_corpus():
    name, data, field = _upload()
    corpus, _ = services.create_corpus(db_session(), settings().data_dir, tenant(), name, data,
                                       field, idempotency_key())
    return one(CorpusOut.model_validate(corpus)), 201, {"Location": f"/v1/corpora/{corpus.id}"}


def _upload() -> tuple[str, bytes, str]:
    """(name, bytes, field) from a multipart upload (`file`, optional `name`) or JSON {name, text}."""
    if request.mimetype == "multipart/form-data":
        form = parse(CorpusForm, request.form.to_dict())
        upload = request.files.get("file")
        if upload is None:
            raise Invalid.field("file", "a multipart field named 'file' is required", "missing")
        return form.name or (upload.filename or "corpus")[:255], upload.read(), "file"
    if not request.is_json:
        raise UnsupportedMediaType("expected multipart/form-data or application/json",
                                   {"content_type": request.content_type})
    body = parse(CorpusIn, json_body())
    try:
        data = body.text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate escaped in the JSON
        raise Invalid.field("text", f"not encodable as UTF-8 at character {exc.start}") from None
    return body.name or "corpus", data, "text"


@bp.get("")
def list_corpora():
    q = parse_query(PageQuery, page_size_max=settings().page_size_max)
    rows, more = services.list_owned(db_session(), Corpus, tenant(), q.after, q.limit)
    return page_body([CorpusOut.model_validate(r) for r in rows], more)


@bp.get("/<int:corpus_id>")
def get_corpus(corpus_id: int):
    return one(CorpusOut.model_validate(services.get_owned(db_session(), Corpus, corpus_id, tenant())))


@bp.delete("/<int:corpus_id>")
def delete_corpus(corpus_id: int):
    services.delete_corpus(db_session(), settings().data_dir, corpus_id, tenant())
    return "", 204
