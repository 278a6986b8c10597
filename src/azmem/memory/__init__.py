"""The memory engine: `Memory` / `AsyncMemory`, their results, prompts and schemas.

See docs/memory.md for the API and docs/migrating-from-mem0.md for the mapping from mem0.
"""

from azmem.memory.async_memory import AsyncMemory
from azmem.memory.audit import acting_as
from azmem.memory.erasure import ForgetResult
from azmem.memory.memory import Memory
from azmem.memory.prompts import Prompt, Prompts
from azmem.memory.results import (
    AddResult,
    HistoryEntry,
    MemoryEvent,
    MemoryItem,
    MemoryList,
    QueryResult,
    ReindexResult,
    SearchResult,
)

__all__ = [
    "AddResult",
    "AsyncMemory",
    "ForgetResult",
    "HistoryEntry",
    "Memory",
    "MemoryEvent",
    "MemoryItem",
    "MemoryList",
    "Prompt",
    "Prompts",
    "QueryResult",
    "ReindexResult",
    "SearchResult",
    "acting_as",
]
