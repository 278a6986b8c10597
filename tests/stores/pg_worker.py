"""Process side of the PostgreSQL concurrency tests (run with multiprocessing's spawn start method).

Each function opens its own `PostgresStore` on the URL it is given, waits at the barrier so
that every process starts its work at the same moment, and reports through its return value
or exit code.
"""

from __future__ import annotations

from typing import Any

from azmem.stores import AddOp, MemoryRecord, Scope
from azmem.stores.postgres import PostgresStore

from .store_helpers import DIM, EMBEDDER, fake_embed


def open_and_add(url: str, name: str, count: int, barrier: Any) -> None:
    """Open (migrating a fresh database: the processes race on it), bind, then add `count`
    memories in batches of 5 under user `name`."""
    barrier.wait(timeout=60)
    with PostgresStore(url, pool_size=2) as store:
        store.open(EMBEDDER, DIM)
        for start in range(0, count, 5):
            ops = []
            for i in range(start, min(start + 5, count)):
                text = f"{name} item {i} token{name}{i}"
                ops.append(AddOp(MemoryRecord.new(text, Scope(user_id=name)), fake_embed(text)))
            store.apply(ops)
