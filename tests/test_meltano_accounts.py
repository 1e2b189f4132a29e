"""Many accounts through Meltano: ``TAP_COMMERCE_EXPORTS__CLOVER_ACCOUNTS`` as JSON text
(kind string, so the tap parses it), a real `meltano run` into DuckDB, each merchant's
rows exactly the sandbox's, keyed by (_account, id)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tap_commerce_exports.providers.clover_streams import CLOVER_STREAMS
from tap_commerce_exports.singer.account_property import ACCOUNT_PROPERTY
from tests.meltano_helpers import CLOVER_EXTRACTOR, IsolatedMeltano, missing_install, plugin_env, table_keys
from tests.tap_harness import utc

pytestmark = pytest.mark.meltano

START, END = "2025-01-01T00:00:00Z", "2025-01-15T00:00:00Z"
MERCHANTS = ["MERCHANT1", "MERCHANT2"]


@pytest.fixture(scope="module")
def sandbox(require):
    require(missing_install())
    from commerce_sandbox import SandboxConfig, SandboxServer

    with SandboxServer(
        SandboxConfig(
            port=0, processing_delay=0.05, accounts={"merchants": 2}, data_end="2025-02-01T00:00:00Z"
        )
    ) as sb:
        yield sb


def test_accounts_from_a_meltano_environment_variable_load_each_merchant_s_rows_exactly(sandbox, tmp_path):
    meltano = IsolatedMeltano(tmp_path)
    # the dev environment's top-level sandbox_token would be every account's: each its own
    accounts = [{"merchant_id": m, "sandbox_token": f"token-{m}"} for m in MERCHANTS]
    meltano.extra_env = plugin_env(
        CLOVER_EXTRACTOR,
        {
            "api_url": sandbox.clover_url,
            "region": "sandbox",
            "start_date": START,
            "end_date": END,
            "poll_interval": 1,
            "poll_max_interval": 2,
            "accounts": json.dumps(accounts),
        },
    )
    result = meltano.run("run", CLOVER_EXTRACTOR, "target-duckdb")
    assert result.returncode == 0, result.tail()
    for token in (f"token-{m}" for m in MERCHANTS):
        assert token not in result.output
    for d in CLOVER_STREAMS:
        expected = sorted(
            (m, str(k))
            for m in MERCHANTS
            for k in sandbox.truth_keys("clover", d.export_type, utc(START), utc(END), account=m)
        )
        got = table_keys(meltano.warehouse, "clover", d.name, [ACCOUNT_PROPERTY, *d.primary_keys])
        assert not [k for k, n in Counter(got).items() if n > 1], f"{d.name}: duplicates"
        assert sorted(got) == expected, d.name
    listed = meltano.run("config", "list", CLOVER_EXTRACTOR)  # sensitive: shown redacted
    assert listed.returncode == 0, listed.tail()
    assert "accounts" in listed.output
    assert not any(f"token-{m}" in listed.output for m in MERCHANTS)
