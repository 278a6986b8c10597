"""`MemoryStore` on PostgreSQL + pgvector: several processes and machines share one database.

Guarantees and the choices behind them (the contract is `stores/protocol.py`; the
behaviour follows the SQLite store unless said otherwise):

* **Atomic writes.** `apply`, `delete_all`, `reset`, `replace_vectors` and the embedder
  binding each run in ONE transaction: rows, vectors, words (``lexemes``), history and
  the BM25 postings and statistics (triggers) commit together. Validation runs before it starts.
* **Concurrency.** Any number of processes; each store object holds a connection pool
  (`pool_size`, default 10) and is safe to share between threads. Writers serialise
  only on the rows they touch; an embedder rebind or reindex takes the `azmem_meta`
  lock, which every write holds shared, so a write never mixes two embedders.
* **Schema.** Versioned migrations (`schema.py`) run when a read-write store opens, in
  one transaction under an advisory lock; a newer schema raises `SchemaVersionError`.
* **Read-only.** The session is `default_transaction_read_only`; nothing is created
  (a database without the store, or with pending migrations, opens for `describe()`,
  and reads then raise StoreError); writes raise StoreError `store_read_only`.
* **Errors.** Never a raw psycopg error (`errors.py`): server down / restarting /
  connection lost -> `StoreUnavailableError` naming host:port; reads are retried on a
  fresh connection, writes only when nothing can have been committed
  (`connections.py`). Bad credentials -> `StoreAuthError`.
* **Search.** Scope and filters are SQL conditions applied before ranking; dense search
  is exact on small candidate sets and HNSW otherwise, BM25 is summed in SQL over a
  postings table kept by triggers (`lexical.py`), and both are fused by `ranking.rank`
  exactly as on SQLite (`search.py` says how the lexical score differs from SQLite's
  FTS5 bm25, and how a search makes do with one or two round trips).
"""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import psycopg

from azmem.errors import InvalidInputError, SchemaVersionError, StoreError
from azmem.stores import validate as v
from azmem.stores.audit import AuditContext, ForgetReport, import_entries, ops_entries
from azmem.stores.audit_log import AuditLog
from azmem.stores.filters import parse_filters
from azmem.stores.keys import KeyRing
from azmem.stores.models import (
    AddOp,
    DeleteOp,
    HistoryEvent,
    Op,
    Scope,
    SearchHit,
    SearchMode,
    StoredMemory,
    UpdateOp,
    Vector,
    utcnow,
)
from azmem.stores.postgres import audit as trail
from azmem.stores.postgres import binding, diagnostics, lexical, schema, search, server, transfer, writes
from azmem.stores.postgres.breadth import Breadth
from azmem.stores.postgres.connections import Conn, Connections, check_option, normalise_url
from azmem.stores.postgres.errors import Where, translate
from azmem.stores.postgres.filters import CASEFOLD, compile_postgres
from azmem.stores.postgres.reads import Reads
from azmem.stores.prepare import check_search, search_inputs
from azmem.stores.protocol import Filters

__all__ = ["PostgresStore"]

T = TypeVar("T")

MAX_DIMENSION = 16_000  # pgvector's vector type


