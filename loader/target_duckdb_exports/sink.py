"""One stream's sink: what arrived since the last drain, loaded in one transaction.

Between two drains a sink hands the Warehouse *segments* in the order they arrive: BATCH
files as announced (each read by DuckDB at once, while the tap writes the next), and
RECORD buffer files for the records that came between them. The Warehouse reads each
straight into the table or into the sink's stage (warehouse.py says when and why). When
one key appears twice in a drain, the row that came last wins, whichever way each copy
arrived.
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
        self._buffer: RecordBuffer | None = None
        self._table: Table | None = None
        self._stage = target.warehouse.new_stage()
        self._files_added = 0  # files read since the last drain (into the table or the stage)
        self._key_markers = [json.dumps(k).encode() + b":" for k in self.key_properties]
        self._max_size: int | None = None

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
        """Records buffered plus files staged: a sink with either is drained."""
        return self._batch_records_read + self._files_added

    def process_record(self, record: dict[str, Any], context: dict[str, Any]) -> None:
        self._open_buffer(wrapped=False).write(record)

    def take_line(self, line: bytes) -> bool:
        """Buffer a RECORD message line as it came, if it names every key property
        (else False: the caller decodes it, and the SDK says what is missing); the
        record is counted as read (the SDK's ``tally_record_read``)."""
        for marker in self._key_markers:
            if marker not in line:
                return False
        buffer = self._buffer
        if buffer is None or not buffer.wrapped:
            buffer = self._open_buffer(wrapped=True)
        buffer.write_line(line)
        self._total_records_read += 1
        self._batch_records_read += 1
        return True

    def is_full_now(self) -> bool:
        """:attr:`is_full`, with the size limit read once (it is a setting: it does not
        change during a run), for the per-line path."""
        if self._max_size is None:
            self._max_size = self.max_size
        return self._batch_records_read + self._files_added >= self._max_size

    def _open_buffer(self, *, wrapped: bool) -> RecordBuffer:
        """The buffer for the next record; a change of kind closes the current one, so
        segments keep the order the records came in."""
        if self._buffer is not None and self._buffer.wrapped != wrapped:
            self._close_buffer()
        if self._buffer is None:
            self._buffer = RecordBuffer(self.config.get("temp_dir"), self.stream_name, wrapped=wrapped)
        return self._buffer

    def process_batch_files(self, encoding: BaseBatchFileEncoding, files: Sequence[str]) -> None:
        """Read the announced files now (the next drain commits them)."""
        if encoding.format not in FORMATS:
            raise LoaderError(
                f"stream {self.stream_name!r}: BATCH format {encoding.format!r} is not supported "
                f"(use one of {', '.join(FORMATS)})"
            )
        self._close_buffer()
        compression = str(encoding.compression or "none")
        for url in files:
            path = local_path(url, self.stream_name)
            self._add_file(SourceFile(path, str(encoding.format), compression))

    def _add_file(self, source: SourceFile) -> None:
        assert self._table is not None, "setup() runs before any message with rows"
        self._loader.warehouse.add(self._table, self._stage, source)
        self._files_added += 1

    def _close_buffer(self) -> None:
        """Hand the records buffered so far to the Warehouse. The buffer file then belongs
        to it: kept until the commit that covers its rows (a rollback replays it), then
        removed."""
        if self._buffer is not None:
            buffer, self._buffer = self._buffer, None
            self._add_file(buffer.close())

    def process_batch(self, context: dict[str, Any]) -> None:
        """Load everything read since the last drain, in one transaction."""
        self._close_buffer()
        files, self._files_added = self._files_added, 0
        if not files:
            return
        assert self._table is not None, "setup() runs before any drain"
        self.logger.info("loading %d file(s) of stream %r in one transaction", files, self.stream_name)
        staged = self._loader.warehouse.load(self._table, self._stage)
        self.logger.info(
            "loaded %d row(s) of stream %r into %s from %d file(s)",
            staged,
            self.stream_name,
            self._table.qualified,
            files,
        )

    def clean_up(self) -> None:
        """Remove the buffer file and the stage of records never loaded (a failed run)."""
        if self._buffer is not None:
            self._buffer.remove()
            self._buffer = None
        if self._files_added:
            self._loader.warehouse.drop_stage(self._stage)
            self._files_added = 0
        super().clean_up()
