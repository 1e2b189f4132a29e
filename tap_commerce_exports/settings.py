"""Every setting of the tap: its JSON schema (for --about / Meltano) and its parsing.

Parsing is strict and speaks to the user: each mistake becomes a :class:`ConfigError`
whose one-line message names the setting and says what to put there.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal, overload
from urllib.parse import urlsplit

from singer_sdk import typing as th

from tap_commerce_exports.accounts import read_accounts
from tap_commerce_exports.errors import ConfigError
from tap_commerce_exports.http.hosts import is_loopback
from tap_commerce_exports.providers.base import ProviderFacts, opt_str
from tap_commerce_exports.providers.registry import (
    DEFAULT_PROVIDER,
    PROVIDER_CLASSES,
    PROVIDERS,
    provider_facts,
)
from tap_commerce_exports.singer.batch import BatchSettings, parse_batch_config

MAX_DAYS = 36500  # a century: beyond it, dates overflow and nothing sensible is meant
MAX_SECONDS = 30 * 86400.0
#: Days every run re-reads before its bookmark. Windows are chosen by creation time, so
#: an order's later changes (payment capture, fulfilment, most refunds: days, not weeks)
#: reach the warehouse only through a re-read. Measured with scripts/lookback_cost.py:
#: daily runs create the same exports whatever the lookback (one per stream while
#: lookback + the run interval fit in one window) and read about (1 + lookback) days of
#: rows; 7 days caught every sandbox order's last change, 3 days 70 %, 0 days 10 %.
DEFAULT_LOOKBACK_DAYS = 7


def _provider_words(words: str) -> str:
    """Each provider's words (a field of its facts) for a shared setting, joined by "or":
    the descriptions name the platforms without this module naming any."""
    return " or ".join(getattr(c.facts, words) for c in PROVIDER_CLASSES.values() if getattr(c.facts, words))


def _max_window_note() -> str:
    return "".join(
        f"; {c.facts.title} allows at most {c.facts.max_window_days}"
        for c in PROVIDER_CLASSES.values()
        if c.facts.max_window_days is not None
    )


def _shared_default_window_days() -> int | None:
    """The providers' default window, for --about, when they all have the same one."""
    defaults = {c.facts.default_window_days for c in PROVIDER_CLASSES.values()}
    return defaults.pop() if len(defaults) == 1 else None


def _account_keys_note() -> str:
    return "; ".join(f"{c.facts.title}: {', '.join(c.account_keys)}" for c in PROVIDER_CLASSES.values())


def _defaults_note(value: Callable[[ProviderFacts], str]) -> str:
    return ", ".join(value(c.facts) for c in PROVIDER_CLASSES.values())


#: The order settings are listed in (``--about``, Meltano): each provider's own settings
#: (``settings_properties``) take their place among the shared ones.
_ORDER = (
    "provider",
    "accounts",
    "accounts_file",
    "access_token",
    "store",
    "merchant_id",
    "region",
    "sandbox_token",
    "api_url",
    "api_version",
    "start_date",
    "end_date",
    "window_days",
    "lookback",
    "window_columns",
    "poll_interval",
    "poll_max_interval",
    "export_timeout",
    "export_attempts",
    "min_window_days",
    "max_concurrent_exports",
    "max_concurrent_exports_total",
    "max_requests_per_second",
    "app_max_requests_per_second",
    "app_max_concurrent_requests",
    "outside_hours",
    "on_invalid_record",
    "rejects_dir",
    "max_download_file_mb",
    "max_download_export_mb",
    "max_decompression_ratio",
    "download_timeout",
    "webhook_listen",
    "webhook_secret",
)

