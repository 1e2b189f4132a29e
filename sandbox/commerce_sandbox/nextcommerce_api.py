"""Next Commerce Admin API, exports part (``/api/admin/...``), as the contract describes.

Checks run in the order a client meets them on the real service: injected faults
(429/500 bursts) first, then authentication (401, DRF-style ``{"detail": ...}``), the
``X-29Next-API-Version`` header (400), the per-token rate limit (429 +
``Retry-After``), and finally the endpoint itself.

Several stores (``sandbox.accounts``): each request names its store by path prefix
(``/stores/{store}/api/admin/``; none: the default store). An unknown store is a 404
(no such host); another store's token is the same 401 as an invalid one; exports,
their list and their files belong to their store.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

from commerce_sandbox.accounts import NEXTCOMMERCE, Account
from commerce_sandbox.config import NC_TYPES, parse_instant
from commerce_sandbox.http_util import Request, Response, json_response
from commerce_sandbox.state import ExportJob, SandboxState, to_us
from commerce_sandbox.unpublished import metadata_answer, store_answer

API_VERSION = "2024-04-01"
PAGE_SIZE = 20
_EXPORT_RE = re.compile(r"^exports/(\d+)/(download/)?$")


def export_object(state: SandboxState, job: ExportJob) -> dict[str, Any]:
    """The Export object: ``id``, ``created_at``, ``type``, ``status``, dates, ``url``."""
    phase = job.phase(state.clock.mono())
    failed = state.config.nc_failed_status  # no failure status is published
    status = {"pending": "pending", "running": "pending", "ready": "available", "failed": failed}[phase]
    return {
        "id": job.id,
        "created_at": _iso(datetime.fromtimestamp(job.created_wall, tz=timezone.utc)),
        "type": job.export_type,
        "status": status,
        "date_from": job.params["date_from"],
        "date_to": job.params["date_to"],
        "url": f"{_base_url(state, job.account)}exports/{job.id}/",
    }


def _base_url(state: SandboxState, store: str) -> str:
    account = state.account(NEXTCOMMERCE, store)
    return state.nc_api_url(account) if account else state.api_url


def _iso(dt: datetime) -> str:
    """UTC ISO-8601 with ``Z``; microseconds only when present."""
    text = dt.astimezone(timezone.utc).isoformat()
    return text.replace("+00:00", "Z")


def _kind(method: str, rel: str) -> str:
    if rel == "exports/types/":
        return "nc_types"
    if rel == "exports/":
        return "nc_create" if method == "POST" else "nc_list"
    m = _EXPORT_RE.match(rel)
    if m:
        return "nc_download_url" if m.group(2) else "nc_get"
    return "nc_other"


def handle(state: SandboxState, req: Request, rel: str, store: str | None = None) -> Response:
    """Serve one request under a store's ``api/admin/``; ``rel`` is the path after it,
    ``store`` the path's store (None: the default store)."""
    kind = _kind(req.method, rel)
    state.stats.request(kind)
    cfg = state.config
    account = state.account(NEXTCOMMERCE, store)
    if account is None:
        return json_response(404, {"detail": "Not found."})
    name = account.name
    state.stats.account_incr(NEXTCOMMERCE, name, "requests")
    if state.take_fault("fault_500", name):
        state.stats.incr("500s_sent")
        return json_response(500, {"detail": "A server error occurred."})
    if state.take_fault("fault_429_burst", name):
        state.stats.incr("429s_sent")
        return json_response(
            429, {"detail": "Request was throttled."}, [("Retry-After", str(cfg.retry_after))]
        )
    token = req.bearer()
    if token is None:
        return json_response(401, {"detail": "Authentication credentials were not provided."})
    if token != account.token:
        state.stats.account_incr(NEXTCOMMERCE, name, "unauthorized")
        return json_response(401, {"detail": "Invalid token."})
    version = req.header("X-29Next-API-Version")
    if version is None:
        return json_response(
            400, {"detail": f"Missing required header X-29Next-API-Version (use {API_VERSION})."}
        )
    if version.strip() != API_VERSION:
        return json_response(
            400, {"detail": f"Unsupported API version {version!r}; this API serves {API_VERSION}."}
        )
    if not state.nc_limiter.allow(token, cfg.nc_rate_limit, state.clock.mono()):
        state.stats.incr("429s_sent")
        wait = cfg.retry_after
        return json_response(
            429,
            {"detail": f"Request was throttled. Expected available in {wait} seconds."},
            [("Retry-After", str(wait))],
        )

    if rel in ("store/", "metadata/") and req.method == "GET":  # scopes store:/metadata:read
        status, body = (store_answer if rel == "store/" else metadata_answer)(cfg)
        return json_response(status, body)
    if kind == "nc_types":
        if req.method != "GET":
            return _method_not_allowed(req)
        return json_response(200, {"types": [{"code": c, "name": n} for c, n in NC_TYPES.items()]})
    if kind == "nc_create":
        return _create(state, req, account)
    if kind == "nc_list":
        if req.method != "GET":
            return _method_not_allowed(req)
        return _list(state, req, account)
    m = _EXPORT_RE.match(rel)
    if m:
        if req.method != "GET":
            return _method_not_allowed(req)
        job = state.nc_exports.get(int(m.group(1)))
        if job is None or job.account != name:
            return json_response(404, {"detail": "Not found."})
        if m.group(2):
            return _download(state, job)
        return json_response(200, export_object(state, job))
    return json_response(404, {"detail": "Not found."})


