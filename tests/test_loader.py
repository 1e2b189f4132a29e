"""The DuckDB loader (``loader/``, target-duckdb-exports), specified through its messages.

Each spec feeds Singer lines to the loader, in process (``listen``) or as its console
script, and reads the DuckDB file it wrote: what a pipeline sees, nothing stubbed.
"""

from __future__ import annotations

import ast
import functools
import gzip
import io
import json
import logging
import re
import subprocess
import sys
from collections.abc import Iterable
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from target_duckdb_exports.columns import columns_of, duckdb_type
from target_duckdb_exports.target import SETTINGS, TargetDuckDBExports
from target_duckdb_exports.warehouse import SourceFile, Table, Warehouse

REPO = Path(__file__).resolve().parents[1]
KEY = ["_account", "number"]
SCHEMA = {
    "type": "object",
    "properties": {
        "_account": {"type": "string"},
        "number": {"type": "string"},
        "total": {"type": ["number", "null"]},
        "created_at": {"type": ["string", "null"], "format": "date-time"},
        "items": {"type": ["integer", "null"]},
    },
}


def schema(properties: dict[str, Any] | None = None, keys: list[str] = KEY) -> str:
    body = dict(SCHEMA, properties={**SCHEMA["properties"], **(properties or {})})
    return json.dumps({"type": "SCHEMA", "stream": "orders", "schema": body, "key_properties": keys})


def record(number: str, **values: Any) -> str:
    return json.dumps(
        {"type": "RECORD", "stream": "orders", "record": {"_account": "a", "number": number, **values}}
    )


def raw_record(number: str, fields: str) -> str:
    """A RECORD line with number text written as given (exact decimals)."""
    return (
        '{"type":"RECORD","stream":"orders","record":{"_account":"a","number":"'
        + number
        + '",'
        + fields
        + "}}"
    )


def state(n: int) -> str:
    return json.dumps({"type": "STATE", "value": {"bookmarks": {"orders": n}}})


def batch(files: Iterable[Path], fmt: str = "jsonl", compression: str = "gzip") -> str:
    return json.dumps(
        {
            "type": "BATCH",
            "stream": "orders",
            "encoding": {"format": fmt, "compression": compression},
            "manifest": [f.as_uri() for f in files],
        }
    )


def load(tmp_path: Path, lines: Iterable[str], capsys: pytest.CaptureFixture[str]) -> list[Any]:
    """Run the loader in process on ``lines``; the STATE values it confirmed."""
    target = TargetDuckDBExports(config={"path": str(tmp_path / "w.duckdb"), "default_target_schema": "shop"})
    try:
        target.listen(file_input=io.StringIO("\n".join(lines) + "\n"))
    finally:
        if target._warehouse is not None:  # a failed run leaves it open; close it for reading
            target._warehouse.close()
    return confirmed(capsys)


def confirmed(capsys: pytest.CaptureFixture[str]) -> list[Any]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def rows(tmp_path: Path, sql: str = "SELECT * FROM shop.orders ORDER BY number") -> list[dict[str, Any]]:
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
    finally:
        con.close()


