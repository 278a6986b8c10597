"""Plain data shared by every store and by the memory engine.

Records are pydantic models because the engine and the faces return them to users
(JSON, tables); write operations and scopes are frozen dataclasses because they
carry numpy vectors and never cross a serialisation boundary.

Times are always timezone-aware UTC: a store compares and pages on them, and a
naive datetime would silently mean "whatever the local clock is".
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "AddOp",
    "DeleteOp",
    "EventKind",
    "HistoryEvent",
    "HistoryFields",
    "MemoryFields",
    "MemoryRecord",
    "Op",
    "Page",
    "Scope",
    "SearchHit",
    "SearchMode",
    "StoredMemory",
    "UpdateOp",
    "Vector",
    "memory_hash",
    "utcnow",
]

EventKind: TypeAlias = Literal["ADD", "UPDATE", "DELETE"]
SearchMode: TypeAlias = Literal["hybrid", "dense", "bm25"]
Vector: TypeAlias = npt.NDArray[np.float32] | Sequence[float]


def utcnow() -> datetime:
    return datetime.now(UTC)


def memory_hash(text: str) -> str:
    """Content hash so the engine can skip exact duplicates without an embedding call."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


@dataclass(frozen=True)
class Scope:
    """Who a memory belongs to. Every given id must match (AND); None means "any".

    Writes need at least one id (`require()`); reads accept an empty scope, which
    means the whole store (the CLI and reindex need that; the engine forbids it).
    """

    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None

    def is_empty(self) -> bool:
        return self.user_id is None and self.agent_id is None and self.run_id is None

    def as_dict(self) -> dict[str, str]:
        return {
            k: v
            for k, v in (("user_id", self.user_id), ("agent_id", self.agent_id), ("run_id", self.run_id))
            if v is not None
        }


class MemoryFields(BaseModel):
    """The fields of one memory, shared by the store's `MemoryRecord` and the engine's `MemoryItem`.

    The timestamps are plain datetimes here; `MemoryRecord` narrows them to aware ones, in UTC.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    memory: str
    hash: str
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    actor_id: str | None = None
    role: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime


class MemoryRecord(MemoryFields):
    """One stored memory, as returned by get/list/search."""

    created_at: AwareDatetime
    updated_at: AwareDatetime

    _utc = field_validator("created_at", "updated_at")(_to_utc)

    @property
    def scope(self) -> Scope:
        return Scope(self.user_id, self.agent_id, self.run_id)

    @classmethod
    def new(
        cls,
        memory: str,
        scope: Scope,
        *,
        metadata: dict[str, Any] | None = None,
        id: str | None = None,
        actor_id: str | None = None,
        role: str | None = None,
        created_at: datetime | None = None,
    ) -> MemoryRecord:
        """Build a fresh record (uuid4 id, content hash, created_at == updated_at)."""
        if created_at is not None and created_at.utcoffset() is None:
            from azmem.errors import InvalidInputError

            raise InvalidInputError(
                f"created_at {created_at.isoformat()} has no timezone",
                suggestion="pass an aware datetime, e.g. datetime(..., tzinfo=UTC)",
            )
        now = created_at or utcnow()
        try:
            return cls(
                id=id or str(uuid.uuid4()),
                memory=memory,
                hash=memory_hash(memory) if isinstance(memory, str) else "",
                user_id=scope.user_id,
                agent_id=scope.agent_id,
                run_id=scope.run_id,
                actor_id=actor_id,
                role=role,
                metadata=dict(metadata or {}),
                created_at=now,
                updated_at=now,
            )
        except ValidationError as exc:
            from azmem.errors import InvalidInputError

            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidInputError(f"invalid memory record: {where}: {first['msg']}") from None


class HistoryFields(BaseModel):
    """The fields of one change to one memory, shared by the store's `HistoryEvent` and the engine's
    `HistoryEntry`. The timestamp is a plain datetime here; `HistoryEvent` narrows it to an aware one, in UTC.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    memory_id: str
    event: EventKind
    old_memory: str | None = None
    new_memory: str | None = None
    created_at: datetime
    actor_id: str | None = None
    role: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    """The memory's metadata after the change (before it, for DELETE)."""


class HistoryEvent(HistoryFields):
    """One change to one memory. History outlives the memory: a deleted memory keeps its events."""

    created_at: AwareDatetime

    _utc = field_validator("created_at")(_to_utc)


class SearchHit(BaseModel):
    """A search result.

    `score` is the ranking score on a 0..1 scale whose meaning depends on the mode
    (see `MemoryStore.search`); `similarity` is always the cosine between the query
    vector and the memory's vector when a query vector was given, so callers can
    apply their own cut-offs whatever the mode.
    """

    model_config = ConfigDict(frozen=True)

    record: MemoryRecord
    score: float
    similarity: float | None = None
    bm25: float | None = None
    """FTS5 relevance, sign flipped so that higher is better (raw `-bm25()`)."""
    dense_rank: int | None = None
    """1-based rank among the dense candidates, None if not among them."""
    bm25_rank: int | None = None


class Page(BaseModel):
    """One page of `list`. Pass `next_cursor` back to get the next one; None means the end."""

    model_config = ConfigDict(frozen=True)

    records: list[MemoryRecord]
    next_cursor: str | None = None


@dataclass(frozen=True)
class AddOp:
    """Insert `record` with its embedding. The id must be new."""

    record: MemoryRecord
    vector: Vector
    kind: Literal["add"] = field(default="add", init=False)


@dataclass(frozen=True)
class UpdateOp:
    """Change text and/or metadata of an existing memory.

    A new `memory` text needs its new `vector` (the store does not embed). `metadata`,
    when given, replaces the whole dict. `updated_at` defaults to now.
    """

    id: str
    memory: str | None = None
    vector: Vector | None = None
    metadata: dict[str, Any] | None = None
    updated_at: datetime | None = None
    actor_id: str | None = None
    role: str | None = None
    kind: Literal["update"] = field(default="update", init=False)


@dataclass(frozen=True)
class DeleteOp:
    """Remove a memory; its history is kept and gains a DELETE event."""

    id: str
    actor_id: str | None = None
    kind: Literal["delete"] = field(default="delete", init=False)


Op: TypeAlias = AddOp | UpdateOp | DeleteOp


@dataclass(frozen=True)
class StoredMemory:
    """A memory as a store keeps it, vector included: what ``azmem copy`` moves verbatim."""

    record: MemoryRecord
    vector: Vector