class PostgresStore(Reads):
    """`MemoryStore` on PostgreSQL with pgvector. `url` is a libpq URL (``postgresql://...``)."""

    def __init__(
        self,
        url: str,
        *,
        read_only: bool = False,
        pool_size: int | None = None,
        password: Callable[[], str] | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        max_lifetime: float = 1800.0,
        max_idle: float = 600.0,
        ef_search: int | None = None,
        exact_scan_rows: int = 2000,
        prepare_threshold: int | None = 5,
    ) -> None:
        """Open (and, read-write, create or migrate) the store in the database `url` names.

        `pool_size` bounds this object's connections (default 10). `password`, when given,
        is called for each new connection (a Microsoft Entra ID token provider) and wins
        over a password in the URL; connections are recycled after `max_lifetime` seconds
        (default 30 min, well inside a token's lifetime). `timeout` is how long a call
        waits for a free connection, `connect_timeout` how long a connection attempt may
        take. `ef_search` is HNSW's search breadth (None: it follows the store's size,
        `breadth.py`); scopes/filters leaving at most
        `exact_scan_rows` memories are searched exactly. `prepare_threshold=None` turns
        off prepared statements (for PgBouncer in transaction mode).
        """
        if not isinstance(url, str) or not url:
            raise InvalidInputError("the store URL must be a non-empty string")
        size = 10 if pool_size is None else check_option(pool_size, "pool_size", minimum=1, integer=True)
        self._breadth = Breadth(
            None if ef_search is None else check_option(ef_search, "ef_search", minimum=1, integer=True)
        )
        self._exact_rows = check_option(exact_scan_rows, "exact_scan_rows", minimum=0, integer=True)
        conninfo = normalise_url(url)
        self.where = Where.of(conninfo)
        self.url = self.where.url
        self.path = self.url  # what messages name, as SQLiteStore.path
        self.read_only = read_only
        self._embedder: tuple[str, int] | None = None
        self._large = search.LargeScopes()
        self._conns = Connections(
            conninfo,
            self.where,
            read_only=read_only,
            pool_size=size,
            password=password,
            timeout=check_option(timeout, "timeout", minimum=0.1),
            connect_timeout=check_option(connect_timeout, "connect_timeout", minimum=1),
            max_lifetime=check_option(max_lifetime, "max_lifetime", minimum=1),
            max_idle=check_option(max_idle, "max_idle", minimum=1),
            prepare_threshold=prepare_threshold,
        )
        self._pending: builtins.list[str] = []
        conn = self._conns.direct("open")
        try:
            self._server = server.inspect(conn, self.where)
            if read_only:
                self._pending = schema.pending(conn)
            else:
                schema.migrate(conn, lambda c: server.ensure_vector(c, self._server, self.where))
                self._conns.register(conn)
            if not self._pending:  # the breadth's first count, before the pool's connections
                row = conn.execute(lexical.N_SQL).fetchone()
                self._breadth.observe(int(row[0]) if row else 0)
        except schema.SchemaTooNew as exc:
            raise SchemaVersionError(f"store {self.url} was written by a newer azmem: {exc}") from exc
        except psycopg.Error as exc:
            raise translate(exc, self.where, "open") from exc
        finally:
            conn.close()
        # Not behind a transaction pooler: session settings stick (`_plan` keeps them current).
        self._session = prepare_threshold is not None
        self._breadth_now()
        self._conns.start()

    # -- plumbing -----------------------------------------------------------------------------
    def _run(
        self,
        action: str,
        fn: Callable[[Conn], T],
        *,
        write: bool = False,
        retry: bool = True,
        ready: bool = True,
        snapshot: bool = False,
        atomic: bool = True,
    ) -> T:
        """`fn(conn)` in one transaction (`connections.Connections.run`), on a migrated store."""
        if self._conns.closed:
            raise self._conns.closed_error()
        if write and self.read_only:
            raise StoreError(
                f"store {self.url} is open read-only; cannot {action}",
                error_code="store_read_only",
                suggestion="open it without read_only to change it",
            )

        def ready_then(conn: Conn) -> T:
            self._ready(conn)
            return fn(conn)

        chosen = ready_then if ready and self._pending else fn
        if not write:
            return self._conns.run(action, chosen, retry=retry, snapshot=snapshot, atomic=atomic)
        self._large.clear()  # a write may shrink a scope below exact_scan_rows: probe again
        try:
            return self._conns.run(action, chosen, write=write, retry=retry, snapshot=snapshot)
        finally:
            self._large.clear()  # a search during the write may have seen the old size

    def _ready(self, conn: Conn) -> None:
        """Reads of a read-only store whose migrations are not (yet) applied cannot work."""
        if self._pending:
            try:
                schema.require_current(conn, self.url)
            except schema.SchemaTooNew as exc:
                raise SchemaVersionError(f"store {self.url} was written by a newer azmem: {exc}") from exc
            self._pending = []

    def close(self) -> None:
        self._conns.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r}, read_only={self.read_only})"

    # -- embedder binding ---------------------------------------------------------------------
    @property
    def embedder(self) -> tuple[str, int] | None:
        def look(conn: Conn) -> tuple[str, int] | None:
            if self._pending:
                try:
                    self._ready(conn)
                except StoreError:
                    return None  # not migrated (read-only): no embedder recorded yet
            return binding.recorded(conn)

        return self._run("read", look, ready=False)

    def open(self, embedder_name: str, dimension: int) -> None:
        v.check_text(embedder_name, "embedder_name")
        dimension = v.check_limit(dimension, "dimension", maximum=MAX_DIMENSION)
        wanted = (embedder_name, dimension)

        def look(conn: Conn) -> tuple[tuple[str, int] | None, bool]:
            return binding.recorded(conn), binding.is_empty(conn)

        current, empty = self._run("open", look)  # the usual case needs no write
        if current != wanted and self.read_only and current is not None and not empty:
            raise binding.mismatch(self.url, current, wanted)
        if current != wanted and not self.read_only:
            self._run(
                "open", lambda conn: binding.bind(conn, self.url, wanted, self._server.pgvector), write=True
            )
        self._embedder = wanted

    def _require_open(self) -> tuple[str, int]:
        if self._embedder is None:
            raise StoreError(
                f"store {self.url} has no embedder bound",
                suggestion="call store.open(embedder_name, dimension) before writing or searching",
            )
        return self._embedder

    def _check_embedder(self, conn: Conn, *, lock: bool) -> tuple[str, int]:
        """Catch another process's reindex between our open() and this call."""
        mine = self._require_open()
        stored = binding.recorded(conn, lock=lock)
        if stored is not None and stored != mine:
            raise binding.mismatch(self.url, stored, mine)
        return mine

    # -- writes -------------------------------------------------------------------------------
    def apply(self, ops: Sequence[Op], *, audit: AuditContext | None = None) -> builtins.list[HistoryEvent]:
        _, dim = self._require_open()
        if isinstance(ops, AddOp | UpdateOp | DeleteOp) or not isinstance(ops, Sequence):
            raise InvalidInputError("apply() takes a sequence of AddOp / UpdateOp / DeleteOp")
        prepared = [writes.prepare(op, dim) for op in ops]
        if not prepared:
            return []
        now = utcnow()

        def body(conn: Conn) -> builtins.list[HistoryEvent]:
            self._check_embedder(conn, lock=True)
            scopes = trail.scopes_of(conn, [p.op for p in prepared])
            events = writes.apply_ops(conn, prepared, now)
            trail.append(conn, ops_entries(audit, [p.op for p in prepared], scopes))
            return events

        return self._run("write", body, write=True)

    def delete_all(self, scope: Scope, *, audit: AuditContext | None = None) -> int:
        v.check_scope(scope, for_write=True)
        where, params = self._where(scope, None)
        now = utcnow()

        def body(conn: Conn) -> int:
            ids = writes.delete_scope(conn, where, params, now)
            details = {"deleted": len(ids)}
            entries = (audit or AuditContext()).entries(
                "delete_all", scope=scope.as_dict(), memory_ids=ids, details=details
            )
            trail.append(conn, entries)
            return len(ids)

        return self._run("delete", body, write=True)

    def reset(self, *, audit: AuditContext | None = None) -> None:
        def body(conn: Conn) -> None:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM azmem_memories), (SELECT count(*) FROM azmem_history)"
            ).fetchone()
            conn.execute(
                "TRUNCATE azmem_memories, azmem_history, azmem_lexical_stats, azmem_memory_owners, "
                "azmem_postings"
            )
            details = {"memories": int(row[0]), "history": int(row[1])} if row else {}
            trail.append(conn, (audit or AuditContext()).entries("reset", details=details))

        self._run("reset", body, write=True)
        self._breadth.forget()

    def forget(
        self, scope: Scope, *, audit: AuditContext | None = None, compact: bool = True
    ) -> ForgetReport:
        """Erase every trace of a scope's text (see `MemoryStore.forget`); `compact` then VACUUMs
        the tables that held it."""
        v.check_scope(scope, for_write=True)

        def body(conn: Conn) -> ForgetReport:
            report = trail.forget(conn, scope, audit)
            writes.compact_stats(conn)
            return report

        report = self._run("forget", body, write=True, retry=False)
        if not compact:
            return report
        conn = self._conns.direct("compact")
        try:
            clean = trail.compact(conn)
        finally:
            conn.close()
        return dataclasses.replace(report, compacted=clean)

    @property
    def audit_log(self) -> AuditLog:
        """The audit trail, in this store's database (see `azmem.stores.audit`)."""
        return AuditLog(trail.PostgresAuditTable(self._run))

    # -- search -------------------------------------------------------------------------------
    def _breadth_now(self) -> int:
        """The HNSW breadth now, made the connections' session setting (a no-op when unchanged)."""
        ef = self._breadth.current()
        if self._session:
            self._conns.session = search.session_settings(ef, self._server.pgvector >= (0, 8))
        return ef

    def _plan(self, dimension: int) -> search.VectorPlan:
        return search.VectorPlan(
            dimension=dimension,
            index=schema.vector_index(dimension, self._server.pgvector),
            iterative_scan=self._server.pgvector >= (0, 8),
            ef_search=self._breadth_now(),
            exact_rows=self._exact_rows,
            session=self._session,
            large=self._large,
            breadth=self._breadth,
        )

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
        compiled = compile_postgres(parse_filters(filters), self._server.fold)
        q = search.Query.of(mode, query, terms, scope, compiled, limit, threshold)
        plan = None if query is None else self._plan(self._require_open()[1])
        check = binding.checker(self.url, self._require_open)  # used when there is a query vector

        atomic = search.needs_transaction(q, plan)
        return self._run(
            "search", lambda conn: search.run(conn, q, plan, check), snapshot=atomic, atomic=atomic
        )

    # -- reindex and copy -----------------------------------------------------------------------
    def replace_vectors(
        self,
        embedder_name: str,
        dimension: int,
        vectors: Iterable[tuple[str, Vector]],
        *,
        audit: AuditContext | None = None,
    ) -> int:
        v.check_text(embedder_name, "embedder_name")
        dimension = v.check_limit(dimension, "dimension", maximum=MAX_DIMENSION)
        wanted = (embedder_name, dimension)

        def body(conn: Conn) -> int:
            written = writes.replace_vectors(conn, wanted, vectors, self._server.pgvector)
            details = {"memories": written, "embedder": embedder_name, "dimension": dimension}
            trail.append(conn, (audit or AuditContext()).entries("reindex", details=details))
            return written

        # Not retried: `vectors` may be a generator, consumed by the first attempt.
        written = self._run("reindex", body, write=True, retry=False)
        self._embedder = wanted
        return written

    def export_memories(self, after_id: str | None, limit: int) -> builtins.list[StoredMemory]:
        limit = v.check_limit(limit, "limit", maximum=v.MAX_LIST_LIMIT)
        return self._run("read", lambda conn: transfer.export_memories(conn, after_id, limit))

    def export_history(self, after_id: str | None, limit: int) -> builtins.list[HistoryEvent]:
        limit = v.check_limit(limit, "limit", maximum=v.MAX_LIST_LIMIT)
        return self._run("read", lambda conn: transfer.export_history(conn, after_id, limit))

    def import_memories(self, items: Sequence[StoredMemory], *, audit: AuditContext | None = None) -> int:
        def body(conn: Conn) -> int:
            inserted = transfer.import_memories(conn, items, self._check_embedder(conn, lock=True)[1])
            trail.append(conn, import_entries(audit, items, inserted))
            return inserted

        return self._run("copy", body, write=True)

    def bulk_load(self) -> AbstractContextManager[bool]:
        """`SupportsBulkLoad`: into an empty store, memories imported inside load without the HNSW
        index, built once at the end (`transfer.bulk_load`)."""
        return transfer.bulk_load(lambda action, fn: self._run(action, fn, write=True), self._server.pgvector)

    def import_history(self, events: Sequence[HistoryEvent], *, audit: AuditContext | None = None) -> int:
        def body(conn: Conn) -> int:
            inserted = transfer.import_history(conn, events)
            details = {"history": inserted, "given": len(events)}
            trail.append(conn, (audit or AuditContext()).entries("import", details=details))
            return inserted

        return self._run("copy", body, write=True)

    # -- API keys (SupportsKeys) -------------------------------------------------------------------
    @property
    def keys(self) -> KeyRing:
        """The server's API keys, in this store's database (see `azmem.stores.keys`)."""
        from azmem.stores.postgres.keys import PostgresKeyTable

        return KeyRing(PostgresKeyTable(self._run))

    # -- diagnostics ----------------------------------------------------------------------------
    @property
    def pool_size(self) -> int:
        """The most connections this store opens: `AsyncMemory` runs as many store threads."""
        return self._conns.pool_size

    def describe(self) -> dict[str, Any]:
        """What `azmem doctor` shows: server and pgvector versions, migrations applied vs known,
        indexes present and missing, the embedder, the connection settings."""
        info = self._run("describe", diagnostics.describe, ready=False)
        info.update(
            url=self.url,
            read_only=self.read_only,
            pool_size=self.pool_size,
            ef_search=self._breadth.fixed if self._breadth.fixed is not None else "auto",
            exact_scan_rows=self._exact_rows,
            icontains_folding="casefold" if self._server.fold is CASEFOLD else "lower",
        )
        return info

    def check(self) -> builtins.list[str]:
        """Consistency problems found (empty when healthy): missing vectors, words out of step
        with the text, BM25 statistics vs the table, memories without an ADD event."""

        return self._run(
            "check", lambda conn: diagnostics.check(conn, self._embedder or binding.recorded(conn))
        )
