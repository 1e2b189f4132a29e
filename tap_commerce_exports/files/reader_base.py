"""What every export-file reader shares: its constructor contract, counters and life.

The Singer layer treats CSV (Next Commerce) and JSON-elements (Clover) files alike:
open a reader with the stream's schema, window and keys, look at ``unknown_columns`` /
``window_column``, iterate typed records ONCE, then read the counters. The constructor
is this one for every format (it is the :class:`FileReaderFactory` call); each subclass
only says how its format is opened (``_open``: its columns, its window column, what it
prepares per column), how it becomes records (``_records``) and what to release
(``close``).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import tzinfo
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from tap_commerce_exports.errors import InvalidRecord
from tap_commerce_exports.files.window import WindowFilter


class ExportFileReader(abc.ABC):
    """Typed records of one downloaded export file; iterable once.

    Counters (final once iteration ends or the reader is closed): ``rows_read``,
    ``records_out_of_window``, ``records_rejected``, ``records_without_window_value``.
    Records yielded = rows_read - records_out_of_window - records_rejected.
    ``naive_timestamps``: whether a date-time without an offset was read as UTC for want
    of a ``naive_timezone`` (then the sync warns once).

    ``key_columns`` maps a primary key to the column names it may have in a file, tried
    in order (default: its own name); ``naive_timezone`` is the zone of date-times written
    without an offset (None: UTC); ``column_types`` types columns the schema lacks (a
    store's declared metadata columns). Formats whose files name their keys and write
    instants unambiguously (epoch milliseconds) may ignore these.
    """

    columns: list[str]
    unknown_columns: list[str]
    #: The file's column (or field) holding the window instant: the first of the
    #: window's candidate names the file has; None if it has none (or no window): then
    #: every row is kept, trusted to the server's choice by the range asked.
    window_column: str | None

    def __init__(
        self,
        path: Path,
        schema: Mapping[str, Any],
        *,
        stream: str,
        file_label: str,
        on_invalid: Callable[[InvalidRecord], None],
        window: WindowFilter | None = None,
        primary_keys: Sequence[str] = (),
        key_columns: Mapping[str, Sequence[str]] | None = None,
        naive_timezone: tzinfo | None = None,
        column_types: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.path = Path(path)
        self.column_types: Mapping[str, Mapping[str, Any]] = column_types or {}
        self.key_columns: Mapping[str, Sequence[str]] = key_columns or {}
        self.naive_timezone = naive_timezone
        self.naive_timestamps = False
        self.stream = stream
        self.file_label = file_label
        self.window = window
        self.primary_keys = tuple(primary_keys)
        self._on_invalid = on_invalid
        self.rows_read = 0
        self.records_out_of_window = 0
        self.records_rejected = 0
        self.records_without_window_value = 0
        #: Rows a block read took, which iterating skips (``typed_blocks``).
        self.skip_rows = 0
        self._started = False
        self.window_column = None
        try:
            self._open(schema)
        except BaseException:
            self.close()  # a file refused while opening holds nothing afterwards
            raise
        properties: Mapping[str, Any] = schema.get("properties", {})
        self.unknown_columns = [c for c in self.columns if c not in properties]

    @abc.abstractmethod
    def _open(self, schema: Mapping[str, Any]) -> None:
        """Open the file: set ``columns`` (and ``window_column`` if the file has one) and
        prepare everything per column, once; raise ``InvalidFile`` for a file that cannot
        be read as this stream's export (``close`` then runs)."""

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._started:
            raise RuntimeError(f"{self.file_label}: a {type(self).__name__} can be iterated once")
        self._started = True
        return self._records()

    def typed_blocks(self, types: Mapping[str, Any]) -> Iterator[tuple[int, dict[str, Any]]]:
        """The file as blocks of typed, window-filtered Arrow columns (column -> the
        Arrow type wanted in ``types``): (rows, columns) each, counters set before each
        block. Afterwards the reader is either spent (``spent``: every row was in a
        block) or its records are the rows the blocks did not take. The default: no
        block. A format that can read its files vectorized (CSV: ``csv_columns.py``)
        overrides this; it must give exactly the values its records would carry."""
        return iter(())

    @property
    def spent(self) -> bool:
        """Whether the file was read (iterated, or taken whole as blocks)."""
        return self._started

    def spend(self) -> None:
        """Every row was taken as blocks (``typed_blocks``): close, never iterate."""
        self._started = True
        self.close()

    @abc.abstractmethod
    def _records(self) -> Iterator[dict[str, Any]]:
        """Yield the file's records, counting as it goes."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release what the reader holds (idempotent)."""

    def __enter__(self) -> ExportFileReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class FileReaderFactory(Protocol):
    """How the Singer layer opens a provider's file (a reader class is one): the same
    call for every format, so the provider's facts, not a branch, pick the reader."""

    def __call__(
        self,
        path: Path,
        schema: Mapping[str, Any],
        *,
        stream: str,
        file_label: str,
        on_invalid: Callable[[InvalidRecord], None],
        window: WindowFilter | None = None,
        primary_keys: Sequence[str] = (),
        key_columns: Mapping[str, Sequence[str]] | None = None,
        naive_timezone: tzinfo | None = None,
        column_types: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> ExportFileReader: ...
