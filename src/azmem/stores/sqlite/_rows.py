"""How memories and history rows travel between SQLite and the models, and the list cursor."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from azmem.errors import InvalidInputError
from azmem.stores.models import HistoryEvent, MemoryRecord

# Column order matters: COLS index 9 is created_at, 0 the id (used for ordering and cursors).
COLS = (
    "m.id, m.memory, m.hash, m.user_id, m.agent_id, m.run_id, m.actor_id, m.role, "
    "m.metadata, m.created_at, m.updated_at"
)
HISTORY_COLS = "id, memory_id, event, old_memory, new_memory, created_at, actor_id, role, metadata"


def record(row: Sequence[Any]) -> MemoryRecord:
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
        metadata=json.loads(row[8]),
        created_at=datetime.fromisoformat(row[9]),
        updated_at=datetime.fromisoformat(row[10]),
    )


def event(row: Sequence[Any]) -> HistoryEvent:
    return HistoryEvent.model_construct(
        id=row[0],
        memory_id=row[1],
        event=row[2],
        old_memory=row[3],
        new_memory=row[4],
        created_at=datetime.fromisoformat(row[5]),
        actor_id=row[6],
        role=row[7],
        metadata=json.loads(row[8]),
    )


def blob(vector: npt.NDArray[np.float32]) -> bytes:
    return vector.astype("<f4", copy=False).tobytes()


def encode_cursor(created_at: str, rid: int) -> str:
    raw = json.dumps(["v1", created_at, rid], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: object) -> tuple[str, int]:
    bad = InvalidInputError(
        "cursor is not one returned by list()", suggestion="pass back next_cursor unchanged, or None to start"
    )
    if not isinstance(cursor, str) or not cursor or len(cursor) > 200:
        raise bad
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad from None
    if (
        not isinstance(data, list)
        or len(data) != 3
        or data[0] != "v1"
        or not isinstance(data[1], str)
        or isinstance(data[2], bool)
        or not isinstance(data[2], int)
    ):
        raise bad
    try:
        datetime.fromisoformat(data[1])
    except ValueError:
        raise bad from None
    return data[1], data[2]
