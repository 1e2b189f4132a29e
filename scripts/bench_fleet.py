"""``make bench`` sections ``fleet``, ``capped`` and ``span`` (issue 24): many accounts in
one process, against a server whose capacity nobody publishes.

* ``fleet``: ``--merchants`` (1,000) Clover merchants in ONE tap process (the real CLI,
  its accounts in an ``accounts_file``), a daily incremental run (8 days, orders +
  payments: one window per stream) against the sandbox at Clover's published app limits
  (50 requests/s, 10 in flight per app) with 2 s exports. Wall against the ideal the app
  rate allows (2 requests per export: create + one status check, plus one export's
  delay), the tap's CPU per merchant, its peak RSS, STATE bytes per RECORD byte, 429s,
  and whether every merchant got exactly its rows.
* ``capped``: 40 merchants against a server that runs 4 exports at once for the whole
  app (``clover_app_max_running``; per merchant unbounded): wall against the ideal that
  capacity allows (ceil(exports / 4) rounds of the export delay), refused creates (503)
  per export.
* ``span``: Next Commerce exports that fail above 8 days (``fault_fail_above_days``), two
  streams, two months, the tap's default 30-day windows: how many exports were created
  (every failed one can be a long export at the provider), and exact records.

Each runs alone with ``make bench ARGS=--only fleet`` (or ``capped``, ``span``).
Records are checked against the sandbox's ground truth per (stream, account) before a
timing counts.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / ".bench"

#: The real CLI in a fresh interpreter that, at exit, writes its own peak RSS (VmHWM of
#: its address space, KiB; not ru_maxrss, which survives exec) and CPU seconds (user +
#: system) as JSON to ``$BENCH_RSS_FILE``.
TAP_WRAPPER = (
    "import atexit, json, os, resource, sys\n"
    "def _usage():\n"
    "    kib = None\n"
    "    try:\n"
    "        with open('/proc/self/status') as status:\n"
    "            for line in status:\n"
    "                if line.startswith('VmHWM:'):\n"
    "                    kib = int(line.split()[1])\n"
    "    except OSError:\n"
    "        pass\n"
    "    if kib is None:\n"
    "        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "        kib = kib // 1024 if sys.platform == 'darwin' else kib\n"
    "    times = os.times()\n"
    "    with open(os.environ['BENCH_RSS_FILE'], 'w') as fh:\n"
    "        json.dump({'rss_kib': kib, 'cpu': times.user + times.system}, fh)\n"
    "atexit.register(_usage)\n"
    "from tap_commerce_exports.cli import main\n"
    "main(sys.argv[1:])\n"
)

START, DAILY_END = "2025-01-01T00:00:00Z", "2025-01-09T00:00:00Z"  # 8 days
SPAN_END = "2025-03-01T00:00:00Z"  # two months
CLOVER_STREAMS = {"orders": "ORDERS", "payments": "PAYMENTS"}
NC_STREAMS = {"orders": "order_list", "customers": "customer_list"}
APP_RATE = 50.0  # Clover's published app limits
APP_IN_FLIGHT = 10


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


# ----------------------------------------------------------------------------- one run


@dataclass
class TapResult:
    wall: float
    finished: bool  # False: stopped at the timeout
    exit_ok: bool
    rss_mb: float
    cpu: float
    record_bytes: int = 0
    state_bytes: int = 0
    states: int = 0
    records: int = 0
    #: (stream, account) -> Counter of primary keys emitted
    keys: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    log: Path | None = None


def catalog_for(config: dict[str, Any], streams: list[str]) -> dict[str, Any]:
    """The tap's discovered catalog with ``streams`` selected (discovery needs no API)."""
    from tap_commerce_exports.tap import TapCommerceExports

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        catalog: dict[str, Any] = TapCommerceExports(config=config, validate_config=False).catalog_dict
    finally:  # the SDK's Tap installs its own SIGINT/SIGTERM handlers: keep the bench's
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    for entry in catalog["streams"]:
        for md in entry["metadata"]:
            if md["breadcrumb"] == []:
                md["metadata"]["selected"] = entry["tap_stream_id"] in streams
    return catalog


