"""The SQLite graph's in-memory BM25 (`graph/store/lexical.py`): FTS5's ranking, kept in step with writes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from azmem.graph.changes import Changes, NewEntity, NewFact
from azmem.graph.model import Entity, Fact, new_id
from azmem.graph.queries import FactQuery, TimeView
from azmem.graph.store.sql import fact_where
from azmem.graph.store.sqlite import SQLiteGraphStore
from azmem.graph.store.sqlite_reads import _FACT_MATCH, SQLITE, _match
from azmem.stores.terms import query_terms

DIM = 8
NOW = datetime(2024, 1, 1, tzinfo=UTC)
WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "working",
    "works",
]
RELATIONS = ["WORKS_AT", "LIVES_IN", "KNOWS"]
QUERIES = ["alpha", "bravo charlie", "works at delta", "echo foxtrot golf hotel", "who knows lima", "mike"]


def _store(path: Path) -> SQLiteGraphStore:
    store = SQLiteGraphStore(path)
    store.open("test:lexical", DIM)
    return store


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def _fill(store: SQLiteGraphStore, group: str, n: int, seed: int) -> list[str]:
    """n facts of random words (varied lengths and repeats), some ended: their ids."""
    rng, r = np.random.default_rng(seed), random.Random(seed)
    people = [Entity(id=new_id(), group_id=group, name=f"Person {i}", created_at=NOW) for i in range(6)]
    store.apply(Changes(group, new_entities=[NewEntity(e, _unit(rng)) for e in people]))
    facts = []
    for _ in range(n):
        a, b = r.sample(people, 2)
        text = " ".join(r.choice(WORDS) for _ in range(r.randint(2, 12)))
        ended = r.random() < 0.3
        valid = NOW - timedelta(days=r.randrange(1000))
        facts.append(NewFact(Fact(
            id=new_id(), group_id=group, source_id=a.id, target_id=b.id, name=r.choice(RELATIONS),
            fact=text, valid_at=valid, invalid_at=valid + timedelta(days=10) if ended else None,
            created_at=NOW, expired_at=NOW if ended else None), _unit(rng)))  # fmt: skip
    store.apply(Changes(group, new_facts=facts))
    return [f.fact.id for f in facts]


def _view(as_of: datetime | None) -> TimeView:
    return TimeView(now=NOW + timedelta(days=1), as_of=as_of)


def _mirror(store: SQLiteGraphStore, groups: list[str], q: str, view: TimeView, limit: int) -> list[str]:
    return store.search_facts(FactQuery(groups, query_terms(q), None, view, None, [], 2, limit)).bm25


def _fts5(store: SQLiteGraphStore, groups: list[str], q: str, view: TimeView, limit: int) -> list[str]:
    where = fact_where(SQLITE, "f", groups, view, None, entity_table="graph_entities")
    sql = f"{_FACT_MATCH} AND {where.sql} ORDER BY bm25(graph_facts_fts), f.rid LIMIT ?"
    with store._read() as conn:
        return [r[1] for r in conn.execute(sql, (_match(query_terms(q), False), *where.params, limit))]


@pytest.mark.parametrize("as_of", [None, NOW - timedelta(days=400)])
def test_the_mirror_ranks_exactly_as_fts5_in_a_one_group_file(tmp_path: Path, as_of: datetime | None) -> None:
    store = _store(tmp_path / "g.db")
    _fill(store, "g", 300, seed=1)
    for q in QUERIES:
        for limit in (5, 50, 1000):
            expected = _fts5(store, ["g"], q, _view(as_of), limit)
            assert expected, q  # the words occur: a real comparison
            assert _mirror(store, ["g"], q, _view(as_of), limit) == expected, (q, limit)
    assert len(store._lexical._groups["g"]) == 300  # answered by the mirror, not FTS5
    store.close()


def test_the_mirror_follows_inserts_and_deletes_by_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    reader, writer = _store(path), _store(path)
    _fill(writer, "g", 100, seed=2)
    view = _view(None)
    assert _mirror(reader, ["g"], "alpha", view, 500) == _fts5(reader, ["g"], "alpha", view, 500)
    added = _fill(writer, "g", 50, seed=3)  # appended to the mirror
    after_insert = _mirror(reader, ["g"], "alpha bravo", view, 500)
    assert set(added) & set(after_insert)
    assert after_insert == _fts5(reader, ["g"], "alpha bravo", view, 500)
    gone = after_insert[0]
    assert writer.delete_fact(gone)  # the mirror starts over
    after_delete = _mirror(reader, ["g"], "alpha bravo", view, 500)
    assert gone not in after_delete
    assert after_delete == _fts5(reader, ["g"], "alpha bravo", view, 500)
    writer.clear("g")
    assert _mirror(reader, ["g"], "alpha bravo", view, 500) == []
    reader.close()
    writer.close()


def test_a_groups_ranking_does_not_depend_on_other_groups(tmp_path: Path) -> None:
    store = _store(tmp_path / "g.db")
    _fill(store, "a", 200, seed=4)
    view = _view(None)
    before = {q: _mirror(store, ["a"], q, view, 50) for q in QUERIES}
    _fill(store, "b", 400, seed=5)  # the same words, other frequencies and lengths
    assert {q: _mirror(store, ["a"], q, view, 50) for q in QUERIES} == before
    both = _mirror(store, ["a", "b"], "alpha", view, 1000)
    assert set(both) >= set(_mirror(store, ["a"], "alpha", view, 1000))  # several groups: one ranking
    assert len(both) > len(_mirror(store, ["a"], "alpha", view, 1000))
    store.close()
