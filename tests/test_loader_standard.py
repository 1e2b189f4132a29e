"""singer-sdk's standard target tests, run against the DuckDB loader (``loader/``).

Each test gets a fresh in-memory DuckDB (``path: ":memory:"``): the SDK builds a new
target per test, and nothing of one test reaches the next.
"""

from __future__ import annotations

from singer_sdk.testing import get_target_test_class

from target_duckdb_exports.target import TargetDuckDBExports

TestTargetDuckDBExports = get_target_test_class(
    TargetDuckDBExports,
    config={"path": ":memory:", "default_target_schema": "standard_tests"},
)
