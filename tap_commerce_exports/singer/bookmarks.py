"""The tap's STATE: one compact bookmark per stream and account, and when it is written.

:class:`StateKeeper` holds the state while a sync runs: lookups by (stream, account),
each partition's JSON cached, STATE written at a bounded rate (see ``STATE_INTERVAL``).

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

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec

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
    entry["exports"] = [_saved_entry(e) for e in exports]


# ----------------------------------------------------------------------------- writing STATE
#: When STATE is written while a sync runs (always at the end, and before any exit).
#: Singer's STATE carries the whole state, every partition, so one per window made STATE
#: grow with accounts x windows: 785 MB for 48,000 records at a thousand merchants
#: (issue 24). A change is written at once while that is cheap: the state is small
#: (:data:`SMALL_STATE`), or the STATE written so far stays under :data:`STATE_SHARE` of
#: the bytes of records; otherwise it waits until :data:`STATE_INTERVAL` seconds passed
#: since the last STATE. The trade-off: after a crash (SIGKILL, power; a SIGTERM still
#: writes the last STATE) a large state may be up to that long behind: those windows are
#: read again (at least once, never skipped: a bookmark never passes records not written)
#: and the exports created in that time are created again.
SMALL_STATE = 16 * 1024
STATE_SHARE = 0.25
STATE_INTERVAL = 2.0

Key = tuple[str, str]  # (stream, account)


class StateKeeper:
    """The tap's state while a sync runs: lookups by (stream, account), and STATE
    messages written at a bounded rate, at a cost that does not grow per message.

    It edits the state dict in place (it stays the SDK's ``Tap.state``), keeps each
    partition's encoded JSON, and re-encodes only the partitions that changed since the
    last STATE: a message is the cached pieces joined. Nothing changed, nothing written.
    """

    def __init__(
        self,
        state: dict[str, Any],
        write: Callable[[bytes], None],
        *,
        bytes_out: Callable[[], int] = lambda: 0,
        interval: float = STATE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self._write = write  # writes one encoded state value as a STATE message (and flushes)
        self._bytes_out = bytes_out  # every byte the output wrote so far (records and all)
        self.interval = interval
        self.clock = clock
        self._encoder = msgspec.json.Encoder(decimal_format="number")
        self._index: dict[Key, dict[str, Any]] = {}
        self._encoded: dict[int, bytes] = {}  # id(partition) -> its JSON
        self._dirty: set[int] = set()
        self._pending = False
        self._last = -math.inf
        self._last_size = 0
        self.state_bytes = 0  # of STATE values written
        self.written = 0  # STATE messages written
        for stream, stream_state in state.get("bookmarks", {}).items():
            for partition in stream_state.get("partitions", []) if isinstance(stream_state, dict) else []:
                account = partition.get("context", {}).get("account") if isinstance(partition, dict) else None
                if isinstance(account, str):
                    self._index.setdefault((stream, account), partition)

    # ------------------------------------------------------------------ reading
    def bookmark(self, stream: str, account: str) -> datetime | None:
        """As :func:`read_bookmark`, by key."""
        partition = self._index.get((stream, account))
        if partition is None:
            return None
        return read_bookmark({"bookmarks": {stream: {"partitions": [partition]}}}, stream, account)

    def saved_exports(self, stream: str, account: str) -> list[SavedExport]:
        """As :func:`read_exports`, by key."""
        partition = self._index.get((stream, account))
        if partition is None:
            return []
        return read_exports({"bookmarks": {stream: {"partitions": [partition]}}}, stream, account)

    def span(self, stream: str, account: str) -> timedelta | None:
        """The window span this pair was found to work at (``jobs/spans.py``), or None."""
        partition = self._index.get((stream, account))
        seconds = partition.get(SPAN_KEY) if partition else None
        if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds > 0:
            return timedelta(seconds=seconds)
        return None

    # ------------------------------------------------------------------ changing
    def _partition(self, stream: str, account: str) -> dict[str, Any]:
        partition = self._index.get((stream, account))
        if partition is None:
            partition = {"context": {"account": account}}
            _partitions(self.state, stream).append(partition)
            self._index[stream, account] = partition
        return partition

    def _changed(self, partition: dict[str, Any]) -> None:
        self._dirty.add(id(partition))
        self._pending = True

    def changed(self, stream: str, account: str) -> None:
        """Someone else wrote on the pair's entry (e.g. the BATCH emitter's pipeline id):
        encode it again."""
        partition = self._index.get((stream, account))
        if partition is not None:
            self._changed(partition)

    def set_bookmark(self, stream: str, account: str, end: datetime) -> None:
        """Every window of the pair up to ``end`` was fully emitted."""
        partition = self._partition(stream, account)
        partition["replication_key"] = REPLICATION_KEY
        partition["replication_key_value"] = iso_z(end)
        self._changed(partition)

    def set_exports(self, stream: str, account: str, exports: list[SavedExport]) -> None:
        """The pair's exports in flight (none: the key goes, and an entry that held
        only exports goes with it). Unchanged, it writes nothing."""
        partition = self._index.get((stream, account))
        if partition is None and not exports:
            return
        saved = [_saved_entry(e) for e in exports]
        if partition is not None and partition.get("exports", []) == saved:
            return
        partition = self._partition(stream, account)
        if saved:
            partition["exports"] = saved
        else:
            partition.pop("exports", None)
        self._changed(partition)
        if not saved and set(partition) <= {"context"}:
            self._drop(stream, account, partition)

    def set_span(self, stream: str, account: str, span: timedelta | None) -> None:
        """The window span the pair works at (None: no learned limit)."""
        seconds = int(span.total_seconds()) if span is not None else None
        partition = self._index.get((stream, account))
        if (partition.get(SPAN_KEY) if partition else None) == seconds:
            return
        partition = self._partition(stream, account)
        if seconds is None:
            partition.pop(SPAN_KEY, None)
        else:
            partition[SPAN_KEY] = seconds
        self._changed(partition)

    def _drop(self, stream: str, account: str, partition: dict[str, Any]) -> None:
        partitions = _partitions(self.state, stream)
        partitions.remove(partition)
        del self._index[stream, account]
        self._encoded.pop(id(partition), None)
        self._dirty.discard(id(partition))
        if not partitions:
            self.state["bookmarks"].pop(stream, None)

    # ------------------------------------------------------------------ writing
    def write(self, *, now: bool = False) -> bool:
        """Write STATE if anything changed and it is cheap now, or ``interval`` passed
        since the last one (``now``: at once, e.g. at the end or before an exit). True
        if one was written. Every record the state covers was handed to the output (it
        flushes them before the STATE)."""
        if not self._pending and not now:
            return False
        moment = self.clock()
        if not now and not self._cheap() and moment - self._last < self.interval:
            return False
        value = self.encode()
        self._write(value)
        self._pending = False
        self._last = moment
        self._last_size = len(value)
        self.state_bytes += len(value)
        self.written += 1
        return True

    def _cheap(self) -> bool:
        if self._last_size <= SMALL_STATE:
            return True
        others = self._bytes_out() - self.state_bytes
        return self.state_bytes + self._last_size <= STATE_SHARE * others

    def flush(self) -> bool:
        """Write STATE now if anything changed since the last one (the end of a run, or
        before an exit)."""
        return self._pending and self.write(now=True)

    def encode(self) -> bytes:
        """The state as JSON: each partition from its cache, re-encoded only if changed."""
        encode = self._encoder.encode
        parts: list[bytes] = []
        for key, value in self.state.items():
            if key != "bookmarks" or not isinstance(value, dict):
                parts.append(encode(key) + b":" + encode(value))
                continue
            streams: list[bytes] = []
            for stream, stream_state in value.items():
                if not isinstance(stream_state, dict) or not isinstance(stream_state.get("partitions"), list):
                    streams.append(encode(stream) + b":" + encode(stream_state))
                    continue
                pieces = [self._encoded_partition(p) for p in stream_state["partitions"]]
                rest = {k: v for k, v in stream_state.items() if k != "partitions"}
                extra = b"," + encode(rest)[1:-1] if rest else b""
                streams.append(encode(stream) + b':{"partitions":[' + b",".join(pieces) + b"]" + extra + b"}")
            parts.append(b'"bookmarks":{' + b",".join(streams) + b"}")
        return b"{" + b",".join(parts) + b"}"

    def _encoded_partition(self, partition: Any) -> bytes:
        key = id(partition)
        cached = self._encoded.get(key)
        if cached is None or key in self._dirty:
            cached = self._encoded[key] = self._encoder.encode(partition)
            self._dirty.discard(key)
        return cached


#: The partition key of a learned window span (whole seconds; ``jobs/spans.py``).
SPAN_KEY = "window_span_seconds"


def _saved_entry(e: SavedExport) -> dict[str, str]:
    return {
        "id": e.export_id,
        "window_start": iso_z(e.window_start),
        "window_end": iso_z(e.window_end),
        **({"created_at": iso_z(e.created_at)} if e.created_at else {}),
    }
