"""What `Memory` and `AsyncMemory` return.

Typed pydantic models rather than bare dicts, so that editors, mypy and the CLI know
the shapes; but each one dumps (``.to_dict()`` / ``.model_dump(mode="json")``) to the
dict mem0 returns, and supports ``result["results"]`` / ``item["memory"]`` item access,
so code written against mem0 keeps working while it is migrated.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

from azmem.stores.models import HistoryEvent, HistoryFields, MemoryFields, MemoryRecord, Scope

__all__ = [
    "AddResult",
    "EventKind",
    "HistoryEntry",
    "MemoryEvent",
    "MemoryItem",
    "MemoryList",
    "QueryResult",
    "ReindexResult",
    "SearchResult",
]

EventKind: TypeAlias = Literal["ADD", "UPDATE", "DELETE", "NONE"]


class _Result(BaseModel):
    """Mapping-style read access for code written against mem0's dict results."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __getitem__(self, key: str) -> Any:
        if key not in type(self).model_fields:
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in type(self).model_fields

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in type(self).model_fields else default

    def keys(self) -> list[str]:
        return list(type(self).model_fields)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict (datetimes as ISO 8601 strings), mem0's shape."""
        return self.model_dump(mode="json")


class MemoryItem(_Result, MemoryFields):
    """One memory as returned by get / get_all / search / update.

    ``score`` and ``similarity`` are set by ``search`` only: ``score`` is the ranking
    score on 0..1 (hybrid: 0.5·cos/best_cos + 0.5·bm25/best_bm25; dense: cosine; bm25:
    squashed BM25), ``similarity`` the cosine between query and memory.
    """

    score: float | None = None
    similarity: float | None = None

    @property
    def scope(self) -> Scope:
        return Scope(self.user_id, self.agent_id, self.run_id)

    @classmethod
    def from_record(
        cls, record: MemoryRecord, *, score: float | None = None, similarity: float | None = None
    ) -> MemoryItem:
        return cls(**record.model_dump(), score=score, similarity=similarity)


class MemoryEvent(_Result):
    """One change made by ``add`` (mem0: ``{"id", "memory", "event", "previous_memory"}``).

    ``NONE`` decisions are not reported (as in mem0): nothing changed for them.
    """

    id: str
    memory: str
    event: EventKind
    previous_memory: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class AddResult(_Result):
    """``{"results": [MemoryEvent, ...]}``, in the order the changes were applied."""

    results: list[MemoryEvent] = Field(default_factory=list)


class SearchResult(_Result):
    """``{"results": [MemoryItem, ...]}``, best first."""

    results: list[MemoryItem] = Field(default_factory=list)


class MemoryList(_Result):
    """One page of ``get_all``: newest first; pass ``next_cursor`` back for the next page (None: the end)."""

    results: list[MemoryItem] = Field(default_factory=list)
    next_cursor: str | None = None


class HistoryEntry(_Result, HistoryFields):
    """One ADD / UPDATE / DELETE of a memory, with the text before and after."""

    @classmethod
    def from_event(cls, event: HistoryEvent) -> HistoryEntry:
        return cls(**event.model_dump())


class QueryResult(_Result):
    """The answer of ``query``.

    ``answer`` is None when no chat deployment is configured (or nothing relevant was
    found); ``note`` then says why, and ``memories`` still holds what was retrieved.
    ``cited_ids`` are the ids of the memories the answer used (a subset of
    ``memories``' ids: the model picks from the retrieved ones and cannot invent ids).
    """

    question: str
    answer: str | None = None
    cited_ids: list[str] = Field(default_factory=list)
    memories: list[MemoryItem] = Field(default_factory=list)
    answered: bool = False
    note: str | None = None


class ReindexResult(_Result):
    """What ``reindex`` did: how many memories were re-embedded, from which embedder to which."""

    count: int
    embedder: str
    dimension: int
    previous_embedder: str | None = None
    previous_dimension: int | None = None
