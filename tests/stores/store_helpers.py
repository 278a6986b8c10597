"""A tiny deterministic fake embedding and helpers shared by the store tests and their workers.

The store never embeds, so its tests only need vectors with a sensible geometry:
a bag of words where each word maps to a fixed pseudo-random direction, so texts
sharing words are closer than texts that do not.
"""

from __future__ import annotations

import functools
import hashlib
import re
import sqlite3
import weakref
from typing import Any

import numpy as np
import numpy.typing as npt

from azmem.stores import AddOp, MemoryRecord, MemoryStore, Scope, SQLiteStore

DIM = 32
EMBEDDER = "fake:bag-of-words-32"


@functools.lru_cache(maxsize=65536)
def word_vector(word: str, dim: int = DIM) -> npt.NDArray[np.float32]:
    seed = int.from_bytes(hashlib.sha256(word.encode("utf-8", "surrogatepass")).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


def fake_embed(text: str, dim: int = DIM) -> npt.NDArray[np.float32]:
    words = re.findall(r"\w+", text.lower()) or ["<empty>"]
    vec = np.sum([word_vector(w, dim) for w in words], axis=0)
    return (vec / np.linalg.norm(vec)).astype(np.float32)


def open_store(path: Any, dim: int = DIM) -> SQLiteStore:
    store = SQLiteStore(path)
    store.open(EMBEDDER, dim)
    return store


def add(
    store: MemoryStore,
    text: str,
    *,
    user_id: str | None = "alice",
    agent_id: str | None = None,
    run_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    **kwargs: Any,
) -> MemoryRecord:
    record = MemoryRecord.new(text, Scope(user_id, agent_id, run_id), metadata=metadata, **kwargs)
    store.apply([AddOp(record, fake_embed(text))])
    return record


# Where each store object of the parameterised fixtures lives (a SQLite path or a PostgreSQL URL
# with its password), so that `snapshot` can read the raw tables beside the store's own API.
_LOCATIONS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def remember_location(store: MemoryStore, location: str) -> None:
    _LOCATIONS[store] = location


def snapshot(store: MemoryStore) -> tuple[Any, ...]:
    """Everything observable about the store's content, to prove an operation changed nothing."""
    records = []
    for batch in store.iter_all():
        records.extend(r.model_dump() for r in batch)
    if isinstance(store, SQLiteStore):
        with sqlite3.connect(store.path) as raw:
            history = raw.execute("SELECT * FROM history ORDER BY seq").fetchall()
            fts = raw.execute("SELECT rowid, memory FROM memories_fts ORDER BY rowid").fetchall()
            vectors = raw.execute("SELECT rid, vector FROM memories ORDER BY rid").fetchall()
        return (store.count(), records, history, fts, vectors)
    import psycopg

    with psycopg.connect(_LOCATIONS[store]) as pg:
        history = pg.execute("SELECT * FROM azmem_history ORDER BY seq").fetchall()
        words = pg.execute("SELECT rid, lexemes::text, doc_len FROM azmem_memories ORDER BY rid").fetchall()
        vectors = pg.execute("SELECT rid, embedding::text FROM azmem_memories ORDER BY rid").fetchall()
        stats = pg.execute("SELECT sum(docs), sum(tokens) FROM azmem_lexical_stats").fetchall()
        meta = pg.execute("SELECT key, value FROM azmem_meta ORDER BY key").fetchall()
    return (store.count(), records, history, words, vectors, stats, meta)
