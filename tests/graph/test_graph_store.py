"""The graph's storage: beside the memories, persistent, bound to one embedder, read-only opens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from azmem.errors import EmbedderMismatchError, StoreError
from azmem.graph import Graph
from azmem.memory import Memory

from .conftest import HashEmbedder


def test_graph_and_memories_share_one_store(graph_url: str, embedder: Any) -> None:
    with Graph(store=graph_url, embedder=embedder) as graph:  # the graph first, on a fresh store
        made = graph.add_fact("Ann Lee", "LIVES_IN", "Oslo", group_id="g")
    with Memory(store_url=graph_url, embedder=embedder) as memory:
        memory.add("I like tea", user_id="ann", infer=False)
        memory.reset()  # the memories' reset leaves the graph alone
        memory.add("I like coffee", user_id="ann", infer=False)
    with Graph(store=graph_url, embedder=embedder) as graph:
        assert graph.get_fact(made.id) == made
        assert graph.store.counts(["g"]).facts == 1
    with Memory(store_url=graph_url, embedder=embedder) as memory:
        assert [m.memory for m in memory.get_all(user_id="ann").results] == ["I like coffee"]


def test_a_graph_keeps_its_embedder(graph_url: str, embedder: Any) -> None:
    with Graph(store=graph_url, embedder=embedder) as graph:
        graph.add_fact("Ann Lee", "LIVES_IN", "Oslo", group_id="g")
    with Graph(store=graph_url, embedder=HashEmbedder()) as graph, pytest.raises(EmbedderMismatchError):
        graph.search("Oslo", group_ids=["g"])


def test_a_read_only_graph_reads_and_refuses_writes(tmp_path: Path, embedder: Any) -> None:
    path = tmp_path / "memory.db"
    with Graph(store=f"sqlite:///{path}", embedder=embedder) as graph:
        graph.add_fact("Ann Lee", "LIVES_IN", "Oslo", group_id="g")
    assert path.stat().st_mode & 0o777 == 0o600  # people's lives: owner-only, like the memories
    with Graph(store=f"sqlite:///{path}?mode=ro", embedder=embedder) as graph:
        assert [h.fact.target_name for h in graph.search("Oslo", group_ids=["g"])] == ["Oslo"]
        with pytest.raises(StoreError) as caught:
            graph.add_fact("Bo Park", "LIVES_IN", "Oslo", group_id="g")
        assert caught.value.code == "store_read_only"


def test_a_foreign_sqlite_database_is_refused(tmp_path: Path, embedder: Any) -> None:
    import sqlite3

    path = tmp_path / "theirs.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    conn.close()
    with pytest.raises(StoreError, match="not an azmem store"):
        Graph(store=f"sqlite:///{path}", embedder=embedder)