def run_tap(
    name: str,
    config: dict[str, Any],
    catalog: dict[str, Any],
    run_process: Callable[..., float],
    *,
    timeout: float,
) -> TapResult:
    """The tap CLI with ``config``; stdout to a file, read back message by message."""
    cfg_file, cat_file = BENCH_DIR / f"{name}-config.json", BENCH_DIR / f"{name}-catalog.json"
    cfg_file.write_text(json.dumps(config))
    cat_file.write_text(json.dumps(catalog))
    usage_file, out, log = (
        BENCH_DIR / f"{name}-usage.json",
        BENCH_DIR / f"{name}-out.jsonl",
        BENCH_DIR / f"{name}.log",
    )
    usage_file.unlink(missing_ok=True)
    finished = exit_ok = True
    started = _now()
    try:
        wall = run_process(
            [sys.executable, "-c", TAP_WRAPPER, "--config", str(cfg_file), "--catalog", str(cat_file)],
            stdout=out,
            log=log,
            timeout=timeout,
            env={"BENCH_RSS_FILE": str(usage_file)},
        )
    except RuntimeError as exc:  # bench.ChildFailed: it timed out, or exited non-zero
        wall = _now() - started
        finished = "timed out" not in str(exc)
        exit_ok = False
        print(f"  {name}: {'stopped at the timeout' if not finished else str(exc)[-300:]}", flush=True)
    usage = json.loads(usage_file.read_text()) if usage_file.exists() else {"rss_kib": 0, "cpu": math.nan}
    result = TapResult(wall, finished, exit_ok, usage["rss_kib"] / 1024, usage["cpu"], log=log)
    _read_output(out, result)
    out.unlink(missing_ok=True)
    return result


def _now() -> float:
    import time

    return time.monotonic()


def _read_output(path: Path, result: TapResult) -> None:
    """Bytes per message type, records by (stream, account) key (STATE is not parsed)."""
    if not path.exists():
        return
    with open(path, "rb") as fh:
        for line in fh:
            head = line[:40]
            if b'"STATE"' in head:
                result.state_bytes += len(line)
                result.states += 1
            elif b'"RECORD"' in head:
                result.record_bytes += len(line)
                result.records += 1
                msg = json.loads(line)
                record = msg["record"]
                key = (msg["stream"], str(record.get("_account", "")))
                result.keys.setdefault(key, Counter())[str(record.get("id", record.get("number")))] += 1


def exactness(
    sb: Any, provider: str, types: dict[str, str], accounts: list[str], end: str, got: TapResult
) -> tuple[int, list[str]]:
    """How many accounts got exactly their rows (no row missing, extra or twice), and
    the first few that did not, with why. An account "" is the sandbox's default one,
    whatever the records call it (a one-account run)."""
    exact, wrong = 0, []
    for account in accounts:
        ok = True
        for stream, export_type in types.items():
            truth = Counter(
                str(k) for k in sb.truth_keys(provider, export_type, utc(START), utc(end), account or None)
            )
            if account:
                emitted = got.keys.get((stream, account), Counter())
            else:
                emitted = sum((c for (s, _), c in got.keys.items() if s == stream), Counter())
            if emitted != truth:
                ok = False
                if len(wrong) < 3:
                    missing = sum((truth - emitted).values())
                    extra = sum((emitted - truth).values())
                    wrong.append(f"{account} {stream}: {missing} missing, {extra} extra or repeated")
        exact += ok
    return exact, wrong


def _accounts_file(name: str, merchants: list[str]) -> Path:
    path = BENCH_DIR / f"{name}-accounts.jsonl"
    path.write_text(
        "".join(json.dumps({"merchant_id": m, "access_token": f"token-{m}"}) + "\n" for m in merchants)
    )
    os.chmod(path, 0o600)
    return path


def _clover_config(sb: Any, name: str, merchants: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "provider": "clover",
        "api_url": sb.clover_url,
        "region": "sandbox",
        "accounts_file": str(_accounts_file(name, merchants)),
        "start_date": START,
        "end_date": DAILY_END,
        **extra,
    }


