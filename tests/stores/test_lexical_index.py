"""The in-memory BM25 mirror (`stores/_lexical.py`) must rank exactly as FTS5 does, follow
writes made through another store object (another process), survive compaction, and hand
phrase words (several FTS5 tokens) to FTS5 itself."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from azmem.stores import AddOp, DeleteOp, MemoryRecord, Scope, SQLiteStore, UpdateOp
from azmem.stores.sqlite import _lexical, _schema
from azmem.stores.sqlite import audit as sqlite_audit

from .store_helpers import add, fake_embed, open_store
from .test_bm25_bounds import full_ranking

WORDS = ["river", "rivers", "running", "runs", "stone", "stones", "the", "garden", "café", "cafe", "Zoë"]


def assert_same_as_fts5(store: SQLiteStore, text: str, scope: Scope, limit: int = 200) -> None:
    hits = store.search(text, None, scope, limit=limit, mode="bm25")
    expected = full_ranking(store, text, scope, limit)
    assert sorted((h.record.id, round(h.bm25 or 0.0, 9)) for h in hits) == sorted(
        (i, round(s, 9)) for i, s in expected
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=6), min_size=1, max_size=12),
    edits=st.lists(st.tuples(st.integers(0, 11), st.sampled_from(["update", "delete"])), max_size=6),
    query=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
)
def test_mirror_follows_another_writer_and_equals_fts5(
    tmp_path_factory: pytest.TempPathFactory,
    texts: list[list[str]],
    edits: list[tuple[int, str]],
    query: list[str],
) -> None:
    path = tmp_path_factory.mktemp("lex") / "l.db"
    reader, writer = open_store(path), open_store(path)
    try:
        records = [add(writer, " ".join(t), user_id="u1" if i % 3 else "u2") for i, t in enumerate(texts)]
        text = " ".join(query)
        assert_same_as_fts5(reader, text, Scope())  # builds the mirror
        gone: set[int] = set()
        for i, action in edits:
            if i >= len(records) or i in gone:
                continue
            if action == "delete":
                writer.apply([DeleteOp(records[i].id)])
                gone.add(i)
            else:
                new = f"{records[i].memory} stone running"
                writer.apply([UpdateOp(records[i].id, memory=new, vector=fake_embed(new))])
        add(writer, "a new river garden", user_id="u1")
        for scope in (Scope(), Scope(user_id="u1"), Scope(user_id="u2"), Scope(user_id="nobody")):
            assert_same_as_fts5(reader, text, scope)
    finally:
        reader.close()
        writer.close()


def test_compaction_keeps_the_ranking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(tmp_path / "c.db")
    recs = [add(store, f"stone garden {i}") for i in range(40)]
    compactions = 0
    original = _lexical.LexicalIndex._maybe_compact

    def counting(self: _lexical.LexicalIndex) -> None:
        nonlocal compactions
        before = self._n_slots
        original(self)
        compactions += self._n_slots < before

    monkeypatch.setattr(_lexical.LexicalIndex, "_maybe_compact", counting)
    for round_ in range(30):  # 40 rows rewritten 30 times: 1,200 dead slots > 1,024
        store.apply(
            [
                UpdateOp(r.id, memory=f"stone garden {i} river{round_ % 3}", vector=fake_embed("x"))
                for i, r in enumerate(recs)
            ]
        )
        store.search("stone", None, Scope(), mode="bm25")
    assert compactions >= 1
    for text in ("stone river1", "garden river2", "river0 river1 river2"):
        assert_same_as_fts5(store, text, Scope())
    store.close()


def test_phrase_word_falls_back_to_fts5(tmp_path: Path) -> None:
    # U+19B0 is a letter to Python but a separator to FTS5's unicode61 (Unicode 6.1 tables):
    # FTS5 reads the quoted word as the phrase "ab cd", which only adjacent tokens match.
    store = open_store(tmp_path / "p.db")
    adjacent = add(store, "ab cd here")
    add(store, "cd then ab")
    hits = store.search("ab\u19b0cd", None, Scope(), mode="bm25")
    assert [h.record.id for h in hits] == [adjacent.id]
    hybrid = store.search("ab\u19b0cd", fake_embed("ab cd"), Scope())
    assert [h.record.id for h in hybrid if h.bm25] == [adjacent.id]
    store.close()


def test_query_words_are_stemmed_like_fts5(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    rec = add(store, "she runs by the rivers")
    hits = store.search("running river", None, Scope(), mode="bm25")
    assert [h.record.id for h in hits] == [rec.id]
    with sqlite3.connect(store.path) as conn:
        assert _lexical.tokenize(conn, [(1, "Running Rivers café")]) == {1: ["run", "river", "cafe"]}
    store.close()


def test_selective_filter_is_evaluated_over_the_whole_scope(tmp_path: Path) -> None:
    # 300 equally scored matches: the shortlist (top 200 by score, then rowid) holds none of
    # the 5 memories the filter allows, so the filter must be evaluated over the whole scope.
    store = open_store(tmp_path / "f.db")
    store.apply(
        [
            AddOp(MemoryRecord.new(f"stone n{i}", Scope(user_id="u"), metadata={"g": i}), fake_embed("stone"))
            for i in range(300)
        ]
    )
    hits = store.search("stone", None, Scope(user_id="u"), {"g": {"gte": 295}}, limit=10, mode="bm25")
    assert sorted(h.record.metadata["g"] for h in hits) == [295, 296, 297, 298, 299]
    top = store.search("stone", None, Scope(user_id="u"), {"g": {"lt": 100}}, limit=3, mode="bm25")
    assert len(top) == 3
    assert all(h.record.metadata["g"] < 100 for h in top)
    store.close()


def test_store_from_the_first_schema_upgrades_and_follows_text_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    with monkeypatch.context() as m:
        m.setattr(_schema, "MIGRATIONS", _schema.MIGRATIONS[:1])  # a store written before 002
        m.setattr(sqlite_audit, "append", lambda conn, entries: [])  # (and before the audit trail)
        old = open_store(path)
        rec = add(old, "the river stone")
        old.close()
    with sqlite3.connect(path) as raw:
        assert [r[0] for r in raw.execute("SELECT name FROM _migrations")] == ["001_initial"]
    store = open_store(path)  # upgrades on open
    with sqlite3.connect(path) as raw:
        names = [r[0] for r in raw.execute("SELECT name FROM _migrations ORDER BY name")]
        assert names == [name for name, _ in _schema.MIGRATIONS]
        assert raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(
            len(_schema.MIGRATIONS)
        )
    assert [h.record.id for h in store.search("river", None, Scope(), mode="bm25")] == [rec.id]
    assert [h.record.id for h in store.search("river", fake_embed("river stone"), Scope())] == [rec.id]
    # A text change that bypasses the store (no new vector) still reaches the BM25 mirror.
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE memories SET memory = 'the garden wall' WHERE id = ?", (rec.id,))
    assert store.search("river", None, Scope(), mode="bm25") == []
    assert [h.record.id for h in store.search("garden", None, Scope(), mode="bm25")] == [rec.id]
    assert store.check() == []
    store.close()
