"""End to end across the files' and deliveries' unpublished facts: the real tap process
against the sandbox on loopback, each fact varied by its sandbox setting
(``commerce_sandbox/unpublished.py``), each run checked against the sandbox's truth.

* line files with and without a timestamp column (date_to inclusive or not);
* the orders key headed ``number``, ``order_number`` or ``Order Number``;
* naive timestamps in the store's time zone (read from ``/store/``, or ``file_timezone``);
* a store's typed metadata columns (``/metadata/``);
* webhook deliveries signed over the raw body, with dashboard exports and other events;
* Clover's 30-day cap read strictly (a range of exactly 30 days refused).
"""

from __future__ import annotations

import socket
from collections import Counter
from datetime import datetime, timedelta

import pytest

from tap_commerce_exports.providers.clover_streams import CLOVER_STREAMS
from tap_commerce_exports.providers.nextcommerce_streams import NEXTCOMMERCE_STREAMS
from tests.sandbox_fixtures import account_config
from tests.tap_harness import assert_records_fit_schemas, duplicates, run_tap, utc

pytestmark = pytest.mark.e2e

START, END = "2025-01-01T00:00:00Z", "2025-01-07T00:00:00Z"
SANDBOX_SETTINGS = dict(
    processing_delay=0.05, nc_rate_limit=1000, clover_rate_limit=1000, clover_max_running=4
)
DEFINITIONS = {d.name: d for d in NEXTCOMMERCE_STREAMS}
UNTIMED = ["subscription_line_items", "open_cart_line_items", "return_line_items", "fulfillment_line_items"]


def config(sandbox, provider: str = "nextcommerce", **overrides):
    base = {
        **account_config(sandbox, provider),
        "start_date": START,
        "end_date": END,
        "window_days": 1,
        "poll_interval": 0.02,
        "poll_max_interval": 0.2,
        "max_concurrent_exports": 8,
        "max_requests_per_second": 500,
        "export_timeout": 60,
        "lookback": 0,
    }
    base.update(overrides)
    return base


def truth_rows(sandbox, stream: str, start: str = START, end: str = END) -> list[dict]:
    return sandbox.truth("nextcommerce", DEFINITIONS[stream].export_type, utc(start), utc(end))


def key_of(stream: str, row: dict):
    key = DEFINITIONS[stream].primary_keys[0]
    return str(row[key])


def assert_exact(run, sandbox, stream: str) -> None:
    got = [key_of(stream, r) for r in run.records[stream]]
    assert not duplicates(got), f"{stream}: duplicates {list(duplicates(got))[:5]}"
    assert sorted(got) == sorted(key_of(stream, r) for r in truth_rows(sandbox, stream)) and got


# ------------------------------------------------------------------ line files without a time
@pytest.mark.parametrize("inclusive", [True, False], ids=["date_to-inclusive", "date_to-exclusive"])
def test_line_files_without_a_timestamp_sync_every_row_and_repeat_only_rows_on_a_boundary(sandbox, inclusive):
    sandbox.control(line_files_timed=False, date_to_inclusive=inclusive)
    run = run_tap(config(sandbox), streams=UNTIMED)
    assert run.returncode == 0, run.stderr[-3000:]
    boundaries = {utc(START) + timedelta(days=n) for n in range(7)}
    for stream in UNTIMED:
        field = DEFINITIONS[stream].window_field
        inside = {key_of(stream, r): r for r in truth_rows(sandbox, stream)}
        around = {key_of(stream, r): r for r in truth_rows(sandbox, stream, end="2025-01-07T00:00:01Z")}
        got = Counter(key_of(stream, r) for r in run.records[stream])
        assert set(inside) <= set(got) <= set(around), f"{stream}: rows lost or foreign"
        repeated = {k for k, n in got.items() if n > 1} | (set(got) - set(inside))
        assert all(utc(around[k][field]) in boundaries for k in repeated), f"{stream}: off-boundary repeats"
        assert max(got.values()) <= 2
        if not inclusive:
            assert not repeated, f"{stream}: an exclusive date_to repeats nothing"
        said = [
            line for line in run.stderr.splitlines() if "trusted to the server" in line and stream in line
        ]
        assert len(said) == 1, f"{stream}: one line per stream says so, got {len(said)}"
    assert_records_fit_schemas(run)


def test_line_files_with_a_timestamp_keep_the_strict_window_check(sandbox):
    run = run_tap(config(sandbox), streams=UNTIMED[:2])
    assert run.returncode == 0, run.stderr[-3000:]
    for stream in UNTIMED[:2]:
        assert_exact(run, sandbox, stream)
    assert "trusted to the server" not in run.stderr


# ------------------------------------------------------------------ the key column
@pytest.mark.parametrize(
    ("header", "style"), [("number", "title"), ("order_number", "snake"), ("order_number", "title")]
)
def test_the_orders_key_is_read_under_either_spelling_of_its_header(sandbox, header, style):
    sandbox.control(order_key_header=header, header_style=style)
    run = run_tap(config(sandbox), streams=["orders"])
    assert run.returncode == 0, run.stderr[-3000:]
    assert_exact(run, sandbox, "orders")
    assert all("order_number" not in r for r in run.records["orders"]), "the key column became `number`"


def test_a_file_with_none_of_its_key_columns_stops_its_stream_with_one_line_naming_the_setting(sandbox):
    run = run_tap(config(sandbox, key_columns={"orders": "Order Ref"}), streams=["orders", "customers"])
    assert run.returncode != 0
    (line,) = run.error_lines()
    assert "key_columns" in line and "order_ref" in line and "created_at" in line, line
    assert "Traceback" not in run.stderr
    assert not run.records.get("orders") and run.records["customers"], "only its stream stops"


