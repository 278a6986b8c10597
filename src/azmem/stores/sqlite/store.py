"""The embedded default store: one SQLite file with rows, vectors, FTS5 and history.

Guarantees and the choices behind them:

* **Atomic writes.** Every `apply`/`delete_all`/`reset`/`replace_vectors` is one
  `BEGIN IMMEDIATE` transaction; the FTS5 index and the change log are maintained by
  triggers inside it, and history rows are written in it. WAL with
  `synchronous=NORMAL`: a kill -9 at any moment leaves the last committed state
  (a power cut may lose the last few commits, never consistency).
* **Several processes.** WAL lets readers run beside one writer; writers queue on
  `busy_timeout`. Each process keeps an in-memory vector index and refreshes it
  before every search from the `changes` log (rows touched since the index's last
  sequence number), so another process's writes are visible at once; a process that
  fell behind a pruned log, a reset or a reindex rebuilds the index from the table.
* **Threads.** One connection per store object, serialised by a re-entrant lock:
  safe to share across threads, one call at a time. For parallel reads open one
  `SQLiteStore` per thread. Do not share one across `fork()`.
* **Search.** Scope and filters are applied before ranking: dense search runs on the
  in-memory index restricted to the scope (in-memory scope columns) and the filters
  (SQL), BM25 runs on an in-memory mirror of the FTS5 index with the same scope and
  filters (`_lexical.py`, exact FTS5 bm25), and the two are fused by a convex
  combination of the normalised scores (`_search.py`). See `MemoryStore.search`.

This class holds the locking and transactions; the SQL lives beside it: opening the
file (`connections.py`), the embedder binding (`binding.py`), writes and reindex
(`writes.py`), copy (`transfer.py`), the audit trail (`audit.py`) and `check`
(`diagnostics.py`).
"""

from __future__ import annotations

import builtins
import dataclasses
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from azmem.errors import InvalidInputError, StoreError
from azmem.stores import cursors, ranking
from azmem.stores import validate as v
from azmem.stores.audit import AuditContext, ForgetReport, import_entries, ops_entries
from azmem.stores.audit_log import AuditLog
from azmem.stores.filters import format_time, parse_filters
from azmem.stores.keys import KeyRing
from azmem.stores.models import (
    AddOp,
    DeleteOp,
    HistoryEvent,
    MemoryRecord,
    Op,
    Page,
    Scope,
    SearchHit,
    SearchMode,
    StoredMemory,
    UpdateOp,
    Vector,
    utcnow,
)
from azmem.stores.prepare import check_search, search_inputs
from azmem.stores.protocol import Filters
from azmem.stores.sqlite import _rows as codec
from azmem.stores.sqlite import _search, binding, connections, diagnostics, transfer, writes
from azmem.stores.sqlite import audit as trail
from azmem.stores.sqlite._index_cache import IndexCache
from azmem.stores.sqlite.filters import compile_sqlite, where_clause
from azmem.stores.sqlite.keys import SQLiteKeyTable
from azmem.stores.sqlite.vectors import IndexMode

__all__ = ["SQLiteStore"]

_CHANGES_KEEP = 10_000
_CHANGES_PRUNE_AT = 20_000


