"""What every provider module supplies: its facts and the HTTP calls of one export.

The export-job layer (``jobs/``) drives any :class:`ExportProvider` through the same
lifecycle: create -> get status (until done) -> file URLs -> download. A provider module
holds only its platform's facts: endpoints, auth headers, statuses, limits, file format.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit

from tap_commerce_exports.config.values import opt_str
from tap_commerce_exports.errors import ConfigError
from tap_commerce_exports.files.csv_reader import CsvFileReader
from tap_commerce_exports.http.ratelimit import Limiter, LimiterChain, RateLimiter

if TYPE_CHECKING:
    from tap_commerce_exports.config.account_settings import AccountSettings
    from tap_commerce_exports.config.declarations import Setting
    from tap_commerce_exports.files.reader_base import FileReaderFactory
    from tap_commerce_exports.providers.streams import ExportStreamDefinition
    from tap_commerce_exports.windows import Window


def same_instant(moment: datetime) -> datetime:
    """The window value codec of files that write instants as text (compared as datetimes)."""
    return moment


@dataclass(frozen=True)
class ProviderFacts:
    """Published (or deliberately chosen) limits and defaults of one platform."""

    name: str
    title: str
    file_format: Literal["csv", "json"]
    streams: tuple[ExportStreamDefinition, ...]
    default_window_days: int
    max_window_days: int | None
    default_max_concurrent_exports: int
    requests_per_second: float
    max_concurrent_requests: int | None
    supports_webhook: bool
    #: Limits of one app across all the accounts that installed it (None: none published);
    #: the defaults of ``app_max_requests_per_second`` / ``app_max_concurrent_requests``.
    app_requests_per_second: float | None = None
    app_max_concurrent_requests: int | None = None
    #: The reader of its export files, and their name's extension on disk (default: the
    #: format's name).
    file_reader: FileReaderFactory = CsvFileReader
    file_extension: str = ""
    #: A window bound as its files write instants (ISO text kept as datetime, epoch ms...):
    #: applied once per job, never per record.
    window_value: Callable[[datetime], Any] = same_instant
    #: Whether its files may carry columns the schema lacks (kept as strings).
    files_add_columns: bool = False
    #: Words for the shared settings' descriptions (``--about``, Meltano).
    token_description: str = ""
    api_url_example: str = ""
    concurrency_note: str = ""

    @property
    def extension(self) -> str:
        """The extension its downloaded files get on disk."""
        return self.file_extension or self.file_format


@dataclass(frozen=True)
class AccountSection:
    """A provider's own settings, parsed: which account, on which API host."""

    api_url: str
    store: str | None = None
    merchant_id: str | None = None
    #: The provider's region, for a provider that has them ("" otherwise).
    region: str = ""
    #: The provider's own options, parsed (``Settings.provider_options``).
    options: Mapping[str, Any] = field(default_factory=dict)


class ExportPhase(enum.Enum):
    """Where a provider says an export is, in provider-agnostic terms."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class ExportStatus:
    """One reading of an export's status."""

    export_id: str
    phase: ExportPhase
    raw_status: str
    percent_complete: int | None = None
    file_urls: tuple[str, ...] | None = None  # known with the status (Clover), else None
    #: What the answer says the export was made for (None where it says nothing): a saved
    #: export is followed only if these are its window's (``jobs/saved_exports.py``).
    export_type: str | None = None
    window: tuple[datetime, datetime] | None = None


class ExportsBusy(Exception):
    """The provider refused to start an export now (HTTP 503): try later.

    Such a refusal concerns the whole account (too many exports running, outside the
    export hours), so the engine holds back every create of the account on one clock.
    ``reason`` is the server's own words, as the provider module read them from the
    answer (what a 503 says is not published), or None if it gave none.
    """

    def __init__(self, retry_after: float | None = None, reason: str | None = None) -> None:
        super().__init__("provider busy")
        self.retry_after = retry_after
        self.reason = reason

    def describe(self) -> str:
        """``HTTP 503: "<the server's reason>"``, or ``HTTP 503, no reason given``."""
        return f'HTTP 503: "{self.reason}"' if self.reason else "HTTP 503, no reason given"


class CreateRefused(Exception):
    """The provider refused a create for its range (HTTP 400): a shorter window may pass.

    Why a kind of its own: a provider's published cap (Clover: 30 days) may be read more
    strictly than written (is a range of exactly 30 days "at most 30 days"?). The engine
    retries such a window ONCE, cut in two, instead of failing the stream. ``reason`` is
    the server's own words, or None if it gave none.
    """

    def __init__(self, reason: str | None = None) -> None:
        super().__init__("create refused")
        self.reason = reason

    def describe(self) -> str:
        """``HTTP 400: "<the server's reason>"``, or ``HTTP 400, no reason given``."""
        return f'HTTP 400: "{self.reason}"' if self.reason else "HTTP 400, no reason given"


@dataclass(frozen=True)
class StoreFacts:
    """What an account's own API says about its files, read once per run.

    ``timezone``: the IANA zone its files' naive date-times are in (None: not known);
    ``column_types``: stream -> column (normalized) -> JSON schema, for the columns a store
    adds to its exports (metadata) whose type it declares; ``notes``: why something could
    not be read (one line each, for the log).
    """

    timezone: str | None = None
    column_types: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class FoundExport:
    """An export the provider listed: its window, its status, when it was created."""

    window_start: datetime
    window_end: datetime
    status: ExportStatus
    created_at: datetime | None


