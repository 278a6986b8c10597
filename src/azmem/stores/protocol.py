"""What the memory engine needs from a store, so that a PostgreSQL store can follow SQLite.

Contract shared by every implementation:

* Errors come from `azmem.errors`: bad arguments (filters, cursor, vectors of
  the wrong size, NUL bytes, lone surrogates, oversized text) raise
  `InvalidInputError` before anything is written; an update/delete of an unknown id
  raises `MemoryNotFoundError` and the whole `apply` batch is rolled back; a store
  that cannot be opened or written raises `StoreError` (never a raw driver error);
  an embedder that differs from the one the vectors were made with raises
  `EmbedderMismatchError`.
* Vectors are L2-normalised by the store on write, so cosine == dot product.
* Filters use the language of `azmem.stores.filters` (mem0-compatible); a store accepts
  the dict or the tree `parse_filters` made of it, and parses a dict itself.
* Scope: every id given in a `Scope` must match; reads with an empty scope see
  everything, writes need at least one id.
* Audit: every write appends its audit record(s) (`azmem.stores.audit`) to the store's
  hash chain in its own transaction, so a change and its record commit together or not
  at all. `audit=` says who acts and why (`AuditContext`: principal, operation, details,
  the LLM calls that led to the change); without it the change is recorded as the OS
  user's. Reading, verifying and pruning the trail: `audit_log`.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

from azmem.stores.audit import AuditContext, ForgetReport
from azmem.stores.audit_log import AuditLog
from azmem.stores.filters import Filter
from azmem.stores.keys import KeyRing
from azmem.stores.models import (
    HistoryEvent,
    MemoryRecord,
    Op,
    Page,
    Scope,
    SearchHit,
    SearchMode,
    StoredMemory,
    Vector,
)

__all__ = ["Filters", "MemoryStore", "SupportsBulkLoad", "SupportsKeys"]

Filters = Mapping[str, Any] | Filter
"""A filter dict (mem0's language, ``azmem.stores.filters``) or its parsed tree."""


@runtime_checkable
class MemoryStore(Protocol):
    # -- lifecycle ---------------------------------------------------------------------
    def open(self, embedder_name: str, dimension: int) -> None:
        """Bind the embedder the caller will use for vectors.

        The first call on a new (or empty) store records name and dimension; later calls
        with a different pair raise EmbedderMismatchError naming both and suggesting
        `azmem reindex`. Reads that need no vectors (get, list, history, count,
        iter_all) work without it; apply and search require it.
        """
        ...

    @property
    def embedder(self) -> tuple[str, int] | None:
        """(name, dimension) recorded in the store, None for a store that never held vectors."""
        ...

    def close(self) -> None: ...

    # -- writes ------------------------------------------------------------------------
    def apply(self, ops: Sequence[Op], *, audit: AuditContext | None = None) -> builtins.list[HistoryEvent]:
        """Apply every op in one transaction (memory + vector + full-text + history + audit).

        Either all ops take effect or none does. Returns the history events written,
        in op order.
        """
        ...

    def delete_all(self, scope: Scope, *, audit: AuditContext | None = None) -> int:
        """Delete every memory in `scope` (which must not be empty) in one transaction,
        with a DELETE history event each; returns how many."""
        ...

    def reset(self, *, audit: AuditContext | None = None) -> None:
        """Delete all memories and all history. The embedder binding and the audit trail are kept."""
        ...

    def forget(
        self, scope: Scope, *, audit: AuditContext | None = None, compact: bool = True
    ) -> ForgetReport:
        """Erase a scope (which must not be empty) for good, in one transaction: every memory it
        ever had (rows, vectors, full-text entries), their history rows (text included, also of
        memories deleted earlier), and audit content kept about them; then record the erasure
        (who, when, how many; no text). `compact` also rewrites the freed storage (SQLite:
        checkpoint + VACUUM; PostgreSQL: VACUUM) so old bytes do not linger there.

        The report hands back the erased texts once, so the caller can scrub other copies
        (response caches); the store keeps none.
        """
        ...

    @property
    def audit_log(self) -> AuditLog:
        """The store's audit trail: list, export, verify, prune."""
        ...

    # -- reads -------------------------------------------------------------------------
    def get(self, memory_id: str, scope: Scope | None = None) -> MemoryRecord | None:
        """The memory, or None if unknown or (when `scope` is given) outside `scope`."""
        ...

    def list(
        self,
        scope: Scope,
        filters: Filters | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page:
        """Newest first (created_at, then insertion order); stable under concurrent
        inserts. The cursor is opaque; a malformed one raises InvalidInputError."""
        ...

    def search(
        self,
        query_text: str | None,
        query_vector: Vector | None,
        scope: Scope,
        filters: Filters | None = None,
        limit: int = 10,
        mode: SearchMode = "hybrid",
        threshold: float | None = None,
    ) -> builtins.list[SearchHit]:
        """Rank memories in `scope` matching `filters` (applied before ranking).

        Scores (`SearchHit.score`, best first):
        * dense: cosine similarity (needs `query_vector`); `threshold` is a minimum cosine.
        * bm25: `s / (1 + s)` with `s = -bm25()` of FTS5 (needs `query_text`);
          `threshold` applies to that score.
        * hybrid (needs both): over the dense and BM25 candidates, 0.5 x cosine / best
          cosine + 0.5 x BM25 / best BM25 (cosine floored at 0; BM25 0 for a memory
          matching no query word), in 0..1: a memory best by both scores 1.0, one
          matching no query word at most 0.5; with no searchable word, cosine / best
          cosine. `threshold` is a minimum *cosine similarity* (a BM25-only hit below it
          is dropped too); it removes hits without changing the others' scores.
        Any text is a valid query: it is reduced to plain search terms, never parsed
        as FTS5 syntax. On large stores a store may ignore very common words to bound
        the cost of BM25 (see docs/stores.md).
        """
        ...

    def history(self, memory_id: str) -> builtins.list[HistoryEvent]:
        """Every event for the id, oldest first; [] for an unknown id."""
        ...

    def count(self, scope: Scope | None = None, filters: Filters | None = None) -> int: ...

    # -- reindex -----------------------------------------------------------------------
    def iter_all(self, batch_size: int = 256) -> Iterator[builtins.list[MemoryRecord]]:
        """Every memory, in batches; reads page by page so it holds no lock between batches."""
        ...

    def replace_vectors(
        self,
        embedder_name: str,
        dimension: int,
        vectors: Iterable[tuple[str, Vector]],
        *,
        audit: AuditContext | None = None,
    ) -> int:
        """Re-embed: give every memory a new vector and record the new embedder, atomically.

        `vectors` must cover every memory exactly once (typically built from
        `iter_all`); otherwise StoreError and nothing changes. Needs no `open` (the
        old embedder is what mismatches). Returns the number of vectors written.
        """
        ...

    # -- copy (azmem copy) ---------------------------------------------------------------
    def export_memories(self, after_id: str | None, limit: int) -> builtins.list[StoredMemory]:
        """Up to `limit` memories with id > `after_id`, in id order, each with its vector.

        Id order makes a copy resumable: the last id written is where to start again.
        """
        ...

    def export_history(self, after_id: str | None, limit: int) -> builtins.list[HistoryEvent]:
        """Up to `limit` history events (deleted memories' included) after the event `after_id`, in the
        order they happened (a copy keeps each memory's events in order)."""
        ...

    def import_memories(self, items: Sequence[StoredMemory], *, audit: AuditContext | None = None) -> int:
        """Insert memories verbatim (ids, times, scope, vectors) in one transaction, writing no
        history events; ids already present are skipped, so a retried batch is harmless.
        Needs `open` with the source's embedder. Returns how many were inserted."""
        ...

    def import_history(self, events: Sequence[HistoryEvent], *, audit: AuditContext | None = None) -> int:
        """Insert history events verbatim in one transaction, skipping ids already present."""
        ...


@runtime_checkable
class SupportsKeys(Protocol):
    """A store that also keeps the server's API keys, in its own database (`azmem.stores.keys`).

    Separate from `MemoryStore` so that a store without keys still is a `MemoryStore`;
    the server and ``azmem keys`` check for it (``isinstance(store, SupportsKeys)``).
    """

    @property
    def keys(self) -> KeyRing:
        """The key ring on this store's database; closing the store closes it too."""
        ...


@runtime_checkable
class SupportsBulkLoad(Protocol):
    """A store that loads a whole copy faster when told one is coming (``azmem copy``).

    Optional: `copy_store` wraps the memories' import in `bulk_load()` when the target has it
    (``isinstance(store, SupportsBulkLoad)``) and imports them plainly otherwise.
    """

    def bulk_load(self) -> AbstractContextManager[object]:
        """A context for `import_memories` calls. A store empty on entry may defer upkeep (an
        index) to the normal exit; one holding memories must keep serving searches as before.
        After an exception the store must still work, and the next normal exit (a resumed
        copy) must finish the deferred upkeep."""
        ...
