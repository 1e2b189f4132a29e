"""``python -m target_duckdb_exports``: the same as the ``target-duckdb-exports`` command."""

from __future__ import annotations

from target_duckdb_exports.cli import main

main()
