"""The tap, one process per account, against a sandbox serving several accounts.

What a partitioned deployment does before the tap reads several accounts itself: each
process gets one store (its ``api_url`` under ``/stores/{store}/``) or one merchant,
with that account's token. Each run's records equal that account's ground truth, two
accounts synced at the same time give the exact union, and another account's token is
refused in one line.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from tests.tap_harness import run_tap, utc
from tests.test_interruption import (
    DEFINITIONS,
    clover_config,
    nc_config,
    record_key,
    run_attempt,
    truth_for,
    write_catalog,
)

pytestmark = pytest.mark.e2e

START, END = "2025-01-01T00:00:00Z", "2025-01-07T00:00:00Z"
ACCOUNTS = {"nextcommerce": ["store-1", "store-2"], "clover": ["MERCHANT1", "MERCHANT2"]}


SANDBOX_SETTINGS = dict(
    processing_delay=0.2,
    nc_rate_limit=1000,
    clover_rate_limit=1000,
    accounts={"stores": 2, "merchants": 2},
    rows_per_day={"order_list": 15, "ORDERS": 15},
)


def account_config(sandbox, provider: str, name: str, token: str | None = None) -> dict:
    if provider == "nextcommerce":
        return nc_config(
            sandbox,
            api_url=sandbox.store_url(name),
            store=name,
            access_token=token or f"token-{name}",
            start_date=START,
            end_date=END,
        )
    return clover_config(
        sandbox, merchant_id=name, access_token=token or f"token-{name}", start_date=START, end_date=END
    )


def truth_of(sandbox, provider: str, name: str) -> list:
    export_type = DEFINITIONS[provider]["orders"].export_type
    return sandbox.truth_keys(provider, export_type, utc(START), utc(END), name)


@pytest.mark.parametrize("provider", ["nextcommerce", "clover"])
def test_two_accounts_synced_at_once_by_two_processes_give_each_accounts_truth(sandbox, tmp_path, provider):
    runs: dict[str, object] = {}

    def sync(name: str) -> None:
        config = account_config(sandbox, provider, name)
        catalog = write_catalog(config, ["orders"], tmp_path / f"{name}.catalog.json")
        runs[name] = run_attempt(config, catalog, None, None, tmp_path / name)

    threads = [threading.Thread(target=sync, args=(name,)) for name in ACCOUNTS[provider]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    union: Counter = Counter()
    for name in ACCOUNTS[provider]:
        run = runs[name]
        assert run.returncode == 0, run.stderr[-2000:]
        keys = [record_key(provider, "orders", r) for r in run.records["orders"]]
        assert sorted(keys) == sorted(truth_of(sandbox, provider, name)), name
        union.update(keys)
    assert max(union.values()) == 1, "no id is shared between the two accounts"
    assert sum(union.values()) == sum(len(truth_of(sandbox, provider, n)) for n in ACCOUNTS[provider])
    default = truth_for(sandbox, provider, ["orders"], START, END)["orders"]
    assert not set(default) & set(union), "neither account sees the default account's rows"


@pytest.mark.parametrize("provider", ["nextcommerce", "clover"])
def test_another_accounts_token_is_refused_in_one_line(sandbox, provider):
    first, second = ACCOUNTS[provider]
    run = run_tap(account_config(sandbox, provider, second, token=f"token-{first}"), streams=["orders"])
    assert run.returncode == 2 and not run.records.get("orders")
    (line,) = run.error_lines()
    assert "access_token" in line and f"token-{first}" not in run.stderr
