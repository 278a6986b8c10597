"""Metadata filters through the Memory API (the language itself is tested with the store)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from azmem.embeddings import LocalEmbedder
from azmem.memory import Memory


@pytest.fixture(scope="module")
def catalogue(local_embedder: LocalEmbedder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Memory]:
    memory = Memory(embedder=local_embedder, store_path=tmp_path_factory.mktemp("filters") / "memory.db")
    rows = [
        ("I ran 5 km on Monday", {"kind": "sport", "km": 5, "tags": ["run", "outdoor"], "day": "2024-05-06"}),
        ("I ran 12 km on Saturday", {"kind": "sport", "km": 12, "tags": ["run"], "day": "2024-05-11"}),
        ("I swam 1 km", {"kind": "sport", "km": 1, "tags": ["swim"], "day": "2024-05-08"}),
        ("I cooked a mushroom risotto", {"kind": "food", "tags": ["cooking"], "day": "2024-05-09"}),
        ("I read a novel about running", {"kind": "book", "day": "2024-05-10"}),
    ]
    for text, md in rows:
        memory.add(text, user_id="f", metadata=md)
    memory.add("I ran 42 km (someone else)", user_id="other", metadata={"kind": "sport", "km": 42})
    with memory:
        yield memory


CASES: list[tuple[dict[str, Any], set[str]]] = [
    ({"kind": "sport"}, {"I ran 5 km on Monday", "I ran 12 km on Saturday", "I swam 1 km"}),
    ({"kind": {"ne": "sport"}}, {"I cooked a mushroom risotto", "I read a novel about running"}),
    ({"kind": {"in": ["food", "book"]}}, {"I cooked a mushroom risotto", "I read a novel about running"}),
    ({"kind": {"nin": ["sport", "food"]}}, {"I read a novel about running"}),
    ({"km": {"gt": 1}}, {"I ran 5 km on Monday", "I ran 12 km on Saturday"}),
    ({"km": {"gte": 5, "lt": 12}}, {"I ran 5 km on Monday"}),
    ({"km": {"lte": 5}}, {"I ran 5 km on Monday", "I swam 1 km"}),
    ({"tags": {"contains": "run"}}, {"I ran 5 km on Monday", "I ran 12 km on Saturday"}),
    (
        {"day": {"gte": "2024-05-09"}},
        {"I ran 12 km on Saturday", "I cooked a mushroom risotto", "I read a novel about running"},
    ),
    ({"AND": [{"kind": "sport"}, {"NOT": {"tags": {"contains": "run"}}}]}, {"I swam 1 km"}),
    (
        {"OR": [{"kind": "food"}, {"km": {"gt": 10}}]},
        {"I cooked a mushroom risotto", "I ran 12 km on Saturday"},
    ),
    (
        {"$or": [{"kind": "book"}, {"km": {"$lt": 2}}]},
        {"I read a novel about running", "I swam 1 km"},
    ),
]


@pytest.mark.parametrize(("flt", "expected"), CASES, ids=[str(c[0]) for c in CASES])
def test_filters_on_search_and_get_all(catalogue: Memory, flt: dict[str, Any], expected: set[str]) -> None:
    listed = {i.memory for i in catalogue.get_all(user_id="f", filters=flt).results}
    assert listed == expected
    searched = {i.memory for i in catalogue.search("running", user_id="f", filters=flt, limit=20).results}
    assert searched <= expected
    assert searched  # filtered before ranking: every matching memory is a candidate


def test_filter_on_role_from_verbatim_messages(memory: Memory) -> None:
    memory.add(
        [{"role": "user", "content": "I love tea"}, {"role": "assistant", "content": "Tea is great"}],
        user_id="r",
    )
    found = memory.search("tea", user_id="r", filters={"role": "assistant"})
    assert [i.memory for i in found.results] == ["Tea is great"]
