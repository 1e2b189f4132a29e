"""singer-sdk's METRIC lines from the tap's own sync path, and SCHEMA messages as the SDK
writes them: what Meltano users and log pipelines read of any SDK tap.

End to end: the real tap process against the sandbox on loopback, its stdout and stderr
read as a target and a log pipeline would."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from tap_commerce_exports.http.metrics import endpoint
from tests.sandbox_fixtures import account_config
from tests.tap_harness import run_tap

pytestmark = pytest.mark.e2e

SANDBOX_SETTINGS = dict(processing_delay=0.05, nc_rate_limit=1000, accounts={"stores": 2})
RANGE = {"start_date": "2025-01-01T00:00:00Z", "end_date": "2025-01-09T00:00:00Z", "window_days": 4}
FAST = {"poll_interval": 0.05, "poll_max_interval": 0.2}


def metric_points(stderr: str) -> list[dict]:
    """Every METRIC line's JSON, as a log pipeline parses them."""
    return [json.loads(m) for m in re.findall(r"METRIC: (\{.*\})$", stderr, flags=re.M)]


def test_record_counts_per_stream_and_account_equal_the_records_emitted(sandbox):
    stores = ["store-1", "store-2"]
    config = {
        **account_config(sandbox, "nextcommerce"),
        **RANGE,
        **FAST,
        "accounts": [
            {"store": s, "api_url": sandbox.store_url(s), "access_token": f"token-{s}"} for s in stores
        ],
    }
    run = run_tap(config, streams=["orders", "customers"])
    assert run.returncode == 0, run.stderr[-2000:]

    emitted = Counter((m["stream"], m["record"]["_account"]) for m in run.messages if m["type"] == "RECORD")
    counted: Counter[tuple[str, str]] = Counter()
    for point in metric_points(run.stderr):
        if point["metric"] == "record_count":
            assert point["type"] == "counter"
            counted[(point["tags"]["stream"], point["tags"]["context"]["account"])] += point["value"]
    assert set(emitted) == {(s, a) for s in ("orders", "customers") for a in stores}
    assert counted == emitted


def test_requests_downloads_and_each_streams_sync_are_timed(sandbox):
    config = {**account_config(sandbox, "nextcommerce"), **RANGE, **FAST}
    run = run_tap(config, streams=["orders"])
    assert run.returncode == 0, run.stderr[-2000:]
    points = metric_points(run.stderr)

    requests = [p for p in points if p["metric"] == "http_request_duration"]
    endpoints = {p["tags"]["endpoint"] for p in requests}
    assert {"exports", "exports/{id}", "download"} <= endpoints, endpoints
    assert all(p["type"] == "timer" and p["value"] >= 0 and "pid" in p["tags"] for p in requests)
    assert {p["tags"]["status"] for p in requests} == {"succeeded"}
    (sync,) = [p for p in points if p["metric"] == "sync_duration"]
    assert sync["tags"]["stream"] == "orders" and sync["tags"]["status"] == "succeeded"
    assert sync["tags"]["context"] == {"account": sandbox.config.store}


def test_every_schema_message_names_its_bookmark_property_as_the_sdks_do(sandbox):
    config = {**account_config(sandbox, "nextcommerce"), **RANGE, **FAST}
    run = run_tap(config, streams=["orders", "customers"])
    assert run.returncode == 0, run.stderr[-2000:]
    schemas = [m for m in run.messages if m["type"] == "SCHEMA"]
    assert {m["stream"]: m["bookmark_properties"] for m in schemas} == {
        "orders": ["created_at"],
        "customers": ["date_joined"],
    }


def test_an_endpoint_tag_is_the_path_with_ids_folded():
    assert endpoint("/api/admin/", "/api/admin/exports/123/") == "exports/{id}"
    assert endpoint("", "/v3/merchants/M2/exports/") == "v3/merchants/{id}/exports"
    assert endpoint("/api/admin/", "/api/admin/") == "/"
