"""Batch file names: stream, account, window, pipeline and run, so that two runs, two
accounts or two pipelines never collide, and the next run can tell which files are its
own pipeline's and which a bookmark covers.

``{prefix}{stream}.{account}-{digest}.{start}-{end}.{pipeline}-{run}.{part}{suffix}``

Why a digest: the readable parts keep only ``[A-Za-z0-9_-]`` (80 characters at most), so
``store.1`` and ``store_1``, ``shop-ä`` and ``shop-ö``, or two ids alike in their first 80
characters read the same; the digest of the raw stream and account tells them apart (the
second file replaced the first, and the loader read one account twice). Why a pipeline
id: it is kept in the STATE (each partition's ``batch_pipeline``), so the clean-up of the
next run removes only files this pipeline wrote, never another pipeline's in the same
folder.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone

from tap_commerce_exports.config.batch import BatchSettings
from tap_commerce_exports.errors import ConfigError

_STAMP = "%Y%m%dT%H%M%SZ"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
#: A run's (or a pipeline's) id: 12 hex digits.
RUN_ID = re.compile(r"[0-9a-f]{12}\Z")
_TAIL = r"\.(?P<start>\d{8}T\d{6}Z)-(?P<end>\d{8}T\d{6}Z)\.(?P<pipeline>[0-9a-f]{12})-[0-9a-f]{12}\.\d{4,}"


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text)[:80] or "_"


def _digest(stream: str, account: str) -> str:
    return hashlib.sha256(f"{stream}\0{account}".encode()).hexdigest()[:10]


def new_run_id() -> str:
    """A per-run (or per-pipeline) id: file names of two runs never collide."""
    return uuid.uuid4().hex[:12]


def file_head(settings: BatchSettings, stream: str, account: str) -> str:
    """What every file name of ``stream`` and ``account`` starts with: readable, then the
    digest of the raw pair (one head per pair, whatever the characters)."""
    return f"{settings.prefix}{_safe(stream)}.{_safe(account)}-{_digest(stream, account)}"


def file_stem(settings: BatchSettings, stream: str, account: str, start: datetime, end: datetime) -> str:
    """``{head}.{start}-{end}`` (UTC stamps): what cleanup matches."""
    return (
        f"{file_head(settings, stream, account)}."
        f"{start.astimezone(timezone.utc).strftime(_STAMP)}-{end.astimezone(timezone.utc).strftime(_STAMP)}"
    )


def window_end(settings: BatchSettings, name: str, head: str, pipeline: str) -> datetime | None:
    """The window end a finished batch file's ``name`` (after ``head``) carries, or None if
    the name is not a finished file of this pipeline in this format."""
    rest = name[len(head) :]
    if not name.startswith(head) or not rest.endswith(settings.suffix):
        return None
    match = re.fullmatch(_TAIL, rest[: -len(settings.suffix)])
    if match is None or match["pipeline"] != pipeline:
        return None
    return datetime.strptime(match["end"], _STAMP).replace(tzinfo=timezone.utc)


def check_distinct(settings: BatchSettings, pairs: Iterable[tuple[str, str]]) -> None:
    """Refuse two (stream, account) pairs whose files would have one name."""
    seen: dict[str, tuple[str, str]] = {}
    for stream, account in pairs:
        head = file_head(settings, stream, account)
        other = seen.setdefault(head, (stream, account))
        if other != (stream, account):
            raise ConfigError(
                f"batch files of stream '{other[0]}' of account '{other[1]}' and of stream '{stream}' "
                f"of account '{account}' would have the same names: sync them in two runs with "
                "different batch_config.storage.prefix values"
            )
