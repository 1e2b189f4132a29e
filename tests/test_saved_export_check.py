"""A saved export is followed only if it is the window's (issue 23, item 2).

An export id in STATE was followed without checking its type and range, though Next
Commerce's GET returns both: a STATE naming a one-day `customer_list` export as an
`orders` window emitted that export's rows for the window and moved the bookmark. The
fake platform here answers a GET with the export's type and range, as Next Commerce and
Clover do.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone

import pytest

from tap_commerce_exports.providers import registry
from tap_commerce_exports.providers.base import ExportPhase, ExportStatus
from tests.fake_provider import FakeFileHost, FakeProvider, registered
from tests.test_accounts_sync import TokenCheckingShop, config, sync

UTC = timezone.utc
DAY1, DAY2, DAY3 = (datetime(2025, 1, d, tzinfo=UTC) for d in (1, 2, 3))
FOREIGN_ROWS = "ID,Name,Created At,Colour\n" + "".join(
    f"{900 + i},customer {i},2025-01-01T0{i % 10}:00:00Z,\n" for i in range(18)
)


class SayingShop(TokenCheckingShop):
    """Answers a GET with the type and range the export was made for."""

    facts = replace(TokenCheckingShop.facts, name="sayingshop")
    saved: dict[str, tuple[str, datetime, datetime]] = {}  # noqa: RUF012 - set per test

    def create_export(self, export_type, window):
        status = super().create_export(export_type, window)
        SayingShop.saved[status.export_id] = (export_type, window.start, window.end)
        return self.get_export(status.export_id)

    def get_export(self, export_id: str) -> ExportStatus:
        export_type, start, end = SayingShop.saved[export_id]
        return replace(FakeProvider._status(export_id), export_type=export_type, window=(start, end))


@pytest.fixture
def host() -> Iterator[FakeFileHost]:
    with registered(SayingShop) as file_host:
        yield file_host
        registry.PROVIDERS.pop(SayingShop.facts.name, None)


def saved_state(export_id: str) -> dict:
    return {
        "bookmarks": {
            "things": {
                "partitions": [
                    {
                        "context": {"account": "a1"},
                        "exports": [
                            {
                                "id": export_id,
                                "window_start": "2025-01-01T00:00:00Z",
                                "window_end": "2025-01-02T00:00:00Z",
                            }
                        ],
                    }
                ]
            }
        }
    }


@pytest.mark.parametrize(
    ("kind", "window", "says"),
    [
        ("CUSTOMERS", (DAY1, DAY2), "is a 'CUSTOMERS' export"),
        ("THINGS", (DAY1, DAY3), "covers 2025-01-01T00:00:00Z to 2025-01-03T00:00:00Z"),
    ],
    ids=["another type", "another range"],
)
def test_a_saved_export_of_another_type_or_range_is_dropped_and_a_fresh_one_created(
    host, caplog, kind, window, says
):
    SayingShop.saved = {"x99": (kind, *window)}
    host.files["/x99.csv"] = FOREIGN_ROWS.encode()
    cfg = {**config(host, [{"store": "a1"}]), "provider": "sayingshop"}
    with caplog.at_level(logging.INFO):
        records, state, error = sync(cfg, saved_state("x99"))
    assert error is None
    assert sorted(r["id"] for r in records) == [1, 2, 3], "the saved export's rows were emitted"
    assert ("THINGS", DAY1, DAY2) in SayingShop.saved.values()  # a fresh export of the window
    lines = [r.getMessage() for r in caplog.records if "x99" in r.getMessage()]
    assert any(
        says in line and "not this window's" in line and "creating a new one" in line for line in lines
    ), lines


def test_a_saved_export_that_is_the_windows_own_is_followed(host):
    SayingShop.saved = {"x99": ("THINGS", DAY1, DAY2)}
    host.files["/x99.csv"] = FOREIGN_ROWS.replace("9", "9").encode()  # what the export holds
    cfg = {**config(host, [{"store": "a1"}]), "provider": "sayingshop"}
    records, _state, error = sync(cfg, saved_state("x99"))
    assert error is None
    assert ("THINGS", DAY1, DAY2) not in [v for k, v in SayingShop.saved.items() if k != "x99"]
    assert any(r["id"] >= 900 for r in records)  # it was followed: its file was read


def test_an_answer_that_says_nothing_of_type_or_range_is_followed_as_before(host):
    assert ExportStatus("x1", ExportPhase.DONE, "ready").export_type is None
    assert ExportStatus("x1", ExportPhase.DONE, "ready").window is None
