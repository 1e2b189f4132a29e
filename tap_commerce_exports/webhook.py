"""A small receiver for Next Commerce's ``export.created`` webhook, run during a sync.

It wakes the job waiting on that export so the download starts at once; polling goes
on at ``poll_max_interval`` as a fallback. Trust rules: the body is bounded (64 KiB), the
``X-29Next-Signature`` HMAC-SHA256 is checked in constant time, keyed by a store's
signing secret, over the raw body OR over the body re-serialized with Python's default
``json.dumps`` (the provider's own example verifies the latter; live deliveries have been
seen to verify over the former, and which one a store sends is not published).

Why every correctly signed delivery is answered 200: the subscription is store-wide. It
fires for exports made in the dashboard, for other stores of the same secret, for
retries; the provider retries any other answer for days, e-mails every store admin
about a failing webhook and deactivates it (a 410 at once). So an unknown export, an
event for another store, a replay or another event type is ignored with a 200, never a
404 or 410; only an unsigned or malformed delivery gets a 4xx.

Several stores: a delivery wakes an export only in the stores whose own secret signed it
(an event naming no store never reaches another store's exports), and the replay guard
is keyed by (store, ``event_id``), so one store's event id cannot mute another's.

The receiver faces the internet, so every peer is untrusted and every resource bounded
(:class:`WebhookLimits`): at most ``max_connections`` at once (the excess is answered
503 and closed by the accepting thread, before any thread or buffer is spent on it), a
read timeout per socket read, and a deadline per connection that cuts a client dripping
a byte at a time. Malformed input of any kind (non-ASCII signature, ``Content-Length:
²``, JSON nested 32,000 deep) gets a 4xx and a short log line, never a traceback; those
log lines, and the lines of accepted deliveries, are aggregated per interval so neither a
flood nor a busy store can flood the log.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tap_commerce_exports.errors import ConfigError

LOGGER = logging.getLogger("tap_commerce_exports.webhook")
MAX_BODY = 64 * 1024
_MAX_LENGTH_DIGITS = 12


def signature(secret: str, payload: object) -> str:
    """The signature of ``payload`` (a parsed JSON body) as the provider's guide computes
    it: over its re-serialization with Python's default ``json.dumps``."""
    return raw_signature(secret, json.dumps(payload).encode())


def raw_signature(secret: str, body: bytes) -> str:
    """The signature of the raw ``body`` bytes, as live deliveries may be signed."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class WebhookLimits:
    """Bounds on what webhook clients can hold. The provider answers within ~20 s and
    sends one small request per connection, so these leave it ample room."""

    max_connections: int = 32
    read_timeout: float = 10.0  # one socket read
    connection_deadline: float = 30.0  # a whole connection, however it drips
    replay_window: float = 86400.0  # seconds an event_id is remembered...
    replay_memory: int = 4096  # ...and at most this many of them
    log_interval: float = 60.0  # refusals and acceptances: one line per interval per kind


class _BoundedLog:
    """One line per kind per interval, with the count of the ones it held back."""

    def __init__(self, interval: float, clock: Callable[[], float]) -> None:
        self._interval = interval
        self._clock = clock
        self._next: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def log(self, level: int, kind: str, text: str) -> None:
        """Log ``text`` unless a line of ``kind`` was logged less than an interval ago."""
        now = self._clock()
        with self._lock:
            if now < self._next.get(kind, float("-inf")):
                self._held[kind] = self._held.get(kind, 0) + 1
                return
            held = self._held.pop(kind, 0)
            self._next[kind] = now + self._interval
        more = f" ({held} more since the last such line)" if held else ""
        LOGGER.log(level, "%s%s", text, more)

    def refused(self, reason: str) -> None:
        self.log(logging.WARNING, reason, f"webhook delivery refused: {reason}")


class _ReplayGuard:
    """Remembers handled (store, ``event_id``) pairs for a bounded time and number."""

    def __init__(self, window: float, memory: int, clock: Callable[[], float]) -> None:
        self._window = window
        self._memory = memory
        self._clock = clock
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def seen(self, event_id: tuple[str, str]) -> bool:
        now = self._clock()
        with self._lock:
            while self._seen:
                oldest, at = next(iter(self._seen.items()))
                if now - at <= self._window and len(self._seen) <= self._memory:
                    break
                del self._seen[oldest]
            return event_id in self._seen

    def remember(self, event_id: tuple[str, str]) -> None:
        with self._lock:
            self._seen[event_id] = self._clock()
            self._seen.move_to_end(event_id)
            while len(self._seen) > self._memory:
                self._seen.popitem(last=False)


class _Reaper:
    """Cuts connections past their deadline (shutting the socket ends the blocked read)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._deadlines: dict[socket.socket, float] = {}
        self._cv = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="webhook-reaper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, sock: socket.socket, deadline: float) -> None:
        with self._cv:
            self._deadlines[sock] = deadline
            self._cv.notify()

    def discard(self, sock: socket.socket) -> None:
        with self._cv:
            self._deadlines.pop(sock, None)

    def stop(self, cut_all: bool = True) -> None:
        with self._cv:
            self._stopped = True
            socks = list(self._deadlines) if cut_all else []
            self._cv.notify()
        for sock in socks:
            _cut(sock)

    def _run(self) -> None:
        while True:
            with self._cv:
                if self._stopped:
                    return
                now = self._clock()
                due = [s for s, d in self._deadlines.items() if d <= now]
                for sock in due:
                    del self._deadlines[sock]
                wait = min((d - now for d in self._deadlines.values()), default=1.0)
            for sock in due:
                _cut(sock)
            with self._cv:
                if not self._stopped:
                    self._cv.wait(max(0.01, min(wait, 1.0)))


