"""Batch file names: stream, account, window and run id, so that two runs or two accounts
never collide and the next run can tell which files a bookmark covers."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone

from tap_commerce_exports.config.batch import BatchSettings

_STAMP = "%Y%m%dT%H%M%SZ"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_NAME = re.compile(
    r"\.(?P<start>\d{8}T\d{6}Z)-(?P<end>\d{8}T\d{6}Z)\.[0-9a-f]{12}\.\d{4,}\.(?:jsonl|parquet)(?:\.gz)?$"
)


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text)[:80] or "_"


def new_run_id() -> str:
    """A per-run id: file names of two runs never collide (even of the same window)."""
    return uuid.uuid4().hex[:12]


def file_stem(settings: BatchSettings, stream: str, account: str, start: datetime, end: datetime) -> str:
    """``{prefix}{stream}.{account}.{start}-{end}`` (UTC stamps): what cleanup matches."""
    return (
        f"{settings.prefix}{_safe(stream)}.{_safe(account)}."
        f"{start.astimezone(timezone.utc).strftime(_STAMP)}-{end.astimezone(timezone.utc).strftime(_STAMP)}"
    )


def window_end(name: str, head: str) -> datetime | None:
    """The window end a batch file's ``name`` (after ``head``, its stream and account)
    carries, or None if the name is not one of ours."""
    match = _NAME.fullmatch(name[len(head) :])
    if match is None:
        return None
    return datetime.strptime(match["end"], _STAMP).replace(tzinfo=timezone.utc)


def file_head(settings: BatchSettings, stream: str, account: str) -> str:
    """What every file name of ``stream`` and ``account`` starts with."""
    return f"{settings.prefix}{_safe(stream)}.{_safe(account)}"
