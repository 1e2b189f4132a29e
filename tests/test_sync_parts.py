"""The sync's small parts, each on its own: what a failure ends (``RunFailures``), and the
two readers every room shares (an instant, a JSON type's name). When STATE is written:
test_state_keeper.py; the whole loop end to end: test_one_sync_path.py and others."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from types import SimpleNamespace

import pytest

from tap_commerce_exports.config.run_settings import Settings
from tap_commerce_exports.errors import AccountsFailed, AuthError, ExportFailed, InvalidFile, json_type_name
from tap_commerce_exports.singer.failures import RunFailures
from tap_commerce_exports.windows import read_instant

UTC = timezone.utc
JAN = datetime(2025, 1, 1, tzinfo=UTC)
FEB = datetime(2025, 2, 1, tzinfo=UTC)
MAR = datetime(2025, 3, 1, tzinfo=UTC)


def _account(name: str, source: str) -> Settings:
    return SimpleNamespace(account=name, account_source=source)  # type: ignore[return-value]


def _failed_job(error: BaseException | None, *, account_failed: bool, stream: str = "orders"):
    return SimpleNamespace(
        account_failed=account_failed, error=error, stream=SimpleNamespace(name=stream), label="w0"
    )


def test_the_one_account_of_a_run_failing_ends_the_run_at_once_in_its_own_words():
    failures = RunFailures({"s1": _account("s1", "")}, many=False)
    with pytest.raises(AuthError, match="token refused"):
        failures.window_failed(_failed_job(AuthError("token refused"), account_failed=True), "s1")


def test_a_failed_stream_of_a_one_account_run_is_the_runs_error_naming_how_many_more_failed():
    failures = RunFailures({"s1": _account("s1", "")}, many=False)
    failures.stream_failed("orders", "s1", InvalidFile("orders file 1 is not CSV"))
    failures.window_failed(
        _failed_job(ExportFailed("export failed"), account_failed=False, stream="customers"), "s1"
    )
    with pytest.raises(ExportFailed, match=r"^stream 'orders' failed: orders file 1 is not CSV \(and 1 more"):
        failures.raise_final(["orders", "customers"])


def test_a_many_account_run_ends_with_one_line_per_failed_account_and_the_others_finish():
    accounts = {a: _account(a, f"accounts[{i}]") for i, a in enumerate(["m1", "m2", "m3"])}
    failures = RunFailures(accounts, many=True)
    failures.window_failed(_failed_job(AuthError("token refused"), account_failed=True), "m1")
    failures.stream_failed("orders", "m3", InvalidFile("bad file"))
    with pytest.raises(AccountsFailed) as raised:
        failures.raise_final(["orders"])
    assert raised.value.lines == [
        "account 'm1' (accounts[0]): token refused",
        "account 'm3' (accounts[2]): stream 'orders' failed: bad file",
    ]
    assert raised.value.total == 3


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2025-01-01T00:00:00Z", JAN),
        ("2025-01-01T01:00:00+01:00", JAN),
        ("2025-01-01T00:00:00", JAN),  # no offset: UTC
        (" 2025-01-01 ", JAN),
        ("not a date", None),
        ("", None),
    ],
)
def test_an_instant_read_back_is_aware_or_none(text: str, instant: datetime | None):
    assert read_instant(text) == instant


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (None, "null"),
        (True, "boolean"),
        (3, "integer"),
        (3.5, "number"),
        (Decimal("1.10"), "number"),
        ("x", "string"),
        ([1], "array"),
        ({"a": 1}, "object"),
        (JAN, "datetime"),
    ],
)
def test_a_json_value_has_one_type_name(value: object, name: str):
    assert json_type_name(value) == name
