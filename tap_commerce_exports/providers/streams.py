"""What a provider declares about each of its export types.

A provider module lists one :class:`ExportStreamDefinition` per export type. The Singer
layer turns each into a stream; the export-job layer uses ``export_type``; the file layer
uses ``schema_path``, ``window_field`` and ``window_field_aliases``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


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
        window_field_aliases: Other names a file may give the window field's column,
            tried in this order when ``window_field`` is not in the file. Why: column
            names are not always published (a store's orders file may say
            ``date_created`` where the API object says ``created_at``), and a window
            column that is not found would leave boundary rows unchecked. Whatever name
            the column has, it is typed by ``window_field``'s schema.
        schema: The JSON schema itself, for a provider whose schemas do not ship in
            ``tap_commerce_exports/schemas`` (a plug-in's, a test's); wins over
            ``schema_path``.
        key_aliases: Other names a file may give the (single) primary key's column,
            tried in order when the key's own name is not in the file (an orders file
            may say ``Order Number``); the column found becomes the key property.
    """

    name: str
    export_type: str
    primary_keys: tuple[str, ...]
    window_field: str
    schema_path: str
    window_field_aliases: tuple[str, ...] = ()
    schema: Mapping[str, Any] | None = field(default=None, compare=False)
    key_aliases: tuple[str, ...] = ()

    @property
    def window_field_names(self) -> tuple[str, ...]:
        """Every name the window column may have in a file, the schema's own first."""
        return (self.window_field, *self.window_field_aliases)

    def key_columns(self, override: str | None = None) -> dict[str, tuple[str, ...]]:
        """Each primary key -> the column names it may have in a file, in order:
        ``override`` alone (a ``key_columns`` setting) or the key's own name then its
        aliases (a single key only; a compound key is read by its own names)."""
        if len(self.primary_keys) != 1:
            return {key: (key,) for key in self.primary_keys}
        key = self.primary_keys[0]
        return {key: (override,) if override else (key, *self.key_aliases)}
