"""Which cache the settings ask for: SQLite on one machine, or PostgreSQL shared by instances."""

from __future__ import annotations

from azmem.azure.cache import ResponseCache
from azmem.azure.pg_cache import PostgresCache
from azmem.azure.settings import AzmemSettings
from azmem.errors import ConfigurationError

__all__ = ["open_cache"]


def open_cache(settings: AzmemSettings) -> ResponseCache | PostgresCache | None:
    """The cache the settings ask for: None when off; SQLite in the data directory by default;
    PostgreSQL when ``cache.url`` names a database (``store``: the PostgreSQL store's own)."""
    cfg = settings.cache
    if not cfg.enabled:
        return None
    url = settings.store_url if cfg.url == "store" else cfg.url
    if url and url.startswith(("postgresql://", "postgres://")):
        return PostgresCache(url, ttl_seconds=cfg.ttl_seconds)
    if cfg.url == "store":
        raise ConfigurationError(
            "cache.url 'store' needs a PostgreSQL store.",
            error_code="invalid_setting",
            suggestion="Remove cache.url (the SQLite cache is used) or point the store at PostgreSQL.",
        )
    return ResponseCache(settings.cache_path, ttl_seconds=cfg.ttl_seconds)
