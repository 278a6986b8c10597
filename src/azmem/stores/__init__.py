"""azmem.stores: the MemoryStore protocol, its records, and the embedded SQLite store."""

from azmem.stores.models import (
    AddOp,
    DeleteOp,
    HistoryEvent,
    MemoryRecord,
    Op,
    Page,
    Scope,
    SearchHit,
    SearchMode,
    UpdateOp,
    memory_hash,
)
from azmem.stores.protocol import Filters, MemoryStore

__all__ = [
    "AddOp",
    "DeleteOp",
    "Filters",
    "HistoryEvent",
    "MemoryRecord",
    "MemoryStore",
    "Op",
    "Page",
    "Scope",
    "SearchHit",
    "SearchMode",
    "UpdateOp",
    "memory_hash",
]
