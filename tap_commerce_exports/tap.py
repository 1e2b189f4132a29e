"""The Singer tap: settings, streams per provider, ``--test``, and the sync entry point."""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

import click
from singer_sdk import Tap
from singer_sdk.helpers.capabilities import PluginCapabilities, TapCapabilities

from tap_commerce_exports.config.run_settings import Settings
from tap_commerce_exports.errors import AccountsFailed, ConfigError, UserError, account_failure_line
from tap_commerce_exports.http.redact import install_log_filter, register_secret
from tap_commerce_exports.providers.registry import (
    DEFAULT_PROVIDER,
    PROVIDERS,
    build_provider,
    build_providers,
)
from tap_commerce_exports.settings import CONFIG_SCHEMA, load_settings
from tap_commerce_exports.singer.state_input import check_shape, drop_other_accounts
from tap_commerce_exports.singer.streams import ExportStream
from tap_commerce_exports.singer.sync import ExportSync

if TYPE_CHECKING:
    from tap_commerce_exports.singer.host import SyncStream

LOGGER = logging.getLogger("tap_commerce_exports")
#: Seconds the orderly stop after SIGTERM may take before the process exits regardless.
STOP_GRACE_SECONDS = 0.8


_STOPPED_BY_SIGNAL = threading.Event()


def stopped_by_signal() -> bool:
    """Whether SIGTERM is ending this run (the CLI then exits without a slow teardown)."""
    return _STOPPED_BY_SIGNAL.is_set()


def _exit_now(code: int) -> None:
    """End the process at once. No flush: a target that stopped reading would block it,
    and records after the last STATE are emitted again by the next run anyway."""
    os._exit(code)


def _register_account_secrets(accounts: object) -> None:
    """The secrets of ``accounts`` as given (a list, or its JSON text), registered before
    they are checked: an error while checking must not be the place one leaks."""
    if isinstance(accounts, str):
        register_secret(accounts)  # the whole text, should it ever be echoed
        try:
            accounts = json.loads(accounts)
        except ValueError:
            return
    if isinstance(accounts, list):
        for item in accounts:
            if isinstance(item, dict):
                for key in ("access_token", "sandbox_token", "webhook_secret"):
                    value = item.get(key)
                    register_secret(value if isinstance(value, str) else None)


class _DropEnvParsingNotice(logging.Filter):
    """Drops the SDK's "Skipping parse of env var settings..." (and its "Parsing env var"
    twin): under Meltano it appeared once per tap process (discovery, then the run) and
    read as if environment variables were ignored, while Meltano had already resolved
    them into the config file. Nothing a user can act on; our own lines say what runs."""

    NOTICES = frozenset({"Skipping parse of env var settings...", "Parsing env var for settings config..."})

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in self.NOTICES


