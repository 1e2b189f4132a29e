"""The files of one output stream for one window: written streaming, fsync'd, renamed
when complete, each announced at once (see ``singer/batch/__init__.py``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from tap_commerce_exports.config.batch import BatchSettings
from tap_commerce_exports.singer.batch.encoders import (
    CHUNK,
    Encoder,
    JsonlEncoder,
    ParquetEncoder,
    arrow_schema,
    instant_properties,
    utc_instant_converter,
)
from tap_commerce_exports.singer.batch.naming import file_stem

WriteRecord = Callable[[dict[str, Any]], None]


class BatchFileSet:
    """The files of ONE output stream for ONE window: written streaming, rotated every
    ``batch_size`` records, made visible only when complete, each announced (``announce``) at once.

    ``write`` is the per-record call; everything else happens once per file.
    """

    def __init__(
        self,
        settings: BatchSettings,
        *,
        stream: str,
        schema: Mapping[str, Any],
        account: str,
        start: datetime,
        end: datetime,
        run_id: str,
        announce: Callable[[str, list[str]], None],
        part: int = 0,
    ) -> None:
        self.settings = settings
        self.stream = stream
        self.schema = schema
        self._stem = f"{file_stem(settings, stream, account, start, end)}.{run_id}"
        self._part = part
        self._announce = announce
        self._partial: Path | None = None
        self._file: BinaryIO | None = None
        self._encoder: Encoder | None = None
        self._in_file = 0
        self.records = 0
        self._instants = instant_properties(schema)
        self._to_utc = utc_instant_converter(always=settings.format == "parquet")
        self.write: WriteRecord = self._write_utc if self._instants else self._write

    @property
    def arrow_schema(self) -> Any:
        """The Arrow schema of these files when they are Parquet (:func:`arrow_schema`)."""
        return arrow_schema(self.schema)

    @property
    def next_part(self) -> int:
        return self._part

    def _write_utc(self, record: dict[str, Any]) -> None:
        to_utc = self._to_utc
        for name in self._instants:
            value = record.get(name)
            if value is not None:
                record[name] = to_utc(value)
        self._write(record)

    def _write(self, record: dict[str, Any]) -> None:
        encoder = self._encoder
        if encoder is None:
            encoder = self._open()
        encoder.write(record)
        self._in_file += 1
        if self._in_file >= self.settings.batch_size:
            self._close_file()

    def write_table(self, table: Any) -> None:
        """Rows already typed to the files' Arrow schema (the columnar path: instants
        already UTC timestamps), after any records written before them; files rotate
        every ``batch_size`` rows exactly as record by record."""
        offset, rows = 0, table.num_rows
        while offset < rows:
            encoder = self._encoder
            if encoder is None:
                encoder = self._open()
            if not isinstance(encoder, ParquetEncoder):
                raise TypeError("Arrow tables go only into Parquet batch files")
            part = table.slice(offset, self.settings.batch_size - self._in_file)
            encoder.write_table(part)
            offset += part.num_rows
            self._in_file += part.num_rows
            if self._in_file >= self.settings.batch_size:
                self._close_file()

    def _open(self) -> Encoder:
        self._part += 1
        root = self.settings.root
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        final = root / f"{self._stem}.{self._part:04d}{self.settings.suffix}"
        partial = root / f".{final.name}.partial"
        # O_EXCL: never write into someone else's file; 0600: only the owner reads it.
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._partial = partial
        self._file = os.fdopen(fd, "wb", buffering=CHUNK)
        if self.settings.format == "parquet":
            self._encoder = ParquetEncoder(self._file, self.settings.compression, self.schema)
        else:
            self._encoder = JsonlEncoder(self._file, self.settings.compression)
        self._in_file = 0
        return self._encoder

    def _close_file(self) -> None:
        """Finish, fsync and atomically rename the open file (once per file)."""
        if self._encoder is None or self._file is None or self._partial is None:
            return
        self._encoder.finish()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        final = self._partial.with_name(self._partial.name[1 : -len(".partial")])
        os.replace(self._partial, final)
        _fsync_dir(final.parent)
        self.records += self._in_file
        self._encoder = self._file = self._partial = None
        self._in_file = 0
        self._announce(self.stream, [final.as_uri()])

    def complete(self) -> None:
        """Close (and so announce) the last file of the set."""
        self._close_file()

    def discard(self) -> None:
        """Remove the open, unannounced partial file (announced files are the loader's)."""
        if self._file is not None:
            try:
                self._file.close()
            except (OSError, ValueError):
                pass
        if self._partial is not None:
            try:
                self._partial.unlink()
            except FileNotFoundError:
                pass
        self._encoder = self._file = self._partial = None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
