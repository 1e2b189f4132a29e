"""End to end, Next Commerce: the real CLI against the sandbox API over real HTTP.

Each test compares what the tap emitted with the sandbox's ground truth for the range.
"""

from __future__ import annotations

import pytest

from tap_commerce_exports.providers.nextcommerce_streams import NEXTCOMMERCE_STREAMS
from tests.sandbox_fixtures import account_config
from tests.tap_harness import assert_records_fit_schemas, duplicates, run_tap, utc

pytestmark = pytest.mark.e2e

START, END = "2025-01-01T00:00:00Z", "2025-03-01T00:00:00Z"
SANDBOX_SETTINGS = dict(processing_delay=0.05, nc_rate_limit=1000, retry_after=1)


def config(sandbox, **overrides):
    base = {
        **account_config(sandbox, "nextcommerce"),
        "start_date": START,
        "end_date": END,
        "window_days": 15,
        "poll_interval": 0.02,
        "poll_max_interval": 0.2,
        "max_concurrent_exports": 13,
        "max_requests_per_second": 500,
        "export_timeout": 60,
        "lookback": 0,  # these runs check exactly once across runs: no re-read
    }
    base.update(overrides)
    return base


def truth(sandbox, stream_name, start=START, end=END):
    definition = next(d for d in NEXTCOMMERCE_STREAMS if d.name == stream_name)
    return definition, sandbox.truth_keys("nextcommerce", definition.export_type, utc(start), utc(end))


def assert_exact(run, sandbox, streams, start=START, end=END):
    for name in streams:
        definition, expected = truth(sandbox, name, start, end)
        got = run.keys(name, definition.primary_keys)
        assert not duplicates(got), f"{name}: duplicates {list(duplicates(got))[:5]}"
        assert sorted(map(str, got)) == sorted(map(str, expected)), f"{name}: keys differ from ground truth"


def test_a_full_sync_emits_exactly_the_ground_truth_of_every_stream(sandbox):
    run = run_tap(config(sandbox))
    assert run.returncode == 0, run.stderr[-2000:]
    assert set(run.records) == {d.name for d in NEXTCOMMERCE_STREAMS}
    assert_exact(run, sandbox, [d.name for d in NEXTCOMMERCE_STREAMS])
    assert_records_fit_schemas(run)
    bookmarks = run.last_state["bookmarks"]
    for d in NEXTCOMMERCE_STREAMS:
        (partition,) = bookmarks[d.name]["partitions"]
        assert partition["context"] == {"account": "demo-store"}
        assert partition["replication_key_value"] == END
    assert sandbox.stats()["auth_header_on_file_host"] == 0
    assert "sandbox-token" not in run.stderr


def test_two_incremental_runs_with_saved_state_equal_one_full_run(sandbox):
    streams = ["orders", "customers", "order_line_items"]
    first = run_tap(config(sandbox, end_date="2025-02-01T00:00:00Z"), streams=streams)
    assert first.returncode == 0, first.stderr[-2000:]
    second = run_tap(config(sandbox), state=first.last_state, streams=streams)
    assert second.returncode == 0, second.stderr[-2000:]
    for name in streams:
        definition, expected = truth(sandbox, name)
        got = first.keys(name, definition.primary_keys) + second.keys(name, definition.primary_keys)
        assert not duplicates(got), name
        assert sorted(map(str, got)) == sorted(map(str, expected)), name
    third = run_tap(config(sandbox), state=second.last_state, streams=streams)
    assert third.returncode == 0
    assert not third.records, "a run with nothing new emits no records"


