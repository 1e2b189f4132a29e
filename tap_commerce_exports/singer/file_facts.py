"""What an account's files need and do not say: the zone of their naive timestamps and
the types of their metadata columns, read from the account's own API once per run.

Why here and lazily: the store publishes both (``GET /store/`` ``timezone``, ``GET
/metadata/``), but only to a token with the scopes, and only a run that reads a window
needs them; so they are read on an account's first window, and what cannot be read
stays unknown (a note in the log, never an error). The zone falls back to the
``file_timezone`` setting, then to UTC (the reader then says so once per stream).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import tzinfo
from threading import Lock
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from tap_commerce_exports.errors import UserError
from tap_commerce_exports.providers.base import StoreFacts

if TYPE_CHECKING:
    from tap_commerce_exports.providers.base import ExportProvider

LOGGER = logging.getLogger("tap_commerce_exports.sync")


class FileFacts:
    """Per account: its files' zone and declared column types (read once, on first use)."""

    def __init__(self, providers: Mapping[str, ExportProvider], file_timezone: str | None) -> None:
        self._providers = providers
        self._fallback = ZoneInfo(file_timezone) if file_timezone else None
        self._fallback_name = file_timezone
        self._known: dict[str, tuple[tzinfo | None, StoreFacts]] = {}
        self._lock = Lock()

    def zone(self, account: str) -> tzinfo | None:
        """The zone of ``account``'s naive timestamps (None: not known, read as UTC)."""
        return self._of(account)[0]

    def column_types(self, account: str, stream: str) -> Mapping[str, Mapping[str, Any]]:
        """The types ``account`` declares for the columns it adds to ``stream``'s files."""
        return self._of(account)[1].column_types.get(stream, {})

    def _of(self, account: str) -> tuple[tzinfo | None, StoreFacts]:
        with self._lock:
            known = self._known.get(account)
            if known is None:
                known = self._known[account] = self._read(account)
            return known

    def _read(self, account: str) -> tuple[tzinfo | None, StoreFacts]:
        provider = self._providers.get(account)
        try:
            facts = provider.store_facts() if provider is not None else StoreFacts()
        except UserError as exc:  # the API failed otherwise: the facts stay unknown
            facts = StoreFacts(notes=(str(exc),))
        for note in facts.notes:
            LOGGER.info("account '%s': %s", account, note)
        if facts.timezone is not None:
            if self._fallback_name and self._fallback_name != facts.timezone:
                LOGGER.warning(
                    "account '%s': the store's time zone is %s; 'file_timezone' (%s) is not used",
                    account,
                    facts.timezone,
                    self._fallback_name,
                )
            return ZoneInfo(facts.timezone), facts
        return self._fallback, facts
