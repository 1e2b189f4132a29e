#!/usr/bin/env python3
"""What a ``lookback`` of N days costs and what it catches, measured against the sandbox.

    python scripts/lookback_cost.py [--lookbacks 0,1,3,7,14] [--runs 3]

Why: windows are chosen by creation time, so a change to a row after its window was
synced (a refund, a fulfilment, a status change) reaches the warehouse only if a later
run reads that window again. ``lookback`` makes every run start N days before its
bookmark. This script measures, for each N, what that costs with daily runs (the real
tap process against the sandbox, all 13 Next Commerce streams, default 30-day windows):
exports created per run, rows emitted per run, and how many of those were re-reads;
and what it catches: the share of orders (and order lines) whose last change
(``updated_at``) happens while the row is still inside some later run's lookback.

Not a test: it prints a table (and writes it to ``.bench/lookback.md``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from commerce_sandbox import SandboxConfig, SandboxServer  # noqa: E402

UTC = timezone.utc
START = datetime(2025, 1, 1, tzinfo=UTC)
FIRST_END = datetime(2025, 2, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def run_tap(config: dict[str, Any], state: dict | None) -> tuple[list[dict], dict | None]:
    """One real tap process; (RECORD messages, last STATE)."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "config.json"
        cfg.write_text(json.dumps(config))
        cmd = [sys.executable, "-m", "tap_commerce_exports", "--config", str(cfg)]
        if state is not None:
            (Path(tmp) / "state.json").write_text(json.dumps(state))
            cmd += ["--state", str(Path(tmp) / "state.json")]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp)
    if proc.returncode != 0:
        raise SystemExit(f"tap failed: {proc.stderr[-2000:]}")
    records, last_state = [], None
    for line in proc.stdout.splitlines():
        message = json.loads(line)
        if message["type"] == "RECORD":
            records.append(message)
        elif message["type"] == "STATE":
            last_state = message["value"]
    return records, last_state


def key_of(message: dict) -> tuple[str, Any]:
    record = message["record"]
    return message["stream"], record.get("number", record.get("id"))


def measure_cost(sb: SandboxServer, lookback: int, runs: int) -> dict[str, float]:
    """Daily runs after a first full month: mean exports, rows and re-read rows per run."""
    base = {
        "provider": "nextcommerce",
        "api_url": sb.api_url,
        "access_token": "sandbox-token",
        "store": "demo-store",
        "start_date": START.isoformat(),
        "lookback": lookback,
        "poll_interval": 0.02,
        "poll_max_interval": 0.2,
        "max_concurrent_exports": 13,
        "max_requests_per_second": 500,
        "export_timeout": 120,
    }
    records, state = run_tap({**base, "end_date": FIRST_END.isoformat()}, None)
    seen = Counter(key_of(m) for m in records)
    exports = rows = reread = 0
    for k in range(1, runs + 1):
        before = sb.stats()["exports_created"]["nextcommerce"]
        records, state = run_tap({**base, "end_date": (FIRST_END + k * DAY).isoformat()}, state)
        exports += sb.stats()["exports_created"]["nextcommerce"] - before
        keys = [key_of(m) for m in records]
        rows += len(keys)
        reread += sum(1 for key in keys if key in seen)
        seen.update(keys)
    return {"exports": exports / runs, "rows": rows / runs, "reread": reread / runs}


def caught_share(sb: SandboxServer, export_type: str, lookback: int) -> float:
    """Share of rows whose ``updated_at`` is seen by some daily run (runs at midnight UTC).

    A row created at c is read by the daily runs ending at T with T - 1 day - lookback
    <= c < T, so the last one ends at midnight(c) + 1 day + lookback; its last change is
    caught if it happened by then.
    """
    rows = sb.truth("nextcommerce", export_type, START, datetime(2025, 3, 1, tzinfo=UTC))
    window = "created_at"
    caught = total = 0
    for row in rows:
        if not row.get("updated_at"):
            continue
        created = datetime.fromisoformat(row[window]).astimezone(UTC)
        updated = datetime.fromisoformat(row["updated_at"]).astimezone(UTC)
        midnight = created.replace(hour=0, minute=0, second=0, microsecond=0)
        last_read = midnight + DAY * (1 + lookback)
        total += 1
        caught += updated <= last_read
    return caught / total if total else 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookbacks", default="0,1,3,7,14", help="comma-separated days")
    parser.add_argument("--runs", type=int, default=3, help="daily runs measured per lookback")
    args = parser.parse_args()
    lookbacks = [int(x) for x in args.lookbacks.split(",")]
    lines = [
        "| lookback (days) | exports per daily run | rows per run | of which re-read | "
        "orders' last change caught | order lines' last change caught |",
        "|---|---|---|---|---|---|",
    ]
    with SandboxServer(SandboxConfig(port=0, processing_delay=0.05, nc_rate_limit=0)) as sb:
        for n in lookbacks:
            cost = measure_cost(sb, n, args.runs)
            orders = caught_share(sb, "order_list", n)
            lines_caught = caught_share(sb, "order_line_items", n)
            lines.append(
                f"| {n} | {cost['exports']:.0f} | {cost['rows']:.0f} | {cost['reread']:.0f} "
                f"({cost['reread'] / max(cost['rows'], 1):.0%}) | {orders:.0%} | {lines_caught:.0%} |"
            )
            print(lines[-1], flush=True)
    table = "\n".join(lines)
    print("\n" + table)
    out = ROOT / ".bench"
    out.mkdir(exist_ok=True)
    (out / "lookback.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
