"""``azmem copy``: a whole store into another (SQLite <-> PostgreSQL), resumable and verified.

Memories go first in id order, then history in the order it happened, in batches of one transaction
each on the target. An interrupted copy leaves whole batches behind, and running it
again skips what is already there (the stores' imports ignore known ids), so it
resumes where it stopped. At the end both stores are read again and compared by
counts and by a checksum over every memory (fields and vector) and history event.
A target that can load in bulk (`SupportsBulkLoad`: PostgreSQL builds its vector index once
after the memories when it starts empty) is told so around the memories' import.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from azmem.errors import StoreError
from azmem.stores.audit import AuditContext
from azmem.stores.filters import format_time
from azmem.stores.protocol import MemoryStore, SupportsBulkLoad

__all__ = ["CopyResult", "Progress", "copy_store", "store_checksum"]

_COPY = AuditContext(operation="copy")
"""Copied batches are recorded in the target's audit trail as a copy, not as new writes."""

Progress = Callable[[str, int, int | None], None]
"""(phase, done, total or None): "memories", "history", "verify"."""


@dataclass(frozen=True)
class CopyResult:
    memories: int
    """Memories in the target afterwards."""
    history: int
    """History events in the target afterwards."""
    inserted: int
    """Memories and events this run wrote (0 when a finished copy is run again)."""
    source_checksum: str
    target_checksum: str

    @property
    def verified(self) -> bool:
        return self.source_checksum == self.target_checksum


def copy_store(
    source: MemoryStore, target: MemoryStore, *, batch_size: int = 500, progress: Progress | None = None
) -> CopyResult:
    """Copy every memory (with its vector) and every history event of `source` into `target`.

    The target is bound to the source's embedder (EmbedderMismatchError if it holds
    other vectors). Raises StoreError when the verification finds the two differ, e.g.
    because the target already held memories of its own.
    """
    report = progress or (lambda phase, done, total: None)
    binding = source.embedder
    if binding is not None:
        target.open(*binding)
    inserted = 0
    total = source.count()
    done, after = 0, None
    report("memories", 0, total)
    loading = target.bulk_load() if isinstance(target, SupportsBulkLoad) else contextlib.nullcontext()
    with loading:
        while batch := source.export_memories(after, batch_size):
            inserted += target.import_memories(batch, audit=_COPY)
            after = batch[-1].record.id
            done += len(batch)
            report("memories", done, total)
    done, after_h = 0, None
    report("history", 0, None)
    while events := source.export_history(after_h, batch_size):
        inserted += target.import_history(events, audit=_COPY)
        after_h = events[-1].id
        done += len(events)
        report("history", done, None)
    report("verify", 0, 2)
    src_sum, src_counts = store_checksum(source, batch_size)
    report("verify", 1, 2)
    dst_sum, dst_counts = store_checksum(target, batch_size)
    report("verify", 2, 2)
    result = CopyResult(dst_counts[0], dst_counts[1], inserted, src_sum, dst_sum)
    if not result.verified:
        raise StoreError(
            f"the copy does not match its source: source has {src_counts[0]} memories and "
            f"{src_counts[1]} history events, target {dst_counts[0]} and {dst_counts[1]} (checksums differ)",
            error_code="copy_mismatch",
            details={"source": list(src_counts), "target": list(dst_counts)},
            suggestion="copy into an empty store; run the same copy again to resume an interrupted one",
        )
    return result


def store_checksum(store: MemoryStore, batch_size: int = 500) -> tuple[str, tuple[int, int]]:
    """sha256 over every memory (in id order) and history event (in the order it happened), and the
    two counts: a copy that reordered a memory's events does not verify.

    Vectors enter rounded to 6 decimals, so a backend that stores float4 and one that
    stores float32 bytes agree; times enter in the store's one text form (UTC, µs).
    """
    digest = hashlib.sha256()
    memories = events = 0
    after: str | None = None
    while batch := store.export_memories(after, batch_size):
        for item in batch:
            r = item.record
            fields = [r.id, r.memory, r.hash, r.user_id, r.agent_id, r.run_id, r.actor_id, r.role]
            times = [format_time(r.created_at), format_time(r.updated_at)]
            digest.update(json.dumps([fields, r.metadata, times], sort_keys=True).encode())
            digest.update((np.round(np.asarray(item.vector, dtype=np.float64), 6) + 0.0).tobytes())  # no -0.0
        memories += len(batch)
        after = batch[-1].record.id
    after = None
    while history := store.export_history(after, batch_size):
        for e in history:
            row = [e.id, e.memory_id, e.event, e.old_memory, e.new_memory, e.actor_id, e.role]
            digest.update(json.dumps([row, e.metadata, format_time(e.created_at)], sort_keys=True).encode())
        events += len(history)
        after = history[-1].id
    return digest.hexdigest(), (memories, events)
