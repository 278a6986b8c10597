"""The MemoryStore contract on both backends (SQLite and PostgreSQL, via the `store` /
`make_store` fixtures of conftest.py): CRUD, history, paging, search, embedder binding,
reindex, bulk deletes, several store objects and threads on one store.

Where the backends' lexical scores legitimately differ (SQLite's FTS5 bm25 with the porter
stemmer, PostgreSQL's BM25 over exact words), the tests assert the contract (ordering,
s / (1 + s), the hybrid normalisation), never one backend's numbers."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from azmem.errors import EmbedderMismatchError, InvalidInputError, MemoryNotFoundError, StoreError
from azmem.stores import AddOp, DeleteOp, MemoryRecord, MemoryStore, Scope, UpdateOp

from .conftest import StoreFactory
from .store_helpers import DIM, EMBEDDER, add, fake_embed, snapshot


def test_satisfies_protocol(store: MemoryStore) -> None:
    assert isinstance(store, MemoryStore)


def test_add_get_roundtrip(store: MemoryStore) -> None:
    when = datetime(2024, 5, 1, 12, 30, tzinfo=UTC) + timedelta(hours=0)
    rec = add(
        store,
        "Alice is allergic to peanuts",
        agent_id="helper",
        metadata={"topic": "health", "score": 3, "tags": ["food"], "nested": {"a": None}},
        role="user",
        actor_id="alice",
        created_at=when,
    )
    got = store.get(rec.id)
    assert got == rec
    assert got is not None
    assert got.created_at.tzinfo is not None
    assert got.created_at.utcoffset() == timedelta(0)
    assert got.hash == rec.hash
    assert store.get("no-such-id") is None
    assert store.get(rec.id, Scope(user_id="alice")) == rec
    assert store.get(rec.id, Scope(user_id="bob")) is None
    assert store.get(rec.id, Scope(user_id="alice", agent_id="other")) is None


def test_history_add_update_delete(store: MemoryStore) -> None:
    rec = add(store, "likes tea", metadata={"v": 1})
    events = store.apply([UpdateOp(rec.id, memory="likes coffee", vector=fake_embed("likes coffee"))])
    assert [e.event for e in events] == ["UPDATE"]
    store.apply([UpdateOp(rec.id, metadata={"v": 2})])
    updated = store.get(rec.id)
    assert updated is not None
    assert updated.memory == "likes coffee"
    assert updated.metadata == {"v": 2}
    assert updated.updated_at >= rec.updated_at
    assert updated.created_at == rec.created_at
    store.apply([DeleteOp(rec.id, actor_id="admin")])
    assert store.get(rec.id) is None
    history = store.history(rec.id)
    assert [(e.event, e.old_memory, e.new_memory) for e in history] == [
        ("ADD", None, "likes tea"),
        ("UPDATE", "likes tea", "likes coffee"),
        ("UPDATE", "likes coffee", "likes coffee"),
        ("DELETE", "likes coffee", None),
    ]
    assert history[-1].actor_id == "admin"
    assert [e.metadata for e in history] == [{"v": 1}, {"v": 1}, {"v": 2}, {"v": 2}]
    assert all(a.created_at <= b.created_at for a, b in itertools.pairwise(history))
    assert store.history("unknown") == []


def test_update_text_reindexes_fts_and_vector(store: MemoryStore) -> None:
    rec = add(store, "the quick brown fox")
    add(store, "something else entirely")
    store.apply([UpdateOp(rec.id, memory="a lazy purple walrus", vector=fake_embed("a lazy purple walrus"))])
    assert store.search("fox", None, Scope(user_id="alice"), mode="bm25") == []
    hits = store.search("walrus", None, Scope(user_id="alice"), mode="bm25")
    assert [h.record.id for h in hits] == [rec.id]
    dense = store.search(None, fake_embed("a lazy purple walrus"), Scope(user_id="alice"), mode="dense")
    assert dense[0].record.id == rec.id
    assert dense[0].score == pytest.approx(1.0, abs=1e-5)


def test_metadata_only_update_keeps_text_searchable(store: MemoryStore) -> None:
    rec = add(store, "penguins live in antarctica")
    store.apply([UpdateOp(rec.id, metadata={"checked": True})])
    hits = store.search("penguins", None, Scope(user_id="alice"), mode="bm25")
    assert [h.record.id for h in hits] == [rec.id]
    assert store.check() == []


def test_batch_is_atomic_on_missing_id(store: MemoryStore) -> None:
    add(store, "existing memory")
    before = snapshot(store)
    new = MemoryRecord.new("would be added", Scope(user_id="alice"))
    with pytest.raises(MemoryNotFoundError, match="no-such"):
        store.apply([AddOp(new, fake_embed(new.memory)), DeleteOp("no-such")])
    assert snapshot(store) == before
    assert store.get(new.id) is None


def test_duplicate_id_rejected(store: MemoryStore) -> None:
    rec = add(store, "first")
    before = snapshot(store)
    dup = rec.model_copy(update={"memory": "second"})
    with pytest.raises(InvalidInputError, match="already exists"):
        store.apply([AddOp(dup, fake_embed("second"))])
    assert snapshot(store) == before


def test_update_needs_vector_for_new_text(store: MemoryStore) -> None:
    rec = add(store, "original")
    with pytest.raises(InvalidInputError, match="vector"):
        store.apply([UpdateOp(rec.id, memory="changed")])
    with pytest.raises(InvalidInputError, match="changes nothing"):
        store.apply([UpdateOp(rec.id)])


def test_list_pages_newest_first(store: MemoryStore) -> None:
    base = datetime(2024, 1, 1, tzinfo=UTC)
    ids = [add(store, f"memory number {i}", created_at=base + timedelta(minutes=i)).id for i in range(25)]
    # Same timestamp for two rows: insertion order breaks the tie, nothing is skipped.
    ids.append(add(store, "tie", created_at=base + timedelta(minutes=24)).id)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = store.list(Scope(user_id="alice"), limit=10, cursor=cursor)
        seen += [r.id for r in page.records]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 3
    assert len(seen) == len(set(seen)) == 26
    assert seen[:2] == [ids[25], ids[24]]
    assert seen[-1] == ids[0]
    assert store.list(Scope(user_id="bob")).records == []


@pytest.mark.parametrize("cursor", ["", "garbage!", "eyJ4IjogMX0", "W10", "WyJ2MSIsMSwyXQ", 5])
def test_bad_cursor(store: MemoryStore, cursor: object) -> None:
    with pytest.raises(InvalidInputError, match="cursor"):
        store.list(Scope(), cursor=cursor)  # type: ignore[arg-type]


def test_count_scope_and_filters(store: MemoryStore) -> None:
    add(store, "a", metadata={"k": 1})
    add(store, "b", metadata={"k": 2})
    add(store, "c", user_id="bob", metadata={"k": 2})
    assert store.count() == 3
    assert store.count(Scope(user_id="alice")) == 2
    assert store.count(Scope(user_id="alice"), {"k": 2}) == 1
    assert store.count(filters={"k": 2}) == 2


# -- search ------------------------------------------------------------------------------------


@pytest.fixture
def corpus(store: MemoryStore) -> dict[str, MemoryRecord]:
    texts = {
        "pizza": "Alice loves pizza with olives and anchovies",
        "dog": "Alice has a dog called Rex who likes the park",
        "job": "Alice works at Contoso as a data engineer",
        "hike": "Alice went hiking in the Alps last summer",
        "tea": "Alice drinks green tea every morning",
    }
    return {k: add(store, t, metadata={"key": k}) for k, t in texts.items()}


def test_dense_search_orders_by_cosine(store: MemoryStore, corpus: dict[str, MemoryRecord]) -> None:
    q = fake_embed("dog Rex park")
    hits = store.search(None, q, Scope(user_id="alice"), mode="dense", limit=5)
    assert hits[0].record.id == corpus["dog"].id
    sims = [h.score for h in hits]
    assert sims == sorted(sims, reverse=True)
    for h in hits:
        expected = float(fake_embed(h.record.memory) @ q)
        assert h.score == pytest.approx(expected, abs=1e-5)
        assert h.similarity == pytest.approx(expected, abs=1e-5)
        assert h.bm25 is None


def test_bm25_search_and_score_scale(store: MemoryStore, corpus: dict[str, MemoryRecord]) -> None:
    hits = store.search("Which engineer works at Contoso?", None, Scope(user_id="alice"), mode="bm25")
    assert hits[0].record.id == corpus["job"].id
    assert len(hits) == 1  # "alice" is in every row but the question words do not include it
    assert 0 < hits[0].score < 1
    assert hits[0].bm25 is not None
    assert hits[0].score == pytest.approx(hits[0].bm25 / (1 + hits[0].bm25))
    assert hits[0].similarity is None


def test_hybrid_fuses_both_lists(store: MemoryStore, corpus: dict[str, MemoryRecord]) -> None:
    text = "green tea morning"
    q = fake_embed(text)
    hits = store.search(text, q, Scope(user_id="alice"), limit=5)
    top = hits[0]
    assert top.record.id == corpus["tea"].id
    assert (top.dense_rank, top.bm25_rank) == (1, 1)
    assert top.score == pytest.approx(1.0)
    assert all(0 <= h.score <= 1 for h in hits)
    best_cos = max(h.similarity or 0.0 for h in hits)
    best_bm25 = max(h.bm25 or 0.0 for h in hits)
    for h in hits:
        assert h.similarity is not None
        expected = 0.5 * max(h.similarity, 0.0) / best_cos + 0.5 * (h.bm25 or 0.0) / best_bm25
        assert h.score == pytest.approx(expected)
    # A memory that matches no query word scores at most one half.
    assert all(h.score <= 0.5 + 1e-9 for h in hits if h.bm25 is None)


def _vec(cos: float, dim: int = DIM) -> np.ndarray:
    """A unit vector whose cosine with e0 is `cos`."""
    v = np.zeros(dim, dtype=np.float32)
    v[0], v[1] = cos, np.sqrt(1 - cos * cos)
    return v


def test_hybrid_strong_in_both_beats_strong_in_one(store: MemoryStore) -> None:
    scope = Scope(user_id="u")
    docs = {
        "both": ("zebra quokka and a few more words", 0.90),  # second by cosine, second by BM25
        "dense": ("nothing in common with the query", 0.95),  # best cosine, no query word
        "lexical": ("zebra quokka", 0.05),  # best BM25 (shortest), far by cosine
        "filler": ("unrelated filler text", 0.10),
    }
    ids = {}
    for key, (text, cos) in docs.items():
        rec = MemoryRecord.new(text, scope)
        store.apply([AddOp(rec, _vec(cos))])
        ids[rec.id] = key
    q = _vec(1.0)
    hits = store.search("zebra quokka", q, scope, limit=4)
    assert [ids[h.record.id] for h in hits][:3] == ["both", "lexical", "dense"]
    first = hits[0]
    assert (first.dense_rank, first.bm25_rank) == (2, 2)
    assert 0.5 < first.score < 1.0
    dense_only = next(h for h in hits if ids[h.record.id] == "dense")
    assert dense_only.bm25 is None
    assert dense_only.score == pytest.approx(0.5)  # best cosine, no query word: exactly one half
    # Each single-method list puts its own favourite first.
    assert ids[store.search("zebra quokka", q, scope, mode="dense")[0].record.id] == "dense"
    assert ids[store.search("zebra quokka", q, scope, mode="bm25")[0].record.id] == "lexical"


def test_hybrid_uses_bm25_of_dense_candidates_beyond_the_bm25_list(store: MemoryStore) -> None:
    """A dense candidate matching a query word below the BM25 top-N still gets its BM25 share."""
    scope = Scope(user_id="u")
    for i in range(45):  # 45 short memories with "zebra": BM25 ranks all of them above the long one
        store.apply([AddOp(MemoryRecord.new(f"zebra note {i}", scope), _vec(0.0))])
    long_text = "zebra " + " ".join(f"word{i}" for i in range(60))
    target = MemoryRecord.new(long_text, scope)
    store.apply([AddOp(target, _vec(1.0))])
    hits = store.search("zebra", _vec(1.0), scope, limit=1)  # BM25 list depth 40 < 45
    hit = hits[0]
    assert hit.record.id == target.id
    assert hit.bm25_rank is None
    assert hit.bm25 is not None
    assert hit.bm25 > 0
    assert hit.score > 0.5  # cosine share 0.5 plus a (small) BM25 share


def test_hybrid_threshold_only_removes_hits(store: MemoryStore) -> None:
    scope = Scope(user_id="u")
    ids = {}
    for key, text, cos in (
        ("bm25_best", "zebra", 0.1),  # best BM25 (shortest), cut by the threshold
        ("both", "zebra and some other words", 0.9),
        ("dense", "nothing relevant", 0.8),
        ("far", "far away text", 0.2),
    ):
        rec = MemoryRecord.new(text, scope)
        store.apply([AddOp(rec, _vec(cos))])
        ids[rec.id] = key
    full = store.search("zebra", _vec(1.0), scope, limit=10)
    kept = store.search("zebra", _vec(1.0), scope, limit=10, threshold=0.5)
    assert [ids[h.record.id] for h in kept] == ["both", "dense"]
    expected = [(h.record.id, h.score) for h in full if (h.similarity or 0.0) >= 0.5]
    assert [(h.record.id, h.score) for h in kept] == expected
    assert kept[0].score < 1.0  # still normalised by the (removed) best BM25 memory


def test_hybrid_with_no_searchable_words_uses_dense_scale(
    store: MemoryStore, corpus: dict[str, MemoryRecord]
) -> None:
    hits = store.search("?!", fake_embed("pizza olives"), Scope(user_id="alice"))
    assert hits[0].record.id == corpus["pizza"].id
    assert hits[0].score == pytest.approx(1.0)
    assert all(h.bm25_rank is None for h in hits)


def test_threshold_is_cosine_in_dense_and_hybrid(store: MemoryStore, corpus: dict[str, MemoryRecord]) -> None:
    q = fake_embed("pizza olives anchovies")
    all_hits = store.search("pizza", q, Scope(user_id="alice"), mode="dense")
    cut = sorted(h.score for h in all_hits)[-2]  # keep the best two
    dense = store.search(None, q, Scope(user_id="alice"), mode="dense", threshold=cut)
    assert len(dense) == 2
    assert all(h.score >= cut for h in dense)
    hybrid = store.search("tea", q, Scope(user_id="alice"), threshold=cut)
    # "tea" finds the tea memory by BM25 but its cosine is below the cut: dropped.
    assert corpus["tea"].id not in {h.record.id for h in hybrid}
    assert all(h.similarity is not None and h.similarity >= cut for h in hybrid)
    bm25 = store.search("pizza", None, Scope(user_id="alice"), mode="bm25", threshold=0.999)
    assert bm25 == []


def test_filters_apply_before_ranking(store: MemoryStore, corpus: dict[str, MemoryRecord]) -> None:
    text = "pizza olives"
    hits = store.search(text, fake_embed(text), Scope(user_id="alice"), {"key": {"ne": "pizza"}}, limit=3)
    assert len(hits) == 3  # the limit is filled from what the filter allows
    assert corpus["pizza"].id not in {h.record.id for h in hits}
    only = store.search(text, fake_embed(text), Scope(user_id="alice"), {"key": "hike"})
    assert [h.record.id for h in only] == [corpus["hike"].id]


def test_search_respects_scope(store: MemoryStore, corpus: dict[str, MemoryRecord]) -> None:
    bob = add(store, "Bob loves pizza with olives and anchovies", user_id="bob")
    text = "pizza olives anchovies"
    for mode in ("hybrid", "dense", "bm25"):
        ids = {h.record.id for h in store.search(text, fake_embed(text), Scope(user_id="alice"), mode=mode)}
        assert bob.id not in ids
        assert corpus["pizza"].id in ids
        bob_hits = store.search(text, fake_embed(text), Scope(user_id="bob"), mode=mode)
        assert [h.record.id for h in bob_hits] == [bob.id]


NASTY_QUERIES = [
    '"',
    '"unbalanced',
    "NEAR(pizza olives, 2)",
    "pizza AND OR NOT",
    "*",
    "pizz*",
    "^pizza",
    "memory:pizza",
    "((((",
    "!!! ??? ...",
    "",
    "   ",
    "a\x00b pizza",
    "lone \ud800 surrogate pizza",
    "-pizza +olives",
    'pizza"; DROP TABLE memories; --',
    "🍕 pizza",
    "x" * 10_000,
]


@pytest.mark.parametrize("query", NASTY_QUERIES)
def test_any_text_is_a_valid_query(store: MemoryStore, corpus: dict[str, MemoryRecord], query: str) -> None:
    hits = store.search(query, None, Scope(user_id="alice"), mode="bm25")
    if "pizza" in query:
        assert corpus["pizza"].id in {h.record.id for h in hits}
    store.search(query, fake_embed("pizza"), Scope(user_id="alice"))
    assert store.count() == 5


def test_search_argument_errors(store: MemoryStore, corpus: dict[str, MemoryRecord]) -> None:
    q = fake_embed("x")
    with pytest.raises(InvalidInputError, match="mode"):
        store.search("x", q, Scope(), mode="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="query_vector"):
        store.search("x", None, Scope())
    with pytest.raises(InvalidInputError, match="dimension"):
        store.search("x", np.ones(DIM + 1), Scope())
    with pytest.raises(InvalidInputError, match="query_text"):
        store.search(None, q, Scope(), mode="bm25")
    with pytest.raises(InvalidInputError, match="limit"):
        store.search("x", q, Scope(), limit=0)
    with pytest.raises(InvalidInputError, match="threshold"):
        store.search("x", q, Scope(), threshold=float("nan"))


# -- embedder binding and reindex ------------------------------------------------------------------


def test_replace_vectors_reindexes(store: MemoryStore, corpus: dict[str, MemoryRecord]) -> None:
    def embed16(text: str) -> np.ndarray:
        return fake_embed(text, 16)

    store.search("warm up the index", fake_embed("x"), Scope())
    n = store.replace_vectors(
        "fake-16", 16, ((r.id, embed16(r.memory)) for batch in store.iter_all(2) for r in batch)
    )
    assert n == 5
    assert store.embedder == ("fake-16", 16)
    hits = store.search(None, embed16("dog Rex park"), Scope(user_id="alice"), mode="dense")
    assert hits[0].record.id == corpus["dog"].id
    assert hits[0].similarity is not None
    assert store.check() == []


def test_replace_vectors_incomplete_changes_nothing(
    store: MemoryStore, corpus: dict[str, MemoryRecord]
) -> None:
    before = snapshot(store)
    first = corpus["pizza"].id
    with pytest.raises(StoreError, match="covered 1 of 5"):
        store.replace_vectors("fake-16", 16, [(first, np.ones(16))])
    with pytest.raises(StoreError, match="unknown memory"):
        store.replace_vectors("fake-16", 16, [("nope", np.ones(16))])
    with pytest.raises(StoreError, match="two vectors"):
        store.replace_vectors("fake-16", 16, [(first, np.ones(16)), (first, np.ones(16))])
    assert snapshot(store) == before
    assert store.embedder == (EMBEDDER, DIM)


# -- bulk deletes ------------------------------------------------------------------------------------


def test_delete_all_in_scope(store: MemoryStore) -> None:
    a1 = add(store, "one", run_id="r1")
    add(store, "two", run_id="r2")
    b = add(store, "three", user_id="bob", run_id="r1")
    assert store.delete_all(Scope(user_id="alice", run_id="r1")) == 1
    assert store.get(a1.id) is None
    assert store.get(b.id) is not None
    assert [e.event for e in store.history(a1.id)] == ["ADD", "DELETE"]
    assert store.count() == 2
    with pytest.raises(InvalidInputError, match="at least one"):
        store.delete_all(Scope())
    assert store.check() == []


def test_reset(store: MemoryStore, corpus: dict[str, MemoryRecord]) -> None:
    store.search("pizza", fake_embed("pizza"), Scope())
    store.reset()
    assert store.count() == 0
    assert store.history(corpus["pizza"].id) == []
    assert store.search("pizza", fake_embed("pizza"), Scope()) == []
    assert store.embedder == (EMBEDDER, DIM)
    rec = add(store, "pizza again")
    assert [h.record.id for h in store.search("pizza", fake_embed("pizza"), Scope())] == [rec.id]
    assert store.check() == []


# -- several connections, threads ----------------------------------------------------------------


def test_threads_share_one_store(store: MemoryStore) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                add(store, f"thread {n} item {i}", user_id=f"t{n}")
                store.search("item", fake_embed("item"), Scope(user_id=f"t{n}"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.count() == 80
    assert all(store.count(Scope(user_id=f"t{n}")) == 20 for n in range(4))
    assert store.check() == []


def test_times_order_across_centuries(store: MemoryStore) -> None:
    early = add(store, "early", created_at=datetime(999, 5, 1, tzinfo=UTC))
    late = add(store, "late", created_at=datetime(2024, 5, 1, tzinfo=UTC))
    assert [r.id for r in store.list(Scope()).records] == [late.id, early.id]
    got = store.get(early.id)
    assert got is not None
    assert got.created_at == datetime(999, 5, 1, tzinfo=UTC)
    assert store.count(filters={"created_at": {"lt": "1500-01-01"}}) == 1


# -- embedder binding, several store objects on one store -----------------------------------------


def test_embedder_mismatch_is_explained(make_store: StoreFactory) -> None:
    first = make_store()
    add(first, "something")
    first.close()
    s = make_store(dim=None)
    assert s.embedder == (EMBEDDER, DIM)
    with pytest.raises(EmbedderMismatchError) as err:
        s.open("azure:text-embedding-3-large", 3072)
    assert "azmem reindex" in (err.value.suggestion or "")
    assert EMBEDDER in err.value.message
    assert "3072" in err.value.message
    # Reads need no embedder; writes and searches do.
    assert s.count() == 1
    with pytest.raises(StoreError, match="open"):
        s.search("something", None, Scope(), mode="dense")


def test_empty_store_adopts_new_embedder(make_store: StoreFactory) -> None:
    make_store().close()
    s = make_store(dim=None)
    s.open("other", 8)
    assert s.embedder == ("other", 8)
    rec = add_vec(s, "now with eight dimensions", np.ones(8))
    assert [h.record.id for h in s.search(None, np.ones(8), Scope(), mode="dense")] == [rec.id]


def add_vec(store: MemoryStore, text: str, vector: Any) -> MemoryRecord:
    rec = MemoryRecord.new(text, Scope(user_id="alice"))
    store.apply([AddOp(rec, vector)])
    return rec


def test_other_process_reindex_is_detected(make_store: StoreFactory) -> None:
    a, b = make_store(), make_store(dim=None)
    add(a, "hello world")
    b.replace_vectors("new-model", 8, ((r.id, np.ones(8)) for batch in b.iter_all() for r in batch))
    with pytest.raises(EmbedderMismatchError):
        add(a, "more")
    with pytest.raises(EmbedderMismatchError):
        a.search("hello", fake_embed("hello"), Scope())


def test_reads_and_open_of_the_same_embedder_need_no_write(make_store: StoreFactory) -> None:
    rec = add(make_store(), "persisted")
    again = make_store()
    assert again.get(rec.id) == rec
    assert again.embedder == (EMBEDDER, DIM)


def test_metadata_round_trips_with_its_types(store: MemoryStore) -> None:
    meta = {
        "big": 1e16,
        "tiny": 1.5e-7,
        "huge": 1e300,
        "neg": -0.5,
        "int": 10**18,
        "float_int": 2.0,
        "text": "1e16",
        "nested": {"list": [1, 1.0, True, None, "x", {"k": []}]},
        "": "empty key",
    }
    rec = add(store, "numbers of every kind", metadata=meta)
    got = store.get(rec.id)
    assert got is not None
    assert got.metadata == meta
    assert {k: type(v) for k, v in got.metadata.items()} == {k: type(v) for k, v in meta.items()}
    assert type(got.metadata["nested"]["list"][1]) is float
    assert store.count(filters={"big": 1e16}) == 1
    assert store.count(filters={"float_int": 2}) == 1


def test_several_store_objects_see_each_other(make_store: StoreFactory) -> None:
    reader, writer = make_store(), make_store()
    first = add(writer, "walrus facts")
    assert [h.record.id for h in reader.search("walrus", fake_embed("walrus"), Scope())] == [first.id]
    second = add(writer, "more walrus facts")
    assert {h.record.id for h in reader.search("walrus", fake_embed("walrus"), Scope())} == {
        first.id,
        second.id,
    }
    writer.apply([DeleteOp(first.id)])
    assert [h.record.id for h in reader.search(None, fake_embed("walrus"), Scope(), mode="dense")] == [
        second.id
    ]
    writer.apply([UpdateOp(second.id, memory="now about seals", vector=fake_embed("now about seals"))])
    top = reader.search(None, fake_embed("now about seals"), Scope(), mode="dense")[0]
    assert top.score == pytest.approx(1.0, abs=1e-5)


def test_closed_store_raises(make_store: StoreFactory) -> None:
    s = make_store()
    s.close()
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.count()


def test_words_match_across_case_punctuation_and_scripts(store: MemoryStore) -> None:
    """The query's words (`query_terms`) find the memory's words whatever surrounds them, on
    both backends (PostgreSQL's own parser would keep an e-mail or a decimal as one word, and
    its lower() follows the database locale: the store tokenizes memories itself)."""
    recs = {
        key: add(store, text)
        for key, text in {
            "school": "École de Zoë",
            "mail": "write to alice@contoso.com today",
            "pi": "pi is 3.14 roughly",
            "cjk": "日本語 notes",
            "snake": "the config_value flag",
        }.items()
    }
    for query, key in [
        ("ÉCOLE", "school"),
        ("contoso", "mail"),
        ("alice", "mail"),
        ("14", "pi"),
        ("日本語", "cjk"),
        ("value", "snake"),
    ]:
        hits = store.search(query, None, Scope(user_id="alice"), mode="bm25")
        assert [h.record.id for h in hits] == [recs[key].id], query


def test_possessive_and_contraction_fragments_are_not_search_words(store: MemoryStore) -> None:
    """ "Jon's" and "didn't" leave "s" and "t" after the split; both are stop words, so a
    question holding them ranks by its real words only and matches no memory through them
    alone, on both backends (a query of nothing but stop words still searches them all)."""
    studio = add(store, "Jon opened a dance studio downtown")
    other = add(store, "Gina's store sells hats; she didn't open it on Sundays")
    hits = store.search("What does Jon's dance studio offer?", None, Scope(user_id="alice"), mode="bm25")
    assert [h.record.id for h in hits] == [studio.id]
    assert store.search("didn't", None, Scope(user_id="alice"), mode="bm25")[0].record.id == other.id
