"""The response / embedding cache in PostgreSQL, shared by every app instance using the database.

Same keys and values as :class:`azmem.azure.cache.ResponseCache` (the SQLite cache of one
machine); selected with ``cache.url`` (a PostgreSQL URL, or ``store`` for the store's
own database). Expiry is judged by the database server's clock, the one all instances share.
Entries are tagged with the scope they were made for, and erased with it, as in SQLite.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from azmem.azure.cache import ResponseCache, canonical_json, current_tags, needles
from azmem.azure.metrics import record_cache_lookup
from azmem.azure.pg import PgSession

__all__ = ["PostgresCache"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS azmem_cache ("
    " key TEXT PRIMARY KEY, namespace TEXT NOT NULL, value TEXT NOT NULL,"
    " created_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION)",
    "CREATE INDEX IF NOT EXISTS azmem_cache_namespace ON azmem_cache (namespace)",
    "CREATE TABLE IF NOT EXISTS azmem_cache_tags"
    " (tag TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (tag, key))",
    "CREATE INDEX IF NOT EXISTS azmem_cache_tags_key ON azmem_cache_tags (key)",
)
_SCHEMA_LOCK = 0x617A6D656D43  # "azmemC"
_NOW = "extract(epoch FROM clock_timestamp())::float8"


class PostgresCache:
    def __init__(
        self, url: str, ttl_seconds: float | None = None, *, password: Callable[[], str] | None = None
    ) -> None:
        self.url = url
        self.ttl_seconds = ttl_seconds
        self._db = PgSession(url, what="the cache's database", password=password)
        with self._db.tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in _SCHEMA:
                cur.execute(statement)

    @staticmethod
    def key(namespace: str, deployment: str, request: Mapping[str, Any]) -> str:
        return ResponseCache.key(namespace, deployment, request)

    def get(self, key: str) -> Any | None:
        """The stored value, or None when absent or expired."""
        with self._db.tx() as cur:
            cur.execute(
                "SELECT value FROM azmem_cache "
                f"WHERE key = %s AND (expires_at IS NULL OR expires_at > {_NOW})",
                (key,),
            )
            row = cur.fetchone()
        record_cache_lookup(backend="postgresql", hit=row is not None)
        return None if row is None else json.loads(row[0])

    def set(self, key: str, value: Any, *, namespace: str = "", ttl_seconds: float | None = None) -> None:
        ttl = self.ttl_seconds if ttl_seconds is None else ttl_seconds
        with self._db.tx() as cur:
            cur.execute(
                "INSERT INTO azmem_cache (key, namespace, value, created_at, expires_at) "
                f"VALUES (%s, %s, %s, {_NOW}, {_NOW} + %s) "
                "ON CONFLICT (key) DO UPDATE SET namespace = EXCLUDED.namespace, value = EXCLUDED.value, "
                "created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at",
                (key, namespace, canonical_json(value), ttl),
            )
            for tag in current_tags():
                cur.execute(
                    "INSERT INTO azmem_cache_tags (tag, key) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    (tag, key),
                )

    def forget(self, tags: Sequence[str], texts: Iterable[str] = (), *, compact: bool = True) -> int:
        """Erase the entries tagged with every one of ``tags`` and those quoting one of ``texts``
        (see `ResponseCache.forget`); ``compact`` is accepted for the same signature (dead rows
        leave with the table's next VACUUM). Returns how many entries went."""
        removed = 0
        with self._db.tx() as cur:
            if tags:
                cur.execute(
                    "DELETE FROM azmem_cache WHERE key IN (SELECT key FROM azmem_cache_tags "
                    "WHERE tag = ANY(%s) GROUP BY key HAVING count(DISTINCT tag) = %s)",
                    (list(tags), len(set(tags))),
                )
                removed += max(cur.rowcount, 0)
            for needle in needles(texts):
                cur.execute("DELETE FROM azmem_cache WHERE strpos(value, %s) > 0", (needle,))
                removed += max(cur.rowcount, 0)
            cur.execute(
                "DELETE FROM azmem_cache_tags t "
                "WHERE NOT EXISTS (SELECT 1 FROM azmem_cache c WHERE c.key = t.key)"
            )
        return removed

    def delete(self, key: str) -> None:
        with self._db.tx() as cur:
            cur.execute("DELETE FROM azmem_cache WHERE key = %s", (key,))
            cur.execute("DELETE FROM azmem_cache_tags WHERE key = %s", (key,))

    def purge_expired(self) -> int:
        with self._db.tx() as cur:
            cur.execute(f"DELETE FROM azmem_cache WHERE expires_at IS NOT NULL AND expires_at <= {_NOW}")
            return int(cur.rowcount)

    def clear(self, namespace: str | None = None) -> None:
        with self._db.tx() as cur:
            if namespace is None:
                cur.execute("DELETE FROM azmem_cache")
            else:
                cur.execute("DELETE FROM azmem_cache WHERE namespace = %s", (namespace,))

    def __len__(self) -> int:
        with self._db.tx() as cur:
            cur.execute(f"SELECT count(*) FROM azmem_cache WHERE expires_at IS NULL OR expires_at > {_NOW}")
            return int(cur.fetchone()[0])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> PostgresCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        from urllib.parse import urlsplit

        host = urlsplit(self.url).hostname
        return f"PostgresCache(host={host!r}, ttl_seconds={self.ttl_seconds!r})"
