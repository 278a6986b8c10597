"""A SQLite store's side of ``azmem copy``: whole memories and history rows, verbatim.

Rows go in as they came out (ids, times, hashes, vector bytes), so a copy is
checksum-equal to its source, and a batch that is repeated after an interruption
inserts nothing twice (``INSERT OR IGNORE`` on the unique ids).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

import numpy as np

from azmem.stores.filters import format_time
from azmem.stores.models import HistoryEvent, StoredMemory
from azmem.stores.sqlite import _rows as codec
from azmem.stores.validate import check_vector

__all__ = ["export_history", "export_memories", "import_history", "import_memories"]


def export_memories(conn: sqlite3.Connection, after_id: str | None, limit: int) -> list[StoredMemory]:
    rows = conn.execute(
        f"SELECT {codec.COLS}, m.vector FROM memories m WHERE m.id > ? ORDER BY m.id LIMIT ?",
        (after_id or "", limit),
    ).fetchall()
    return [StoredMemory(codec.record(r), np.frombuffer(r[11], dtype="<f4").copy()) for r in rows]


def export_history(conn: sqlite3.Connection, after_id: str | None, limit: int) -> list[HistoryEvent]:
    # In the order the events happened (seq), not by their random ids: the target numbers rows
    # as they arrive, so this is what keeps a memory's ADD before its UPDATE in the copy.
    # An unknown ``after_id`` restarts from the first event (the import skips known ids).
    rows = conn.execute(
        f"SELECT {codec.HISTORY_COLS} FROM history "
        "WHERE seq > coalesce((SELECT seq FROM history WHERE id = ?), 0) ORDER BY seq LIMIT ?",
        (after_id or "", limit),
    ).fetchall()
    return [codec.event(r) for r in rows]


def import_memories(conn: sqlite3.Connection, items: Sequence[StoredMemory], dimension: int) -> int:
    cur = conn.executemany(
        "INSERT OR IGNORE INTO memories (id, memory, hash, user_id, agent_id, run_id, actor_id, role, "
        "metadata, created_at, updated_at, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                r.id,
                r.memory,
                r.hash,
                r.user_id,
                r.agent_id,
                r.run_id,
                r.actor_id,
                r.role,
                json.dumps(r.metadata, ensure_ascii=False),
                format_time(r.created_at),
                format_time(r.updated_at),
                # Checked for size and finiteness, but never re-normalised: the copy keeps the bits.
                codec.blob(check_vector(item.vector, dimension, f"vector of {r.id}", normalise=False)),
            )
            for item in items
            for r in (item.record,)
        ],
    )
    return max(cur.rowcount, 0)  # rows inserted (total_changes would count the triggers' rows too)


def import_history(conn: sqlite3.Connection, events: Sequence[HistoryEvent]) -> int:
    cur = conn.executemany(
        f"INSERT OR IGNORE INTO history ({codec.HISTORY_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                e.id,
                e.memory_id,
                e.event,
                e.old_memory,
                e.new_memory,
                format_time(e.created_at),
                e.actor_id,
                e.role,
                json.dumps(e.metadata, ensure_ascii=False),
            )
            for e in events
        ],
    )
    return max(cur.rowcount, 0)  # rows inserted (total_changes would count the triggers' rows too)
