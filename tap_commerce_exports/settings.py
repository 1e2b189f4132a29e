"""The tap's settings as this build reads them: the declarations of ``config/`` joined to
the providers of ``providers/registry.py``.

Why a module of its own: ``config/`` names no provider and ``providers/`` reads account
settings typed by ``config/``; the JSON schema (descriptions naming each provider's
facts, each provider's own settings in their place) and the parser's provider table are
put together here, once, from both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from singer_sdk import typing as th

from tap_commerce_exports.config.declarations import declared
from tap_commerce_exports.config.run_settings import Settings
from tap_commerce_exports.providers.base import ProviderFacts
from tap_commerce_exports.providers.registry import DEFAULT_PROVIDER, PROVIDER_CLASSES


def load_settings(
    config: Mapping[str, Any], *, now: datetime | None = None, require_credentials: bool = True
) -> Settings:
    """Every setting of ``config`` checked (one-line ConfigError on the first problem)."""
    return Settings.from_config(
        config,
        PROVIDER_CLASSES,
        default_provider=DEFAULT_PROVIDER,
        now=now,
        require_credentials=require_credentials,
    )


def _provider_words(words: str) -> str:
    """Each provider's words (a field of its facts) for a shared setting, joined by "or"."""
    return " or ".join(getattr(c.facts, words) for c in PROVIDER_CLASSES.values() if getattr(c.facts, words))


def _defaults_note(value: Callable[[ProviderFacts], str]) -> str:
    return ", ".join(value(c.facts) for c in PROVIDER_CLASSES.values())


def _notes() -> dict[str, str]:
    """What the declarations' descriptions say of the providers, from their facts."""
    facts = [c.facts for c in PROVIDER_CLASSES.values()]
    return {
        "providers": " or ".join(f"`{n}`" for n in PROVIDER_CLASSES),
        "account_keys_note": "; ".join(
            f"{c.facts.title}: {', '.join(c.account_keys)}" for c in PROVIDER_CLASSES.values()
        ),
        "token_description": _provider_words("token_description"),
        "api_url_example": _provider_words("api_url_example"),
        "max_window_note": "".join(
            f"; {f.title} allows at most {f.max_window_days}" for f in facts if f.max_window_days is not None
        ),
        "max_concurrent_defaults": _defaults_note(
            lambda f: f"{f.default_max_concurrent_exports} ({f.title}{f.concurrency_note})"
        ),
        "rps_defaults": _defaults_note(lambda f: f"{f.requests_per_second:g} {f.title}"),
        "app_rps_defaults": _defaults_note(
            lambda f: (
                f"{f.app_requests_per_second:g} {f.title}" if f.app_requests_per_second else f"none {f.title}"
            )
        ),
        "app_in_flight_defaults": _defaults_note(
            lambda f: (
                f"{f.app_max_concurrent_requests} {f.title}"
                if f.app_max_concurrent_requests
                else f"none {f.title}"
            )
        ),
    }


def _config_schema() -> dict[str, Any]:
    table = declared(c.settings_properties for c in PROVIDER_CLASSES.values())
    # The provider setting's default and choices are the registry's.
    table["provider"] = replace(
        table["provider"], default=DEFAULT_PROVIDER, choices=tuple(sorted(PROVIDER_CLASSES))
    )
    notes = _notes()
    properties = [s.to_property(notes) for s in table.values()]
    schema: dict[str, Any] = th.PropertiesList(*properties).to_dict()
    return schema


#: The tap's JSON schema (``--about``, Meltano's discovery), every setting in its place.
CONFIG_SCHEMA: dict[str, Any] = _config_schema()
