"""Interruption and resume: nothing lost, duplicates only inside the window that was cut off.

The tap is driven the way a Singer target drives it: its stdout is read line by line,
the last STATE seen is kept, and the next run starts from it. The tap is SIGKILLed at
seeded random moments (a record count, or a time since start: during start-up, while
exports are pending, while files download or parse, between windows), and rerun from
that STATE until a run completes. Then:

* the union of every run's records equals the sandbox's ground truth (no gap);
* a key appears twice only if its window (from the record's window field and the
  windows the tap plans: ``window_days`` from ``start_date`` or the bookmark) is a
  window some run was killed in (at-least-once per window, never more).

Also here: a target that dies ends the tap at once with one clear line; an export that
never finishes, or whose file URLs keep expiring, ends its stream with a clear error
and its bookmark where it was, while another stream's progress is kept.

The machinery (:func:`kill_and_resume`, :func:`check_chain`) is reused by
``scripts/fault_matrix.py``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tap_commerce_exports.providers.clover_streams import CLOVER_STREAMS
from tap_commerce_exports.providers.nextcommerce_streams import NEXTCOMMERCE_STREAMS
from tests.sandbox_fixtures import account_config
from tests.tap_harness import utc

pytestmark = pytest.mark.e2e

SEED = 20251123
START = "2025-01-01T00:00:00Z"
WINDOW_DAYS = 3
ROWS_PER_DAY = {"order_list": 60, "customer_list": 40}
DEFINITIONS = {
    "nextcommerce": {d.name: d for d in NEXTCOMMERCE_STREAMS},
    "clover": {d.name: d for d in CLOVER_STREAMS},
}


# =========================================================================== machinery


@dataclass(frozen=True)
class KillPoint:
    """When to SIGKILL a run: after ``value`` RECORD lines, or ``value`` seconds after start."""

    kind: str  # "records" | "seconds"
    value: float

    def __str__(self) -> str:
        return f"after {int(self.value)} records" if self.kind == "records" else f"at {self.value:.2f}s"


def seeded_kill_points(
    seed: int, n: int, *, max_records: int, seconds: tuple[float, float]
) -> list[KillPoint]:
    """``n`` kill points, alternating record counts and moments, from one seed."""
    rng = random.Random(seed)
    points = []
    for i in range(n):
        if i % 2 == 0:
            points.append(KillPoint("records", rng.randint(1, max_records)))
        else:
            points.append(KillPoint("seconds", round(rng.uniform(*seconds), 2)))
    return points


@dataclass
class Attempt:
    """One run of the tap as a target saw it."""

    state_in: dict | None
    kill: KillPoint | None
    killed: bool = False
    returncode: int | None = None
    stderr: str = ""
    records: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    states: list[dict] = field(default_factory=list)
    partial_line: bool = False
    phase: str = ""

    @property
    def last_state(self) -> dict | None:
        return self.states[-1] if self.states else self.state_in


@dataclass
class Chain:
    """Runs from an empty state to one that completed (each resuming from the last STATE)."""

    attempts: list[Attempt] = field(default_factory=list)

    @property
    def completed(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].returncode == 0

    @property
    def final_state(self) -> dict | None:
        return self.attempts[-1].last_state if self.attempts else None


def write_catalog(config: dict, streams: list[str], path: Path) -> Path:
    """A catalog selecting ``streams`` (discovered once per provider and cached)."""
    catalog = _discovered(config["provider"])
    catalog = json.loads(json.dumps(catalog))
    for entry in catalog["streams"]:
        for md in entry["metadata"]:
            if md["breadcrumb"] == []:
                md["metadata"]["selected"] = entry["tap_stream_id"] in streams
    path.write_text(json.dumps(catalog))
    return path


_CATALOGS: dict[str, dict] = {}


def _discovered(provider: str) -> dict:
    if provider not in _CATALOGS:
        base = {
            "provider": provider,
            "start_date": START,
            "access_token": "x",
            "api_url": "http://127.0.0.1:9/",
            "store": "s",
            "merchant_id": "m",
        }
        from tap_commerce_exports.tap import TapCommerceExports

        _CATALOGS[provider] = TapCommerceExports(config=base, validate_config=False).catalog_dict
    return _CATALOGS[provider]


def tap_command(config_path: Path, catalog: Path, state_path: Path | None) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "tap_commerce_exports",
        "--config",
        str(config_path),
        "--catalog",
        str(catalog),
    ]
    if state_path is not None:
        cmd += ["--state", str(state_path)]
    return cmd


def classify_phase(stderr: str) -> str:
    """Where the tap was when it died, from its last log line."""
    lines = [ln for ln in stderr.splitlines() if "tap_commerce_exports" in ln]
    if not lines:
        return "start-up"
    last = lines[-1]
    if "emitted" in last:
        return "between windows"
    if "downloaded" in last or "columns not in the schema" in last:
        return "parsing/emitting"
    if "available after" in last or " is DONE" in last or " is COMPLETE" in last or "fresh URL" in last:
        return "downloading"
    if "created export" in last or " is " in last or "busy" in last:
        return "waiting for exports"
    return "planning"


def run_attempt(
    config: dict,
    catalog: Path,
    state: dict | None,
    kill: KillPoint | None,
    workdir: Path,
    *,
    timeout: float = 120,
    env: dict | None = None,
) -> Attempt:
    """Run the tap once, reading stdout line by line as a target does; kill it at ``kill``."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "config.json"
    config_path.write_text(json.dumps(config))
    state_path = None
    if state is not None:
        state_path = workdir / "state.json"
        state_path.write_text(json.dumps(state))
    attempt = Attempt(state_in=state, kill=kill)
    err_path = workdir / "stderr.txt"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(
            tap_command(config_path, catalog, state_path),
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=workdir,
            env={**os.environ, **(env or {})},
        )
        started = time.monotonic()
        timer = None
        fired = threading.Event()

        def kill_now() -> None:
            if proc.poll() is None:
                fired.set()
                proc.send_signal(signal.SIGKILL)

        if kill is not None and kill.kind == "seconds":
            timer = threading.Timer(kill.value, kill_now)
            timer.start()
        guard = threading.Timer(timeout, kill_now)
        guard.start()
        seen_records = 0
        assert proc.stdout is not None
        try:
            for raw in proc.stdout:
                if not raw.endswith(b"\n"):  # the tap died mid-line: a target can't parse it
                    attempt.partial_line = True
                    break
                message = json.loads(raw)
                if message["type"] == "RECORD":
                    attempt.records[message["stream"]].append(message["record"])
                    seen_records += 1
                    if kill is not None and kill.kind == "records" and seen_records >= kill.value:
                        kill_now()  # keep reading: what the tap wrote before dying still arrives
                elif message["type"] == "BATCH":  # a target loads the files when announced
                    batch = read_batch_files(message)
                    attempt.records[message["stream"]].extend(batch)
                    seen_records += len(batch)
                    if kill is not None and kill.kind == "records" and seen_records >= kill.value:
                        kill_now()
                elif message["type"] == "STATE":
                    attempt.states.append(message["value"])
        finally:
            proc.wait()
            guard.cancel()
            if timer is not None:
                timer.cancel()
        if time.monotonic() - started > timeout:
            raise AssertionError(f"the tap ran longer than {timeout}s")
    attempt.returncode = proc.returncode
    attempt.killed = fired.is_set() and proc.returncode == -signal.SIGKILL
    attempt.stderr = err_path.read_text(errors="replace")
    if attempt.killed:
        attempt.phase = classify_phase(attempt.stderr)
    return attempt


