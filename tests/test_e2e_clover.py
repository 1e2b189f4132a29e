"""End to end, Clover: the real CLI against the sandbox's Clover API over real HTTP."""

from __future__ import annotations

import pytest

from tap_commerce_exports.providers.clover_streams import CLOVER_STREAMS
from tests.sandbox_fixtures import account_config
from tests.tap_harness import assert_records_fit_schemas, duplicates, run_tap, utc

pytestmark = pytest.mark.e2e

START, END = "2025-01-01T00:00:00Z", "2025-03-01T00:00:00Z"  # 59 days: more than one 30-day export
SANDBOX_SETTINGS = dict(processing_delay=0.05, retry_after=1, clover_rate_limit=1000)


def config(sandbox, **overrides):
    base = {
        **account_config(sandbox, "clover"),
        "start_date": START,
        "end_date": END,
        "poll_interval": 0.02,
        "poll_max_interval": 0.2,
        "max_requests_per_second": 200,
        "export_timeout": 60,
        "lookback": 0,  # these runs check exactly once across runs: no re-read
    }
    base.update(overrides)
    return base


def assert_exact(run, sandbox, start=START, end=END):
    for d in CLOVER_STREAMS:
        expected = sandbox.truth_keys("clover", d.export_type, utc(start), utc(end))
        got = run.keys(d.name, d.primary_keys)
        assert not duplicates(got), f"{d.name}: duplicates"
        assert sorted(got) == sorted(expected), f"{d.name}: keys differ from ground truth"


def test_a_range_longer_than_30_days_syncs_exactly_in_30_day_exports_of_many_files(sandbox):
    before = sandbox.stats()
    run = run_tap(config(sandbox))
    assert run.returncode == 0, run.stderr[-2000:]
    assert_exact(run, sandbox)
    assert_records_fit_schemas(run)
    after = sandbox.stats()
    assert (
        after["exports_created"]["clover"] - before["exports_created"]["clover"] == 4
    )  # 2 streams x 2 windows
    assert after["auth_header_on_file_host"] == 0
    assert after["max_clover_exports_running"] <= 1, "the default runs one export at a time"
    order = run.records["orders"][0]
    assert isinstance(order["id"], str) and isinstance(order["createdTime"], int)
    assert "2 file(s)" in run.stderr or "3 file(s)" in run.stderr, "exports span several files"


def test_two_incremental_runs_equal_one_full_run(sandbox):
    first = run_tap(config(sandbox, end_date="2025-01-20T00:00:00Z"))
    assert first.returncode == 0, first.stderr[-2000:]
    second = run_tap(config(sandbox), state=first.last_state)
    assert second.returncode == 0, second.stderr[-2000:]
    for d in CLOVER_STREAMS:
        expected = sandbox.truth_keys("clover", d.export_type, utc(START), utc(END))
        got = first.keys(d.name, d.primary_keys) + second.keys(d.name, d.primary_keys)
        assert not duplicates(got) and sorted(got) == sorted(expected), d.name


def test_window_days_over_30_is_refused_with_one_line(sandbox):
    run = run_tap(config(sandbox, window_days=31))
    assert run.returncode == 2
    (line,) = run.error_lines()
    assert "window_days" in line and "30" in line


@pytest.mark.parametrize(
    "fault",
    [
        {"fault_429_burst": 3},
        {"fault_500": 2},
        {"fault_expired_url": True},
        {"fault_truncated_download": True},
        {"fault_clover_503": 3},
        {"clover_legacy_complete": True},
    ],
    ids=["429", "500", "expired-url", "truncated", "503-on-create", "legacy-COMPLETE"],
)
def test_each_fault_still_gives_exact_results(sandbox, fault):
    sandbox.control(**fault)
    run = run_tap(config(sandbox, end_date="2025-01-31T00:00:00Z"))
    assert run.returncode == 0, run.stderr[-2000:]
    assert_exact(run, sandbox, end="2025-01-31T00:00:00Z")


