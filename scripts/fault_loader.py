"""``make faults``, group *loader kills*: the DuckDB loader killed while it loads.

A real pipeline, ``tap | target-duckdb-exports`` into one DuckDB file, is killed
(SIGKILL, tap and loader together, as in a lost container) again and again, each run
resumed from the last STATE the loader confirmed (what Meltano would have saved). Half
the kills are aimed into a load: they fire a seeded few milliseconds after the loader
says it starts a drain's transaction; the others at a seeded moment of the run. A last
run goes to the end. The warehouse must then hold exactly what one uninterrupted
pipeline loads into a fresh file: the sandbox's keys, each once, every row equal (a hash
of every row in key order per table).
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench_loader_checks import duckdb_fingerprint

LOADER = [sys.executable, "-m", "target_duckdb_exports"]
#: The loader's line as a drain's transaction begins (target_duckdb_exports/sink.py).
LOADING_MARK = "in one transaction"


def run_pipeline(
    config: dict[str, Any],
    catalog: Path,
    warehouse: Path,
    state: dict[str, Any] | None,
    kill: tuple[str, float] | None,
    workdir: Path,
) -> tuple[dict[str, Any] | None, bool, int]:
    """One ``tap | loader`` run; (last confirmed STATE, killed?, loader exit code)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "tap.json").write_text(json.dumps(config))
    (workdir / "target.json").write_text(
        json.dumps({"path": str(warehouse), "default_target_schema": "faults"})
    )
    tap_cmd = [sys.executable, "-m", "tap_commerce_exports", "--config", str(workdir / "tap.json")]
    tap_cmd += ["--catalog", str(catalog)]
    if state is not None:
        (workdir / "state.json").write_text(json.dumps(state))
        tap_cmd += ["--state", str(workdir / "state.json")]
    with open(workdir / "tap.log", "wb") as tap_log:
        tap = subprocess.Popen(tap_cmd, stdout=subprocess.PIPE, stderr=tap_log, cwd=workdir)
        loader = subprocess.Popen(
            [*LOADER, "--config", str(workdir / "target.json")],
            stdin=tap.stdout,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=workdir,
        )
        assert tap.stdout is not None and loader.stdout is not None and loader.stderr is not None
        tap.stdout.close()
        confirmed: list[dict[str, Any]] = []
        loading = threading.Event()

        def read_states() -> None:
            assert loader.stdout is not None
            for line in loader.stdout:
                if line.strip():
                    confirmed.append(json.loads(line))

        def read_log() -> None:
            assert loader.stderr is not None
            with open(workdir / "loader.log", "wb") as log:
                for line in loader.stderr:
                    log.write(line)
                    if LOADING_MARK.encode() in line:
                        loading.set()

        readers = [threading.Thread(target=f, daemon=True) for f in (read_states, read_log)]
        for reader in readers:
            reader.start()
        killed = False
        if kill is not None:
            how, value = kill
            if how == "load":
                deadline = time.monotonic() + 120  # bounds a hang only
                while (
                    not loading.wait(timeout=0.05) and loader.poll() is None and time.monotonic() < deadline
                ):
                    pass
                fired = loading.is_set()
                time.sleep(value)
            else:
                fired = True
                try:
                    loader.wait(timeout=value)
                    fired = False  # the run ended before its moment
                except subprocess.TimeoutExpired:
                    pass
            if fired and loader.poll() is None:
                for proc in (loader, tap):
                    proc.send_signal(signal.SIGKILL)
                killed = True
        rc = loader.wait(timeout=600)
        tap.wait(timeout=60)
        for reader in readers:
            reader.join(timeout=30)
    return (confirmed[-1] if confirmed else state), killed, rc


def loader_kill_scenario(
    row: Any,
    config: dict[str, Any],
    catalog: Path,
    keys: dict[str, list[str]],
    truth: dict[str, int],
    kills: int,
    seed: int,
    workdir: Path,
) -> None:
    """Fill ``row`` (a fault_matrix Row): runs, kills, rows expected and loaded, problems.
    ``keys``: each stream's key columns; ``truth``: the sandbox's row count per stream."""
    rng = random.Random(seed)
    warehouse = workdir / "warehouse.duckdb"
    state: dict[str, Any] | None = None
    for i in range(kills + 1):
        kill = None
        if i < kills:
            kill = (
                ("load", round(rng.uniform(0.0, 0.05), 3))
                if i % 2 == 0
                else ("seconds", rng.uniform(0.5, 3.0))
            )
        state, killed, rc = run_pipeline(config, catalog, warehouse, state, kill, workdir / f"run-{i}")
        row.runs += 1
        if killed:
            row.kills += 1
            row.phases.append("while loading" if kill and kill[0] == "load" else "at a random moment")
        elif rc != 0:
            row.problems.append(f"run {i}: loader exit {rc} (see {workdir / f'run-{i}'})")
    row.faults = row.kills
    reference = workdir / "reference.duckdb"
    _, _, rc = run_pipeline(config, catalog, reference, None, None, workdir / "reference")
    if rc != 0:
        row.problems.append(f"the uninterrupted reference run failed (exit {rc})")
        return
    for stream, key in keys.items():
        got = duckdb_fingerprint(warehouse, "faults", stream, key)
        want = duckdb_fingerprint(reference, "faults", stream, key)
        row.expected += truth[stream]
        row.emitted += got[0]
        row.lost += max(0, truth[stream] - got[1])
        if want[:2] != (truth[stream], truth[stream]):
            row.problems.append(
                f"{stream}: the uninterrupted run loaded {want[0]} rows, the sandbox has {truth[stream]}"
            )
        if got != want:
            row.problems.append(
                f"{stream}: {got[0]} rows ({got[1]} keys) after the kills, {want[0]} uninterrupted, or rows differ"
            )


def tempdir(root: Path, prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))
