"""The HTTP server: one loopback ``ThreadingHTTPServer`` playing every host at once.

Routing is by path, so the same port serves the Next Commerce API (``/api/admin/``
for the default store, ``/stores/{store}/api/admin/`` for the others), the Clover API (``/v3/``), both file hosts (``/media/...``, ``/clover-files/...``,
addressed as ``localhost`` so they are a *different host name* than the APIs on
``127.0.0.1``) and the control endpoints (``/_sandbox/...``, no auth) that let other
processes steer the sandbox and read its ground truth and counters.

:class:`SandboxServer` runs it on a daemon thread, for tests and the demo; the command
line (``__main__``) runs the same object until a signal.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from commerce_sandbox import clover_api, filehost, nextcommerce_api, webhook
from commerce_sandbox.config import SandboxConfig, parse_instant
from commerce_sandbox.http_util import Request, Response, json_response
from commerce_sandbox.state import ExportJob, SandboxState
from commerce_sandbox.unpublished import noise_events

log = logging.getLogger("commerce_sandbox")
NC_PREFIX = "/api/admin/"
#: ``/stores/{store}/api/admin/{rest}``: one store of several (``sandbox.accounts``).
STORE_PREFIX = re.compile(r"^/stores/([^/]+)/api/admin/(.*)$", re.DOTALL)


class _Handler(BaseHTTPRequestHandler):
    """Parses the request, dispatches by path, writes the :class:`Response`."""

    protocol_version = "HTTP/1.1"
    server_version = "tap-commerce-exports-sandbox"
    sys_version = ""
    state: SandboxState  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        log.debug("%s " + format, self.address_string(), *args)

    def _request(self) -> Request:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        return Request(
            method=self.command,
            path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers=self.headers,
            body=body,
            client=self.client_address[0],
        )

    def _dispatch(self) -> None:
        try:
            req = self._request()
            resp = route(self.state, req)
        except Exception as exc:  # a sandbox bug must answer, not hang the client
            log.exception("sandbox error")
            resp = json_response(500, {"detail": f"sandbox internal error: {type(exc).__name__}: {exc}"})
        self._write(resp)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch

    def _write(self, resp: Response) -> None:
        size = os.path.getsize(resp.file_path) if resp.file_path else len(resp.body)
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(size))
        for name, value in resp.headers:
            self.send_header(name, value)
        if resp.truncate_to is not None:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command == "HEAD":
            return
        if resp.file_path is None:
            self.wfile.write(resp.body)
            return
        with open(resp.file_path, "rb") as fh:
            if resp.truncate_to is None:
                shutil.copyfileobj(fh, self.wfile, 1 << 20)
            else:
                self.wfile.write(fh.read(resp.truncate_to))
                self.wfile.flush()
                if resp.hold is not None:
                    resp.hold()
                self.close_connection = True


def route(state: SandboxState, req: Request) -> Response:
    """Pick the emulated service by path."""
    path = req.path
    authorization = req.header("Authorization")
    if authorization:
        state.stats.credential_seen(authorization)
    if path.startswith(NC_PREFIX):
        return nextcommerce_api.handle(state, req, path[len(NC_PREFIX) :])
    store = STORE_PREFIX.match(path)
    if store:
        return nextcommerce_api.handle(state, req, store.group(2), store.group(1))
    if path.startswith("/v3/"):
        return clover_api.handle(state, req)
    if path.startswith("/media/"):
        return filehost.handle(state, req, "nc_file")
    if path.startswith("/clover-files/"):
        return filehost.handle(state, req, "clover_file")
    if path.startswith("/_sandbox/"):
        return _control(state, req)
    return json_response(404, {"detail": "Not found."})


def _control(state: SandboxState, req: Request) -> Response:
    """``/_sandbox/control`` (POST), ``/truth`` (``?account=`` a store or merchant, default
    the default one), ``/accounts``, ``/stats``, ``/config``, ``/health`` (GET)."""
    state.stats.request("control")
    name = req.path[len("/_sandbox/") :].strip("/")
    try:
        if name == "control" and req.method == "POST":
            changes = req.json() if req.body else {}
            if not isinstance(changes, dict):
                raise ValueError("body must be a JSON object of setting changes")
            return json_response(200, control(state, changes))
        if name == "config" and req.method == "GET":
            return json_response(200, state.config.to_dict())
        if name == "stats" and req.method == "GET":
            return json_response(200, state.stats.snapshot())
        if name == "health":
            return json_response(200, {"ok": True})
        if name == "accounts" and req.method == "GET":
            return json_response(200, {"accounts": state.account_list()})
        if name == "truth" and req.method == "GET":
            provider = req.query.get("provider", "")
            export_type = req.query.get("type", "")
            start = parse_instant(req.query["from"])
            end = parse_instant(req.query["to"])
            account = req.query.get("account") or None
            rows = state.truth(provider, export_type, start, end, account)
            keys = state.truth_keys(provider, export_type, start, end, account)
            return json_response(200, {"keys": keys, "rows": rows})
    except (ValueError, KeyError, TypeError) as exc:
        return json_response(400, {"detail": str(exc)})
    return json_response(404, {"detail": "Unknown control endpoint."})


def control(state: SandboxState, changes: dict[str, Any]) -> dict[str, Any]:
    """Apply setting changes, plus actions given as pseudo-settings:

    ``reset_stats: true`` zeroes the counters; ``complete_exports: true`` finishes every
    unfinished export now (frees Clover's running slots between tests);
    ``reset_limits: true`` forgets rate-limit history and Clover penalties (also done
    whenever a limit setting itself changes).
    """
    changes = dict(changes)
    limit_fields = {
        "nc_rate_limit",
        "clover_rate_limit",
        "clover_max_concurrent_requests",
        "clover_app_rate_limit",
        "clover_app_max_concurrent_requests",
        "retry_after",
    }
    if changes.pop("reset_limits", False) or any(
        k in limit_fields and v != getattr(state.config, k, None) for k, v in changes.items()
    ):
        state.reset_limits()
    if changes.pop("reset_stats", False):
        state.stats.reset()
    if changes.pop("complete_exports", False):
        state.complete_exports()
    return state.update_config(changes).to_dict()


class SandboxServer:
    """The sandbox as an object: ``with SandboxServer(cfg) as sb: ...``.

    ``port=0`` binds a free port; :attr:`port` and the URLs then carry the real one.
    """

    def __init__(self, config: SandboxConfig | None = None, **overrides: Any) -> None:
        cfg = config or SandboxConfig()
        if overrides:
            cfg = SandboxConfig(**{**cfg.to_dict(), **overrides})
        self.state = SandboxState(cfg)
        self.state.on_nc_ready = self._fire_webhook
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------

    def start(self) -> SandboxServer:
        """Bind and serve on a daemon thread; returns self."""
        handler = type("SandboxHandler", (_Handler,), {"state": self.state})
        cfg = self.state.config
        httpd = ThreadingHTTPServer((cfg.host, cfg.port), handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self.state.config.port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True, name="sandbox-http"
        )
        self._thread.start()
        threading.Thread(target=self._warm_up, daemon=True, name="sandbox-warmup").start()
        return self

    def _warm_up(self) -> None:
        """Build the per-type value tables ahead of the first export (saves ~0.5 s there)."""
        from commerce_sandbox.config import NC_TYPES
        from commerce_sandbox.data_nextcommerce import type_plan

        for export_type in NC_TYPES:
            if self.state.stopping.is_set():
                return
            type_plan(self.state.config.seed, export_type)

    def stop(self) -> None:
        """Stop serving, end background jobs, delete generated files."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.state.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- addresses ---------------------------------------------------------------

    @property
    def port(self) -> int:
        return self.state.config.port

    @property
    def api_url(self) -> str:
        """Next Commerce base URL, ``http://127.0.0.1:PORT/api/admin/``."""
        return self.state.api_url

    @property
    def clover_url(self) -> str:
        """Clover host, ``http://127.0.0.1:PORT`` (paths ``/v3/...``)."""
        return self.state.clover_url

    @property
    def config(self) -> SandboxConfig:
        """The live config (read-only use; change it with :meth:`control`)."""
        return self.state.config

    # --- control -----------------------------------------------------------------

    def control(self, **changes: Any) -> dict[str, Any]:
        """Change settings or fault switches at runtime (as ``POST /_sandbox/control``)."""
        return control(self.state, changes)

    def truth(
        self, provider: str, export_type: str, start: datetime, end: datetime, account: str | None = None
    ) -> list[dict[str, Any]]:
        """Ground-truth rows of ``account`` (a store or merchant; None: the default one)
        with window instant in [start, end) (see ``SandboxState.truth``)."""
        return self.state.truth(provider, export_type, start, end, account)

    def truth_keys(
        self, provider: str, export_type: str, start: datetime, end: datetime, account: str | None = None
    ) -> list[Any]:
        """Primary keys of :meth:`truth` rows."""
        return self.state.truth_keys(provider, export_type, start, end, account)

    def accounts(self, provider: str | None = None) -> list[dict[str, Any]]:
        """Every account (or one provider's), default first: ``provider``, ``store`` or
        ``merchant_id``, ``token``, ``api_url``, ``default`` (as ``GET /_sandbox/accounts``)."""
        return [a for a in self.state.account_list() if provider in (None, a["provider"])]

    def store_url(self, store: str | None = None) -> str:
        """The ``api_url`` of a Next Commerce store (None: the default store)."""
        account = self.state.account("nextcommerce", store)
        if account is None:
            raise ValueError(f"unknown nextcommerce account: {store}")
        return self.state.nc_api_url(account)

    def stats(self) -> dict[str, Any]:
        """Counters (as ``GET /_sandbox/stats``)."""
        return self.state.stats.snapshot()

    def reset_stats(self) -> None:
        self.state.stats.reset()

    # --- webhook -------------------------------------------------------------------

    def _fire_webhook(self, job: ExportJob) -> None:
        """The export's store's webhook (its own URL and secret, else the top-level ones)."""
        cfg = self.state.config
        account = self.state.account("nextcommerce", job.account)
        url = account.webhook_url if account else cfg.webhook_url
        if not url:
            return
        secret = account.webhook_secret if account else cfg.webhook_secret
        data = nextcommerce_api.export_object(self.state, job)
        store = f"{job.account}.29next.store" if cfg.webhook_store_form == "host" else job.account
        payload = webhook.envelope(data, store, url)
        ok = self._deliver(url, secret, payload)
        self.state.stats.incr("webhooks_sent" if ok else "webhook_failures")
        job.webhook_sent = ok
        if cfg.webhook_noise:  # the store-wide subscription's other deliveries
            for other in noise_events(payload, 10**9 + job.id):
                self._deliver(url, secret, other)

    def _deliver(self, url: str, secret: str | None, payload: dict[str, Any]) -> bool:
        """One delivery; every answer a receiver gave is counted (``webhook_answers``)."""
        raw = self.state.config.webhook_signing == "raw"
        answers = webhook.deliver(url, secret, payload, self.state.stopping, raw=raw)
        for status in answers:
            self.state.stats.incr(f"webhook_answer_{status}")
        return bool(answers) and 200 <= answers[-1] < 300
