"""The DuckDB file: tables that follow the streams' schemas, and one transaction per load.

Every file of a drain (BATCH files as the tap wrote them, the RECORD buffer) is read with
DuckDB's own readers as it arrives, inside one open transaction that all sinks share.
Where that provably gives the rows the merge would give, it goes straight into the
stream's table (*direct*); otherwise into a temporary stage, and the load keeps the last
row of each key and upserts it. Why direct: the merge after the tap's last file was most
of the loader's time after the tap ended (0.7 s of 1.2 s for 200,000 orders); a direct
file is loaded while the tap still writes the next one, so the drain at the STATE has
only the commit left.

The tables this loader creates have no PRIMARY KEY: DuckDB's documentation warns that
indexes slow loading and updates and that an ART index must fit in memory while it is
built, and here it was most of the drain and CPU the tap needs (the captured 200,000
orders, loader alone: the drain at the STATE 0.11 -> 0.03 s, the check below included;
1.17 -> 1.06 s of CPU). The key columns are ``NOT NULL`` and the table's comment names the key; the
loader upserts by key (delete, then insert). Direct, then, means:

* a table without key properties: always (an append);
* a table with keys and no primary key: while it was empty when the open transaction
  first touched it. Nothing refuses a repeated key there, so before *every* commit (any
  sink's load commits the shared transaction, and every table's direct rows with it) each
  such table that received direct rows is checked: ``count(*) = count(DISTINCT keys)``
  (all its rows are this transaction's);
* a table whose primary key is the stream's keys (made by an earlier build of this
  loader): as long as no key repeats -- the primary key refuses a repeat.

A repeated key (refused by a primary key, or found by the check before a commit) is
undone by DuckDB's rollback of the whole transaction, every sink's work since the last
commit; the Warehouse therefore keeps a journal of that work (each file, and each change
of a table made inside the transaction, in order), rolls back, switches the table that
repeated a key to the stage for the rest of the run, and replays the journal. Files stay
on disk until the commit that covers them (the RECORD buffers are removed only then).

The caller confirms a STATE only after :meth:`Warehouse.load` returned, so a kill at any
point leaves either the whole drain committed or none of it, and the STATE the pipeline
keeps never covers rows that are not in the table.
"""

from __future__ import annotations

import atexit
import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from target_duckdb_exports.columns import Column, json_columns_argument, literal, quote
from target_duckdb_exports.errors import LoaderError

STAGE = "_target_duckdb_exports_stage"
#: The name the DuckDB file is attached under (``USE``d: tables are named without it).
ALIAS = "warehouse"
#: Rows per row group written into the file (setting ``row_group_size``, see target.py).
DEFAULT_ROW_GROUP_SIZE = 16384


@dataclass(frozen=True)
class SourceFile:
    """One file to load: JSON Lines (gzip or not) or Parquet."""

    path: Path
    format: str  # "jsonl" | "parquet"
    compression: str = "none"  # "gzip" | "none" (jsonl only)
    wrapped: bool = False  # jsonl lines are whole RECORD messages: the row is their "record"
    temporary: bool = False  # the loader's own buffer: removed once the rows are committed


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    columns: tuple[Column, ...]  # as the table holds them (existing types win)
    keys: tuple[str, ...]
    upsert: bool  # the table's primary key is ``keys`` (an earlier build's table): ON CONFLICT

    @property
    def qualified(self) -> str:
        return f"{quote(self.schema)}.{quote(self.name)}"


@dataclass
class _Entry:
    """One step of the open transaction, kept to replay it after a rollback: a file read
    into ``table`` (directly) or into ``stage``, or a change of a table (``sql``)."""

    table: Table | None = None
    stage: str = ""
    source: SourceFile | None = None
    sql: str = ""
    rows: int = field(default=0, compare=False)