class TapCommerceExports(Tap):
    """Bulk data from commerce platforms' asynchronous export APIs (Next Commerce, Clover)."""

    name = "tap-commerce-exports"
    logging.getLogger(name).addFilter(_DropEnvParsingNotice())
    package_name = "tap-commerce-exports"
    # A copy: the SDK appends its built-in settings (stream maps, flattening...) to the
    # class's schema in place, and CONFIG_SCHEMA must stay the tap's own settings.
    config_jsonschema = copy.deepcopy(CONFIG_SCHEMA)
    capabilities = [  # noqa: RUF012
        TapCapabilities.CATALOG,
        TapCapabilities.STATE,
        TapCapabilities.DISCOVER,
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.FLATTENING,
        PluginCapabilities.STRUCTURED_LOGGING,
        # batch_config (the SDK's setting): whole files per window, see singer/batch/.
        PluginCapabilities.BATCH,
    ]

    # ------------------------------------------------------------------ settings
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Check settings with messages a user can act on (one line, names the setting)."""
        register_secret(self.config.get("access_token"))
        register_secret(self.config.get("webhook_secret"))
        _register_account_secrets(self.config.get("accounts"))
        if raise_errors:
            for account in load_settings(self.config).all_accounts:  # accounts_file's too
                register_secret(account.access_token)
                register_secret(account.webhook_secret)
        return []

    @staticmethod
    def check_state(state: object) -> None:
        """A STATE's shape, before the SDK reads it (the CLI checks a --state file with it:
        the SDK takes a list or a text for a file's path)."""
        check_shape(state)

    def load_state(self, state: dict[str, Any]) -> None:
        """The STATE given, checked first: a shape the tap cannot read is one line naming
        its place (``singer/state_input.py``), not a traceback from the SDK's merge; the
        partitions of accounts no longer configured leave before the SDK copies them."""
        check_shape(state)
        try:
            accounts = {a.account for a in self.settings.all_accounts}
        except UserError:
            accounts = None  # the settings' own error comes first, at the sync
        if accounts is not None:
            drop_other_accounts(state, accounts)
        super().load_state(state)

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.config)

    # ------------------------------------------------------------------ the sync's host
    # The Tap is the sync's SyncHost (singer/host.py): these, settings, config and mapper.
    @property
    def sync_state(self) -> dict[str, Any]:
        """The tap's state. The SDK types it as a TypedDict of its own keys; what the sync
        reads and writes in it is ours (``singer/bookmarks.py``), through a plain dict."""
        return cast("dict[str, Any]", self.state)

    def selected_streams(self) -> list[ExportStream]:
        return [cast("ExportStream", s) for s in self.streams.values() if s.selected]

    def stream_records(self, stream: SyncStream) -> Iterator[dict[str, Any]]:
        return ExportSync(self, self.settings).iter_stream_records(stream)

    def discover_streams(self) -> list[ExportStream]:
        provider = str(self.config.get("provider") or DEFAULT_PROVIDER).strip().lower()
        if provider not in PROVIDERS:
            raise ConfigError(
                f"setting 'provider' is '{provider}': use one of {', '.join(sorted(PROVIDERS))}"
            )
        return [ExportStream(self, definition) for definition in PROVIDERS[provider].streams]

    # ------------------------------------------------------------------ modes
    def check_access(self) -> str:
        """``--test``: prove the credentials and host of every account work, creating no
        export. Each account is checked; each failing one is named on its own line, and
        the run then ends with one line saying how many failed."""
        accounts = self.settings.all_accounts
        if len(accounts) == 1:
            provider = build_provider(self.settings)
            try:
                summary = provider.check_access()
            finally:
                provider.close()
            LOGGER.info("connection test passed: %s", summary)
            return summary
        providers = build_providers(self.settings)
        passed: list[str] = []
        failed: list[str] = []
        try:
            for settings in accounts:
                try:
                    passed.append(providers[settings.account].check_access())
                except UserError as exc:
                    failed.append(account_failure_line(settings, exc))
        finally:
            for provider in providers.values():
                provider.close()
        for summary in passed:
            LOGGER.info("connection test passed: %s", summary)
        for line in failed:
            LOGGER.error("connection test failed: %s", line)
        if failed:
            raise AccountsFailed(failed, len(accounts))
        summary = f"{len(accounts)} accounts: access OK"
        LOGGER.info("connection test passed: %s", summary)
        return summary

    # The SDK marks these two @final, but offers no hook for either: its connection test is a
    # real sync (an export per stream), and its sync_all runs streams one after another.
    # Its per-stream path (Stream.sync, e.g. run_sync_dry_run) still works: get_records
    # goes through the same ExportSync.sync as sync_all below (singer/streams.py).
    def run_connection_test(self) -> bool:  # type: ignore[misc]
        """The SDK's default connection test syncs a record per stream, which here would
        create an export per stream and wait; checking access is what it is for."""
        self.check_access()
        return True

    def sync_all(self) -> None:  # type: ignore[misc]
        """Sync every selected stream through the export engine (all streams at once)."""
        install_log_filter()
        ExportSync(self, self.settings).run()

    def _handle_termination(self, signum: int, frame: Any) -> None:  # pragma: no cover
        """On SIGTERM, stop without writing state: the last STATE emitted is the true one.

        The orderly stop (downloads cut, files removed, output flushed) takes a moment; a
        watchdog ends the process anyway one second after the signal, so that no thread
        blocked on a peer (an API call in flight) can keep it alive.
        """
        LOGGER.warning("interrupted (signal %d): stopping; the last STATE emitted stands", signum)
        _STOPPED_BY_SIGNAL.set()
        watchdog = threading.Timer(STOP_GRACE_SECONDS, _exit_now, args=(128 + signum,))
        watchdog.daemon = True
        watchdog.start()
        sys.exit(128 + signum)

    @classmethod
    def cb_test(cls, ctx: click.Context, param: click.Option, value: str) -> None:
        """``--test`` checks access via the API without creating exports (an export per
        stream would take minutes and cost the provider work)."""
        if value == "disabled":
            return
        from singer_sdk.plugin_base import _ConfigInput

        config: _ConfigInput = ctx.params.get("config", _ConfigInput())
        tap = cls(config=config.config, parse_env_config=config.parse_env, validate_config=True)
        if value == "schema":
            tap.write_schemas()
        else:
            tap.check_access()
        ctx.exit()
