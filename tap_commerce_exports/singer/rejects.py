"""Where records that don't fit their schema go when ``on_invalid_record`` is ``log``.

Never dropped silently: each one is written as a JSON line (stream, file, position,
column, value, reason) to ``<rejects_dir>/<stream>-<run id>.jsonl``, the file's path is
logged, and the count is reported at the end of the sync.

Why so careful with the files: rejected values are customers' data (names, e-mails,
addresses), kept here and nowhere else (log lines name only column, type and position).
So the folder is created 0700 whatever the umask, each file is created 0600 with
``O_EXCL`` (never appended to a file someone else prepared) and ``O_NOFOLLOW`` (a symlink
planted at that name is refused, not followed).
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

import msgspec

from tap_commerce_exports.errors import ConfigError, InvalidRecord

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
            path = self.directory / f"{error.stream}-{self.run_id}.jsonl"
            out = self._create(path)
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

    def _create(self, path: Path) -> IO[bytes]:
        """A new private file at ``path`` in a private folder, or one clear line why not."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            # mkdir's mode is masked by the umask and ignored for an existing folder.
            if self.directory.stat().st_mode & 0o077:
                os.chmod(self.directory, 0o700)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            raise ConfigError(
                f"rejects file {path} already exists (or is a link): remove it, or point "
                "'rejects_dir' at a folder of your own"
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"rejects file {path} cannot be created ({exc.strerror or type(exc).__name__}): "
                "check 'rejects_dir'"
            ) from None
        return os.fdopen(fd, "ab")

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
