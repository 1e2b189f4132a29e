"""``make bench`` section ``loader``: one export into a real PostgreSQL through
``meltanolabs-target-postgres``, as RECORD messages and as BATCH files, in one run.

Why end to end: the tap is not what makes a pipeline slow (issue #15), the loader is, and
BATCH is for the loader: SDK targets load batch files straight into their bulk path.
Each mode runs the real tap CLI piped into the real target (its own venv, from
``requirements/bench-target-postgres.txt``), into its own schema of one throwaway
server (``scripts/postgres.py``); the wall time is tap start -> target exit, the tap's
CPU is its own rusage (``wait4``). The loaded rows are checked equal (count and a hash
of every row in key order) before any figure counts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET_VENV = ROOT / ".venv-bench-postgres"
TARGET_LOCK = ROOT / "requirements" / "bench-target-postgres.txt"
TARGET = TARGET_VENV / "bin" / "target-postgres"


def ensure_target() -> Path:
    """The locked target-postgres in its own venv (built with uv on first use)."""
    stamp = TARGET_VENV / ".stamp"
    lock = TARGET_LOCK.read_bytes()
    if TARGET.exists() and stamp.exists() and stamp.read_bytes() == lock:
        return TARGET
    uv = _uv()
    subprocess.run(
        [uv, "venv", "--quiet", "--clear", "--python", sys.executable, str(TARGET_VENV)], check=True
    )
    subprocess.run(
        [
            uv,
            "pip",
            "sync",
            "--quiet",
            "--require-hashes",
            "--python",
            str(TARGET_VENV / "bin" / "python"),
            str(TARGET_LOCK),
        ],
        check=True,
    )
    stamp.write_bytes(lock)
    return TARGET


def _uv() -> str:
    """The project's pinned uv (`make install` puts it in .venv-uv), else one on PATH.

    Never one from a folder others can write to (a `/tmp/tools/bin/uv` was tried once, and
    anyone on the machine can create that file): what it is, we would run."""
    own = ROOT / ".venv-uv" / "bin" / "uv"
    if own.exists():
        return str(own)
    found = shutil.which("uv")
    if found is None:
        raise SystemExit("bench loader: uv not found: run `make install` (it builds .venv-uv)")
    for folder in Path(found).resolve().parents:
        if folder.stat().st_mode & 0o022:
            raise SystemExit(
                f"bench loader: refusing {found}: {folder} is writable by others; run `make install`"
            )
    return found


@dataclass
class PipelineRun:
    wall: float
    tap_cpu: float
    tap_rc: int
    target_rc: int
    states: list[dict[str, Any]]


def run_pipeline(
    tap_config: dict[str, Any],
    catalog: dict[str, Any],
    target_config: dict[str, Any],
    workdir: Path,
    label: str,
    *,
    state: dict[str, Any] | None = None,
    timeout: float = 1200,
) -> PipelineRun:
    """``tap | target-postgres``; the target's STATE lines are returned."""
    workdir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, value in (("tap", tap_config), ("catalog", catalog), ("target", target_config)):
        paths[name] = workdir / f"{label}-{name}.json"
        paths[name].write_text(json.dumps(value))
    tap_cmd = [
        sys.executable,
        "-m",
        "tap_commerce_exports",
        "--config",
        str(paths["tap"]),
        "--catalog",
        str(paths["catalog"]),
    ]
    if state is not None:
        paths["state"] = workdir / f"{label}-state.json"
        paths["state"].write_text(json.dumps(state))
        tap_cmd += ["--state", str(paths["state"])]
    out = workdir / f"{label}-target-out.jsonl"
    with (
        open(workdir / f"{label}-tap.log", "wb") as tap_log,
        open(workdir / f"{label}-target.log", "wb") as target_log,
        open(out, "wb") as target_out,
    ):
        started = time.monotonic()
        tap = subprocess.Popen(tap_cmd, stdout=subprocess.PIPE, stderr=tap_log, cwd=ROOT)
        target = subprocess.Popen(
            [str(ensure_target()), "--config", str(paths["target"])],
            stdin=tap.stdout,
            stdout=target_out,
            stderr=target_log,
        )
        assert tap.stdout is not None
        tap.stdout.close()  # the target alone holds the pipe: a dead target = broken pipe
        _, status, usage = os.wait4(tap.pid, 0)
        tap.returncode = os.waitstatus_to_exitcode(status)
        try:
            target_rc = target.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            target.kill()
            target_rc = target.wait()
        wall = time.monotonic() - started
    states = []
    for line in out.read_text().splitlines():
        line = line.strip()
        if line.startswith("{"):
            states.append(json.loads(line))
    return PipelineRun(wall, usage.ru_utime + usage.ru_stime, tap.returncode, target_rc, states)


