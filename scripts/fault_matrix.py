"""The fault matrix: every way the sandbox can misbehave, and what the tap made of it.

``make faults`` runs, against in-process sandboxes, for both providers where they apply:

* the sandbox's fault modes (429 burst, 500s, expired URL, truncated download, an export
  that fails once, never-finishing export, Clover 503 on create, a create whose answer is
  lost, exports that fail above N days). A run that ends with an error is rerun from the
  last STATE it emitted, with the fault off, as a scheduler would;
* ``--kills`` seeded random SIGKILLs (during start-up, waits, downloads, parsing,
  between windows), each followed by a resume from the last STATE a target saw; and
  half as many again with ``batch_config`` (BATCH files, read when announced);
* ``loader kills``: ``tap | target-duckdb-exports`` (this repository's DuckDB loader)
  SIGKILLed again and again, half the kills aimed into a load's transaction, each run
  resumed from the last STATE the loader confirmed; the DuckDB file must end holding
  exactly what one uninterrupted pipeline loads (``scripts/fault_loader.py``); once more
  with a lookback, so that each resumed run sends keys the table already holds (the
  loader's rollback and replay onto its stage, see loader/.../warehouse.py);
* durable exports: a run killed while all its exports are pending, resumed from its
  last STATE after the exports went on without it, timed against a fresh run;
* every bad input file kind (``sandbox/bad_files.py``), with ``on_invalid_record`` fail
  and, for bad rows, log; failing runs are rerun from their last STATE;
* wrong settings.

For each scenario the union of all its runs is compared with the sandbox's ground truth:
records lost (must be 0), duplicates and the windows they are in (allowed only in a
window a run was killed or failed in), and whether each error was ONE clear line with
exit 2. It also counts exports adopted from saved state and exports created twice for
one window (goal 0 wherever a create's answer or a STATE could tell the tap it existed).
Prints a table and a totals block; exits 1 if anything was lost or unclear.
"""

from __future__ import annotations

import argparse
import json
import re
import socketserver
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from commerce_sandbox import SandboxConfig, SandboxServer, bad_files  # noqa: E402
from tests.tap_harness import utc  # noqa: E402
from tests.test_interruption import (  # noqa: E402
    DEFINITIONS,
    Attempt,
    Chain,
    check_chain,
    kill_and_resume,
    run_attempt,
    seeded_kill_points,
    write_catalog,
)

START = "2025-01-01T00:00:00Z"
STREAMS = {"nextcommerce": ["orders", "customers"], "clover": ["orders", "payments"]}
FAULT_COUNTERS = (
    "429s_sent",
    "500s_sent",
    "503s_sent",
    "expired_url_answers",
    "truncated_downloads_sent",
    "exports_failed",
    "create_answers_lost",
    "bad_files_served",
)
ERROR_MARK = "tap-commerce-exports: error:"


def _quiet_socketserver() -> None:
    """A killed tap resets its connections: that is the point, not a sandbox error."""
    original = socketserver.BaseServer.handle_error

    def handle_error(self, request, client_address):  # noqa: ANN001
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        original(self, request, client_address)

    socketserver.BaseServer.handle_error = handle_error  # type: ignore[method-assign]


@dataclass
class Row:
    group: str
    name: str
    provider: str
    runs: int = 0
    kills: int = 0
    faults: int = 0
    expected: int = 0
    emitted: int = 0
    lost: int = 0
    rejected: int = 0
    duplicates: dict[tuple[str, int], int] = field(default_factory=dict)
    unexplained: int = 0
    errors: int = 0  # runs that ended with an error
    clear_errors: int = 0  # ... with exactly one error line, exit 2, no traceback
    expect_error: bool = False
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    phases: list[str] = field(default_factory=list)
    adopted: int = 0  # exports followed from a saved STATE instead of created again
    created_twice: int = 0  # windows with a second export though the tap could know the first
    resumed_s: float | None = None  # wall time of a run resumed from a kill during the wait
    fresh_s: float | None = None  # ... and of a fresh run over the same windows

    @property
    def ok(self) -> bool:
        return not self.problems


def sandbox_for(**overrides: Any) -> SandboxServer:
    cfg = dict(port=0, processing_delay=0.05, nc_rate_limit=1000, clover_rate_limit=1000, retry_after=1)
    cfg.update(overrides)
    return SandboxServer(SandboxConfig(**cfg)).start()


