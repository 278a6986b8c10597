"""A PostgreSQL store's side of ``azmem copy``: whole memories and history rows, verbatim.

Rows go in as they came out (ids, times, hashes, vector values, never re-normalised), so
a copy is checksum-equal to its source; a batch repeated after an interruption inserts
nothing twice (``ON CONFLICT (id) DO NOTHING``). Ids are ``COLLATE "C"``, so id order is
byte order, as in SQLite: both sides page and checksum in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from azmem.stores.models import HistoryEvent, StoredMemory
from azmem.stores.postgres import rows as codec
from azmem.stores.postgres.connections import Conn
from azmem.stores.postgres.schema import vector_dimension
from azmem.stores.validate import check_vector

__all__ = ["export_history", "export_memories", "import_history", "import_memories"]

_CHUNK = 500


def export_memories(conn: Conn, after_id: str | None, limit: int) -> list[StoredMemory]:
    vector = "m.embedding" if vector_dimension(conn) is not None else "NULL"
    rows = conn.execute(
        f"SELECT {codec.COLS}, {vector} FROM azmem_memories m WHERE m.id > %s ORDER BY m.id LIMIT %s",
        [after_id or "", limit],
    ).fetchall()
    return [
        StoredMemory(
            codec.record(r),
            np.zeros(0, dtype=np.float32) if r[12] is None else np.array(r[12].to_numpy(), dtype=np.float32),
        )
        for r in rows
    ]


def export_history(conn: Conn, after_id: str | None, limit: int) -> list[HistoryEvent]:
    # In the order the events happened (seq), as the SQLite store exports them (see there).
    rows = conn.execute(
        f"SELECT {codec.HISTORY_COLS} FROM azmem_history "
        "WHERE seq > coalesce((SELECT seq FROM azmem_history WHERE id = %s), 0) ORDER BY seq LIMIT %s",
        [after_id or "", limit],
    ).fetchall()
    return [codec.event(r) for r in rows]


def import_memories(conn: Conn, items: Sequence[StoredMemory], dimension: int) -> int:
    inserted = 0
    for start in range(0, len(items), _CHUNK):
        params: list[Any] = []
        chunk = items[start : start + _CHUNK]
        for item in chunk:
            r = item.record
            literal, count = codec.document(r.memory)
            # Checked for size and finiteness, but never re-normalised: the copy keeps the values.
            vector = check_vector(item.vector, dimension, f"vector of {r.id}", normalise=False)
            params += [r.id, r.memory, r.hash, r.user_id, r.agent_id, r.run_id, r.actor_id, r.role]
            params += [codec.json_text(r.metadata), r.created_at, r.updated_at, literal, count, vector]
        values = ", ".join(
            ["(%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s::tsvector, %s, %s)"] * len(chunk)
        )
        cur = conn.execute(
            "INSERT INTO azmem_memories (id, memory, hash, user_id, agent_id, run_id, actor_id, role, "
            "metadata, created_at, updated_at, lexemes, doc_len, embedding) "
            f"VALUES {values} ON CONFLICT (id) DO NOTHING",
            params,
        )
        inserted += max(cur.rowcount, 0)
    return inserted


def import_history(conn: Conn, events: Sequence[HistoryEvent]) -> int:
    inserted = 0
    for start in range(0, len(events), _CHUNK):
        chunk = events[start : start + _CHUNK]
        params: list[Any] = []
        for e in chunk:
            params += [
                e.id,
                e.memory_id,
                e.event,
                e.old_memory,
                e.new_memory,
                e.created_at,
                e.actor_id,
                e.role,
            ]
            params.append(codec.json_text(e.metadata))
        values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)"] * len(chunk))
        cur = conn.execute(
            f"INSERT INTO azmem_history ({codec.HISTORY_COLS}) VALUES {values} ON CONFLICT (id) DO NOTHING",
            params,
        )
        inserted += max(cur.rowcount, 0)
    return inserted
