"""End to end, many accounts: the real CLI (a subprocess) against the sandbox serving
several Clover merchants and Next Commerce stores, each with its own token and data.

Specs of issue 14's "Done when": a 3-merchant config with one wrong token gives the two
good merchants' rows exactly, names the bad one in one line, exits non-zero, and a rerun
from the saved state continues both; two processes with disjoint accounts at the same
time give the exact union, and rerunning adds nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tap_commerce_exports.providers.clover_streams import CLOVER_STREAMS
from tap_commerce_exports.providers.nextcommerce_streams import NEXTCOMMERCE_STREAMS
from tap_commerce_exports.singer.account_property import ACCOUNT_PROPERTY
from tap_commerce_exports.singer.bookmarks import read_bookmark
from tests.tap_harness import TapRun, duplicates, run_tap, utc

pytestmark = pytest.mark.e2e

START, END = "2025-01-01T00:00:00Z", "2025-01-20T00:00:00Z"
MERCHANTS = ["MERCHANT1", "MERCHANT2", "MERCHANT3"]
STORES = ["store-1", "store-2", "store-3"]
WRONG = "tok-WRONG-never-printed-7"
DEBUG_ENV = {"LOGLEVEL": "DEBUG", "TAP_COMMERCE_EXPORTS_LOGLEVEL": "DEBUG"}


SANDBOX_SETTINGS = dict(
    processing_delay=0.05,
    retry_after=1,
    clover_rate_limit=1000,
    nc_rate_limit=0,
    clover_app_rate_limit=0,
    clover_app_max_concurrent_requests=0,
    data_end="2025-02-01T00:00:00Z",
    accounts={"stores": 3, "merchants": 3},
)


def common(**overrides: Any) -> dict[str, Any]:
    base = {
        "start_date": START,
        "end_date": END,
        "poll_interval": 0.02,
        "poll_max_interval": 0.2,
        "max_requests_per_second": 200,
        "app_max_requests_per_second": 1000,
        "export_timeout": 60,
        "window_days": 7,
        "lookback": 0,  # these runs check exactly once across runs: no re-read
    }
    base.update(overrides)
    return base


def clover_config(sandbox, merchants: list[str], wrong: str | None = None) -> dict[str, Any]:
    return common(
        provider="clover",
        api_url=sandbox.clover_url,
        region="sandbox",
        accounts=[
            {"merchant_id": m, "access_token": WRONG if m == wrong else f"token-{m}"} for m in merchants
        ],
    )


def nc_config(sandbox, stores: list[str], wrong: str | None = None) -> dict[str, Any]:
    return common(
        provider="nextcommerce",
        accounts=[
            {
                "store": s,
                "api_url": sandbox.store_url(s),
                "access_token": WRONG if s == wrong else f"token-{s}",
            }
            for s in stores
        ],
    )


def truth(sandbox, provider: str, streams, accounts: list[str]) -> dict[str, list[Any]]:
    """stream -> sorted (account, key...) of the sandbox's rows of ``accounts``."""
    out: dict[str, list[Any]] = {}
    for d in streams:
        keys: list[Any] = []
        for account in accounts:
            for key in sandbox.truth_keys(provider, d.export_type, utc(START), utc(END), account=account):
                keys.append((account, *(key if isinstance(key, tuple) else (key,))))
        out[d.name] = sorted(keys)
    return out


def got(runs: list[TapRun], streams) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for d in streams:
        keys = [k for run in runs for k in run.keys(d.name, [ACCOUNT_PROPERTY, *d.primary_keys])]
        assert not duplicates(keys), f"{d.name}: duplicates"
        out[d.name] = sorted(keys)
    return out


@pytest.mark.parametrize(
    ("provider", "streams", "names"),
    [("clover", CLOVER_STREAMS, MERCHANTS), ("nextcommerce", NEXTCOMMERCE_STREAMS[:3], STORES)],
)
def test_three_accounts_with_one_wrong_token_give_the_two_good_ones_exactly_and_name_the_bad_one(
    sandbox, tmp_path, provider, streams, names
):
    build = clover_config if provider == "clover" else nc_config
    config = build(sandbox, names, wrong=names[1])
    selected = [d.name for d in streams]
    run = run_tap(config, streams=selected, env=DEBUG_ENV)

    assert run.returncode == 2, run.stderr[-2000:]
    (line,) = run.error_lines()
    assert line.startswith(f"tap-commerce-exports: error: account '{names[1]}' (accounts[1]): ")
    assert "accounts[1].access_token" in line
    for token in (WRONG, *(f"token-{n}" for n in names)):  # at DEBUG level too
        assert token not in run.stderr and token not in run.stdout
    good = [names[0], names[2]]
    assert got([run], streams) == truth(sandbox, provider, streams, good)
    state = run.last_state
    assert state is not None
    for d in streams:
        for account in good:
            assert read_bookmark(state, d.name, account) == utc(END)
        assert read_bookmark(state, d.name, names[1]) is None

    # rerun from the saved state: both good accounts continue (up to date: nothing new)
    rerun = run_tap(config, streams=selected, state=state)
    assert rerun.returncode == 2
    assert sum(len(r) for r in rerun.records.values()) == 0
    assert len(rerun.error_lines()) == 1
    # fixed token: the bad account catches up alone, the good ones add nothing
    fixed = run_tap(build(sandbox, names), streams=selected, state=rerun.last_state)
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert got([fixed], streams) == truth(sandbox, provider, streams, [names[1]])


