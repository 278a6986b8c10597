"""azmem.stores: the MemoryStore protocol, its records, and the embedded SQLite store."""

from azmem.stores.filters import compile_filters
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
from azmem.stores.sqlite import SQLiteStore

__all__ = [
    "AddOp",
    "DeleteOp",
    "Filters",
    "HistoryEvent",
    "MemoryRecord",
    "MemoryStore",
    "Op",
    "Page",
    "SQLiteStore",
    "Scope",
    "SearchHit",
    "SearchMode",
    "UpdateOp",
    "compile_filters",
    "memory_hash",
]
