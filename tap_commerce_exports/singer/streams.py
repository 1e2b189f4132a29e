"""One Singer stream class for every export type.

Streams carry what the SDK needs for discovery, the catalog and selection (name, schema,
keys). A CLI run syncs all selected streams together (``Tap.sync_all`` ->
``ExportSync.run``); singer-sdk's per-stream path (``Stream.sync`` -> ``get_records``, as
its standard tests and dry runs use) goes through the same ``ExportSync.sync``, one stream
at a time, and leaves only the writing of RECORD messages to the SDK.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any, cast

from singer_sdk.streams import Stream

from tap_commerce_exports.providers.streams import ExportStreamDefinition
from tap_commerce_exports.singer.account_property import key_properties, with_account

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.mapper import StreamMap
    from singer_sdk.singerlib import Catalog

    from tap_commerce_exports.singer.host import SyncHost

LOGGER = logging.getLogger("tap_commerce_exports.streams")


def load_schema(definition: ExportStreamDefinition) -> dict[str, Any]:
    """The JSON schema shipped next to the code for this stream (or the one it carries)."""
    if definition.schema is not None:
        carried: dict[str, Any] = json.loads(json.dumps(definition.schema))  # a copy to widen
        return carried
    path = resources.files("tap_commerce_exports") / "schemas" / definition.schema_path
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


class ExportStream(Stream):
    """A stream whose records come from a provider's export files."""

    def __init__(self, tap: Tap, definition: ExportStreamDefinition) -> None:
        self.definition = definition
        self._export_tap = tap
        #: Set by :meth:`widen_schema` (a file brought columns the schema lacks).
        self._widened: tuple[dict[str, Any], dict[str, Any]] | None = None
        # Every record says whose it is, and that is part of its key (account_property.py).
        super().__init__(tap=tap, schema=with_account(load_schema(definition)), name=definition.name)
        self.primary_keys = key_properties(definition.primary_keys)
        # The catalog says what the sync does: incremental, windows cut on the record's
        # creation time (the stream's window field, a property of every record). Set on
        # the instance: the SDK's __init__ resets a class-level forced_replication_method
        # to None, and a discovered catalog then claimed FULL_TABLE. The state's bookmark
        # (``window_end``, singer/bookmarks.py) is a value on this field's axis: every record whose
        # window field is before it was emitted.
        self.replication_key = definition.window_field
        self.forced_replication_method = "INCREMENTAL"

    def apply_catalog(self, catalog: Catalog) -> None:
        """Take selection from the catalog, but not another replication method or key:
        the engine always syncs by window from the bookmark, so a catalog that asks for
        FULL_TABLE or another key is told so (once) instead of being silently ignored."""
        super().apply_catalog(catalog)
        asked = (self.forced_replication_method, self.replication_key)
        wanted = ("INCREMENTAL", self.definition.window_field)
        if asked != wanted:
            LOGGER.warning(
                "stream '%s': the catalog asks for replication %s on '%s'; this tap always "
                "syncs INCREMENTAL on '%s' from its bookmark (to load everything again, "
                "clear the state or run Meltano with --full-refresh)",
                self.name,
                asked[0] or "FULL_TABLE",
                asked[1] or "-",
                wanted[1],
            )
            self.forced_replication_method, self.replication_key = wanted

    # singer-sdk's per-stream path. Its Stream takes a schema once: ``schema`` and
    # ``effective_schema`` are read-only properties and ``stream_maps`` is cached on first
    # use, with no public way to widen the schema mid-sync (the missing hook). Files may
    # bring columns the schema lacks (``ProviderFacts.files_add_columns``), so these three
    # public properties are overridden instead of writing the SDK's private attributes.
    def widen_schema(self, schema: dict[str, Any]) -> None:
        """Add the properties of ``schema`` (the sync's, widened by a file's columns) that
        the stream lacks, for the records that follow: the SDK conforms each record to
        its schema and drops what it lacks. Only additions: what the stream has stays."""
        self._widened = None
        widened = []
        for base in (super().schema, super().effective_schema):  # ours; the catalog's, if given
            known = base.get("properties", {})
            added = {k: v for k, v in schema["properties"].items() if k not in known}
            widened.append({**base, "properties": {**known, **added}})
        self._widened = (widened[0], widened[1])

    @property
    def schema(self) -> dict[str, Any]:
        """The stream's schema, as widened by :meth:`widen_schema` if it was."""
        return self._widened[0] if self._widened is not None else super().schema

    @property
    def effective_schema(self) -> dict[str, Any]:
        """What the SDK conforms records to: the catalog's schema (or ours) plus columns
        :meth:`widen_schema` added."""
        return self._widened[1] if self._widened is not None else super().effective_schema

    @property
    def stream_maps(self) -> list[StreamMap]:
        """The tap mapper's maps for this stream, looked up each time rather than cached:
        announcing a widened schema registers it again, which replaces them."""
        mapper = self._export_tap.mapper
        return mapper.stream_maps[self.name] if self.name in mapper.stream_maps else super().stream_maps

    def get_records(self, context: Mapping[str, Any] | None) -> Iterable[dict[str, Any]]:
        """singer-sdk's per-stream path: this stream's records from ``ExportSync.sync``,
        the CLI's own sync (its windows, engine, saved exports, bookmarks and STATE, and
        the closing of all it opened, even when the SDK stops early at a record limit)."""
        yield from cast("SyncHost", self._export_tap).stream_records(self)
