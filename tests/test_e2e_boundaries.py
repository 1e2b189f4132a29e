"""End to end, exactly once across the facts the Next Commerce API does not publish.

What the creation-time column is called, whether ``date_to`` is inclusive, the header
style and the UTC offsets timestamps are written in are all unknown for a real store.
The sandbox varies each (``window_column_names``, ``date_to_inclusive``,
``header_style``, ``utc_offsets``), and the real tap process must emit every row of
``[start_date, end_date)`` exactly once under each combination, including rows exactly
on a window boundary and a row exactly at ``end_date`` (which belongs to the next run).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from tap_commerce_exports.providers.nextcommerce_streams import NEXTCOMMERCE_STREAMS
from tests.sandbox_fixtures import account_config
from tests.tap_harness import assert_records_fit_schemas, duplicates, run_tap, utc

pytestmark = pytest.mark.e2e

UTC = timezone.utc
START = "2025-01-01T00:00:00Z"
WINDOW_DAYS = 3
STREAMS = ("orders", "customers")
#: UTC offsets real stores may write that the default mix lacks (-12:00 .. +14:00).
ODD_OFFSETS = [-720, -570, -210, "Z", 345, 540, 840]


SANDBOX_SETTINGS = dict(processing_delay=0.05, nc_rate_limit=1000, clover_rate_limit=1000)


def config(sandbox, end_date: str, **overrides):
    base = {
        **account_config(sandbox, "nextcommerce"),
        "start_date": START,
        "end_date": end_date,
        "window_days": WINDOW_DAYS,
        "poll_interval": 0.02,
        "poll_max_interval": 0.2,
        "max_concurrent_exports": 8,
        "max_requests_per_second": 500,
        "export_timeout": 60,
        "lookback": 0,  # these runs check exactly once across runs: no re-read
    }
    base.update(overrides)
    return base


def definition(stream: str):
    return next(d for d in NEXTCOMMERCE_STREAMS if d.name == stream)


def rows_at(sandbox, stream: str, moment: datetime) -> list:
    """Keys of the rows stamped exactly at ``moment`` (the ground truth's own instant)."""
    d = definition(stream)
    return sandbox.truth_keys("nextcommerce", d.export_type, moment, moment + timedelta(microseconds=1))


def end_date_on_a_row(sandbox) -> datetime:
    """The first window boundary after 10 days that has an order exactly on it."""
    moment = utc(START) + timedelta(days=4 * WINDOW_DAYS)
    while not rows_at(sandbox, "orders", moment):
        moment += timedelta(days=WINDOW_DAYS)
    return moment


def assert_exactly_once(run, sandbox, end: datetime) -> None:
    for stream in STREAMS:
        assert_exactly_once_for(run, sandbox, end, stream)


def assert_exactly_once_for(run, sandbox, end: datetime, stream: str) -> None:
    d = definition(stream)
    expected = sandbox.truth_keys("nextcommerce", d.export_type, utc(START), end)
    got = run.keys(stream, d.primary_keys)
    assert not duplicates(got), f"{stream}: emitted twice: {sorted(duplicates(got))[:5]}"
    assert sorted(map(str, got)) == sorted(map(str, expected)), f"{stream}: keys differ from the truth"


CASES = {
    # The case: `date_created` for orders, inclusive date_to, title headers.
    "date_created-inclusive-title-odd_offsets": (
        {"order_list": "date_created", "customer_list": "created_at"},
        True,
        "title",
        ODD_OFFSETS,
    ),
    "created-exclusive-snake-default_offsets": (
        {"order_list": "created", "customer_list": "date_created"},
        False,
        "snake",
        None,
    ),
    "api_names-inclusive-snake-odd_offsets": (None, True, "snake", ODD_OFFSETS),
    "creation_date-exclusive-title-odd_offsets": (
        {"order_list": "creation_date", "customer_list": "created"},
        False,
        "title",
        ODD_OFFSETS,
    ),
}


@pytest.mark.parametrize(("names", "inclusive", "style", "offsets"), CASES.values(), ids=CASES.keys())
def test_every_row_is_emitted_once_whatever_the_unpublished_facts(sandbox, names, inclusive, style, offsets):
    sandbox.control(
        window_column_names=names, date_to_inclusive=inclusive, header_style=style, utc_offsets=offsets
    )
    end = end_date_on_a_row(sandbox)
    boundaries = [utc(START) + timedelta(days=WINDOW_DAYS * k) for k in range(1, 4)]
    on_boundaries = [key for b in boundaries for key in rows_at(sandbox, "orders", b)]
    assert on_boundaries, "the data must put orders exactly on window boundaries"

    run = run_tap(config(sandbox, end.isoformat()), streams=STREAMS)

    assert run.returncode == 0, run.stderr[-2000:]
    assert_exactly_once(run, sandbox, end)
    emitted = set(run.keys("orders", ["number"]))
    assert set(on_boundaries) <= emitted
    assert not set(rows_at(sandbox, "orders", end)) & emitted, "a row at end_date belongs to the next run"
    assert "without the window-boundary check" not in run.stderr
    assert_records_fit_schemas(run)
    column = (names or {}).get("order_list", "created_at")
    schema = run.schemas["orders"]["schema"]["properties"][column]
    assert schema.get("format") == "date-time", f"'{column}' is typed as a date-time"


def test_a_second_run_from_the_state_continues_exactly_where_the_first_ended(sandbox):
    sandbox.control(window_column_names={"order_list": "date_created"}, utc_offsets=ODD_OFFSETS)
    middle = end_date_on_a_row(sandbox)
    end = middle + timedelta(days=2 * WINDOW_DAYS)
    first = run_tap(config(sandbox, middle.isoformat()), streams=["orders"])
    second = run_tap(config(sandbox, end.isoformat()), streams=["orders"], state=first.last_state)
    assert (first.returncode, second.returncode) == (0, 0), second.stderr[-2000:]
    got = first.keys("orders", ["number"]) + second.keys("orders", ["number"])
    expected = sandbox.truth_keys("nextcommerce", "order_list", utc(START), end)
    assert not duplicates(got)
    assert sorted(got) == sorted(expected)
    assert set(rows_at(sandbox, "orders", middle)) <= set(second.keys("orders", ["number"]))


def test_a_file_without_any_known_window_column_is_read_whole_trusting_the_server_s_range(sandbox):
    """Its rows are the export's: none is lost; only a row exactly on a window boundary
    (inclusive date_to) may come twice, and the run says so once, naming the setting."""
    sandbox.control(window_column_names={"order_list": "placed_on"}, header_style="title")
    end = end_date_on_a_row(sandbox)

    run = run_tap(config(sandbox, end.isoformat()), streams=STREAMS)

    assert run.returncode == 0, run.stderr[-2000:]
    d = definition("orders")
    expected = set(sandbox.truth_keys("nextcommerce", d.export_type, utc(START), end))
    got = Counter(run.keys("orders", ["number"]))
    boundaries = [utc(START) + timedelta(days=n * WINDOW_DAYS) for n in range(1, 100)]
    on_boundaries = {k for b in boundaries if b <= end for k in rows_at(sandbox, "orders", b)}
    assert expected <= set(got), "no row is lost"
    assert {k for k, n in got.items() if n > 1} | (set(got) - expected) <= on_boundaries
    (said,) = [line for line in run.stderr.splitlines() if "trusted to the server" in line]
    assert "stream 'orders'" in said and "window_columns" in said
    assert_exactly_once_for(run, sandbox, end, "customers")


def test_window_columns_names_the_column_a_store_uses(sandbox):
    sandbox.control(
        window_column_names={"order_list": "placed_on"}, header_style="title", utc_offsets=ODD_OFFSETS
    )
    end = end_date_on_a_row(sandbox)

    run = run_tap(config(sandbox, end.isoformat(), window_columns={"orders": "Placed On"}), streams=STREAMS)

    assert run.returncode == 0, run.stderr[-2000:]
    assert_exactly_once(run, sandbox, end)
    assert run.schemas["orders"]["schema"]["properties"]["placed_on"]["format"] == "date-time"
    assert_records_fit_schemas(run)


def test_by_default_each_run_reads_the_last_7_days_again_in_the_same_one_export_per_stream(sandbox):
    first_end, second_end = utc("2025-01-20T00:00:00Z"), utc("2025-01-21T00:00:00Z")
    default = {
        k: v for k, v in config(sandbox, first_end.isoformat(), window_days=30).items() if k != "lookback"
    }
    first = run_tap(default, streams=["orders"])
    assert first.returncode == 0, first.stderr[-2000:]
    before = sandbox.stats()["exports_created"]["nextcommerce"]

    second = run_tap(
        {**default, "end_date": second_end.isoformat()}, streams=["orders"], state=first.last_state
    )

    assert second.returncode == 0, second.stderr[-2000:]
    assert sandbox.stats()["exports_created"]["nextcommerce"] - before == 1, "one export covers the lookback"
    reread = sandbox.truth_keys("nextcommerce", "order_list", second_end - timedelta(days=8), second_end)
    assert sorted(second.keys("orders", ["number"])) == sorted(reread)
    assert second.last_state["bookmarks"]["orders"]["partitions"][0]["replication_key_value"] == (
        "2025-01-21T00:00:00Z"
    )


@pytest.mark.parametrize("inclusive", [True, False], ids=["endTime-inclusive", "endTime-exclusive"])
def test_clover_rows_on_boundaries_and_at_end_date_are_emitted_once_under_either_rule(sandbox, inclusive):
    sandbox.control(date_to_inclusive=inclusive)
    moment = utc(START) + timedelta(days=8)
    while not sandbox.truth_keys("clover", "ORDERS", moment, moment + timedelta(microseconds=1)):
        moment += timedelta(days=2)
    end = moment
    config = {
        "provider": "clover",
        "api_url": sandbox.clover_url,
        "access_token": "sandbox-token",
        "merchant_id": "SANDBOXMERCHANT1",
        "region": "sandbox",
        "start_date": START,
        "end_date": end.isoformat(),
        "window_days": 2,
        "poll_interval": 0.02,
        "poll_max_interval": 0.2,
        "max_requests_per_second": 500,
        "export_timeout": 60,
    }

    run = run_tap(config, streams=["orders", "payments"])

    assert run.returncode == 0, run.stderr[-2000:]
    for stream, export_type in (("orders", "ORDERS"), ("payments", "PAYMENTS")):
        got = run.keys(stream, ["id"])
        assert not duplicates(got), f"{stream}: emitted twice"
        assert sorted(got) == sorted(sandbox.truth_keys("clover", export_type, utc(START), end)), stream
    at_end = sandbox.truth_keys("clover", "ORDERS", end, end + timedelta(microseconds=1))
    assert at_end and not set(at_end) & set(run.keys("orders", ["id"])), "a row at end_date is the next run's"