def read_batch_files(message: dict) -> list[dict]:
    """The records of a BATCH message's files, read at once as a target does: a file
    that is not complete when announced fails here."""
    import gzip

    records: list[dict] = []
    for url in message["manifest"]:
        path = Path(url.removeprefix("file://"))
        opener = gzip.open if message["encoding"].get("compression") == "gzip" else open
        with opener(path, "rb") as fh:
            records.extend(json.loads(line) for line in fh)
    return records


def kill_and_resume(
    config: dict,
    catalog: Path,
    kills: list[KillPoint],
    workdir: Path,
    *,
    max_attempts: int = 40,
    on_attempt: Callable[[Attempt], None] | None = None,
) -> list[Chain]:
    """Apply every kill point in turn, each to the next run of a chain resumed from the
    last STATE seen; a chain ends with a run that completes. Returns every chain."""
    chains: list[Chain] = []
    pending = list(kills)
    n = 0
    while pending or not chains or not chains[-1].completed:
        if not chains or chains[-1].completed:
            chains.append(Chain())
        chain = chains[-1]
        kill = pending.pop(0) if pending else None
        n += 1
        if n > max_attempts:
            raise AssertionError(f"no run completed within {max_attempts} attempts")
        attempt = run_attempt(config, catalog, chain.final_state, kill, workdir / f"run-{n:02d}")
        chain.attempts.append(attempt)
        if on_attempt is not None:
            on_attempt(attempt)
        if not attempt.killed and attempt.returncode != 0:
            raise AssertionError(f"run {n} failed (exit {attempt.returncode}):\n{attempt.stderr[-3000:]}")
        if kill is not None and not attempt.killed and len(chain.attempts) > 1:
            pending.insert(0, kill)  # finished before the kill point: use it on a fresh chain
    return chains


