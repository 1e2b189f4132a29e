"""One finished window's files -> its typed records, in file order, inside the window.

Why its own module: reading a window's files is neither the engine's business (it only
brings the files) nor the Singer layer's (it only writes what comes out); RECORD and
BATCH output read a window the same way, here. What a window's read adds to a single
file's reader: the window filter over several files, the columns a file adds to the
stream's schema, the stamp every record gets after the reader (the account: a file's own
value never wins), and the one log line that counts the window.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any, Protocol

from tap_commerce_exports.errors import InvalidRecord
from tap_commerce_exports.files.reader_base import ExportFileReader, FileReaderFactory
from tap_commerce_exports.files.window import WINDOW_COLUMN_SCHEMA, WindowFilter

LOGGER = logging.getLogger("tap_commerce_exports.sync")
#: The type of a column a file has and the stream's schema does not.
UNKNOWN_COLUMN_SCHEMA = {"type": ["string", "null"]}


class ReadTarget(Protocol):
    """Where a window's read keeps what outlives it: the stream's schema (widened by a
    file's new columns) and the count of records read."""

    schema: dict[str, Any]
    records: int


@dataclass(frozen=True)
class WindowFiles:
    """The files of one finished window and how to name them in log lines."""

    stream: str
    #: The window's label (``orders [start, end)``), for log lines.
    label: str
    export_id: str | None
    paths: Sequence[Path]
    window: WindowFilter
    primary_keys: Sequence[str]
    #: Each key -> the column names it may have in a file, in order (default: its own).
    key_columns: Mapping[str, Sequence[str]] = field(default_factory=dict)
    #: The zone of the files' naive timestamps (None: not known; they are read as UTC).
    naive_timezone: tzinfo | None = None
    #: Types of columns the stream's schema lacks, as the account declares them (metadata).
    column_types: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class WindowReader:
    """Reads windows of one provider's files (its reader, whether its files add columns)."""

    open_file: FileReaderFactory
    on_invalid: Callable[[InvalidRecord], None]
    files_add_columns: bool
    #: (stream, what) already said: the lines said once per stream, not per window.
    said: set[tuple[str, str]] = field(default_factory=set)

    def records(
        self,
        files: WindowFiles,
        target: ReadTarget,
        stamp: tuple[str, Any],
        on_new_columns: Callable[[], None] | None = None,
        take_file: Callable[[ExportFileReader], bool] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Typed records of ``files``, each given ``stamp`` (key, value) after its reader.
        ``on_new_columns`` runs once ``target.schema`` was widened by a file's columns,
        before that file's first record. ``take_file(reader)`` may take a file's rows
        another way first (typed blocks: ``ExportFileReader.typed_blocks``) and say
        whether that took them all; the rows it did not take are yielded as records,
        and the counters count both alike."""
        window_filter = files.window
        key, value = stamp
        count = out_of_window = rejected = undated = 0
        window_column = window_filter.field
        for index, path in enumerate(files.paths):
            label = f"{files.stream} export {files.export_id} file {index + 1}"
            with self.open_file(
                path,
                target.schema,
                stream=files.stream,
                file_label=label,
                on_invalid=self.on_invalid,
                window=window_filter,
                primary_keys=files.primary_keys,
                key_columns=files.key_columns,
                naive_timezone=files.naive_timezone,
                column_types=files.column_types,
            ) as reader:
                window_column = reader.window_column or window_column
                if self.files_add_columns:
                    new = [c for c in reader.unknown_columns if c not in target.schema["properties"]]
                    if new:
                        _add_columns(files, target, new, reader.window_column)
                        if on_new_columns is not None:
                            on_new_columns()
                if take_file is None or not take_file(reader):
                    for record in reader:  # hot loop: one pass per record
                        record[key] = value
                        yield record
                self._say_once(files, reader)
                out_of_window += reader.records_out_of_window
                rejected += reader.records_rejected
                undated += reader.records_without_window_value
                count += reader.rows_read - reader.records_out_of_window - reader.records_rejected
        target.records += count
        extra = ""
        if out_of_window:
            extra += (
                f"; skipped {out_of_window} whose '{window_filter.field}' is outside this "
                "window (each is emitted with the window it falls in)"
            )
        if rejected:
            extra += f", {rejected} rejected"
        if undated:
            extra += f", {undated} kept without a '{window_column}' value"
        LOGGER.info("%s: emitted %d records from export %s%s", files.label, count, files.export_id, extra)

    def _say_once(self, files: WindowFiles, reader: ExportFileReader) -> None:
        """What a stream's files lack, said once per stream (after a file with rows)."""
        if not reader.rows_read:
            return
        lines: list[tuple[str, int, str]] = []
        if reader.window_column is None:
            lines.append(
                (
                    "trusted",
                    logging.INFO,
                    f"stream '{files.stream}': its files have no column for each row's creation time "
                    f"(looked for {', '.join(files.window.candidates)}), so each window's rows are "
                    "the export's as the server chose them by the range asked: boundary rows are "
                    "trusted to the server (a row exactly on a window boundary may come twice; "
                    "its key dedupes it). 'window_columns' names a column the tap does not find",
                )
            )
        if reader.naive_timestamps:
            lines.append(
                (
                    "naive",
                    logging.WARNING,
                    f"stream '{files.stream}': its files write timestamps without a UTC offset and "
                    "the store's time zone could not be read (scope store:read): they are read as "
                    "UTC; set 'file_timezone' to the store's zone (e.g. \"America/New_York\")",
                )
            )
        for what, level, line in lines:
            if (files.stream, what) not in self.said:
                self.said.add((files.stream, what))
                LOGGER.log(level, "%s", line)


def _add_columns(files: WindowFiles, target: ReadTarget, new: list[str], window_column: str | None) -> None:
    """Widen the stream's schema by the file's columns it does not know: typed as the
    account declares them (``column_types``: its metadata), else strings; the window
    column under another name is typed like the window field."""
    properties = target.schema["properties"]
    window_field = files.window.field
    added = {c: dict(files.column_types.get(c) or UNKNOWN_COLUMN_SCHEMA) for c in new}
    if window_column in added:
        added[window_column] = dict(properties.get(window_field) or WINDOW_COLUMN_SCHEMA)
        LOGGER.info(
            "%s: rows are placed in windows by column '%s' (typed like '%s')",
            files.label,
            window_column,
            window_field,
        )
    typed = [c for c in new if c != window_column and c in files.column_types]
    if typed:
        LOGGER.info("%s: columns typed as the store declares them: %s", files.label, ", ".join(typed))
    strings = [c for c in new if c != window_column and c not in files.column_types]
    if strings:
        LOGGER.info("%s: columns not in the schema kept as strings: %s", files.label, ", ".join(strings))
    target.schema = dict(target.schema, properties={**properties, **added})
