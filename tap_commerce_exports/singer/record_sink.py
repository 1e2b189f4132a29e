"""One callable per record: the catalog's selection, then each stream map, into its writer.

Why one home: RECORD messages and BATCH files must shape a record identically (selection,
stream maps, flattening), and the per-record path must stay one call in the plain case, so
the composition is decided here once per stream, never per record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from singer_sdk.mapper import RemoveRecordTransform, SameRecordTransform

from tap_commerce_exports.singer.selection import record_pruner

RecordWriter = Callable[[dict[str, Any]], None]


def output_maps(mapper: Any, stream_name: str) -> list[Any]:
    """The stream maps of ``stream_name`` that emit records (an alias each), in order."""
    return [m for m in mapper.stream_maps[stream_name] if not isinstance(m, RemoveRecordTransform)]


def is_plain(stream_map: Any) -> bool:
    """Whether a stream map passes records through unchanged (no transform, no flattening)."""
    return isinstance(stream_map, SameRecordTransform) and not stream_map.flattening_enabled


def record_sink(
    deselected: tuple[tuple[str, ...], ...], targets: Sequence[tuple[Any, RecordWriter]]
) -> RecordWriter:
    """Compose ``(stream map, writer)`` pairs into one writer; the plain case IS the writer."""
    writers = [write if is_plain(m) else _mapped(m, write) for m, write in targets]
    prune = record_pruner(deselected)
    if prune is None and len(writers) == 1:
        return writers[0]

    def write_all(record: dict[str, Any]) -> None:
        if prune is not None:
            prune(record)
        for write in writers:
            write(record)

    return write_all


def _mapped(stream_map: Any, write: RecordWriter) -> RecordWriter:
    def transform_and_write(record: dict[str, Any]) -> None:
        mapped = stream_map.transform(dict(record))
        if mapped is not None:
            write(mapped)

    return transform_and_write
