"""How memories and history rows travel between SQLite and the models, and the list cursor."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from azmem.stores import cursors, rows
from azmem.stores.models import HistoryEvent, MemoryRecord

# Column order matters: COLS index 9 is created_at, 0 the id (used for ordering and cursors).
COLS = rows.MEMORY_COLS
HISTORY_COLS = rows.HISTORY_COLS


def record(row: Sequence[Any]) -> MemoryRecord:
    return rows.record(row, time=datetime.fromisoformat, meta=json.loads)


def event(row: Sequence[Any]) -> HistoryEvent:
    return rows.event(row, time=datetime.fromisoformat, meta=json.loads)


def blob(vector: npt.NDArray[np.float32]) -> bytes:
    return vector.astype("<f4", copy=False).tobytes()


encode_cursor = cursors.encode_cursor


def decode_cursor(cursor: object) -> tuple[str, int]:
    created_at, _, rid = cursors.decode_cursor(cursor)
    return created_at, rid
