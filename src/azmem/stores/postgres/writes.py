"""The write half of the PostgreSQL store: op validation, the SQL of each op, reindex staging.

Each op is checked first (`prepare`: same checks, same messages as SQLite), so bad input
raises `InvalidInputError` before the transaction starts. Then `apply_ops` runs inside
the caller's one transaction: consecutive adds go in multi-row INSERTs (`ON CONFLICT
DO NOTHING RETURNING id` tells which ids already existed), each update or delete is one
statement that also writes its history row (data-modifying CTEs), so history and
memories commit together.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from psycopg import sql

from azmem.errors import InvalidInputError, MemoryNotFoundError, StoreError
from azmem.stores import validate as v
from azmem.stores.filters import format_time
from azmem.stores.models import AddOp, DeleteOp, HistoryEvent, Op, UpdateOp, Vector, memory_hash
from azmem.stores.postgres import binding, schema
from azmem.stores.postgres import rows as codec
from azmem.stores.postgres.connections import Conn
from azmem.stores.prepare import check_op

__all__ = [
    "Prepared",
    "apply_ops",
    "compact_stats",
    "delete_scope",
    "maybe_compact_stats",
    "prepare",
    "replace_vectors",
]

_CHUNK = 500
_STATS_LOCK = 0x617A6D656E  # pg_try_advisory_xact_lock key of the lexical-stats compaction
_COMPACT_EVERY = 8  # on average, one write in this many folds the lexical-stats log

_INSERT_ROW = "(%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s::tsvector, %s, %s)"
_INSERT = (
    "INSERT INTO azmem_memories (id, memory, hash, user_id, agent_id, run_id, actor_id, role, metadata, "
    "created_at, updated_at, lexemes, doc_len, embedding) VALUES {} ON CONFLICT (id) DO NOTHING RETURNING id"
)
_HISTORY_ROW = "(%s, %s, 'ADD', NULL, %s, %s, %s, %s, %s::jsonb)"
_HISTORY = (
    "INSERT INTO azmem_history (id, memory_id, event, old_memory, new_memory, created_at, actor_id, role, "
    "metadata) VALUES {}"
)
_UPDATE = (
    "WITH old AS (SELECT rid, memory, actor_id, role FROM azmem_memories WHERE id = %s FOR UPDATE), "
    "upd AS (UPDATE azmem_memories m SET memory = coalesce(%s, m.memory), hash = coalesce(%s, m.hash), "
    "lexemes = coalesce(%s::tsvector, m.lexemes), doc_len = coalesce(%s::integer, m.doc_len), "
    "metadata = coalesce(%s::jsonb, m.metadata), updated_at = %s, embedding = coalesce(%s, m.embedding) "
    "FROM old WHERE m.rid = old.rid "
    "RETURNING old.memory AS old_memory, m.memory AS new_memory, m.metadata, old.actor_id, old.role) "
    "INSERT INTO azmem_history (id, memory_id, event, old_memory, new_memory, created_at, actor_id, role, "
    "metadata) SELECT %s, %s, 'UPDATE', old_memory, new_memory, %s, coalesce(%s, actor_id), "
    "coalesce(%s, role), metadata FROM upd RETURNING old_memory, new_memory, actor_id, role, metadata"
)
_DELETE = (
    "WITH del AS (DELETE FROM azmem_memories WHERE id = %s RETURNING memory, metadata, actor_id, role) "
    "INSERT INTO azmem_history (id, memory_id, event, old_memory, new_memory, created_at, actor_id, role, "
    "metadata) SELECT %s, %s, 'DELETE', memory, NULL, %s, coalesce(%s, actor_id), role, metadata FROM del "
    "RETURNING old_memory, actor_id, role, metadata"
)


@dataclass(frozen=True)
class Prepared:
    """An op after validation: everything needed to write it without further checks."""

    op: Op
    text: str | None = None
    metadata: str | None = None  # jsonb text (rows.json_text)
    document: tuple[str, int] | None = None  # (tsvector literal, word count)
    vector: npt.NDArray[np.float32] | None = None
    times: tuple[datetime, datetime] | None = None


def _time(value: datetime) -> datetime:
    format_time(value)  # the same check as SQLite: aware and in range
    return value


def _text(value: object) -> tuple[str, tuple[str, int]]:
    text = v.check_text(value, "memory", max_bytes=v.MAX_MEMORY_BYTES)
    return text, codec.document(text)


def _metadata(value: object) -> str:
    v.encode_metadata(value)  # validation, with its messages
    return codec.json_text(value)


def prepare(op: object, dim: int) -> Prepared:
    op = check_op(op)
    if isinstance(op, AddOp):
        rec = op.record
        text, document = _text(rec.memory)
        return Prepared(
            op,
            text=text,
            metadata=_metadata(rec.metadata),
            document=document,
            vector=v.check_vector(op.vector, dim),
            times=(_time(rec.created_at), _time(rec.updated_at)),
        )
    if isinstance(op, UpdateOp):
        new_text: str | None = None
        new_document: tuple[str, int] | None = None
        if op.memory is not None:
            new_text, new_document = _text(op.memory)
        when = None if op.updated_at is None else _time(op.updated_at)
        return Prepared(
            op,
            text=new_text,
            metadata=None if op.metadata is None else _metadata(op.metadata),
            document=new_document,
            vector=None if op.vector is None else v.check_vector(op.vector, dim),
            times=None if when is None else (when, when),
        )
    return Prepared(op)


def apply_ops(conn: Conn, prepared: Sequence[Prepared], now: datetime) -> list[HistoryEvent]:
    """Write every op, in order, in the caller's transaction; returns their history events."""
    events: list[HistoryEvent] = []
    i = 0
    while i < len(prepared):
        if isinstance(prepared[i].op, AddOp):
            j = i
            while j < len(prepared) and isinstance(prepared[j].op, AddOp):
                j += 1
            events += _add(conn, prepared[i:j], now)
            i = j
            continue
        events.append(
            _update(conn, prepared[i], now)
            if isinstance(prepared[i].op, UpdateOp)
            else _delete(conn, prepared[i], now)
        )
        i += 1
    maybe_compact_stats(conn)
    return events


