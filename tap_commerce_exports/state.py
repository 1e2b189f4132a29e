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
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from tap_commerce_exports.windows import iso_z

REPLICATION_KEY = "window_end"


def _partitions(state: dict[str, Any], stream: str) -> list[dict[str, Any]]:
    bookmarks: dict[str, dict[str, Any]] = state.setdefault("bookmarks", {})
    stream_state = bookmarks.setdefault(stream, {})
    partitions: list[dict[str, Any]] = stream_state.setdefault("partitions", [])
    return partitions


def read_bookmark(state: dict[str, Any], stream: str, account: str) -> datetime | None:
    """The instant up to which ``stream`` of ``account`` is complete, or None."""
    stream_state = state.get("bookmarks", {}).get(stream, {})
    for partition in stream_state.get("partitions", []):
        if partition.get("context", {}).get("account") == account:
            value = partition.get("replication_key_value")
            if not value:
                return None
            try:
                return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                return None
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


def snapshot(state: dict[str, Any]) -> dict[str, Any]:
    """A deep copy safe to serialize while the sync goes on."""
    return copy.deepcopy(state)
