"""One stream's sink: what arrived since the last drain, loaded in one transaction.

Between two drains a sink holds an ordered list of *segments*: BATCH files as announced,
and RECORD buffer files for the records that came between them. The order is the order
of arrival, so that when one key appears twice in a drain, the row that came last wins,
whichever way each copy arrived.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from singer_sdk.helpers._batch import BaseBatchFileEncoding
from singer_sdk.sinks import BatchSink

from target_duckdb_exports.buffer import RecordBuffer
from target_duckdb_exports.columns import columns_of
from target_duckdb_exports.errors import LoaderError
from target_duckdb_exports.warehouse import SourceFile, Table

if TYPE_CHECKING:
    from target_duckdb_exports.target import TargetDuckDBExports

FORMATS = ("jsonl", "parquet")


def table_name(stream: str) -> str:
    """The table of a stream: lower case, anything but letters, digits and ``_`` as ``_``."""
    return re.sub(r"[^0-9a-z_]", "_", stream.lower())


def local_path(url: str, stream: str) -> Path:
    """A BATCH manifest entry (``file:///...`` or a plain path) as a local path."""
    parts = urlsplit(url)
    if parts.scheme not in ("", "file") or parts.netloc not in ("", "localhost"):
        raise LoaderError(
            f"stream {stream!r}: BATCH file {url!r} is not a local file: this loader reads "
            "file:// batch roots only (set the tap's batch_config.storage.root to a local folder)"
        )
    path = Path(unquote(parts.path) if parts.scheme else url)
    if not path.is_file():
        raise LoaderError(
            f"stream {stream!r}: BATCH file {str(path)!r} does not exist: it must stay until the loader "
            "has read it (run the loader as the same user, on the same machine)"
        )
    return path


class DuckDBSink(BatchSink):
    """Stages RECORD and BATCH input of one stream, loads it at each drain."""

    #: Records buffered before the SDK drains this sink on its own: they are on disk,
    #: not in memory, so a drain is sized for DuckDB, not for the loader's RAM.
    MAX_SIZE_DEFAULT = 1_000_000

    def __init__(
        self,
        target: TargetDuckDBExports,
        stream_name: str,
        schema: dict[str, Any],
        key_properties: Sequence[str] | None,
    ) -> None:
        super().__init__(target=target, stream_name=stream_name, schema=schema, key_properties=key_properties)
        self._loader = target
        self._segments: list[SourceFile] = []
        self._buffer: RecordBuffer | None = None
        self._table: Table | None = None
        self._owned: set[Path] = set()  # buffer files: this sink removes them, never a BATCH file
        self._key_markers = [json.dumps(k) + ":" for k in self.key_properties]

    def setup(self) -> None:
        """Create the table, or add the columns this SCHEMA adds (before any row)."""
        super().setup()
        scale = int(self.config.get("number_scale", 9))
        schema = str(self.config.get("default_target_schema") or "main")
        self._table = self._loader.warehouse.table(
            schema, table_name(self.stream_name), columns_of(self.schema, scale), tuple(self.key_properties)
        )

    @property
    def current_size(self) -> int:
        """Records buffered plus BATCH files waiting: a sink with either is drained."""
        return self._batch_records_read + len(self._segments)

    def process_record(self, record: dict[str, Any], context: dict[str, Any]) -> None:
        self._open_buffer(wrapped=False).write(record)

    def take_line(self, line: str) -> bool:
        """Buffer a RECORD message line as it came, if it names every key property
        (else False: the caller decodes it, and the SDK says what is missing)."""
        if not all(marker in line for marker in self._key_markers):
            return False
        self._open_buffer(wrapped=True).write_line(line)
        return True

    def _open_buffer(self, *, wrapped: bool) -> RecordBuffer:
        """The buffer for the next record; a change of kind closes the current one, so
        segments keep the order the records came in."""
        if self._buffer is not None and self._buffer.wrapped != wrapped:
            self._close_buffer()
        if self._buffer is None:
            self._buffer = RecordBuffer(self.config.get("temp_dir"), self.stream_name, wrapped=wrapped)
        return self._buffer

    def process_batch_files(self, encoding: BaseBatchFileEncoding, files: Sequence[str]) -> None:
        """Queue the announced files; DuckDB reads them at the next drain."""
        if encoding.format not in FORMATS:
            raise LoaderError(
                f"stream {self.stream_name!r}: BATCH format {encoding.format!r} is not supported "
                f"(use one of {', '.join(FORMATS)})"
            )
        self._close_buffer()
        compression = str(encoding.compression or "none")
        for url in files:
            path = local_path(url, self.stream_name)
            self._segments.append(SourceFile(path, str(encoding.format), compression))

    def _close_buffer(self) -> None:
        if self._buffer is not None:
            segment = self._buffer.close()
            self._owned.add(segment.path)
            self._segments.append(segment)
            self._buffer = None

    def process_batch(self, context: dict[str, Any]) -> None:
        """Load every segment in one transaction; buffer files are removed after it."""
        self._close_buffer()
        segments, self._segments = self._segments, []
        if not segments:
            return
        assert self._table is not None, "setup() runs before any drain"
        self.logger.info(
            "loading %d file(s) of stream %r in one transaction", len(segments), self.stream_name
        )
        try:
            staged = self._loader.warehouse.load(self._table, segments)
        finally:
            self._remove_owned(segments)
        self.logger.info(
            "loaded %d row(s) of stream %r into %s from %d file(s)",
            staged,
            self.stream_name,
            self._table.qualified,
            len(segments),
        )

    def clean_up(self) -> None:
        """Remove buffer files of records that were never drained (a failed run)."""
        if self._buffer is not None:
            self._buffer.remove()
            self._buffer = None
        self._remove_owned(self._segments)
        super().clean_up()

    def _remove_owned(self, segments: Sequence[SourceFile]) -> None:
        for segment in segments:
            if segment.path in self._owned:
                segment.path.unlink(missing_ok=True)
                self._owned.discard(segment.path)
