"""Property: whatever was stored and whatever is asked, no search, get or list in one scope
ever returns a memory from another scope, and list returns all of the scope's memories.
On both backends (one store per test, emptied by `reset` before each example)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from azmem.stores import AddOp, MemoryRecord, MemoryStore, Scope

from .store_helpers import fake_embed

USERS = ["alice", "bob", "carol"]
WORDS = ["pizza", "dog", "tea", "alps", "engineer", "rex", "olive", "park"]

memories = st.lists(
    st.tuples(
        st.sampled_from(USERS),
        st.sampled_from([None, "agent1", "agent2"]),
        st.sampled_from([None, "run1"]),
        st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join),
    ),
    min_size=1,
    max_size=25,
)
scopes = st.builds(
    Scope,
    user_id=st.sampled_from(USERS),
    agent_id=st.sampled_from([None, "agent1", "agent2"]),
    run_id=st.sampled_from([None, "run1"]),
)
# Filters that try to reach other users' memories: scope must still win.
escapes = st.sampled_from(
    [
        None,
        {"user_id": "bob"},
        {"OR": [{"user_id": {"ne": "alice"}}, {"user_id": "alice"}]},
        {"NOT": {"user_id": "alice"}},
        {"agent_id": {"in": ["agent1", "agent2"]}},
        {"user_id": {"in": USERS}},
    ]
)


def in_scope(record: MemoryRecord, scope: Scope) -> bool:
    return all(getattr(record, k) == v for k, v in scope.as_dict().items())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    stored=memories,
    scope=scopes,
    query=st.lists(st.sampled_from([*WORDS, "?", "NEAR", '"']), max_size=3).map(" ".join),
    mode=st.sampled_from(["hybrid", "dense", "bm25"]),
    filters=escapes,
)
def test_no_read_crosses_scope(
    store: MemoryStore,
    stored: list[tuple[str, str | None, str | None, str]],
    scope: Scope,
    query: str,
    mode: Any,
    filters: dict[str, Any] | None,
) -> None:
    store.reset()
    records = [MemoryRecord.new(text, Scope(u, a, r)) for u, a, r, text in stored]
    store.apply([AddOp(rec, fake_embed(rec.memory)) for rec in records])
    expected = {r.id for r in records if in_scope(r, scope)}

    hits = store.search(query, fake_embed(query or "x"), scope, filters, limit=50, mode=mode)
    assert all(in_scope(h.record, scope) for h in hits)
    assert {h.record.id for h in hits} <= expected

    listed: list[MemoryRecord] = []
    cursor = None
    while True:
        page = store.list(scope, filters, limit=3, cursor=cursor)
        listed += page.records
        if (cursor := page.next_cursor) is None:
            break
    assert all(in_scope(r, scope) for r in listed)
    if filters is None:
        assert {r.id for r in listed} == expected
        assert store.count(scope) == len(expected)
        if mode == "dense":  # every in-scope memory is reachable by search too
            assert {h.record.id for h in hits} == expected

    for r in records:
        got = store.get(r.id, scope)
        assert (got is not None) == (r.id in expected)