def _exists(memory_id: str) -> InvalidInputError:
    return InvalidInputError(f"a memory with id {memory_id} already exists")


def _add(conn: Conn, group: Sequence[Prepared], now: datetime) -> list[HistoryEvent]:
    seen: set[str] = set()
    for p in group:
        assert isinstance(p.op, AddOp)
        if p.op.record.id in seen:
            raise _exists(p.op.record.id)
        seen.add(p.op.record.id)
    events: list[HistoryEvent] = []
    for start in range(0, len(group), _CHUNK):
        chunk = group[start : start + _CHUNK]
        params: list[Any] = []
        history: list[Any] = []
        for p in chunk:
            assert isinstance(p.op, AddOp)
            assert p.text is not None
            assert p.document is not None
            assert p.times is not None
            rec = p.op.record
            params += [rec.id, p.text, memory_hash(p.text), rec.user_id, rec.agent_id, rec.run_id]
            params += [rec.actor_id, rec.role, p.metadata, *p.times, *p.document, p.vector]
            event_id = str(uuid.uuid4())
            history += [event_id, rec.id, p.text, now, rec.actor_id, rec.role, p.metadata]
            events.append(
                HistoryEvent.model_construct(
                    id=event_id,
                    memory_id=rec.id,
                    event="ADD",
                    old_memory=None,
                    new_memory=p.text,
                    created_at=now,
                    actor_id=rec.actor_id,
                    role=rec.role,
                    metadata=json.loads(p.metadata or "{}"),
                )
            )
        inserted = {r[0] for r in conn.execute(_INSERT.format(", ".join([_INSERT_ROW] * len(chunk))), params)}
        for p in chunk:
            assert isinstance(p.op, AddOp)
            if p.op.record.id not in inserted:
                raise _exists(p.op.record.id)
        conn.execute(_HISTORY.format(", ".join([_HISTORY_ROW] * len(chunk))), history)
    return events


def _not_found(memory_id: str) -> MemoryNotFoundError:
    return MemoryNotFoundError(f"no memory with id {memory_id}", details={"memory_id": memory_id})


def _update(conn: Conn, p: Prepared, now: datetime) -> HistoryEvent:
    op = p.op
    assert isinstance(op, UpdateOp)
    literal, count = p.document if p.document is not None else (None, None)
    event_id = str(uuid.uuid4())
    row = conn.execute(
        _UPDATE,
        [
            op.id,
            p.text,
            None if p.text is None else memory_hash(p.text),
            literal,
            count,
            p.metadata,
            p.times[1] if p.times else now,
            p.vector,
            event_id,
            op.id,
            now,
            op.actor_id,
            op.role,
        ],
    ).fetchone()
    if row is None:
        raise _not_found(op.id)
    return HistoryEvent.model_construct(
        id=event_id,
        memory_id=op.id,
        event="UPDATE",
        old_memory=row[0],
        new_memory=row[1],
        created_at=now,
        actor_id=row[2],
        role=row[3],
        metadata=row[4],
    )


def _delete(conn: Conn, p: Prepared, now: datetime) -> HistoryEvent:
    op = p.op
    assert isinstance(op, DeleteOp)
    event_id = str(uuid.uuid4())
    row = conn.execute(_DELETE, [op.id, event_id, op.id, now, op.actor_id]).fetchone()
    if row is None:
        raise _not_found(op.id)
    return HistoryEvent.model_construct(
        id=event_id,
        memory_id=op.id,
        event="DELETE",
        old_memory=row[0],
        new_memory=None,
        created_at=now,
        actor_id=row[1],
        role=row[2],
        metadata=row[3],
    )