def bookmark_of(state: dict | None, stream: str) -> datetime | None:
    if not state:
        return None
    for partition in state.get("bookmarks", {}).get(stream, {}).get("partitions", []):
        value = partition.get("replication_key_value")
        if value:
            return utc(value)
    return None


def window_index(instant: datetime, start: datetime, window: timedelta) -> int:
    return int((instant - start) // window)


def record_instant(provider: str, stream: str, record: dict) -> datetime:
    definition = DEFINITIONS[provider][stream]
    value = record[definition.window_field]
    if provider == "clover":
        return datetime.fromtimestamp(value / 1000, tz=utc(START).tzinfo)
    return utc(value)


def record_key(provider: str, stream: str, record: dict) -> Any:
    keys = DEFINITIONS[provider][stream].primary_keys
    return record[keys[0]] if len(keys) == 1 else tuple(record[k] for k in keys)


@dataclass
class ChainReport:
    expected: int = 0
    emitted: int = 0
    lost: list = field(default_factory=list)
    extra: list = field(default_factory=list)
    #: (stream, window index) -> number of duplicate copies there
    duplicates: dict[tuple[str, int], int] = field(default_factory=dict)
    #: duplicates outside any interrupted window, or more copies than interruptions allow
    unexplained: list = field(default_factory=list)
    interrupted: dict[tuple[str, int], int] = field(default_factory=dict)
    final_bookmarks: dict[str, datetime | None] = field(default_factory=dict)


def check_chain(
    chain: Chain,
    provider: str,
    streams: list[str],
    truth: dict[str, list],
    start: datetime,
    end: datetime,
    window: timedelta,
) -> ChainReport:
    """Compare the union of a chain's runs with the ground truth (see module docstring)."""
    report = ChainReport()
    interrupted: Counter = Counter()
    for attempt in chain.attempts:
        if attempt.returncode == 0:  # killed, or a stream failed: its window may be re-read
            continue
        for stream in streams:
            bookmark = bookmark_of(attempt.last_state, stream) or start
            if bookmark < end:
                interrupted[(stream, window_index(bookmark, start, window))] += 1
    report.interrupted = dict(interrupted)
    for stream in streams:
        copies: Counter = Counter()
        where: dict[Any, int] = {}
        for attempt in chain.attempts:
            for record in attempt.records.get(stream, []):
                key = record_key(provider, stream, record)
                copies[key] += 1
                where[key] = window_index(record_instant(provider, stream, record), start, window)
        expected = Counter(truth[stream])
        report.expected += len(truth[stream])
        report.emitted += sum(copies.values())
        report.lost += [(stream, k) for k in expected if k not in copies]
        report.extra += [(stream, k) for k in copies if k not in expected]
        for key, n in copies.items():
            if n <= 1:
                continue
            w = where[key]
            report.duplicates[(stream, w)] = report.duplicates.get((stream, w), 0) + n - 1
            if n - 1 > interrupted.get((stream, w), 0):
                report.unexplained.append((stream, key, w, n))
        report.final_bookmarks[stream] = bookmark_of(chain.final_state, stream)
    return report


# =========================================================================== fixtures


# Windows a few times larger than a pipe's buffer, so that a kill can cut one in two.
SANDBOX_SETTINGS = dict(
    processing_delay=0.2, nc_rate_limit=1000, clover_rate_limit=1000, retry_after=1, rows_per_day=ROWS_PER_DAY
)


def nc_config(sandbox, **overrides) -> dict:
    base = {
        **account_config(sandbox, "nextcommerce"),
        "start_date": START,
        "end_date": "2025-01-25T00:00:00Z",
        "window_days": WINDOW_DAYS,
        "poll_interval": 0.02,
        "poll_max_interval": 0.1,
        "max_concurrent_exports": 2,
        "max_requests_per_second": 500,
        "export_timeout": 30,
        "lookback": 0,  # these runs check exactly once across runs: no re-read
    }
    base.update(overrides)
    return base


def clover_config(sandbox, **overrides) -> dict:
    base = {
        **account_config(sandbox, "clover"),
        "start_date": START,
        "end_date": "2025-01-17T00:00:00Z",
        "window_days": WINDOW_DAYS,
        "poll_interval": 0.02,
        "poll_max_interval": 0.1,
        "max_requests_per_second": 500,
        "export_timeout": 30,
        "lookback": 0,  # these runs check exactly once across runs: no re-read
    }
    base.update(overrides)
    return base


def truth_for(sandbox, provider: str, streams: list[str], start: str, end: str) -> dict[str, list]:
    return {
        s: sandbox.truth_keys(provider, DEFINITIONS[provider][s].export_type, utc(start), utc(end))
        for s in streams
    }


def assert_nothing_lost_and_duplicates_only_where_interrupted(chains, provider, streams, truth, config):
    start, end = utc(config["start_date"]), utc(config["end_date"])
    window = timedelta(days=config["window_days"])
    kills = sum(1 for c in chains for a in c.attempts if a.killed)
    assert kills >= 1, "no run was interrupted: the test proves nothing"
    for chain in chains:
        assert chain.completed, "every chain ends with a run that completes"
        report = check_chain(chain, provider, streams, truth, start, end, window)
        assert not report.lost, f"records lost: {report.lost[:5]}"
        assert not report.extra, f"records not in the ground truth: {report.extra[:5]}"
        assert not report.unexplained, (
            f"duplicates outside the interrupted windows {report.interrupted}: {report.unexplained[:5]}"
        )
        for stream in streams:
            assert report.final_bookmarks[stream] == end, f"{stream}: final bookmark"


# =========================================================================== tests


def test_random_kills_and_resumes_lose_nothing_and_duplicate_only_the_cut_window(sandbox, tmp_path):
    """Next Commerce, two streams, 8 windows each: 4 seeded SIGKILLs, resumed each time."""
    streams = ["orders", "customers"]
    config = nc_config(sandbox)
    catalog = write_catalog(config, streams, tmp_path / "catalog.json")
    kills = seeded_kill_points(SEED, 4, max_records=2000, seconds=(1.5, 5.0))
    chains = kill_and_resume(config, catalog, kills, tmp_path)
    truth = truth_for(sandbox, "nextcommerce", streams, config["start_date"], config["end_date"])
    assert_nothing_lost_and_duplicates_only_where_interrupted(chains, "nextcommerce", streams, truth, config)


def test_random_kills_of_a_batch_sync_lose_nothing_and_duplicate_only_the_cut_window(sandbox, tmp_path):
    """BATCH mode (several files per window, each read when announced): 3 SIGKILLs."""
    streams = ["orders", "customers"]
    batch_config = {"storage": {"root": (tmp_path / "batches").as_uri()}, "batch_size": 40}
    config = nc_config(sandbox, batch_config=batch_config)
    catalog = write_catalog(config, streams, tmp_path / "catalog.json")
    kills = seeded_kill_points(SEED + 2, 3, max_records=2000, seconds=(1.5, 5.0))
    chains = kill_and_resume(config, catalog, kills, tmp_path)
    truth = truth_for(sandbox, "nextcommerce", streams, config["start_date"], config["end_date"])
    assert_nothing_lost_and_duplicates_only_where_interrupted(chains, "nextcommerce", streams, truth, config)


def test_random_kills_of_a_clover_sync_lose_nothing_either(sandbox, tmp_path):
    """Clover (one export at a time, several JSON files per export): 2 seeded SIGKILLs."""
    sandbox.control(clover_objects_per_file=60, complete_exports=True)
    try:
        streams = ["orders", "payments"]
        config = clover_config(sandbox)
        catalog = write_catalog(config, streams, tmp_path / "catalog.json")
        kills = seeded_kill_points(SEED + 1, 2, max_records=600, seconds=(1.5, 5.0))
        chains = kill_and_resume(config, catalog, kills, tmp_path)
        truth = truth_for(sandbox, "clover", streams, config["start_date"], config["end_date"])
        assert_nothing_lost_and_duplicates_only_where_interrupted(chains, "clover", streams, truth, config)
    finally:
        sandbox.control(clover_objects_per_file=1000, complete_exports=True)


def test_the_duplicate_check_itself_flags_a_duplicate_outside_the_cut_window():
    """The checker is not vacuous: a copy in a window no run was killed in is reported."""
    rec = {"number": "A1", "created_at": "2025-01-02T00:00:00+00:00"}
    late = {"number": "B7", "created_at": "2025-01-10T00:00:00+00:00"}
    killed = Attempt(state_in=None, kill=KillPoint("records", 1), killed=True)
    killed.records["orders"] = [rec]
    resumed = Attempt(state_in=None, kill=None, returncode=0)
    resumed.records["orders"] = [rec, late, late]
    report = check_chain(
        Chain([killed, resumed]),
        "nextcommerce",
        ["orders"],
        {"orders": ["A1", "B7", "C9"]},
        utc(START),
        utc("2025-01-13T00:00:00Z"),
        timedelta(days=4),
    )
    assert report.lost == [("orders", "C9")]
    assert report.duplicates == {("orders", 0): 1, ("orders", 2): 1}
    assert report.unexplained == [("orders", "B7", 2, 2)], "window 2 was never interrupted"


def test_a_target_that_dies_ends_the_tap_before_its_work_with_one_line_naming_the_target(sandbox, tmp_path):
    """The tap's stdout goes to a process that reads one line and exits (broken pipe).
    "Promptly" is counted, not timed: the tap has 3 streams x 59 daily windows to export,
    and it ends having created only a few of those exports."""
    config = nc_config(sandbox, end_date="2025-03-01T00:00:00Z", window_days=1)  # 177 exports
    planned = 3 * 59
    (tmp_path / "config.json").write_text(json.dumps(config))
    catalog = write_catalog(config, ["orders", "customers", "transactions"], tmp_path / "catalog.json")
    before = sandbox.stats()["exports_created"]["nextcommerce"]
    target = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.buffer.readline()"], stdin=subprocess.PIPE
    )
    tap = subprocess.Popen(
        tap_command(tmp_path / "config.json", catalog, None),
        stdout=target.stdin,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    assert target.stdin is not None
    target.stdin.close()
    target.wait(timeout=60)
    try:
        _, err = tap.communicate(timeout=120)  # bounds a hang only
    finally:
        if tap.poll() is None:
            tap.kill()
    created = sandbox.stats()["exports_created"]["nextcommerce"] - before
    stderr = err.decode(errors="replace")
    assert tap.returncode != 0
    assert created < planned // 3, f"the tap went on after its target died: {created} of {planned} exports"
    lines = [ln for ln in stderr.splitlines() if "tap-commerce-exports: error:" in ln]
    assert len(lines) == 1, stderr[-2000:]
    assert "target" in lines[0] and "broken pipe" in lines[0]
    assert "Traceback" not in stderr


def _follow_exports(sandbox, then: Callable[[], None]) -> threading.Thread:
    """Call ``then`` as soon as the sandbox has created one more export."""
    before = sandbox.stats()["exports_created"]["nextcommerce"]

    def watch() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if sandbox.stats()["exports_created"]["nextcommerce"] > before:
                then()
                return
            time.sleep(0.005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_an_export_that_never_finishes_fails_its_stream_only_and_keeps_its_bookmark(sandbox, tmp_path):
    """The first export created takes an hour (never, for the tap); the next ones are quick.
    One export at a time: the stuck stream times out, the other stream then completes."""
    streams = ["orders", "customers"]
    mid, end = "2025-01-09T00:00:00Z", "2025-01-13T00:00:00Z"
    state = {
        "bookmarks": {
            s: {
                "partitions": [
                    {
                        "context": {"account": "demo-store"},
                        "replication_key": "window_end",
                        "replication_key_value": mid,
                    }
                ]
            }
            for s in streams
        }
    }
    config = nc_config(sandbox, end_date=end, max_concurrent_exports=1, export_timeout=1.5)
    catalog = write_catalog(config, streams, tmp_path / "catalog.json")
    sandbox.control(processing_delay=3600)
    watcher = _follow_exports(sandbox, lambda: sandbox.control(processing_delay=0.05))
    try:
        run = run_attempt(config, catalog, state, None, tmp_path / "run")
    finally:
        watcher.join(timeout=5)
        sandbox.control(processing_delay=0.2, complete_exports=True)
    assert run.returncode == 2, run.stderr[-2000:]
    (line,) = [ln for ln in run.stderr.splitlines() if "tap-commerce-exports: error:" in ln]
    assert "export_timeout" in line
    stuck = next(s for s in streams if f"stream '{s}' failed" in line)
    (ok,) = [s for s in streams if s != stuck]
    assert bookmark_of(run.last_state, stuck) == utc(mid), "the stuck stream's bookmark stays"
    assert bookmark_of(run.last_state, ok) == utc(end), "the other stream's progress is kept"
    assert not run.records.get(stuck)
    expected = truth_for(sandbox, "nextcommerce", [ok], mid, end)[ok]
    got = [record_key("nextcommerce", ok, r) for r in run.records[ok]]
    assert sorted(map(str, got)) == sorted(map(str, expected))


def test_file_urls_that_keep_expiring_fail_the_stream_clearly_and_leave_the_bookmark(sandbox, tmp_path):
    state = {
        "bookmarks": {
            "orders": {
                "partitions": [
                    {
                        "context": {"account": "demo-store"},
                        "replication_key": "window_end",
                        "replication_key_value": "2025-01-05T00:00:00Z",
                    }
                ]
            }
        }
    }
    config = nc_config(sandbox, end_date="2025-01-09T00:00:00Z")
    catalog = write_catalog(config, ["orders"], tmp_path / "catalog.json")
    sandbox.control(url_ttl=-3600)  # every signed URL is already expired
    try:
        run = run_attempt(config, catalog, state, None, tmp_path / "run")
    finally:
        sandbox.control(url_ttl=60)
    assert run.returncode == 2
    (line,) = [ln for ln in run.stderr.splitlines() if "tap-commerce-exports: error:" in ln]
    assert "orders" in line and "expir" in line
    assert "signature=" not in run.stderr
    assert bookmark_of(run.last_state, "orders") == utc("2025-01-05T00:00:00Z")
    assert not run.records.get("orders")
    assert sandbox.stats()["expired_url_answers"] > 1