def _clover_catalog() -> dict[str, Any]:
    discovery = {"provider": "clover", "access_token": "x", "merchant_id": "M", "start_date": START}
    return catalog_for(discovery, list(CLOVER_STREAMS))


def _merchants(n: int) -> list[str]:
    return [f"MERCHANT{i}" for i in range(1, n + 1)]


def _clover_fleet(
    sandbox: Callable[..., Any],
    run_process: Callable[..., float],
    name: str,
    merchants: int,
    delay: float,
    timeout: float,
    tap_extra: dict[str, Any],
    **sandbox_extra: Any,
) -> tuple[TapResult, dict[str, Any], int, list[str]]:
    """``merchants`` Clover merchants in one tap process, 8 days of orders and payments,
    at the published app limits: the run, the sandbox's counts, and exactness."""
    names = _merchants(merchants)
    with sandbox(
        processing_delay=delay,
        accounts={"merchants": merchants},
        data_end=DAILY_END,
        rows_per_day={"ORDERS": 3, "PAYMENTS": 3},
        clover_app_rate_limit=APP_RATE,
        clover_app_max_concurrent_requests=APP_IN_FLIGHT,
        **sandbox_extra,
    ) as sb:
        config = _clover_config(sb, name, names, **tap_extra)
        res = run_tap(name, config, _clover_catalog(), run_process, timeout=timeout)
        stats = sb.stats()
        exact, wrong = exactness(sb, "clover", CLOVER_STREAMS, names, DAILY_END, res)
    return res, stats, exact, wrong


# ----------------------------------------------------------------------------- sections


def bench_fleet(
    report: Any,
    sandbox: Callable[..., Any],
    run_process: Callable[..., float],
    merchants: int,
    timeout: float,
) -> None:
    delay = 2.0
    print(
        f"[fleet] {merchants:,} merchants in one process, 8 days of orders + payments, "
        f"{delay:g} s exports, app limits {APP_RATE:g}/s and {APP_IN_FLIGHT} in flight",
        flush=True,
    )
    res, stats, exact, wrong = _clover_fleet(sandbox, run_process, "fleet", merchants, delay, timeout, {})
    exports = merchants * len(CLOVER_STREAMS)
    ideal = 2 * exports / APP_RATE + delay
    api = {k: v for k, v in stats["requests"].items() if k.startswith("clover_")}
    requests = sum(api.values())
    created = stats["exports_created"].get("clover", 0)
    done = "" if res.finished else f" (NOT finished: stopped at {timeout:g} s)"
    report.add(
        f"fleet: {merchants:,} merchants, wall / ideal",
        f"{res.wall:.1f} s / {ideal:.1f} s = {res.wall / ideal:.2f}x{done}",
        "<= 1.5x",
        res.finished and res.wall <= 1.5 * ideal,
    )
    report.add("fleet: tap CPU per merchant", f"{1000 * res.cpu / merchants:.1f} ms ({res.cpu:.1f} s in all)")
    report.add("fleet: tap peak RSS", f"{res.rss_mb:.0f} MB")
    ratio = res.state_bytes / max(1, res.record_bytes)
    report.add(
        "fleet: STATE bytes / RECORD bytes",
        f"{ratio:.3f} ({res.state_bytes / 1e6:.1f} MB in {res.states:,} STATE vs "
        f"{res.record_bytes / 1e6:.1f} MB in {res.records:,} RECORD; "
        f"{res.state_bytes / max(1, res.records):,.0f} STATE bytes per record)",
        "<= 1",
        ratio <= 1,
    )
    report.add("fleet: responses 429", str(stats["429s_sent"]), "<= 3", stats["429s_sent"] <= 3)
    report.add(
        "fleet: API requests per export",
        f"{requests / max(1, created):.2f} ({requests:,} requests, {created:,} exports created: "
        + ", ".join(f"{k.removeprefix('clover_')} {v:,}" for k, v in sorted(api.items()))
        + ")",
    )
    report.add(
        "fleet: merchants exact",
        f"{exact:,} of {merchants:,}" + (f" ({'; '.join(wrong)})" if wrong else ""),
        "all",
        exact == merchants,
    )
    report.notes.append(
        f"Fleet: ideal = 2 requests per export ({exports:,} exports) at {APP_RATE:g}/s + one export's "
        f"{delay:g} s; the tap's defaults (poll_interval, max_concurrent_exports) otherwise; "
        "CPU and peak RSS are the tap process's own."
    )


