"""Dagster end to end: two groups as two partitions, run concurrently, state in PostgreSQL.

Real parts only: a real PostgreSQL (scripts/postgres.py; installed if missing) as
Meltano's system database, hence the shared state backend; the code location of
orchestration/ under `.venv-dagster`; Dagster's in-process executor running each
partition's `meltano run ... --state-id-suffix <group>` (real Meltano, real
target-duckdb) in two concurrent runs on one Dagster instance (tests/dagster_driver.py);
the sandbox as the API.

One sandbox serves three merchants, each with its own token and data; a group of two
merchants is one partition (one `meltano run`, the tap's `accounts` setting).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from orchestration.meltano_cli import Meltano
from tap_commerce_exports.providers.clover_streams import CLOVER_STREAMS
from tests.meltano_helpers import (
    CLOVER_EXTRACTOR,
    REPO,
    IsolatedMeltano,
    as_key_tuples,
    missing_install,
    plugin_env,
    read_warehouse,
    table_keys,
)

pytestmark = pytest.mark.meltano

DAGSTER_PYTHON = REPO / ".venv-dagster" / "bin" / "python"
DAGSTER_MELTANO = REPO / ".venv-dagster" / "bin" / "meltano"
START, END = "2025-01-01T00:00:00Z", "2025-03-01T00:00:00Z"
JOB = "sync_tap_commerce_exports__clover"
STATE_ID = f"dev:{CLOVER_EXTRACTOR}-to-target-duckdb:" + "{}"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


@pytest.fixture(scope="module")
def needs_dagster(require):
    require(missing_install())
    if not DAGSTER_PYTHON.exists():
        require(".venv-dagster is missing: run `make test` (its dagster-venv target creates it)")


@pytest.fixture(scope="module")
def postgres(needs_dagster):
    sys.path.insert(0, str(REPO / "scripts"))
    from postgres import PostgresServer

    server = PostgresServer.temporary().start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="module")
def dagster_storage(postgres) -> str:
    """The Dagster instance's storage: a database of its own on the same server (Meltano's
    system database has tables of the same names). PostgreSQL, not Dagster's default
    sqlite: pools are not held reliably across processes on sqlite (two runs overlapped)."""
    postgres.query("create database dagster")
    return postgres.libpq_url.rsplit("/", 1)[0] + "/dagster"


@pytest.fixture(scope="module")
def sandbox():
    from commerce_sandbox import SandboxConfig, SandboxServer

    config = SandboxConfig(port=0, processing_delay=0.05, accounts={"merchants": 3})
    with SandboxServer(config) as sb:
        yield sb


def write_groups(path: Path, sandbox, members: dict[str, list[str]], concurrent_runs: int) -> Path:
    """A groups file: {group: merchant ids} (the dev environment sends `sandbox_token`
    instead of `access_token`, so each account sets that one)."""
    tokens = {a["merchant_id"]: a["token"] for a in sandbox.accounts("clover")}
    groups = {}
    for group, merchants in members.items():
        accounts = [
            {"merchant_id": m, "sandbox_token": tokens[m], "region": "sandbox", "api_url": sandbox.clover_url}
            for m in merchants
        ]
        groups[group] = {"extractor": CLOVER_EXTRACTOR, "accounts": accounts}
    # the app's 50 requests/s and 10 requests in flight, shared by the runs the pool lets run at once
    app_limits = {"app_max_requests_per_second": 50, "app_max_concurrent_requests": 10}
    plan = {"concurrent_runs": concurrent_runs, "app_limits": app_limits}
    path.write_text(json.dumps({"extractors": {CLOVER_EXTRACTOR: plan}, "groups": groups}))
    return path


def _driver(meltano: IsolatedMeltano, spec: dict, *args: str) -> subprocess.Popen:
    env = {**meltano.env(), "MELTANO_BIN": str(DAGSTER_MELTANO), "DAGSTER_HOME": spec["dagster_home"]}
    return subprocess.Popen(
        [str(DAGSTER_PYTHON), str(REPO / "tests" / "dagster_driver.py"), args[0], json.dumps(spec), *args[1:]],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _report(proc: subprocess.Popen, log: Path) -> dict:
    output, _ = proc.communicate(timeout=900)
    log.write_text(output)
    lines = [ln for ln in output.splitlines() if ln.startswith("DRIVER-RESULT ")]
    assert proc.returncode == 0 and lines, f"driver failed (log {log}):\n{output[-3000:]}"
    return json.loads(lines[-1].split(" ", 1)[1])


def run_partitions(
    meltano: IsolatedMeltano, home: Path, groups_file: Path, partitions, label: str, storage: str,
    must_succeed: bool = True,
) -> dict:  # fmt: skip
    """Pool limits from the groups file, then one run per partition, all started at once."""
    spec = {"groups_file": str(groups_file), "dagster_home": str(home / "dagster-home"),
            "duckdb_dir": str(home / "warehouses"), "storage_url": storage}  # fmt: skip
    pools = _report(_driver(meltano, spec, "pools"), home / f"driver-{label}-pools.log")
    procs = {p: _driver(meltano, spec, "run", JOB, p) for p in partitions}
    runs = {p: _report(proc, home / f"driver-{label}-{p}.log") for p, proc in procs.items()}
    for partition, run in runs.items():
        assert run["success"] or not must_succeed, f"{partition} failed: {run.get('failure')} (logs: {home})"
    return {"pools": pools, "runs": runs}


def overlap(a: dict, b: dict) -> bool:
    return a["started_at"] < b["ended_at"] and b["started_at"] < a["ended_at"]


def warehouse_keys(path: Path) -> dict[str, list[tuple[str, ...]]]:
    """Every row's (account, object key) per stream: the account is part of the key."""
    tables = read_warehouse(path)
    out = {}
    for d in CLOVER_STREAMS:
        table = d.name.replace("-", "_").lower()
        key = ("_account", *d.primary_keys)
        out[d.name] = table_keys(path, "clover", table, key) if ("clover", table) in tables else []
    return out


