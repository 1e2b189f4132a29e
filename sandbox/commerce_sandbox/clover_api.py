"""Clover REST v3 Export API (``/v3/merchants/{mId}/exports``), as the contract describes.

Order of checks: injected 500/429 bursts, the bearer token (401), Clover's throttles
(an early retry while a ``retry-after`` is running gets a longer wait; more than
``clover_max_concurrent_requests`` in flight or ``clover_rate_limit`` per second ->
429 with a lowercase ``retry-after``), the merchant (404), then the endpoint. Creating
an export adds: body validation (400, at most 30 days), availability hours (503),
injected 503s, and the running-export limit (503).

Several merchants (``sandbox.accounts``): a token opens only its own merchant (another
merchant's token: 401, as Clover answers a token without access); a token of no
merchant is 401 before anything else; a known token on an unknown merchant id is the
404 of before. Per-token limits are per merchant; the app-wide ones
(``clover_app_rate_limit``, ``clover_app_max_concurrent_requests``) count every
merchant's requests together; the running-export cap is per merchant
(``clover_max_running``) and, when ``clover_app_max_running`` is set, for the whole app too.
"""

from __future__ import annotations

import re
import time
from typing import Any

from commerce_sandbox.accounts import CLOVER, Account, by_token
from commerce_sandbox.config import CLOVER_TYPES
from commerce_sandbox.faults import in_clover_hours
from commerce_sandbox.http_util import Request, Response, json_response
from commerce_sandbox.state import ExportJob, SandboxState

MAX_RANGE_MS = 30 * 86_400_000
#: Files are deleted 24 h after the export finishes.
AVAILABLE_MS = 24 * 3_600_000
_PATH_RE = re.compile(r"^/v3/merchants/([^/]+)/exports/?(?:([^/]+)/?)?$")
#: ``GET /v3/merchants/{mId}``: the merchant itself (what a connection test reads).
_MERCHANT_RE = re.compile(r"^/v3/merchants/([^/]+)/?$")
#: The in-flight and rate-limit key of the app-wide limits (every merchant's tokens).
APP_KEY = "\x00app"


def export_object(state: SandboxState, job: ExportJob) -> dict[str, Any]:
    """The export object; with ``availableUntil`` and fresh signed ``exportUrls`` when done."""
    cfg = state.config
    now = state.clock.mono()
    phase = job.phase(now)
    done = "COMPLETE" if cfg.clover_legacy_complete else "DONE"
    failed = cfg.clover_failed_status  # "anything else is a failed export"
    status = {"pending": "PENDING", "running": "IN_PROGRESS", "ready": done, "failed": failed}[phase]
    if job.never_ready:
        status = "IN_PROGRESS"
    created_ms = int(job.created_wall * 1000)
    elapsed_ms = int(min(now - job.created_mono, job.delay) * 1000)
    obj: dict[str, Any] = {
        "id": job.id,
        "type": job.export_type,
        "status": status,
        "percentComplete": job.percent(now),
        "startTime": job.params["startTime"],
        "endTime": job.params["endTime"],
        "createdTime": created_ms,
        "modifiedTime": created_ms + max(0, elapsed_ms),
        "merchantRef": {"id": job.account},
    }
    if phase == "ready":
        obj["availableUntil"] = created_ms + int(job.delay * 1000) + AVAILABLE_MS
        obj["exportUrls"] = {
            "elements": [{"url": state.signed_url(path), "export": {"id": job.id}} for path in job.files]
        }
    return obj


def _throttle(state: SandboxState, headers_wait: int, message: str) -> Response:
    state.stats.incr("429s_sent")
    return json_response(429, {"message": message}, [("retry-after", str(headers_wait))])