def test_key_columns_names_the_column_a_store_keys_its_rows_by(sandbox):
    sandbox.control(order_key_header="order_number", header_style="title")
    run = run_tap(config(sandbox, key_columns={"orders": "Order Number"}), streams=["orders"])
    assert run.returncode == 0, run.stderr[-3000:]
    assert_exact(run, sandbox, "orders")


# ------------------------------------------------------------------ naive timestamps
def assert_instants_exact(run, sandbox, stream: str) -> None:
    """Every record's window instant equals the truth's for its key: not an hour off."""
    assert_exact(run, sandbox, stream)
    field = DEFINITIONS[stream].window_field
    truth = {key_of(stream, r): datetime.fromisoformat(r[field]) for r in truth_rows(sandbox, stream)}
    for record in run.records[stream]:
        assert datetime.fromisoformat(record[field]) == truth[key_of(stream, record)]


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kathmandu", "Pacific/Kiritimati"])
def test_naive_timestamps_are_read_in_the_store_s_own_time_zone(sandbox, zone):
    sandbox.control(naive_timestamps=True, store_timezone=zone)
    run = run_tap(config(sandbox), streams=["orders", "customers"])
    assert run.returncode == 0, run.stderr[-3000:]
    for stream in ("orders", "customers"):
        assert_instants_exact(run, sandbox, stream)
    assert "read as UTC" not in run.stderr


def test_without_store_read_the_file_timezone_setting_gives_the_zone(sandbox):
    sandbox.control(naive_timestamps=True, store_timezone="America/New_York", store_read=False)
    run = run_tap(config(sandbox, file_timezone="America/New_York"), streams=["orders"])
    assert run.returncode == 0, run.stderr[-3000:]
    assert_instants_exact(run, sandbox, "orders")


def test_with_no_zone_known_naive_timestamps_are_utc_with_one_warning_per_stream(sandbox):
    sandbox.control(naive_timestamps=True, store_timezone="Asia/Kathmandu", store_read=False)
    run = run_tap(config(sandbox), streams=["orders", "customers"])
    assert run.returncode == 0, run.stderr[-3000:]
    for stream in ("orders", "customers"):
        said = [line for line in run.stderr.splitlines() if "read as UTC" in line and f"'{stream}'" in line]
        assert len(said) == 1 and "file_timezone" in said[0], said


# ------------------------------------------------------------------ metadata columns
@pytest.mark.parametrize("readable", [True, False])
def test_metadata_columns_are_typed_as_the_store_declares_them_or_kept_as_text(sandbox, readable):
    sandbox.control(metadata_read=readable)
    run = run_tap(config(sandbox), streams=["subscription_line_items"])
    assert run.returncode == 0, run.stderr[-3000:]
    assert_exact(run, sandbox, "subscription_line_items")
    assert_records_fit_schemas(run)
    truth = {
        key_of("subscription_line_items", r): r["gift_wrap"]
        for r in truth_rows(sandbox, "subscription_line_items")
    }
    for record in run.records["subscription_line_items"]:
        expected = truth[key_of("subscription_line_items", record)]
        if readable and expected is not None:
            assert record["gift_wrap"] is (expected == "yes")
        else:
            assert record["gift_wrap"] == expected


# ------------------------------------------------------------------ webhooks
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("signing", ["reserialized", "raw"])
def test_every_signed_delivery_gets_a_2xx_and_raw_body_signatures_wake_the_exports(signing):
    """Polling is off in effect (an hour): the run ends only because deliveries woke
    its exports; the subprocess timeout only bounds a hang."""
    from tests.sandbox_fixtures import start_sandbox

    port = free_port()
    server = start_sandbox(
        **SANDBOX_SETTINGS,
        webhook_url=f"http://127.0.0.1:{port}/hook",
        webhook_secret="e2e-secret",
        webhook_signing=signing,
        webhook_noise=True,
    )
    try:
        settings = dict(
            webhook_listen=f"127.0.0.1:{port}",
            webhook_secret="e2e-secret",
            poll_interval=3600,
            poll_max_interval=3600,
            export_timeout=7200,
            max_concurrent_exports=1,
            end_date="2025-01-04T00:00:00Z",
        )
        run = run_tap(config(server, **settings), streams=["orders"], timeout=180)
        stats = server.stats()
        truth = server.truth_keys("nextcommerce", "order_list", utc(START), utc("2025-01-04T00:00:00Z"))
    finally:
        server.stop()
    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted(str(k) for k in run.keys("orders", ["number"])) == sorted(map(str, truth))
    refused = {k: v for k, v in stats.items() if k.startswith("webhook_answer_4") and v}
    assert not refused, f"signed deliveries refused: {refused}"
    assert stats.get("webhook_answer_200", 0) >= 3, "each of the three windows was woken"


# ------------------------------------------------------------------ Clover's cap read strictly
def test_clover_windows_of_exactly_30_days_refused_are_retried_once_cut_in_two(sandbox):
    sandbox.control(clover_strict_range=True)
    cfg = config(sandbox, "clover", window_days=30, end_date="2025-02-28T00:00:00Z", max_concurrent_exports=2)
    run = run_tap(cfg, streams=["orders"])
    assert run.returncode == 0, run.stderr[-3000:]
    definition = next(d for d in CLOVER_STREAMS if d.name == "orders")
    expected = sandbox.truth_keys("clover", definition.export_type, utc(START), utc("2025-02-28T00:00:00Z"))
    got = run.keys("orders", ["id"])
    assert not duplicates(got) and sorted(got) == sorted(expected)
    said = [line for line in run.stderr.splitlines() if "cut in two" in line]
    assert len(said) == 1 and "HTTP 400" in said[0], said
