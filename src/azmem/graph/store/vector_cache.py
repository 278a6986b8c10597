"""The SQLite backend's in-memory vectors: one block per group, reloaded when the group changes.

SQLite has no vector index, and reading blobs for every query would cost a scan of
the group's rows. Each group's vectors are loaded once into a float32 matrix, tagged
with the group's version (bumped by every write to the group, by any process); a search
reads the version in its snapshot and reloads the block only if it moved. Cosine is a
matrix product because vectors are unit length.

A fact block also holds each row's endpoints, relation and four times (integer
microseconds, NULL as the extreme that makes the rule pass), so the time view and a
relation filter are applied in numpy, with exactly the rule of `store/sql.py`, instead
of asking SQL for thousands of eligible row ids per query.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np
import numpy.typing as npt

from azmem.graph.queries import SearchFilters, TimeView

__all__ = ["Block", "VectorCache"]

Kind = Literal["facts", "entities"]

#: Groups kept in memory per store; the least recently used are dropped beyond it.
MAX_GROUPS = 64

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN, _MAX = np.iinfo(np.int64).min, np.iinfo(np.int64).max


def micros(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(microseconds=1)


def _column(values: list[str | None], null: int) -> npt.NDArray[np.int64]:
    return np.fromiter(
        (null if v is None else micros(datetime.fromisoformat(v)) for v in values),
        dtype=np.int64,
        count=len(values),
    )


@dataclass(frozen=True)
class FactColumns:
    """What the time view and a relation filter read, one entry per row."""

    relations: npt.NDArray[np.str_]
    valid: npt.NDArray[np.int64]
    invalid: npt.NDArray[np.int64]
    created: npt.NDArray[np.int64]
    expired: npt.NDArray[np.int64]


@dataclass(frozen=True)
class Block:
    version: int
    rids: npt.NDArray[np.int64]
    ids: list[str]
    matrix: npt.NDArray[np.float32]
    ends: list[tuple[str, str]]
    """For facts, (source_id, target_id) per row; empty for entities."""
    columns: FactColumns | None = None
    """For facts only."""

    def visible(self, view: TimeView, filters: SearchFilters | None) -> npt.NDArray[np.bool_] | None:
        """Rows the view and filters allow; None when a filter needs SQL (labels, dates)."""
        if filters is not None and (filters.entity_labels or filters.dates()):
            return None
        c = self.columns
        assert c is not None, "a fact block"
        mask = np.ones(len(self.rids), dtype=bool)
        if view.known_at is not None:
            mask &= c.created <= micros(view.known_at)
        if not (view.history or (filters is not None and filters.include_invalid)):
            world = micros(view.world_time)
            if view.as_of is not None:
                mask &= c.valid <= world
            if view.known_at is None:
                mask &= c.invalid > world
            else:
                mask &= (c.expired > micros(view.known_at)) | (c.invalid > world)
        if filters is not None and filters.relations:
            mask &= np.isin(c.relations, filters.relations)
        return mask

    def top(
        self, vector: npt.NDArray[np.float32], mask: npt.NDArray[np.bool_] | None, limit: int
    ) -> list[tuple[int, float]]:
        """The ``limit`` rows most similar to ``vector`` among those ``mask`` allows: (row, cosine)."""
        if not len(self.rids) or limit <= 0:
            return []
        # einsum, not `@`: OpenBLAS splits even this product across threads, which wait for
        # each other on a busy machine (10k rows: ~1 ms single-threaded, 5-10 ms with a tail).
        scores: npt.NDArray[np.float32] = np.einsum("ij,j->i", self.matrix, vector)
        allowed = len(scores) if mask is None else int(mask.sum())
        if allowed == 0:
            return []
        if mask is not None:
            scores = np.where(mask, scores, -np.inf)
        k = min(limit, allowed)
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.lexsort((self.rids[best], -scores[best]))]
        return [(int(i), float(scores[i])) for i in best]


class VectorCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blocks: OrderedDict[tuple[Kind, str], Block] = OrderedDict()

    def block(self, conn: sqlite3.Connection, kind: Kind, group_id: str, version: int, dim: int) -> Block:
        key = (kind, group_id)
        with self._lock:
            found = self._blocks.get(key)
            if found is not None and found.version == version:
                self._blocks.move_to_end(key)
                return found
        block = _load(conn, kind, group_id, version, dim)
        with self._lock:
            self._blocks[key] = block
            self._blocks.move_to_end(key)
            while len(self._blocks) > MAX_GROUPS:
                self._blocks.popitem(last=False)
        return block

    def drop(self, group_id: str) -> None:
        with self._lock:
            for kind in ("facts", "entities"):
                self._blocks.pop((kind, group_id), None)

    def clear(self) -> None:
        with self._lock:
            self._blocks.clear()


def _load(conn: sqlite3.Connection, kind: Kind, group_id: str, version: int, dim: int) -> Block:
    if kind == "entities":
        rows = conn.execute(
            "SELECT rid, id, vector FROM graph_entities WHERE group_id = ? ORDER BY rid", (group_id,)
        ).fetchall()
        matrix = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32).reshape(len(rows), dim)
        rids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        return Block(version, rids, [r[1] for r in rows], matrix, [])
    rows = conn.execute(
        "SELECT rid, id, vector, source_id, target_id, name, valid_at, invalid_at, created_at, expired_at "
        "FROM graph_facts WHERE group_id = ? ORDER BY rid",
        (group_id,),
    ).fetchall()
    return Block(
        version,
        rids=np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
        ids=[r[1] for r in rows],
        matrix=np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32).reshape(len(rows), dim),
        ends=[(r[3], r[4]) for r in rows],
        columns=FactColumns(
            relations=np.array([r[5] for r in rows], dtype=str),
            valid=_column([r[6] for r in rows], _MIN),
            invalid=_column([r[7] for r in rows], _MAX),
            created=_column([r[8] for r in rows], _MIN),
            expired=_column([r[9] for r in rows], _MAX),
        ),
    )
