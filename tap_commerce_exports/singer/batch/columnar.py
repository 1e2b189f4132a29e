"""A file's typed columns (``files/csv_columns.py``) as one Parquet batch table.

Why here: the file layer types a file's columns as its converters would; what a batch
file holds on top (the output stream's columns in its order, the account on every row,
null for a column the file lacks) is the batch writer's, exactly as
``Table.from_pylist`` fills it from records in ``encoders.ParquetEncoder``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

from tap_commerce_exports.files.reader_base import ExportFileReader
from tap_commerce_exports.singer.batch.file_set import BatchFileSet

T = TypeVar("T")


def batch_table(schema: Any, columns: Mapping[str, Any], rows: int, stamp: tuple[str, Any]) -> Any:
    """``columns`` (name -> typed Arrow column of ``rows`` rows) to ``schema`` (the
    files' :func:`~tap_commerce_exports.singer.batch.encoders.arrow_schema`): the stamp
    (key, value) on every row, whatever the file had; a column the file lacks is null."""
    import pyarrow as pa  # type: ignore[import-not-found,import-untyped,unused-ignore]

    key, value = stamp
    arrays = []
    for field in schema:
        if field.name == key:
            arrays.append(pa.repeat(pa.scalar(value, field.type), rows))  # no list of rows
        elif field.name in columns:
            arrays.append(columns[field.name])
        else:
            arrays.append(pa.nulls(rows, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def write_file_columns(reader: ExportFileReader, file_set: BatchFileSet, stamp: tuple[str, Any]) -> bool:
    """Write the reader's file into ``file_set`` block by block as typed columns (each
    block as soon as it is converted) and say whether that took the whole file; if not,
    the reader's records are the rest (none was written, if no block was)."""
    schema = file_set.arrow_schema
    key = stamp[0]
    blocks = reader.typed_blocks({f.name: f.type for f in schema if f.name != key})
    for rows, columns in ahead(blocks):
        file_set.write_table(batch_table(schema, columns, rows, stamp))
    return reader.spent


def ahead(items: Iterator[T]) -> Iterator[T]:
    """``items``, each made in a thread of its own while the caller uses the one before.

    Why: reading and converting a block (Arrow's CSV parser and compute kernels) and
    writing the one before (Arrow's Parquet writer) both run in C++ without the GIL, so
    on two cores they overlap: the block's rows reach the loader sooner. At most one
    item waits, so memory stays at two blocks. The thread is the only one to advance
    ``items`` (a generator that keeps counters on its reader), and ends before this
    does: when the caller stops early, it stops at its next item."""
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def make() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        handoff.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            handoff.put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, raised there
            handoff.put(("error", exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # a generator stopped early runs its clean-up here, in its thread

    maker = threading.Thread(target=make, name="blocks-ahead", daemon=True)
    maker.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        while maker.is_alive():  # a put waiting on a full queue: make room, then join
            try:
                handoff.get_nowait()
            except queue.Empty:
                pass
            maker.join(timeout=0.05)