def test_a_failed_export_is_a_clear_error_naming_it(sandbox):
    sandbox.control(fault_export_failed=1)
    run = run_tap(
        config(sandbox, end_date="2025-01-31T00:00:00Z", export_attempts=1, min_window_days=365),
        streams=["orders"],
    )
    assert run.returncode == 2
    (line,) = run.error_lines()
    assert "FAILED" in line and "export" in line


def test_outside_unknown_hours_a_503_is_retried_with_backoff_then_times_out(sandbox):
    # region 'la' publishes no hours: the tap can't know, so a 503 is retried, growing,
    # until export_timeout, and never in a tight loop.
    sandbox.control(clover_hours="us", fake_now="2025-06-02T20:00:00Z")
    before = sandbox.stats()["503s_sent"]
    run = run_tap(
        config(
            sandbox,
            region="la",
            export_timeout=1.5,
            poll_interval=0.2,
            poll_max_interval=1,
            end_date="2025-01-10T00:00:00Z",
        ),
        streams=["orders"],
    )
    assert run.returncode == 2
    (line,) = run.error_lines()
    assert "503" in line and "export_timeout" in line
    assert sandbox.stats()["503s_sent"] - before <= 6


@pytest.mark.parametrize("shape", ["message", "error", "text", "empty"])
def test_refused_creates_back_off_on_one_clock_for_the_account_and_say_the_servers_reason(sandbox, shape):
    # every create answered 503 (the hours of region 'la' are not published): both
    # streams wait on the same doubling clock, and stop together at export_timeout
    sandbox.control(clover_hours="us", fake_now="2025-06-02T20:00:00Z", clover_503_body=shape)
    before = sandbox.stats()["requests"].get("clover_create", 0)
    run = run_tap(
        config(
            sandbox,
            region="la",
            export_timeout=3,
            poll_interval=0.2,
            poll_max_interval=0.2,  # bounds status checks, not the wait after a refusal
            max_concurrent_exports=2,
            end_date="2025-01-10T00:00:00Z",
        )
    )
    assert run.returncode == 2
    (line,) = run.error_lines()
    reason = "no reason given" if shape == "empty" else '"outside availability window (US export hours)"'
    assert reason in line and "export_timeout" in line
    assert "and 1 more stream(s) failed" in line  # payments stopped on the same clock
    creates = sandbox.stats()["requests"].get("clover_create", 0) - before
    assert creates <= 6, f"{creates} creates in 3 s: the back-off is not doubling for the account"
    assert not run.records


def test_a_retry_after_on_a_refused_create_is_honoured(sandbox):
    sandbox.control(clover_hours="us", fake_now="2025-06-02T20:00:00Z", clover_503_retry_after=2)
    before = sandbox.stats()["requests"].get("clover_create", 0)
    run = run_tap(
        config(sandbox, region="la", export_timeout=3, poll_interval=0.05, end_date="2025-01-10T00:00:00Z"),
        streams=["orders"],
    )
    assert run.returncode == 2
    assert sandbox.stats()["requests"].get("clover_create", 0) - before == 2  # at 0 s and at 2 s


def test_a_bad_merchant_id_ends_with_one_line(sandbox):
    run = run_tap(config(sandbox, merchant_id="NOSUCHMERCHANT"), streams=["orders"])
    assert run.returncode == 2
    (line,) = run.error_lines()
    assert "merchant_id" in line


def test_a_bad_token_ends_with_one_line(sandbox):
    run = run_tap(config(sandbox, access_token="nope-nope"), streams=["orders"])
    assert run.returncode == 2
    (line,) = run.error_lines()
    assert "access_token" in line and "nope-nope" not in run.stderr


def test_connection_test_reads_the_merchant_and_creates_no_export(sandbox):
    before = sandbox.stats()["exports_created"]["clover"]
    run = run_tap(config(sandbox), args=["--test"])
    assert run.returncode == 0, run.stderr[-2000:]
    assert "connection test passed" in run.stderr
    assert sandbox.stats()["exports_created"]["clover"] == before
