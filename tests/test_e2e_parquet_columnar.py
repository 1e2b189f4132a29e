"""End to end: Parquet BATCH files are the same whether the tap read the CSV exports as
typed columns (``files/csv_columns.py``, the plain case) or row by row (a stream map that
changes nothing but takes the row path: flattening of a flat stream)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.tap_harness import run_tap
from tests.test_e2e_batch import SANDBOX_SETTINGS, config
from tests.test_selection_and_maps import catalog_for

pytestmark = pytest.mark.e2e
__all__ = ["SANDBOX_SETTINGS"]  # the sandbox fixture reads this module's

STREAMS = ["orders", "customers"]


def parquet_output(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Per stream, its files' rows in announcement order; the SCHEMAs; the last STATE
    without the pipeline ids (each run has its own)."""
    import pyarrow.parquet as pq

    rows: dict[str, list[list[dict[str, Any]]]] = {}
    schemas, state = {}, None
    for m in messages:
        if m["type"] == "BATCH":
            assert m["encoding"]["format"] == "parquet"
            for url in m["manifest"]:
                rows.setdefault(m["stream"], []).append(
                    pq.read_table(url.removeprefix("file://")).to_pylist()
                )
        elif m["type"] == "SCHEMA":
            schemas[m["stream"]] = m
        elif m["type"] == "STATE":
            state = m["value"]
    assert state is not None
    for bookmarks in state["bookmarks"].values():
        for partition in bookmarks["partitions"]:
            partition.pop("batch_pipeline", None)
    return {"rows": rows, "schemas": schemas, "state": state}


def both_ways(
    sandbox: Any, tmp_path: Path, deselect: list[str] | None = None, **overrides: Any
) -> tuple[dict, dict]:
    """The tap run read as columns and row by row; (outputs, DEBUG logs) per way."""
    outputs = {}
    logs = {}
    for way, extra in (("columns", {}), ("rows", {"flattening_enabled": True, "flattening_max_depth": 1})):
        cfg = config(sandbox, "nextcommerce", tmp_path / way, **overrides, **extra)
        cfg["batch_config"]["encoding"] = {"format": "parquet", "compression": "none"}
        if deselect is None:
            run = run_tap(cfg, streams=STREAMS, env={"LOGLEVEL": "DEBUG"})
        else:
            catalog = tmp_path / f"{way}-catalog.json"
            catalog.write_text(json.dumps(catalog_for(cfg, "orders", deselect)))
            run = run_tap(cfg, args=("--catalog", str(catalog)), env={"LOGLEVEL": "DEBUG"})
        assert run.returncode == 0, run.stderr[-2000:]
        outputs[way] = parquet_output(run.messages)
        logs[way] = run.stderr
    return outputs, logs


def test_parquet_files_are_the_same_read_as_columns_or_row_by_row(sandbox, tmp_path: Path, require) -> None:
    require.module("pyarrow", "the parquet extra: run `make install`")
    outputs, logs = both_ways(sandbox, tmp_path)
    assert "read as typed columns" in logs["columns"]
    assert "read as typed columns" not in logs["rows"]
    columns, rows = outputs["columns"], outputs["rows"]
    assert set(columns["rows"]) == set(STREAMS)
    assert sum(len(f) for f in columns["rows"]["orders"]) > 150  # several files (batch_size 150)
    assert columns == rows


def test_deselected_properties_are_left_out_alike(sandbox, tmp_path: Path, require) -> None:
    """A deselected property (a schema one, a file's own column) is simply not a column;
    the window column deselected still places the rows in windows."""
    require.module("pyarrow", "the parquet extra: run `make install`")
    outputs, logs = both_ways(sandbox, tmp_path, ["total_tax", "gift_message", "created_at"])
    assert "read as typed columns" in logs["columns"]
    orders = [row for rows in outputs["columns"]["rows"]["orders"] for row in rows]
    assert orders and not {"total_tax", "gift_message"} & set(orders[0])
    assert outputs["columns"] == outputs["rows"]


#: The sandbox's settings for facts Next Commerce does not publish, each value not the
#: default at least once (the defaults are the spec above): which header style, which key
#: header, whether ``date_to`` is inclusive, naive timestamps in a store zone that is not
#: UTC (with and without ``GET /store/``, then the ``file_timezone`` setting gives it).
UNPUBLISHED = {
    "title-order_number-inclusive": (
        {"header_style": "title", "order_key_header": "order_number", "date_to_inclusive": True},
        {},
    ),
    "naive-kathmandu-exclusive": (
        {"naive_timestamps": True, "store_timezone": "Asia/Kathmandu", "date_to_inclusive": False},
        {},
    ),
    "naive-new_york-file_timezone": (
        {"naive_timestamps": True, "store_timezone": "America/New_York", "store_read": False},
        {"file_timezone": "America/New_York"},
    ),
}


@pytest.mark.parametrize(("facts", "settings"), list(UNPUBLISHED.values()), ids=list(UNPUBLISHED))
def test_whatever_the_unpublished_facts_columns_and_rows_give_the_same_parquet(
    sandbox, tmp_path: Path, require, facts: dict[str, Any], settings: dict[str, Any]
) -> None:
    require.module("pyarrow", "the parquet extra: run `make install`")
    sandbox.control(**facts)
    outputs, logs = both_ways(sandbox, tmp_path, window_days=1, **settings)
    assert "read as typed columns" in logs["columns"]
    assert outputs["columns"]["rows"]["orders"], "the orders export had rows"
    assert outputs["columns"] == outputs["rows"]
