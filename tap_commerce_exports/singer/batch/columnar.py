"""A file's typed columns (``files/csv_columns.py``) as one Parquet batch table.

Why here: the file layer types a file's columns as its converters would; what a batch
file holds on top (the output stream's columns in its order, the account on every row,
null for a column the file lacks) is the batch writer's, exactly as
``Table.from_pylist`` fills it from records in ``encoders.ParquetEncoder``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tap_commerce_exports.files.ahead import ahead
from tap_commerce_exports.files.reader_base import ExportFileReader
from tap_commerce_exports.singer.batch.file_set import BatchFileSet


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