def config_for(sb: SandboxServer, provider: str, end: str, window_days: float, **extra: Any) -> dict:
    base = {
        "access_token": "sandbox-token",
        "start_date": START,
        "end_date": end,
        "window_days": window_days,
        "poll_interval": 0.02,
        "poll_max_interval": 0.1,
        "max_requests_per_second": 500,
        "export_timeout": 20,
        "lookback": 0,  # duplicates are checked against the cut windows: no re-read by design
    }
    if provider == "nextcommerce":
        base.update(provider="nextcommerce", api_url=sb.api_url, store="demo-store", max_concurrent_exports=2)
    else:
        base.update(
            provider="clover", api_url=sb.clover_url, merchant_id="SANDBOXMERCHANT1", region="sandbox"
        )
    base.update(extra)
    return base


ADOPTED_MARK = ": following export "


def adopted_in(chain: Chain) -> int:
    return sum(a.stderr.count(ADOPTED_MARK) for a in chain.attempts)


def exports_by_window(sb: SandboxServer, provider: str) -> dict[tuple, list[str]]:
    """Every export the sandbox made, grouped by (type, window)."""
    jobs = sb.state.nc_exports if provider == "nextcommerce" else sb.state.clover_exports
    grouped: dict[tuple, list[str]] = {}
    for job in list(jobs.values()):
        if provider == "nextcommerce":
            key = (job.export_type, job.params["_from_us"], job.params["_to_us"])
        else:
            key = (job.export_type, job.params["startTime"], job.params["endTime"])
        grouped.setdefault(key, []).append(str(job.id))
    return grouped


def saved_ids(state: dict | None) -> set[str]:
    ids: set[str] = set()
    for stream in (state or {}).get("bookmarks", {}).values():
        for partition in stream.get("partitions", []):
            ids.update(str(e.get("id")) for e in partition.get("exports", []))
    return ids


CREATED_RE = re.compile(r"\| (\S+) (\S+)\.\.(\S+): created export ")


def created_twice(
    sb: SandboxServer, provider: str, chains: list[Chain], *, lost_answers: bool = False
) -> int:
    """Windows given a second export although the tap could know of the first: a run
    created an export for a window whose export was in the STATE it started from (or,
    ``lost_answers``, any window with two exports: the list finds a lost create)."""
    if lost_answers:
        return sum(1 for ids in exports_by_window(sb, provider).values() if len(ids) > 1)
    twice = 0
    for chain in chains:
        for attempt in chain.attempts:
            saved = set()
            for stream, entry in (attempt.state_in or {}).get("bookmarks", {}).items():
                for partition in entry.get("partitions", []):
                    for e in partition.get("exports", []):
                        saved.add((stream, utc(e["window_start"]), utc(e["window_end"])))
            replaced = attempt.stderr.count("; creating a new one")
            again = {
                (m.group(1), utc(m.group(2)), utc(m.group(3))) for m in CREATED_RE.finditer(attempt.stderr)
            } & saved
            twice += max(0, len(again) - replaced)
    return twice


def fault_count(before: dict, after: dict) -> int:
    return sum(after.get(k, 0) - before.get(k, 0) for k in FAULT_COUNTERS)


def clear_error(attempt: Attempt) -> bool:
    lines = [ln for ln in attempt.stderr.splitlines() if ERROR_MARK in ln]
    return attempt.returncode == 2 and len(lines) == 1 and "Traceback" not in attempt.stderr


def account(
    row: Row,
    chain: Chain,
    provider: str,
    streams: list[str],
    sb: SandboxServer,
    config: dict,
    rejected_keys: set = frozenset(),
) -> None:
    start, end = utc(config["start_date"]), utc(config["end_date"])
    truth = {s: sb.truth_keys(provider, DEFINITIONS[provider][s].export_type, start, end) for s in streams}
    report = check_chain(chain, provider, streams, truth, start, end, timedelta(days=config["window_days"]))
    row.expected += report.expected
    row.emitted += report.emitted
    lost = [k for k in report.lost if k[1] not in rejected_keys]
    row.rejected += len(report.lost) - len(lost)
    row.lost += len(lost)
    for key, n in report.duplicates.items():
        row.duplicates[key] = row.duplicates.get(key, 0) + n
    row.unexplained += len(report.unexplained)
    if lost:
        row.problems.append(f"{len(lost)} records lost")
    if report.extra:
        row.problems.append(f"{len(report.extra)} records not in the truth")
    if report.unexplained:
        row.problems.append(f"{len(report.unexplained)} duplicates outside cut windows")
    if not chain.completed:
        row.problems.append("no run completed")