def _cut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already gone


_BUSY_BODY = b'{"detail": "busy, retry later"}'
_BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)


class WebhookReceiver:
    """Runs an HTTP server in a thread; calls ``on_export(id)`` for valid deliveries."""

    def __init__(
        self,
        host: str,
        port: int,
        secret: str,
        on_export: Callable[[str], bool],
        *,
        store: str | None = None,
        stores: Mapping[str, str] | None = None,
        on_account_export: Callable[[str, str | None], bool] | None = None,
        limits: WebhookLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """One store (``store``, ``secret``), or several: ``stores`` maps each store to its
        signing secret, and ``on_account_export(export_id, store)`` wakes that store's
        export: always a store whose own secret signed the delivery, whether or not the
        event names one."""
        self._on_export = on_export
        self._on_account_export = on_account_export
        self._store = (store or "").strip().lower() or None
        #: store ("" : whichever the single store is) -> its signing secret
        self._stores: dict[str, str] = (
            {k.strip().lower(): v for k, v in stores.items()} if stores else {self._store or "": secret}
        )
        bounds = limits or WebhookLimits()
        self.limits = bounds
        self._clock = clock
        self._refusals = _BoundedLog(bounds.log_interval, clock)
        self._replays = _ReplayGuard(bounds.replay_window, bounds.replay_memory, clock)
        self._reaper = _Reaper(clock)
        self._active = 0
        self._active_lock = threading.Lock()
        #: connections answered 503 at once because ``max_connections`` were open
        self.refused_connections = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "tap-commerce-exports-webhook"
            timeout = bounds.read_timeout  # StreamRequestHandler sets it on the socket

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

        family = socket.AF_INET6 if ":" in host else socket.AF_INET

        class Server(ThreadingHTTPServer):
            address_family = family
            daemon_threads = True
            block_on_close = False
            request_queue_size = (
                128  # a burst is accepted (then admitted or refused), not left in SYN retries
            )

            def process_request(self, request: Any, client_address: Any) -> None:
                if not receiver._admit():
                    receiver._turn_away(request)
                    self.shutdown_request(request)
                    return
                receiver._reaper.add(request, receiver._clock() + bounds.connection_deadline)
                try:
                    super().process_request(request, client_address)
                except BaseException:  # no thread could be started: give the slot back
                    receiver._release(request)
                    raise

            def process_request_thread(self, request: Any, client_address: Any) -> None:
                try:
                    super().process_request_thread(request, client_address)
                finally:
                    receiver._release(request)

            def handle_error(self, request: Any, client_address: Any) -> None:
                # A peer that vanished, timed out or was cut: not worth a traceback.
                LOGGER.debug("webhook connection ended early")

        try:
            self._server = Server((host, port), Handler)
        except OSError as exc:
            shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            raise ConfigError(
                f"setting 'webhook_listen' is '{shown}': cannot listen there "
                f"({exc.strerror or type(exc).__name__}); pick a free port or another address"
            ) from None
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True, name="webhook-receiver"
        )

    # ------------------------------------------------------------------ connections
    def _admit(self) -> bool:
        with self._active_lock:
            if self._active >= self.limits.max_connections:
                self.refused_connections += 1
                return False
            self._active += 1
            return True

    def _release(self, request: socket.socket) -> None:
        self._reaper.discard(request)
        with self._active_lock:
            self._active -= 1

    def _turn_away(self, request: socket.socket) -> None:
        try:
            request.setblocking(False)
            request.send(_BUSY)
        except OSError:
            pass  # its buffer is full or it is gone: closing is answer enough
        self._refusals.refused(f"more than {self.limits.max_connections} connections open at once")

    @property
    def active_connections(self) -> int:
        with self._active_lock:
            return self._active

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._reaper.start()
        self._thread.start()
        host, port = self.address
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        LOGGER.info("listening for export.created webhooks on %s", shown)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._reaper.stop()

    # ------------------------------------------------------------------ deliveries
    def handle(self, headers: Message, rfile: io.BufferedIOBase) -> tuple[int, str]:
        """Validate one delivery; return (HTTP status, short reason)."""
        length = headers.get("Content-Length")
        if length is None or not length.isascii() or not length.isdigit() or len(length) > _MAX_LENGTH_DIGITS:
            return self._refuse(411, "Content-Length required", "no valid Content-Length")
        if int(length) > MAX_BODY:
            return self._refuse(413, "body too large", f"body over {MAX_BODY} bytes")
        try:
            raw = rfile.read(int(length))
        except OSError:  # timed out or cut by the deadline
            return self._refuse(408, "body not received in time", "body not received in time")
        if len(raw) < int(length):
            return self._refuse(400, "body shorter than Content-Length", "body shorter than Content-Length")
        try:
            payload = json.loads(raw)
            json.dumps(payload)  # serializable at all (and not nested too deep)
        except (ValueError, RecursionError):
            return self._refuse(400, "body is not JSON", "body is not JSON (or nested too deep)")
        given = (headers.get("X-29Next-Signature") or "").strip().lower()
        signers = self._signers(payload, raw, given) if given.isascii() else []
        if not signers:
            return self._refuse(401, "bad signature", "bad signature")
        # Signed: from here on every answer is a 200 (see the module's docstring).
        if not isinstance(payload, dict) or payload.get("event_type") != "export.created":
            return self._ignored("another event type", "ignored")
        named = _named_store(payload)
        stores = [s for s in signers if not s or named is None or _same_store(named, s)]
        if not stores:
            return self._ignored("an event for another store", "ignored: another store")
        event_id = payload.get("event_id")
        event = str(event_id) if isinstance(event_id, (str, int)) and not isinstance(event_id, bool) else None
        if event is not None:
            stores = [s for s in stores if not self._replays.seen((s, event))]
            if not stores:
                return self._ignored("a delivery already handled", "duplicate ignored")
        data = payload.get("data")
        export_id = data.get("id") if isinstance(data, dict) else None
        if isinstance(export_id, bool) or not isinstance(export_id, (str, int)) or len(str(export_id)) > 200:
            return self._ignored("an export.created without a usable export id", "ignored: no export id")
        woken = [s for s in stores if self._wake(str(export_id), s)]
        if not woken:  # an export made in the dashboard, or by an earlier run: not ours
            return self._ignored("an export this sync is not waiting for", "ignored: unknown export")
        for store in woken if event is not None else ():
            self._replays.remember((store, str(event)))
        self._refusals.log(logging.INFO, "accepted", f"webhook: export {export_id} is available")
        return 200, "ok"

    def _wake(self, export_id: str, store: str) -> bool:
        """Wake ``export_id`` of ``store`` ("" : the one store of a one-store receiver)."""
        if self._on_account_export is not None:
            return self._on_account_export(export_id, store or None)
        return self._on_export(export_id)

    def _ignored(self, what: str, answer: str) -> tuple[int, str]:
        self._refusals.log(logging.DEBUG, what, f"webhook: {what} was ignored")
        return 200, answer

    def _refuse(self, status: int, answer: str, why: str) -> tuple[int, str]:
        self._refusals.refused(why)
        return status, answer

    def _signers(self, payload: object, raw: bytes, given: str) -> list[str]:
        """The stores whose secret signed the delivery ("" : the one store of a receiver
        configured without one), over the raw body or its re-serialization. Empty
        secrets never verify: anyone can compute an HMAC keyed by nothing."""
        reserialized = json.dumps(payload).encode()
        found = []
        for store, secret in self._stores.items():
            if not secret:
                continue
            if hmac.compare_digest(raw_signature(secret, raw), given) or (
                reserialized != raw and hmac.compare_digest(raw_signature(secret, reserialized), given)
            ):
                found.append(store)
        return found


def _named_store(payload: object) -> str | None:
    """The store an event names (``webhook.store``), lower-cased; None if it names none."""
    hook = payload.get("webhook") if isinstance(payload, dict) else None
    named = hook.get("store") if isinstance(hook, dict) else None
    if not isinstance(named, str) or not named.strip():
        return None
    return named.strip().lower()


def _same_store(named: str, store: str) -> bool:
    """Whether an event's store is ``store``: the field's exact form is not published, so
    a bare subdomain and a full host (``store.29next.store``) both match."""
    return named == store or named.startswith(store + ".")
