"""The graph's two errors, placed in the one exception tree (`azmem.errors`).

Both subclass an existing class so the faces' error table (exit codes, HTTP statuses)
already knows them: a missing episode/entity/fact is a not-found, a concurrent change
to the same group is a retryable store error.
"""

from __future__ import annotations

from typing import ClassVar

from azmem.errors import MemoryNotFoundError, StoreError

__all__ = ["GraphConflictError", "GraphItemNotFoundError"]


class GraphItemNotFoundError(MemoryNotFoundError):
    """No episode, entity or fact with that id (in the groups asked about)."""

    default_code = "graph_item_not_found"


class GraphConflictError(StoreError):
    """Another writer changed the group between an episode's reads and its write.

    The ingestion flow re-reads and re-plans on it (a few times) before giving up, so a
    caller only sees it under sustained contention from other processes.
    """

    default_code = "graph_conflict"
    retryable: ClassVar[bool] = True
