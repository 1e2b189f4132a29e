"""How many accounts one process syncs per hour against the sandbox at the providers' limits.

    .venv-dagster/bin/python -m orchestration.throughput --merchants 3 --stores 3

Starts the sandbox (`.venv`'s `tap-commerce-exports-sandbox`) with its defaults, which
are the published limits (Next Commerce 4 requests/s per token; Clover 16/s and 5
concurrent per token, 50/s and 10 concurrent per app) and a 2 s export processing time
(the real one is not published), serving N stores and N merchants, each with its own
token and data. Then it runs the code location's partitions one after another in this
process (`--group-size` accounts per group, one `meltano run` each; pool limit 1: what
one Dagster worker does), twice:

- backfill: each account from `--start` to the sandbox's data end (empty state);
- incremental: each account again with its saved state, as the hourly schedule does
  (the default 7-day lookback re-reads a week per stream).

and prints seconds per account and accounts per hour (3600 / mean seconds per account)
per extractor and phase. Meltano's state is a throwaway sqlite file; plugins are the
installed ones (`make install`). Extrapolation: accounts are independent (own token,
own limits), so an hour holds 3600 / s accounts per process; with `concurrent_runs`
processes the app-wide limits, not the processes, bound it (see the README).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXTRACTORS = {"store": "tap-commerce-exports", "merchant_id": "tap-commerce-exports--clover"}


def start_sandbox(merchants: int, stores: int, port: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "tap-commerce-exports-sandbox"), "--port", str(port),
         "--accounts", f"stores={stores},merchants={merchants}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "sandbox listening" not in line:
        proc.kill()
        raise SystemExit(f"throughput: the sandbox did not start: {line.strip()}")
    return proc, line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestration.throughput", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--merchants", type=int, default=2)
    parser.add_argument("--stores", type=int, default=2)
    parser.add_argument(
        "--start", default="2025-01-01", help="backfill from (the sandbox's data ends 2025-03-01)"
    )
    parser.add_argument("--port", type=int, default=18765)
    parser.add_argument(
        "--group-size", type=int, default=1, help="accounts per group (one meltano run syncs a group)"
    )
    args = parser.parse_args(argv)

    from dagster import DagsterInstance, RetryPolicy

    from orchestration.definitions import MeltanoProject, build_definitions, job_name
    from orchestration.groups import parse_groups
    from orchestration.pools import apply_pool_limits

    sandbox, banner = start_sandbox(args.merchants, args.stores, args.port)
    work = Path(tempfile.mkdtemp(prefix="throughput-"))
    try:
        base = f"http://127.0.0.1:{args.port}"
        groups: dict[str, dict] = {}
        order: list[tuple[str, str, int]] = []
        by_extractor: dict[str, list[dict[str, str]]] = {}
        for name in re.findall(r" account=(\S+)", banner):
            key = "merchant_id" if name.startswith("MERCHANT") else "store"
            account = {key: name, "sandbox_token": f"token-{name}"}
            account["api_url"] = base if key == "merchant_id" else f"{base}/stores/{name}/api/admin/"
            if key == "merchant_id":
                account["region"] = "sandbox"
            by_extractor.setdefault(EXTRACTORS[key], []).append(account)
        for extractor, accounts in by_extractor.items():
            for i in range(0, len(accounts), max(1, args.group_size)):
                members = accounts[i : i + max(1, args.group_size)]
                first = members[0].get("merchant_id") or members[0]["store"]
                group = re.sub(r"[^a-z0-9-]", "-", first.lower()) + f"-x{len(members)}"
                groups[group] = {"extractor": extractor, "accounts": members}
                order.append((extractor, group, len(members)))
        config = parse_groups(
            {"groups": groups, "extractors": {e: {"concurrent_runs": 1} for e in EXTRACTORS.values()}}
        )
        sys_dir = work / "meltano-sys"
        sys_dir.mkdir()
        for kind in ("extractors", "loaders"):
            (sys_dir / kind).symlink_to(REPO / ".meltano" / kind, target_is_directory=True)
        common = {"START_DATE": args.start, "POLL_INTERVAL": "1", "POLL_MAX_INTERVAL": "5"}
        os.environ.update({
            "MELTANO_SYS_DIR_ROOT": str(sys_dir),
            "MELTANO_DATABASE_URI": f"sqlite:///{sys_dir / 'meltano.db'}",
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            "MELTANO_AUTO_INSTALL": "false",
            **{f"TAP_COMMERCE_EXPORTS_{k}": v for k, v in common.items()},
            **{f"TAP_COMMERCE_EXPORTS__CLOVER_{k}": v for k, v in common.items()},
        })  # fmt: skip
        defs = build_definitions(
            config, MeltanoProject(duckdb_dir=str(work / "warehouses")), retry=RetryPolicy(max_retries=0)
        )
        (work / "dagster").mkdir()
        (work / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        results: dict[tuple[str, str], list[float]] = {}
        with DagsterInstance.from_config(str(work / "dagster")) as instance:
            apply_pool_limits(instance, config)
            for phase in ("backfill", "incremental"):
                for extractor, group, size in order:
                    t0 = time.monotonic()
                    result = defs.resolve_job_def(job_name(extractor)).execute_in_process(
                        partition_key=group, instance=instance, raise_on_error=False
                    )
                    seconds = time.monotonic() - t0
                    if not result.success:
                        raise SystemExit(f"throughput: {phase} of {group} failed (logs in {work})")
                    results.setdefault((extractor, phase), []).extend([seconds / size] * size)
                    print(f"{phase:11} {group:18} {size:3} account(s) {seconds:6.1f} s", flush=True)
        report = {}
        for (extractor, phase), times in results.items():
            mean = statistics.mean(times)
            report[f"{extractor} {phase}"] = {"accounts": len(times), "mean_s": round(mean, 1),
                                              "accounts_per_hour": int(3600 / mean)}  # fmt: skip
        print(json.dumps(report, indent=2))
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
