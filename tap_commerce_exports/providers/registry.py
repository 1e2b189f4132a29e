"""The providers the tap knows, by their ``provider`` setting value: a table, not a chain of ifs.

A new platform is one module under ``providers/`` whose class :func:`register_provider`
adds here; nothing else in the tap names it. Tests register fakes the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tap_commerce_exports.http.ratelimit import RateLimiter
from tap_commerce_exports.providers.clover import CloverProvider
from tap_commerce_exports.providers.nextcommerce import NextCommerceProvider

if TYPE_CHECKING:
    from tap_commerce_exports.config.run_settings import Settings
    from tap_commerce_exports.providers.base import ExportProvider, ProviderFacts

#: name -> provider class.
PROVIDER_CLASSES: dict[str, type[ExportProvider]] = {}
#: name -> its facts (the same table seen through ``facts``).
PROVIDERS: dict[str, ProviderFacts] = {}
#: What ``provider`` is when unset.
DEFAULT_PROVIDER = NextCommerceProvider.facts.name


def register_provider(cls: type[ExportProvider]) -> type[ExportProvider]:
    """Make ``cls`` the provider named ``cls.facts.name`` (usable as a class decorator)."""
    PROVIDER_CLASSES[cls.facts.name] = cls
    PROVIDERS[cls.facts.name] = cls.facts
    return cls


for _cls in (NextCommerceProvider, CloverProvider):
    register_provider(_cls)


def provider_facts(name: str) -> ProviderFacts:
    """Facts of the provider called ``name`` (a key of :data:`PROVIDERS`)."""
    return PROVIDERS[name]


def provider_class(name: str) -> type[ExportProvider]:
    """The class of the provider called ``name`` (a key of :data:`PROVIDER_CLASSES`)."""
    return PROVIDER_CLASSES[name]


def build_provider(settings: Settings, *, app_limiter: RateLimiter | None = None) -> ExportProvider:
    """The HTTP provider object for ``settings.provider`` (one account), sharing
    ``app_limiter`` with the other accounts of the run if given."""
    cls = PROVIDER_CLASSES[settings.provider]
    return cls(settings, app_limiter=app_limiter) if app_limiter is not None else cls(settings)


def app_limiter(settings: Settings) -> RateLimiter | None:
    """The limiter every account of one run shares: the app-wide limits (None: none)."""
    if settings.app_max_requests_per_second is None and settings.app_max_concurrent_requests is None:
        return None
    return RateLimiter(settings.app_max_requests_per_second or 1e9, settings.app_max_concurrent_requests)


def build_providers(settings: Settings) -> dict[str, ExportProvider]:
    """One provider object (own API client, own per-token limiter) per account, keyed by
    account, all sharing one app-wide limiter."""
    shared = app_limiter(settings)
    return {s.account: build_provider(s, app_limiter=shared) for s in settings.all_accounts}
