"""What a provider declares about each of its export types.

A provider module lists one :class:`ExportStreamDefinition` per export type. The Singer
layer turns each into a stream; the export-job layer uses ``export_type``; the file layer
uses ``schema_path`` and ``window_field``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExportStreamDefinition:
    """One export type of one provider, as one Singer stream.

    Attributes:
        name: Singer stream name (the contract's table).
        export_type: The provider's export type code (``order_list``, ``ORDERS``).
        primary_keys: Record properties that identify a record.
        window_field: The record property whose instant decides which date window a
            record belongs to. The tap keeps a record only if this instant lies in the
            half-open window ``[start, end)`` it asked for (see ``windows.py``), so
            adjacent windows never lose or duplicate a boundary row, whichever way the
            provider treats the end of the range.
        schema_path: Path of the JSON schema, relative to ``tap_commerce_exports/schemas``.
    """

    name: str
    export_type: str
    primary_keys: tuple[str, ...]
    window_field: str
    schema_path: str
