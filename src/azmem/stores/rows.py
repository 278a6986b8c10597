"""Rows of the memory and history columns, turned into the models: the same for every backend.

Every backend selects the columns in this order (``MEMORY_COLS``, ``HISTORY_COLS``); a
backend passes how its driver hands back a time and the metadata.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from azmem.stores.models import HistoryEvent, MemoryRecord

__all__ = ["HISTORY_COLS", "MEMORY_COLS", "event", "record"]

# Column order matters: index 9 is created_at, 0 the id (a backend may append its row key).
MEMORY_COLS = (
    "m.id, m.memory, m.hash, m.user_id, m.agent_id, m.run_id, m.actor_id, m.role, "
    "m.metadata, m.created_at, m.updated_at"
)
HISTORY_COLS = "id, memory_id, event, old_memory, new_memory, created_at, actor_id, role, metadata"


def record(
    row: Sequence[Any], *, time: Callable[[Any], datetime], meta: Callable[[Any], Any]
) -> MemoryRecord:
    # Rows were validated on the way in; model_construct skips re-validation on hot paths.
    return MemoryRecord.model_construct(
        id=row[0],
        memory=row[1],
        hash=row[2],
        user_id=row[3],
        agent_id=row[4],
        run_id=row[5],
        actor_id=row[6],
        role=row[7],
        metadata=meta(row[8]),
        created_at=time(row[9]),
        updated_at=time(row[10]),
    )


def event(row: Sequence[Any], *, time: Callable[[Any], datetime], meta: Callable[[Any], Any]) -> HistoryEvent:
    return HistoryEvent.model_construct(
        id=row[0],
        memory_id=row[1],
        event=row[2],
        old_memory=row[3],
        new_memory=row[4],
        created_at=time(row[5]),
        actor_id=row[6],
        role=row[7],
        metadata=meta(row[8]),
    )
