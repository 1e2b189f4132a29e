"""Where records that don't fit their schema go when ``on_invalid_record`` is ``log``.

Never dropped silently: each one is written as a JSON line (stream, file, position,
column, value, reason) to ``<rejects_dir>/<stream>-<run id>.jsonl``, the file's path is
logged, and the count is reported at the end of the sync.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

import msgspec

from tap_commerce_exports.errors import InvalidRecord

LOGGER = logging.getLogger("tap_commerce_exports.rejects")


class RejectsLog:
    """Appends rejected records to one file per stream."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self._files: dict[str, IO[bytes]] = {}
        self.counts: dict[str, int] = {}
        self.paths: dict[str, Path] = {}

    def __call__(self, error: InvalidRecord) -> None:
        out = self._files.get(error.stream)
        if out is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"{error.stream}-{self.run_id}.jsonl"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            out = os.fdopen(fd, "ab")
            self._files[error.stream] = out
            self.paths[error.stream] = path
            LOGGER.warning("stream '%s': invalid records are written to %s", error.stream, path)
        value = (
            error.value
            if isinstance(error.value, (str, int, float, bool, type(None), list, dict))
            else str(error.value)
        )
        out.write(
            msgspec.json.encode(
                {
                    "stream": error.stream,
                    "file": error.file,
                    "position": error.position,
                    "column": error.column,
                    "value": value,
                    "reason": error.reason,
                }
            )
            + b"\n"
        )
        self.counts[error.stream] = self.counts.get(error.stream, 0) + 1

    def close(self) -> None:
        for out in self._files.values():
            out.close()
        for stream, count in self.counts.items():
            LOGGER.warning(
                "stream '%s': %d invalid record(s) rejected, see %s", stream, count, self.paths[stream]
            )


def fail_on_invalid(error: InvalidRecord) -> None:
    """``on_invalid_record: fail``: the first invalid record stops its stream."""
    raise error
