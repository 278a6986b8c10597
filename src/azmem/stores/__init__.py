"""azmem.stores: the MemoryStore contract, its records and filter tree, and the backends.

`open_store(url)` is the one way in: ``sqlite:///...`` (the embedded default) or
``postgresql://...`` (``pip install 'azmem[postgres]'``).
"""

from azmem.stores.factory import open_store
from azmem.stores.filters import Filter, parse_filters
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
    "Filter",
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
    "memory_hash",
    "open_store",
    "parse_filters",
]
