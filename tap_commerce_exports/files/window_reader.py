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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tap_commerce_exports.errors import InvalidFile, InvalidRecord, MissingWindowColumn
from tap_commerce_exports.files.reader_base import FileReaderFactory
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


@dataclass(frozen=True)
class WindowReader:
    """Reads windows of one provider's files (its reader, whether its files add columns)."""

    open_file: FileReaderFactory
    on_invalid: Callable[[InvalidRecord], None]
    files_add_columns: bool

    def records(
        self,
        files: WindowFiles,
        target: ReadTarget,
        stamp: tuple[str, Any],
        on_new_columns: Callable[[], None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Typed records of ``files``, each given ``stamp`` (key, value) after its reader.
        ``on_new_columns`` runs once ``target.schema`` was widened by a file's columns,
        before that file's first record."""
        window_filter = files.window
        key, value = stamp
        count = out_of_window = rejected = undated = 0
        window_column = window_filter.field
        for index, path in enumerate(files.paths):
            label = f"{files.stream} export {files.export_id} file {index + 1}"
            with (
                _window_column_hint(),
                self.open_file(
                    path,
                    target.schema,
                    stream=files.stream,
                    file_label=label,
                    on_invalid=self.on_invalid,
                    window=window_filter,
                    primary_keys=files.primary_keys,
                ) as reader,
            ):
                window_column = reader.window_column or window_column
                if self.files_add_columns:
                    new = [c for c in reader.unknown_columns if c not in target.schema["properties"]]
                    if new:
                        _add_columns(files.label, target, new, reader.window_column, window_filter.field)
                        if on_new_columns is not None:
                            on_new_columns()
                for record in reader:  # hot loop: one pass per record
                    record[key] = value
                    yield record
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


def _add_columns(
    label: str, target: ReadTarget, new: list[str], window_column: str | None, window_field: str
) -> None:
    """Widen the stream's schema by the file's columns it does not know: strings,
    except the window column under another name, typed like the window field."""
    properties = target.schema["properties"]
    added = {c: dict(UNKNOWN_COLUMN_SCHEMA) for c in new}
    if window_column in added:
        added[window_column] = dict(properties.get(window_field) or WINDOW_COLUMN_SCHEMA)
        LOGGER.info(
            "%s: rows are placed in windows by column '%s' (typed like '%s')",
            label,
            window_column,
            window_field,
        )
    strings = [c for c in new if c != window_column]
    if strings:
        LOGGER.info("%s: columns not in the schema kept as strings: %s", label, ", ".join(strings))
    target.schema = dict(target.schema, properties={**properties, **added})


@contextmanager
def _window_column_hint() -> Iterator[None]:
    """Say which setting fixes a file without a window column, in the error's one line."""
    try:
        yield
    except MissingWindowColumn as exc:
        raise InvalidFile(
            f'{exc}: set \'window_columns\' to {{"{exc.stream}": "<column>"}} naming the '
            "column that holds each row's creation time"
        ) from None
