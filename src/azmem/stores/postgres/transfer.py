"""A PostgreSQL store's side of ``azmem copy``: whole memories and history rows, verbatim.

Rows go in as they came out (ids, times, hashes, vector values, never re-normalised), so
a copy is checksum-equal to its source; a batch repeated after an interruption inserts
nothing twice (``ON CONFLICT (id) DO NOTHING``). Ids are ``COLLATE "C"``, so id order is
byte order, as in SQLite: both sides page and checksum in the same order.

Into an empty store the memories load without the HNSW index, built once after the last
batch (`bulk_load`): pgvector inserting 100k memories one graph update at a time took 169 s,
against 21 s of inserts and a 20 s build. A store holding memories keeps its index (other
instances may be searching it). A copy that dies mid-way leaves the store without the index:
searches still work, as exact scans (the HNSW query is then a plain sort), `azmem doctor` says
the index is missing, and the run that resumes the copy builds it at its end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from azmem.stores.models import HistoryEvent, StoredMemory
from azmem.stores.postgres import rows as codec
from azmem.stores.postgres import schema
from azmem.stores.postgres.binding import is_empty
from azmem.stores.postgres.connections import Conn
from azmem.stores.postgres.schema import vector_dimension
from azmem.stores.validate import check_vector

__all__ = [
    "bulk_load",
    "drop_index_if_empty",
    "ensure_vector_index",
    "export_history",
    "export_memories",
    "import_history",
    "import_memories",
]

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


# -- bulk load (`copy_store` through `PostgresStore.bulk_load`) ---------------------------------------

Write = Callable[[str, Callable[[Conn], Any]], Any]
"""The store's `_run` for a write: (action, fn) -> fn's result, in one transaction."""


def drop_index_if_empty(conn: Conn) -> bool:
    """Drop the HNSW index when the store holds no memories; True when it did.

    The table lock (which the DROP would take anyway) comes first, so no other instance can
    insert between the look and the drop."""
    conn.execute("LOCK TABLE azmem_memories IN ACCESS EXCLUSIVE MODE")
    if not is_empty(conn):
        return False
    schema.drop_vector_index(conn)
    return True


def ensure_vector_index(conn: Conn, pgvector: tuple[int, ...]) -> bool:
    """Build the HNSW index if the column should have one and it is missing (True when built).

    Looked up first: CREATE INDEX IF NOT EXISTS would lock out writers even when it is there."""
    dimension = vector_dimension(conn)
    kind = None if dimension is None else schema.vector_index(dimension, pgvector)
    if dimension is None or kind is None:
        return False
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [schema.VECTOR_INDEX]).fetchone()
    if row and row[0]:
        return False
    schema.create_vector_index(conn, dimension, kind)
    return True


@contextmanager
def bulk_load(write: Write, pgvector: tuple[int, ...]) -> Iterator[bool]:
    """Memories imported inside load without the HNSW index if the store was empty on entry
    (yields whether it was dropped); on a normal exit the index is built if it is missing,
    dropped by this load or by an earlier one that died. On an exception nothing is built."""
    yield write("copy", drop_index_if_empty)
    write("copy", lambda conn: ensure_vector_index(conn, pgvector))
