"""Durable exports end to end: the real tap process against the sandbox, killed for real.

* A run SIGKILLed while its exports are pending leaves them in its last STATE; the rerun
  from that STATE creates no export for those windows, follows the ones that kept running
  while it was down, waits on no export's processing again, and the union is exact.
* A create whose answer is lost (the sandbox makes the export, then answers 502) leaves
  one export per window on Next Commerce, whose list endpoint finds it.
* An export that fails once is retried; exports that fail above N days are split until
  they don't; every record arrives once and the bookmark reaches the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from tap_commerce_exports.windows import iso_z
from tests.tap_harness import utc
from tests.test_interruption import (
    DEFINITIONS,
    clover_config,
    nc_config,
    record_key,
    run_attempt,
    tap_command,
    truth_for,
    write_catalog,
)
from tests.waiting import until

pytestmark = pytest.mark.e2e

#: Seconds an export takes on the sandbox: never, within a test. An export finishes when
#: the test says so (``complete_exports``), so what is pending when a run is killed or
#: listed does not depend on how fast this machine is.
DELAY = 3600.0
HANG = 120.0  # seconds: only bounds a hang
STREAMS = {"nextcommerce": ["orders", "customers"], "clover": ["orders"]}


SANDBOX_SETTINGS = dict(
    processing_delay=DELAY,
    nc_rate_limit=1000,
    clover_rate_limit=1000,
    clover_max_running=4,
    rows_per_day={"order_list": 20, "customer_list": 10},
)
#: no export a test left running holds one of Clover's running slots in the next test
SANDBOX_AFTER_EACH = dict(complete_exports=True)


def config_for(sandbox, provider: str, slot: int, **overrides) -> dict:
    """Six days (two 3-day windows) of their own per test: Next Commerce would otherwise
    follow another test's exports of the same windows, found in its list of exports."""
    make = nc_config if provider == "nextcommerce" else clover_config
    start = utc("2025-01-01T00:00:00Z") + timedelta(days=6 * slot)
    base = {
        "start_date": iso_z(start),
        "end_date": iso_z(start + timedelta(days=6)),
        "max_concurrent_exports": 4,
        **overrides,
    }
    return make(sandbox, **base)


def saved_exports(state: dict) -> list[dict]:
    return [
        e
        for stream in state.get("bookmarks", {}).values()
        for p in stream.get("partitions", [])
        for e in p.get("exports", [])
    ]


