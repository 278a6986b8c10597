"""The write half of the SQLite store: op validation, the SQL of each op, reindex.

Each op is checked first (`prepare`), so bad input raises `InvalidInputError` before
the write lock is taken. The rest runs inside the caller's one `BEGIN IMMEDIATE`
transaction: every change writes its history row beside it (the FTS5 index and the
change log follow by trigger), so memories, history and mirrors commit together.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from azmem.errors import InvalidInputError, MemoryNotFoundError, StoreError
from azmem.stores import validate as v
from azmem.stores.filters import format_time
from azmem.stores.models import AddOp, DeleteOp, HistoryEvent, Op, UpdateOp, Vector, memory_hash
from azmem.stores.prepare import check_op
from azmem.stores.sqlite import _rows as codec
from azmem.stores.sqlite import binding

__all__ = ["Prepared", "apply_one", "delete_scope", "prepare", "replace_vectors"]


@dataclass(frozen=True)
class Prepared:
    """An op after validation: everything needed to write it without further checks."""

    op: Op
    text: str | None = None
    metadata_json: str | None = None
    vector: bytes | None = None
    times: tuple[str, str] | None = None


def prepare(op: object, dim: int) -> Prepared:
    op = check_op(op)
    if isinstance(op, AddOp):
        rec = op.record
        return Prepared(
            op,
            text=v.check_text(rec.memory, "memory", max_bytes=v.MAX_MEMORY_BYTES),
            metadata_json=v.encode_metadata(rec.metadata),
            vector=codec.blob(v.check_vector(op.vector, dim)),
            times=(format_time(rec.created_at), format_time(rec.updated_at)),
        )
    if isinstance(op, UpdateOp):
        when = op.updated_at
        return Prepared(
            op,
            text=None
            if op.memory is None
            else v.check_text(op.memory, "memory", max_bytes=v.MAX_MEMORY_BYTES),
            metadata_json=None if op.metadata is None else v.encode_metadata(op.metadata),
            vector=None if op.vector is None else codec.blob(v.check_vector(op.vector, dim)),
            times=None if when is None else (format_time(when), format_time(when)),
        )
    return Prepared(op)


def apply_one(conn: sqlite3.Connection, p: Prepared, now: str) -> HistoryEvent:
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
        return _history(conn, rec.id, "ADD", None, p.text, now, rec.actor_id, rec.role, p.metadata_json)

    row = conn.execute(
        "SELECT rid, memory, metadata, actor_id, role FROM memories WHERE id = ?", (op.id,)
    ).fetchone()
    if row is None:
        raise MemoryNotFoundError(f"no memory with id {op.id}", details={"memory_id": op.id})
    rid, old_text, old_meta, actor_id, role = row
    if isinstance(op, DeleteOp):
        conn.execute("DELETE FROM memories WHERE rid = ?", (rid,))
        return _history(conn, op.id, "DELETE", old_text, None, now, op.actor_id or actor_id, role, old_meta)
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
    return _history(
        conn, op.id, "UPDATE", old_text, new_text, now, op.actor_id or actor_id, op.role or role, new_meta
    )


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


def delete_scope(conn: sqlite3.Connection, where: str, params: Sequence[Any], now: str) -> list[str]:
    """Ids deleted; each leaves a DELETE event, as a one-by-one delete would."""
    rows = conn.execute(
        f"SELECT m.id, m.memory, m.metadata, m.actor_id, m.role FROM memories m WHERE {where}", params
    ).fetchall()
    conn.executemany(
        f"INSERT INTO history ({codec.HISTORY_COLS}) VALUES (?, ?, 'DELETE', ?, NULL, ?, ?, ?, ?)",
        [(str(uuid.uuid4()), mid, text, now, actor, role, meta) for mid, text, meta, actor, role in rows],
    )
    conn.execute(f"DELETE FROM memories WHERE rid IN (SELECT m.rid FROM memories m WHERE {where})", params)
    return [r[0] for r in rows]


def replace_vectors(
    conn: sqlite3.Connection, embedder_name: str, dimension: int, vectors: Iterable[tuple[str, Vector]]
) -> int:
    """All or nothing: a vector for every memory, exactly once, or the caller's transaction rolls back."""
    seen: set[str] = set()
    for item in vectors:
        memory_id, vector = item
        blob = codec.blob(v.check_vector(vector, dimension, f"vector for {memory_id}"))
        if memory_id in seen:
            raise StoreError(f"reindex gave memory {memory_id} two vectors; nothing was changed")
        cur = conn.execute("UPDATE memories SET vector = ? WHERE id = ?", (blob, memory_id))
        if cur.rowcount != 1:
            raise StoreError(f"reindex gave a vector for unknown memory {memory_id}; nothing was changed")
        seen.add(memory_id)
    total = conn.execute("SELECT count(*) FROM memories").fetchone()[0]
    if total != len(seen):
        raise StoreError(
            f"reindex covered {len(seen)} of {total} memories; nothing was changed",
            suggestion="the store changed during reindex (another process wrote): run it again",
        )
    binding.record(conn, embedder_name, dimension)
    return len(seen)
