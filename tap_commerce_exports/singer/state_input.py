"""STATE as it comes in (``--state``, or Meltano's backend): input, read defensively.

Why a module of its own: the STATE is a file anyone may have edited, restored from an
old backup or written by another tool. Every shape the tap cannot read (``"bookmarks":
[]``, a string where a partition belongs, a bookmark without a UTC offset, year 1 minus
a lookback) ends as ONE line naming the place to fix, never as an ``AttributeError`` or
``OverflowError`` traceback from the planning code. Values read from it are shown only
when they are short printable text (a saved id with a newline would forge a log line;
one of 2 MB would make a 2 MB line); ids follow the same rules as an API's answers
(:func:`~tap_commerce_exports.providers.answers.id_problem`). Partitions of accounts no
longer configured are dropped, so the STATE carries only what this run can move, and is
not re-serialized with every STATE message forever.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime, timezone
from typing import Any

from tap_commerce_exports.errors import StateError
from tap_commerce_exports.providers.answers import json_type

LOGGER = logging.getLogger("tap_commerce_exports.state")
#: The earliest bookmark that means anything (and that a lookback can go back from).
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
_FIX = "fix or remove the state (--state) to go on"


def shown(value: object, limit: int = 64) -> str:
    """``value`` quoted when it is short printable text, else its type and size."""
    if isinstance(value, str) and value.isprintable() and len(value) <= limit:
        return f"'{value}'"
    if isinstance(value, str):
        return f"a string of {len(value)} characters"
    return json_type(value)


def _refuse(where: str, problem: str) -> StateError:
    return StateError(f"STATE {where} {problem}: {_FIX}")


def check_shape(state: object) -> None:
    """Raise :class:`StateError` at the first place the tap's reading would trip on."""
    if not isinstance(state, dict):
        raise StateError(f"STATE must be a JSON object (got {json_type(state)}): {_FIX}")
    bookmarks = state.get("bookmarks")
    if bookmarks is None:
        return
    if not isinstance(bookmarks, dict):
        raise StateError(f"STATE's 'bookmarks' must be an object (got {json_type(bookmarks)}): {_FIX}")
    for stream, entry in bookmarks.items():
        where = f"bookmarks.{stream}" if shown(stream).startswith("'") else "bookmarks.<a stream>"
        if not isinstance(entry, dict):
            raise _refuse(where, f"must be an object (got {json_type(entry)})")
        partitions = entry.get("partitions")
        if partitions is None:
            continue
        if not isinstance(partitions, list):
            raise _refuse(f"{where}.partitions", f"must be a list (got {json_type(partitions)})")
        for i, partition in enumerate(partitions):
            _check_partition(partition, f"{where}.partitions[{i}]")


def _check_partition(partition: object, where: str) -> None:
    if not isinstance(partition, dict):
        raise _refuse(where, f"must be an object (got {json_type(partition)})")
    context = partition.get("context")
    if not isinstance(context, dict):
        raise _refuse(f"{where}.context", f"must be an object (got {json_type(context)})")
    account = context.get("account")
    if account is not None and not isinstance(account, str):
        raise _refuse(f"{where}.context.account", f"must be a string (got {json_type(account)})")
    value = partition.get("replication_key_value")
    if value is not None:
        parse_bookmark(value, f"{where}.replication_key_value")
    exports = partition.get("exports")
    if exports is not None and not isinstance(exports, list):
        raise _refuse(f"{where}.exports", f"must be a list (got {json_type(exports)})")


def parse_bookmark(value: object, where: str) -> datetime:
    """A bookmark: an ISO 8601 instant with its UTC offset, not before 1970."""
    if not isinstance(value, str):
        raise _refuse(where, f"must be a string (got {json_type(value)})")
    try:
        instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _refuse(where, f"is not an ISO 8601 instant ({shown(value)})") from None
    if instant.tzinfo is None:
        raise _refuse(where, f"has no UTC offset ({shown(value)}): write it with Z")
    if instant < EARLIEST:
        raise _refuse(where, f"is before 1970 ({shown(value)})")
    return instant


def drop_other_accounts(state: dict[str, Any], accounts: Collection[str]) -> int:
    """Remove the partitions of accounts not in ``accounts`` (streams left empty go too);
    say so in one line. Returns how many partitions were dropped."""
    dropped, gone, streams = 0, set[object](), []
    bookmarks = state.get("bookmarks") or {}
    for stream in list(bookmarks):
        partitions = bookmarks[stream].get("partitions")
        if not partitions:
            continue
        kept = []
        for p in partitions:
            account = p["context"].get("account")
            if account in accounts:
                kept.append(p)
            else:
                gone.add(account)
        if len(kept) == len(partitions):
            continue
        dropped += len(partitions) - len(kept)
        streams.append(shown(stream))
        if kept or len(bookmarks[stream]) > 1:
            bookmarks[stream]["partitions"] = kept
        else:
            del bookmarks[stream]
    if dropped:
        LOGGER.info(
            "STATE: dropped %d partition(s) of %d account(s) no longer configured (stream %s); "
            "their bookmarks are not kept",
            dropped,
            len(gone),
            ", ".join(streams[:5]) + (f" and {len(streams) - 5} more" if len(streams) > 5 else ""),
        )
    return dropped
