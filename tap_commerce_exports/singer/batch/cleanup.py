"""Batch files the NEXT run removes: those whose window ends at or before the bookmark it
starts from (that bookmark came back from the loader after it loaded them)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from tap_commerce_exports.config.batch import BatchSettings
from tap_commerce_exports.singer.batch.naming import file_head, window_end

LOGGER = logging.getLogger("tap_commerce_exports.batch")


def remove_loaded(settings: BatchSettings, stream: str, account: str, bookmark: datetime) -> int:
    """Remove this stream and account's batch files (and stale partials) whose window
    ends at or before ``bookmark``: the state holding that bookmark came back from the
    loader after it loaded them. Other streams', accounts' and prefixes' files stay."""
    root = settings.root
    if not root.is_dir():
        return 0
    head = file_head(settings, stream, account)
    removed = 0
    for path in _candidates(root, head):
        name = path.name
        if name.startswith("."):
            name = name[1:].removesuffix(".partial")
        end = window_end(name, head)
        if end is not None and end <= bookmark:
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                pass
    if removed:
        LOGGER.info(
            "stream '%s': removed %d batch file(s) the loader already took (up to the bookmark)",
            stream,
            removed,
        )
    return removed


def _candidates(root: Path, head: str) -> Iterable[Path]:
    for entry in os.scandir(root):
        name = entry.name
        if (name.startswith(head + ".") or name.startswith("." + head + ".")) and entry.is_file(
            follow_symlinks=False
        ):
            yield Path(entry.path)
