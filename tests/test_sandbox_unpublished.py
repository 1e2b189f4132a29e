"""The sandbox's settings for facts the providers leave open (``sandbox/config.py`` lists
them): each one changes exactly the answer it names."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from commerce_sandbox import SandboxConfig, SandboxServer

NC = {"Authorization": "Bearer sandbox-token", "X-29Next-API-Version": "2024-04-01"}


def call(url: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None):
    data = json.dumps(body).encode() if body is not None else None
    hdrs = {**(headers or {}), **({"Content-Type": "application/json"} if data else {})}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, hdrs, method=method), timeout=10) as r:
            raw, status, ctype = r.read(), r.status, r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        raw, status, ctype = err.read(), err.code, err.headers.get("Content-Type", "")
    return status, (json.loads(raw) if "json" in ctype and raw else raw)


@pytest.fixture(scope="module")
def sb():
    cfg = SandboxConfig(port=0, processing_delay=0.01, nc_rate_limit=0, fake_now="2025-06-01T20:00:00Z")
    with SandboxServer(cfg) as server:
        body = {"type": "order_list", "date_from": "2025-01-01T00:00:00Z", "date_to": "2025-01-02T00:00:00Z"}
        assert call(server.api_url + "exports/", "POST", body, NC)[0] == 201  # created 2025-06-01T20:00Z
        yield server


@pytest.fixture(autouse=True)
def _reset(sb):
    yield
    sb.control(
        nc_list_day_offset=0, nc_failed_status="failed", fault_expired_url=False, file_expired_status=403
    )


@pytest.mark.parametrize(
    ("offset", "query", "listed"),
    [
        (0, "date_created_from=2025-06-01", True),
        (0, "date_created_from=2025-06-02", False),
        (240, "date_created_from=2025-06-02", True),  # 2025-06-02T00:00+04:00 is 20:00Z
        (0, "date_created_to=2025-05-31", False),
        (-300, "date_created_to=2025-06-01", True),
        (300, "date_created_to=2025-06-01", False),  # the day ended at 19:00Z
    ],
)
def test_the_list_filters_day_is_read_in_the_configured_time_zone(sb, offset, query, listed):
    sb.control(nc_list_day_offset=offset)
    status, body = call(f"{sb.api_url}exports/?{query}", headers=NC)
    assert status == 200 and bool(body["results"]) is listed


def test_a_failed_next_commerce_export_shows_the_configured_status_word(sb):
    sb.control(nc_failed_status="error", fault_export_failed=1)
    body = {"type": "customer_list", "date_from": "2025-01-01T00:00:00Z", "date_to": "2025-01-02T00:00:00Z"}
    export = call(sb.api_url + "exports/", "POST", body, NC)[1]
    sb.control(complete_exports=True)
    assert call(f"{sb.api_url}exports/{export['id']}/", headers=NC)[1]["status"] == "error"
    assert call(f"{sb.api_url}exports/{export['id']}/download/", headers=NC)[0] == 409


@pytest.mark.parametrize("status", [403, 404, 410])
def test_an_expired_file_url_gets_the_configured_answer(sb, status):
    sb.control(fault_expired_url=True, file_expired_status=status)
    body = {"type": "return_list", "date_from": "2025-01-01T00:00:00Z", "date_to": "2025-01-03T00:00:00Z"}
    export = call(sb.api_url + "exports/", "POST", body, NC)[1]
    sb.control(complete_exports=True)
    url = call(f"{sb.api_url}exports/{export['id']}/download/", headers=NC)[1]["url"]
    assert call(url)[0] == status
    assert call(url)[0] == 200, "only the first download is refused"


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("nc_list_day_offset", 1440),
        ("nc_failed_status", "available"),
        ("clover_failed_status", "DONE"),
        ("file_expired_status", 500),
    ],
)
def test_a_value_that_would_not_vary_the_fact_is_refused(setting, value):
    with pytest.raises(ValueError, match=setting):
        SandboxConfig(**{setting: value})