_SCHEMA = th.PropertiesList(
    th.Property(
        "provider",
        th.StringType,
        default=DEFAULT_PROVIDER,
        allowed_values=sorted(PROVIDERS),
        description=f"Which platform to read: {' or '.join(f'`{n}`' for n in PROVIDERS)}.",
    ),
    th.Property(
        "accounts",
        th.ArrayType(th.ObjectType(additional_properties=True)),
        secret=True,
        description="Several accounts in one run: a list of objects, one per account, with that "
        "account's own keys (" + _account_keys_note() + "); a key an object "
        "leaves out is the top-level setting's. Unset: one account, the top-level settings.",
    ),
    th.Property(
        "accounts_file",
        th.StringType,
        description="Path of a file of accounts (objects as in `accounts`): a JSON list, or one JSON "
        "object per line. Refused unless only its owner can read it (chmod 600). Adds to `accounts`.",
    ),
    th.Property(
        "access_token",
        th.StringType,
        secret=True,
        description=f"API token: {_provider_words('token_description')}.",
    ),
    th.Property(
        "sandbox_token",
        th.StringType,
        description="Token of a local API emulator (the bundled sandbox) on a loopback api_url. When set, it is sent instead of access_token, so a real token from the environment or .env never reaches the emulator; refused unless api_url is on this machine.",
    ),
    th.Property(
        "api_url",
        th.StringType,
        description=f"Base-URL override, e.g. {_provider_words('api_url_example')}. Must be https unless on loopback.",
    ),
    th.Property(
        "start_date",
        th.DateTimeType,
        required=True,
        description="Earliest instant to export (ISO-8601 date or date-time; UTC if no offset).",
    ),
    th.Property(
        "end_date", th.DateTimeType, description="Export up to this instant (exclusive). Default: now."
    ),
    th.Property(
        "window_days",
        th.NumberType,
        default=_shared_default_window_days(),
        description=f"Days covered by one export. Default 30{_max_window_note()}.",
    ),
    th.Property(
        "lookback",
        th.NumberType,
        default=DEFAULT_LOOKBACK_DAYS,
        description="Days before the saved bookmark at which the next run starts again, to catch changes made to rows after their window was read (those rows are emitted again, by design). 0 reads each window once.",
    ),
    th.Property(
        "window_columns",
        th.ObjectType(additional_properties=th.StringType),
        description='Per stream, the file column that holds each row\'s creation time, when the tap does not find it by itself, e.g. `{"orders": "Placed On"}` (header text or its snake_case form).',
    ),
    th.Property(
        "poll_interval",
        th.NumberType,
        default=5,
        description="Seconds before the first status check of a pending export; later checks wait a fifth of the time waited so far.",
    ),
    th.Property(
        "poll_max_interval",
        th.NumberType,
        default=120,
        description="Longest wait in seconds between two status checks.",
    ),
    th.Property(
        "export_timeout",
        th.NumberType,
        default=10800,
        description="Seconds after which an export that is not ready is given up (the stream stops with a clear error; its bookmark stays).",
    ),
    th.Property(
        "export_attempts",
        th.IntegerType,
        default=3,
        description="Exports of one window that may end failed before the window is split in two (or, at 'min_window_days', its stream stops).",
    ),
    th.Property(
        "min_window_days",
        th.NumberType,
        default=1,
        description="Smallest span in days a window that keeps failing is split down to (halves of at least this).",
    ),
    th.Property(
        "max_concurrent_exports",
        th.IntegerType,
        description="Exports in flight at once across all streams. Default: "
        + _defaults_note(lambda f: f"{f.default_max_concurrent_exports} ({f.title}{f.concurrency_note})")
        + ".",
    ),
    th.Property(
        "max_concurrent_exports_total",
        th.IntegerType,
        description="Exports in flight at once across all accounts (max_concurrent_exports holds "
        "per account). Default: no cap beyond each account's.",
    ),
    th.Property(
        "max_requests_per_second",
        th.NumberType,
        description="Client-side API rate limit, per account (token). Default: the provider's published limit ("
        + _defaults_note(lambda f: f"{f.requests_per_second:g} {f.title}")
        + ").",
    ),
    th.Property(
        "app_max_requests_per_second",
        th.NumberType,
        description="API rate limit of the app across all accounts of a run. Default: the provider's "
        "published app limit ("
        + _defaults_note(
            lambda f: (
                f"{f.app_requests_per_second:g} {f.title}" if f.app_requests_per_second else f"none {f.title}"
            )
        )
        + ").",
    ),
    th.Property(
        "app_max_concurrent_requests",
        th.IntegerType,
        description="API requests in flight at once for the app across all accounts of a run. Default: "
        + _defaults_note(
            lambda f: (
                f"{f.app_max_concurrent_requests} {f.title}"
                if f.app_max_concurrent_requests
                else f"none {f.title}"
            )
        )
        + ".",
    ),
    th.Property(
        "on_invalid_record",
        th.StringType,
        default="fail",
        allowed_values=["fail", "log"],
        description="A record that does not fit its schema: `fail` the stream with one line naming it, or `log` it to a rejects file and go on.",
    ),
    th.Property(
        "rejects_dir",
        th.StringType,
        default="tap-commerce-exports-rejects",
        description="Folder for rejects files when on_invalid_record is `log`.",
    ),
    th.Property(
        "max_download_file_mb",
        th.IntegerType,
        default=20480,
        description="Largest export file to download, in MiB (after any Content-Encoding is undone); a larger one stops its stream with a clear error.",
    ),
    th.Property(
        "max_download_export_mb",
        th.IntegerType,
        default=102400,
        description="Largest total of one export's files, in MiB.",
    ),
    th.Property(
        "max_decompression_ratio",
        th.IntegerType,
        default=200,
        description="Most bytes a file may inflate to per byte received when the file host compresses it (a guard against compression bombs; text compresses 5-20x).",
    ),
    th.Property(
        "download_timeout",
        th.IntegerType,
        default=7200,
        description="Seconds within which all files of one export must have downloaded, retries included (cuts off a host that sends a trickle).",
    ),
).to_dict()
_SHARED: dict[str, Any] = dict(_SCHEMA["properties"])
for _cls in PROVIDER_CLASSES.values():
    for _prop in _cls.settings_properties:
        _SHARED.setdefault(_prop.name, _prop.to_dict()[_prop.name])

