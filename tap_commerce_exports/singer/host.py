"""The narrow surface the sync needs from whoever runs it (the Tap), and from a stream.

Why a protocol and not the Tap: the sync reads five things of the Tap (its settings,
state, stream maps, configuration and selected streams), and depending on the whole Tap
made ``tap.py``, ``singer/streams.py`` and ``singer/sync.py`` import each other. Now the
Tap implements :class:`SyncHost` without importing it, streams ask their host for their
records, and the sync imports neither.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from singer_sdk.mapper import PluginMapper

    from tap_commerce_exports.config.run_settings import Settings
    from tap_commerce_exports.providers.streams import ExportStreamDefinition


class SyncStream(Protocol):
    """What the sync reads of one stream (``singer/streams.py``'s ExportStream is one)."""

    @property
    def name(self) -> str: ...
    @property
    def schema(self) -> dict[str, Any]: ...
    @property
    def mask(self) -> Mapping[tuple[str, ...], bool]: ...
    @property
    def primary_keys(self) -> Sequence[str]: ...
    @property
    def definition(self) -> ExportStreamDefinition: ...

    def widen_schema(self, schema: dict[str, Any]) -> None:
        """Take the columns a file added (singer-sdk's per-stream path conforms to it)."""


class SyncHost(Protocol):
    """What a sync runs on: the Tap implements it."""

    @property
    def settings(self) -> Settings: ...
    @property
    def config(self) -> Mapping[str, Any]: ...
    @property
    def mapper(self) -> PluginMapper: ...
    @property
    def sync_state(self) -> dict[str, Any]:
        """The state the sync reads and writes (``singer/bookmarks.py``), as a plain dict."""

    def selected_streams(self) -> Sequence[SyncStream]:
        """The streams the catalog selected, in the Tap's order."""

    def stream_records(self, stream: SyncStream) -> Iterator[dict[str, Any]]:
        """singer-sdk's per-stream path: ``stream``'s records through the one sync."""