def target_config(url: str, schema: str) -> dict[str, Any]:
    """The target as a user gets it (its defaults: records validated, INSERT, not COPY:
    0.8.1's COPY path writes an aware datetime's local time into a ``timestamp`` column,
    so RECORD rows with non-UTC offsets would land shifted), the same for both modes."""
    return {
        "sqlalchemy_url": url,
        "default_target_schema": schema,
        "add_record_metadata": False,
        "activate_version": False,  # the tap sends none; 0.8.1 asks for this with no metadata
    }


def table_fingerprint(server: Any, schema: str, table: str, order_by: str) -> tuple[int, str]:
    """(rows, md5 of every row's text in key order) of one table."""
    rows = server.query(
        f"SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t.\"{order_by}\"), '')) "
        f'FROM "{schema}"."{table}" t'
    )
    count, digest = rows[0]
    return int(count), digest


def bench_loader(report: Any, rows: int, sandbox_factory: Any, tap_config_factory: Any) -> None:
    """RECORD vs BATCH into target-postgres, same export, rows checked equal."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from postgres import PostgresServer

    from tap_commerce_exports.tap import TapCommerceExports

    print(f"[loader] one {rows:,}-row orders export into target-postgres: RECORD vs BATCH", flush=True)
    ensure_target()
    server = PostgresServer.temporary().start()
    work = Path(tempfile.mkdtemp(prefix="tap-commerce-exports-bench-loader-"))
    ok = False
    try:
        with sandbox_factory(processing_delay=0.0) as sb:
            sb.control(large_file_rows={"order_list": rows}, reset_stats=True)
            base = tap_config_factory(sb)
            catalog = TapCommerceExports(config=base, validate_config=False).catalog_dict
            for entry in catalog["streams"]:
                for md in entry["metadata"]:
                    if md["breadcrumb"] == []:
                        md["metadata"]["selected"] = entry["tap_stream_id"] == "orders"
            results: dict[str, PipelineRun] = {}
            for mode in ("record", "batch"):
                cfg = dict(base)
                if mode == "batch":
                    cfg["batch_config"] = {
                        "encoding": {"format": "jsonl", "compression": "gzip"},
                        "storage": {"root": (work / "batches").as_uri(), "prefix": "bench-"},
                    }
                run = run_pipeline(cfg, catalog, target_config(server.url, f"bench_{mode}"), work, mode)
                if run.tap_rc != 0 or run.target_rc != 0:
                    raise RuntimeError(
                        f"{mode}: tap exit {run.tap_rc}, target exit {run.target_rc} (logs in {work})"
                    )
                results[mode] = run
                print(
                    f"  {mode}: {run.wall:.1f} s end to end, tap CPU {run.tap_cpu:.2f} s",
                    flush=True,
                )
        prints = {m: table_fingerprint(server, f"bench_{m}", "orders", "number") for m in results}
        if prints["record"][0] != rows or prints["record"] != prints["batch"]:
            raise RuntimeError(f"loaded rows differ: expected {rows}, got {prints}")
        rec, bat = results["record"], results["batch"]
        report.add(
            f"loader: {rows:,} orders into target-postgres as RECORD",
            f"{rec.wall:.1f} s = {rows / rec.wall:,.0f} rows/s end to end",
        )
        report.add(
            "loader: the same as BATCH (jsonl+gzip)",
            f"{bat.wall:.1f} s = {rows / bat.wall:,.0f} rows/s end to end",
        )
        ratio = rec.wall / bat.wall
        report.add(
            "loader: BATCH speed-up end to end (rows checked equal)", f"{ratio:.2f}x", ">= 1.8x", ratio >= 1.8
        )
        rec_us, bat_us = rec.tap_cpu / rows * 1e6, bat.tap_cpu / rows * 1e6
        report.add(
            "loader: tap CPU per record, BATCH vs RECORD",
            f"{bat_us:.1f} us vs {rec_us:.1f} us",
            "BATCH <= RECORD",
            bat_us <= rec_us,
        )
        ok = True
    finally:
        server.remove()
        if ok:  # on failure the logs stay for reading (the error names the folder)
            shutil.rmtree(work, ignore_errors=True)