# ----------------------------------------------------------------------------- scenarios


def fault_scenario(
    name: str,
    provider: str,
    fault: dict,
    *,
    expect_error: bool = False,
    extra: dict | None = None,
    during: Callable[[SandboxServer], None] | None = None,
    root: Path,
) -> Row:
    row = Row("fault mode", name, provider, expect_error=expect_error)
    started = time.monotonic()
    sb = sandbox_for()
    try:
        streams = STREAMS[provider]
        settings = dict(extra or {})
        window_days = settings.pop("window_days", 1 if provider == "nextcommerce" else 2)
        config = config_for(sb, provider, "2025-01-05T00:00:00Z", window_days, **settings)
        workdir = Path(tempfile.mkdtemp(prefix=f"{provider}-{name}-", dir=root))
        catalog = write_catalog(config, streams, workdir / "catalog.json")
        before = sb.stats()
        sb.control(**fault)
        if during is not None:
            during(sb)
        chain = Chain([run_attempt(config, catalog, None, None, workdir / "run-1")])
        row.faults = fault_count(before, sb.stats()) + (1 if during is not None else 0)
        first = chain.attempts[0]
        if first.returncode != 0:
            row.errors += 1
            row.clear_errors += clear_error(first)
            if not expect_error:
                row.problems.append(f"unexpected exit {first.returncode}")
            sb.control(
                **{
                    k: (False if isinstance(v, bool) else 0)
                    for k, v in fault.items()
                    if k.startswith("fault_")
                },
                processing_delay=0.05,
                complete_exports=True,
            )
            chain.attempts.append(run_attempt(config, catalog, first.last_state, None, workdir / "run-2"))
        elif expect_error:
            row.problems.append("no error where one was expected")
        row.runs = len(chain.attempts)
        account(row, chain, provider, streams, sb, config)
        row.adopted = adopted_in(chain)
        if "fault_create_answer_lost" in fault and provider == "nextcommerce":
            row.created_twice = created_twice(sb, provider, [chain], lost_answers=True)
            if row.created_twice:
                row.problems.append(f"{row.created_twice} windows exported twice")
    finally:
        sb.stop()
    row.seconds = time.monotonic() - started
    return row


def kills_config(
    sb: SandboxServer, provider: str, root: Path, name: str, batch_size: int | None
) -> tuple[Path, dict]:
    """A work folder and the tap's config of a kill scenario: 3-day windows over 24 days
    (Next Commerce) or 12 (Clover); BATCH jsonl.gz files of ``batch_size`` records if set."""
    end = "2025-01-25T00:00:00Z" if provider == "nextcommerce" else "2025-01-13T00:00:00Z"
    workdir = Path(tempfile.mkdtemp(prefix=f"{provider}-{name}-", dir=root))
    extra = {}
    if batch_size is not None:
        extra["batch_config"] = {
            "encoding": {"format": "jsonl", "compression": "gzip"},
            "storage": {"root": (workdir / "batches").as_uri()},
            "batch_size": batch_size,
        }
    return workdir, config_for(sb, provider, end, 3, **extra)


def kill_scenario(provider: str, kills: int, seed: int, root: Path, *, batch: bool = False) -> Row:
    """``batch``: the same with ``batch_config`` (small files, several per window), the
    harness loading each BATCH message's files when it arrives, as a target does."""
    row = Row("random kills", f"{kills} seeded SIGKILLs" + (" (BATCH)" if batch else ""), provider)
    started = time.monotonic()
    sb = sandbox_for(processing_delay=0.2, rows_per_day={"order_list": 60, "customer_list": 40})
    try:
        streams = STREAMS[provider]
        workdir, config = kills_config(sb, provider, root, "kills", 40 if batch else None)
        if provider == "clover":
            sb.control(clover_objects_per_file=60)
        catalog = write_catalog(config, streams, workdir / "catalog.json")
        points = seeded_kill_points(
            seed, kills, max_records=2000 if provider == "nextcommerce" else 600, seconds=(1.5, 5.0)
        )
        chains = kill_and_resume(config, catalog, points, workdir)
        for chain in chains:
            row.runs += len(chain.attempts)
            for attempt in chain.attempts:
                if attempt.killed:
                    row.kills += 1
                    row.phases.append(attempt.phase)
            account(row, chain, provider, streams, sb, config)
            row.adopted += adopted_in(chain)
        row.faults = row.kills
        row.created_twice = created_twice(sb, provider, chains)
        if row.created_twice:
            row.problems.append(f"{row.created_twice} saved exports created again")
    finally:
        sb.stop()
    row.seconds = time.monotonic() - started
    return row