CONFIG_SCHEMA: dict[str, Any] = {
    **_SCHEMA,
    "properties": {
        **{n: _SHARED[n] for n in _ORDER if n in _SHARED},
        **{n: p for n, p in _SHARED.items() if n not in _ORDER},
    },
}


@dataclass(frozen=True)
class Settings:
    """Parsed, checked settings. Build with :meth:`from_config`."""

    provider: str
    access_token: str
    store: str | None
    merchant_id: str | None
    region: str
    api_url: str
    api_version: str
    start_date: datetime
    end_date: datetime
    window: timedelta
    lookback: timedelta
    poll_interval: float
    poll_max_interval: float
    export_timeout: float
    export_attempts: int
    min_split_window: timedelta
    max_concurrent_exports: int
    max_requests_per_second: float
    outside_hours: str
    on_invalid_record: str
    rejects_dir: Path
    webhook_listen: tuple[str, int] | None
    webhook_secret: str | None
    max_download_file_mb: int = 20480
    max_download_export_mb: int = 102400
    max_decompression_ratio: int = 200
    download_timeout: int = 7200
    #: stream -> the column holding its rows' window instant (``window_columns``).
    window_columns: Mapping[str, str] = field(default_factory=dict)
    batch: BatchSettings | None = None
    #: Exports in flight across all accounts (None: no cap beyond each account's).
    max_concurrent_exports_total: int | None = None
    #: The app's limits across all accounts (None: none).
    app_max_requests_per_second: float | None = None
    app_max_concurrent_requests: int | None = None
    #: Where this account was given (``accounts[1]``; "" for the top-level settings), how
    #: its own keys are named to the user, and which keys it set itself.
    account_source: str = ""
    account_key_format: str = "{key}"
    account_keys: frozenset[str] = frozenset()
    #: Every account of the run, each a full Settings (empty: one account, this one).
    accounts: tuple[Settings, ...] = ()

    @property
    def all_accounts(self) -> tuple[Settings, ...]:
        """The settings of every account of the run (one: these)."""
        return self.accounts or (self,)

    @property
    def account(self) -> str:
        """The account these settings read (store subdomain, merchant id...): keys its state
        and is a property of each of its records."""
        return PROVIDER_CLASSES[self.provider].account_of(self)

    def setting_name(self, key: str) -> str:
        """What a user edits to change ``key`` of this account: ``accounts[1].access_token``
        if the account object set it, else the top-level ``access_token``."""
        return self.account_key_format.format(key=key) if key in self.account_keys else key

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], *, now: datetime | None = None, require_credentials: bool = True
    ) -> Settings:
        """Check every setting; raise ConfigError with one clear line on the first problem.

        With ``accounts`` / ``accounts_file``, each account object is laid over the
        top-level settings and checked as one account; an error says which account."""
        entries = read_accounts(config)
        if not entries:
            return cls._from_one(config, now=now, require_credentials=require_credentials)
        provider = str(config.get("provider") or DEFAULT_PROVIDER).strip().lower()
        provider_cls = PROVIDER_CLASSES.get(provider)
        common = {k: v for k, v in config.items() if k not in ("accounts", "accounts_file")}
        parsed: list[Settings] = []
        seen: dict[str, str] = {}
        for entry in entries:
            if provider_cls is not None:
                provider_cls.check_account_object(entry.values, entry.source)
            merged = {**common, **{k: v for k, v in entry.values.items() if v is not None}}
            try:
                one = cls._from_one(merged, now=now, require_credentials=require_credentials)
            except ConfigError as exc:
                raise ConfigError(f"{entry.source}: {exc}") from None
            one = replace(
                one,
                account_source=entry.source,
                account_key_format=entry.key_format,
                account_keys=frozenset(entry.values),
            )
            if one.account in seen:
                raise ConfigError(
                    f"{entry.source} is account '{one.account}' again (as {seen[one.account]}): "
                    "list each account once"
                )
            seen[one.account] = entry.source
            parsed.append(one)
        return replace(parsed[0], accounts=tuple(parsed))

    @classmethod
    def _from_one(
        cls, config: Mapping[str, Any], *, now: datetime | None, require_credentials: bool
    ) -> Settings:
        """The settings of one account."""
        now = now or datetime.now(timezone.utc)
        provider = str(config.get("provider") or DEFAULT_PROVIDER).strip().lower()
        if provider not in PROVIDERS:
            raise ConfigError(
                f"setting 'provider' is '{provider}': use one of {', '.join(sorted(PROVIDERS))}"
            )
        facts = provider_facts(provider)
        token = str(config.get("access_token") or "")
        if require_credentials and not token and not _opt_str(config, "sandbox_token"):
            raise ConfigError("setting 'access_token' is missing: set it to your API token")

        section = PROVIDER_CLASSES[provider].read_section(config, require_credentials=require_credentials)
        api_url, store, merchant_id = section.api_url, section.store, section.merchant_id
        _check_api_url(api_url)
        sandbox_token = _opt_str(config, "sandbox_token")
        if sandbox_token:
            # A separate setting, not a value of access_token: the real token keeps its
            # usual sources (env var, .env), which outrank any environment of a Meltano
            # project, yet it can never be what is sent to a local emulator.
            host = urlsplit(api_url).hostname or ""
            if not is_loopback(host):
                raise ConfigError(
                    f"setting 'sandbox_token' is set but the API host '{host}' is not on this "
                    "machine: sandbox_token is only for a local sandbox; unset it (or point "
                    "'api_url' at the sandbox)"
                )
            token = sandbox_token

        start = _parse_instant(config.get("start_date"), "start_date", required=True)
        end = _parse_instant(config.get("end_date"), "end_date", required=False) or now
        if end <= start:
            raise ConfigError(
                f"setting 'end_date' ({end.isoformat()}) is not after 'start_date' "
                f"({start.isoformat()}): move one of them"
            )
        window_days = _number(
            config, "window_days", facts.default_window_days, minimum=1 / 24, maximum=MAX_DAYS
        )
        if facts.max_window_days is not None and window_days > facts.max_window_days:
            raise ConfigError(
                f"setting 'window_days' is {window_days:g}: {facts.title} exports cover at most "
                f"{facts.max_window_days} days; set it to {facts.max_window_days} or less"
            )
        lookback = _number(config, "lookback", DEFAULT_LOOKBACK_DAYS, minimum=0, maximum=MAX_DAYS)
        poll_interval = _number(config, "poll_interval", 5, minimum=0.001, maximum=MAX_SECONDS)
        poll_max = _number(config, "poll_max_interval", 120, minimum=0.001, maximum=MAX_SECONDS)
        if poll_max < poll_interval:
            raise ConfigError(
                f"setting 'poll_max_interval' ({poll_max:g}) is below 'poll_interval' ({poll_interval:g}): raise it"
            )
        export_timeout = _number(config, "export_timeout", 10800, minimum=0.001, maximum=MAX_SECONDS)
        max_exports_value = _number(
            config, "max_concurrent_exports", facts.default_max_concurrent_exports, minimum=1, maximum=100
        )
        if not max_exports_value.is_integer():
            raise ConfigError(
                f"setting 'max_concurrent_exports' is {max_exports_value:g}: give a whole number"
            )
        max_exports = int(max_exports_value)
        attempts_value = _number(config, "export_attempts", 3, minimum=1, maximum=100)
        if not attempts_value.is_integer():
            raise ConfigError(f"setting 'export_attempts' is {attempts_value:g}: give a whole number")
        min_window_days = _number(config, "min_window_days", 1, minimum=1 / 24, maximum=MAX_DAYS)
        rps = _number(config, "max_requests_per_second", facts.requests_per_second, minimum=0.01)
        outside_hours = _choice(config, "outside_hours", "wait", ("wait", "stop"))
        on_invalid = _choice(config, "on_invalid_record", "fail", ("fail", "log"))
        rejects_dir = Path(str(config.get("rejects_dir") or "tap-commerce-exports-rejects"))

        max_file_mb = _whole(config, "max_download_file_mb", 20480, minimum=1, maximum=1 << 30)
        max_export_mb = _whole(config, "max_download_export_mb", 102400, minimum=1, maximum=1 << 30)
        if max_export_mb < max_file_mb:
            max_export_mb = max_file_mb  # one file is part of one export
        max_ratio = _whole(config, "max_decompression_ratio", 200, minimum=1, maximum=1_000_000)
        download_timeout = _whole(config, "download_timeout", 7200, minimum=1, maximum=int(MAX_SECONDS))

        window_columns = _window_columns(config, provider)
        total = config.get("max_concurrent_exports_total")
        total_exports = (
            None
            if total is None or total == ""
            else _whole(config, "max_concurrent_exports_total", 1, minimum=1, maximum=10000)
        )
        app_rps = (
            _number(config, "app_max_requests_per_second", facts.app_requests_per_second or 1.0, minimum=0.01)
            if facts.app_requests_per_second is not None or _opt_str(config, "app_max_requests_per_second")
            else None
        )
        app_in_flight = (
            _whole(
                config,
                "app_max_concurrent_requests",
                facts.app_max_concurrent_requests or 1,
                minimum=1,
                maximum=10000,
            )
            if facts.app_max_concurrent_requests is not None
            or _opt_str(config, "app_max_concurrent_requests")
            else None
        )
        webhook_listen = None
        webhook_secret = _opt_str(config, "webhook_secret")
        listen = _opt_str(config, "webhook_listen")
        if listen:
            if not facts.supports_webhook:
                raise ConfigError(
                    f"setting 'webhook_listen' does not apply to {facts.title} (it has no "
                    "export webhook): remove it"
                )
            webhook_listen = _parse_listen(listen)
            if not webhook_secret:
                raise ConfigError(
                    "setting 'webhook_secret' is missing: webhook_listen needs the webhook's signing secret"
                )

        return cls(
            provider=provider,
            access_token=token,
            store=store,
            merchant_id=merchant_id,
            region=section.region,
            api_url=api_url,
            api_version=str(config.get("api_version") or "2024-04-01"),
            start_date=start,
            end_date=end,
            window=timedelta(days=window_days),
            lookback=timedelta(days=lookback),
            poll_interval=poll_interval,
            poll_max_interval=poll_max,
            export_timeout=export_timeout,
            export_attempts=int(attempts_value),
            min_split_window=timedelta(days=min_window_days),
            max_concurrent_exports=max_exports,
            max_requests_per_second=rps,
            outside_hours=outside_hours,
            on_invalid_record=on_invalid,
            rejects_dir=rejects_dir,
            webhook_listen=webhook_listen,
            webhook_secret=webhook_secret,
            max_download_file_mb=max_file_mb,
            max_download_export_mb=max_export_mb,
            max_decompression_ratio=max_ratio,
            download_timeout=download_timeout,
            window_columns=window_columns,
            batch=parse_batch_config(config.get("batch_config")),
            max_concurrent_exports_total=total_exports,
            app_max_requests_per_second=app_rps,
            app_max_concurrent_requests=app_in_flight,
        )