def gz_lines(path: Path, records: list[dict[str, Any]]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
    return path


# ------------------------------------------------------------------ types


def test_each_json_type_becomes_the_duckdb_type_that_holds_it_exactly():
    assert duckdb_type({"type": ["number", "null"]}, 9) == "DECIMAL(38,9)"
    assert duckdb_type({"type": "number", "multipleOf": 0.01}, 9) == "DECIMAL(38,2)"
    assert duckdb_type({"type": "number", "multipleOf": 0.05}, 9) == "DECIMAL(38,9)"
    assert duckdb_type({"type": ["string", "null"], "format": "date-time"}, 9) == "TIMESTAMP WITH TIME ZONE"
    assert duckdb_type({"type": "string", "format": "date"}, 9) == "DATE"
    assert duckdb_type({"type": ["integer", "null"]}, 9) == "BIGINT"
    assert duckdb_type({"type": "boolean"}, 9) == "BOOLEAN"
    assert duckdb_type({"anyOf": [{"type": "null"}, {"type": "string"}]}, 9) == "VARCHAR"
    assert duckdb_type({"type": ["object", "null"]}, 9) == "JSON"
    assert duckdb_type({"type": ["string", "integer"]}, 9) == "JSON"
    assert duckdb_type({}, 9) == "JSON"
    assert [c.name for c in columns_of(SCHEMA, 9)] == list(SCHEMA["properties"])


def test_money_stays_exact_and_date_times_are_the_same_instants_whatever_their_offset(tmp_path, capsys):
    load(
        tmp_path,
        [
            schema(),
            raw_record("1", '"total":98765432109876543.123456789,"created_at":"2025-01-03T11:26:05+05:30"'),
            raw_record("2", '"total":0.10,"created_at":"2025-01-03T05:56:05Z"'),
            state(1),
        ],
        capsys,
    )
    got = rows(tmp_path)
    assert [r["total"] for r in got] == [Decimal("98765432109876543.123456789"), Decimal("0.1")]
    instant = datetime(2025, 1, 3, 5, 56, 5, tzinfo=timezone.utc)
    assert [r["created_at"] for r in got] == [instant, instant]


# ------------------------------------------------------------------ upserts and state


def test_the_last_row_of_a_key_wins_within_a_drain_and_across_drains(tmp_path, capsys):
    load(
        tmp_path,
        [schema(), record("1", items=1), record("1", items=2), state(1), record("1", items=3), state(2)],
        capsys,
    )
    assert [(r["number"], r["items"]) for r in rows(tmp_path)] == [("1", 3)]


def test_each_way_of_merging_a_drain_keeps_the_last_row_of_every_key(tmp_path, capsys):
    # keys once into an empty table (plain insert), keys once into rows (upsert alone),
    # a key twice into rows (the last copy, then the upsert)
    load(
        tmp_path,
        [
            schema(),
            record("1", items=1),
            record("2", items=2),
            state(1),
            record("2", items=20),
            record("3", items=30),
            state(2),
            record("3", items=300),
            record("4", items=4),
            record("3", items=301),
            state(3),
        ],
        capsys,
    )
    assert [(r["number"], r["items"]) for r in rows(tmp_path)] == [("1", 1), ("2", 20), ("3", 301), ("4", 4)]


def test_a_table_without_a_primary_key_gets_the_last_row_of_each_key_by_delete_and_insert(tmp_path, capsys):
    # a table another loader made, without a primary key: no ON CONFLICT is possible
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE SCHEMA shop")
    con.execute(
        "CREATE TABLE shop.orders (_account VARCHAR, number VARCHAR, total DECIMAL(38,9), "
        "created_at TIMESTAMPTZ, items BIGINT)"
    )
    con.execute("INSERT INTO shop.orders VALUES ('a', '1', NULL, NULL, 1), ('a', '2', NULL, NULL, 2)")
    con.close()
    load(
        tmp_path,
        [schema(), record("2", items=20), state(1), record("1", items=10), record("1", items=11), state(2)],
        capsys,
    )
    assert [(r["number"], r["items"]) for r in rows(tmp_path)] == [("1", 11), ("2", 20)]


def test_a_stream_without_key_properties_appends_every_row(tmp_path, capsys):
    load(tmp_path, [schema(keys=[]), record("1", items=1), record("1", items=2), state(1)], capsys)
    assert [(r["number"], r["items"]) for r in rows(tmp_path, "SELECT * FROM shop.orders")] == [
        ("1", 1),
        ("1", 2),
    ]


def test_compact_record_lines_go_to_duckdb_undecoded_and_keep_their_order_with_the_others(tmp_path, capsys):
    # compact lines (the tap's) are buffered as they came; spaced ones are decoded first
    load(
        tmp_path,
        [
            schema(),
            raw_record("1", '"items":1,"total":0.10'),
            record("1", items=2),  # decoded, later: wins
            record("2", items=3),
            raw_record("2", '"items":4,"total":12345678901234567.000000001'),  # later: wins
            state(1),
        ],
        capsys,
    )
    got = [(r["number"], r["items"], r["total"]) for r in rows(tmp_path)]
    assert got == [("1", 2, None), ("2", 4, Decimal("12345678901234567.000000001"))]


def test_a_compact_record_line_without_a_key_property_is_refused_like_any_other(tmp_path, capsys):
    from singer_sdk.exceptions import MissingKeyPropertiesError

    line = '{"type":"RECORD","stream":"orders","record":{"_account":"a","items":1}}'
    with pytest.raises(MissingKeyPropertiesError):
        load(tmp_path, [schema(), line, state(1)], capsys)


def test_a_state_is_confirmed_only_after_the_rows_before_it_are_committed(tmp_path, capsys):
    with pytest.raises(duckdb.Error):
        load(
            tmp_path,
            [schema(), record("1", items=1), state(1), record("2", items="not a number"), state(2)],
            capsys,
        )
    assert confirmed(capsys) == [{"bookmarks": {"orders": 1}}]
    assert [r["number"] for r in rows(tmp_path)] == ["1"]


def test_a_state_after_no_new_rows_is_confirmed_at_once(tmp_path, capsys):
    # in-flight exports the tap records before any row must reach the pipeline's state
    assert load(tmp_path, [schema(), state(1), state(2)], capsys) == [
        {"bookmarks": {"orders": 1}},
        {"bookmarks": {"orders": 2}},
    ]


def test_a_schema_that_adds_a_property_adds_its_column_and_earlier_rows_keep_null(tmp_path, capsys):
    load(
        tmp_path,
        [
            schema(),
            record("1", items=1),
            state(1),
            schema({"note": {"type": ["string", "null"]}}),
            record("2", items=2, note="n"),
            state(2),
        ],
        capsys,
    )
    assert [(r["number"], r["note"]) for r in rows(tmp_path)] == [("1", None), ("2", "n")]


def test_a_table_whose_key_differs_from_the_streams_key_is_refused_in_one_line(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"path": str(tmp_path / "w.duckdb"), "default_target_schema": "shop"}))
    first = "\n".join([schema(), record("1"), state(1)]) + "\n"
    cli = [sys.executable, "-m", "target_duckdb_exports", "--config", str(config)]
    assert subprocess.run(cli, input=first, text=True, capture_output=True).returncode == 0
    second = "\n".join([schema(keys=["number"]), record("2"), state(2)]) + "\n"
    run = subprocess.run(cli, input=second, text=True, capture_output=True)
    errors = [line for line in run.stderr.splitlines() if "error:" in line]
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert len(errors) == 1 and "key" in errors[0] and "default_target_schema" in errors[0]


