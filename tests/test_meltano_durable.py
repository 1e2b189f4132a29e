"""Durable exports through real Meltano: `meltano run` killed during the wait, run again.

What reaches Meltano's state while no record was written: the tap's in-flight exports.
Meltano keeps only the STATE its target confirms, and the DuckDB loader
(target-duckdb-exports) confirms a STATE that follows no unloaded row at once, so the
exports the tap recorded (flushed in STATE as each is created) survive the killed
pipeline. The rerun creates no export: it follows the exports named in Meltano's state,
and lists the store's exports for any the kill kept out of it (Next Commerce), following
those still running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest

from tap_commerce_exports.providers.nextcommerce_streams import NEXTCOMMERCE_STREAMS
from tests.meltano_helpers import MELTANO, NC_EXTRACTOR, REPO, IsolatedMeltano, missing_install, plugin_env
from tests.test_meltano_e2e import expected_keys, table_keys

pytestmark = pytest.mark.meltano

START, END = "2025-01-01T00:00:00Z", "2025-01-04T00:00:00Z"  # one 3-day window per stream


@pytest.fixture
def sandbox():
    from commerce_sandbox import SandboxConfig, SandboxServer

    # exports that take 10 minutes: the pipeline is certainly waiting when it is killed
    with SandboxServer(SandboxConfig(port=0, processing_delay=600, nc_rate_limit=50)) as sb:
        yield sb


def settings(sandbox) -> dict[str, str]:
    return plugin_env(
        NC_EXTRACTOR,
        {
            "provider": "nextcommerce",
            "api_url": sandbox.api_url,
            "access_token": "sandbox-token",
            "store": "demo-store",
            "start_date": START,
            "end_date": END,
            "window_days": 3,
            "poll_interval": 1,
            "poll_max_interval": 2,
            "export_timeout": 900,
            "max_concurrent_exports": 13,
            "max_requests_per_second": 40,
        },
    )


def test_meltano_run_killed_while_exports_are_pending_is_rerun_without_new_exports(
    sandbox, tmp_path, require
):
    require(missing_install())
    meltano = IsolatedMeltano(tmp_path)
    meltano.extra_env = settings(sandbox)
    streams = len(NEXTCOMMERCE_STREAMS)

    pipeline = subprocess.Popen(
        [str(MELTANO), f"--environment={meltano.environment}", "run", NC_EXTRACTOR, "target-duckdb"],
        cwd=REPO,
        env=meltano.env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: Meltano, the tap and the target
    )
    try:
        deadline = time.monotonic() + 180
        while sandbox.stats()["exports_created"]["nextcommerce"] < streams:
            assert pipeline.poll() is None, "meltano run ended before its exports were created"
            assert time.monotonic() < deadline, "the exports were not all created within 180 s"
            time.sleep(0.2)  # polling the sandbox's counter, not waiting for a race
    finally:
        os.killpg(pipeline.pid, signal.SIGKILL)  # the whole pipeline dies, as in a lost container
        pipeline.wait(timeout=30)

    # what the tap said about its pending exports was confirmed by the loader: Meltano
    # kept the exports (a kill right after the last create may keep that one out)
    saved = {
        stream: len(partition.get("exports", []))
        for s in meltano.states().values()
        for stream, entry in (s.get("singer_state", {}).get("bookmarks") or {}).items()
        for partition in entry.get("partitions", [])
    }
    assert sum(saved.values()) >= 1, "Meltano kept none of the tap's in-flight exports"
    unsaved = streams - sum(1 for n in saved.values() if n)

    # the rerun follows the saved exports and lists the store's exports (one list per
    # type) for the others, following the ones still running; once it has listed those,
    # they finish
    lists_before = sandbox.stats()["requests"].get("nc_list", 0)
    results: list = []
    rerun_thread = threading.Thread(
        target=lambda: results.append(meltano.run("run", "--force", NC_EXTRACTOR, "target-duckdb")),
        daemon=True,  # --force: the killed pipeline is still marked as running
    )
    rerun_thread.start()
    deadline = time.monotonic() + 180
    while sandbox.stats()["requests"].get("nc_list", 0) < lists_before + unsaved:
        assert rerun_thread.is_alive(), results[0].tail() if results else "the rerun ended"
        assert time.monotonic() < deadline, "the rerun did not list the exports within 180 s"
        time.sleep(0.2)  # polling the sandbox's counter, not waiting for a race
    sandbox.control(complete_exports=True, processing_delay=0.05)
    rerun_thread.join(timeout=300)
    (rerun,) = results
    assert rerun.returncode == 0, rerun.tail()
    assert sandbox.stats()["exports_created"]["nextcommerce"] == streams, "an export was created twice"
    followed = rerun.output.count("from the last run (created")
    listed = rerun.output.count("found in the provider's list")
    assert (followed, listed) == (streams - unsaved, unsaved)
    for d in NEXTCOMMERCE_STREAMS:
        expected = expected_keys(sandbox, "nextcommerce", d, START, END)
        if not expected:
            continue
        table = d.name.replace("-", "_").lower()
        assert sorted(table_keys(meltano.warehouse, "nextcommerce", table, d.primary_keys)) == sorted(
            expected
        )