def handle(state: SandboxState, req: Request) -> Response:
    """Serve one request under ``/v3/``."""
    m = _PATH_RE.match(req.path)
    merchant = _MERCHANT_RE.match(req.path)
    kind = "clover_merchant" if merchant else "clover_other"
    if m:
        kind = "clover_get" if m.group(2) else ("clover_create" if req.method == "POST" else "clover_list")
    state.stats.request(kind)
    key = req.bearer() or f"ip:{req.client}"
    merchants = state.accounts(CLOVER)
    found = m or merchant
    path_merchant = found.group(1) if found else None
    owner = by_token(state.config, CLOVER).get(req.bearer() or "")
    inflight = state.clover_inflight.enter(key)
    app_inflight = state.clover_inflight.enter(APP_KEY) if owner else 0
    state.stats.observe_max("clover_concurrent", inflight)
    state.stats.observe_max("clover_concurrent_app", app_inflight)
    if owner:
        state.stats.account_incr(CLOVER, owner.name, "requests")
        state.stats.account_max(CLOVER, owner.name, "max_concurrent_requests", inflight)
    try:
        cfg = state.config
        fault_target = owner.name if owner else path_merchant
        if state.take_fault("fault_500", fault_target):
            state.stats.incr("500s_sent")
            return json_response(500, {"message": "Internal Server Error"})
        if state.take_fault("fault_429_burst", fault_target):
            return _throttle(state, cfg.retry_after, "Too many requests")
        token = req.bearer()
        if token is None or owner is None:
            return json_response(401, {"message": "401 Unauthorized"})
        if path_merchant in merchants and path_merchant != owner.name:
            state.stats.account_incr(CLOVER, owner.name, "unauthorized")
            return json_response(401, {"message": "401 Unauthorized"})
        now = state.clock.mono()
        early = state.clover_penalty.check(token, now, cfg.retry_after)
        if early is not None:
            return _throttle(state, early, "Too many requests: retried before retry-after elapsed")
        if inflight > cfg.clover_max_concurrent_requests:
            wait = state.clover_penalty.punish(token, now, cfg.retry_after)
            return _throttle(state, wait, "Too many concurrent requests")
        if not state.clover_limiter.allow(token, cfg.clover_rate_limit, now):
            wait = state.clover_penalty.punish(token, now, cfg.retry_after)
            return _throttle(state, wait, "Too many requests")
        if 0 < cfg.clover_app_max_concurrent_requests < app_inflight:
            wait = state.clover_penalty.punish(token, now, cfg.retry_after)
            return _throttle(state, wait, "Too many concurrent requests for this app")
        if not state.clover_limiter.allow(APP_KEY, cfg.clover_app_rate_limit, now):
            wait = state.clover_penalty.punish(token, now, cfg.retry_after)
            return _throttle(state, wait, "Too many requests for this app")
        if cfg.clover_request_delay > 0:  # admitted: now "work" while counted in flight
            time.sleep(cfg.clover_request_delay)
        if merchant and req.method == "GET":
            if merchant.group(1) != owner.name:
                return json_response(
                    404, {"message": f"Merchant {merchant.group(1)} not found (unknown merchant id)"}
                )
            return json_response(
                200,
                {
                    "id": owner.name,
                    "name": "Sandbox Merchant" if owner.default else f"Sandbox Merchant {owner.name}",
                    "href": f"/v3/merchants/{owner.name}",
                },
            )
        if not m:
            return json_response(404, {"message": "Not Found"})
        if m.group(1) != owner.name:
            return json_response(404, {"message": f"Merchant {m.group(1)} not found (unknown merchant id)"})
        if kind == "clover_create":
            return _create(state, req, owner)
        if req.method != "GET":
            return json_response(405, {"message": "Method Not Allowed"})
        if kind == "clover_list":
            mine = [j for j in list(state.clover_exports.values()) if j.account == owner.name]
            jobs = sorted(mine, key=lambda j: j.created_mono, reverse=True)
            return json_response(200, {"elements": [export_object(state, j) for j in jobs]})
        job = state.clover_exports.get(m.group(2) or "")
        if job is None or job.account != owner.name:
            return json_response(404, {"message": f"Export {m.group(2)} not found"})
        return json_response(200, export_object(state, job))
    finally:
        state.clover_inflight.leave(key)
        if owner:
            state.clover_inflight.leave(APP_KEY)


def _unavailable(state: SandboxState, reason: str) -> Response:
    """A 503 on create, its body shaped by ``clover_503_body`` (unpublished), counted."""
    cfg = state.config
    state.stats.incr("503s_sent")
    headers = [("retry-after", str(cfg.clover_503_retry_after))] if cfg.clover_503_retry_after else []
    if cfg.clover_503_body == "text":
        return Response(503, reason.encode("utf-8"), "text/plain; charset=utf-8", headers)
    if cfg.clover_503_body == "empty":
        return Response(503, b"", "text/plain", headers)
    if cfg.clover_503_body == "error":
        return json_response(503, {"error": {"code": 503, "message": reason}}, headers)
    return json_response(503, {"message": reason}, headers)


def _create(state: SandboxState, req: Request, account: Account) -> Response:
    cfg = state.config
    try:
        body = req.json()
    except ValueError:
        return json_response(400, {"message": "Request body is not valid JSON"})
    if not isinstance(body, dict):
        return json_response(400, {"message": "Request body must be a JSON object"})
    export_type = body.get("type")
    if export_type not in CLOVER_TYPES:
        return json_response(400, {"message": f"Invalid export type {export_type!r}: use ORDERS or PAYMENTS"})
    start, end = body.get("startTime"), body.get("endTime")
    if not (
        isinstance(start, int)
        and isinstance(end, int)
        and not isinstance(start, bool)
        and not isinstance(end, bool)
    ):
        return json_response(400, {"message": "startTime and endTime are required, in epoch milliseconds"})
    if end <= start:
        return json_response(400, {"message": "endTime must be after startTime"})
    if end - start > MAX_RANGE_MS or (cfg.clover_strict_range and end - start >= MAX_RANGE_MS):
        return json_response(400, {"message": "The maximum time range of an export is 30 days"})
    if not in_clover_hours(cfg.clover_hours, state.clock.wall()):
        return _unavailable(state, f"outside availability window ({cfg.clover_hours.upper()} export hours)")
    if state.take_fault("fault_clover_503", account.name):
        return _unavailable(state, "Service Unavailable")
    with state.lock:
        running = state.clover_running(account.name)
        if running >= cfg.clover_max_running:
            return _unavailable(state, "Too many exports in progress; wait for one to finish")
        if cfg.clover_app_max_running and state.clover_running() >= cfg.clover_app_max_running:
            state.stats.incr("503s_app_running")
            return _unavailable(state, "Too many exports in progress; wait for one to finish")
        job = state.new_job("clover", export_type, {"startTime": start, "endTime": end}, account)
    state.stats.observe_max("clover_running", running + 1)
    state.stats.observe_max("clover_running_all", state.clover_running())
    state.stats.account_max(CLOVER, account.name, "max_exports_running", running + 1)
    if state.take_fault("fault_create_answer_lost", account.name):
        state.stats.incr("create_answers_lost")
        return json_response(502, {"message": "Bad Gateway"})
    return json_response(200, export_object(state, job))