def loader_scenario(
    provider: str, kills: int, seed: int, root: Path, *, batch: bool = False, lookback: int = 0
) -> Row:
    """``tap | target-duckdb-exports`` killed while loading, resumed from the loader's
    last confirmed STATE (scripts/fault_loader.py); the warehouse must end exact.
    ``lookback`` (days): each resumed run sends again keys the table already holds."""
    import fault_loader

    how = ", ".join(["BATCH"] * batch + [f"{lookback}-day lookback"] * bool(lookback))
    row = Row("loader kills", f"{kills} SIGKILLs, DuckDB" + (f" ({how})" if how else ""), provider)
    started = time.monotonic()
    sb = sandbox_for(processing_delay=0.2, rows_per_day={"order_list": 300, "customer_list": 200})
    try:
        streams = STREAMS[provider]
        workdir, config = kills_config(sb, provider, root, "loader-kills", 500 if batch else None)
        config["lookback"] = lookback
        catalog = write_catalog(config, streams, workdir / "catalog.json")
        start, stop = utc(config["start_date"]), utc(config["end_date"])
        keys = {s: ["_account", *DEFINITIONS[provider][s].primary_keys] for s in streams}
        truth = {
            s: len(sb.truth_keys(provider, DEFINITIONS[provider][s].export_type, start, stop))
            for s in streams
        }
        fault_loader.loader_kill_scenario(row, config, catalog, keys, truth, kills, seed, workdir)
    finally:
        sb.stop()
    row.seconds = time.monotonic() - started
    return row


def durable_scenario(provider: str, root: Path, delay: float = 3.0) -> Row:
    """Kill a run once STATE holds every window's export (all pending, no record yet);
    the exports go on while the tap is down; rerun from that STATE; then a fresh run."""
    import os
    import signal
    import subprocess

    from tests.test_interruption import tap_command

    row = Row("durable", "killed while pending", provider)
    started = time.monotonic()
    sb = sandbox_for(processing_delay=delay, clover_max_running=4)
    try:
        streams = STREAMS[provider]
        config = config_for(sb, provider, "2025-01-07T00:00:00Z", 3, max_concurrent_exports=4)
        windows = 2 * len(streams)
        workdir = Path(tempfile.mkdtemp(prefix=f"{provider}-durable-", dir=root))
        catalog = write_catalog(config, streams, workdir / "catalog.json")
        (workdir / "config.json").write_text(json.dumps(config))
        proc = subprocess.Popen(
            tap_command(workdir / "config.json", catalog, None),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=workdir,
            env=dict(os.environ),
        )
        assert proc.stdout is not None
        killed = Attempt(state_in=None, kill=None)
        for raw in proc.stdout:
            message = json.loads(raw)
            if message["type"] == "RECORD":
                killed.records[message["stream"]].append(message["record"])
            elif message["type"] == "STATE":
                killed.states.append(message["value"])
                if len(saved_ids(message["value"])) >= windows:
                    proc.send_signal(signal.SIGKILL)
                    break
        proc.wait(timeout=30)
        killed.returncode = proc.returncode
        killed.killed = proc.returncode == -signal.SIGKILL
        row.kills = row.faults = int(killed.killed)
        sb.control(complete_exports=True)  # they ran on while the tap was down
        t0 = time.monotonic()
        resumed = run_attempt(config, catalog, killed.last_state, None, workdir / "resumed")
        row.resumed_s = time.monotonic() - t0
        chain = Chain([killed, resumed])
        row.runs = 2
        account(row, chain, provider, streams, sb, config)
        row.adopted = adopted_in(chain)
        row.created_twice = created_twice(sb, provider, [chain])
        if row.created_twice:
            row.problems.append(f"{row.created_twice} saved exports created again")
        if row.adopted != windows:
            row.problems.append(f"{row.adopted} of {windows} saved exports adopted")
        # a sandbox of its own: Next Commerce would find the exports above in its list
        other = sandbox_for(processing_delay=delay, clover_max_running=4)
        try:
            t0 = time.monotonic()
            fresh = run_attempt(
                {**config, "api_url": other.api_url if provider == "nextcommerce" else other.clover_url},
                catalog,
                None,
                None,
                workdir / "fresh",
            )
            row.fresh_s = time.monotonic() - t0
        finally:
            other.stop()
        if fresh.returncode != 0:
            row.problems.append(f"fresh run exit {fresh.returncode}")
        if row.resumed_s >= row.fresh_s:
            row.problems.append("the resumed run was not faster than a fresh one")
    finally:
        sb.stop()
    row.seconds = time.monotonic() - started
    return row