@pytest.mark.parametrize("inclusive", [True, False], ids=["date_to-inclusive", "date_to-exclusive"])
def test_rows_on_window_boundaries_are_emitted_exactly_once_under_either_rule(sandbox, inclusive):
    sandbox.control(date_to_inclusive=inclusive)
    run = run_tap(
        config(sandbox, window_days=1, end_date="2025-01-15T00:00:00Z"), streams=["orders", "customers"]
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert_exact(run, sandbox, ["orders", "customers"], end="2025-01-15T00:00:00Z")


@pytest.mark.parametrize("header_style", ["snake", "title"])
def test_both_header_styles_give_the_same_typed_records(sandbox, header_style):
    sandbox.control(header_style=header_style)
    run = run_tap(config(sandbox, end_date="2025-01-20T00:00:00Z"), streams=["orders"])
    assert run.returncode == 0, run.stderr[-2000:]
    assert_exact(run, sandbox, ["orders"], end="2025-01-20T00:00:00Z")
    assert_records_fit_schemas(run)
    record = run.records["orders"][0]
    assert "number" in record and "created_at" in record


@pytest.mark.parametrize(
    "fault",
    [
        {"fault_429_burst": 3},
        {"fault_500": 2},
        {"fault_expired_url": True},
        {"fault_truncated_download": True},
    ],
    ids=["429-burst", "500", "expired-url", "truncated-download"],
)
def test_each_fault_mode_still_gives_exact_results(sandbox, fault):
    sandbox.control(**fault)
    streams = ["orders", "transactions"]
    run = run_tap(config(sandbox, end_date="2025-01-31T00:00:00Z"), streams=streams)
    assert run.returncode == 0, run.stderr[-2000:]
    assert_exact(run, sandbox, streams, end="2025-01-31T00:00:00Z")
    assert sandbox.stats()["auth_header_on_file_host"] == 0


def test_a_failed_export_stops_its_stream_keeps_its_bookmark_and_others_progress(sandbox):
    sandbox.control(fault_export_failed=1)
    run = run_tap(
        # windows no other test has: their exports would be found in the list and followed
        config(
            sandbox,
            start_date="2025-02-16T00:00:00Z",
            max_concurrent_exports=1,
            export_attempts=1,
            min_window_days=365,
        ),
        streams=["orders", "customers"],
    )
    assert run.returncode != 0
    (line,) = run.error_lines()
    assert "failed" in line and "export" in line
    bookmarks = run.last_state["bookmarks"]
    finished = [
        s
        for s in ("orders", "customers")
        if bookmarks.get(s, {}).get("partitions")
        and bookmarks[s]["partitions"][0]["replication_key_value"] == END
    ]
    assert len(finished) == 1, "the other stream completes"


def test_an_export_that_never_finishes_ends_with_a_clear_timeout(sandbox):
    sandbox.control(fault_never_ready=True)
    run = run_tap(config(sandbox, export_timeout=1, end_date="2025-01-10T00:00:00Z"), streams=["orders"])
    assert run.returncode == 2
    (line,) = run.error_lines()
    assert "export_timeout" in line
    assert not run.records


def test_a_bad_token_ends_with_one_line_naming_the_setting(sandbox):
    run = run_tap(config(sandbox, access_token="wrong-token-123"), streams=["orders"])
    assert run.returncode == 2
    (line,) = run.error_lines()
    assert "access_token" in line and "wrong-token-123" not in run.stderr
    assert "Traceback" not in run.stderr


def test_a_bad_setting_ends_with_one_line_naming_it(sandbox):
    run = run_tap(config(sandbox, start_date="last tuesday"))
    assert run.returncode == 2
    (line,) = run.error_lines()
    assert "start_date" in line
    assert "Traceback" not in run.stderr


def test_connection_test_checks_access_without_creating_exports(sandbox):
    before = sandbox.stats()["exports_created"]
    run = run_tap(config(sandbox), args=["--test"])
    assert run.returncode == 0, run.stderr[-2000:]
    assert sandbox.stats()["exports_created"] == before
    assert "connection test passed" in run.stderr


def test_lookback_starts_the_next_run_that_many_days_before_the_bookmark(sandbox):
    first = run_tap(config(sandbox, end_date="2025-02-01T00:00:00Z"), streams=["orders"])
    assert first.returncode == 0, first.stderr[-2000:]
    second = run_tap(config(sandbox, lookback=5), state=first.last_state, streams=["orders"])
    assert second.returncode == 0, second.stderr[-2000:]
    _, expected = truth(sandbox, "orders")
    _, refetched = truth(sandbox, "orders", "2025-01-27T00:00:00Z", "2025-02-01T00:00:00Z")
    got_first, got_second = first.keys("orders", ["number"]), second.keys("orders", ["number"])
    assert sorted(set(got_first) | set(got_second)) == sorted(expected)
    assert sorted(set(got_first) & set(got_second)) == sorted(refetched), (
        "duplicates only within the lookback, by design"
    )
    assert "window(s) from 2025-01-27T00:00:00Z" in second.stderr
