"""The providers the tap knows, by their ``provider`` setting value."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tap_commerce_exports.providers.base import ProviderFacts
from tap_commerce_exports.providers.clover_streams import CLOVER_STREAMS
from tap_commerce_exports.providers.nextcommerce_streams import NEXTCOMMERCE_STREAMS

if TYPE_CHECKING:
    from tap_commerce_exports.providers.base import ExportProvider
    from tap_commerce_exports.settings import Settings

PROVIDERS: dict[str, ProviderFacts] = {
    "nextcommerce": ProviderFacts(
        name="nextcommerce",
        title="Next Commerce",
        file_format="csv",
        streams=NEXTCOMMERCE_STREAMS,
        default_window_days=30,
        max_window_days=None,  # not published: window size is a setting
        default_max_concurrent_exports=4,  # not published: a polite default
        requests_per_second=4.0,
        max_concurrent_requests=None,
        supports_webhook=True,
    ),
    "clover": ProviderFacts(
        name="clover",
        title="Clover",
        file_format="json",
        streams=CLOVER_STREAMS,
        default_window_days=30,
        max_window_days=30,
        default_max_concurrent_exports=1,  # the guide: wait for each export before the next
        requests_per_second=16.0,
        max_concurrent_requests=5,
        supports_webhook=False,
    ),
}


def provider_facts(name: str) -> ProviderFacts:
    """Facts of the provider called ``name`` (a key of :data:`PROVIDERS`)."""
    return PROVIDERS[name]


def build_provider(settings: Settings) -> ExportProvider:
    """The HTTP provider object for ``settings.provider``."""
    if settings.provider == "nextcommerce":
        from tap_commerce_exports.providers.nextcommerce import NextCommerceProvider

        return NextCommerceProvider(settings)
    from tap_commerce_exports.providers.clover import CloverProvider

    return CloverProvider(settings)
