"""The store's plain reads (one memory, a page, a count, a history, every memory in order):
one statement each, in scope, on the store's connections (`PostgresStore._run`)."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from azmem.stores import cursors
from azmem.stores import validate as v
from azmem.stores.filters import parse_filters
from azmem.stores.models import HistoryEvent, MemoryRecord, Page, Scope
from azmem.stores.postgres import rows as codec
from azmem.stores.postgres.connections import Conn
from azmem.stores.postgres.filters import CompiledFilter, compile_postgres, where_clause
from azmem.stores.postgres.server import ServerInfo
from azmem.stores.protocol import Filters

__all__ = ["Reads"]

T = TypeVar("T")


class Reads:
    """Mixed into `PostgresStore`, which provides `_run` and `_server`."""

    _server: ServerInfo

    def _run(self, action: str, fn: Callable[[Conn], T]) -> T:
        raise NotImplementedError

    def _where(
        self, scope: Scope, filters: Filters | CompiledFilter | None
    ) -> tuple[str, builtins.list[Any]]:
        if not isinstance(filters, CompiledFilter):
            filters = compile_postgres(parse_filters(filters), self._server.fold)
        return where_clause(scope, filters)

    def _read(self, action: str, sql: str, params: Sequence[Any]) -> builtins.list[Any]:
        return self._run(action, lambda conn: conn.execute(sql, params).fetchall())

    def get(self, memory_id: str, scope: Scope | None = None) -> MemoryRecord | None:
        v.check_text(memory_id, "memory id")
        where, params = self._where(v.check_scope(scope or Scope(), for_write=False), None)
        rows = self._read(
            "read",
            f"SELECT {codec.COLS} FROM azmem_memories m WHERE m.id = %s AND {where}",
            [memory_id, *params],
        )
        return codec.record(rows[0]) if rows else None

    def list(
        self,
        scope: Scope,
        filters: Filters | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page:
        v.check_scope(scope, for_write=False)
        limit = v.check_limit(limit, "limit", maximum=v.MAX_LIST_LIMIT)
        where, params = self._where(scope, filters)
        if cursor is not None:
            created, rid = codec.decode_cursor(cursor)
            where += " AND (m.created_at, m.rid) < (%s, %s)"
            params += [created, rid]
        rows = self._read(
            "read",
            f"SELECT {codec.COLS} FROM azmem_memories m WHERE {where} "
            "ORDER BY m.created_at DESC, m.rid DESC LIMIT %s",
            [*params, limit + 1],
        )
        return cursors.page(rows, limit, cursor=codec.encode_cursor, record=codec.record)

    def count(self, scope: Scope | None = None, filters: Filters | None = None) -> int:
        scope = v.check_scope(scope or Scope(), for_write=False)
        where, params = self._where(scope, filters)
        return int(self._read("read", f"SELECT count(*) FROM azmem_memories m WHERE {where}", params)[0][0])

    def history(self, memory_id: str) -> builtins.list[HistoryEvent]:
        v.check_text(memory_id, "memory id")
        rows = self._read(
            "read",
            f"SELECT {codec.HISTORY_COLS} FROM azmem_history WHERE memory_id = %s ORDER BY seq",
            [memory_id],
        )
        return [codec.event(r) for r in rows]

    def iter_all(self, batch_size: int = 256) -> Iterator[builtins.list[MemoryRecord]]:
        batch_size = v.check_limit(batch_size, "batch_size", maximum=v.MAX_LIST_LIMIT)
        last = 0
        while True:
            rows = self._read(
                "read",
                f"SELECT {codec.COLS} FROM azmem_memories m WHERE m.rid > %s ORDER BY m.rid LIMIT %s",
                [last, batch_size],
            )
            if not rows:
                return
            last = rows[-1][11]
            yield [codec.record(r) for r in rows]
