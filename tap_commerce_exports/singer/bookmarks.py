"""The tap's STATE: one compact bookmark per stream and account.

Shape (singer-sdk's partition layout, so Meltano and SDK tooling understand it)::

    {"bookmarks": {"orders": {"partitions": [
        {"context": {"account": "demo-store"},
         "replication_key": "window_end",
         "replication_key_value": "2025-02-01T00:00:00Z"}]}}}

Why partitions keyed by account, with one entry per account and NOT one per window: the
state stays the same size however many windows a stream has synced, and a later
"many stores / merchants in one config" setting only adds entries to the list, so
users' existing state needs no migration.

The bookmark is the end of the last window whose records were ALL emitted; it never
moves past a window that was not.

In-flight exports (so a rerun adopts them instead of waiting again from zero) ride on
the same entry, as a small list that only holds exports whose records were not emitted
yet: at most ``2 * max_concurrent_exports`` of them, gone once emitted::

    {"context": {"account": "demo-store"}, "replication_key": "window_end",
     "replication_key_value": "2025-02-01T00:00:00Z",
     "exports": [{"id": "123", "window_start": "2025-02-01T00:00:00Z",
                  "window_end": "2025-02-04T00:00:00Z", "created_at": "2025-06-01T10:00:00Z"}]}
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tap_commerce_exports.providers.answers import id_problem, json_type
from tap_commerce_exports.singer.state_input import parse_bookmark
from tap_commerce_exports.windows import iso_z

LOGGER = logging.getLogger("tap_commerce_exports.state")

REPLICATION_KEY = "window_end"


def _partitions(state: dict[str, Any], stream: str) -> list[dict[str, Any]]:
    bookmarks: dict[str, dict[str, Any]] = state.setdefault("bookmarks", {})
    stream_state = bookmarks.setdefault(stream, {})
    partitions: list[dict[str, Any]] = stream_state.setdefault("partitions", [])
    return partitions


def read_bookmark(state: dict[str, Any], stream: str, account: str) -> datetime | None:
    """The instant up to which ``stream`` of ``account`` is complete, or None.

    The state's shape was checked when it was loaded (``singer/state_input.py``); a value
    the tap cannot read is one line naming its place (:class:`StateError`)."""
    stream_state = state.get("bookmarks", {}).get(stream, {})
    for i, partition in enumerate(stream_state.get("partitions", [])):
        if partition.get("context", {}).get("account") == account:
            value = partition.get("replication_key_value")
            if value is None or value == "":
                return None
            return parse_bookmark(value, f"bookmarks.{stream}.partitions[{i}].replication_key_value")
    return None


def write_bookmark(state: dict[str, Any], stream: str, account: str, end: datetime) -> None:
    """Record that every window of ``stream`` up to ``end`` was fully emitted."""
    partitions = _partitions(state, stream)
    for partition in partitions:
        if partition.get("context", {}).get("account") == account:
            partition["replication_key"] = REPLICATION_KEY
            partition["replication_key_value"] = iso_z(end)
            return
    partitions.append(
        {
            "context": {"account": account},
            "replication_key": REPLICATION_KEY,
            "replication_key_value": iso_z(end),
        }
    )


def partition_of(state: dict[str, Any], stream: str, account: str) -> dict[str, Any] | None:
    """The state entry of ``stream`` of ``account`` (its bookmark's), if there is one."""
    for partition in state.get("bookmarks", {}).get(stream, {}).get("partitions", []):
        if partition.get("context", {}).get("account") == account:
            return partition  # type: ignore[no-any-return]
    return None


@dataclass(frozen=True)
class SavedExport:
    """An export created for one window whose records were not emitted yet."""

    export_id: str
    window_start: datetime
    window_end: datetime
    created_at: datetime | None


def _instant(value: object) -> datetime | None:
    """An instant with its UTC offset, else None (a naive one would not compare)."""
    if not isinstance(value, str):
        return None
    try:
        instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return instant if instant.tzinfo is not None else None


def read_exports(state: dict[str, Any], stream: str, account: str) -> list[SavedExport]:
    """The in-flight exports saved for ``stream`` of ``account``; one that breaks the id
    rules or has no window is dropped with a line (never quoting it): a fresh export is
    created for its window instead."""
    stream_state = state.get("bookmarks", {}).get(stream, {})
    for partition in stream_state.get("partitions", []):
        if partition.get("context", {}).get("account") != account:
            continue
        saved: list[SavedExport] = []
        for entry in partition.get("exports") or []:
            export_id = entry.get("id") if isinstance(entry, dict) else None
            problem = (
                id_problem(export_id)
                if isinstance(entry, dict)
                else f"{json_type(entry)}, expected an object"
            )
            start = end = None
            if problem is None:
                assert isinstance(entry, dict)
                start, end = _instant(entry.get("window_start")), _instant(entry.get("window_end"))
                if start is None or end is None:
                    problem = "its window_start or window_end is not an instant with a UTC offset"
            if problem is not None or start is None or end is None:
                LOGGER.warning(
                    "a saved export of stream '%s' of '%s' breaks the id rules or has no window (%s): "
                    "dropped; a fresh export is created for its window",
                    stream,
                    account,
                    problem,
                )
                continue
            saved.append(SavedExport(str(export_id), start, end, _instant(entry.get("created_at"))))
        return saved
    return []


def write_exports(state: dict[str, Any], stream: str, account: str, exports: list[SavedExport]) -> None:
    """Save ``stream``'s in-flight exports of ``account`` (none: the key goes away, and
    an entry that held only exports goes with it)."""
    if not exports and not state.get("bookmarks", {}).get(stream, {}).get("partitions"):
        return  # nothing saved, nothing to save: the state gains no empty key
    partitions = _partitions(state, stream)
    entry = next((p for p in partitions if p.get("context", {}).get("account") == account), None)
    if entry is None:
        if not exports:
            return
        entry = {"context": {"account": account}}
        partitions.append(entry)
    if not exports:
        entry.pop("exports", None)
        if "replication_key_value" not in entry:  # nothing left to say: no empty entry
            partitions.remove(entry)
            if not partitions:
                state["bookmarks"].pop(stream, None)
        return
    entry["exports"] = [
        {
            "id": e.export_id,
            "window_start": iso_z(e.window_start),
            "window_end": iso_z(e.window_end),
            **({"created_at": iso_z(e.created_at)} if e.created_at else {}),
        }
        for e in exports
    ]


def snapshot(state: dict[str, Any]) -> dict[str, Any]:
    """A deep copy safe to serialize while the sync goes on."""
    return copy.deepcopy(state)
