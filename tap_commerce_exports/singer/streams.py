"""One Singer stream class for every export type.

Streams carry what the SDK needs for discovery, the catalog and selection (name, schema,
keys). Records are not produced through ``get_records``: the export engine
(``singer/sync.py``) syncs all selected streams together.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any, cast

from singer_sdk.streams import Stream

from tap_commerce_exports.providers.streams import ExportStreamDefinition
from tap_commerce_exports.singer.account_property import ACCOUNT_PROPERTY, key_properties, with_account

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.singerlib import Catalog

    from tap_commerce_exports.tap import TapCommerceExports

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
        # Every record says whose it is, and that is part of its key (account_property.py).
        super().__init__(tap=tap, schema=with_account(load_schema(definition)), name=definition.name)
        self.primary_keys = key_properties(definition.primary_keys)
        # The catalog says what the sync does: incremental, windows cut on the record's
        # creation time (the stream's window field, a property of every record). Set on
        # the instance: the SDK's __init__ resets a class-level forced_replication_method
        # to None, and a discovered catalog then claimed FULL_TABLE. The state's bookmark
        # (``window_end``, state.py) is a value on this field's axis: every record whose
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

    def post_process(self, row: dict[str, Any], context: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The SDK's per-stream path (its standard tests): the record's account, as the
        engine's path sets it (``ExportSync._emit``). That path reads one account."""
        row[ACCOUNT_PROPERTY] = cast("TapCommerceExports", self._tap).settings.account
        return row

    def get_records(self, context: Mapping[str, Any] | None) -> Iterable[dict[str, Any]]:
        """Only for singer-sdk's per-stream path (its standard tests); a normal run syncs
        all streams together through ``singer/sync.py``."""
        from tap_commerce_exports.singer.sync import ExportSync

        tap = cast("TapCommerceExports", self._tap)
        yield from ExportSync(tap, tap.settings).iter_stream_records(self)
