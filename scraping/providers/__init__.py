"""Registry of store providers, keyed by code (``amazon.com``, ``amazon.de``).

``get_provider(product.store.code)`` is how tracking reaches a store; one Amazon provider per
marketplace (:mod:`scraping.marketplaces`) is registered on import.
"""

from __future__ import annotations

from scraping.marketplaces import MARKETPLACES
from scraping.providers.amazon import AmazonProvider
from scraping.providers.base import Provider

__all__ = ["Provider", "UnknownProvider", "get_provider", "providers", "register", "unregister"]

_registry: dict[str, Provider] = {}


class UnknownProvider(LookupError):
    """No provider is registered under that code."""


def register(provider: Provider) -> Provider:
    """Add ``provider`` under its code; re-registering the same object is a no-op."""
    existing = _registry.get(provider.code)
    if existing is not None and existing is not provider:
        raise ValueError(f"a provider is already registered for {provider.code!r}")
    _registry[provider.code] = provider
    return provider


def unregister(code: str) -> None:
    """Remove the provider registered under ``code`` (for tests that register their own)."""
    _registry.pop(code, None)


def get_provider(code: str) -> Provider:
    """The provider registered under ``code``; raises UnknownProvider."""
    try:
        return _registry[code]
    except KeyError:
        raise UnknownProvider(f"no provider for store {code!r}") from None


def providers() -> list[Provider]:
    """All registered providers, by code."""
    return [_registry[code] for code in sorted(_registry)]


for _marketplace in MARKETPLACES:
    register(AmazonProvider(_marketplace))