def delete_scope(conn: Conn, where: str, params: Sequence[Any], now: datetime) -> list[str]:
    """`delete_all`: every memory matching `where` goes, each with a DELETE event, in one statement.
    Returns the ids deleted (for the audit record)."""
    rows = conn.execute(
        f"WITH gone AS (DELETE FROM azmem_memories m WHERE {where} "
        "RETURNING m.rid, m.id, m.memory, m.metadata, m.actor_id, m.role), "
        "hist AS (INSERT INTO azmem_history (id, memory_id, event, old_memory, new_memory, "
        "created_at, actor_id, role, metadata) SELECT gen_random_uuid()::text, id, 'DELETE', "
        "memory, NULL, %s, actor_id, role, metadata FROM gone ORDER BY rid RETURNING memory_id) "
        "SELECT memory_id FROM hist",
        [*params, now],
    ).fetchall()
    compact_stats(conn)
    return [r[0] for r in rows]


def compact_stats(conn: Conn) -> None:
    """Fold the lexical-stats log into one row (skipped while another writer is doing it)."""
    got = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", [_STATS_LOCK]).fetchone()
    if got and got[0]:
        conn.execute(
            "WITH gone AS (DELETE FROM azmem_lexical_stats RETURNING docs, tokens) "
            "INSERT INTO azmem_lexical_stats (docs, tokens) "
            "SELECT coalesce(sum(docs), 0), coalesce(sum(tokens), 0) FROM gone"
        )


def maybe_compact_stats(conn: Conn) -> None:
    if random.random() < 1.0 / _COMPACT_EVERY:
        compact_stats(conn)


def _stage_vectors(conn: Conn, dimension: int, vectors: Iterable[tuple[str, Vector]]) -> int:
    """Copy the reindex's vectors into a temporary table (dropped at commit); returns how many.

    Only the temporary table is written while `vectors` is consumed, so a generator that
    reads the store (`iter_all`) meets no lock of ours.
    """
    conn.execute(
        sql.SQL(
            'CREATE TEMP TABLE azmem_reindex (id text COLLATE "C" PRIMARY KEY, embedding vector({})) '
            "ON COMMIT DROP"
        ).format(sql.Literal(dimension))
    )
    seen: set[str] = set()
    batch: list[tuple[str, npt.NDArray[np.float32]]] = []

    def flush() -> None:
        if batch:
            conn.execute(
                "INSERT INTO azmem_reindex (id, embedding) VALUES " + ", ".join(["(%s, %s)"] * len(batch)),
                [x for pair in batch for x in pair],
            )
            batch.clear()

    for item in vectors:
        memory_id, vector = item
        if not isinstance(memory_id, str):
            raise StoreError(f"reindex gave a vector for unknown memory {memory_id!r}; nothing was changed")
        checked = v.check_vector(vector, dimension, f"vector for {memory_id}")
        if memory_id in seen:
            raise StoreError(f"reindex gave memory {memory_id} two vectors; nothing was changed")
        seen.add(memory_id)
        batch.append((memory_id, checked))
        if len(batch) >= _CHUNK:
            flush()
    flush()
    return len(seen)


def replace_vectors(
    conn: Conn, embedder: tuple[str, int], vectors: Iterable[tuple[str, Vector]], pgvector: tuple[int, ...]
) -> int:
    """The whole reindex, in the caller's transaction: stage, check coverage, swap, re-index."""
    dimension = embedder[1]
    given = _stage_vectors(conn, dimension, vectors)
    # Writers wait from here to the commit; readers too once the vector index is dropped below
    # (rebuilding it once is much faster than updating it row by row).
    conn.execute("LOCK TABLE azmem_meta IN EXCLUSIVE MODE")
    conn.execute("LOCK TABLE azmem_memories IN SHARE ROW EXCLUSIVE MODE")
    unknown = conn.execute(
        "SELECT r.id FROM azmem_reindex r "
        "WHERE NOT EXISTS (SELECT 1 FROM azmem_memories m WHERE m.id = r.id) LIMIT 1"
    ).fetchone()
    if unknown is not None:
        raise StoreError(f"reindex gave a vector for unknown memory {unknown[0]}; nothing was changed")
    total = int((conn.execute("SELECT count(*) FROM azmem_memories").fetchone() or (0,))[0])
    if total != given:
        raise StoreError(
            f"reindex covered {given} of {total} memories; nothing was changed",
            suggestion="the store changed during reindex (another process wrote): run it again",
        )
    kind = schema.vector_index(dimension, pgvector)
    schema.drop_vector_index(conn)
    schema.bind_vectors(conn, dimension, kind, rebuild_index=False)
    conn.execute("UPDATE azmem_memories m SET embedding = r.embedding FROM azmem_reindex r WHERE m.id = r.id")
    schema.create_vector_index(conn, dimension, kind)
    binding.record(conn, embedder)
    return given
