"""The server's side of API keys: opening the key ring of a store, checking keys fast, per-key rates.

Checking a key reads the store, so the verdict is cached for ``ttl`` seconds (by the
key's hash, never the key): a busy client costs one lookup per ``ttl``, and a
revocation takes effect within ``ttl``. Lookups run in a worker thread, so a slow
database never stalls the event loop. Malformed keys are refused without a lookup.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING

from azmem.errors import ConfigurationError
from azmem.stores.factory import backend_of, open_store
from azmem.stores.keys import ApiKey, KeyRing, hash_key, parse_key
from azmem.stores.protocol import SupportsKeys

if TYPE_CHECKING:
    from azmem.azure.settings import AzmemSettings

__all__ = ["KeyVerifier", "RateLimiter", "key_ring_for", "open_key_ring"]


def open_key_ring(url: str, *, read_only: bool = False, password: Callable[[], str] | None = None) -> KeyRing:
    """The key ring in the database of the store at ``url``; closing it closes what it opened.

    For PostgreSQL the keys get their own small connection rather than a second store
    (no pool, no vector checks): they are read once per cache period.
    """
    if backend_of(url) == "sqlite":
        store = open_store(url, read_only=read_only)
        if getattr(store, "path", None) == ":memory:":
            store.close()
            raise ConfigurationError(
                "An in-memory store cannot hold API keys made by `azmem keys create`.",
                error_code="keys_need_a_file",
                suggestion="Serve a store file (--store path/to/memory.db), or use --no-auth on loopback.",
            )
        assert isinstance(store, SupportsKeys)
        return KeyRing(store.keys.table, on_close=store.close)
    try:
        from azmem.stores.postgres.keys import PostgresKeyTable
    except ImportError as exc:
        raise ConfigurationError(
            f"A PostgreSQL store needs the postgres extra ({exc.name or exc} is missing).",
            error_code="missing_extra",
            suggestion="pip install 'azmem[postgres]'",
        ) from None
    table = PostgresKeyTable.from_url(url, password=password)
    return KeyRing(table, on_close=table.close)


def key_ring_for(settings: AzmemSettings) -> KeyRing:
    """The key ring of the store the settings name, signing in to PostgreSQL as the store would."""
    from azmem.azure.auth import postgres_password

    url = settings.store_url
    password = postgres_password(settings, url) if backend_of(url) == "postgres" else None
    return open_key_ring(url, read_only=settings.store.read_only, password=password)


class KeyVerifier:
    """`KeyRing.verify` behind a time-bounded cache, awaitable without blocking the loop."""

    def __init__(self, ring: KeyRing, *, ttl: float = 10.0, max_entries: int = 10_000) -> None:
        self.ring = ring
        self.ttl = ttl
        self._max = max_entries
        self._cache: dict[str, tuple[ApiKey | None, float]] = {}

    async def verify(self, secret: str) -> ApiKey | None:
        if parse_key(secret) is None:
            return None
        digest = hash_key(secret)
        now = monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        key = await asyncio.to_thread(self.ring.verify, secret)
        if self.ttl > 0:
            if len(self._cache) >= self._max:
                self._cache.pop(next(iter(self._cache)))
            self._cache[digest] = (key, now + self.ttl)
        return key

    def forget(self) -> None:
        """Drop every cached verdict (e.g. after revoking a key in this process)."""
        self._cache.clear()


class RateLimiter:
    """A token bucket per key: ``rate_limit`` requests per minute, bursts of up to a minute's worth."""

    def __init__(self, clock: Callable[[], float] = monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key_id: str, per_minute: int) -> float | None:
        """Spend one request; None when allowed, else the seconds until the next one is."""
        rate = per_minute / 60.0
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(key_id, (float(per_minute), now))
            tokens = min(float(per_minute), tokens + (now - at) * rate)
            if tokens >= 1.0:
                self._buckets[key_id] = (tokens - 1.0, now)
                return None
            self._buckets[key_id] = (tokens, now)
            return (1.0 - tokens) / rate