def _method_not_allowed(req: Request) -> Response:
    return json_response(405, {"detail": f'Method "{req.method}" not allowed.'})


def _create(state: SandboxState, req: Request, account: Account) -> Response:
    try:
        body = req.json()
    except ValueError:
        return json_response(400, {"detail": "JSON parse error."})
    if not isinstance(body, dict):
        return json_response(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
    errors: dict[str, list[str]] = {}
    export_type = body.get("type")
    if export_type is None:
        errors["type"] = ["This field is required."]
    elif export_type not in NC_TYPES:
        errors["type"] = [f'"{export_type}" is not a valid choice.']
    parsed: dict[str, datetime] = {}
    for name in ("date_from", "date_to"):
        value = body.get(name)
        if value is None:
            errors[name] = ["This field is required."]
            continue
        try:
            parsed[name] = parse_instant(str(value))
        except ValueError:
            errors[name] = [
                "Datetime has wrong format. Use one of these formats instead: "
                "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
            ]
    if not errors and parsed["date_to"] <= parsed["date_from"]:
        errors["date_to"] = ["date_to must be after date_from."]
    if errors:
        return json_response(400, errors)
    params = {
        "date_from": _iso(parsed["date_from"]),
        "date_to": _iso(parsed["date_to"]),
        "_from_us": to_us(parsed["date_from"]),
        "_to_us": to_us(parsed["date_to"]),
    }
    job = state.new_job("nextcommerce", str(export_type), params, account)
    if state.take_fault("fault_create_answer_lost", account.name):
        state.stats.incr("create_answers_lost")
        return json_response(502, {"detail": "Bad gateway."})
    return json_response(201, export_object(state, job))


def _download(state: SandboxState, job: ExportJob) -> Response:
    obj = export_object(state, job)
    if obj["status"] != "available" or not job.files:
        if obj["status"] == state.config.nc_failed_status:
            return json_response(409, {"detail": f"Export {job.id} failed; it has no file."})
        return json_response(
            409, {"detail": f"Export {job.id} is not available yet (status: {obj['status']})."}
        )
    return json_response(200, {"url": state.signed_url(job.files[0])})


def _parse_day(value: str, offset_minutes: int) -> datetime | None:
    """A filter's bound: ``YYYY-MM-DD`` is midnight at ``nc_list_day_offset`` (which
    time zone the API means is not published); an instant is itself."""
    try:
        if len(value) == 10:
            return datetime.fromisoformat(value).replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
        return parse_instant(value)
    except ValueError:
        return None


def _list(state: SandboxState, req: Request, account: Account) -> Response:
    """The store's exports newest first, :data:`PAGE_SIZE` per page, opaque cursor;
    absolute next/previous."""
    jobs = sorted(
        (j for j in list(state.nc_exports.values()) if j.account == account.name),
        key=lambda j: j.id,
        reverse=True,
    )
    export_type = req.query.get("type")
    if export_type:
        jobs = [j for j in jobs if j.export_type == export_type]
    for name in ("date_created_from", "date_created_to"):
        value = req.query.get(name)
        if not value:
            continue
        bound = _parse_day(value, state.config.nc_list_day_offset)
        if bound is None:
            return json_response(400, {name: ["Enter a valid date."]})
        if name.endswith("from"):
            jobs = [j for j in jobs if j.created_wall >= bound.timestamp()]
        else:
            limit = bound.timestamp() + (86400 if len(value) == 10 else 0)
            jobs = [
                j for j in jobs if j.created_wall < limit or (len(value) != 10 and j.created_wall == limit)
            ]
    offset = 0
    cursor = req.query.get("cursor")
    if cursor:
        try:
            offset = int(json.loads(base64.urlsafe_b64decode(cursor.encode()).decode())["o"])
        except (ValueError, KeyError, TypeError):
            return json_response(404, {"detail": "Invalid cursor"})
    page = jobs[offset : offset + PAGE_SIZE]
    filters = {k: v for k, v in req.query.items() if k != "cursor"}

    def link(new_offset: int) -> str:
        query = dict(filters)
        query["cursor"] = base64.urlsafe_b64encode(json.dumps({"o": new_offset}).encode()).decode()
        return f"{state.nc_api_url(account)}exports/?{urlencode(query)}"

    return json_response(
        200,
        {
            "next": link(offset + PAGE_SIZE) if offset + PAGE_SIZE < len(jobs) else None,
            "previous": link(max(0, offset - PAGE_SIZE)) if offset > 0 else None,
            "results": [export_object(state, j) for j in page],
        },
    )
