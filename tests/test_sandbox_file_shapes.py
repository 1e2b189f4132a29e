"""The sandbox's settings for the files' and deliveries' unpublished facts
(``commerce_sandbox/unpublished.py``): each changes exactly the shape it names, and the
ground truth stays the data as the store holds it."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest

from commerce_sandbox import SandboxConfig, SandboxServer
from commerce_sandbox.csvgen import normalize_header
from tests.test_sandbox_unpublished import NC, call

DAY = {"date_from": "2025-01-02T00:00:00Z", "date_to": "2025-01-03T00:00:00Z"}


@pytest.fixture(scope="module")
def sb():
    cfg = SandboxConfig(port=0, processing_delay=0.0, nc_rate_limit=0, date_to_inclusive=False)
    with SandboxServer(cfg) as server:
        yield server


@pytest.fixture(autouse=True)
def _reset(sb):
    yield
    sb.control(
        line_files_timed=True,
        order_key_header="number",
        naive_timestamps=False,
        store_timezone="UTC",
        store_read=True,
        metadata_read=True,
        header_style="mixed",
        clover_strict_range=False,
    )


def export_file(sb: SandboxServer, export_type: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a fresh export of one day."""
    status, export = call(sb.api_url + "exports/", "POST", {"type": export_type, **DAY}, NC)
    assert status == 201
    sb.control(complete_exports=True)
    url = call(f"{sb.api_url}exports/{export['id']}/download/", headers=NC)[1]["url"]
    status, raw = call(url)
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8"))))
    return rows[0], rows[1:]


def test_line_files_without_timestamps_drop_only_the_columns_the_spec_s_line_objects_lack(sb):
    sb.control(line_files_timed=False, header_style="snake")
    header, rows = export_file(sb, "subscription_line_items")
    assert "date_created" not in header and "subscription_id" in header and rows
    header, _ = export_file(sb, "order_line_items")
    assert "created_at" in header, "OrderLine has created_at in the spec: its files keep it"
    truth = sb.truth("nextcommerce", "subscription_line_items", *bounds())
    assert truth and all(r["date_created"] for r in truth), "the truth still knows each line's time"


@pytest.mark.parametrize(("style", "expected"), [("snake", "order_number"), ("title", "Order Number")])
def test_the_orders_key_header_is_spelled_as_set_in_either_header_style(sb, style, expected):
    sb.control(order_key_header="order_number", header_style=style)
    header, rows = export_file(sb, "order_list")
    assert header[0] == expected and "number" not in header and "Number" not in header
    assert sorted(r[0] for r in rows) == sorted(sb.truth_keys("nextcommerce", "order_list", *bounds()))


def test_naive_timestamps_are_the_store_s_wall_time_of_the_truth_s_instants(sb):
    zone = "America/New_York"
    sb.control(naive_timestamps=True, store_timezone=zone, header_style="snake")
    header, rows = export_file(sb, "order_list")
    created = [dict(zip(header, r, strict=True))["created_at"] for r in rows]
    assert created and all(datetime.fromisoformat(c).tzinfo is None for c in created)
    truth = {r["number"]: r["created_at"] for r in sb.truth("nextcommerce", "order_list", *bounds())}
    for row in rows:
        record = dict(zip(header, row, strict=True))
        local = datetime.fromisoformat(record["created_at"]).replace(tzinfo=ZoneInfo(zone))
        assert local == datetime.fromisoformat(truth[record["number"]])


def test_the_store_endpoint_says_its_time_zone_unless_the_token_lacks_the_scope(sb):
    sb.control(store_timezone="Asia/Kathmandu")
    status, body = call(sb.api_url + "store/", headers=NC)
    assert (status, body["timezone"]) == (200, "Asia/Kathmandu")
    sb.control(store_read=False)
    assert call(sb.api_url + "store/", headers=NC)[0] == 403


def test_the_metadata_endpoint_declares_every_metadata_column_the_files_carry(sb):
    status, body = call(sb.api_url + "metadata/", headers=NC)
    assert status == 200
    declared = {normalize_header(d["name"]): d["type"] for d in body["results"]}
    assert declared["gift_wrap"] == "boolean" and declared["gift_message"] == "text"
    sb.control(metadata_read=False)
    assert call(sb.api_url + "metadata/", headers=NC)[0] == 403


def test_a_store_time_zone_that_does_not_exist_is_refused_naming_the_setting(sb):
    with pytest.raises(ValueError, match="store_timezone"):
        sb.control(store_timezone="Mars/Olympus")


@pytest.mark.parametrize(("strict", "status"), [(False, 200), (True, 400)])
def test_a_clover_range_of_exactly_30_days_passes_unless_the_cap_is_read_strictly(sb, strict, status):
    sb.control(clover_strict_range=strict)
    start = 1_735_689_600_000  # 2025-01-01T00:00Z
    body = {"type": "ORDERS", "startTime": start, "endTime": start + 30 * 86_400_000}
    headers = {"Authorization": "Bearer sandbox-token"}
    answer = call(f"{sb.clover_url}/v3/merchants/{sb.config.merchant_id}/exports", "POST", body, headers)
    assert answer[0] == status
    sb.control(complete_exports=True)


def bounds() -> tuple[datetime, datetime]:
    return tuple(datetime.fromisoformat(DAY[k].replace("Z", "+00:00")) for k in ("date_from", "date_to"))  # type: ignore[return-value]


class _Hook(BaseHTTPRequestHandler):
    """A receiver that records each delivery and answers 404 to the dashboard's export."""

    got: list[tuple[dict, bytes, str]] = []
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        payload = json.loads(body)
        with self.lock:
            self.got.append((payload, body, self.headers.get("X-29Next-Signature", "")))
        self.send_response(404 if payload["data"].get("id", 0) >= 10**9 else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


def test_raw_signing_and_the_store_wide_subscription_s_other_deliveries_are_sent_and_counted():
    hook = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{hook.server_address[1]}/hook"
    cfg = SandboxConfig(
        port=0,
        processing_delay=0.0,
        nc_rate_limit=0,
        webhook_url=url,
        webhook_secret="s3cret",
        webhook_signing="raw",
        webhook_noise=True,
    )
    try:
        with SandboxServer(cfg) as server:
            call(server.api_url + "exports/", "POST", {"type": "order_list", **DAY}, NC)
            stats = server.stats()
            wait = threading.Event()
            for _ in range(600):  # a deadline that only bounds a hang: retries take ~1.2 s
                stats = server.stats()
                if stats.get("webhook_answer_404", 0) == 3 and stats.get("webhook_answer_200", 0) == 2:
                    break
                wait.wait(0.05)
    finally:
        hook.shutdown()
    kinds = sorted({(g[0]["event_type"], g[0]["data"].get("id", 0) >= 10**9) for g in _Hook.got})
    assert kinds == [("export.created", False), ("export.created", True), ("order.created", False)]
    for payload, body, given in _Hook.got:
        assert body != json.dumps(payload).encode(), "compact: only the raw bytes verify"
        assert given == hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert (stats.get("webhook_answer_404", 0), stats.get("webhook_answer_200", 0)) == (3, 2), (
        "the dashboard export's 404 was retried twice; every answer is counted"
    )