class CreateAnswerLost(Exception):
    """A create was sent but its answer never came (5xx, timeout, dropped connection).

    The provider may or may not have made the export: sending the create again could
    leave two exports running. The engine asks :meth:`ExportProvider.find_export` first.
    ``reason`` is our description of what was lost.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ExportGone(Exception):
    """The provider no longer knows this export id (HTTP 404): it expired or was deleted."""


@dataclass(frozen=True)
class Availability:
    """Whether exports may be created now, and if not, when they may."""

    open: bool
    opens_at: datetime | None = None
    description: str = ""


class ExportProvider(abc.ABC):
    """The HTTP side of one platform's export API (the "repository" of export jobs)."""

    facts: ClassVar[ProviderFacts]
    #: Whether :meth:`find_export` can find an export whose create answer was lost.
    can_find_exports: bool = False

    #: Settings only this provider reads (its account, host, region...), for the schema.
    settings_properties: ClassVar[tuple[Setting, ...]] = ()
    #: The keys an object of the ``accounts`` setting may carry (the rest of an account's
    #: settings come from the top level).
    account_keys: tuple[str, ...] = ("store", "access_token", "sandbox_token", "api_url")

    def __init__(self, settings: AccountSettings, *, app_limiter: RateLimiter | None = None) -> None:
        self.settings = settings
        #: The limiter every account's client of one app shares (``app_max_*`` settings).
        self.app_limiter = app_limiter

    @classmethod
    def check_account_object(cls, values: Mapping[str, Any], source: str) -> None:
        """One object of ``accounts``: only this provider's account keys, each a text."""
        unknown = sorted(k for k in values if k not in cls.account_keys)
        if unknown:
            raise ConfigError(
                f"{source} has {', '.join(repr(k) for k in unknown)}, which an account of "
                f"{cls.facts.title} cannot set: use {', '.join(cls.account_keys)} (other "
                "settings apply to every account: set them at the top level)"
            )
        for key, value in values.items():
            if value is not None and not isinstance(value, (str, int)):
                raise ConfigError(f"{source}: '{key}' must be a text value")

    @classmethod
    def account_of(cls, settings: AccountSettings) -> str:
        """The account ``settings`` name (keys its state, its records, its messages)."""
        return settings.store or settings.merchant_id or "default"

    @classmethod
    def read_section(cls, config: Mapping[str, Any], *, require_credentials: bool) -> AccountSection:
        """This provider's settings section: check it (one-line ConfigError on a mistake)
        and say the API base URL and account; the shared checks of api_url follow.

        The default suits a provider with no host of its own: ``api_url`` is required and
        its host is the account."""
        api_url = opt_str(config, "api_url")
        if not api_url:
            raise ConfigError(f"setting 'api_url' is missing: set it to the {cls.facts.title} API's base URL")
        return AccountSection(api_url=api_url, store=opt_str(config, "store") or urlsplit(api_url).hostname)

    @property
    def account(self) -> str:
        """The store / merchant this config reads; keys the state bookmarks."""
        return self.account_of(self.settings)

    def limiter(self, rate: float, max_concurrent: int | None = None) -> Limiter:
        """This account's own limiter (per token), joined to the app's if there is one."""
        own = RateLimiter(rate, max_concurrent)
        return own if self.app_limiter is None else LimiterChain(own, self.app_limiter)

    @abc.abstractmethod
    def check_access(self) -> str:
        """Prove the credentials work WITHOUT creating an export; return a summary."""

    @abc.abstractmethod
    def create_export(self, export_type: str, window: Window) -> ExportStatus:
        """Start an export; raise :class:`ExportsBusy` if the provider says later."""

    @abc.abstractmethod
    def get_export(self, export_id: str) -> ExportStatus:
        """Read the export's status now."""

    @abc.abstractmethod
    def file_urls(self, status: ExportStatus, *, refresh: bool = False) -> list[str]:
        """The download URLs of a DONE export, asking the API for fresh ones if ``refresh``."""

    def recent_exports(self, export_type: str, since: datetime) -> list[FoundExport]:
        """Exports of ``export_type`` created at or after ``since``, newest first, if the
        provider can list its exports (``can_find_exports``; default: it can't)."""
        return []

    def find_export(self, export_type: str, window: Window, since: datetime) -> ExportStatus | None:
        """The newest export of ``export_type`` over exactly ``window`` created since ``since``."""
        for found in self.recent_exports(export_type, since):
            if found.window_start == window.start and found.window_end == window.end:
                return found.status
        return None

    def availability(self, now: datetime) -> Availability:
        """Whether exports can be created at ``now`` (default: always)."""
        return Availability(open=True)

    def store_facts(self) -> StoreFacts:
        """The account's time zone and declared column types, if its API publishes them
        and the token may read them (default: nothing known). Never raises for a refusal:
        what the token may not read stays unknown, with a note saying why."""
        return StoreFacts()

    def close(self) -> None:  # noqa: B027 - optional hook: most providers hold nothing to release
        """Release HTTP resources."""