def run_until_exports_saved(config: dict, catalog: Path, n: int, workdir: Path) -> dict:
    """Run the tap and SIGKILL it once a STATE holds ``n`` in-flight exports (before any
    record: they are all pending). Returns that STATE."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(json.dumps(config))
    proc = subprocess.Popen(
        tap_command(workdir / "config.json", catalog, None),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=workdir,
        env=dict(os.environ),
    )
    assert proc.stdout is not None
    state: dict = {}
    try:
        for raw in proc.stdout:
            message = json.loads(raw)
            assert message["type"] != "RECORD", "a record came before every export was saved"
            if message["type"] == "STATE":
                state = message["value"]
                if len(saved_exports(state)) >= n:
                    proc.send_signal(signal.SIGKILL)
                    break
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the tap ended before its exports were saved"
    return state


@pytest.mark.parametrize("provider", ["nextcommerce", "clover"])
def test_a_run_killed_while_exports_are_pending_is_resumed_without_a_new_export(sandbox, tmp_path, provider):
    streams = STREAMS[provider]
    config = config_for(sandbox, provider, 0)
    catalog = write_catalog(config, streams, tmp_path / "catalog.json")
    windows = 2 * len(streams)  # 6 days of 3-day windows per stream

    created_before = sandbox.stats()["exports_created"][provider]
    state = run_until_exports_saved(config, catalog, windows, tmp_path / "killed")
    assert sandbox.stats()["exports_created"][provider] - created_before == windows
    assert all(
        p.get("replication_key_value") is None for s in state["bookmarks"].values() for p in s["partitions"]
    )
    sandbox.control(complete_exports=True)  # the exports went on while the tap was down
    # a new export would never finish (DELAY): the resumed run ending at all shows it waited
    # on no export's processing (it once took a fresh run's wait again)

    resumed = run_attempt(config, catalog, state, None, tmp_path / "resumed")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert sandbox.stats()["exports_created"][provider] - created_before == windows, "no export created twice"
    assert resumed.stderr.count("from the last run") == windows
    assert saved_exports(resumed.last_state or {}) == [], "finished exports leave the state"

    truth = truth_for(sandbox, provider, streams, config["start_date"], config["end_date"])
    for stream in streams:
        keys = Counter(record_key(provider, stream, r) for r in resumed.records[stream])
        assert sorted(keys) == sorted(truth[stream]) and max(keys.values()) == 1, stream


def test_next_commerce_finds_the_exports_of_a_killed_run_whose_state_was_never_kept(sandbox, tmp_path):
    """As through Meltano with a target that keeps STATE until it writes records: the
    rerun starts with no state, and follows the exports its list endpoint shows still
    running (they are: they finish only once the rerun has found all four)."""
    streams = STREAMS["nextcommerce"]
    config = config_for(sandbox, "nextcommerce", 6)
    catalog = write_catalog(config, streams, tmp_path / "catalog.json")
    created_before = sandbox.stats()["exports_created"]["nextcommerce"]
    run_until_exports_saved(config, catalog, 4, tmp_path / "killed")
    finisher = complete_once_logged(
        sandbox, tmp_path / "rerun" / "stderr.txt", "found in the provider's list", 4
    )
    rerun = run_attempt(config, catalog, None, None, tmp_path / "rerun")
    finisher.join(HANG)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert sandbox.stats()["exports_created"]["nextcommerce"] - created_before == 4, "no export created twice"
    assert rerun.stderr.count("found in the provider's list") == 4
    truth = truth_for(sandbox, "nextcommerce", streams, config["start_date"], config["end_date"])
    for stream in streams:
        assert sorted(record_key("nextcommerce", stream, r) for r in rerun.records[stream]) == sorted(
            truth[stream]
        )


def complete_once_logged(sandbox, log: Path, words: str, count: int) -> threading.Thread:
    """Completes the sandbox's exports once ``log`` holds ``words`` ``count`` times (or
    HANG seconds passed: then the run's own assertions say what was missing)."""

    def watch() -> None:
        until(lambda: log.exists() and log.read_text(errors="replace").count(words) >= count, HANG, 0.05)
        sandbox.control(complete_exports=True)  # (either way: the run's assertions judge)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def sync_with_faults(
    sandbox, tmp_path, provider: str, slot: int, faults: dict, **settings
) -> tuple[dict, dict, object]:
    streams = STREAMS[provider]
    config = config_for(sandbox, provider, slot, **settings)
    catalog = write_catalog(config, streams, tmp_path / "catalog.json")
    sandbox.control(processing_delay=0.2, reset_stats=True, **faults)
    try:
        run = run_attempt(config, catalog, None, None, tmp_path / "run")
    finally:
        sandbox.control(
            processing_delay=DELAY, fault_create_answer_lost=0, fault_export_failed=0, fault_fail_above_days=0
        )
    assert run.returncode == 0, run.stderr[-3000:]
    truth = truth_for(sandbox, provider, streams, config["start_date"], config["end_date"])
    for stream in streams:
        keys = Counter(record_key(provider, stream, r) for r in run.records[stream])
        assert sorted(keys) == sorted(truth[stream]), f"{stream}: records lost or extra"
        assert max(keys.values()) == 1, f"{stream}: duplicates"
        final = run.last_state["bookmarks"][stream]["partitions"][0]["replication_key_value"]
        assert utc(final) == utc(config["end_date"])
    return config, sandbox.stats(), run


def test_a_create_whose_answer_is_lost_leaves_one_export_per_window(sandbox, tmp_path):
    _, stats, run = sync_with_faults(sandbox, tmp_path, "nextcommerce", 2, {"fault_create_answer_lost": 2})
    assert stats["create_answers_lost"] == 2
    assert stats["exports_created"]["nextcommerce"] == 4  # 2 streams x 2 windows, none twice
    assert run.stderr.count("got no answer (POST") == 2


def test_an_export_that_fails_once_is_retried(sandbox, tmp_path):
    _, stats, run = sync_with_faults(sandbox, tmp_path, "nextcommerce", 3, {"fault_export_failed": 1})
    assert stats["exports_failed"] == 1
    assert stats["exports_created"]["nextcommerce"] == 5
    assert "(attempt 1 of 3); creating a new one" in run.stderr


@pytest.mark.parametrize("provider", ["nextcommerce", "clover"])
def test_exports_that_fail_above_some_span_are_split_until_the_store_syncs(sandbox, tmp_path, provider):
    # 3-day windows, exports over 1 day fail: each window ends as 1.5-day halves cut again
    _, stats, run = sync_with_faults(
        sandbox,
        tmp_path,
        provider,
        4 if provider == "nextcommerce" else 5,
        {"fault_fail_above_days": 1},
        export_attempts=1,
        min_window_days=0.5,
    )
    assert "splitting the window into" in run.stderr
    assert stats["exports_failed"] > 0
    assert DEFINITIONS[provider]  # the provider's streams were all checked above
