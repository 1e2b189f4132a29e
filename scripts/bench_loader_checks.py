"""What ``scripts/bench_loader.py`` checks and compares its pipelines with.

Fingerprints of loaded tables (rows, distinct keys, a hash of every row in key order),
and the references a pipeline is put next to: a bare ``csv.reader`` + msgspec loop over
the export's CSV, DuckDB's own bulk load of each path's input (the same files, the same
column types), psql's ``\\copy`` of the export's CSV into text columns, and a loader
alone on the tap's captured output (what the loader costs without the tap beside it).
"""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FLOOR = r"""
import csv, sys, msgspec
encode_into = msgspec.json.Encoder().encode_into
prefix = b'{"type":"RECORD","stream":"orders","record":'
with open(sys.argv[1], newline="", encoding="utf-8") as f, open(sys.argv[2], "wb") as out:
    rows = csv.reader(f)
    header = next(rows)
    buf = bytearray()
    for row in rows:
        buf += prefix
        encode_into(dict(zip(header, row)), buf, -1)
        buf += b"}\n"
        if len(buf) > 65536:
            out.write(buf)
            buf.clear()
    out.write(buf)
"""


def bare_floor_seconds(csv_path: Path, work: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of a fresh process turning the CSV on disk into RECORD lines in
    a file: ``csv.reader`` and msgspec, no typing, no download (the least the tap could cost)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", FLOOR, str(csv_path), str(work / "floor-out.jsonl")], check=True)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def duckdb_fingerprint(path: Path, schema: str, table: str, keys: Sequence[str]) -> tuple[int, int, str]:
    import duckdb

    order = ", ".join(f'"{k}"' for k in keys)
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        row = con.execute(
            f"SELECT count(*), count(DISTINCT ({order})), "
            f"md5(coalesce(string_agg(t::VARCHAR, chr(10) ORDER BY {order}), '')) "
            f'FROM "{schema}"."{table}" t'
        ).fetchone()
    finally:
        con.close()
    assert row is not None
    return int(row[0]), int(row[1]), str(row[2])


def postgres_fingerprint(server: Any, schema: str, table: str, key: str) -> tuple[int, int, str]:
    """Numbers compared as numbers: target-postgres's COPY path writes ``6.2`` where its
    INSERT path keeps the ``6.20`` the tap sent (the same value in a ``numeric`` column)."""
    columns = server.query(
        "SELECT column_name, data_type FROM information_schema.columns "
        f"WHERE table_schema = '{schema}' AND table_name = '{table}' ORDER BY ordinal_position"
    )
    values = ", ".join(
        f"coalesce(trim_scale(t.\"{name}\")::text, 'NULL')"
        if kind == "numeric"
        else f"coalesce(t.\"{name}\"::text, 'NULL')"
        for name, kind in columns
    )
    (row,) = server.query(
        f'SELECT count(*), count(DISTINCT t."{key}"), '
        f"md5(coalesce(string_agg(concat_ws('|', {values}), E'\\n' ORDER BY t.\"{key}\"), '')) "
        f'FROM "{schema}"."{table}" t'
    )
    return int(row[0]), int(row[1]), str(row[2])


def duckdb_bulk_load(
    inputs: Sequence[Path], fmt: str, schema: dict[str, Any], rows: int
) -> tuple[float, float]:
    """(wall, CPU) seconds of DuckDB's own bulk load of a path's input: ``CREATE TABLE AS``
    from ``read_parquet`` / ``read_json`` into a fresh database file, every column typed as
    the loader types it (no primary key, no Python around it). ``fmt``: ``parquet``,
    ``jsonl`` (the BATCH files) or ``record`` (the tap's RECORD lines in one file)."""
    import resource
    import tempfile

    import duckdb

    from target_duckdb_exports.columns import columns_of, json_columns_argument, literal

    if not inputs:
        raise RuntimeError(f"no {fmt} input to load")
    columns = columns_of(schema, 9)
    listed = "[" + ", ".join(literal(str(f)) for f in inputs) + "]"
    if fmt == "parquet":
        select = f"SELECT * FROM read_parquet({listed})"
    elif fmt == "jsonl":
        select = (
            f"SELECT * FROM read_json({listed}, format = 'newline_delimited', "
            f"columns = {json_columns_argument(columns)})"
        )
    else:
        struct = literal("STRUCT(" + ", ".join(f"{c.quoted} {c.type}" for c in columns) + ")")
        select = (
            f"SELECT record.* FROM read_json({listed}, format = 'newline_delimited', "
            f"columns = {{'type': 'VARCHAR', 'record': {struct}}}) WHERE type = 'RECORD'"
        )
    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect(str(Path(tmp) / "reference.duckdb"))
        try:
            con.execute("SET TimeZone = 'UTC'")
            before = resource.getrusage(resource.RUSAGE_SELF)
            started = time.monotonic()
            con.execute(f"CREATE TABLE orders AS {select}")
            wall = time.monotonic() - started
            after = resource.getrusage(resource.RUSAGE_SELF)
            row = con.execute("SELECT count(*) FROM orders").fetchone()
        finally:
            con.close()
    if row is None or row[0] != rows:
        raise RuntimeError(f"DuckDB's bulk load of {fmt} loaded {row and row[0]} rows, expected {rows}")
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def replay_seconds(
    command: Sequence[str], config: dict[str, Any], messages: Path | None, work: Path
) -> tuple[float, float]:
    """(wall, CPU) seconds of a loader process alone, fed a captured tap output (``None``:
    no input at all, which is its start-up and exit)."""
    import json
    import resource

    work.mkdir(parents=True, exist_ok=True)
    config_path = work / "config.json"
    config_path.write_text(json.dumps(config))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    with (
        open(messages or "/dev/null", "rb") as stdin,
        open(work / "out.jsonl", "wb") as out,
        open(work / "log", "wb") as log,
    ):
        done = subprocess.run([*command, "--config", str(config_path)], stdin=stdin, stdout=out, stderr=log)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{command[-1]} alone on {messages}: exit {done.returncode} (log in {work})")
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def postgres_copy_seconds(server: Any, csv_path: Path) -> float:
    """psql's ``\\copy`` of the export's CSV into a table of text columns."""
    with open(csv_path, newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    columns = ", ".join(f'"c{i}" text' for i in range(len(header)))
    server.query("CREATE SCHEMA IF NOT EXISTS bench_copy")
    server.query(f"CREATE TABLE bench_copy.orders ({columns})")
    path = str(csv_path).replace("'", "''")
    started = time.monotonic()
    server.query(f"\\copy bench_copy.orders FROM '{path}' WITH (FORMAT csv, HEADER true)")
    return time.monotonic() - started
