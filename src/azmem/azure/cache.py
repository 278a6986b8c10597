"""An SQLite response cache (and embedding cache) shared safely by threads and processes.

The key is a SHA-256 over canonical JSON of namespace + deployment + the *whole* request:
messages, every parameter and the response schema. Graphiti's key ignored max_tokens,
temperature and model size, so a changed call could be served a stale answer.

The request mapping handed to :meth:`ResponseCache.key` must not contain credentials;
keys are never part of a request body in azmem (they travel as headers), and values
stored are the parsed results, never headers.

SQLite in WAL mode with a busy timeout lets many readers and one writer at a time work
across processes; each thread gets its own connection because sqlite3 connections are
not meant to be shared across threads.

Erasure: an entry written inside :func:`tagged` (the memory engine wraps each LLM and
embedding call of an operation in its scope, ``user_id=alice``...) is tagged with that
scope, and :meth:`ResponseCache.forget` removes every entry of a scope, and every answer
that quotes one of the erased texts (entries cached before tags existed included).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from azmem.azure.metrics import record_cache_lookup
from azmem.config import create_private_file

__all__ = ["ResponseCache", "canonical_json", "current_tags", "needles", "scope_tags", "tagged"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache (
    key TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    value TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL
);
CREATE INDEX IF NOT EXISTS cache_expires ON cache(expires_at);
CREATE TABLE IF NOT EXISTS cache_tags (
    tag TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (tag, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cache_tags_key ON cache_tags(key);
"""

_TAGS: ContextVar[tuple[str, ...]] = ContextVar("azmem_cache_tags", default=())
_NEEDLES_PER_QUERY = 50


@contextmanager
def tagged(tags: Iterable[str]) -> Iterator[None]:
    """Tag every entry written inside the block (in this thread / task) with ``tags``."""
    token = _TAGS.set(tuple(tags))
    try:
        yield
    finally:
        _TAGS.reset(token)


def current_tags() -> tuple[str, ...]:
    return _TAGS.get()


def scope_tags(scope: Mapping[str, str]) -> tuple[str, ...]:
    """``{"user_id": "alice"}`` -> ``("user_id=alice",)``: one tag per id of a scope."""
    return tuple(f"{k}={v}" for k, v in sorted(scope.items()))


def needles(texts: Iterable[str]) -> list[str]:
    """Erased texts as they appear inside a cached value (JSON string escapes, no quotes)."""
    return sorted({json.dumps(t, ensure_ascii=False)[1:-1] for t in texts if t.strip()})


def _default(obj: Any) -> Any:
    # Pydantic models (response_model schemas, typed messages) and bytes (images) must
    # hash by content, and the same content must always give the same text.
    if isinstance(obj, type) and hasattr(obj, "model_json_schema"):
        return {"__model__": f"{obj.__module__}.{obj.__qualname__}", "schema": obj.model_json_schema()}
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if isinstance(obj, bytes | bytearray):
        return {"__bytes__": base64.b64encode(bytes(obj)).decode("ascii")}
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=repr)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot put {type(obj).__name__} into a cache key")


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal requests give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default)


