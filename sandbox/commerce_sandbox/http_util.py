"""Transport-neutral request/response values, so API modules stay free of socket code.

The HTTP handler in ``server.py`` turns a raw request into a :class:`Request`, hands it
to one API module, and writes the :class:`Response` back (streaming files from disk,
truncating them when a fault says so).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import Any


@dataclass
class Request:
    """One parsed HTTP request."""

    method: str
    path: str
    query: dict[str, str]
    headers: Message
    body: bytes
    client: str

    def header(self, name: str) -> str | None:
        """Header value by case-insensitive name."""
        return self.headers.get(name)

    def json(self) -> Any:
        """The body as JSON; raises ValueError if it is not JSON."""
        if not self.body:
            raise ValueError("empty body")
        return json.loads(self.body.decode("utf-8"))

    def bearer(self) -> str | None:
        """The token of an ``Authorization: Bearer`` header, if any."""
        auth = self.header("Authorization")
        if not auth:
            return None
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return token.strip()


@dataclass
class Response:
    """What to send: a body, or a file streamed from disk (optionally truncated)."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    file_path: str | None = None
    #: Announce the full length but send only this many bytes, then close.
    truncate_to: int | None = None
    #: Called once the truncated part is sent; the connection closes when it returns.
    hold: Callable[[], None] | None = None


def json_response(status: int, obj: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    """A JSON response (UTF-8, no ASCII escaping, as Django REST framework sends)."""
    body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
    return Response(status, body, "application/json", list(headers or []))
