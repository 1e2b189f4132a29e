"""The sandbox itself: does it emulate both export APIs as the contract says?

Fast: one in-process server (port 0, 50 ms processing), rate limits off unless a test
is about them, stdlib HTTP client only.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import http.client
import io
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from commerce_sandbox import SandboxConfig, SandboxServer
from commerce_sandbox.csvgen import normalize_header
from tap_commerce_exports.providers.clover_streams import CLOVER_STREAMS
from tap_commerce_exports.providers.nextcommerce_streams import NEXTCOMMERCE_STREAMS

UTC = timezone.utc
NC_HEADERS = {"Authorization": "Bearer sandbox-token", "X-29Next-API-Version": "2024-04-01"}
CL_HEADERS = {"Authorization": "Bearer sandbox-token"}
MERCHANT = "SANDBOXMERCHANT1"
RESET = dict(
    fault_429_burst=0,
    fault_500=0,
    fault_expired_url=False,
    fault_truncated_download=False,
    fault_hold_download=False,
    fault_export_failed=0,
    fault_never_ready=False,
    fault_clover_503=0,
    clover_503_body="message",
    clover_503_retry_after=0,
    clover_hours="off",
    fake_now=None,
    clock_offset=0.0,
    clover_legacy_complete=False,
    date_to_inclusive=True,
    header_style="mixed",
    nc_rate_limit=0,
    clover_rate_limit=0,
    clover_max_running=2,
    clover_objects_per_file=1000,
    processing_delay=0.05,
    webhook_url=None,
    webhook_secret=None,
    clover_request_delay=0.0,
    url_ttl=60.0,
    window_column_names=None,
    utc_offsets=None,
)


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def call(url: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None):
    """(status, parsed JSON or bytes, headers) without raising on HTTP errors."""
    data = json.dumps(body).encode() if body is not None else None
    hdrs = dict(headers or {})
    if data is not None:
        hdrs["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, headers=hdrs, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, raw, got = resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as err:
        status, raw, got = err.code, err.read(), err.headers
    ctype = got.get("Content-Type", "")
    return status, (json.loads(raw) if "json" in ctype and raw else raw), got


@pytest.fixture(scope="module")
def sb():
    with SandboxServer(SandboxConfig(port=0, **RESET)) as server:
        yield server


class HeldClock:
    """The sandbox's monotonic clock (rate limits, processing delays), moved by the test
    alone: what a window of one second or a delay allows does not depend on how fast
    this machine answers."""

    def __init__(self) -> None:
        # a day in the past: whatever a test stamps on it (an export's creation, a request
        # counted by a rate limit) is old news once the real clock is back, so no export
        # of one test holds a running slot in the next
        self.now = time.monotonic() - 86_400

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def held_clock(sb, monkeypatch) -> HeldClock:
    clock = HeldClock()
    monkeypatch.setattr(sb.state.clock, "mono", clock)
    return clock


@pytest.fixture(autouse=True)
def _reset(sb):
    sb.control(**RESET)
    yield
    sb.control(**RESET, complete_exports=True, reset_limits=True)


# --- helpers over the two APIs ---------------------------------------------------


def nc_create(sb, export_type: str, date_from: str, date_to: str) -> dict:
    status, body, _ = call(
        sb.api_url + "exports/",
        "POST",
        {"type": export_type, "date_from": date_from, "date_to": date_to},
        NC_HEADERS,
    )
    assert status == 201, body
    return body


def nc_wait(sb, export_id: int, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status, body, _ = call(f"{sb.api_url}exports/{export_id}/", headers=NC_HEADERS)
        assert status == 200, body
        if body["status"] != "pending" or time.monotonic() > deadline:
            return body
        time.sleep(0.02)


def nc_file(sb, export_type: str, date_from: str, date_to: str) -> bytes:
    export = nc_create(sb, export_type, date_from, date_to)
    assert nc_wait(sb, export["id"])["status"] == "available"
    status, body, _ = call(f"{sb.api_url}exports/{export['id']}/download/", headers=NC_HEADERS)
    assert status == 200, body
    status, raw, _ = call(body["url"])
    assert status == 200, raw
    return raw


def parse_csv(raw: bytes) -> list[dict[str, str | None]]:
    reader = csv.reader(io.StringIO(raw.decode("utf-8"), newline=""))
    header = [normalize_header(h) for h in next(reader)]
    return [{h: (v if v != "" else None) for h, v in zip(header, row, strict=False)} for row in reader]


def cl_url(sb, export_id: str = "") -> str:
    base = f"{sb.clover_url}/v3/merchants/{MERCHANT}/exports"
    return f"{base}/{export_id}" if export_id else base


def cl_create(sb, export_type: str, start: str, end: str):
    return call(
        cl_url(sb), "POST", {"type": export_type, "startTime": ms(start), "endTime": ms(end)}, CL_HEADERS
    )


def cl_wait(sb, export_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status, body, _ = call(cl_url(sb, export_id), headers=CL_HEADERS)
        assert status == 200, body
        if body["status"] not in ("PENDING", "IN_PROGRESS") or time.monotonic() > deadline:
            return body
        time.sleep(0.02)


def cl_objects(export: dict) -> list[dict]:
    out: list[dict] = []
    for element in export["exportUrls"]["elements"]:
        status, body, _ = call(element["url"])
        assert status == 200
        out.extend(body["elements"])
    return out


# --- Next Commerce -------------------------------------------------------------


def test_types_endpoint_lists_the_13_types(sb):
    status, body, _ = call(sb.api_url + "exports/types/", headers=NC_HEADERS)
    assert status == 200
    assert [t["code"] for t in body["types"]] == [d.export_type for d in NEXTCOMMERCE_STREAMS]
    assert body["types"][0] == {"code": "order_list", "name": "Orders"}


def test_auth_version_and_validation_errors(sb):
    url = sb.api_url + "exports/types/"
    assert call(url, headers={"X-29Next-API-Version": "2024-04-01"})[0] == 401
    status, body, _ = call(url, headers={**NC_HEADERS, "Authorization": "Bearer wrong"})
    assert status == 401 and "detail" in body
    assert call(url, headers={"Authorization": "Bearer sandbox-token"})[0] == 400
    assert (
        call(url, headers={"authorization": "Bearer sandbox-token", "x-29next-api-version": "2024-04-01"})[0]
        == 200
    )
    assert call(url, headers={**NC_HEADERS, "X-29Next-API-Version": "2023-02-10"})[0] == 400
    create = sb.api_url + "exports/"
    status, body, _ = call(
        create,
        "POST",
        {"type": "nope", "date_from": "2025-01-01T00:00:00Z", "date_to": "2025-01-02T00:00:00Z"},
        NC_HEADERS,
    )
    assert status == 400 and "type" in body
    status, body, _ = call(
        create,
        "POST",
        {"type": "order_list", "date_from": "2025-01-02T00:00:00Z", "date_to": "2025-01-01T00:00:00Z"},
        NC_HEADERS,
    )
    assert status == 400
    assert call(f"{sb.api_url}exports/999999/", headers=NC_HEADERS)[0] == 404


def test_every_type_has_the_key_and_window_columns_the_tap_expects(sb):
    for d in NEXTCOMMERCE_STREAMS:
        rows = sb.truth(
            "nextcommerce", d.export_type, utc("2025-01-01T00:00:00Z"), utc("2025-03-01T00:00:00Z")
        )
        assert 200 <= len(rows) <= 5000, (d.export_type, len(rows))
        for key in d.primary_keys:
            assert all(r[key] is not None for r in rows)
        keys = sb.truth_keys(
            "nextcommerce", d.export_type, utc("2025-01-01T00:00:00Z"), utc("2025-03-01T00:00:00Z")
        )
        assert len(set(keys)) == len(keys), f"{d.export_type}: keys unique"
        instants = [utc(r[d.window_field]) for r in rows]
        assert all(utc("2025-01-01T00:00:00Z") <= t < utc("2025-03-01T00:00:00Z") for t in instants)
    assert all(
        isinstance(k, str)
        for k in sb.truth_keys(
            "nextcommerce", "order_list", utc("2025-01-01T00:00:00Z"), utc("2025-01-02T00:00:00Z")
        )
    )


@pytest.mark.parametrize("style", ["snake", "title", "mixed"])
@pytest.mark.parametrize("export_type", ["order_list", "order_line_items", "customer_list"])
def test_round_trip_file_equals_truth(sb, style, export_type):
    sb.control(header_style=style, date_to_inclusive=False)
    raw = nc_file(sb, export_type, "2025-01-05T00:00:00Z", "2025-01-12T00:00:00+00:00")
    header = raw.split(b"\r\n", 1)[0].decode()
    expected_style = style if style != "mixed" else "title"  # these three are title under mixed
    if expected_style == "title":
        assert "Created At" in header or "Date Joined" in header
        assert "ID" in header.split(",") or "Number" in header.split(",")
    else:
        assert "created_at" in header or "date_joined" in header
    rows = parse_csv(raw)
    truth = sb.truth("nextcommerce", export_type, utc("2025-01-05T00:00:00Z"), utc("2025-01-12T00:00:00Z"))
    assert rows == truth and len(rows) > 50


@pytest.mark.parametrize("style", ["snake", "title"])
def test_window_column_names_rename_the_creation_time_column_in_files_and_truth(sb, style):
    sb.control(
        header_style=style, window_column_names={"order_list": "date_created"}, date_to_inclusive=False
    )
    raw = nc_file(sb, "order_list", "2025-01-05T00:00:00Z", "2025-01-07T00:00:00Z")
    header = raw.split(b"\r\n", 1)[0].decode().split(",")
    assert ("Date Created" if style == "title" else "date_created") in header
    assert not {"created_at", "Created At"} & set(header)
    truth = sb.truth("nextcommerce", "order_list", utc("2025-01-05T00:00:00Z"), utc("2025-01-07T00:00:00Z"))
    assert parse_csv(raw) == truth and "date_created" in truth[0]


def test_utc_offsets_choose_the_offsets_cells_are_written_in_and_keep_every_instant(sb):
    window = (utc("2025-01-05T00:00:00Z"), utc("2025-01-07T00:00:00Z"))
    before = [utc(r["created_at"]) for r in sb.truth("nextcommerce", "order_list", *window)]
    sb.control(utc_offsets=[-210, 840, "Z"])
    rows = sb.truth("nextcommerce", "order_list", *window)
    assert [utc(r["created_at"]) for r in rows] == before
    written = {r["created_at"][-6:] if not r["created_at"].endswith("Z") else "Z" for r in rows}
    written |= {r["updated_at"][-6:] if not r["updated_at"].endswith("Z") else "Z" for r in rows}
    assert written == {"-03:30", "+14:00", "Z"}


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"window_column_names": {"orders": "x"}}, "unknown Next Commerce export type"),
        ({"window_column_names": {"order_list": "Date Created"}}, "needs a snake_case name"),
        ({"utc_offsets": []}, "at least one offset"),
        ({"utc_offsets": [1440]}, "is not 'Z' or minutes"),
    ],
)
def test_bad_boundary_settings_are_refused_naming_the_setting(changes, words):
    with pytest.raises(ValueError, match=words):
        SandboxConfig(**changes)


def test_files_are_nasty_on_purpose(sb):
    raw = nc_file(sb, "order_line_items", "2025-01-01T00:00:00Z", "2025-01-20T00:00:00Z").decode()
    assert '""' in raw and "\n" in raw.replace("\r\n", "")  # escaped quotes, embedded newlines
    assert any(ch in raw for ch in "日本語🎁é")
    rows = parse_csv(raw.encode())
    offsets = {r["created_at"][19:] for r in rows}
    assert {"Z", "+02:00", "-05:00"} <= {o[-6:] if o[-1] != "Z" else "Z" for o in offsets}
    assert any("." in r["created_at"] for r in rows) and any("." not in r["created_at"] for r in rows)
    assert "engraving_text" in rows[0] and any(r["engraving_text"] is None for r in rows)
    orders = parse_csv(nc_file(sb, "transaction_list", "2025-01-01T00:00:00Z", "2025-01-20T00:00:00Z"))
    assert any(r["amount"].startswith("-") for r in orders)


def _boundary_row(sb, export_type: str, window_field: str) -> tuple[datetime, Any]:
    rows = sb.truth("nextcommerce", export_type, utc("2025-01-02T00:00:00Z"), utc("2025-02-01T00:00:00Z"))
    for r in rows:
        t = utc(r[window_field])
        if t == t.replace(hour=0, minute=0, second=0, microsecond=0):
            return t, r
    raise AssertionError("no row on midnight UTC")


@pytest.mark.parametrize("inclusive", [True, False])
def test_date_to_inclusive_or_exclusive_on_a_boundary_row(sb, inclusive):
    sb.control(date_to_inclusive=inclusive)
    midnight, row = _boundary_row(sb, "customer_list", "date_joined")
    before = (midnight - timedelta(days=1)).isoformat()
    ids = {r["id"] for r in parse_csv(nc_file(sb, "customer_list", before, midnight.isoformat()))}
    assert (row["id"] in ids) is inclusive
    after = {
        r["id"]
        for r in parse_csv(
            nc_file(sb, "customer_list", midnight.isoformat(), (midnight + timedelta(hours=6)).isoformat())
        )
    }
    assert row["id"] in after, "date_from is always inclusive"


def test_signed_url_expires_and_a_fresh_one_works(sb):
    export = nc_create(sb, "dispute_list", "2025-01-01T00:00:00Z", "2025-01-31T00:00:00Z")
    nc_wait(sb, export["id"])
    url = call(f"{sb.api_url}exports/{export['id']}/download/", headers=NC_HEADERS)[1]["url"]
    assert url.startswith(f"http://localhost:{sb.port}/media/demo-store/export_csv/")
    sb.control(clock_offset=3600)
    status, raw, _ = call(url)
    assert status == 403 and b"Request has expired" in raw
    fresh = call(f"{sb.api_url}exports/{export['id']}/download/", headers=NC_HEADERS)[1]["url"]
    assert call(fresh)[0] == 200
    assert call(fresh.replace("signature=", "signature=0"))[0] == 403
    assert sb.stats()["expired_url_answers"] >= 1


def test_download_before_ready_is_refused_and_list_paginates(sb):
    sb.control(processing_delay=30)
    export = nc_create(sb, "return_list", "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z")
    status, body, _ = call(f"{sb.api_url}exports/{export['id']}/download/", headers=NC_HEADERS)
    assert status in (400, 409) and "detail" in body
    for _ in range(21):
        nc_create(sb, "return_list", "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z")
    status, page, _ = call(sb.api_url + "exports/?type=return_list", headers=NC_HEADERS)
    assert status == 200 and len(page["results"]) == 20 and page["previous"] is None
    assert page["next"].startswith(sb.api_url + "exports/?") and "cursor=" in page["next"]
    status, page2, _ = call(page["next"], headers=NC_HEADERS)
    assert page2["previous"] and page2["results"]
    seen = [e["id"] for e in page["results"] + page2["results"]]
    assert len(seen) == len(set(seen)) and all(e["type"] == "return_list" for e in page2["results"])
    today = datetime.fromtimestamp(time.time(), UTC).date().isoformat()
    assert call(sb.api_url + f"exports/?date_created_from={today}", headers=NC_HEADERS)[1]["results"]
    assert not call(sb.api_url + "exports/?date_created_to=2020-01-01", headers=NC_HEADERS)[1]["results"]


def test_nc_rate_limit_answers_429_with_retry_after(sb, held_clock):
    sb.control(nc_rate_limit=4, retry_after=1)
    statuses = [call(sb.api_url + "exports/types/", headers=NC_HEADERS) for _ in range(8)]
    codes = [s for s, _, _ in statuses]
    assert codes == [200] * 4 + [429] * 4  # all within one second of the sandbox's clock
    assert next(h for s, _, h in statuses if s == 429)["Retry-After"] == "1"
    held_clock.now += 0.99
    assert call(sb.api_url + "exports/types/", headers=NC_HEADERS)[0] == 429
    held_clock.now += 0.01  # the announced second passed
    assert call(sb.api_url + "exports/types/", headers=NC_HEADERS)[0] == 200


def test_fault_429_burst_and_500_hit_the_next_n_requests(sb):
    before = sb.stats()
    sb.control(fault_429_burst=2)
    first = call(sb.api_url + "exports/types/", headers=NC_HEADERS)
    assert first[0] == 429 and first[2]["Retry-After"] == "1"
    assert call(cl_url(sb), headers=CL_HEADERS)[2]["retry-after"] == "1"
    assert call(sb.api_url + "exports/types/", headers=NC_HEADERS)[0] == 200
    sb.control(fault_500=2)
    assert call(sb.api_url + "exports/types/", headers=NC_HEADERS)[0] == 500
    assert call(cl_url(sb), headers=CL_HEADERS)[0] == 500
    assert call(sb.api_url + "exports/types/", headers=NC_HEADERS)[0] == 200
    after = sb.stats()
    assert after["429s_sent"] - before["429s_sent"] == 2
    assert after["500s_sent"] - before["500s_sent"] == 2


def test_fault_expired_url_fails_the_first_download_only(sb):
    sb.control(fault_expired_url=True)
    export = nc_create(sb, "dispute_list", "2025-01-01T00:00:00Z", "2025-01-10T00:00:00Z")
    nc_wait(sb, export["id"])
    url = call(f"{sb.api_url}exports/{export['id']}/download/", headers=NC_HEADERS)[1]["url"]
    status, raw, _ = call(url)
    assert status == 403 and b"Request has expired" in raw
    fresh = call(f"{sb.api_url}exports/{export['id']}/download/", headers=NC_HEADERS)[1]["url"]
    assert call(fresh)[0] == 200


def test_fault_truncated_download_sends_part_of_the_announced_length(sb):
    sb.control(fault_truncated_download=True)
    export = nc_create(sb, "order_list", "2025-01-01T00:00:00Z", "2025-01-10T00:00:00Z")
    nc_wait(sb, export["id"])
    url = call(f"{sb.api_url}exports/{export['id']}/download/", headers=NC_HEADERS)[1]["url"]
    with pytest.raises(http.client.IncompleteRead):
        with urllib.request.urlopen(url, timeout=10) as resp:
            resp.read()
    status, raw, headers = call(url)
    assert status == 200 and len(raw) == int(headers["Content-Length"])
    assert sb.stats()["truncated_downloads_sent"] >= 1


def test_fault_hold_download_holds_each_download_after_half_its_body_until_turned_off(sb):
    sb.control(fault_hold_download=True)
    export = nc_create(sb, "order_list", "2025-01-01T00:00:00Z", "2025-01-10T00:00:00Z")
    nc_wait(sb, export["id"])
    url = call(f"{sb.api_url}exports/{export['id']}/download/", headers=NC_HEADERS)[1]["url"]
    with urllib.request.urlopen(url, timeout=30) as resp:
        announced = int(resp.headers["Content-Length"])
        half = resp.read(max(1, announced // 2))  # what was sent before the hold
        deadline = time.monotonic() + 30  # waits for the counter; bounds a hang only
        while sb.stats()["downloads_held"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sb.stats()["downloads_held"] == 1
        sb.control(fault_hold_download=False)  # the held connection closes, cut short
        with pytest.raises(http.client.IncompleteRead):
            resp.read()
    assert 0 < len(half) < announced
    status, raw, _ = call(url)
    assert status == 200 and len(raw) == announced


def test_fault_export_failed_and_never_ready(sb, held_clock):
    sb.control(fault_export_failed=2)
    export = nc_create(sb, "order_list", "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z")
    held_clock.now += 1  # past the 0.05 s processing delay
    assert nc_wait(sb, export["id"])["status"] == "failed"
    assert call(f"{sb.api_url}exports/{export['id']}/download/", headers=NC_HEADERS)[0] in (400, 409)
    status, body, _ = cl_create(sb, "ORDERS", "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z")
    held_clock.now += 1
    assert status == 200 and cl_wait(sb, body["id"])["status"] == "FAILED"
    sb.control(fault_never_ready=True)
    export = nc_create(sb, "order_list", "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z")
    status, body, _ = cl_create(sb, "PAYMENTS", "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z")
    held_clock.now += 3600  # an hour past the 0.05 s processing delay
    assert nc_wait(sb, export["id"], timeout=0)["status"] == "pending"
    assert call(cl_url(sb, body["id"]), headers=CL_HEADERS)[1]["status"] == "IN_PROGRESS"


def test_webhook_is_signed_over_the_exact_body(sb):
    received: list[tuple[bytes, str]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, self.headers["X-29Next-Signature"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    receiver = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        target = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
        sb.control(webhook_url=target, webhook_secret="s3cret")
        export = nc_create(sb, "dispute_list", "2025-01-01T00:00:00Z", "2025-01-03T00:00:00Z")
        deadline = time.monotonic() + 30  # waits for the delivery; bounds a hang only
        while not received and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        receiver.shutdown()
    ((body, sig),) = received
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(sig, expected)
    envelope = json.loads(body)
    assert json.dumps(envelope).encode() == body
    assert envelope["event_type"] == "export.created" and envelope["object"] == "export"
    assert envelope["data"]["id"] == export["id"] and envelope["data"]["status"] == "available"
    assert envelope["webhook"] == {
        "events": ["export.created"],
        "id": 1,
        "store": "demo-store",
        "target": target,
    }
    assert sb.stats()["webhooks_sent"] >= 1


# --- Clover --------------------------------------------------------------------


def test_clover_round_trip_in_several_files_equals_truth(sb):
    sb.control(clover_objects_per_file=400)
    status, body, _ = cl_create(sb, "PAYMENTS", "2025-01-01T00:00:00Z", "2025-01-31T00:00:00Z")
    assert status == 200 and body["status"] in ("PENDING", "IN_PROGRESS")
    assert body["merchantRef"] == {"id": MERCHANT} and len(body["id"]) == 13
    done = cl_wait(sb, body["id"])
    assert done["status"] == "DONE" and done["percentComplete"] == 100 and done["availableUntil"]
    urls = [e["url"] for e in done["exportUrls"]["elements"]]
    assert len(urls) >= 3 and all(u.startswith(f"http://localhost:{sb.port}/clover-files/") for u in urls)
    objects = cl_objects(done)
    truth = sb.truth("clover", "PAYMENTS", utc("2025-01-01T00:00:00Z"), utc("2025-01-31T00:00:00Z"))
    # endTime is inclusive by default: a row exactly on it may be extra
    assert objects[: len(truth)] == truth and len(objects) - len(truth) in (0, 1) and len(truth) > 1000
    p = next(o for o in objects if "cardTransaction" in o)
    assert isinstance(p["amount"], int) and isinstance(p["createdTime"], int)
    assert p["id"].isalnum() and p["id"].isupper() and len(p["id"]) == 13
    assert {"cardType", "last4", "first6", "entryType"} <= set(p["cardTransaction"])


def test_clover_orders_have_nested_objects_and_legacy_complete(sb):
    sb.control(clover_legacy_complete=True)
    status, body, _ = cl_create(sb, "ORDERS", "2025-02-01T00:00:00Z", "2025-02-03T00:00:00Z")
    done = cl_wait(sb, body["id"])
    assert done["status"] == "COMPLETE"
    order = cl_objects(done)[0]
    assert {
        "id",
        "currency",
        "employee",
        "total",
        "createdTime",
        "modifiedTime",
        "lineItems",
        "device",
    } <= set(order)
    assert isinstance(order["lineItems"]["elements"], list) and order["lineItems"]["elements"][0]["price"] > 0


def test_clover_validation_auth_and_merchant(sb):
    assert cl_create(sb, "ORDERS", "2025-01-01T00:00:00Z", "2025-02-01T00:00:01Z")[0] == 400  # > 30 days
    assert call(cl_url(sb), "POST", {"type": "ITEMS", "startTime": 1, "endTime": 2}, CL_HEADERS)[0] == 400
    assert call(cl_url(sb), headers={"Authorization": "Bearer bad"})[0] == 401
    status, body, _ = call(f"{sb.clover_url}/v3/merchants/NOPE/exports", headers=CL_HEADERS)
    assert status in (401, 404) and "NOPE" in body["message"]
    assert call(cl_url(sb, "NOSUCHEXPORT0"), headers=CL_HEADERS)[0] == 404


def test_clover_running_limit_answers_503(sb):
    sb.control(processing_delay=30, clover_max_running=2)
    before = sb.stats()["503s_sent"]
    assert cl_create(sb, "ORDERS", "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z")[0] == 200
    assert cl_create(sb, "ORDERS", "2025-01-02T00:00:00Z", "2025-01-03T00:00:00Z")[0] == 200
    assert cl_create(sb, "ORDERS", "2025-01-03T00:00:00Z", "2025-01-04T00:00:00Z")[0] == 503
    assert sb.stats()["503s_sent"] == before + 1
    assert sb.stats()["max_clover_exports_running"] >= 2
    sb.control(complete_exports=True)
    assert cl_create(sb, "ORDERS", "2025-01-03T00:00:00Z", "2025-01-04T00:00:00Z")[0] == 200


def test_clover_hours_and_fault_503(sb):
    sb.control(clover_hours="us", fake_now="2025-06-02T20:00:00Z")
    status, body, _ = cl_create(sb, "ORDERS", "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z")
    assert status == 503 and "hours" in body["message"]
    sb.control(fake_now="2025-06-02T12:00:00Z")
    assert cl_create(sb, "ORDERS", "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z")[0] == 200
    sb.control(clover_hours="eu", fake_now="2025-06-07T01:30:00Z")  # Saturday opens at 02:00
    assert cl_create(sb, "ORDERS", "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z")[0] == 503
    sb.control(clover_hours="off", fake_now=None, fault_clover_503=1, clover_max_running=100)
    assert cl_create(sb, "ORDERS", "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z")[0] == 503
    assert cl_create(sb, "ORDERS", "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z")[0] == 200


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ("message", {"message": "outside availability window (US export hours)"}),
        ("error", {"error": {"code": 503, "message": "outside availability window (US export hours)"}}),
        ("text", b"outside availability window (US export hours)"),
        ("empty", b""),
    ],
)
def test_what_a_clover_503_says_is_a_setting(sb, shape, expected):
    sb.control(
        clover_hours="us", fake_now="2025-06-02T20:00:00Z", clover_503_body=shape, clover_503_retry_after=7
    )
    status, body, headers = cl_create(sb, "ORDERS", "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z")
    assert (status, body, headers["retry-after"]) == (503, expected, "7")
    sb.control(clover_503_retry_after=0)
    assert cl_create(sb, "ORDERS", "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z")[2]["retry-after"] is None


def test_the_rate_limit_holds_in_any_one_second_window_not_per_calendar_second():
    from commerce_sandbox.faults import SlidingWindowLimiter

    limiter = SlidingWindowLimiter()
    # four at the end of one second, then a fifth at the start of the next: refused
    assert [limiter.allow("t", 4, t) for t in (10.6, 10.7, 10.8, 10.9)] == [True] * 4
    assert limiter.allow("t", 4, 11.1) is False
    assert limiter.allow("t", 4, 11.599) is False
    assert limiter.allow("t", 4, 11.6) is True  # a full second after the first one
    assert limiter.allow("t", 4, 11.65) is False


def test_clover_rate_limit_and_early_retry_gets_a_longer_wait(sb):
    sb.control(clover_rate_limit=3, retry_after=1)
    codes = [call(cl_url(sb), headers=CL_HEADERS) for _ in range(4)]
    assert [c[0] for c in codes] == [200, 200, 200, 429]
    assert codes[3][2]["retry-after"] == "1"
    early = call(cl_url(sb), headers=CL_HEADERS)
    assert early[0] == 429 and int(early[2]["retry-after"]) > 1


def test_clover_concurrency_limit(sb):
    sb.control(clover_request_delay=0.3, clover_max_concurrent_requests=2, retry_after=1)
    with ThreadPoolExecutor(5) as pool:
        codes = list(pool.map(lambda _: call(cl_url(sb), headers=CL_HEADERS)[0], range(5)))
    assert 429 in codes and 200 in codes
    assert sb.stats()["max_concurrent_clover_requests"] >= 3


def test_authorization_on_the_file_host_is_counted(sb):
    status, body, _ = cl_create(sb, "ORDERS", "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z")
    done = cl_wait(sb, body["id"])
    before = sb.stats()["auth_header_on_file_host"]
    call(done["exportUrls"]["elements"][0]["url"], headers=CL_HEADERS)
    assert sb.stats()["auth_header_on_file_host"] == before + 1


# --- determinism, control endpoints, command line ------------------------------


def test_same_seed_gives_identical_bytes_and_new_data_end_keeps_old_rows():
    files = []
    for _ in range(2):
        with SandboxServer(SandboxConfig(port=0, processing_delay=0.0, nc_rate_limit=0)) as other:
            files.append(
                nc_file(other, "order_line_items", "2025-01-01T00:00:00Z", "2025-01-09T12:00:00-05:00")
            )
    assert files[0] == files[1] and len(files[0]) > 10_000
    with SandboxServer(SandboxConfig(port=0, data_end="2025-02-01T00:00:00Z")) as short:
        jan = short.truth(
            "nextcommerce", "order_list", utc("2025-01-01T00:00:00Z"), utc("2025-03-01T00:00:00Z")
        )
        assert not short.truth("clover", "ORDERS", utc("2025-02-01T00:00:00Z"), utc("2025-03-01T00:00:00Z"))
        short.control(data_end="2025-03-01T00:00:00Z")
        more = short.truth(
            "nextcommerce", "order_list", utc("2025-01-01T00:00:00Z"), utc("2025-03-01T00:00:00Z")
        )
        assert more[: len(jan)] == jan and len(more) > len(jan)
        assert short.truth("clover", "ORDERS", utc("2025-02-01T00:00:00Z"), utc("2025-03-01T00:00:00Z"))
    with SandboxServer(SandboxConfig(port=0, seed=7)) as seven:
        assert seven.truth_keys(
            "clover", "ORDERS", utc("2025-01-01T00:00:00Z"), utc("2025-01-02T00:00:00Z")
        ) != SandboxServer(SandboxConfig(port=0)).truth_keys(
            "clover", "ORDERS", utc("2025-01-01T00:00:00Z"), utc("2025-01-02T00:00:00Z")
        )


def test_http_control_truth_and_stats(sb):
    status, cfg, _ = call(
        sb.clover_url + "/_sandbox/control", "POST", {"fault_500": 3, "header_style": "snake"}
    )
    assert status == 200 and cfg["fault_500"] == 3 and cfg["header_style"] == "snake"
    assert call(sb.clover_url + "/_sandbox/control", "POST", {"no_such_setting": 1})[0] == 400
    sb.control(fault_500=0)
    status, truth, _ = call(
        sb.clover_url + "/_sandbox/truth?provider=nextcommerce&type=order_list"
        "&from=2025-01-01T00:00:00Z&to=2025-01-02T00:00:00%2B00:00"
    )
    assert status == 200 and truth["keys"] == [r["number"] for r in truth["rows"]] and truth["keys"]
    status, truth, _ = call(
        sb.clover_url + "/_sandbox/truth?provider=clover&type=ORDERS"
        "&from=2025-01-01T00:00:00Z&to=2025-01-02T00:00:00Z"
    )
    assert status == 200 and len(truth["keys"]) == len(truth["rows"]) > 10
    stats = call(sb.clover_url + "/_sandbox/stats")[1]
    for key in (
        "requests",
        "exports_created",
        "429s_sent",
        "503s_sent",
        "500s_sent",
        "auth_header_on_file_host",
        "max_concurrent_clover_requests",
        "max_clover_exports_running",
        "downloads_served",
        "truncated_downloads_sent",
        "expired_url_answers",
        "webhooks_sent",
    ):
        assert key in stats
    assert set(stats["exports_created"]) == {"nextcommerce", "clover"}
    assert {d.window_field for d in CLOVER_STREAMS} == {"createdTime"}


def test_command_line_prints_one_line_and_stops_cleanly_on_sigterm():
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "commerce_sandbox",
            "--port",
            "0",
            "--processing-delay",
            "0.1",
            "--seed",
            "3",
            "--no-date-to-inclusive",
            "--rows-per-day",
            "order_list=5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("sandbox listening: api_url=http://127.0.0.1:")
        assert "token=sandbox-token merchant_id=SANDBOXMERCHANT1" in line
        api_url = line.split("api_url=")[1].split()[0]
        assert call(api_url + "exports/types/", headers=NC_HEADERS)[0] == 200
        cfg = call(api_url.replace("/api/admin/", "/_sandbox/config"))[1]
        assert (
            cfg["seed"] == 3
            and cfg["date_to_inclusive"] is False
            and cfg["rows_per_day"] == {"order_list": 5}
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