def _window_columns(config: Mapping[str, Any], provider: str) -> dict[str, str]:
    """``window_columns``: an object of stream name -> column name (JSON text accepted,
    as environment variables give it)."""
    value = config.get("window_columns")
    if value is None or value == "" or value == {}:
        return {}
    example = 'e.g. {"orders": "date_created"}'
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigError(
                f"setting 'window_columns' is not a JSON object: give stream -> column, {example}"
            ) from None
    if not isinstance(value, Mapping):
        raise ConfigError(f"setting 'window_columns' must be an object of stream -> column, {example}")
    streams = [d.name for d in provider_facts(provider).streams]
    result: dict[str, str] = {}
    for stream, column in value.items():
        if stream not in streams:
            raise ConfigError(
                f"setting 'window_columns' names stream '{stream}', which {provider_facts(provider).title} "
                f"does not have: use one of {', '.join(streams)}"
            )
        if not isinstance(column, str) or not column.strip():
            raise ConfigError(f"setting 'window_columns' gives stream '{stream}' no column name: {example}")
        result[str(stream)] = column.strip()
    return result


def _opt_str(config: Mapping[str, Any], key: str) -> str | None:
    return opt_str(config, key)


def _check_api_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"setting 'api_url' is '{url}': give a full URL like https://host/path/")
    if parts.username or parts.password:
        raise ConfigError("setting 'api_url' carries credentials: remove them; use 'access_token'")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(
            f"setting 'api_url' uses plain http for '{parts.hostname}': use https "
            "(plain http is allowed only for loopback addresses)"
        )