def bench_capped(
    report: Any, sandbox: Callable[..., Any], run_process: Callable[..., float], timeout: float
) -> None:
    merchants, cap, delay = 40, 4, 2.0
    print(
        f"[capped] {merchants} merchants, the server runs {cap} exports at once for the whole app", flush=True
    )
    res, stats, exact, wrong = _clover_fleet(
        sandbox,
        run_process,
        "capped",
        merchants,
        delay,
        timeout,
        {"poll_interval": 1},
        clover_max_running=1000,
        clover_app_max_running=cap,
    )
    exports = merchants * len(CLOVER_STREAMS)
    ideal = math.ceil(exports / cap) * delay
    refused = stats["503s_sent"]
    done = "" if res.finished else f" (NOT finished: stopped at {timeout:g} s)"
    report.add(
        f"capped server ({cap} exports at once per app), {merchants} merchants: wall / ideal",
        f"{res.wall:.1f} s / {ideal:.1f} s = {res.wall / ideal:.2f}x{done}",
        "<= 2x",
        res.finished and res.wall <= 2 * ideal,
    )
    report.add(
        "capped server: refused creates per export",
        f"{refused / exports:.2f} ({refused} refusals for {exports} exports)",
        "<= 1",
        refused <= exports,
    )
    report.notes.append(
        f"Capped server: poll_interval 1 s (the default 5 s first check alone makes a round of "
        f"{delay:g} s exports last 5 s); ideal = ceil({exports} exports / {cap}) x {delay:g} s."
    )
    report.add(
        "capped server: merchants exact",
        f"{exact} of {merchants}" + (f" ({'; '.join(wrong)})" if wrong else ""),
        "all",
        exact == merchants,
    )


def bench_span(
    report: Any, sandbox: Callable[..., Any], run_process: Callable[..., float], timeout: float
) -> None:
    print("[span] exports fail above 8 days: orders + customers, two months, 30-day windows", flush=True)
    with sandbox(processing_delay=0.3, fault_fail_above_days=8) as sb:
        config = {
            "provider": "nextcommerce",
            "access_token": sb.config.token,
            "api_url": sb.api_url,
            "start_date": START,
            "end_date": SPAN_END,
            "poll_interval": 0.1,
            "poll_max_interval": 0.5,
            "max_requests_per_second": 1000,
        }
        discovery = dict(config, store="s")
        res = run_tap("span", config, catalog_for(discovery, list(NC_STREAMS)), run_process, timeout=timeout)
        stats = sb.stats()
        exact, wrong = exactness(sb, "nextcommerce", NC_STREAMS, [""], SPAN_END, res)
    created = stats["exports_created"].get("nextcommerce", 0)
    report.add(
        "span: exports created (fail above 8 days, 2 streams, 2 months)",
        f"{created} ({stats['exports_failed']} failed), {res.wall:.1f} s",
        "<= 40",
        created <= 40,
    )
    report.add(
        "span: records exact",
        f"{'yes' if exact else 'no'} ({res.records:,} records)" + (f" ({'; '.join(wrong)})" if wrong else ""),
        "yes",
        bool(exact) and res.exit_ok,
    )


def sections(
    args: Any, report: Any, sandbox: Callable[..., Any], run_process: Callable[..., float]
) -> Iterator[tuple[str, Callable[[], None]]]:
    """The three sections as (name, run) for bench.py's table."""
    yield "fleet", lambda: bench_fleet(report, sandbox, run_process, args.merchants, args.fleet_timeout)
    yield "capped", lambda: bench_capped(report, sandbox, run_process, args.fleet_timeout)
    yield "span", lambda: bench_span(report, sandbox, run_process, args.fleet_timeout)