class ResponseCache:
    """Get/set JSON values by key, with an optional TTL, in one SQLite file."""

    def __init__(
        self, path: str | Path, ttl_seconds: float | None = None, *, busy_timeout_ms: int = 5000
    ) -> None:
        self.path = Path(path).expanduser()
        self.ttl_seconds = ttl_seconds
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._pid = os.getpid()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        create_private_file(self.path)
        self._connect()  # create the schema now, so a bad path fails at construction

    @staticmethod
    def key(namespace: str, deployment: str, request: Mapping[str, Any]) -> str:
        """SHA-256 hex of the canonical JSON of namespace, deployment and the full request."""
        payload = canonical_json(
            {"v": 1, "namespace": namespace, "deployment": deployment, "request": request}
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def _connect(self) -> sqlite3.Connection:
        if os.getpid() != self._pid:
            # A forked child must not use its parent's SQLite connections: start afresh.
            self._pid = os.getpid()
            self._local = threading.local()
            self._conns = []
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        conn = sqlite3.connect(
            self.path, timeout=self._busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        self._local.conn = conn
        with self._conns_lock:
            self._conns.append(conn)
        return conn

    def get(self, key: str) -> Any | None:
        """The stored value, or None when absent or expired (counted as a hit or a miss)."""
        row = self._connect().execute("SELECT value, expires_at FROM cache WHERE key = ?", (key,)).fetchone()
        if row is not None and (row[1] is None or row[1] > time.time()):
            record_cache_lookup(backend="sqlite", hit=True)
            return json.loads(row[0])
        record_cache_lookup(backend="sqlite", hit=False)
        return None

    def set(self, key: str, value: Any, *, namespace: str = "", ttl_seconds: float | None = None) -> None:
        """Store a JSON-serialisable value; ``ttl_seconds`` overrides the cache's TTL."""
        now = time.time()
        ttl = self.ttl_seconds if ttl_seconds is None else ttl_seconds
        text = canonical_json(value)
        conn = self._connect()
        tags = current_tags()
        if tags:
            conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "INSERT OR REPLACE INTO cache(key, namespace, value, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (key, namespace, text, now, None if ttl is None else now + ttl),
            )
            if tags:
                conn.executemany(
                    "INSERT OR IGNORE INTO cache_tags (tag, key) VALUES (?, ?)", [(t, key) for t in tags]
                )
                conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def forget(self, tags: Sequence[str], texts: Iterable[str] = (), *, compact: bool = True) -> int:
        """Erase the entries tagged with every one of ``tags`` (a scope) and those whose value
        contains one of ``texts``; then, with ``compact``, rewrite the file (checkpoint, VACUUM)
        so that no freed page keeps their bytes. Returns how many entries went."""
        conn = self._connect()
        conn.execute("PRAGMA secure_delete = ON")
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                removed = 0
                if tags:
                    marks = ", ".join("?" * len(tags))
                    removed += conn.execute(
                        "DELETE FROM cache WHERE key IN (SELECT key FROM cache_tags WHERE tag IN "
                        f"({marks}) GROUP BY key HAVING count(DISTINCT tag) = ?)",
                        (*tags, len(set(tags))),
                    ).rowcount
                found = needles(texts)
                for i in range(0, len(found), _NEEDLES_PER_QUERY):
                    batch = found[i : i + _NEEDLES_PER_QUERY]
                    where = " OR ".join("instr(value, ?) > 0" for _ in batch)
                    removed += conn.execute(f"DELETE FROM cache WHERE {where}", batch).rowcount
                conn.execute("DELETE FROM cache_tags WHERE key NOT IN (SELECT key FROM cache)")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        finally:
            conn.execute("PRAGMA secure_delete = OFF")
        if compact:
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                conn.execute("VACUUM")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.OperationalError:
                pass  # another process is using the file: the entries are gone, free pages are zeroed
        return int(removed)

    def delete(self, key: str) -> None:
        self._connect().execute("DELETE FROM cache WHERE key = ?", (key,))
        self._connect().execute("DELETE FROM cache_tags WHERE key = ?", (key,))

    def purge_expired(self) -> int:
        """Delete expired entries; returns how many."""
        cur = self._connect().execute(
            "DELETE FROM cache WHERE expires_at IS NOT NULL AND expires_at <= ?", (time.time(),)
        )
        return cur.rowcount

    def clear(self, namespace: str | None = None) -> None:
        if namespace is None:
            self._connect().execute("DELETE FROM cache")
            self._connect().execute("DELETE FROM cache_tags")
        else:
            self._connect().execute("DELETE FROM cache WHERE namespace = ?", (namespace,))

    def __len__(self) -> int:
        row = (
            self._connect()
            .execute("SELECT COUNT(*) FROM cache WHERE expires_at IS NULL OR expires_at > ?", (time.time(),))
            .fetchone()
        )
        return int(row[0])

    def close(self) -> None:
        """Close every connection this cache opened, in any thread."""
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()
        self._local = threading.local()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResponseCache(path={str(self.path)!r}, ttl_seconds={self.ttl_seconds!r})"