# ------------------------------------------------------------------ BATCH files


def test_batch_files_in_jsonl_gz_and_parquet_are_read_by_duckdb_in_the_order_they_came(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    first = gz_lines(tmp_path / "a.jsonl.gz", [{"_account": "a", "number": "1", "items": 1, "total": 1.5}])
    second = tmp_path / "b.parquet"
    table = pa.table({"_account": ["a", "a"], "number": ["1", "2"], "items": [7, 8]})
    pq.write_table(table, second)
    load(
        tmp_path,
        [schema(), batch([first]), record("3", items=3), batch([second], "parquet", "none"), state(1)],
        capsys,
    )
    assert [(r["number"], r["items"], r["total"]) for r in rows(tmp_path)] == [
        ("1", 7, None),  # the Parquet file came after the jsonl.gz one: its row wins
        ("2", 8, None),
        ("3", 3, None),
    ]


def test_a_batch_file_duckdb_refuses_as_it_is_staged_commits_nothing_and_confirms_no_state(tmp_path, capsys):
    # staged when announced, before the drain: the refusal still ends the run uncommitted
    bad = gz_lines(tmp_path / "bad.jsonl.gz", [{"_account": "a", "number": "1", "items": "not a number"}])
    good = gz_lines(tmp_path / "good.jsonl.gz", [{"_account": "a", "number": "2", "items": 2}])
    with pytest.raises(duckdb.Error):
        load(tmp_path, [schema(), batch([bad]), batch([good]), state(1)], capsys)
    assert confirmed(capsys) == []
    assert rows(tmp_path) == []


def run_loader(tmp_path: Path, lines: list[str]) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """The loader as a process on ``lines`` (schema ``shop`` of ``tmp_path/w.duckdb``): the
    finished run, and its lines that say ``error:``."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"path": str(tmp_path / "w.duckdb"), "default_target_schema": "shop"}))
    run = subprocess.run(
        [sys.executable, "-m", "target_duckdb_exports", "--config", str(config)],
        input="\n".join(lines) + "\n",
        text=True,
        capture_output=True,
    )
    return run, [line for line in run.stderr.splitlines() if "error:" in line]


def test_a_batch_file_that_is_gone_ends_the_loader_with_one_line_and_commits_nothing(tmp_path):
    lines = [schema(), record("1"), batch([tmp_path / "gone.jsonl.gz"]), state(1)]
    run, errors = run_loader(tmp_path, lines)
    assert run.returncode == 2 and "Traceback" not in run.stderr and run.stdout == ""
    assert len(errors) == 1 and "gone.jsonl.gz" in errors[0] and "does not exist" in errors[0]
    assert rows(tmp_path) == []


# ------------------------------------------------------------------ direct loads and their fallback


def stream_schema(stream: str, keys: list[str] = KEY) -> str:
    return json.dumps({"type": "SCHEMA", "stream": stream, "schema": SCHEMA, "key_properties": keys})


def stream_batch(stream: str, path: Path) -> str:
    return json.dumps(
        {
            "type": "BATCH",
            "stream": stream,
            "encoding": {"format": "jsonl", "compression": "gzip"},
            "manifest": [path.as_uri()],
        }
    )


def order_rows(*pairs: tuple[str, int]) -> list[dict[str, Any]]:
    return [{"_account": "a", "number": number, "items": items} for number, items in pairs]


def order_file(folder: Path, name: str, *pairs: tuple[str, int]) -> Path:
    """A gzip'd JSON Lines batch file ``name`` of order rows, (number, items) each."""
    return gz_lines(folder / f"{name}.jsonl.gz", order_rows(*pairs))


def warehouse(tmp_path: Path, **settings: Any) -> Warehouse:
    return Warehouse(str(tmp_path / "w.duckdb"), logging.getLogger("spec"), **settings)


def orders_table(w: Warehouse, keys: list[str] = KEY) -> Table:
    return w.table("shop", "orders", columns_of(SCHEMA, 9), keys)


def jsonl(path: Path, rows: list[dict[str, Any]]) -> SourceFile:
    return SourceFile(gz_lines(path, rows), "jsonl", "gzip")


def stages(w: Warehouse) -> list[str]:
    return [
        str(r[0]) for r in w.con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
    ]


def test_a_first_drain_goes_straight_into_the_empty_table_with_no_stage(tmp_path):
    w = warehouse(tmp_path)
    table, stage = orders_table(w), w.new_stage()
    w.add(table, stage, jsonl(tmp_path / "1.jsonl.gz", order_rows(("1", 1), ("2", 2))))
    w.add(table, stage, jsonl(tmp_path / "2.jsonl.gz", order_rows(("3", 3))))
    # the rows are in the table as the files arrive (uncommitted), and nothing is staged
    assert w.con.execute("SELECT count(*) FROM shop.orders").fetchone() == (3,)
    assert stages(w) == [] and w.direct(table)
    assert w.load(table, stage) == 3
    w.close()
    assert [(r["number"], r["items"]) for r in rows(tmp_path)] == [("1", 1), ("2", 2), ("3", 3)]


def test_a_key_repeated_within_a_drain_falls_back_to_the_stage_and_the_last_row_wins(tmp_path):
    w = warehouse(tmp_path)
    table, stage = orders_table(w), w.new_stage()
    w.add(table, stage, jsonl(tmp_path / "1.jsonl.gz", order_rows(("1", 1), ("2", 2))))
    w.add(table, stage, jsonl(tmp_path / "2.jsonl.gz", order_rows(("2", 20), ("3", 3), ("2", 21))))
    assert stages(w) == []  # nothing refuses the repeat: both files went in directly
    # the check before the commit finds key 2 three times: rollback, both files replayed
    # into the stage, merged (the last row of each key), committed
    assert w.load(table, stage) == 5
    assert not w.direct(table)  # for the rest of the run
    w.add(table, stage, jsonl(tmp_path / "3.jsonl.gz", order_rows(("3", 30))))
    assert stages(w) == [stage]  # no second failed attempt: staged at once
    assert w.load(table, stage) == 1
    w.close()
    assert [(r["number"], r["items"]) for r in rows(tmp_path)] == [("1", 1), ("2", 21), ("3", 30)]


def test_a_new_table_has_no_primary_key_but_not_null_keys_and_the_key_in_its_comment(tmp_path):
    w = warehouse(tmp_path)
    orders_table(w)
    w.close()
    constraints = rows(
        tmp_path,
        "SELECT constraint_type AS kind, constraint_column_names AS names FROM duckdb_constraints() "
        "WHERE table_name = 'orders' ORDER BY ALL",
    )
    assert constraints == [
        {"kind": "NOT NULL", "names": ["_account"]},
        {"kind": "NOT NULL", "names": ["number"]},
    ]
    comment = rows(tmp_path, "SELECT comment FROM duckdb_tables() WHERE table_name = 'orders'")
    assert comment == [{"comment": "key: _account, number (upserted by target-duckdb-exports)"}]


def test_an_incremental_drain_into_a_table_with_rows_is_staged_and_upserts(tmp_path):
    w = warehouse(tmp_path)
    table, stage = orders_table(w), w.new_stage()
    w.add(table, stage, jsonl(tmp_path / "1.jsonl.gz", order_rows(("1", 1), ("2", 2))))
    assert stages(w) == []  # empty when the transaction began: directly
    w.load(table, stage)
    w.add(table, stage, jsonl(tmp_path / "2.jsonl.gz", order_rows(("3", 3), ("2", 20))))
    assert stages(w) == [stage]  # rows in the table: staged, and merged by key
    assert w.load(table, stage) == 2
    w.close()
    assert [(r["number"], r["items"]) for r in rows(tmp_path)] == [("1", 1), ("2", 20), ("3", 3)]


def test_a_key_already_in_the_table_is_updated_and_each_state_confirmed_after_its_commit(tmp_path, capsys):
    first = gz_lines(tmp_path / "1.jsonl.gz", order_rows(("1", 1), ("2", 2)))
    second = gz_lines(tmp_path / "2.jsonl.gz", order_rows(("3", 3), ("2", 20)))
    states = load(tmp_path, [schema(), batch([first]), state(1), batch([second]), state(2)], capsys)
    assert states == [{"bookmarks": {"orders": 1}}, {"bookmarks": {"orders": 2}}]
    assert [(r["number"], r["items"]) for r in rows(tmp_path)] == [("1", 1), ("2", 20), ("3", 3)]


def test_a_drain_of_one_sink_never_commits_another_tables_unchecked_repeat(tmp_path):
    # orders repeats a key directly (nothing refuses it); refunds drains first: its commit
    # would carry orders' rows, so the check before it rolls back, replays orders into its
    # stage, and commits refunds alone; orders' own drain merges its stage
    w = warehouse(tmp_path)
    orders, refunds = orders_table(w), w.table("shop", "refunds", columns_of(SCHEMA, 9), KEY)
    o_stage, r_stage = w.new_stage(), w.new_stage()
    w.add(orders, o_stage, jsonl(tmp_path / "o1.jsonl.gz", order_rows(("1", 1), ("2", 2))))
    w.add(refunds, r_stage, jsonl(tmp_path / "r1.jsonl.gz", order_rows(("1", 10))))
    w.add(orders, o_stage, jsonl(tmp_path / "o2.jsonl.gz", order_rows(("2", 20))))
    assert stages(w) == []
    assert w.load(refunds, r_stage) == 1
    assert not w.direct(orders)  # for the rest of the run
    assert stages(w) == [o_stage]  # orders' two files, replayed into it
    assert w.con.execute("SELECT count(*) FROM shop.orders").fetchone() == (0,)
    assert w.load(orders, o_stage) == 3
    w.close()
    assert [(r["number"], r["items"]) for r in rows(tmp_path)] == [("1", 1), ("2", 20)]
    assert [(r["number"], r["items"]) for r in rows(tmp_path, "SELECT * FROM shop.refunds")] == [("1", 10)]


def test_the_other_sinks_drain_first_and_every_table_ends_right(tmp_path, capsys):
    # the same through the loader: refunds' sink comes first, so it drains first
    f = functools.partial(order_file, tmp_path)

    lines = [
        stream_schema("refunds"),
        stream_schema("orders"),
        stream_batch("orders", f("o1", ("1", 1), ("2", 2))),
        stream_batch("refunds", f("r1", ("1", 10), ("2", 11))),
        stream_batch("orders", f("o2", ("2", 20), ("3", 3))),
        state(1),
        stream_batch("orders", f("o3", ("3", 30))),
        state(2),
    ]
    assert load(tmp_path, lines, capsys) == [{"bookmarks": {"orders": 1}}, {"bookmarks": {"orders": 2}}]
    assert [(r["number"], r["items"]) for r in rows(tmp_path)] == [("1", 1), ("2", 20), ("3", 30)]
    assert [(r["number"], r["items"]) for r in rows(tmp_path, "SELECT * FROM shop.refunds ORDER BY ALL")] == [
        ("1", 10),
        ("2", 11),
    ]


@pytest.mark.parametrize("drain", ["first (direct)", "later (staged)"])
def test_a_row_without_its_key_ends_the_run_in_one_line_and_commits_nothing_of_its_drain(tmp_path, drain):
    before = [record("1", items=1), state(1)] if drain.startswith("later") else []
    null_key = '{"type":"RECORD","stream":"orders","record":{"_account":"a","number":null,"items":2}}'
    run, errors = run_loader(tmp_path, [schema(), *before, record("2", items=2), null_key, state(2)])
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert len(errors) == 1 and "no value for a key property" in errors[0] and "number" in errors[0]
    assert [r["number"] for r in rows(tmp_path)] == (["1"] if before else [])
    assert run.stdout.count("bookmarks") == (1 if before else 0)


def made_elsewhere(tmp_path: Path, constraint: str = "") -> None:
    """``shop.orders`` as another loader or an earlier build made it, with the row ('a', '1')."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE SCHEMA shop")
    con.execute(
        "CREATE TABLE shop.orders (_account VARCHAR, number VARCHAR, total DECIMAL(38,9), "
        f"created_at TIMESTAMPTZ, items BIGINT{constraint})"
    )
    con.execute("INSERT INTO shop.orders VALUES ('a', '1', NULL, NULL, 1)")
    con.close()


def test_a_table_an_earlier_build_made_with_a_primary_key_loads_directly_and_falls_back(tmp_path):
    made_elsewhere(tmp_path, ", PRIMARY KEY (_account, number)")
    w = warehouse(tmp_path)
    table, stage = orders_table(w), w.new_stage()
    assert table.upsert and w.direct(table)
    w.add(table, stage, jsonl(tmp_path / "1.jsonl.gz", order_rows(("2", 2))))
    assert stages(w) == []  # rows in the table, yet directly: the primary key refuses a repeat
    w.load(table, stage)
    w.add(table, stage, jsonl(tmp_path / "2.jsonl.gz", order_rows(("3", 3))))
    w.add(table, stage, jsonl(tmp_path / "3.jsonl.gz", order_rows(("1", 10), ("3", 30))))  # refused
    assert not w.direct(table) and stages(w) == [stage]
    assert w.load(table, stage) == 3
    w.close()
    assert [(r["number"], r["items"]) for r in rows(tmp_path)] == [("1", 10), ("2", 2), ("3", 30)]
    kinds = rows(
        tmp_path, "SELECT constraint_type AS k FROM duckdb_constraints() WHERE table_name = 'orders'"
    )
    assert {"k": "PRIMARY KEY"} in kinds


def test_two_streams_in_one_transaction_where_one_repeats_a_key_end_exactly_right(tmp_path, capsys):
    # orders repeats a key after refunds (direct) and events (no keys: appended) went in:
    # the rollback takes all three; the replay puts each file back exactly once
    f = functools.partial(order_file, tmp_path)

    lines = [
        stream_schema("orders"),
        stream_schema("refunds"),
        stream_schema("events", keys=[]),
        stream_batch("orders", f("o1", ("1", 1), ("2", 2))),
        stream_batch("refunds", f("r1", ("1", 10))),
        stream_batch("events", f("e1", ("1", 100), ("1", 101))),
        stream_batch("orders", f("o2", ("2", 20))),  # the repeat
        stream_batch("refunds", f("r2", ("2", 11))),
        stream_batch("events", f("e2", ("2", 102))),
        state(1),
    ]
    assert load(tmp_path, lines, capsys) == [{"bookmarks": {"orders": 1}}]

    def pairs(table: str) -> list[tuple[str, int]]:
        return [(r["number"], r["items"]) for r in rows(tmp_path, f"SELECT * FROM shop.{table} ORDER BY ALL")]

    assert pairs("orders") == [("1", 1), ("2", 20)]
    assert pairs("refunds") == [("1", 10), ("2", 11)]
    assert pairs("events") == [("1", 100), ("1", 101), ("2", 102)]


def test_record_buffers_are_kept_until_their_commit_and_replayed_after_a_repeated_key(tmp_path, capsys):
    buffers = tmp_path / "buffers"
    buffers.mkdir()
    repeat = gz_lines(tmp_path / "b.jsonl.gz", order_rows(("1", 10), ("3", 30)))
    target = TargetDuckDBExports(
        config={"path": str(tmp_path / "w.duckdb"), "default_target_schema": "shop", "temp_dir": str(buffers)}
    )
    lines = [
        schema(),
        record("1", items=1),
        raw_record("2", '"items":2'),
        batch([repeat]),  # closes the buffer (straight into the table), then repeats key 1
        record("4", items=4),
        state(1),
    ]
    target.listen(file_input=io.StringIO("\n".join(lines) + "\n"))
    assert confirmed(capsys) == [{"bookmarks": {"orders": 1}}]
    assert [(r["number"], r["items"]) for r in rows(tmp_path)] == [("1", 10), ("2", 2), ("3", 30), ("4", 4)]
    assert list(buffers.iterdir()) == []  # removed once committed


def test_a_run_that_fails_removes_the_buffer_files_it_kept_for_a_replay(tmp_path, capsys):
    buffers = tmp_path / "buffers"
    buffers.mkdir()
    bad = gz_lines(tmp_path / "bad.jsonl.gz", [{"_account": "a", "number": "2", "items": "not a number"}])
    target = TargetDuckDBExports(
        config={"path": str(tmp_path / "w.duckdb"), "default_target_schema": "shop", "temp_dir": str(buffers)}
    )
    lines = [schema(), record("1", items=1), batch([bad]), state(1)]
    with pytest.raises(duckdb.Error):
        target.listen(file_input=io.StringIO("\n".join(lines) + "\n"))
    assert list(buffers.iterdir()) == []
    assert target._warehouse is not None
    target._warehouse.close()
    assert confirmed(capsys) == [] and rows(tmp_path) == []


def test_a_buffer_file_stays_until_the_commit_that_covers_its_rows(tmp_path):
    w = warehouse(tmp_path)
    table, stage = orders_table(w), w.new_stage()
    buffer = tmp_path / "buffer.jsonl"
    buffer.write_text(json.dumps({"_account": "a", "number": "1", "items": 1}) + "\n")
    w.add(table, stage, SourceFile(buffer, "jsonl", temporary=True))
    assert buffer.exists()  # a rollback may still need it
    w.load(table, stage)
    assert not buffer.exists()
    w.close()


def test_a_table_change_inside_the_open_transaction_is_replayed_before_its_rows(tmp_path, capsys):
    # the SCHEMA that adds "note" comes after a file opened the transaction: the rollback
    # after the repeated key undoes its column, and the replay adds it again before the rows
    extended = schema({"note": {"type": ["string", "null"]}})
    second = gz_lines(tmp_path / "second.jsonl.gz", order_rows(("2", 2)))
    again = gz_lines(tmp_path / "again.jsonl.gz", [{"_account": "a", "number": "1", "items": 2, "note": "n"}])
    lines = [schema(), record("1", items=1), state(1), batch([second]), extended, batch([again]), state(2)]
    assert load(tmp_path, lines, capsys) == [{"bookmarks": {"orders": 1}}, {"bookmarks": {"orders": 2}}]
    assert [(r["number"], r["items"], r["note"]) for r in rows(tmp_path)] == [("1", 2, "n"), ("2", 2, None)]


def test_a_table_another_loader_made_with_rows_and_no_key_constraint_is_staged(tmp_path):
    made_elsewhere(tmp_path)
    w = warehouse(tmp_path)
    table, stage = orders_table(w), w.new_stage()
    assert not table.upsert and not w.direct(table)
    w.add(table, stage, jsonl(tmp_path / "1.jsonl.gz", order_rows(("1", 10), ("2", 2))))
    assert stages(w) == [stage]
    w.load(table, stage)
    w.close()
    assert [(r["number"], r["items"]) for r in rows(tmp_path)] == [("1", 10), ("2", 2)]


def test_row_groups_are_the_size_the_setting_says_and_any_duckdb_opens_the_file(tmp_path, capsys):
    many = order_rows(*((str(n), n) for n in range(5000)))
    target = TargetDuckDBExports(
        config={"path": str(tmp_path / "w.duckdb"), "default_target_schema": "shop", "row_group_size": 2048}
    )
    lines = [schema(), batch([gz_lines(tmp_path / "many.jsonl.gz", many)]), state(1)]
    target.listen(file_input=io.StringIO("\n".join(lines) + "\n"))
    largest = "SELECT max(count) AS n FROM pragma_storage_info('shop.orders')"
    assert rows(tmp_path, largest) == [{"n": 2048}]
    # a plain connection (DuckDB's own row group size, as any other program) reads and adds
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("INSERT INTO shop.orders (_account, number, items) VALUES ('a', 'x', 1)")
    con.close()
    assert rows(tmp_path, "SELECT count(*) AS n, sum(items) AS s FROM shop.orders") == [
        {"n": 5001, "s": sum(range(5000)) + 1}
    ]
    assert SETTINGS["properties"]["row_group_size"]["default"] == 16384


def test_a_row_group_size_duckdb_cannot_use_is_refused_in_one_line(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"path": str(tmp_path / "w.duckdb"), "row_group_size": 1000}))
    run = subprocess.run(
        [sys.executable, "-m", "target_duckdb_exports", "--config", str(config)],
        input="\n".join([schema(), record("1"), state(1)]) + "\n",
        text=True,
        capture_output=True,
    )
    errors = [line for line in run.stderr.splitlines() if "error:" in line]
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert len(errors) == 1 and "row_group_size" in errors[0] and "2048" in errors[0]


def test_an_in_memory_database_loads_like_a_file(capsys):
    target = TargetDuckDBExports(config={"path": ":memory:", "default_target_schema": "shop"})
    target.listen(
        file_input=io.StringIO("\n".join([schema(), record("1"), record("1", items=2), state(1)]) + "\n")
    )
    assert confirmed(capsys) == [{"bookmarks": {"orders": 1}}]


# ------------------------------------------------------------------ the distribution


def test_the_readme_lists_every_setting_of_the_loader():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## The DuckDB loader (target-duckdb-exports)\n", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE))
    own = set(SETTINGS["properties"])
    assert sorted(own - listed) == []


def test_the_loader_and_the_tap_import_nothing_of_each_other():
    def imports(package: Path) -> set[str]:
        names: set[str] = set()
        for path in package.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names.add(node.module.split(".")[0])
        return names

    assert "tap_commerce_exports" not in imports(REPO / "loader" / "target_duckdb_exports")
    assert "target_duckdb_exports" not in imports(REPO / "tap_commerce_exports")
