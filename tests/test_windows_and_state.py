"""Windows (the boundary rule's half-open ranges), iso_z, and the compact STATE bookmarks."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tap_commerce_exports.singer.bookmarks import (
    REPLICATION_KEY,
    StateKeeper,
    read_bookmark,
    write_bookmark,
)
from tap_commerce_exports.windows import Window, iso_z, plan_windows

UTC = timezone.utc
T0 = datetime(2025, 1, 1, tzinfo=UTC)


# ------------------------------------------------------------------ plan_windows
def test_a_range_splits_into_consecutive_windows_of_the_given_size_with_a_short_last_one():
    windows = plan_windows(T0, T0 + timedelta(days=75), timedelta(days=30))
    assert windows == [
        Window(T0, T0 + timedelta(days=30)),
        Window(T0 + timedelta(days=30), T0 + timedelta(days=60)),
        Window(T0 + timedelta(days=60), T0 + timedelta(days=75)),
    ]


def test_an_empty_or_reversed_range_has_no_windows():
    assert plan_windows(T0, T0, timedelta(days=1)) == []
    assert plan_windows(T0, T0 - timedelta(days=1), timedelta(days=1)) == []


@pytest.mark.parametrize("size", [timedelta(0), timedelta(days=-1)])
def test_a_window_size_that_is_not_positive_is_refused(size):
    with pytest.raises(ValueError):
        plan_windows(T0, T0 + timedelta(days=1), size)


@settings(max_examples=100, deadline=None)
@given(
    start_offset=st.integers(min_value=0, max_value=10**9),
    length=st.integers(min_value=1, max_value=10**8),
    windows_wanted=st.integers(min_value=1, max_value=400),
)
def test_windows_cover_the_range_exactly_with_no_gap_and_no_overlap(start_offset, length, windows_wanted):
    size = max(1, length // windows_wanted)
    start = T0 + timedelta(seconds=start_offset)
    end = start + timedelta(seconds=length)
    windows = plan_windows(start, end, timedelta(seconds=size))
    assert windows[0].start == start
    assert windows[-1].end == end
    for before, after in zip(windows, windows[1:], strict=False):
        assert before.end == after.start  # adjacent: no gap, no overlap
    for w in windows:
        assert w.start < w.end
        assert w.end - w.start <= timedelta(seconds=size)
    assert all(w.end - w.start == timedelta(seconds=size) for w in windows[:-1])


@settings(max_examples=100, deadline=None)
@given(
    instant=st.integers(min_value=0, max_value=10**8),
    size=st.integers(min_value=10**6 // 2, max_value=10**8),
)
def test_every_instant_of_the_range_lies_in_exactly_one_half_open_window(instant, size):
    start, end = T0, T0 + timedelta(seconds=10**8 + 1)
    moment = T0 + timedelta(seconds=instant)
    windows = plan_windows(start, end, timedelta(seconds=size))
    assert sum(1 for w in windows if w.start <= moment < w.end) == 1


def test_windows_sort_by_start_and_print_as_iso_z_range():
    w = Window(T0, T0 + timedelta(days=1))
    assert str(w) == "2025-01-01T00:00:00Z..2025-01-02T00:00:00Z"
    assert sorted([Window(T0 + timedelta(days=1), T0 + timedelta(days=2)), w])[0] == w


# ------------------------------------------------------------------ iso_z
def test_iso_z_is_utc_whole_seconds_with_a_z_suffix():
    assert iso_z(datetime(2025, 3, 31, 23, 59, 59, tzinfo=UTC)) == "2025-03-31T23:59:59Z"


def test_iso_z_converts_offsets_to_utc():
    plus2 = timezone(timedelta(hours=2))
    assert iso_z(datetime(2025, 1, 1, 1, 0, tzinfo=plus2)) == "2024-12-31T23:00:00Z"


def test_iso_z_keeps_a_fraction_of_a_second_as_microseconds():
    assert iso_z(datetime(2025, 1, 1, 0, 0, 0, 500, tzinfo=UTC)) == "2025-01-01T00:00:00.000500Z"


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)))
def test_iso_z_round_trips_through_fromisoformat(moment):
    assert datetime.fromisoformat(iso_z(moment).replace("Z", "+00:00")) == moment


# ------------------------------------------------------------------ state
def test_a_bookmark_written_is_read_back_as_the_same_instant():
    state: dict = {}
    end = datetime(2025, 2, 1, tzinfo=UTC)
    write_bookmark(state, "orders", "demo-store", end)
    assert read_bookmark(state, "orders", "demo-store") == end


def test_state_is_in_the_sdk_partition_layout_and_json_serializable():
    state: dict = {}
    write_bookmark(state, "orders", "demo-store", datetime(2025, 2, 1, tzinfo=UTC))
    assert json.loads(json.dumps(state)) == {
        "bookmarks": {
            "orders": {
                "partitions": [
                    {
                        "context": {"account": "demo-store"},
                        "replication_key": REPLICATION_KEY,
                        "replication_key_value": "2025-02-01T00:00:00Z",
                    }
                ]
            }
        }
    }


def test_state_stays_one_partition_per_stream_and_account_however_many_windows():
    state: dict = {}
    for w in plan_windows(T0, T0 + timedelta(days=365), timedelta(days=7)):
        write_bookmark(state, "orders", "demo-store", w.end)
    partitions = state["bookmarks"]["orders"]["partitions"]
    assert len(partitions) == 1
    assert partitions[0]["replication_key_value"] == iso_z(T0 + timedelta(days=365))


def test_each_account_and_stream_has_its_own_bookmark():
    state: dict = {}
    a, b = datetime(2025, 2, 1, tzinfo=UTC), datetime(2025, 3, 1, tzinfo=UTC)
    write_bookmark(state, "orders", "store-a", a)
    write_bookmark(state, "orders", "store-b", b)
    write_bookmark(state, "customers", "store-a", b)
    assert read_bookmark(state, "orders", "store-a") == a
    assert read_bookmark(state, "orders", "store-b") == b
    assert read_bookmark(state, "customers", "store-a") == b
    assert len(state["bookmarks"]["orders"]["partitions"]) == 2


def test_no_bookmark_reads_as_none():
    assert read_bookmark({}, "orders", "demo-store") is None
    state: dict = {}
    write_bookmark(state, "orders", "other-store", T0)
    assert read_bookmark(state, "orders", "demo-store") is None


@pytest.mark.parametrize("value", [None, ""])
def test_an_empty_bookmark_reads_as_none(value):
    state = {
        "bookmarks": {
            "orders": {
                "partitions": [
                    {
                        "context": {"account": "s"},
                        "replication_key": REPLICATION_KEY,
                        "replication_key_value": value,
                    }
                ]
            }
        }
    }
    assert read_bookmark(state, "orders", "s") is None


def test_a_corrupt_bookmark_is_one_line_naming_its_place_not_a_silent_restart():
    """Read as "none", a corrupt bookmark re-read all history without a word (issue 23)."""
    from tap_commerce_exports.errors import StateError

    state = {
        "bookmarks": {"orders": {"partitions": [{"context": {"account": "s"}, "replication_key_value": "x"}]}}
    }
    with pytest.raises(StateError, match=r"bookmarks\.orders\.partitions\[0\]\.replication_key_value is not"):
        read_bookmark(state, "orders", "s")


def test_a_bookmark_from_state_with_an_offset_is_the_same_instant():
    state = {
        "bookmarks": {
            "orders": {
                "partitions": [
                    {"context": {"account": "s"}, "replication_key_value": "2025-01-01T02:00:00+02:00"}
                ]
            }
        }
    }
    assert read_bookmark(state, "orders", "s") == T0


def test_writing_keeps_other_keys_of_the_state():
    state = {"bookmarks": {"orders": {"partitions": [], "starting_replication_value": None}}, "other": 1}
    write_bookmark(state, "orders", "s", T0)
    assert state["other"] == 1
    assert "starting_replication_value" in state["bookmarks"]["orders"]


def test_a_written_state_does_not_change_when_the_state_moves_on():
    state: dict = {}
    written: list[bytes] = []
    keeper = StateKeeper(state, written.append)
    keeper.set_bookmark("orders", "s", T0)
    keeper.write(now=True)
    keeper.set_bookmark("orders", "s", T0 + timedelta(days=1))
    assert read_bookmark(json.loads(written[0]), "orders", "s") == T0
