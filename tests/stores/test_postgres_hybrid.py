"""PostgreSQL's hybrid search in one statement (`stores/postgres/hybrid.py`): one round trip,
and the same hits and scores as fusing, by `ranking.fuse`, the store's own dense and BM25
searches (the general path, two statements), with scopes, filters, a threshold, and the
fallback when every query word is common. Real PostgreSQL."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

if os.environ.get("AZMEM_REQUIRE_POSTGRES"):
    import psycopg
else:
    psycopg = pytest.importorskip("psycopg")

from azmem.stores import AddOp, MemoryRecord, Scope, SearchHit
from azmem.stores.postgres import PostgresStore, lexical
from azmem.stores.ranking import fuse

from .pg_statements import sent
from .store_helpers import DIM, EMBEDDER, fake_embed

VOCAB = ["apple", "banana", "cherry", "grape", "lemon", "mango", "olive", "peach", "plum", "melon", "kiwi"]
QUERIES = ["apple", "banana cherry", "plum melon grape", "olive kiwi", "peach lemon mango apple"]


@pytest.fixture
def store(pg_url: str) -> Iterator[PostgresStore]:
    rng = random.Random(21)
    records = []
    for i in range(240):
        text = " ".join(rng.choice(VOCAB) for _ in range(rng.randint(2, 9)))
        scope = Scope(user_id=rng.choice(["u1", "u2"]), agent_id=rng.choice([None, "a"]))
        records.append(MemoryRecord.new(text, scope, id=f"h{i:03d}", metadata={"n": i % 7}))
    with PostgresStore(pg_url) as s:
        s.open(EMBEDDER, DIM)
        s.apply([AddOp(r, fake_embed(r.memory)) for r in records])
        yield s


def _expected(
    s: PostgresStore,
    text: str,
    vector: npt.NDArray[np.float32],
    scope: Scope,
    limit: int,
    filters: dict[str, Any] | None,
    threshold: float | None,
) -> list[tuple[str, float]]:
    """The hybrid hits fused here from the store's dense and BM25 searches."""
    depth = max(2 * limit, 20)  # ranking.depth for hybrid
    dense = s.search(None, vector, scope, filters=filters, mode="dense", limit=depth)
    lex = s.search(text, None, scope, filters=filters, mode="bm25", limit=depth)
    every_cos = {
        h.record.id: h for h in s.search(None, vector, scope, filters=filters, mode="dense", limit=1000)
    }
    every_bm25 = {
        h.record.id: h.bm25 for h in s.search(text, None, scope, filters=filters, mode="bm25", limit=1000)
    }
    ids = dict.fromkeys([h.record.id for h in dense] + [h.record.id for h in lex])
    sims = {i: every_cos[i].similarity or 0.0 for i in ids}
    bm25 = {i: every_bm25.get(i) or 0.0 for i in ids}
    dmax, lmax = max(sims.values(), default=0.0), max(bm25.values(), default=0.0)
    scored = [(fuse(sims[i], dmax, bm25[i], lmax, True), sims[i], i) for i in ids]
    if threshold is not None:
        scored = [t for t in scored if t[1] >= threshold]
    scored.sort(key=lambda t: (-t[0], -t[1], every_cos[t[2]].record.created_at, t[2]))
    return [(i, score) for score, _, i in scored[:limit]]


def _counted(s: PostgresStore, *args: Any, **kwargs: Any) -> tuple[list[SearchHit], int]:
    with sent() as statements:
        hits = s.search(*args, **kwargs)
    return hits, len(statements)


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize(
    ("scope", "filters", "threshold", "limit"),
    [
        (Scope(user_id="u1"), None, None, 10),
        (Scope(user_id="u2", agent_id="a"), None, None, 3),
        (Scope(user_id="u1"), {"n": {"gte": 3}}, None, 10),
        (Scope(user_id="u2"), None, 0.3, 10),
        (Scope(user_id="u1"), {"n": {"in": [1, 2]}}, 0.2, 5),
    ],
)
def test_one_round_trip_and_the_fusion_of_the_two_searches(
    store: PostgresStore,
    query: str,
    scope: Scope,
    filters: dict[str, Any] | None,
    threshold: float | None,
    limit: int,
) -> None:
    vector = fake_embed(query)
    hits, statements = _counted(
        store, query, vector, scope, filters=filters, mode="hybrid", limit=limit, threshold=threshold
    )
    want = _expected(store, query, vector, scope, limit, filters, threshold)
    assert want
    assert [h.record.id for h in hits] == [i for i, _ in want]
    assert [h.score for h in hits] == pytest.approx([sc for _, sc in want], rel=1e-12)
    assert statements == 1


def test_every_word_common_falls_back_to_exact_counts(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When every query word is common (here: in more than 5 memories) the words' exact counts
    are needed: a second and third statement, with the same results as the fusion."""
    monkeypatch.setattr(lexical, "RARE_DOCS", 5)
    query, scope = "plum melon", Scope(user_id="u1")
    vector = fake_embed(query)
    hits, statements = _counted(store, query, vector, scope, mode="hybrid", limit=10)
    want = _expected(store, query, vector, scope, 10, None, None)
    assert [h.record.id for h in hits] == [i for i, _ in want]
    assert [h.score for h in hits] == pytest.approx([sc for _, sc in want], rel=1e-12)
    assert statements == 3