def _start(config: dict[str, Any], state: dict[str, Any] | None, folder: Path) -> subprocess.Popen[str]:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    cmd = [sys.executable, "-m", "tap_commerce_exports", "--config", str(folder / "config.json")]
    if state is not None:
        (folder / "state.json").write_text(json.dumps(state))
        cmd += ["--state", str(folder / "state.json")]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=folder, env=dict(os.environ)
    )


def _finish(proc: subprocess.Popen[str]) -> TapRun:
    stdout, stderr = proc.communicate(timeout=240)
    run = TapRun(proc.returncode, stdout, stderr)
    run.messages = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return run


def test_two_processes_with_disjoint_accounts_at_once_give_the_exact_union_and_rerunning_adds_nothing(
    sandbox, tmp_path
):
    configs = [clover_config(sandbox, MERCHANTS[:1]), clover_config(sandbox, MERCHANTS[1:])]
    procs = [_start(c, None, tmp_path / f"first-{i}") for i, c in enumerate(configs)]
    runs = [_finish(p) for p in procs]  # both run at the same time
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
    assert got(runs, CLOVER_STREAMS) == truth(sandbox, "clover", CLOVER_STREAMS, MERCHANTS)

    procs = [
        _start(c, r.last_state, tmp_path / f"again-{i}")
        for i, (c, r) in enumerate(zip(configs, runs, strict=True))
    ]
    again = [_finish(p) for p in procs]
    for run in again:
        assert run.returncode == 0, run.stderr[-2000:]
        assert sum(len(r) for r in run.records.values()) == 0


def test_the_app_wide_rate_limit_holds_across_all_accounts(sandbox):
    """Each merchant's token may send 1000 requests/s, the app only 5/s across them: one
    limiter shared by every account's client keeps the sum under it (no 429), where
    per-account limiters alone (the app limit set far above) are throttled."""

    def sync(app_rps: float) -> tuple[TapRun, dict[str, Any]]:
        sandbox.control(clover_app_rate_limit=5, reset_stats=True, reset_limits=True)
        try:
            config = clover_config(sandbox, MERCHANTS)
            config.update(app_max_requests_per_second=app_rps, max_requests_per_second=1000)
            run = run_tap(config, streams=["orders"])
            return run, sandbox.stats()
        finally:
            sandbox.control(clover_app_rate_limit=0, reset_stats=True, reset_limits=True)

    orders = [d for d in CLOVER_STREAMS if d.name == "orders"]
    run, stats = sync(5)
    assert run.returncode == 0, run.stderr[-2000:]
    assert got([run], orders) == truth(sandbox, "clover", orders, MERCHANTS)
    assert stats["429s_sent"] == 0
    assert all(stats["by_account"]["clover"][m]["requests"] > 0 for m in MERCHANTS)
    _unshared, control = sync(1000)
    assert control["429s_sent"] > 0


def test_a_failed_export_of_one_account_stops_only_that_account_s_stream(sandbox):
    sandbox.control(fault_export_failed=50, fault_account="MERCHANT2")
    try:
        config = clover_config(sandbox, MERCHANTS)
        config.update(export_attempts=1, min_window_days=7)  # no split: the stream stops
        run = run_tap(config, streams=["orders"])
    finally:
        sandbox.control(fault_export_failed=0, fault_account=None)
    assert run.returncode == 2
    (line,) = run.error_lines()
    assert line.startswith(
        "tap-commerce-exports: error: account 'MERCHANT2' (accounts[1]): stream 'orders' failed: "
    )
    orders = [d for d in CLOVER_STREAMS if d.name == "orders"]
    assert got([run], orders) == truth(sandbox, "clover", orders, ["MERCHANT1", "MERCHANT3"])
    assert read_bookmark(run.last_state or {}, "orders", "MERCHANT2") is None


def test_an_unknown_merchant_stops_only_its_account_naming_its_merchant_id_setting(sandbox):
    config = clover_config(sandbox, MERCHANTS[:1])
    config["accounts"].append({"merchant_id": "NOPE", "access_token": "token-MERCHANT2"})
    run = run_tap(config, streams=["orders"])
    assert run.returncode == 2
    (line,) = run.error_lines()
    assert line.startswith(
        "tap-commerce-exports: error: account 'NOPE' (accounts[1]): Clover merchant 'NOPE' was not found"
    )
    assert "check 'accounts[1].merchant_id'" in line
    orders = [d for d in CLOVER_STREAMS if d.name == "orders"]
    assert got([run], orders) == truth(sandbox, "clover", orders, MERCHANTS[:1])


def test_check_access_checks_every_merchant_and_names_each_failing_one_creating_no_export(sandbox):
    sandbox.control(reset_stats=True)
    config = clover_config(sandbox, MERCHANTS, wrong="MERCHANT2")
    config["accounts"].append({"merchant_id": "MERCHANT9", "access_token": "token-MERCHANT9"})
    run = run_tap(config, args=["--test"])
    assert run.returncode == 2
    assert [line.split(" (")[0] for line in run.error_lines()] == [
        "tap-commerce-exports: error: account 'MERCHANT2'",
        "tap-commerce-exports: error: account 'MERCHANT9'",
    ]
    assert "connection test passed: Clover merchant 'MERCHANT1'" in run.stderr
    assert "connection test passed: Clover merchant 'MERCHANT3'" in run.stderr
    assert sandbox.stats()["exports_created"]["clover"] == 0
