"""A small receiver for Next Commerce's ``export.created`` webhook, run during a sync.

It wakes the job waiting on that export so the download starts at once; polling goes
on at ``poll_max_interval`` as a fallback. Trust rules: the body is bounded (64 KiB), the
``X-29Next-Signature`` HMAC-SHA256 is checked in constant time over the body
re-serialized with Python's default ``json.dumps`` (as the provider's own example does),
and an unknown export id is refused without side effects.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOGGER = logging.getLogger("tap_commerce_exports.webhook")
MAX_BODY = 64 * 1024


def signature(secret: str, payload: object) -> str:
    """The signature Next Commerce sends for ``payload`` (a parsed JSON body)."""
    body = json.dumps(payload).encode()
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookReceiver:
    """Runs an HTTP server in a thread; calls ``on_export(id)`` for valid deliveries."""

    def __init__(self, host: str, port: int, secret: str, on_export: Callable[[str], bool]) -> None:
        self._secret = secret
        self._on_export = on_export
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "tap-commerce-exports-webhook"

            def log_message(self, fmt: str, *args: object) -> None:  # quiet: no URLs in logs
                return

            def _answer(self, status: int, text: str) -> None:
                body = json.dumps({"detail": text}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802
                status, text = receiver.handle(self.headers, self.rfile)
                self._answer(status, text)

            def do_GET(self) -> None:  # noqa: N802
                self._answer(405, "POST only")

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="webhook-receiver"
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()
        LOGGER.info("listening for export.created webhooks on %s:%d", *self.address)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def handle(self, headers, rfile) -> tuple[int, str]:
        """Validate one delivery; return (HTTP status, short reason)."""
        length = headers.get("Content-Length")
        if length is None or not length.isdigit():
            return 411, "Content-Length required"
        if int(length) > MAX_BODY:
            return 413, "body too large"
        raw = rfile.read(int(length))
        try:
            payload = json.loads(raw)
        except ValueError:
            return 400, "body is not JSON"
        given = headers.get("X-29Next-Signature") or ""
        if not hmac.compare_digest(signature(self._secret, payload), given.strip().lower()):
            LOGGER.warning("webhook delivery with a bad signature refused")
            return 401, "bad signature"
        if not isinstance(payload, dict) or payload.get("event_type") != "export.created":
            return 200, "ignored"
        data = payload.get("data")
        export_id = data.get("id") if isinstance(data, dict) else None
        if export_id is None:
            return 400, "no export id"
        if not self._on_export(str(export_id)):
            return 404, "unknown export"
        LOGGER.info("webhook: export %s is available", export_id)
        return 200, "ok"
