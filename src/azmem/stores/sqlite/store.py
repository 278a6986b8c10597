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
"""

from __future__ import annotations

import builtins
import dataclasses
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azmem.config import create_private_file
from azmem.errors import (
    EmbedderMismatchError,
    InvalidInputError,
    MemoryNotFoundError,
    SchemaVersionError,
    StoreError,
)
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
    memory_hash,
    utcnow,
)
from azmem.stores.prepare import check_op, check_search, search_inputs
from azmem.stores.protocol import Filters
from azmem.stores.sqlite import _rows as codec
from azmem.stores.sqlite import _search, transfer
from azmem.stores.sqlite import audit as trail
from azmem.stores.sqlite._index_cache import IndexCache
from azmem.stores.sqlite._schema import READ_OPTIONAL, migrate, pending
from azmem.stores.sqlite.filters import CompiledFilter, compile_sqlite, register_sql_functions
from azmem.stores.sqlite.keys import SQLiteKeyTable
from azmem.stores.sqlite.vectors import IndexMode

__all__ = ["SQLiteStore"]

MAX_LIST_LIMIT = 10_000
_CHANGES_KEEP = 10_000
_CHANGES_PRUNE_AT = 20_000

_RECOVER = (
    "move the file aside (azmem then starts a new, empty store there) or restore it from a backup; "
    "`sqlite3 FILE 'PRAGMA integrity_check'` shows what is damaged"
)


@dataclass(frozen=True)
class _Prepared:
    """An op after validation: everything needed to write it without further checks."""

    op: Op
    text: str | None = None
    metadata_json: str | None = None
    vector: bytes | None = None
    times: tuple[str, str] | None = None


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
        self._conn = self._connect()

    # -- connection ------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            return self._connect_read_only()
        if self.path != ":memory:":
            target = Path(self.path)
            if target.is_dir():
                raise StoreError(
                    f"store path {self.path} is a directory", suggestion="point the store at a file path"
                )
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                create_private_file(target)  # memories are personal data: owner-only, like the cache
            except OSError as exc:
                raise StoreError(f"cannot create the directory for store {self.path}: {exc}") from exc
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(
                self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            register_sql_functions(conn)
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and "_migrations" not in tables:
                raise StoreError(
                    f"{self.path} is an SQLite database but not an azmem store "
                    f"(it has tables {', '.join(sorted(tables)[:5])})",
                    suggestion="choose another store path; azmem will not write into someone else's database",
                )
            migrate(conn)
        except StoreError:
            if conn is not None:
                conn.close()
            raise
        except RuntimeError as exc:  # a newer schema
            if conn is not None:
                conn.close()
            raise SchemaVersionError(f"{self.path} was written by a newer azmem: {exc}") from exc
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            raise self._translate(exc, "open") from exc
        return conn

    def _connect_read_only(self) -> sqlite3.Connection:
        """`mode=ro` where SQLite can still share the WAL index; `immutable=1` where it cannot.

        A WAL database opened read-only needs its -shm file, which SQLite cannot create in
        a read-only directory; `immutable=1` then reads the file as it is, without locks
        (right for a backup or snapshot, which nobody writes).
        """
        target = Path(self.path)
        if not target.is_file():
            raise StoreError(
                f"store {self.path} does not exist (opened read-only, so it is not created)",
                suggestion="check the path; open it read-write once to create an empty store",
            )
        uri = target.resolve().as_uri()
        last: sqlite3.Error | None = None
        for flags in ("mode=ro", "mode=ro&immutable=1"):
            conn: sqlite3.Connection | None = None
            try:
                conn = sqlite3.connect(
                    f"{uri}?{flags}",
                    uri=True,
                    timeout=self._busy_timeout,
                    isolation_level=None,
                    check_same_thread=False,
                )
                register_sql_functions(conn)
                todo = [name for name in pending(conn) if name not in READ_OPTIONAL]
            except RuntimeError as exc:
                if conn is not None:
                    conn.close()
                raise SchemaVersionError(f"{self.path} was written by a newer azmem: {exc}") from exc
            except sqlite3.Error as exc:
                if conn is not None:
                    conn.close()
                last = exc
                continue
            if todo:
                conn.close()
                raise StoreError(
                    f"store {self.path} needs schema migrations ({', '.join(todo)}) that a read-only "
                    "open cannot apply",
                    error_code="store_needs_migration",
                    suggestion="open it once read-write with this azmem version (or search a newer copy)",
                )
            return conn
        assert last is not None
        raise self._translate(last, "open read-only") from last

    def _translate(self, exc: sqlite3.Error, action: str) -> StoreError:
        msg = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in msg or "busy" in msg):
            return StoreError(
                f"store {self.path} stayed locked by another writer for {self._busy_timeout:g}s ({action})",
                error_code="store_locked",
                suggestion="retry; if it persists, look for a hung process holding the file",
            )
        if isinstance(exc, sqlite3.OperationalError) and "unable to open" in msg:
            return StoreError(
                f"cannot open store file {self.path}: {msg}",
                suggestion="check that the directory exists and is writable",
            )
        if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
            return StoreError(
                f"store file {self.path} is not a valid azmem store or is damaged: {msg}",
                error_code="store_corrupt",
                suggestion=_RECOVER,
            )
        return StoreError(f"store {self.path}: {action} failed: {msg}", suggestion=_RECOVER)

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
    @staticmethod
    def _meta_embedder(conn: sqlite3.Connection) -> tuple[str, int] | None:
        rows = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('embedder_name', 'dimension')"))
        if "embedder_name" not in rows:
            return None
        return rows["embedder_name"], int(rows["dimension"])

    @property
    def embedder(self) -> tuple[str, int] | None:
        with self._guard("read") as conn:
            return self._meta_embedder(conn)

    def open(self, embedder_name: str, dimension: int) -> None:
        v.check_text(embedder_name, "embedder_name")
        dimension = v.check_limit(dimension, "dimension", maximum=65_536)
        with self._guard("open") as conn:
            current = self._meta_embedder(conn)
            if current == (embedder_name, dimension):  # the usual case: no write lock
                self._embedder = (embedder_name, dimension)
                return
            if self.read_only:  # nothing to record: only a store of other vectors refuses
                empty = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM memories)").fetchone()[0]
                if current is not None and not empty:
                    raise self._mismatch(current, (embedder_name, dimension))
                self._embedder = (embedder_name, dimension)
                return
        with self._write("open") as conn:
            current = self._meta_embedder(conn)
            empty = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM memories)").fetchone()[0]
            if current is not None and current != (embedder_name, dimension) and not empty:
                raise self._mismatch(current, (embedder_name, dimension))
            if current != (embedder_name, dimension):
                conn.executemany(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    [("embedder_name", embedder_name), ("dimension", str(dimension))],
                )
        self._embedder = (embedder_name, dimension)

    def _mismatch(self, stored: tuple[str, int], wanted: tuple[str, int]) -> EmbedderMismatchError:
        return EmbedderMismatchError(
            f"store {self.path} holds vectors from embedder {stored[0]!r} (dimension {stored[1]}), "
            f"but it is being used with {wanted[0]!r} (dimension {wanted[1]})",
            details={"store": self.path, "stored": list(stored), "requested": list(wanted)},
            suggestion="run `azmem reindex` to re-embed every memory with the new embedder, "
            "or configure the embedder the store was built with",
        )

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
        stored = self._meta_embedder(conn)
        if stored is not None and stored != mine:
            raise self._mismatch(stored, mine)
        return mine[1]

    # -- writes -------------------------------------------------------------------------------
    def apply(self, ops: Sequence[Op], *, audit: AuditContext | None = None) -> builtins.list[HistoryEvent]:
        _, dim = self._require_open()
        if isinstance(ops, AddOp | UpdateOp | DeleteOp) or not isinstance(ops, Sequence):
            raise InvalidInputError("apply() takes a sequence of AddOp / UpdateOp / DeleteOp")
        prepared = [self._prepare(op, dim) for op in ops]
        if not prepared:
            return []
        now = format_time(utcnow())
        with self._write("write") as conn:
            self._check_embedder(conn)
            scopes = trail.scopes_of(conn, [p.op for p in prepared])
            events = [self._apply_one(conn, p, now) for p in prepared]
            self._prune_changes(conn)
            trail.append(conn, ops_entries(audit, [p.op for p in prepared], scopes))
        return events

    def _prepare(self, op: object, dim: int) -> _Prepared:
        op = check_op(op)
        if isinstance(op, AddOp):
            rec = op.record
            return _Prepared(
                op,
                text=v.check_text(rec.memory, "memory", max_bytes=v.MAX_MEMORY_BYTES),
                metadata_json=v.encode_metadata(rec.metadata),
                vector=codec.blob(v.check_vector(op.vector, dim)),
                times=(format_time(rec.created_at), format_time(rec.updated_at)),
            )
        if isinstance(op, UpdateOp):
            when = op.updated_at
            return _Prepared(
                op,
                text=None
                if op.memory is None
                else v.check_text(op.memory, "memory", max_bytes=v.MAX_MEMORY_BYTES),
                metadata_json=None if op.metadata is None else v.encode_metadata(op.metadata),
                vector=None if op.vector is None else codec.blob(v.check_vector(op.vector, dim)),
                times=None if when is None else (format_time(when), format_time(when)),
            )
        return _Prepared(op)

    def _apply_one(self, conn: sqlite3.Connection, p: _Prepared, now: str) -> HistoryEvent:
        op = p.op
        if isinstance(op, AddOp):
            rec = op.record
            assert p.text is not None
            assert p.times is not None
            assert p.metadata_json is not None
            try:
                conn.execute(
                    "INSERT INTO memories (id, memory, hash, user_id, agent_id, run_id, actor_id, role, "
                    "metadata, created_at, updated_at, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        rec.id,
                        p.text,
                        memory_hash(p.text),
                        rec.user_id,
                        rec.agent_id,
                        rec.run_id,
                        rec.actor_id,
                        rec.role,
                        p.metadata_json,
                        *p.times,
                        p.vector,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise InvalidInputError(f"a memory with id {rec.id} already exists") from exc
            return self._history(
                conn, rec.id, "ADD", None, p.text, now, rec.actor_id, rec.role, p.metadata_json
            )

        row = conn.execute(
            "SELECT rid, memory, metadata, actor_id, role FROM memories WHERE id = ?", (op.id,)
        ).fetchone()
        if row is None:
            raise MemoryNotFoundError(f"no memory with id {op.id}", details={"memory_id": op.id})
        rid, old_text, old_meta, actor_id, role = row
        if isinstance(op, DeleteOp):
            conn.execute("DELETE FROM memories WHERE rid = ?", (rid,))
            return self._history(
                conn, op.id, "DELETE", old_text, None, now, op.actor_id or actor_id, role, old_meta
            )
        assert isinstance(op, UpdateOp)
        new_text = old_text if p.text is None else p.text
        new_meta = old_meta if p.metadata_json is None else p.metadata_json
        sets = ["memory = ?", "hash = ?", "metadata = ?", "updated_at = ?"]
        params: list[Any] = [new_text, memory_hash(new_text), new_meta, p.times[1] if p.times else now]
        if p.vector is not None:
            sets.append("vector = ?")
            params.append(p.vector)
        if p.text is None:  # leave FTS alone when the text does not change
            del sets[0], params[0]
        conn.execute(f"UPDATE memories SET {', '.join(sets)} WHERE rid = ?", (*params, rid))
        return self._history(
            conn, op.id, "UPDATE", old_text, new_text, now, op.actor_id or actor_id, op.role or role, new_meta
        )

    @staticmethod
    def _history(
        conn: sqlite3.Connection,
        memory_id: str,
        event: str,
        old: str | None,
        new: str | None,
        when: str,
        actor_id: str | None,
        role: str | None,
        metadata_json: str,
    ) -> HistoryEvent:
        row = (str(uuid.uuid4()), memory_id, event, old, new, when, actor_id, role, metadata_json)
        conn.execute(f"INSERT INTO history ({codec.HISTORY_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
        return codec.event(row)

    @staticmethod
    def _prune_changes(conn: sqlite3.Connection, *, everything: bool = False) -> None:
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
        where, params = self._where(scope, None)
        now = format_time(utcnow())
        with self._write("delete") as conn:
            rows = conn.execute(
                f"SELECT m.id, m.memory, m.metadata, m.actor_id, m.role FROM memories m WHERE {where}", params
            ).fetchall()
            conn.executemany(
                f"INSERT INTO history ({codec.HISTORY_COLS}) VALUES (?, ?, 'DELETE', ?, NULL, ?, ?, ?, ?)",
                [
                    (str(uuid.uuid4()), mid, text, now, actor, role, meta)
                    for mid, text, meta, actor, role in rows
                ],
            )
            conn.execute(
                f"DELETE FROM memories WHERE rid IN (SELECT m.rid FROM memories m WHERE {where})", params
            )
            self._prune_changes(conn)
            entries = (audit or AuditContext()).entries(
                "delete_all",
                scope=scope.as_dict(),
                memory_ids=[r[0] for r in rows],
                details={"deleted": len(rows)},
            )
            trail.append(conn, entries)
        return len(rows)

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
    @staticmethod
    def _where(scope: Scope, filters: Filters | CompiledFilter | None) -> tuple[str, builtins.list[Any]]:
        parts: builtins.list[str] = []
        params: builtins.list[Any] = []
        for column, value in scope.as_dict().items():  # fixed column names only
            parts.append(f"m.{column} = ?")
            params.append(value)
        compiled = filters if isinstance(filters, CompiledFilter) else compile_sqlite(parse_filters(filters))
        if compiled is not None:
            parts.append(compiled.sql)
            params.extend(compiled.params)
        return (" AND ".join(parts) or "1"), params

    def get(self, memory_id: str, scope: Scope | None = None) -> MemoryRecord | None:
        v.check_text(memory_id, "memory id")
        where, params = self._where(v.check_scope(scope or Scope(), for_write=False), None)
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
        limit = v.check_limit(limit, "limit", maximum=MAX_LIST_LIMIT)
        where, params = self._where(scope, filters)
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
        where, params = self._where(scope, filters)
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
        batch_size = v.check_limit(batch_size, "batch_size", maximum=MAX_LIST_LIMIT)
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
        limit = v.check_limit(limit, "limit", maximum=MAX_LIST_LIMIT)
        with self._read("read") as conn:
            return transfer.export_memories(conn, after_id, limit)

    def export_history(self, after_id: str | None, limit: int) -> builtins.list[HistoryEvent]:
        limit = v.check_limit(limit, "limit", maximum=MAX_LIST_LIMIT)
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
        where, params = self._where(scope, compiled)
        depth = limit if mode != "hybrid" else max(4 * limit, 40)

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
        seen: set[str] = set()
        with self._write("reindex") as conn:
            for item in vectors:
                memory_id, vector = item
                blob = codec.blob(v.check_vector(vector, dimension, f"vector for {memory_id}"))
                if memory_id in seen:
                    raise StoreError(f"reindex gave memory {memory_id} two vectors; nothing was changed")
                cur = conn.execute("UPDATE memories SET vector = ? WHERE id = ?", (blob, memory_id))
                if cur.rowcount != 1:
                    raise StoreError(
                        f"reindex gave a vector for unknown memory {memory_id}; nothing was changed"
                    )
                seen.add(memory_id)
            total = conn.execute("SELECT count(*) FROM memories").fetchone()[0]
            if total != len(seen):
                raise StoreError(
                    f"reindex covered {len(seen)} of {total} memories; nothing was changed",
                    suggestion="the store changed during reindex (another process wrote): run it again",
                )
            conn.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [("embedder_name", embedder_name), ("dimension", str(dimension))],
            )
            self._prune_changes(conn, everything=True)
            details = {"memories": len(seen), "embedder": embedder_name, "dimension": dimension}
            trail.append(conn, (audit or AuditContext()).entries("reindex", details=details))
        self._embedder = (embedder_name, dimension)
        self._cache.invalidate()
        return len(seen)

    # -- diagnostics ----------------------------------------------------------------------------
    def check(self) -> builtins.list[str]:
        """Consistency problems found (empty when healthy): SQLite pages, FTS index vs rows,
        vector sizes, and every memory's ADD event. For `azmem doctor` and crash tests."""
        problems: builtins.list[str] = []
        with self._read("check") as conn:
            result = [r[0] for r in conn.execute("PRAGMA integrity_check")]
            if result != ["ok"]:
                problems.extend(f"integrity_check: {r}" for r in result)
            try:
                conn.execute("INSERT INTO memories_fts (memories_fts, rank) VALUES ('integrity-check', 1)")
            except sqlite3.DatabaseError as exc:
                problems.append(f"full-text index: {exc}")
            stored = self._meta_embedder(conn)
            if stored is not None:
                bad = conn.execute(
                    "SELECT count(*) FROM memories WHERE length(vector) != ?", (stored[1] * 4,)
                ).fetchone()[0]
                if bad:
                    problems.append(f"{bad} memories have vectors of the wrong size")
            orphans = conn.execute(
                "SELECT count(*) FROM memories m WHERE NOT EXISTS "
                "(SELECT 1 FROM history h WHERE h.memory_id = m.id AND h.event = 'ADD')"
            ).fetchone()[0]
            if orphans:
                problems.append(f"{orphans} memories have no ADD history event")
        return problems
