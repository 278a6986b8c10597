"""How many store calls one `AsyncMemory` (the server's) runs at once: one on SQLite, the pool on PostgreSQL.

Concurrency is shown without clocks: two store calls meet at a two-party barrier,
which only passes when both run at the same time (on one thread the first waits for
a partner that never comes, and the barrier breaks).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from azmem.embeddings import LocalEmbedder
from azmem.memory import AsyncMemory
from azmem.memory.async_memory import MAX_STORE_THREADS, store_threads
from azmem.stores.factory import open_store


def _meet(barrier: threading.Barrier) -> str:
    barrier.wait()
    return threading.current_thread().name


async def _two_at_once(memory: AsyncMemory, patience: float = 10) -> list[str]:
    barrier = threading.Barrier(2, timeout=patience)
    return list(
        await asyncio.gather(memory._on_store_thread(_meet, barrier), memory._on_store_thread(_meet, barrier))
    )


async def test_postgresql_store_calls_overlap_and_every_write_lands(pg_url: str) -> None:
    store = open_store(pg_url, pool_size=4)
    assert store_threads(store) == 4
    async with AsyncMemory(embedder=LocalEmbedder(), store=store) as memory:
        threads = await _two_at_once(memory)
        assert len(set(threads)) == 2  # two store threads, at the same time
        # Concurrent operations through those threads: each write is there once, reads see them.
        added = await asyncio.gather(
            *(memory.add(f"fact number {i} about tea", user_id="u", infer=False) for i in range(12))
        )
        ids = {r.results[0].id for r in added}
        assert len(ids) == 12
        listed = await memory.get_all(user_id="u", limit=100)
        assert {m.id for m in listed.results} == ids
        hits = await asyncio.gather(*(memory.search("tea", user_id="u", limit=3) for _ in range(6)))
        assert all(len(h.results) == 3 for h in hits)
    store.close()


async def test_sqlite_keeps_one_store_thread(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "m.db"))
    assert store_threads(store) == 1
    async with AsyncMemory(embedder=LocalEmbedder(), store=store) as memory:
        with pytest.raises(threading.BrokenBarrierError):
            await _two_at_once(memory, patience=0.5)  # the second call waits for the first: they never meet
    store.close()


def test_the_thread_count_is_bounded(pg_url: str) -> None:
    store = open_store(pg_url, pool_size=MAX_STORE_THREADS + 8)
    try:
        assert store_threads(store) == MAX_STORE_THREADS
    finally:
        store.close()
