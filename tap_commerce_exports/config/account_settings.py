"""What one account's settings are to the code that reads them, and what the parser asks
of a provider to read them.

Why protocols: providers read an account's settings (its token, host, section) and the
parser asks each provider for its defaults and its own section. Typed against these two
narrow surfaces, ``providers/`` imports ``config/`` and never the other way round: the
table of providers is handed to the parser (``settings.py`` wires them together).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from tap_commerce_exports.config.declarations import Setting


class AccountPlace(Protocol):
    """Which account, on which API host: what an account's settings and a provider's own
    section both say (declared here once)."""

    @property
    def api_url(self) -> str: ...
    @property
    def store(self) -> str | None: ...
    @property
    def merchant_id(self) -> str | None: ...
    @property
    def region(self) -> str: ...


class AccountSettings(AccountPlace, Protocol):
    """One account of a run: its provider, credentials, API host and provider section.
    A one-account run is a run with one of these."""

    @property
    def provider(self) -> str: ...
    @property
    def access_token(self) -> str: ...
    @property
    def api_version(self) -> str: ...
    @property
    def max_requests_per_second(self) -> float: ...
    @property
    def webhook_secret(self) -> str | None: ...
    @property
    def account_source(self) -> str: ...
    @property
    def provider_options(self) -> Mapping[str, Any]: ...

    def setting_name(self, key: str) -> str:
        """What a user edits to change ``key`` of this account."""


class AccountSection(AccountPlace, Protocol):
    """A provider's own settings, parsed: which account, on which API host."""

    @property
    def options(self) -> Mapping[str, Any]: ...


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class ProviderDefaults(Protocol):
    """The facts of a provider the parser's defaults and checks come from."""

    @property
    def name(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def streams(self) -> Sequence[_Named]: ...
    @property
    def default_window_days(self) -> int: ...
    @property
    def max_window_days(self) -> int | None: ...
    @property
    def default_max_concurrent_exports(self) -> int: ...
    @property
    def requests_per_second(self) -> float: ...
    @property
    def app_requests_per_second(self) -> float | None: ...
    @property
    def app_max_concurrent_requests(self) -> int | None: ...
    @property
    def supports_webhook(self) -> bool: ...


class ProviderRules(Protocol):
    """A provider class as the parser sees it: its facts, its own settings and section."""

    @property
    def facts(self) -> ProviderDefaults: ...
    @property
    def settings_properties(self) -> Sequence[Setting]: ...

    def check_account_object(self, values: Mapping[str, Any], source: str) -> None: ...
    def account_of(self, settings: AccountSettings) -> str: ...
    def read_section(self, config: Mapping[str, Any], *, require_credentials: bool) -> AccountSection: ...
