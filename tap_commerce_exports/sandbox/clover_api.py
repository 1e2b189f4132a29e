"""Clover REST v3 Export API (``/v3/merchants/{mId}/exports``), as the contract describes.

Order of checks: injected 500/429 bursts, the bearer token (401), Clover's throttles
(an early retry while a ``retry-after`` is running gets a longer wait; more than
``clover_max_concurrent_requests`` in flight or ``clover_rate_limit`` per second ->
429 with a lowercase ``retry-after``), the merchant (404), then the endpoint. Creating
an export adds: body validation (400, at most 30 days), availability hours (503),
injected 503s, and the running-export limit (503).
"""

from __future__ import annotations

import re
import time
from typing import Any

from tap_commerce_exports.sandbox.config import CLOVER_TYPES
from tap_commerce_exports.sandbox.faults import in_clover_hours
from tap_commerce_exports.sandbox.http_util import Request, Response, json_response
from tap_commerce_exports.sandbox.state import ExportJob, SandboxState

MAX_RANGE_MS = 30 * 86_400_000
#: Files are deleted 24 h after the export finishes.
AVAILABLE_MS = 24 * 3_600_000
_PATH_RE = re.compile(r"^/v3/merchants/([^/]+)/exports/?(?:([^/]+)/?)?$")
#: ``GET /v3/merchants/{mId}``: the merchant itself (what a connection test reads).
_MERCHANT_RE = re.compile(r"^/v3/merchants/([^/]+)/?$")


def export_object(state: SandboxState, job: ExportJob) -> dict[str, Any]:
    """The export object; with ``availableUntil`` and fresh signed ``exportUrls`` when done."""
    cfg = state.config
    now = state.clock.mono()
    phase = job.phase(now)
    done = "COMPLETE" if cfg.clover_legacy_complete else "DONE"
    status = {"pending": "PENDING", "running": "IN_PROGRESS", "ready": done, "failed": "FAILED"}[phase]
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
        "merchantRef": {"id": cfg.merchant_id},
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
    inflight = state.clover_inflight.enter(key)
    state.stats.observe_max("clover_concurrent", inflight)
    try:
        cfg = state.config
        if state.take_fault("fault_500"):
            state.stats.incr("500s_sent")
            return json_response(500, {"message": "Internal Server Error"})
        if state.take_fault("fault_429_burst"):
            return _throttle(state, cfg.retry_after, "Too many requests")
        token = req.bearer()
        if token is None or token != cfg.token:
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
        if cfg.clover_request_delay > 0:  # admitted: now "work" while counted in flight
            time.sleep(cfg.clover_request_delay)
        if merchant and req.method == "GET":
            if merchant.group(1) != cfg.merchant_id:
                return json_response(
                    404, {"message": f"Merchant {merchant.group(1)} not found (unknown merchant id)"}
                )
            return json_response(
                200,
                {
                    "id": cfg.merchant_id,
                    "name": "Sandbox Merchant",
                    "href": f"/v3/merchants/{cfg.merchant_id}",
                },
            )
        if not m:
            return json_response(404, {"message": "Not Found"})
        if m.group(1) != cfg.merchant_id:
            return json_response(404, {"message": f"Merchant {m.group(1)} not found (unknown merchant id)"})
        if kind == "clover_create":
            return _create(state, req)
        if req.method != "GET":
            return json_response(405, {"message": "Method Not Allowed"})
        if kind == "clover_list":
            jobs = sorted(state.clover_exports.values(), key=lambda j: j.created_mono, reverse=True)
            return json_response(200, {"elements": [export_object(state, j) for j in jobs]})
        job = state.clover_exports.get(m.group(2) or "")
        if job is None:
            return json_response(404, {"message": f"Export {m.group(2)} not found"})
        return json_response(200, export_object(state, job))
    finally:
        state.clover_inflight.leave(key)


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


def _create(state: SandboxState, req: Request) -> Response:
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
    if end - start > MAX_RANGE_MS:
        return json_response(400, {"message": "The maximum time range of an export is 30 days"})
    if not in_clover_hours(cfg.clover_hours, state.clock.wall()):
        return _unavailable(state, f"outside availability window ({cfg.clover_hours.upper()} export hours)")
    if state.take_fault("fault_clover_503"):
        return _unavailable(state, "Service Unavailable")
    with state.lock:
        running = state.clover_running()
        if running >= cfg.clover_max_running:
            return _unavailable(state, "Too many exports in progress; wait for one to finish")
        job = state.new_job("clover", export_type, {"startTime": start, "endTime": end})
    state.stats.observe_max("clover_running", running + 1)
    if state.take_fault("fault_create_answer_lost"):
        state.stats.incr("create_answers_lost")
        return json_response(502, {"message": "Bad Gateway"})
    return json_response(200, export_object(state, job))
