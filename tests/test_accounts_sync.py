"""Many accounts through the real engine and Singer layer (a fake platform from the tests
folder): each account's records and state are its own, and a refused token stops only
its account."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from tap_commerce_exports.errors import AccountsFailed, AuthError
from tap_commerce_exports.providers import registry
from tap_commerce_exports.providers.base import ExportStatus
from tap_commerce_exports.singer.account_property import ACCOUNT_PROPERTY
from tap_commerce_exports.singer.bookmarks import read_bookmark
from tap_commerce_exports.singer.output import SingerOutput
from tap_commerce_exports.singer.sync import ExportSync
from tap_commerce_exports.tap import TapCommerceExports
from tap_commerce_exports.windows import Window
from tests.fake_provider import FakeFileHost, FakeProvider, registered

BAD = "bad-token-XYZ"


class TokenCheckingShop(FakeProvider):
    """The fake shop, refusing the token ``BAD`` as a real API answers 401."""

    facts = replace(FakeProvider.facts, name="tokenshop")

    def _refuse(self) -> None:
        if self.settings.access_token == BAD:
            raise AuthError(
                "the API refused the credentials (HTTP 401): check "
                f"'{self.settings.setting_name('access_token')}'"
            )

    def check_access(self) -> str:
        self._refuse()
        return f"Fake Shop '{self.account}': access OK"

    def create_export(self, export_type: str, window: Window) -> ExportStatus:
        self._refuse()
        return super().create_export(export_type, window)


@pytest.fixture
def host() -> Iterator[FakeFileHost]:
    with registered(TokenCheckingShop) as file_host:
        yield file_host
        registry.PROVIDERS.pop(TokenCheckingShop.facts.name, None)


def config(host: FakeFileHost, accounts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "provider": "tokenshop",
        "access_token": "good-token",
        "api_url": host.url,
        "start_date": "2025-01-01T00:00:00Z",
        "end_date": "2025-01-03T00:00:00Z",
        "lookback": 0,  # a rerun reads only what is new: here, nothing
        "accounts": accounts,
    }


def sync(cfg: dict[str, Any], state: dict[str, Any] | None = None):
    tap = TapCommerceExports(config=cfg, state=state, validate_config=True)
    out = io.BytesIO()
    error: BaseException | None = None
    try:
        ExportSync(tap, tap.settings, output=SingerOutput(out)).run()
    except AccountsFailed as exc:
        error = exc
    messages = [json.loads(line) for line in out.getvalue().splitlines()]
    records = [m["record"] for m in messages if m["type"] == "RECORD"]
    states = [m["value"] for m in messages if m["type"] == "STATE"]
    return records, states[-1], error


def test_three_accounts_with_one_refused_token_two_finish_and_the_bad_one_is_named_once(host):
    accounts = [{"store": "a1"}, {"store": "a2", "access_token": BAD}, {"store": "a3"}]
    records, state, error = sync(config(host, accounts))

    by_account = {a: sorted(r["id"] for r in records if r[ACCOUNT_PROPERTY] == a) for a in ("a1", "a2", "a3")}
    assert by_account == {"a1": [1, 2, 3], "a2": [], "a3": [1, 2, 3]}
    assert isinstance(error, AccountsFailed)
    assert error.lines == [
        "account 'a2' (accounts[1]): the API refused the credentials (HTTP 401): check 'accounts[1].access_token'"
    ]
    assert BAD not in str(error)
    for account in ("a1", "a3"):
        assert read_bookmark(state, "things", account) is not None
    assert read_bookmark(state, "things", "a2") is None

    # the rerun from the saved state: the good accounts are up to date and add nothing
    again, state2, error2 = sync(config(host, accounts), state)
    assert again == []
    assert isinstance(error2, AccountsFailed) and len(error2.lines) == 1
    assert read_bookmark(state2, "things", "a1") == read_bookmark(state, "things", "a1")


def test_each_account_s_state_entry_is_its_own(host):
    _records, state, error = sync(config(host, [{"store": "a1"}, {"store": "a3"}]))
    assert error is None
    partitions = state["bookmarks"]["things"]["partitions"]
    assert sorted(p["context"]["account"] for p in partitions) == ["a1", "a3"]
    assert all("exports" not in p for p in partitions)


def test_check_access_checks_every_account_and_names_each_failing_one(host):
    cfg = config(
        host, [{"store": "a1"}, {"store": "a2", "access_token": BAD}, {"store": "a3", "access_token": BAD}]
    )
    tap = TapCommerceExports(config=cfg, validate_config=True)
    with pytest.raises(AccountsFailed) as info:
        tap.check_access()
    assert [line.split(":")[0] for line in info.value.lines] == [
        "account 'a2' (accounts[1])",
        "account 'a3' (accounts[2])",
    ]
    ok = TapCommerceExports(config=config(host, [{"store": "a1"}, {"store": "a3"}]), validate_config=True)
    assert ok.check_access() == "2 accounts: access OK"


def test_a_bookmark_or_saved_export_of_one_account_never_touches_another_s():
    from datetime import datetime, timezone

    from tap_commerce_exports.singer.bookmarks import SavedExport, read_exports, write_bookmark, write_exports

    t = [datetime(2025, 1, d, tzinfo=timezone.utc) for d in (1, 2, 3)]
    state: dict[str, Any] = {}
    write_bookmark(state, "orders", "m1", t[1])
    write_exports(state, "orders", "m2", [SavedExport("x9", t[1], t[2], None)])
    write_bookmark(state, "orders", "m2", t[2])
    write_exports(state, "orders", "m1", [])  # m1's exports emitted: m2's stay
    assert (read_bookmark(state, "orders", "m1"), read_bookmark(state, "orders", "m2")) == (t[1], t[2])
    assert [e.export_id for e in read_exports(state, "orders", "m2")] == ["x9"]
    assert read_exports(state, "orders", "m1") == []
    write_exports(state, "orders", "m2", [])
    partitions = state["bookmarks"]["orders"]["partitions"]
    assert [p["context"]["account"] for p in partitions] == ["m1", "m2"]  # one entry each


def test_batch_files_of_many_accounts_are_each_account_s_own_and_carry_its_records(host, tmp_path):
    import gzip
    from urllib.parse import urlsplit

    cfg = config(host, [{"store": "a1"}, {"store": "a3"}])
    cfg["batch_config"] = {
        "encoding": {"format": "jsonl", "compression": "gzip"},
        "storage": {"root": tmp_path.as_uri()},
    }
    tap = TapCommerceExports(config=cfg, validate_config=True)
    out = io.BytesIO()
    ExportSync(tap, tap.settings, output=SingerOutput(out)).run()
    messages = [json.loads(line) for line in out.getvalue().splitlines()]
    files = [urlsplit(f).path for m in messages if m["type"] == "BATCH" for f in m["manifest"]]
    by_account: dict[str, list[int]] = {"a1": [], "a3": []}
    for path in files:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh]
        (account,) = {r[ACCOUNT_PROPERTY] for r in rows}
        assert account in path  # a file holds one account's records, and says whose
        by_account[account] += [r["id"] for r in rows]
    assert {a: sorted(ids) for a, ids in by_account.items()} == {"a1": [1, 2, 3], "a3": [1, 2, 3]}
