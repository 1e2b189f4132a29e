"""RECORD messages, buffered to a JSON Lines file that DuckDB reads like a BATCH file.

Why a file and not rows inserted from Python: DuckDB's ``read_json`` parses, types and
stages a file at its own speed, and one code path (the same reader, the same casts, the
same upsert) then serves RECORD and BATCH alike. Memory stays flat whatever a drain
holds. Values are encoded with msgspec, money ``Decimal`` as an exact JSON number.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from target_duckdb_exports.warehouse import SourceFile

#: Bytes gathered before one write to the file.
CHUNK = 1 << 20


class RecordBuffer:
    """One buffer file (mode 0600, removed once its rows are committed, or at exit)."""

    def __init__(self, directory: str | None, stream: str, *, wrapped: bool = False) -> None:
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in stream)[:60]
        fd, name = tempfile.mkstemp(prefix=f"target-duckdb-exports-{safe}-", suffix=".jsonl", dir=directory)
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._buf = bytearray()
        self._encode_into = msgspec.json.Encoder(decimal_format="number").encode_into
        self.rows = 0
        #: lines are whole RECORD messages as they came (see :meth:`write_line`)
        self.wrapped = wrapped

    def write(self, record: Any) -> None:
        buf = self._buf
        self._encode_into(record, buf, -1)
        buf += b"\n"
        self.rows += 1
        if len(buf) >= CHUNK:
            self._file.write(buf)
            buf.clear()

    def write_line(self, line: bytes) -> None:
        """A RECORD message line as it came: DuckDB takes the row from its "record"."""
        buf = self._buf
        buf += line
        if not line.endswith(b"\n"):
            buf += b"\n"
        self.rows += 1
        if len(buf) >= CHUNK:
            self._file.write(buf)
            buf.clear()

    def close(self) -> SourceFile:
        """The finished file, ready to be read."""
        if self._buf:
            self._file.write(self._buf)
            self._buf.clear()
        self._file.close()
        return SourceFile(self.path, "jsonl", wrapped=self.wrapped, temporary=True)

    def remove(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)
