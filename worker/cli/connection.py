"""How the client commands reach a charq server: URL and key, HTTP calls, one-line errors, SSE.

URL and key come from --url/--key, else CHARQ_URL/CHARQ_API_KEY, else the config file
($XDG_CONFIG_HOME or ~/.config)/charq/config.toml with `url = "..."` and `api_key = "..."`.
"""
from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Iterator

import click
import requests

DEFAULT_URL = "http://127.0.0.1:8000"
TIMEOUT_S = 30.0


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "charq" / "config.toml"


def resolve(url: str | None, key: str | None) -> tuple[str, str | None]:
    config: dict[str, Any] = {}
    path = config_path()
    if path.is_file():
        try:
            config = tomllib.loads(path.read_text("utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise click.ClickException(f"cannot read {path}: {exc}") from None
    url = url or os.environ.get("CHARQ_URL") or config.get("url") or DEFAULT_URL
    key = key or os.environ.get("CHARQ_API_KEY") or config.get("api_key")
    return url.rstrip("/"), key


class Connection:
    def __init__(self, url: str, key: str | None):
        self.url = url
        self.http = requests.Session()
        if key:
            self.http.headers["Authorization"] = f"Bearer {key}"

    def request(self, method: str, path: str, *, stream: bool = False,
                timeout: float | None = TIMEOUT_S, **kwargs: Any) -> requests.Response:
        """The response, or a one-line ClickException for a refused connection or an error status."""
        try:
            r = self.http.request(method, self.url + path, stream=stream, timeout=timeout, **kwargs)
        except requests.ConnectionError:
            raise click.ClickException(
                f"cannot connect to the charq server at {self.url} (is it running? "
                "set --url or CHARQ_URL)") from None
        except requests.Timeout:
            raise click.ClickException(f"{self.url} did not answer within {timeout:g}s") from None
        if r.status_code >= 400:
            raise click.ClickException(error_line(r))
        return r

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs).json()

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs).json()

    def pages(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a list endpoint, following ?after= while has_more."""
        items: list[dict[str, Any]] = []
        while True:
            page = self.get(path, params={**params, "limit": 100})
            items += page["data"]
            if not page.get("has_more"):
                return items
            params["after"] = page["last_id"]

    def events(self, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(event type, data) from a Server-Sent Events endpoint until the server ends the stream."""
        r = self.request("GET", path, stream=True, timeout=(TIMEOUT_S, 60.0),
                         headers={"Accept": "text/event-stream"})
        kind, data = None, []
        with r:
            for line in r.iter_lines(decode_unicode=True):
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif not line and kind and data:
                    yield kind, json.loads("\n".join(data))
                    kind, data = None, []


def error_line(r: requests.Response) -> str:
    """The server's {"error": {code, message}} as one line; anything else as status and text."""
    try:
        error = r.json()["error"]
        return f"{error['message']} ({error['code']}, HTTP {r.status_code})"
    except (ValueError, KeyError, TypeError):
        text = " ".join(r.text.split())[:200]
        return f"HTTP {r.status_code} from {r.url}: {text}"
