"""target-duckdb-exports: a Singer loader for DuckDB on the Meltano Singer SDK."""

from __future__ import annotations

from target_duckdb_exports.target import TargetDuckDBExports

__all__ = ["TargetDuckDBExports"]