def bad_file_scenario(provider: str, kind: str, mode: str, root: Path) -> Row:
    harmless = all(k in bad_files.HARMLESS or k == "header_only" for k in kind.split(","))
    row = Row(
        "bad input",
        f"{kind} ({mode})",
        provider,
        expect_error=not harmless
        and mode == "fail"
        or kind in ("invalid_utf8", "nul", "empty", "not_json", "no_elements"),
    )
    started = time.monotonic()
    sb = sandbox_for()
    try:
        streams = ["orders"]
        end = "2025-01-05T00:00:00Z" if "," in kind else "2025-01-03T00:00:00Z"
        workdir = Path(tempfile.mkdtemp(prefix=f"{provider}-{kind}-{mode}-", dir=root))
        config = config_for(
            sb,
            provider,
            end,
            1,
            max_concurrent_exports=1,
            on_invalid_record=mode,
            rejects_dir=str(workdir / "rejects"),
        )
        catalog = write_catalog(config, streams, workdir / "catalog.json")
        sb.control(fault_bad_file=kind)
        first = run_attempt(config, catalog, None, None, workdir / "run-1")
        chain = Chain([first])
        damages = bad_files.served(sb.state)
        row.faults = len(damages)
        if first.returncode != 0:
            row.errors += 1
            row.clear_errors += clear_error(first)
            if not row.expect_error:
                row.problems.append(f"unexpected exit {first.returncode}")
            sb.control(fault_bad_file=None)
            chain.attempts.append(run_attempt(config, catalog, first.last_state, None, workdir / "run-2"))
        elif row.expect_error:
            row.problems.append("no error where one was expected")
        row.runs = len(chain.attempts)
        rejected = set()
        if mode == "log":
            rejects = [
                json.loads(ln)
                for f in (workdir / "rejects").glob("*.jsonl")
                for ln in f.read_text().splitlines()
            ]
            if len(rejects) != len([d for d in damages if d.key is not None]):
                row.problems.append(f"{len(rejects)} rejects for {len(damages)} damaged rows")
            rejected = {d.key for d in damages if d.key is not None}
        if "header_only" in kind.split(","):
            # the header-only file stood for a window with rows: the tap cannot know them
            last = damages[-1]
            assert last.kind == "header_only"
            day_end = utc(end)
            gone = set(
                sb.truth_keys(
                    provider,
                    DEFINITIONS[provider]["orders"].export_type,
                    day_end - timedelta(days=1),
                    day_end,
                )
            )
            rejected |= gone
        account(row, chain, provider, streams, sb, config, rejected)
        if "header_only" in kind.split(","):
            row.rejected = 0  # not rejected: a file with no rows is a window with no rows
    finally:
        sb.stop()
    row.seconds = time.monotonic() - started
    return row


SETTINGS = {
    "unknown provider": {"provider": "shopify"},
    "date that does not parse": {"start_date": "last tuesday"},
    "end before start": {"start_date": "2025-02-01", "end_date": "2025-01-01"},
    "Clover window of 45 days": {"provider": "clover", "window_days": 45, "merchant_id": "M"},
    "plain http api_url off loopback": {"api_url": "http://shop.example.com/api/admin/"},
}


def settings_scenario(name: str, overrides: dict, root: Path) -> Row:
    row = Row("bad setting", name, overrides.get("provider", "nextcommerce"), expect_error=True)
    started = time.monotonic()
    config = {
        "provider": "nextcommerce",
        "access_token": "t",
        "store": "demo-store",
        "start_date": START,
        "end_date": "2025-01-03",
        **overrides,
    }
    workdir = Path(tempfile.mkdtemp(prefix="settings-", dir=root))
    (workdir / "config.json").write_text(json.dumps(config))
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-m", "tap_commerce_exports", "--config", str(workdir / "config.json")],
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=60,
    )
    attempt = Attempt(state_in=None, kill=None, returncode=proc.returncode, stderr=proc.stderr)
    row.runs = 1
    row.faults = 1
    row.errors = int(proc.returncode != 0)
    row.clear_errors = int(clear_error(attempt) and not proc.stdout)
    if not row.clear_errors:
        row.problems.append(f"exit {proc.returncode}, not one clear line")
    row.seconds = time.monotonic() - started
    return row


