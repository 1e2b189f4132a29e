"""The DuckDB file: tables that follow the streams' schemas, and one transaction per load.

Every file of a drain (BATCH files as the tap wrote them, the RECORD buffer) is staged
with DuckDB's own readers into a temporary table as it arrives; the load then keeps the
last row of each key and upserts it into the stream's table, in one transaction. The
caller confirms a STATE only after :meth:`Warehouse.load` returned, so a kill at any point
leaves either the whole drain committed or none of it, and the STATE the pipeline keeps
never covers rows that are not in the table.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from target_duckdb_exports.columns import Column, json_columns_argument, literal, quote
from target_duckdb_exports.errors import LoaderError

STAGE = "_target_duckdb_exports_stage"


@dataclass(frozen=True)
class SourceFile:
    """One file to load: JSON Lines (gzip or not) or Parquet."""

    path: Path
    format: str  # "jsonl" | "parquet"
    compression: str = "none"  # "gzip" | "none" (jsonl only)
    wrapped: bool = False  # jsonl lines are whole RECORD messages: the row is their "record"


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    columns: tuple[Column, ...]  # as the table holds them (existing types win)
    keys: tuple[str, ...]
    upsert: bool  # the table's primary key is ``keys``: INSERT ... ON CONFLICT

    @property
    def qualified(self) -> str:
        return f"{quote(self.schema)}.{quote(self.name)}"


class Warehouse:
    """One connection to one DuckDB file, for the whole run (a loader is single-threaded)."""

    def __init__(self, path: str, logger: logging.Logger) -> None:
        self.path = path
        self.logger = logger
        if path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(Path(path).expanduser()) if path != ":memory:" else path)
        except duckdb.Error as exc:
            raise LoaderError(f"cannot open the DuckDB file {path!r} (setting 'path'): {exc}") from None
        # Instants in and out in UTC, whatever the machine's zone: TIMESTAMPTZ values
        # are instants, and a value without an offset is read as UTC.
        self.con.execute("SET TimeZone = 'UTC'")
        self._stages = 0
        self._in_transaction = False

    def close(self) -> None:
        self.con.close()  # an open transaction (stages never loaded) is rolled back

    # ------------------------------------------------------------------ tables

    def table(self, schema: str, name: str, columns: Sequence[Column], keys: Sequence[str]) -> Table:
        """The stream's table, created, or widened by the columns the schema added."""
        self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
        existing = self._existing_columns(schema, name)
        qualified = f"{quote(schema)}.{quote(name)}"
        missing_keys = [k for k in keys if k not in {c.name for c in columns}]
        if missing_keys:
            raise LoaderError(
                f"stream {name!r}: key properties {missing_keys} are not in its schema's properties"
            )
        if not existing:
            body = [f"{c.quoted} {c.type}" for c in columns]
            if keys:
                body.append(f"PRIMARY KEY ({', '.join(quote(k) for k in keys)})")
            self.con.execute(f"CREATE TABLE IF NOT EXISTS {qualified} ({', '.join(body)})")
            self.logger.info(
                "created table %s.%s (%d columns, key %s)", schema, name, len(columns), list(keys)
            )
            return Table(schema, name, tuple(columns), tuple(keys), bool(keys))
        held: list[Column] = []
        for column in columns:
            old_type = existing.get(column.name.lower())
            if old_type is None:
                self.con.execute(f"ALTER TABLE {qualified} ADD COLUMN {column.quoted} {column.type}")
                self.logger.info("table %s.%s: added column %s %s", schema, name, column.name, column.type)
                held.append(column)
            else:
                if old_type != column.type:
                    self.logger.warning(
                        "table %s.%s: column %s stays %s (the schema now says %s); values are cast to %s",
                        schema,
                        name,
                        column.name,
                        old_type,
                        column.type,
                        old_type,
                    )
                held.append(Column(column.name, old_type))
        primary = self._primary_key(schema, name)
        if keys and primary and [k.lower() for k in primary] != [k.lower() for k in keys]:
            raise LoaderError(
                f"table {schema}.{name} has the primary key {primary} but stream {name!r} now has the "
                f"key properties {list(keys)}: load it into another schema (setting "
                f"'default_target_schema') or drop the table"
            )
        return Table(schema, name, tuple(held), tuple(keys), bool(keys) and bool(primary))

    def _existing_columns(self, schema: str, name: str) -> dict[str, str]:
        rows = self.con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [schema, name],
        ).fetchall()
        return {str(col).lower(): str(kind) for col, kind in rows}

    def _primary_key(self, schema: str, name: str) -> list[str]:
        rows = self.con.execute(
            "SELECT constraint_column_names FROM duckdb_constraints() "
            "WHERE schema_name = ? AND table_name = ? AND constraint_type = 'PRIMARY KEY'",
            [schema, name],
        ).fetchall()
        return [str(c) for c in rows[0][0]] if rows else []

    # ------------------------------------------------------------------ loading

    def new_stage(self) -> str:
        """A name for one sink's stage: a temporary table, so a kill leaves nothing of it."""
        self._stages += 1
        return f"{STAGE}_{self._stages}"

    def stage(self, table: Table, stage: str, source: SourceFile) -> None:
        """The rows of ``source`` appended to ``stage``, typed as ``table``'s columns.

        Why at once, as a file is announced, and not at the drain: the tap is still
        writing its next file, so DuckDB reads this one meanwhile, and the drain that
        follows the tap's last STATE has only the merge left to do. Nothing of ``table``
        changes here: the stage is this connection's temporary table, which a kill takes
        with it; :meth:`load` moves it into ``table`` in one transaction.

        Staging runs inside the transaction the next load commits: DuckDB appends to a
        temporary table inside a transaction for half the CPU of one append per
        autocommit. That transaction touches no table but stages until the load, and a
        stage that fails rolls it back (the run then ends: nothing was committed)."""
        names = ", ".join(c.quoted for c in table.columns)
        self._begin()
        try:
            self.con.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {stage} AS SELECT {names} FROM {table.qualified} LIMIT 0"
            )
            self.con.execute(f"INSERT INTO {stage} ({names}) {self._select(table, source)}")
        except BaseException:
            self._rollback()
            raise

    def _begin(self) -> None:
        if not self._in_transaction:
            self.con.execute("BEGIN TRANSACTION")
            self._in_transaction = True

    def _rollback(self) -> None:
        self._in_transaction = False
        try:
            self.con.execute("ROLLBACK")
        except duckdb.Error:
            pass  # the failed statement may already have ended the transaction

    def load(self, table: Table, stage: str) -> int:
        """Every row staged in ``stage`` into ``table`` (last row of a key wins), in one
        transaction that also drops the stage; returns the rows staged (before keeping
        one per key)."""
        names = ", ".join(c.quoted for c in table.columns)
        con = self.con
        self._begin()
        try:
            staged = self._merge(table, names, stage)
            con.execute(f"DROP TABLE {stage}")
            con.execute("COMMIT")
            self._in_transaction = False
        except BaseException:
            self._rollback()
            raise
        return staged

    def drop_stage(self, stage: str) -> None:
        """A stage that will not be loaded (a failed run)."""
        try:
            self.con.execute(f"DROP TABLE IF EXISTS {stage}")
        except duckdb.Error:
            pass  # the connection is going away anyway

    def _merge(self, table: Table, names: str, stage: str) -> int:
        """The staged rows into ``table``; returns how many were staged.

        Why three ways: DuckDB's upsert (``ON CONFLICT``, a probe of the primary key's
        index per row) and keeping the last row of a key (a window over every staged row)
        cost twice the insert itself, and most drains need neither. One aggregate tells:
        the staged keys are all distinct (one copy of each key: nothing to choose between),
        and the table is empty (nothing to conflict with, as on a first load) -> a plain
        ``INSERT``; distinct keys into a table with rows -> the upsert alone; a key staged
        twice -> the window keeps the copy that came last, then the upsert."""
        con = self.con
        if not table.keys:
            row = con.execute(f"SELECT count(*) FROM {stage}").fetchone()
            staged = int(row[0]) if row else 0
            if staged:
                con.execute(
                    f"INSERT INTO {table.qualified} ({names}) SELECT {names} FROM {stage} ORDER BY rowid"
                )
            return staged
        keys = ", ".join(quote(k) for k in table.keys)
        row = con.execute(
            f"SELECT count(*), count(*) = count(DISTINCT ({keys})), "
            f"NOT EXISTS (SELECT 1 FROM {table.qualified}) FROM {stage}"
        ).fetchone()
        staged, distinct, empty = (int(row[0]), bool(row[1]), bool(row[2])) if row else (0, True, True)
        if not staged:
            return 0
        if distinct and empty:
            con.execute(f"INSERT INTO {table.qualified} ({names}) SELECT {names} FROM {stage}")
            return staged
        # The last row of each key, in the order the rows came (files in order, rows in
        # file order): a window re-read later in the same run wins over the earlier copy.
        latest = (
            f"SELECT {names} FROM {stage}"
            if distinct
            else f"SELECT {names} FROM {stage} "
            f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY rowid DESC) = 1"
        )
        if table.upsert:
            others = [c for c in table.columns if c.name not in table.keys]
            action = (
                "DO UPDATE SET " + ", ".join(f"{c.quoted} = excluded.{c.quoted}" for c in others)
                if others
                else "DO NOTHING"
            )
            con.execute(f"INSERT INTO {table.qualified} ({names}) {latest} ON CONFLICT ({keys}) {action}")
            return staged
        # A table made without a primary key (by another loader): delete, then insert.
        match = " AND ".join(f"t.{quote(k)} IS NOT DISTINCT FROM s.{quote(k)}" for k in table.keys)
        con.execute(
            f"DELETE FROM {table.qualified} t USING (SELECT DISTINCT {keys} FROM {stage}) s WHERE {match}"
        )
        con.execute(f"INSERT INTO {table.qualified} ({names}) {latest}")
        return staged

    def _select(self, table: Table, source: SourceFile) -> str:
        """``SELECT`` every column of ``table`` from ``source``, cast to the column's type."""
        path = literal(str(source.path))
        if source.format == "parquet":
            present = {
                str(r[0]).lower()
                for r in self.con.execute(f"DESCRIBE SELECT * FROM read_parquet({path})").fetchall()
            }
            exprs = [
                f"CAST({c.quoted} AS {c.type})" if c.name.lower() in present else f"CAST(NULL AS {c.type})"
                for c in table.columns
            ]
            return f"SELECT {', '.join(exprs)} FROM read_parquet({path})"
        compression = literal("gzip" if source.compression == "gzip" else "none")
        if source.wrapped:
            fields = ", ".join(f"{c.quoted} {c.type}" for c in table.columns)
            return (
                f"SELECT {', '.join('record.' + c.quoted for c in table.columns)} FROM read_json({path}, "
                f"format = 'newline_delimited', compression = {compression}, "
                f"columns = {{'record': {literal('STRUCT(' + fields + ')')}}})"
            )
        return (
            f"SELECT {', '.join(c.quoted for c in table.columns)} FROM read_json({path}, "
            f"format = 'newline_delimited', compression = {compression}, "
            f"columns = {json_columns_argument(table.columns)})"
        )