@overload
def _parse_instant(value: Any, key: str, *, required: Literal[True]) -> datetime: ...
@overload
def _parse_instant(value: Any, key: str, *, required: bool) -> datetime | None: ...
def _parse_instant(value: Any, key: str, *, required: bool) -> datetime | None:
    if value is None or value == "":
        if required:
            raise ConfigError(f"setting '{key}' is missing: give an ISO-8601 date like 2025-01-01")
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ConfigError(
                f"setting '{key}' is '{text}', which is not a date: use ISO-8601 like 2025-01-01 or 2025-01-01T00:00:00Z"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _number(
    config: Mapping[str, Any], key: str, default: float, *, minimum: float, maximum: float = 1e12
) -> float:
    value = config.get(key)
    if value is None or value == "":
        return float(default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting '{key}' is '{value}', which is not a number") from None
    if not number >= minimum:  # also catches NaN
        raise ConfigError(f"setting '{key}' is {value}: it must be at least {minimum:g}")
    if number > maximum:  # also catches infinity
        raise ConfigError(f"setting '{key}' is {value}: it must be at most {maximum:g}")
    return number


def _whole(config: Mapping[str, Any], key: str, default: int, *, minimum: int, maximum: int) -> int:
    number = _number(config, key, default, minimum=minimum, maximum=maximum)
    if not number.is_integer():
        raise ConfigError(f"setting '{key}' is {number:g}: give a whole number")
    return int(number)


def _choice(config: Mapping[str, Any], key: str, default: str, options: tuple[str, ...]) -> str:
    value = str(config.get(key) or default).strip().lower()
    if value not in options:
        raise ConfigError(f"setting '{key}' is '{value}': use one of {', '.join(options)}")
    return value


def _parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"setting 'webhook_listen' is '{text}': use host:port, e.g. 0.0.0.0:8765")
    return (host or "0.0.0.0").strip("[]"), int(port)