class SQLiteStore:
    """`MemoryStore` on one SQLite file. `SQLiteStore(":memory:")` works for throwaway use."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 30.0,
        index_mode: IndexMode = "auto",
        read_only: bool = False,
    ) -> None:
        """`index_mode` picks the in-memory vector search: "exact", "quantized" or "auto"
        (exact for small candidate sets, quantized scan + exact re-rank for large ones;
        see stores/vectors.py). `busy_timeout` is how long a write waits for another writer.

        `read_only` opens an existing store without writing a byte, also where its
        directory is not writable (a backup, a mounted snapshot, a replica): searches,
        lists and history work; writes raise StoreError `store_read_only`."""
        if index_mode not in ("exact", "quantized", "auto"):
            raise InvalidInputError(f"index_mode must be 'exact', 'quantized' or 'auto', got {index_mode!r}")
        self.path = str(path)
        self.read_only = read_only
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._embedder: tuple[str, int] | None = None
        self._cache = IndexCache(self.path, index_mode)
        self._conn: sqlite3.Connection | None = None
        self._conn = connections.connect(self.path, busy_timeout, read_only=read_only)

    # -- connection ------------------------------------------------------------------------
    def _translate(self, exc: sqlite3.Error, action: str) -> StoreError:
        return connections.translate(exc, self.path, self._busy_timeout, action)

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"store {self.path} is closed")
        return self._conn

    @contextmanager
    def _guard(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as exc:
                raise self._translate(exc, action) from exc

    @contextmanager
    def _write(self, action: str) -> Iterator[sqlite3.Connection]:
        if self.read_only:
            raise StoreError(
                f"store {self.path} is open read-only; cannot {action}",
                error_code="store_read_only",
                suggestion="open it without read_only (no ?mode=ro in the store URL) to change it",
            )
        with self._guard(action) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _read(self, action: str) -> Iterator[sqlite3.Connection]:
        """One snapshot for a multi-statement read (nested inside a write, reuse its transaction)."""
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

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._cache.invalidate()

    @property
    def keys(self) -> KeyRing:
        """The server's API keys, kept in this store's file (see `azmem.stores.keys`)."""
        return KeyRing(SQLiteKeyTable(self._read, self._write))

    @property
    def audit_log(self) -> AuditLog:
        """The audit trail, kept in this store's file (see `azmem.stores.audit`)."""
        return AuditLog(trail.SQLiteAuditTable(self._read, self._write))

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- embedder binding ---------------------------------------------------------------------
    @property
    def embedder(self) -> tuple[str, int] | None:
        with self._guard("read") as conn:
            return binding.recorded(conn)

    def open(self, embedder_name: str, dimension: int) -> None:
        v.check_text(embedder_name, "embedder_name")
        dimension = v.check_limit(dimension, "dimension", maximum=65_536)
        wanted = (embedder_name, dimension)
        with self._guard("open") as conn:
            current = binding.recorded(conn)
            if current == wanted:  # the usual case: no write lock
                self._embedder = wanted
                return
            if self.read_only:  # nothing to record: only a store of other vectors refuses
                if current is not None and not binding.is_empty(conn):
                    raise binding.mismatch(self.path, current, wanted)
                self._embedder = wanted
                return
        with self._write("open") as conn:
            current = binding.recorded(conn)
            if current is not None and current != wanted and not binding.is_empty(conn):
                raise binding.mismatch(self.path, current, wanted)
            if current != wanted:
                binding.record(conn, embedder_name, dimension)
        self._embedder = wanted

    def _require_open(self) -> tuple[str, int]:
        if self._embedder is None:
            raise StoreError(
                f"store {self.path} has no embedder bound",
                suggestion="call store.open(embedder_name, dimension) before writing or searching",
            )
        return self._embedder

    def _check_embedder(self, conn: sqlite3.Connection) -> int:
        """Catch another process's reindex between our open() and this call."""
        mine = self._require_open()
        stored = binding.recorded(conn)
        if stored is not None and stored != mine:
            raise binding.mismatch(self.path, stored, mine)
        return mine[1]

    # -- writes -------------------------------------------------------------------------------
    def apply(self, ops: Sequence[Op], *, audit: AuditContext | None = None) -> builtins.list[HistoryEvent]:
        _, dim = self._require_open()
        if isinstance(ops, AddOp | UpdateOp | DeleteOp) or not isinstance(ops, Sequence):
            raise InvalidInputError("apply() takes a sequence of AddOp / UpdateOp / DeleteOp")
        prepared = [writes.prepare(op, dim) for op in ops]
        if not prepared:
            return []
        now = format_time(utcnow())
        with self._write("write") as conn:
            self._check_embedder(conn)
            scopes = trail.scopes_of(conn, [p.op for p in prepared])
            events = [writes.apply_one(conn, p, now) for p in prepared]
            self._prune_changes(conn)
            trail.append(conn, ops_entries(audit, [p.op for p in prepared], scopes))
        return events

    @staticmethod
    def _prune_changes(conn: sqlite3.Connection, *, everything: bool = False) -> None:
        """Keep the change log bounded; a process behind the cut rebuilds its index (module docstring)."""
        lo, hi = conn.execute(
            "SELECT (SELECT min(seq) FROM changes), (SELECT max(seq) FROM changes)"
        ).fetchone()
        if hi is None:
            return
        if everything:
            cut = hi
        elif hi - lo > _CHANGES_PRUNE_AT:
            cut = hi - _CHANGES_KEEP
        else:
            return
        conn.execute("DELETE FROM changes WHERE seq <= ?", (cut,))
        conn.execute("UPDATE meta SET value = ? WHERE key = 'pruned_through'", (str(cut),))

    def delete_all(self, scope: Scope, *, audit: AuditContext | None = None) -> int:
        v.check_scope(scope, for_write=True)
        where, params = where_clause(scope, None)
        now = format_time(utcnow())
        with self._write("delete") as conn:
            deleted = writes.delete_scope(conn, where, params, now)
            self._prune_changes(conn)
            entries = (audit or AuditContext()).entries(
                "delete_all",
                scope=scope.as_dict(),
                memory_ids=deleted,
                details={"deleted": len(deleted)},
            )
            trail.append(conn, entries)
        return len(deleted)

    def reset(self, *, audit: AuditContext | None = None) -> None:
        with self._write("reset") as conn:
            memories = conn.execute("DELETE FROM memories").rowcount
            history = conn.execute("DELETE FROM history").rowcount
            trail.reset_owners(conn)
            self._prune_changes(conn, everything=True)
            details = {"memories": memories, "history": history}
            trail.append(conn, (audit or AuditContext()).entries("reset", details=details))

    def forget(
        self, scope: Scope, *, audit: AuditContext | None = None, compact: bool = True
    ) -> ForgetReport:
        """Erase every trace of a scope's text (see `MemoryStore.forget`); `compact` then rewrites
        the file (checkpoint + VACUUM) so that no freed page keeps old bytes."""
        v.check_scope(scope, for_write=True)
        with self._lock:
            self._db.execute("PRAGMA secure_delete = ON")  # freed cells are zeroed, not left behind
            try:
                with self._write("forget") as conn:
                    report = trail.forget(conn, scope, audit)
                    self._prune_changes(conn, everything=True)  # every process rebuilds its mirrors
            finally:
                if self._conn is not None:
                    self._conn.execute("PRAGMA secure_delete = OFF")
            self._cache.invalidate()
            if not compact:
                return report
            with self._guard("compact") as conn:
                clean = trail.compact(conn)
        return dataclasses.replace(report, compacted=clean)

    # -- reads ----------------------------------------------------------------------------------
    def get(self, memory_id: str, scope: Scope | None = None) -> MemoryRecord | None:
        v.check_text(memory_id, "memory id")
        where, params = where_clause(v.check_scope(scope or Scope(), for_write=False), None)
        with self._guard("read") as conn:
            row = conn.execute(
                f"SELECT {codec.COLS} FROM memories m WHERE m.id = ? AND {where}", (memory_id, *params)
            ).fetchone()
        return None if row is None else codec.record(row)

    def list(
        self,
        scope: Scope,
        filters: Filters | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page:
        v.check_scope(scope, for_write=False)
        limit = v.check_limit(limit, "limit", maximum=v.MAX_LIST_LIMIT)
        where, params = where_clause(scope, filters)
        if cursor is not None:
            created, rid = codec.decode_cursor(cursor)
            where += " AND (m.created_at, m.rid) < (?, ?)"
            params += [created, rid]
        with self._guard("read") as conn:
            rows = conn.execute(
                f"SELECT {codec.COLS}, m.rid FROM memories m WHERE {where} "
                "ORDER BY m.created_at DESC, m.rid DESC LIMIT ?",
                (*params, limit + 1),
            ).fetchall()
        return cursors.page(rows, limit, cursor=codec.encode_cursor, record=codec.record)

    def count(self, scope: Scope | None = None, filters: Filters | None = None) -> int:
        scope = v.check_scope(scope or Scope(), for_write=False)
        where, params = where_clause(scope, filters)
        with self._guard("read") as conn:
            return int(conn.execute(f"SELECT count(*) FROM memories m WHERE {where}", params).fetchone()[0])

    def history(self, memory_id: str) -> builtins.list[HistoryEvent]:
        v.check_text(memory_id, "memory id")
        with self._guard("read") as conn:
            rows = conn.execute(
                f"SELECT {codec.HISTORY_COLS} FROM history WHERE memory_id = ? ORDER BY seq", (memory_id,)
            ).fetchall()
        return [codec.event(r) for r in rows]

    def iter_all(self, batch_size: int = 256) -> Iterator[builtins.list[MemoryRecord]]:
        batch_size = v.check_limit(batch_size, "batch_size", maximum=v.MAX_LIST_LIMIT)
        last = 0
        while True:
            with self._read("read") as conn:
                rows = conn.execute(
                    f"SELECT {codec.COLS}, m.rid FROM memories m WHERE m.rid > ? ORDER BY m.rid LIMIT ?",
                    (last, batch_size),
                ).fetchall()
            if not rows:
                return
            last = rows[-1][11]
            yield [codec.record(r) for r in rows]

    # -- copy -----------------------------------------------------------------------------------
    def export_memories(self, after_id: str | None, limit: int) -> builtins.list[StoredMemory]:
        limit = v.check_limit(limit, "limit", maximum=v.MAX_LIST_LIMIT)
        with self._read("read") as conn:
            return transfer.export_memories(conn, after_id, limit)

    def export_history(self, after_id: str | None, limit: int) -> builtins.list[HistoryEvent]:
        limit = v.check_limit(limit, "limit", maximum=v.MAX_LIST_LIMIT)
        with self._read("read") as conn:
            return transfer.export_history(conn, after_id, limit)

    def import_memories(self, items: Sequence[StoredMemory], *, audit: AuditContext | None = None) -> int:
        with self._write("copy") as conn:
            inserted = transfer.import_memories(conn, items, self._check_embedder(conn))
            trail.append(conn, import_entries(audit, items, inserted))
            return inserted

    def import_history(self, events: Sequence[HistoryEvent], *, audit: AuditContext | None = None) -> int:
        with self._write("copy") as conn:
            inserted = transfer.import_history(conn, events)
            details = {"history": inserted, "given": len(events)}
            trail.append(conn, (audit or AuditContext()).entries("import", details=details))
            return inserted

    # -- search -------------------------------------------------------------------------------
    def search(
        self,
        query_text: str | None,
        query_vector: Vector | None,
        scope: Scope,
        filters: Filters | None = None,
        limit: int = 10,
        mode: SearchMode = "hybrid",
        threshold: float | None = None,
    ) -> builtins.list[SearchHit]:
        limit = check_search(mode, scope, limit, threshold)
        query, terms = search_inputs(mode, query_text, query_vector, lambda: self._require_open()[1])
        compiled = compile_sqlite(parse_filters(filters))
        where, params = where_clause(scope, compiled)
        depth = ranking.depth(mode, limit)

        with self._read("search") as conn:
            dense_hits: ranking.Ranked = []
            if query is not None:
                self._check_embedder(conn)
                self._cache.sync(conn, self._require_open()[1])
                dense_hits = _search.dense(conn, self._cache, query, depth, scope, compiled, where, params)
            lexical_hits: ranking.Ranked = []
            lexical_extra: dict[int, float] = {}
            if terms:
                also = [rid for rid, _ in dense_hits] if mode == "hybrid" else []
                lexical_hits, lexical_extra = _search.lexical(
                    conn, self._cache, terms, scope, compiled, where, params, depth, also
                )
            similarities: dict[int, float] | None = None
            if query is not None:
                similarities = dict(dense_hits)
                missing = [rid for rid, _ in lexical_hits if rid not in similarities]
                similarities.update(_search.cosines(conn, self._cache, query, missing))
            scored = ranking.rank(
                mode, similarities, dense_hits, lexical_hits, lexical_extra, bool(terms), threshold, limit
            )
            rows = _search.fetch(conn, {rid for _, _, rid in scored})  # only the hits' rows
        return ranking.hits(scored, rows, dense_hits, lexical_hits, lexical_extra, limit, record=codec.record)

    # -- reindex --------------------------------------------------------------------------------
    def replace_vectors(
        self,
        embedder_name: str,
        dimension: int,
        vectors: Iterable[tuple[str, Vector]],
        *,
        audit: AuditContext | None = None,
    ) -> int:
        v.check_text(embedder_name, "embedder_name")
        dimension = v.check_limit(dimension, "dimension", maximum=65_536)
        with self._write("reindex") as conn:
            replaced = writes.replace_vectors(conn, embedder_name, dimension, vectors)
            self._prune_changes(conn, everything=True)
            details = {"memories": replaced, "embedder": embedder_name, "dimension": dimension}
            trail.append(conn, (audit or AuditContext()).entries("reindex", details=details))
        self._embedder = (embedder_name, dimension)
        self._cache.invalidate()
        return replaced

    # -- diagnostics ----------------------------------------------------------------------------
    def check(self) -> builtins.list[str]:
        """Consistency problems found (empty when healthy): SQLite pages, FTS index vs rows,
        vector sizes, and every memory's ADD event. For `azmem doctor` and crash tests."""
        with self._read("check") as conn:
            return diagnostics.problems(conn)
