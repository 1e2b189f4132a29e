"""STATE that scales with the work (issue 24): the keeper writes what the state holds, at
once while that is cheap and at a bounded rate once it is not, re-encoding only the
partitions that changed. Time is a fake clock the spec moves."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from tap_commerce_exports.singer.bookmarks import (
    SMALL_STATE,
    STATE_INTERVAL,
    SavedExport,
    StateKeeper,
    read_bookmark,
    read_exports,
)

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def keeper_of(state: dict, *, records: int = 0) -> tuple[StateKeeper, list[bytes], Clock]:
    written: list[bytes] = []
    clock = Clock()
    keeper = StateKeeper(
        state, written.append, bytes_out=lambda: records + sum(map(len, written)), clock=clock
    )
    return keeper, written, clock


def big_state(accounts: int) -> dict:
    """A state of many accounts' bookmarks (well over SMALL_STATE)."""
    parts = [
        {
            "context": {"account": f"M{i}"},
            "replication_key": "window_end",
            "replication_key_value": "2025-01-01T00:00:00Z",
        }
        for i in range(accounts)
    ]
    return {"bookmarks": {"orders": {"partitions": parts}}}


def test_what_is_written_is_the_state_itself_other_keys_included():
    state = {"bookmarks": {"orders": {"partitions": [], "starting_replication_value": None}}, "other": 1}
    keeper, written, _ = keeper_of(state)
    keeper.set_bookmark("orders", "s", T0)
    keeper.set_exports("orders", "s", [SavedExport("7", T0, T0 + timedelta(days=1), None)])
    assert keeper.write()
    assert json.loads(written[-1]) == state
    assert read_bookmark(json.loads(written[-1]), "orders", "s") == T0
    assert [e.export_id for e in read_exports(json.loads(written[-1]), "orders", "s")] == ["7"]


def test_a_small_state_is_written_after_every_change():
    keeper, written, _ = keeper_of({})
    for day in range(5):
        keeper.set_bookmark("orders", "s", T0 + timedelta(days=day))
        assert keeper.write()
    assert len(written) == 5


def test_nothing_changed_writes_nothing():
    keeper, written, _ = keeper_of({})
    keeper.set_bookmark("orders", "s", T0)
    keeper.write()
    keeper.set_exports("orders", "s", [])  # no exports before, none now
    assert not keeper.write()
    assert len(written) == 1


def test_a_large_state_waits_for_the_interval_unless_the_records_dwarf_it():
    state = big_state(2000)
    keeper, written, clock = keeper_of(state)
    keeper.set_bookmark("orders", "M1", T0)
    assert keeper.write()  # the first one: nothing written yet to compare with
    assert len(written[0]) > SMALL_STATE
    keeper.set_bookmark("orders", "M2", T0)
    assert not keeper.write(), "a large STATE again at once, with no records since"
    clock.now += STATE_INTERVAL
    assert keeper.write()
    assert json.loads(written[-1]) == state


def test_a_large_state_is_written_at_once_when_the_records_written_dwarf_it():
    state = big_state(2000)
    keeper, written, _ = keeper_of(state, records=10**9)
    for account in ("M1", "M2", "M3"):
        keeper.set_bookmark("orders", account, T0)
        assert keeper.write()
    assert len(written) == 3


def test_flush_writes_a_pending_change_whatever_the_interval_and_nothing_otherwise():
    keeper, written, _ = keeper_of(big_state(2000))
    keeper.write(now=True)
    keeper.set_bookmark("orders", "M5", T0)
    assert not keeper.write()
    assert keeper.flush()
    assert not keeper.flush()
    assert len(written) == 2


def test_only_the_partitions_that_changed_are_encoded_again():
    keeper, _, clock = keeper_of(big_state(500))
    keeper.write(now=True)
    encoded: list[object] = []
    real = keeper._encoder  # noqa: SLF001 - counting what the keeper encodes

    class Counting:
        def encode(self, value: object) -> bytes:
            encoded.append(value)
            return real.encode(value)

    keeper._encoder = Counting()  # type: ignore[assignment]  # noqa: SLF001
    keeper.set_bookmark("orders", "M7", T0)
    clock.now += STATE_INTERVAL
    keeper.write()
    partitions = [v for v in encoded if isinstance(v, dict) and "context" in v]
    assert [p["context"]["account"] for p in partitions] == ["M7"]


def test_an_entry_that_held_only_exports_goes_when_they_do():
    state: dict = {}
    keeper, written, _ = keeper_of(state)
    keeper.set_exports("orders", "s", [SavedExport("7", T0, T0 + timedelta(days=1), T0)])
    keeper.write()
    keeper.set_exports("orders", "s", [])
    keeper.write()
    assert state == {"bookmarks": {}} or state == {}
    assert json.loads(written[-1]) in ({}, {"bookmarks": {}})


def test_a_learned_window_span_is_kept_on_its_partition_and_read_back_by_the_next_run():
    state: dict = {}
    keeper, written, _ = keeper_of(state)
    keeper.set_bookmark("orders", "s", T0)
    keeper.set_span("orders", "s", timedelta(days=7, hours=12))
    keeper.write()
    rerun, _, _ = keeper_of(json.loads(written[-1]))
    assert rerun.span("orders", "s") == timedelta(days=7, hours=12)
    assert rerun.span("orders", "other") is None
    assert rerun.bookmark("orders", "s") == T0
