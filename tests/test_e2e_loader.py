"""End to end: the real tap piped into the real DuckDB loader (``target-duckdb-exports``).

Both CLIs as processes, the sandbox on loopback. What the warehouse must hold after a
pipeline: exactly the sandbox's rows (its ground-truth keys, each once), every value as
the tap emitted it (money exact, date-times the same instants), whether the rows came as
RECORD messages, as BATCH jsonl.gz files or as Parquet files; and a rerun from the STATE
the loader confirmed adds nothing and changes nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tap_commerce_exports.providers.clover_streams import CLOVER_STREAMS
from tap_commerce_exports.providers.nextcommerce_streams import NEXTCOMMERCE_STREAMS
from tests.sandbox_fixtures import account_config
from tests.tap_harness import run_tap, selected_catalog, utc

pytestmark = pytest.mark.e2e

START, END = "2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z"
SANDBOX_SETTINGS = dict(processing_delay=0.05, nc_rate_limit=1000, clover_rate_limit=1000, retry_after=1)
DEFINITIONS = {
    "nextcommerce": {d.name: d for d in NEXTCOMMERCE_STREAMS},
    "clover": {d.name: d for d in CLOVER_STREAMS},
}
STREAMS = {"nextcommerce": ["orders", "customers"], "clover": ["orders", "payments"]}
BATCH = {
    "jsonl": {"format": "jsonl", "compression": "gzip"},
    "parquet": {"format": "parquet", "compression": "none"},
}


def tap_config(sandbox: Any, provider: str, tmp: Path, mode: str) -> dict[str, Any]:
    config: dict[str, Any] = {
        **account_config(sandbox, provider),
        "start_date": START,
        "end_date": END,
        "window_days": 15 if provider == "nextcommerce" else 30,
        "poll_interval": 0.02,
        "poll_max_interval": 0.2,
        "export_timeout": 60,
        "max_requests_per_second": 500,
    }
    if mode in BATCH:
        config["batch_config"] = {
            "encoding": BATCH[mode],
            "storage": {"root": (tmp / f"batches-{mode}").as_uri(), "prefix": f"{provider}-"},
            "batch_size": 200,  # several files per window
        }
    return config


def pipeline(
    tap_cfg: dict[str, Any],
    streams: Iterable[str],
    warehouse: Path,
    schema: str,
    tmp: Path,
    state: Any = None,
) -> list[dict[str, Any]]:
    """``tap | target-duckdb-exports``, both real processes; the STATEs the loader confirmed."""
    catalog = selected_catalog(tap_cfg, streams)
    files = {name: tmp / f"{schema}-{name}.json" for name in ("tap", "catalog", "target", "state")}
    files["tap"].write_text(json.dumps(tap_cfg))
    files["catalog"].write_text(json.dumps(catalog))
    files["target"].write_text(json.dumps({"path": str(warehouse), "default_target_schema": schema}))
    tap_cmd = [sys.executable, "-m", "tap_commerce_exports", "--config", str(files["tap"])]
    tap_cmd += ["--catalog", str(files["catalog"])]
    if state is not None:
        files["state"].write_text(json.dumps(state))
        tap_cmd += ["--state", str(files["state"])]
    tap = subprocess.Popen(tap_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    loader = subprocess.run(
        [sys.executable, "-m", "target_duckdb_exports", "--config", str(files["target"])],
        stdin=tap.stdout,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert tap.stdout is not None
    tap.stdout.close()
    _, tap_err = tap.communicate(timeout=60)
    assert tap.returncode == 0, tap_err.decode()[-2000:]
    assert loader.returncode == 0, loader.stderr[-2000:]
    return [json.loads(line) for line in loader.stdout.splitlines() if line.strip()]


def table_rows(warehouse: Path, schema: str, table: str) -> list[dict[str, Any]]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        cursor = con.execute(f'SELECT * FROM "{schema}"."{table}"')
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        con.close()


def same_value(loaded: Any, emitted: Any) -> bool:
    """A loaded value equals what the tap emitted: numbers exactly, date-times as instants,
    objects and arrays as the same JSON."""
    if emitted is None or loaded is None:
        return loaded is None and emitted is None
    if isinstance(loaded, datetime):
        return loaded == utc(emitted)
    if isinstance(loaded, Decimal):
        return loaded == Decimal(str(emitted))
    if isinstance(emitted, (dict, list)):
        return json.loads(loaded) == emitted
    return bool(loaded == emitted)


#: The tap's RECORD messages per config (without ``batch_config``), in this process: the
#: modes of one provider compare their warehouse with the same run (one tap sync fewer
#: per mode; the sandbox's data of a range does not change between runs).
_EMITTED: dict[str, dict[str, list[dict[str, Any]]]] = {}


def emitted_records(tap_cfg: dict[str, Any], streams: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The records the tap emits for ``streams`` as RECORD messages (its own run)."""
    config = {k: v for k, v in tap_cfg.items() if k != "batch_config"}
    key = json.dumps([config, sorted(streams)], sort_keys=True)
    if key not in _EMITTED:
        run = run_tap(config, streams=streams)
        assert run.returncode == 0, run.stderr[-2000:]
        _EMITTED[key] = run.records
    return _EMITTED[key]


@pytest.mark.parametrize(
    ("provider", "mode"),
    [
        ("nextcommerce", "record"),
        ("nextcommerce", "jsonl"),
        ("nextcommerce", "parquet"),
        ("clover", "record"),
        ("clover", "jsonl"),
    ],
)
def test_the_warehouse_holds_exactly_the_sandbox_rows_as_emitted_and_a_rerun_adds_nothing(
    sandbox: Any, tmp_path: Path, provider: str, mode: str
) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    cfg = tap_config(sandbox, provider, tmp_path, mode)
    states = pipeline(cfg, STREAMS[provider], warehouse, provider, tmp_path)
    assert states, "the loader confirmed no STATE"

    first: dict[str, list[dict[str, Any]]] = {}
    records = emitted_records(cfg, STREAMS[provider])
    for stream in STREAMS[provider]:
        d = DEFINITIONS[provider][stream]
        keys = ["_account", *d.primary_keys]
        rows = table_rows(warehouse, provider, stream)
        truth = sandbox.truth_keys(provider, d.export_type, utc(START), utc(END))
        got = sorted(tuple(str(r[k]) for k in d.primary_keys) for r in rows)
        want = sorted(tuple(str(v) for v in (k if isinstance(k, (list, tuple)) else (k,))) for k in truth)
        assert got == want, f"{stream}: {len(got)} rows loaded, the sandbox has {len(want)}"
        emitted = {tuple(r[k] for k in keys): r for r in records[stream]}
        for row in rows:
            record = emitted[tuple(row[k] for k in keys)]
            wrong = [c for c in record if not same_value(row[c], record[c])]
            assert not wrong, (
                f"{stream} {[row[k] for k in keys]}: {wrong} differ: {[(row[c], record[c]) for c in wrong]}"
            )
        first[stream] = rows

    pipeline(cfg, STREAMS[provider], warehouse, provider, tmp_path, state=states[-1])
    for stream in STREAMS[provider]:
        again = table_rows(warehouse, provider, stream)
        key = ["_account", *DEFINITIONS[provider][stream].primary_keys]

        def by_key(rows: list[dict[str, Any]], key: list[str] = key) -> dict[tuple[Any, ...], dict[str, Any]]:
            return {tuple(r[k] for k in key): r for r in rows}

        assert by_key(again) == by_key(first[stream]), f"{stream}: the rerun changed the table"
        assert len(again) == len(first[stream])