def assert_ground_truth(path: Path, sandbox, merchants: list[str]) -> dict[str, int]:
    """The group's DuckDB file holds exactly its merchants' rows of [START, END), once each,
    each under its own merchant."""
    counts = {}
    for d in CLOVER_STREAMS:
        got = warehouse_keys(path)[d.name]
        expected = [
            (m, *key)
            for m in merchants
            for key in as_key_tuples(sandbox.truth_keys("clover", d.export_type, utc(START), utc(END), m))
        ]
        assert expected, f"{d.name}: the sandbox has no rows (test setup)"
        dups = [k for k, n in Counter(got).items() if n > 1]
        assert not dups, f"{path.name} {d.name}: duplicate keys {dups[:3]}"
        assert set(got) == set(expected), (
            f"{path.name} {d.name}: {len(set(expected) - set(got))} missing, {len(set(got) - set(expected))} unexpected"
        )
        counts[d.name] = len(got)
    return counts


def meltano_on(tmp_path: Path, postgres) -> IsolatedMeltano:
    """This test's Meltano, its state in the PostgreSQL server, the range and fast polling."""
    meltano = IsolatedMeltano(tmp_path)
    meltano.extra_env = {
        "MELTANO_DATABASE_URI": postgres.url,
        **plugin_env(
            CLOVER_EXTRACTOR,
            {
                "start_date": START,
                "end_date": END,
                "lookback": 0,
                "poll_interval": 1,
                "poll_max_interval": 1,
                "export_timeout": 120,
            },
        ),
    }
    # the state backend's tables exist before two runs start (a deploy step; see the README)
    upgrade = meltano.shell(f"{DAGSTER_MELTANO} upgrade database")
    assert upgrade.returncode == 0, upgrade.tail()
    return meltano


