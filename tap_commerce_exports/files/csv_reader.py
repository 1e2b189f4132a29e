"""Stream a Next Commerce export CSV as typed records.

Why this shape: export files can be large, so the file is read row by row (never whole),
and all per-column decisions (property name, converter, primary-key and window checks)
are taken once when the header is read. The converters are the validation: a cell that
converts is a value of its schema type, so no JSON-schema validator runs per record.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, TextIO

from tap_commerce_exports.errors import InvalidFile, InvalidRecord, MissingKeyColumn
from tap_commerce_exports.files.bytes_check import check_utf8_text
from tap_commerce_exports.files.converters import (
    UTC,
    ColumnKind,
    Converter,
    column_kind,
    csv_converter,
    is_date_time,
)
from tap_commerce_exports.files.csv_columns import read_blocks
from tap_commerce_exports.files.headers import normalize_header, normalize_headers
from tap_commerce_exports.files.reader_base import ExportFileReader
from tap_commerce_exports.files.row_builder import compile_row_builder
from tap_commerce_exports.files.window import WINDOW_COLUMN_SCHEMA, WindowFilter

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
#: Most header columns accepted. Real exports have tens; every column costs a converter
#: and a slot in the compiled row builder, so 150,000 of them would take gigabytes.
MAX_COLUMNS = 4096


def _same(value: object) -> object:
    return value


def _inner_dates(start: object, end: object) -> tuple[str, str]:
    """Dates strictly between which a local date-time is inside ``[start, end)``."""
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        return "9999-99-99", ""  # no shortcut: every value is compared
    return ((start + timedelta(days=1)).date().isoformat(), (end - timedelta(days=1)).date().isoformat())


def _csv_problem(exc: csv.Error) -> str:
    """Our words for a ``csv.Error`` (its wording is the library's and may change)."""
    text = str(exc)
    if "field larger than field limit" in text:
        return f"a cell is longer than {csv.field_size_limit()} characters"
    if "new-line character seen in unquoted field" in text:
        return "a line break inside an unquoted cell"
    if "unexpected end of data" in text or "EOF" in text:
        return "the file ends inside a quoted cell"
    return "malformed quoting"


class CsvFileReader(ExportFileReader):
    """Typed records of one CSV export file.

    Opening the reader checks the bytes (UTF-8, no NUL), reads and normalizes the header
    and prepares the per-column converters; iterating yields records (empty cell -> None).
    Columns the schema does not know are kept as strings (listed in ``unknown_columns``).

    A bad row (wrong number of cells, a value its converter rejects, an empty primary
    key) becomes an :class:`InvalidRecord` passed to ``on_invalid``: if that returns, the
    row is skipped and counted in ``records_rejected``; if it raises, the error
    propagates. Counters are final once iteration ends (or the iterator is closed).

    Each primary key is read from the first of its ``key_columns`` candidates the header
    has (the key's own name by default); that column becomes the key property. A header
    with none of them raises :class:`MissingKeyColumn`: every row would lack its key, and
    one clear file-level message beats one per row (and a keyless stream is never made).

    A file without the window's column is read whole (``window_column`` stays None): the
    server chose its rows by the range asked. Naive date-times are read in
    ``naive_timezone``; without one they are UTC and ``naive_timestamps`` says whether
    any was seen.
    """

    #: The open file (None until ``_open`` opened it).
    _file: TextIO | None = None
    _blocks_tried = False

    def _open(self, schema: Mapping[str, Any]) -> None:
        check_utf8_text(self.path, self.file_label)
        # utf-8-sig: a BOM is not part of the first header cell (even a quoted one).
        self._file = open(self.path, newline="", encoding="utf-8-sig", errors="strict")  # noqa: SIM115
        self._reader = csv.reader(self._file)
        header = self._read_header()

        # the schema's types first; a column it lacks may be typed by ``column_types``
        properties: Mapping[str, Any] = {**self.column_types, **schema.get("properties", {})}
        self.columns = normalize_headers(header)
        self._take_key_columns()
        self._converters: list[Converter | None] = [
            self._convert(properties[c]) if c in properties else None for c in self.columns
        ]
        #: Each column's converter kind, for the columnar path (``csv_columns.py``).
        self.kinds: list[ColumnKind] = [
            column_kind(properties[c]) if c in properties else None for c in self.columns
        ]
        if self.window is not None:
            self._type_window_column(self.window, properties)
        self._build = compile_row_builder(self.columns, self._converters, self.primary_keys)

    def _type_window_column(self, window: WindowFilter, properties: Mapping[str, Any]) -> None:
        """Find the window column and give it the window field's date-time converter.

        Whatever the file calls it (``created_at``, ``Date Created``...), the column is
        typed by the window field's schema, so its cells are validated date-times and
        the window check can compare instants. Not finding it is an error only once the
        file turns out to have rows (see ``_records``): an empty export is fine.
        """
        column = window.find_column(self.columns, normalize_header)
        if column is None:
            return
        typed_by = properties.get(column) or properties.get(window.field) or WINDOW_COLUMN_SCHEMA
        converter = self._convert(typed_by)
        if not is_date_time(typed_by):
            raise InvalidFile(
                f"{self.file_label}: column '{column}' cannot place rows in date windows "
                f"(stream '{self.stream}'): its schema type is not a date-time"
            )
        self._converters[self.columns.index(column)] = converter
        self.kinds[self.columns.index(column)] = "date-time"
        self.window_column = column

    def _take_key_columns(self) -> None:
        """Make the first candidate column of each primary key (``key_columns``) that key;
        a column already called like the key but not chosen becomes ``<key>_2``."""
        for key in self.primary_keys:
            candidates = [normalize_header(c) for c in self.key_columns.get(key, (key,))]
            found = next((c for c in candidates if c in self.columns), None)
            if found is None:
                raise MissingKeyColumn(
                    stream=self.stream,
                    file=self.file_label,
                    looked_for=tuple(dict.fromkeys(candidates)),
                    columns=self.columns,
                )
            if found != key:
                if key in self.columns:
                    self.columns[self.columns.index(key)] = f"{key}_2"
                self.columns[self.columns.index(found)] = key

    def _convert(self, property_schema: Mapping[str, Any]) -> Converter | None:
        """A column's converter; naive date-times in ``naive_timezone`` (none: UTC, noted)."""
        if self.naive_timezone is not None:
            return csv_converter(property_schema, self.naive_timezone)
        return csv_converter(property_schema, UTC, self._saw_naive)

    def _saw_naive(self) -> None:
        self.naive_timestamps = True

    def _read_header(self) -> list[str]:
        try:
            for row in self._reader:
                if row:
                    if len(row) > MAX_COLUMNS:
                        raise InvalidFile(
                            f"{self.file_label}: the CSV header has {len(row)} columns, more than "
                            f"the {MAX_COLUMNS} accepted: the file is damaged or not an export"
                        )
                    return row
        except csv.Error as exc:
            raise InvalidFile(f"{self.file_label}: unreadable CSV header: {_csv_problem(exc)}") from None
        raise InvalidFile(f"{self.file_label}: empty file, no CSV header line")

    def typed_blocks(self, types: Mapping[str, Any]) -> Iterator[tuple[int, dict[str, Any]]]:
        """The file as typed Arrow blocks (``csv_columns.py``), once, before iterating."""
        if self._started or self._blocks_tried:
            return iter(())
        self._blocks_tried = True
        return read_blocks(self, types)

    # -- iteration -----------------------------------------------------------------

    def _records(self) -> Iterator[dict[str, object]]:
        # Hot loop: locals only; counters are written back once, in ``finally``.
        build = self._build
        reader = self._reader
        window = self.window
        rows = out_of_window = rejected = no_window_value = 0
        try:
            skip = self.skip_rows  # rows a block read took (blank lines are no rows)
            while skip and (row := next(reader, None)) is not None:
                skip -= 1 if row else 0
            if window is None or self.window_column is None:
                # No window, or a file without its column: every row is the export's.
                for row in reader:
                    rows += 1
                    try:
                        record = build(row)
                    except ValueError:
                        if not row:  # a blank line is not a row
                            rows -= 1
                            continue
                        rejected += 1
                        self._reject(row)
                        continue
                    yield record
            else:
                field, start, end = self.window_column, window.start, window.end
                # Bounds are aware datetimes; cells keep their own offsets, so compare
                # instants (parsing one validated cell per row), never the texts.
                instant_of: Callable[[Any], object] = (
                    datetime.fromisoformat if isinstance(start, datetime) else _same
                )
                # Most rows lie days inside the window: a cell whose LOCAL date is 2+ days
                # after start's date and 2+ days before end's date is inside whatever its
                # offset (offsets are under 24 h), so only rows near an edge are parsed.
                inner_lo, inner_hi = _inner_dates(start, end)
                for row in reader:
                    rows += 1
                    try:
                        record = build(row)
                    except ValueError:
                        if not row:
                            rows -= 1
                            continue
                        rejected += 1
                        self._reject(row)
                        continue
                    value = record[field]
                    if value is None:
                        no_window_value += 1
                    elif inner_lo < value[:10] < inner_hi:  # type: ignore[index]
                        pass
                    elif not start <= instant_of(value) < end:  # type: ignore[operator]
                        out_of_window += 1
                        continue
                    yield record
        except csv.Error as exc:
            raise InvalidFile(
                f"{self.file_label}: unreadable CSV near line {reader.line_num}: {_csv_problem(exc)}"
            ) from None
        finally:
            self.rows_read += rows
            self.records_out_of_window += out_of_window
            self.records_rejected += rejected
            self.records_without_window_value += no_window_value
            self.close()

    def _reject(self, row: list[str]) -> None:
        """Say exactly what is wrong with ``row`` and hand it to ``on_invalid``."""
        error = self._diagnose(row)
        self._on_invalid(error)

    def _diagnose(self, row: list[str]) -> InvalidRecord:
        # The reader's line_num is the row's LAST physical line; quoted cells may span
        # several, so step back over the line breaks inside the cells.
        breaks = sum(len(_LINE_BREAK.findall(cell)) for cell in row)
        position = f"line {self._reader.line_num - breaks}"

        def invalid(column: str | None, value: object, reason: str) -> InvalidRecord:
            return InvalidRecord(
                stream=self.stream,
                file=self.file_label,
                position=position,
                column=column,
                value=value,
                reason=reason,
            )

        if len(row) != len(self.columns):
            return invalid(None, row, f"row has {len(row)} cells but the header has {len(self.columns)}")
        for column, converter, cell in zip(self.columns, self._converters, row, strict=False):
            if not cell:
                if column in self.primary_keys:
                    return invalid(column, None, "primary key is empty")
                continue
            if converter is None:
                continue
            try:
                converter(cell)
            except ValueError as exc:
                return invalid(column, cell, str(exc))
        return invalid(None, row, "row could not be converted")  # pragma: no cover

    # -- resource handling ---------------------------------------------------------

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._file is not None:
            self._file.close()
