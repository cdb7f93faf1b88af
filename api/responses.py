"""Response helpers shared by the blueprints: the list shape and JSON Lines streams."""
from __future__ import annotations

from typing import Any, Iterable

from flask import Response, json, stream_with_context
from pydantic import BaseModel


def one(item: BaseModel) -> dict[str, Any]:
    return item.model_dump(mode="json")


def page_body(items: list[BaseModel], has_more: bool, cursor: str = "id") -> dict[str, Any]:
    """The list shape every list endpoint returns (as the OpenAI API does)."""
    data = [one(item) for item in items]
    return {"object": "list", "data": data, "has_more": has_more,
            "first_id": data[0][cursor] if data else None,
            "last_id": data[-1][cursor] if data else None}


def jsonl(lines: Iterable[dict[str, Any]], filename: str) -> Response:
    """Stream lines as JSON Lines; the request's app context (and session) lives until the end."""
    body = (json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    return Response(stream_with_context(body), mimetype="application/x-ndjson",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