def test_two_groups_run_concurrently_under_dagster_with_state_in_postgres_and_a_rerun_adds_nothing(
    tmp_path, postgres, dagster_storage, sandbox
):
    meltano = meltano_on(tmp_path, postgres)
    warehouses = tmp_path / "warehouses"

    first_groups = {"clover-a": ["MERCHANT1", "MERCHANT3"], "clover-b": ["MERCHANT2"]}
    groups_1 = write_groups(tmp_path / "groups-1.json", sandbox, first_groups, concurrent_runs=2)
    first = run_partitions(meltano, tmp_path, groups_1, list(first_groups), "first", dagster_storage)
    a, b = first["runs"]["clover-a"], first["runs"]["clover-b"]
    assert first["pools"] == {f"{CLOVER_EXTRACTOR}-app": 2}
    assert overlap(a, b), f"the two partitions did not run at the same time: {a} {b}"
    assert (a["state_id"], b["state_id"]) == (STATE_ID.format("clover-a"), STATE_ID.format("clover-b"))
    counts = {g: assert_ground_truth(warehouses / f"{g}.duckdb", sandbox, m) for g, m in first_groups.items()}
    stored = {row[0] for row in postgres.query("select state_id from state")}
    assert {a["state_id"], b["state_id"]} <= stored, f"state ids in PostgreSQL: {stored}"
    by_account = sandbox.stats()["by_account"]["clover"]
    assert all(by_account[m]["exports_created"] for m in ("MERCHANT1", "MERCHANT2", "MERCHANT3"))
    assert not sandbox.stats()["by_account"]["clover"].get("SANDBOXMERCHANT1", {}).get("requests")

    # MERCHANT2 moves to a new group, clover-c: its bookmarks move with it
    moved = subprocess.run(
        [sys.executable, "-m", "orchestration.regroup", "--extractor", CLOVER_EXTRACTOR,
         "--from", "clover-b", "--to", "clover-c", "--account", "MERCHANT2", "--meltano", str(DAGSTER_MELTANO)],
        cwd=REPO, env=meltano.env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert "moved account MERCHANT2's bookmarks of 2 streams" in moved.stdout
    # (read with the orchestration venv's Meltano: the one with PostgreSQL's driver)
    states = Meltano(REPO, str(DAGSTER_MELTANO), env=meltano.env())
    assert not states.get_state(STATE_ID.format("clover-b")).get("bookmarks")
    assert set(states.get_state(STATE_ID.format("clover-c"))["bookmarks"]) == {d.name for d in CLOVER_STREAMS}

    # rerun one at a time (pool limit 1): nothing is added; clover-c starts at the moved bookmarks
    created = {m: by_account[m]["exports_created"] for ms in first_groups.values() for m in ms}
    second_groups = {"clover-a": ["MERCHANT1", "MERCHANT3"], "clover-c": ["MERCHANT2"]}
    groups_2 = write_groups(tmp_path / "groups-2.json", sandbox, second_groups, concurrent_runs=1)
    second = run_partitions(meltano, tmp_path, groups_2, list(second_groups), "second", dagster_storage)
    assert second["pools"] == {f"{CLOVER_EXTRACTOR}-app": 1}
    # both processes started together and a run takes seconds (Meltano's start alone):
    # only the pool can have kept their materializations apart
    assert not overlap(second["runs"]["clover-a"], second["runs"]["clover-c"]), (
        "the pool let two runs overlap"
    )
    for g, m in first_groups.items():
        assert assert_ground_truth(warehouses / f"{g}.duckdb", sandbox, m) == counts[g]
    new_file = warehouses / "clover-c.duckdb"
    assert not new_file.exists() or not any(warehouse_keys(new_file).values()), "clover-c read rows again"
    after = sandbox.stats()["by_account"]["clover"]
    assert {m: after[m]["exports_created"] for m in created} == created, "a rerun created exports"
    print(
        f"rows per group: {counts}; 429s: {sandbox.stats()['429s_sent']}; run seconds: first "
        f"{a['seconds']}/{b['seconds']}, second {second['runs']['clover-a']['seconds']}/"
        f"{second['runs']['clover-c']['seconds']}"
    )


def test_a_partition_with_a_wrong_token_fails_in_one_line_naming_its_group_and_the_setting_not_the_token(
    tmp_path, postgres, dagster_storage, sandbox
):
    meltano = meltano_on(tmp_path, postgres)
    path = write_groups(tmp_path / "groups.json", sandbox, {"clover-bad": ["MERCHANT1"]}, concurrent_runs=1)
    groups = json.loads(path.read_text())
    groups["groups"]["clover-bad"]["accounts"][0]["sandbox_token"] = "token-MERCHANT2"  # another merchant's
    path.write_text(json.dumps(groups))
    report = run_partitions(
        meltano, tmp_path, path, ["clover-bad"], "bad", dagster_storage, must_succeed=False
    )
    run = report["runs"]["clover-bad"]
    assert not run["success"]
    (failure,) = run["failure"]
    ours = failure.split(" <- ")[-1].removeprefix("dagster._core.definitions.events.Failure: ")
    assert ours.startswith("group clover-bad: meltano run exited with code 1 after "), ours
    assert "the tap said: " in ours and "access_token'" in ours and "\n" not in ours, ours
    assert "token-MERCHANT2" not in failure
    assert not Meltano(REPO, str(DAGSTER_MELTANO), env=meltano.env()).get_state(STATE_ID.format("clover-bad"))
