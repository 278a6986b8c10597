"""The SQLite graph store's file and connection: creation, migrations, locking, transactions.

One connection per store object behind a re-entrant lock (thread-safe, one call at a
time), WAL and ``synchronous=NORMAL`` as in the memory store, owner-only file. The
memory store's schema is created first when the file is new: it refuses to open a
database holding tables it did not make, and the graph must not lock it out.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from azmem.config import create_private_file
from azmem.errors import SchemaVersionError, StoreError
from azmem.graph.store.lexical import LexicalCache
from azmem.graph.store.sqlite_schema import migrate, pending
from azmem.graph.store.vector_cache import VectorCache

__all__ = ["SQLiteConnection", "holds_graph"]


def holds_graph(path: str | os.PathLike[str]) -> bool:
    """Whether the SQLite file exists and has the graph's tables (read-only look: opening a
    graph store would create them)."""
    target = Path(path)
    if not target.is_file():
        return False
    try:
        probe = sqlite3.connect(f"{target.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return False
    try:
        found = probe.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'graph_groups'"
        ).fetchone()
    except sqlite3.Error:
        return False
    finally:
        probe.close()
    return found is not None


class SQLiteConnection:
    """The file, its one connection and the transaction helpers `SQLiteGraphStore` builds on."""

    def __init__(
        self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0, read_only: bool = False
    ) -> None:
        self.path = str(path)
        self.url = self.path if self.path == ":memory:" else f"sqlite:///{self.path}"
        self.read_only = read_only
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._cache = VectorCache()
        self._lexical = LexicalCache()
        self._embedder: tuple[str, int] | None = None
        self._conn: sqlite3.Connection | None = self._connect()

    # -- connection ------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        memory = self.path == ":memory:"
        if not memory and not self.read_only:
            self._prepare_file()
        target = (
            self.path if memory or not self.read_only else f"{Path(self.path).resolve().as_uri()}?mode=ro"
        )
        try:
            conn = sqlite3.connect(
                target,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
                uri=self.read_only and not memory,
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open graph store {self.path}: {exc}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            if not self.read_only:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                migrate(conn)
            elif pending(conn):
                raise StoreError(
                    f"graph store {self.path} needs schema migrations that a read-only open cannot apply",
                    error_code="store_needs_migration",
                    suggestion="open it once read-write with this azmem version",
                )
        except RuntimeError as exc:
            conn.close()
            raise SchemaVersionError(f"{self.path} was written by a newer azmem: {exc}") from exc
        except sqlite3.Error as exc:
            conn.close()
            raise self._translate(exc, "open") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _prepare_file(self) -> None:
        """Owner-only file; the memory schema first, so the memory store accepts the file later."""
        target = Path(self.path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            create_private_file(target)
        except OSError as exc:
            raise StoreError(f"cannot create graph store {self.path}: {exc}") from exc
        with sqlite3.connect(self.path) as probe:
            has_ledger = probe.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_migrations'"
            ).fetchone()
        probe.close()
        if not has_ledger:
            from azmem.stores.sqlite import SQLiteStore

            SQLiteStore(self.path, busy_timeout=self._busy_timeout).close()

    def _translate(self, exc: sqlite3.Error, action: str) -> StoreError:
        msg = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in msg or "busy" in msg):
            return StoreError(
                f"graph store {self.path} stayed locked by another writer ({action})",
                error_code="store_locked",
                suggestion="retry; if it persists, look for a hung process holding the file",
            )
        return StoreError(f"graph store {self.path}: {action} failed: {msg}")

    @contextmanager
    def _guard(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise StoreError(f"graph store {self.path} is closed")
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise self._translate(exc, action) from exc

    @contextmanager
    def _read(self, action: str = "read") -> Iterator[sqlite3.Connection]:
        with self._guard(action) as conn:
            if conn.in_transaction:
                yield conn
                return
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

    @contextmanager
    def _write(self, action: str, group_id: str, *, bump: bool = True) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction that bumps the group's version (unless ``bump``
        is False: `forget` deletes the version row). A group's first version starts above
        ``version_floor``, the highest version of any forgotten group, so a group forgotten
        and written again never shows a version another process has a cached block for."""
        if self.read_only:
            raise StoreError(
                f"graph store {self.path} is open read-only; cannot {action}", error_code="store_read_only"
            )
        with self._guard(action) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                if bump:
                    conn.execute(
                        "INSERT INTO graph_groups (group_id, version) VALUES (?, 1 + coalesce("
                        "(SELECT CAST(value AS INTEGER) FROM graph_meta WHERE key = 'version_floor'), 0)) "
                        "ON CONFLICT (group_id) DO UPDATE SET version = version + 1",
                        (group_id,),
                    )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._cache.clear()
            self._lexical.clear()

    # -- embedder ----------------------------------------------------------------------
