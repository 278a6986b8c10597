"""BM25 ranking: the in-memory mirror equals FTS5's own bm25 ranking; the FTS5 fallback (for
phrase words) keeps a bounded cost: when a query word is very common, it ranks by the rarer
words (or over the newest matches only) instead of scanning most of the store. Thresholds are
lowered here so a small store exercises every fallback path."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from azmem.stores import Scope, SQLiteStore
from azmem.stores.sqlite import _search
from azmem.stores.sqlite._fts import or_expression
from azmem.stores.terms import query_terms

from .store_helpers import add, open_store

WORDS = ["apple", "banana", "cherry", "date", "elder", "fig", "grape", "honey", "iris", "juniper"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SQLiteStore, dict[str, str]]]:
    store = open_store(tmp_path_factory.mktemp("bm25") / "b.db")
    ids: dict[str, str] = {}
    for i in range(60):
        # word k appears in about 60 / (k + 1) memories: a Zipf-like spread of document counts
        words = ["common"] + [w for k, w in enumerate(WORDS) if i % (k + 1) == 0]
        text = " ".join(words) + f" item{i}"
        ids[add(store, text, user_id="u1" if i % 4 else "u2").id] = text
    yield store, ids
    store.close()


def full_ranking(store: SQLiteStore, text: str, scope: Scope, limit: int) -> list[tuple[str, float]]:
    """FTS5's own ranking over every query word, straight from SQL: (id, -bm25)."""
    terms = query_terms(text)
    if not terms:
        return []
    with sqlite3.connect(store.path) as conn:
        rows = conn.execute(
            "SELECT m.id, -bm25(memories_fts) FROM memories_fts "
            "JOIN memories m ON m.rid = memories_fts.rowid "
            "WHERE memories_fts MATCH ? AND (? IS NULL OR m.user_id = ?) "
            "ORDER BY bm25(memories_fts), m.created_at, m.id LIMIT ?",
            (or_expression(terms), scope.user_id, scope.user_id, limit),
        ).fetchall()
    return [(r[0], r[1]) for r in rows]


def fts_fallback(store: SQLiteStore, text: str, user: str | None = None, limit: int = 50) -> set[str]:
    """Texts ranked by the FTS5 fallback path (`_search.lexical_fts`) directly."""
    with sqlite3.connect(store.path) as conn:
        where, params = ("m.user_id = ?", [user]) if user else ("1", [])
        ranked, _ = _search.lexical_fts(conn, query_terms(text), where, params, limit)
        texts = dict(conn.execute("SELECT rid, memory FROM memories"))
    return {texts[rid] for rid, _ in ranked}


@settings(max_examples=60, deadline=None)
@given(
    words=st.lists(st.sampled_from([*WORDS, "common", "item7", "missing", "the"]), min_size=1, max_size=4),
    user=st.sampled_from([None, "u1", "u2"]),
    limit=st.sampled_from([1, 5, 20]),
)
def test_small_store_ranking_is_exact(
    corpus: tuple[SQLiteStore, dict[str, str]], words: list[str], user: str | None, limit: int
) -> None:
    store, _ = corpus
    text = " ".join(words)
    scope = Scope(user_id=user)
    hits = store.search(text, None, scope, limit=limit, mode="bm25")
    expected = full_ranking(store, text, scope, limit)
    assert [round(h.bm25 or 0.0, 9) for h in hits] == [round(sc, 9) for _, sc in expected]
    # Ids agree except where equal scores tie at the cut-off.
    if expected:
        last = round(expected[-1][1], 9)
        assert {h.record.id for h in hits if round(h.bm25 or 0, 9) > last} == {
            i for i, sc in expected if round(sc, 9) > last
        }


def test_common_words_are_dropped_when_rarer_ones_exist(
    corpus: tuple[SQLiteStore, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, ids = corpus
    monkeypatch.setattr(_search, "RARE_DOCS", 10)  # "common", "apple", "banana", "cherry" are common
    hits = fts_fallback(store, "common apple juniper")
    # Only memories with the rare word "juniper" (i % 10 == 0) are ranked.
    assert hits == {t for t in ids.values() if "juniper" in t.split()}
    assert len(hits) == 6
    # The in-memory path needs no such cut: every word counts.
    full = store.search("common apple juniper", None, Scope(), limit=100, mode="bm25")
    assert len(full) == 60


def test_rare_words_within_budget_are_kept_rarest_first(
    corpus: tuple[SQLiteStore, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, ids = corpus
    monkeypatch.setattr(_search, "RARE_DOCS", 20)
    monkeypatch.setattr(_search, "RARE_BUDGET", 12)  # juniper (6) + iris (7) > 12: iris dropped
    hits = fts_fallback(store, "iris juniper")
    assert hits == {t for t in ids.values() if "juniper" in t.split()}


def test_only_common_words_scores_the_newest_matches(
    corpus: tuple[SQLiteStore, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ids = corpus
    monkeypatch.setattr(_search, "RARE_DOCS", 5)
    monkeypatch.setattr(_search, "COMMON_SCAN", 8)
    hits = fts_fallback(store, "common")
    assert sorted(int(t.split("item")[1]) for t in hits) == list(range(52, 60))
    scoped = fts_fallback(store, "common", user="u2")
    assert sorted(int(t.split("item")[1]) for t in scoped) == [52, 56]


def test_words_absent_from_the_store_are_ignored(corpus: tuple[SQLiteStore, dict[str, str]]) -> None:
    store, _ = corpus
    hits = store.search("zzzunknown juniper", None, Scope(), limit=50, mode="bm25")
    assert len(hits) == 6
    assert store.search("zzzunknown", None, Scope(), mode="bm25") == []
