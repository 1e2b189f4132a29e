"""The settings of one run, parsed and checked: :class:`Settings`.

Parsing is strict and speaks to the user: each mistake becomes a :class:`ConfigError`
whose one-line message names the setting and says what to put there. Defaults and bounds
come from the declarations (``config/declarations.py``), and a provider's defaults and
own section from the provider table the caller hands in (``settings.py``): this module
names no provider and imports none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tap_commerce_exports.config.account_settings import ProviderRules
from tap_commerce_exports.config.accounts_source import inherited, read_accounts
from tap_commerce_exports.config.batch import BatchSettings, parse_batch_config
from tap_commerce_exports.config.declarations import Setting, declared
from tap_commerce_exports.config.values import (
    check_api_url,
    choice,
    number,
    opt_str,
    parse_instant,
    parse_listen,
    stream_columns,
    time_zone,
    whole,
    window_columns,
)
from tap_commerce_exports.errors import ConfigError
from tap_commerce_exports.http.hosts import is_loopback

#: name -> provider class (as the parser sees it), handed in by the caller.
ProviderTable = Mapping[str, ProviderRules]


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
    max_download_file_mb: int
    max_download_export_mb: int
    max_decompression_ratio: int
    download_timeout: int
    #: The account these settings read (store subdomain, merchant id...), as its provider
    #: names it: keys its state and is a property of each of its records.
    account: str = ""
    #: stream -> the column holding its rows' window instant (``window_columns``).
    window_columns: Mapping[str, str] = field(default_factory=dict)
    #: stream -> the column holding its rows' key (``key_columns``).
    key_columns: Mapping[str, str] = field(default_factory=dict)
    #: The zone of naive timestamps when the store's cannot be read (``file_timezone``).
    file_timezone: str | None = None
    #: The provider's own options, parsed by its section (e.g. Clover's export hours).
    provider_options: Mapping[str, Any] = field(default_factory=dict)
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

    def setting_name(self, key: str) -> str:
        """What a user edits to change ``key`` of this account: ``accounts[1].access_token``
        if the account object set it, else the top-level ``access_token``."""
        return self.account_key_format.format(key=key) if key in self.account_keys else key

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        providers: ProviderTable,
        *,
        default_provider: str,
        now: datetime | None = None,
        require_credentials: bool = True,
    ) -> Settings:
        """Check every setting; raise ConfigError with one clear line on the first problem.

        With ``accounts`` / ``accounts_file``, each account object is laid over the
        top-level settings and checked as one account; an error says which account.
        ``providers``: the provider classes by name (``default_provider`` when unset)."""
        reader = _Reader(providers, default_provider, now or datetime.now(timezone.utc), require_credentials)
        entries = read_accounts(config)
        if not entries:
            return reader.account(config)
        rules = providers.get(reader.provider_name(config))
        common = {k: v for k, v in config.items() if k not in ("accounts", "accounts_file")}
        parsed: list[Settings] = []
        seen: dict[str, str] = {}
        for entry in entries:
            if rules is not None:
                rules.check_account_object(entry.values, entry.source)
            own = {k: v for k, v in entry.values.items() if v is not None}
            merged = {**inherited(common, own, entry, reader.require_credentials), **own}
            try:
                one = reader.account(merged)
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


class _Reader:
    """Reads the settings of one account against the declarations and a provider table."""

    def __init__(
        self, providers: ProviderTable, default_provider: str, now: datetime, require_credentials: bool
    ) -> None:
        self.providers = providers
        self.default_provider = default_provider
        self.now = now
        self.require_credentials = require_credentials
        self.declared: dict[str, Setting] = declared(p.settings_properties for p in providers.values())

    def provider_name(self, config: Mapping[str, Any]) -> str:
        return str(config.get("provider") or self.default_provider).strip().lower()

    def default(self, name: str) -> Any:  # noqa: ANN401 - a declaration's default, any type
        return self.declared[name].default

    def number(self, config: Mapping[str, Any], name: str, default: float | None = None) -> float:
        """``name`` as a number within its declared bounds (``default``: the provider's)."""
        s = self.declared[name]
        return number(
            config,
            name,
            s.default if default is None else default,
            minimum=s.minimum if s.minimum is not None else float("-inf"),
            maximum=s.maximum if s.maximum is not None else 1e12,
        )

    def whole(self, config: Mapping[str, Any], name: str, default: int | None = None) -> int:
        s = self.declared[name]
        return whole(
            config,
            name,
            s.default if default is None else default,
            minimum=int(s.minimum if s.minimum is not None else 1),
            maximum=int(s.maximum if s.maximum is not None else 1 << 62),
        )

    def choice(self, config: Mapping[str, Any], name: str) -> str:
        s = self.declared[name]
        return choice(config, name, s.default, s.choices)

    def account(self, config: Mapping[str, Any]) -> Settings:
        """The settings of one account."""
        provider = self.provider_name(config)
        if provider not in self.providers:
            raise ConfigError(
                f"setting 'provider' is '{provider}': use one of {', '.join(sorted(self.providers))}"
            )
        rules = self.providers[provider]
        facts = rules.facts
        require_credentials = self.require_credentials
        token = str(config.get("access_token") or "")
        if require_credentials and not token and not opt_str(config, "sandbox_token"):
            raise ConfigError("setting 'access_token' is missing: set it to your API token")

        section = rules.read_section(config, require_credentials=require_credentials)
        api_url, store, merchant_id = section.api_url, section.store, section.merchant_id
        check_api_url(api_url)
        sandbox_token = opt_str(config, "sandbox_token")
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

        start = parse_instant(config.get("start_date"), "start_date", required=True)
        end = parse_instant(config.get("end_date"), "end_date", required=False) or self.now
        if end <= start:
            raise ConfigError(
                f"setting 'end_date' ({end.isoformat()}) is not after 'start_date' "
                f"({start.isoformat()}): move one of them"
            )
        window_days = self.number(config, "window_days", facts.default_window_days)
        if facts.max_window_days is not None and window_days > facts.max_window_days:
            raise ConfigError(
                f"setting 'window_days' is {window_days:g}: {facts.title} exports cover at most "
                f"{facts.max_window_days} days; set it to {facts.max_window_days} or less"
            )
        lookback = self.number(config, "lookback")
        poll_interval = self.number(config, "poll_interval")
        poll_max = self.number(config, "poll_max_interval")
        if poll_max < poll_interval:
            raise ConfigError(
                f"setting 'poll_max_interval' ({poll_max:g}) is below 'poll_interval' ({poll_interval:g}): raise it"
            )
        export_timeout = self.number(config, "export_timeout")
        max_exports = self.whole(config, "max_concurrent_exports", facts.default_max_concurrent_exports)
        attempts = self.whole(config, "export_attempts")
        min_window_days = self.number(config, "min_window_days")
        rps = self.number(config, "max_requests_per_second", facts.requests_per_second)
        outside_hours = self.choice(config, "outside_hours")
        on_invalid = self.choice(config, "on_invalid_record")
        rejects_dir = Path(str(config.get("rejects_dir") or self.default("rejects_dir")))

        max_file_mb = self.whole(config, "max_download_file_mb")
        max_export_mb = self.whole(config, "max_download_export_mb")
        if max_export_mb < max_file_mb:
            max_export_mb = max_file_mb  # one file is part of one export
        max_ratio = self.whole(config, "max_decompression_ratio")
        download_timeout = self.whole(config, "download_timeout")

        stream_names = [d.name for d in facts.streams]
        columns = window_columns(config, stream_names, facts.title)
        keys = stream_columns(
            config, "key_columns", stream_names, facts.title, 'e.g. {"orders": "Order Ref"}'
        )
        total = config.get("max_concurrent_exports_total")
        total_exports = (
            None if total is None or total == "" else self.whole(config, "max_concurrent_exports_total", 1)
        )
        app_rps = (
            self.number(config, "app_max_requests_per_second", facts.app_requests_per_second or 1.0)
            if facts.app_requests_per_second is not None or opt_str(config, "app_max_requests_per_second")
            else None
        )
        app_in_flight = (
            self.whole(config, "app_max_concurrent_requests", facts.app_max_concurrent_requests or 1)
            if facts.app_max_concurrent_requests is not None or opt_str(config, "app_max_concurrent_requests")
            else None
        )
        webhook_listen = None
        webhook_secret = opt_str(config, "webhook_secret")
        listen = opt_str(config, "webhook_listen")
        if listen:
            if not facts.supports_webhook:
                raise ConfigError(
                    f"setting 'webhook_listen' does not apply to {facts.title} (it has no "
                    "export webhook): remove it"
                )
            webhook_listen = parse_listen(listen)
            if not webhook_secret:
                raise ConfigError(
                    "setting 'webhook_secret' is missing: webhook_listen needs the webhook's signing secret"
                )

        settings = Settings(
            provider=provider,
            access_token=token,
            store=store,
            merchant_id=merchant_id,
            region=section.region,
            api_url=api_url,
            api_version=str(config.get("api_version") or self.default("api_version")),
            start_date=start,
            end_date=end,
            window=timedelta(days=window_days),
            lookback=timedelta(days=lookback),
            poll_interval=poll_interval,
            poll_max_interval=poll_max,
            export_timeout=export_timeout,
            export_attempts=attempts,
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
            window_columns=columns,
            key_columns=keys,
            file_timezone=time_zone(config, "file_timezone"),
            provider_options=section.options,
            batch=parse_batch_config(config.get("batch_config")),
            max_concurrent_exports_total=total_exports,
            app_max_requests_per_second=app_rps,
            app_max_concurrent_requests=app_in_flight,
        )
        return replace(settings, account=rules.account_of(settings))
