"""Dense search takes shortcuts (SQLite: in-memory scope columns, over-fetching when a scope is
most of the store, checking filters on a shortlist before evaluating them on the whole scope;
PostgreSQL: an exact scan when the scope and filters leave few memories, else HNSW);
whatever path is taken, results must equal brute force over the scope and filter. On both
backends; test_postgres_store.py checks PostgreSQL's HNSW path against brute force too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from azmem.stores import AddOp, MemoryRecord, MemoryStore, Scope, SQLiteStore

from .conftest import StoreFactory

DIM = 16
World = tuple[MemoryStore, list[Any], StoreFactory]
N = 400
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def unit(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    return (v / np.linalg.norm(v)).astype(np.float32)


@pytest.fixture(scope="module")
def world(module_make_store: StoreFactory) -> tuple[MemoryStore, list[Any], StoreFactory]:
    """400 memories: user "big" owns 60% with random vectors; user "small" owns 40%, all
    clustered around one direction, so a query in that direction scoped to "big" finds almost
    nothing of its own among the unrestricted top results."""
    rng = np.random.default_rng(7)
    cluster = unit(rng.standard_normal(DIM))
    store = module_make_store(dim=DIM)
    rows = []
    ops = []
    for i in range(N):
        user = "big" if i % 5 < 3 else "small"
        vec = (
            unit(rng.standard_normal(DIM))
            if user == "big"
            else unit(cluster + 0.1 * rng.standard_normal(DIM))
        )
        agent = ["a", "b", None][i % 3]
        meta = {"g": int(rng.integers(0, 100))}
        rec = MemoryRecord.new(
            f"memory {i}",
            Scope(user_id=user, agent_id=agent),
            metadata=meta,
            created_at=T0 + timedelta(seconds=i),
        )
        ops.append(AddOp(rec, vec))
        rows.append((rec, vec))
    store.apply(ops)
    return store, [cluster, rows], module_make_store


def brute_force(
    rows: list[Any], q: npt.NDArray[np.float32], scope: Scope, g_lt: int | None, limit: int
) -> list[str]:
    scored = []
    for rec, vec in rows:
        if any(getattr(rec, k) != v for k, v in scope.as_dict().items()):
            continue
        if g_lt is not None and not rec.metadata["g"] < g_lt:
            continue
        scored.append((-float(vec @ q), rec.created_at, rec.id))
    return [i for _, _, i in sorted(scored)[:limit]]


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    towards_cluster=st.booleans(),
    user=st.sampled_from([None, "big", "small", "nobody"]),
    agent=st.sampled_from([None, "a", "b"]),
    g_lt=st.sampled_from([None, 1, 3, 10, 50, 95, 100]),
    limit=st.sampled_from([1, 5, 10, 40]),
)
def test_dense_equals_brute_force(
    world: World,
    seed: int,
    towards_cluster: bool,
    user: str | None,
    agent: str | None,
    g_lt: int | None,
    limit: int,
) -> None:
    store, (cluster, rows), _ = world
    rng = np.random.default_rng(seed)
    q = unit(cluster + 0.05 * rng.standard_normal(DIM)) if towards_cluster else unit(rng.standard_normal(DIM))
    scope = Scope(user_id=user, agent_id=agent)
    filters = None if g_lt is None else {"g": {"lt": g_lt}}
    hits = store.search(None, q, scope, filters, limit=limit, mode="dense")
    assert [h.record.id for h in hits] == brute_force(rows, q, scope, g_lt, limit)
    for h in hits:
        assert h.score == pytest.approx(h.similarity)


def test_overfetch_escalates_when_the_scope_is_outranked(world: World) -> None:
    store, (cluster, rows), _ = world
    # Top results unrestricted are all "small"; "big" is 60% of the store, so the search
    # over-fetches unrestricted results and must widen until it has enough "big" ones.
    hits = store.search(None, cluster, Scope(user_id="big"), limit=40, mode="dense")
    assert [h.record.id for h in hits] == brute_force(rows, cluster, Scope(user_id="big"), None, 40)
    assert len(hits) == 40


def test_selective_filter_falls_back_to_full_scope(world: World) -> None:
    store, (cluster, rows), _ = world
    expected = brute_force(rows, cluster, Scope(user_id="big"), 2, 10)
    assert expected  # some "big" memories have g < 2, none of them near the cluster
    hits = store.search(None, cluster, Scope(user_id="big"), {"g": {"lt": 2}}, limit=10, mode="dense")
    assert [h.record.id for h in hits] == expected


def test_hybrid_shortcuts_match_a_fresh_store_object(
    world: World,
) -> None:
    """A second store object on the same file (cold index, cold scope columns) ranks the same."""
    store, (cluster, _), make = world
    other = make(dim=DIM)
    for scope in (Scope(), Scope(user_id="big"), Scope(user_id="small", agent_id="a")):
        a = store.search("memory 7", cluster, scope, {"g": {"gte": 10}}, limit=20)
        b = other.search("memory 7", cluster, scope, {"g": {"gte": 10}}, limit=20)
        assert [h.record.id for h in a] == [h.record.id for h in b]


@pytest.mark.parametrize("mode", ["exact", "quantized"])
def test_index_modes_find_the_same_best_match(world: World, mode: Any) -> None:
    store, (_, rows), _ = world
    if not isinstance(store, SQLiteStore):
        pytest.skip("index_mode is SQLite's in-memory vector index")
    other = SQLiteStore(store.path, index_mode=mode)
    other.open(*store.embedder)  # type: ignore[misc]
    rec, vec = rows[123]
    hit = other.search(None, vec, Scope(), limit=1, mode="dense")[0]
    assert hit.record.id == rec.id
    assert hit.similarity == pytest.approx(1.0, abs=1e-5)
    other.close()
