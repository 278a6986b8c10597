"""Scope isolation, as a property: no read for one user ever returns another user's memory.

Hypothesis draws memories spread over a few users (some sharing agent and run ids, some
with identical texts), a query, and hostile filters that name other users; every
search, get_all and scoped get for a user must stay inside that user.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from azmem.embeddings import LocalEmbedder
from azmem.errors import MemoryNotFoundError
from azmem.memory import Memory

USERS = ["alice", "bob", "Alice", "alice2", "b\u00f6b"]
WORDS = ["tea", "coffee", "Oslo", "dog", "piano", "nurse", "pizza", "alice", "bob", "secret"]

memories = st.lists(
    st.tuples(
        st.sampled_from(USERS),
        st.sampled_from([None, "agent-1", "agent-2"]),
        st.sampled_from([None, "run-1"]),
        st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join),
    ),
    min_size=1,
    max_size=12,
)


def hostile_filters(other: str) -> list[dict[str, Any] | None]:
    return [
        None,
        {"OR": [{"user_id": other}, {"user_id": {"ne": other}}]},
        {"$or": [{"memory": {"contains": "secret"}}, {"run_id": "run-1"}, {"NOT": {"user_id": "nobody"}}]},
    ]


@pytest.fixture(scope="module")
def shared_memory(local_embedder: LocalEmbedder, tmp_path_factory: pytest.TempPathFactory) -> Any:
    path: Path = tmp_path_factory.mktemp("isolation") / "memory.db"
    with Memory(embedder=local_embedder, store_path=path) as m:
        yield m


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=memories, query=st.sampled_from(WORDS), data=st.data())
def test_no_read_crosses_users(
    shared_memory: Memory, items: list[tuple[str, Any, Any, str]], query: str, data: Any
) -> None:
    m = shared_memory
    m.reset()
    owner: dict[str, str] = {}
    for user, agent, run, text in items:
        event = m.add(text, user_id=user, agent_id=agent, run_id=run, infer=False).results[0]
        owner[event.id] = user

    for user in USERS:
        other = data.draw(st.sampled_from([u for u in USERS if u != user]))
        mine = {i for i, u in owner.items() if u == user}
        for flt, mode in zip(hostile_filters(other), ("hybrid", "dense", "bm25"), strict=True):
            found = m.search(query, user_id=user, filters=flt, limit=50, mode=mode).results
            assert {r.user_id for r in found} <= {user}
            assert {r.id for r in found} <= mine
            listed = m.get_all(user_id=user, filters=flt, limit=1000).results
            assert {r.id for r in listed} <= mine
        assert {r.id for r in m.get_all(user_id=user, limit=1000).results} == mine
        for mid, u in owner.items():
            if u != user:
                with pytest.raises(MemoryNotFoundError):
                    m.get(mid, user_id=user)
