"""The console script: the SDK's CLI, with a problem the user fixes shown as one line."""

from __future__ import annotations

import gc
import sys

import click
import duckdb

from target_duckdb_exports.errors import LoaderError

PROG = "target-duckdb-exports"


def main(argv: list[str] | None = None) -> None:
    """Run the loader; a :class:`LoaderError` or a value DuckDB refuses ends it with one line
    (exit 2), never a traceback."""
    from target_duckdb_exports.target import TargetDuckDBExports

    try:
        TargetDuckDBExports.cli.main(args=argv, prog_name=PROG, standalone_mode=False)
    except LoaderError as exc:
        _fail(str(exc))
    except duckdb.Error as exc:
        # A value that does not fit its column (a malformed date-time, a number too wide
        # for DECIMAL(38, scale)): DuckDB's first line names the file, line and column.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _fail(f"DuckDB refused the load, nothing of this drain was committed: {first}")
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(1)
    # The run is done (every STATE written, the file closed); the interpreter's teardown
    # is left, and it is part of the pipeline's tail. Its final garbage collections walk
    # every object the SDK and its imports made: frozen, they are skipped (measured 60 ->
    # 11 ms of exit). Nothing else changes: atexit handlers and flushes still run.
    gc.freeze()


def _fail(line: str) -> None:
    sys.stderr.write(f"{PROG}: error: {line}\n")
    sys.stderr.flush()
    sys.exit(2)