# ----------------------------------------------------------------------------- report


def windows_text(row: Row) -> str:
    if not row.duplicates:
        return "0"
    total = sum(row.duplicates.values())
    where = ", ".join(f"{s} w{w}" for (s, w) in sorted(row.duplicates))
    return f"{total} ({where})"


def print_table(rows: list[Row]) -> None:
    header = (
        "group",
        "scenario",
        "provider",
        "runs",
        "faults",
        "expected",
        "lost",
        "dups (windows)",
        "errors clear",
        "ok",
    )
    table = [header]
    for r in rows:
        table.append(
            (
                r.group,
                r.name,
                r.provider,
                str(r.runs),
                str(r.faults),
                str(r.expected),
                str(r.lost) + (f" +{r.rejected} rejected" if r.rejected else ""),
                windows_text(r),
                f"{r.clear_errors}/{r.errors}",
                "yes" if r.ok else "NO: " + "; ".join(r.problems),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, line in enumerate(table):
        print("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(line)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=12, help="random SIGKILLs in all (default 12)")
    parser.add_argument("--seed", type=int, default=20251123)
    parser.add_argument("--workers", type=int, default=3, help="scenarios run side by side")
    args = parser.parse_args(argv)
    _quiet_socketserver()
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="fault-matrix-"))
    nc_kills = max(1, round(args.kills * 2 / 3)) if args.kills else 0
    jobs: list[Callable[[], Row]] = []

    def stuck_first(sb: SandboxServer) -> None:
        """The first export takes an hour; the ones after it are quick again."""
        import threading

        def watch() -> None:
            base = sb.stats()["exports_created"]["nextcommerce"]
            while sb.stats()["exports_created"]["nextcommerce"] == base:
                time.sleep(0.005)
            sb.control(processing_delay=0.05)

        sb.control(processing_delay=3600)
        threading.Thread(target=watch, daemon=True).start()

    if nc_kills:
        jobs.append(lambda: kill_scenario("nextcommerce", nc_kills, args.seed, root))
    if args.kills - nc_kills > 0:
        jobs.append(lambda: kill_scenario("clover", args.kills - nc_kills, args.seed + 1, root))
    batch_kills = max(1, args.kills // 2) if args.kills else 0
    kill_points = args.kills + (batch_kills + max(1, batch_kills // 2) if batch_kills else 0)
    if batch_kills:
        jobs.append(lambda: kill_scenario("nextcommerce", batch_kills, args.seed + 2, root, batch=True))
        jobs.append(
            lambda: kill_scenario("clover", max(1, batch_kills // 2), args.seed + 3, root, batch=True)
        )
    loader_kills = max(2, args.kills // 2) if args.kills else 0
    if loader_kills:
        kill_points += 3 * loader_kills
        jobs.append(lambda: loader_scenario("nextcommerce", loader_kills, args.seed + 4, root))
        jobs.append(lambda: loader_scenario("nextcommerce", loader_kills, args.seed + 5, root, batch=True))
        jobs.append(
            lambda: loader_scenario("nextcommerce", loader_kills, args.seed + 6, root, batch=True, lookback=4)
        )
    for provider in ("nextcommerce", "clover"):
        jobs.append(lambda p=provider: durable_scenario(p, root))
    for provider in ("nextcommerce", "clover"):
        modes = [
            ("429 burst", {"fault_429_burst": 3}, False, None, None),
            ("500s", {"fault_500": 2}, False, None, None),
            ("expired URL", {"fault_expired_url": True}, False, None, None),
            ("truncated download", {"fault_truncated_download": True}, False, None, None),
            ("export failing once (retried)", {"fault_export_failed": 1}, False, None, None),
            ("create answer lost (502)", {"fault_create_answer_lost": 2}, False, None, None),
            (
                "exports failing above 1 day (split)",
                {"fault_fail_above_days": 1},
                False,
                {"window_days": 4, "export_attempts": 1, "min_window_days": 1},
                None,
            ),
            (
                "export failing every time",
                {"fault_export_failed": 99},
                True,
                {"export_attempts": 2, "min_window_days": 30},
                None,
            ),
        ]
        if provider == "clover":
            modes.append(("503 on create", {"fault_clover_503": 2}, False, None, None))
        else:
            modes.append(
                (
                    "never-finishing export",
                    {},
                    True,
                    {"export_timeout": 1.5, "max_concurrent_exports": 1},
                    stuck_first,
                )
            )
        for name, fault, expect_error, extra, during in modes:
            jobs.append(
                lambda p=provider, n=name, f=fault, e=expect_error, x=extra, d=during: fault_scenario(
                    n, p, f, expect_error=e, extra=x, during=d, root=root
                )
            )
    for provider, kinds in (("nextcommerce", bad_files.CSV_KINDS), ("clover", bad_files.JSON_KINDS)):
        harmless = [k for k in kinds if k in bad_files.HARMLESS or k == "header_only"]
        jobs.append(lambda p=provider, h=harmless: bad_file_scenario(p, ",".join(h), "fail", root))
        for kind in kinds:
            if kind in harmless:
                continue
            jobs.append(lambda p=provider, k=kind: bad_file_scenario(p, k, "fail", root))
            if kind in ("ragged", "bad_value"):
                jobs.append(lambda p=provider, k=kind: bad_file_scenario(p, k, "log", root))
    for name, overrides in SETTINGS.items():
        jobs.append(lambda n=name, o=overrides: settings_scenario(n, o, root))

    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        rows = list(pool.map(lambda job: job(), jobs))

    print_table(rows)
    elapsed = time.monotonic() - started
    bad_kinds = sum(len(r.name.split(" ")[0].split(",")) for r in rows if r.group == "bad input")
    dups = {}
    for r in rows:
        for (s, w), n in r.duplicates.items():
            dups[f"{r.provider}/{s} w{w}"] = dups.get(f"{r.provider}/{s} w{w}", 0) + n
    phases: dict[str, int] = {}
    for r in rows:
        for p in r.phases:
            phases[p] = phases.get(p, 0) + 1
    expected_errors = [r for r in rows if r.expect_error]
    totals = {
        "scenarios": len(rows),
        "runs": sum(r.runs for r in rows),
        "faults injected": sum(r.faults for r in rows),
        "random kills": f"{sum(r.kills for r in rows)} of {kill_points} kill points fired "
        f"({', '.join(f'{k}: {v}' for k, v in sorted(phases.items()))}); a kill point "
        "later than its whole run cannot fire",
        "records expected": sum(r.expected for r in rows),
        "records lost": sum(r.lost for r in rows),
        "records rejected (in rejects files)": sum(r.rejected for r in rows),
        "duplicates": f"{sum(dups.values())}"
        + (f" (only in cut windows: {', '.join(sorted(dups))})" if dups else ""),
        "duplicates outside cut windows": sum(r.unexplained for r in rows),
        "bad inputs tried": f"{bad_kinds} file kinds in {sum(1 for r in rows if r.group == 'bad input')} "
        f"scenarios + {len(SETTINGS)} settings",
        "clear errors given (one line, exit 2)": f"{sum(r.clear_errors for r in rows)} of "
        f"{sum(r.errors for r in rows)} errors",
        "scenarios that had to fail and did, clearly": f"{sum(1 for r in expected_errors if r.clear_errors)} of "
        f"{len(expected_errors)}",
        "kills tried (random + durable)": sum(r.kills for r in rows),
        "exports adopted from saved state": sum(r.adopted for r in rows),
        "exports created twice (goal 0)": sum(r.created_twice for r in rows),
        "resumed vs fresh run (killed while pending)": "; ".join(
            f"{r.provider} {r.resumed_s:.1f}s vs {r.fresh_s:.1f}s"
            for r in rows
            if r.resumed_s is not None and r.fresh_s is not None
        ),
        "problems": sum(len(r.problems) for r in rows),
        "time": f"{elapsed:.0f}s",
    }
    print()
    print("TOTALS")
    width = max(map(len, totals))
    for key, value in totals.items():
        print(f"  {key.ljust(width)}  {value}")
    import shutil

    shutil.rmtree(root, ignore_errors=True)
    return 1 if any(r.problems for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