class Warehouse:
    """One connection to one DuckDB file, for the whole run (a loader is single-threaded)."""

    def __init__(
        self, path: str, logger: logging.Logger, row_group_size: int | None = DEFAULT_ROW_GROUP_SIZE
    ) -> None:
        self.path = path
        self.logger = logger
        self._stages = 0
        self._in_transaction = False
        #: every step since the last commit, in order (see the module's docstring)
        self._journal: list[_Entry] = []
        #: tables that repeated a key: staged and merged for the rest of the run
        self._merged: set[str] = set()
        #: rows read per stage (direct or staged) since its sink's last load
        self._rows: Counter[str] = Counter()
        #: per table touched in the open transaction: whether it was empty when first touched
        self._empty: dict[str, bool] = {}
        #: keyed tables without a primary key that took direct rows in the open transaction:
        #: checked for a repeated key before the commit
        self._unchecked: dict[str, Table] = {}
        if path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = self._connect(path, row_group_size)
        except duckdb.Error as exc:
            raise LoaderError(f"cannot open the DuckDB file {path!r} (setting 'path'): {exc}") from None
        # Instants in and out in UTC, whatever the machine's zone: TIMESTAMPTZ values
        # are instants, and a value without an offset is read as UTC.
        self.con.execute("SET TimeZone = 'UTC'")
        # A run that ends on an error never reaches close(): its buffer files go at exit.
        atexit.register(self._remove_uncommitted)

    @staticmethod
    def _connect(path: str, row_group_size: int | None) -> duckdb.DuckDBPyConnection:
        """The file attached with ``ROW_GROUP_SIZE`` (an option of ``ATTACH`` only, hence
        an in-memory connection that attaches it and ``USE``s it)."""
        if path == ":memory:":
            return duckdb.connect(path)
        if row_group_size is not None and (row_group_size <= 0 or row_group_size % 2048):
            raise LoaderError(
                f"setting 'row_group_size' is {row_group_size}: it must be a positive multiple of 2048"
            )
        con = duckdb.connect()
        try:
            option = f" (ROW_GROUP_SIZE {int(row_group_size)})" if row_group_size else ""
            con.execute(f"ATTACH {literal(str(Path(path).expanduser()))} AS {ALIAS}{option}")
            con.execute(f"USE {ALIAS}")
        except BaseException:
            con.close()
            raise
        return con

    def close(self) -> None:
        """Close the file; an open transaction (never loaded) is rolled back and its buffer
        files removed."""
        self.con.close()
        self._in_transaction = False
        self._remove_uncommitted()
        atexit.unregister(self._remove_uncommitted)

    def _remove_uncommitted(self) -> None:
        journal, self._journal = self._journal, []
        for entry in journal:
            if entry.source is not None and entry.source.temporary:
                entry.source.path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ tables

    def table(self, schema: str, name: str, columns: Sequence[Column], keys: Sequence[str]) -> Table:
        """The stream's table, created, or widened by the columns the schema added."""
        self._change(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
        existing = self._existing_columns(schema, name)
        qualified = f"{quote(schema)}.{quote(name)}"
        missing_keys = [k for k in keys if k not in {c.name for c in columns}]
        if missing_keys:
            raise LoaderError(
                f"stream {name!r}: key properties {missing_keys} are not in its schema's properties"
            )
        if not existing:
            # No PRIMARY KEY (the module's docstring says why): key columns NOT NULL, and
            # the key in the table's comment, where users and tools see it.
            body = [f"{c.quoted} {c.type}{' NOT NULL' if c.name in keys else ''}" for c in columns]
            self._change(f"CREATE TABLE IF NOT EXISTS {qualified} ({', '.join(body)})")
            if keys:
                self._change(f"COMMENT ON TABLE {qualified} IS {literal(key_comment(keys))}")
            self.logger.info(
                "created table %s.%s (%d columns, key %s)", schema, name, len(columns), list(keys)
            )
            return Table(schema, name, tuple(columns), tuple(keys), False)
        held: list[Column] = []
        for column in columns:
            old_type = existing.get(column.name.lower())
            if old_type is None:
                self._change(f"ALTER TABLE {qualified} ADD COLUMN {column.quoted} {column.type}")
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
        held_keys = primary or self._commented_key(schema, name)
        if keys and held_keys and [k.lower() for k in held_keys] != [k.lower() for k in keys]:
            what = "primary key" if primary else "key (its comment, upserted by this loader)"
            raise LoaderError(
                f"table {schema}.{name} has the {what} {held_keys} but stream {name!r} now has the "
                f"key properties {list(keys)}: load it into another schema (setting "
                f"'default_target_schema') or drop the table"
            )
        return Table(schema, name, tuple(held), tuple(keys), bool(keys) and bool(primary))

    def _change(self, sql: str) -> None:
        """A change of a table (DDL); inside the open transaction it is journaled: a
        rollback undoes it, and the replay must redo it before the rows that need it."""
        self.con.execute(sql)
        if self._in_transaction:
            self._journal.append(_Entry(sql=sql))

    def _existing_columns(self, schema: str, name: str) -> dict[str, str]:
        rows = self.con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_catalog = current_database() AND table_schema = ? AND table_name = ? "
            "ORDER BY ordinal_position",
            [schema, name],
        ).fetchall()
        return {str(col).lower(): str(kind) for col, kind in rows}

    def _commented_key(self, schema: str, name: str) -> list[str]:
        """The key named by the comment this loader gives a table it creates (else [])."""
        row = self.con.execute(
            "SELECT comment FROM duckdb_tables() "
            "WHERE database_name = current_database() AND schema_name = ? AND table_name = ?",
            [schema, name],
        ).fetchone()
        comment = str(row[0]) if row and row[0] else ""
        prefix, suffix = key_comment(["\0"]).split("\0")
        if not (comment.startswith(prefix) and comment.endswith(suffix)):
            return []
        return comment[len(prefix) : len(comment) - len(suffix)].split(", ")

    def _primary_key(self, schema: str, name: str) -> list[str]:
        rows = self.con.execute(
            "SELECT constraint_column_names FROM duckdb_constraints() "
            "WHERE database_name = current_database() AND schema_name = ? AND table_name = ? "
            "AND constraint_type = 'PRIMARY KEY'",
            [schema, name],
        ).fetchall()
        return [str(c) for c in rows[0][0]] if rows else []

    # ------------------------------------------------------------------ loading

    def new_stage(self) -> str:
        """A name for one sink's stage: a temporary table, so a kill leaves nothing of it."""
        self._stages += 1
        return f"{STAGE}_{self._stages}"

    def direct(self, table: Table) -> bool:
        """Whether ``table``'s files go straight into it (see the module's docstring)."""
        if not table.keys:
            return True
        if table.qualified in self._merged:
            return False
        return table.upsert or self._was_empty(table)

    def _was_empty(self, table: Table) -> bool:
        """Whether ``table`` was empty when the open transaction first touched it (asked
        once per table per transaction; a rollback restores that same state)."""
        empty = self._empty.get(table.qualified)
        if empty is None:
            row = self.con.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {table.qualified})").fetchone()
            empty = bool(row and row[0])
            if self._in_transaction:
                self._empty[table.qualified] = empty
        return empty

    def add(self, table: Table, stage: str, source: SourceFile) -> None:
        """The rows of ``source`` into ``table`` (direct) or appended to ``stage``, typed
        as ``table``'s columns, inside the transaction the next load commits.

        Why at once, as a file is announced, and not at the drain: the tap is still
        writing its next file, so DuckDB reads this one meanwhile, and the drain that
        follows the tap's last STATE has (nearly) only the commit left. A stage is this
        connection's temporary table, which a kill takes with it.

        A key the primary key refuses switches ``table`` to its stage for the rest of
        the run: rollback, replay of the journal (this file included). Anything else
        DuckDB refuses rolls the transaction back and ends the run (nothing of it was
        committed; its buffer files are removed)."""
        self._begin()
        entry = _Entry(table, stage, source)
        self._journal.append(entry)
        try:
            self._apply(entry)
        except duckdb.ConstraintException as exc:
            if not self._can_fall_back(table, exc):
                self._fail()
                _raise_null_key(table, exc)
                raise
            self._fall_back(table, _first_line(exc))
        except BaseException:
            self._fail()
            raise

    def _can_fall_back(self, table: Table, exc: duckdb.ConstraintException) -> bool:
        """Whether ``table``'s primary key refused a repeated key of a direct load, which
        the stage and merge make fit (a row without its key fits nowhere)."""
        return table.upsert and self.direct(table) and not _null_key(exc)

    def _apply(self, entry: _Entry) -> None:
        if entry.sql:
            self.con.execute(entry.sql)
            return
        table, source = entry.table, entry.source
        assert table is not None and source is not None
        names = ", ".join(c.quoted for c in table.columns)
        if self.direct(table):
            into = table.qualified
        else:
            into = entry.stage
            self.con.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {into} AS SELECT {names} FROM {table.qualified} LIMIT 0"
            )
        row = self.con.execute(f"INSERT INTO {into} ({names}) {self._select(table, source)}").fetchone()
        entry.rows = int(row[0]) if row else 0
        self._rows[entry.stage] += entry.rows
        if into == table.qualified and table.keys and not table.upsert:
            self._unchecked[table.qualified] = table

    def _check_distinct(self) -> None:
        """Before a commit: each keyed table without a primary key that took direct rows
        in this transaction holds every key once (it was empty at the transaction's
        start: all its rows are this transaction's). A repeat -> rollback, the table to
        its stage, replay (which may find no more tables to check), and check again."""
        while self._unchecked:
            qualified, table = next(iter(self._unchecked.items()))
            keys = ", ".join(quote(k) for k in table.keys)
            # (a grouped DISTINCT: 19 ms for 200,000 orders, against 26 for count(DISTINCT))
            row = self.con.execute(
                f"SELECT count(*) = (SELECT count(*) FROM (SELECT DISTINCT {keys} FROM {qualified})) "
                f"FROM {qualified}"
            ).fetchone()
            if row and row[0]:
                del self._unchecked[qualified]
            else:
                self._fall_back(table, "a key came again within the transaction")

    def _fall_back(self, table: Table, reason: str) -> None:
        """``table`` to its stage for the rest of the run; the transaction replayed."""
        while True:
            self.logger.info(
                "table %s: %s; its files are staged and merged from now on (the last row of a "
                "key wins), and the %d step(s) since the last commit are replayed",
                table.qualified,
                reason,
                len(self._journal),
            )
            self._merged.add(table.qualified)
            self._rollback()
            for entry in self._journal:
                self._rows[entry.stage] -= entry.rows
                entry.rows = 0
            self._begin()
            failed: Table | None = None
            try:
                for entry in self._journal:
                    failed = entry.table
                    self._apply(entry)
                return
            except duckdb.ConstraintException as again:
                # Cannot happen (each direct step already went in against the same
                # committed rows) unless a table's rows changed: handled the same way.
                if failed is None or not self._can_fall_back(failed, again):
                    self._fail()
                    if failed is not None:
                        _raise_null_key(failed, again)
                    raise
                table, reason = failed, _first_line(again)
            except BaseException:
                self._fail()
                raise

    def _begin(self) -> None:
        if not self._in_transaction:
            self.con.execute("BEGIN TRANSACTION")
            self._in_transaction = True

    def _rollback(self) -> None:
        self._in_transaction = False
        self._unchecked.clear()  # a replay adds back the tables it loads directly
        try:
            self.con.execute("ROLLBACK")
        except duckdb.Error:
            pass  # the failed statement may already have ended the transaction

    def _fail(self) -> None:
        """The transaction rolled back for good: the run ends, nothing of it is replayed."""
        self._rollback()
        self._empty.clear()
        self._remove_uncommitted()

    def _commit(self) -> None:
        assert not self._unchecked, "load() checks the direct tables before its merge"
        self.con.execute("COMMIT")
        self._in_transaction = False
        self._empty.clear()
        self._unchecked.clear()
        self._remove_uncommitted()  # committed: the buffer files are no longer needed

    def load(self, table: Table, stage: str) -> int:
        """Everything read for ``table`` since the last load committed: the stage (if
        any) merged into it (last row of a key wins) and dropped, in the transaction that
        this commits; returns the rows read (before keeping one per key)."""
        try:
            # First the check of every direct table (its fallback replays the journal,
            # which has no step for a merge: so before this load's merge).
            self._check_distinct()
            if self._stage_exists(stage):
                self._begin()
                names = ", ".join(c.quoted for c in table.columns)
                self._merge(table, names, stage)
                self.con.execute(f"DROP TABLE {stage}")
            if self._in_transaction:
                self._commit()
        except duckdb.ConstraintException as exc:
            self._fail()
            _raise_null_key(table, exc)
            raise
        except BaseException:
            self._fail()
            raise
        return self._rows.pop(stage, 0)

    def _stage_exists(self, stage: str) -> bool:
        row = self.con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'temp' AND table_name = ?", [stage]
        ).fetchone()
        return bool(row and row[0])

    def drop_stage(self, stage: str) -> None:
        """A stage that will not be loaded (a failed run)."""
        try:
            self.con.execute(f"DROP TABLE IF EXISTS {stage}")
        except duckdb.Error:
            pass  # the connection is going away anyway

    def _merge(self, table: Table, names: str, stage: str) -> None:
        """The staged rows into ``table``.

        Why three ways: DuckDB's upsert (``ON CONFLICT``, a probe of the primary key's
        index per row) and keeping the last row of a key (a window over every staged row)
        cost twice the insert itself, and most drains need neither. One aggregate tells:
        the staged keys are all distinct (one copy of each key: nothing to choose between),
        and the table is empty (nothing to conflict with, as on a first load) -> a plain
        ``INSERT``; distinct keys into a table with rows -> the upsert alone; a key staged
        twice -> the window keeps the copy that came last, then the upsert."""
        con = self.con
        if not table.keys:
            con.execute(f"INSERT INTO {table.qualified} ({names}) SELECT {names} FROM {stage} ORDER BY rowid")
            return
        keys = ", ".join(quote(k) for k in table.keys)
        row = con.execute(
            f"SELECT count(*), count(*) = count(DISTINCT ({keys})), "
            f"NOT EXISTS (SELECT 1 FROM {table.qualified}) FROM {stage}"
        ).fetchone()
        staged, distinct, empty = (int(row[0]), bool(row[1]), bool(row[2])) if row else (0, True, True)
        if not staged:
            return
        if distinct and empty:
            con.execute(f"INSERT INTO {table.qualified} ({names}) SELECT {names} FROM {stage}")
            return
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
            return
        # A table without a primary key (this loader's, or another's): delete, then insert.
        match = " AND ".join(f"t.{quote(k)} IS NOT DISTINCT FROM s.{quote(k)}" for k in table.keys)
        con.execute(
            f"DELETE FROM {table.qualified} t USING (SELECT DISTINCT {keys} FROM {stage}) s WHERE {match}"
        )
        con.execute(f"INSERT INTO {table.qualified} ({names}) {latest}")

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


def key_comment(keys: Sequence[str]) -> str:
    """The comment of a table this loader creates with keys: where the key is shown."""
    return f"key: {', '.join(keys)} (upserted by target-duckdb-exports)"


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _null_key(exc: duckdb.ConstraintException) -> bool:
    """A NOT NULL column refused a row: no fallback makes it fit."""
    return "NOT NULL" in str(exc)


def _raise_null_key(table: Table, exc: duckdb.ConstraintException) -> None:
    """A row without a value for a key column: one line that says so (else returns, and
    the caller re-raises DuckDB's own error)."""
    found = re.search(r"NOT NULL constraint failed: \S*?\.?([^.\s]+)\s*$", _first_line(exc))
    if found and found.group(1).lower() in {k.lower() for k in table.keys}:
        raise LoaderError(
            f"table {table.schema}.{table.name}: a row has no value for a key property "
            f"({', '.join(table.keys)}); nothing of this drain was committed ({_first_line(exc)})"
        ) from None
