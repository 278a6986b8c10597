"""Erasure reaches the graph: `Graph.forget` and `azmem forget --user U` (graph group U) leave no trace."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from azmem.cli import app
from azmem.embeddings import LocalEmbedder
from azmem.emulator import Emulator
from azmem.graph import Graph
from azmem.memory import Memory

from .conftest import Clock, azure_config
from .graph_script import ScriptedModel, entity, fact

JAN = datetime(2024, 1, 1, tzinfo=UTC)
EPISODE = "Alice Quorvath hid her xylophone in Zanzibar; passport QX7741902."
SECRETS = ["Quorvath", "quorvath", "xylophone", "xylophon", "Zanzibar", "zanzibar", "QX7741902", "qx7741902"]


def _alice_and_bob(graph: Graph, model: ScriptedModel) -> None:
    model.on(
        "hid her xylophone",
        [
            entity("Alice Quorvath", "Person", aliases=["Ali"], summary="Keeps a xylophone in Zanzibar."),
            entity("Zanzibar", "Place"),
        ],
        [
            fact(
                "Alice Quorvath",
                "KEEPS_XYLOPHONE_IN",
                "Zanzibar",
                "Alice Quorvath keeps a xylophone in Zanzibar.",
            )
        ],
    )
    graph.add_episode(EPISODE, group_id="alice", reference_time=JAN)
    graph.add_fact("Alice Quorvath", "HAS_PASSPORT", "QX7741902", group_id="alice")
    graph.add_fact("Bob Stone", "COLLECTS", "quokkamugs", group_id="bob")
    # the process's mirrors (vector blocks, BM25 postings) hold Alice's text before the erasure
    assert graph.search("xylophone Zanzibar", group_ids=["alice"])
    assert graph.search("quokkamugs", group_ids=["bob"])


def test_graph_forget_erases_a_group_and_never_reuses_its_versions(
    graph: Graph, model: ScriptedModel, graph_url: str, embedder: LocalEmbedder
) -> None:
    _alice_and_bob(graph, model)
    before = graph.store.group_version("alice")
    with Graph(store=graph_url, embedder=embedder) as other:  # another process's view, mirrors built
        assert other.search("xylophone Zanzibar", group_ids=["alice"])
        erased = graph.forget("alice")
        assert (erased.episodes, erased.entities, erased.facts) == (1, 3, 2)
        assert graph.store.group_version("alice") == 0  # the version row (the user's id) is gone
        assert graph.counts(["alice"]).model_dump() == {"episodes": 0, "entities": 0, "facts": 0}
        assert other.search("xylophone Zanzibar passport", group_ids=["alice"]) == []
        assert graph.search("xylophone Zanzibar passport", group_ids=["alice"]) == []
        assert [h.fact.target_name for h in other.search("quokkamugs", group_ids=["bob"])] == ["quokkamugs"]
        # written again: a version above any the forgotten group had, so no cached block is reused
        graph.add_fact("Alice Quorvath", "LIVES_IN", "Oslo", group_id="alice")
        assert graph.store.group_version("alice") > before
        assert [h.fact.target_name for h in other.search("Alice Oslo Zanzibar", group_ids=["alice"])] == [
            "Oslo"
        ]


def test_azmem_forget_leaves_no_byte_of_the_users_graph_in_the_file(
    tmp_path: Path, emulator: Emulator, model: ScriptedModel, embedder: LocalEmbedder
) -> None:
    path = tmp_path / "memory.db"
    with Memory(embedder=embedder, store_path=path) as memory:
        memory.add("Alice keeps a xylophone", user_id="alice", infer=False)
        memory.add("Bob likes tea", user_id="bob", infer=False)
    with Graph(
        config=azure_config(emulator), embedder=embedder, store=f"sqlite:///{path}", clock=Clock()
    ) as g:
        _alice_and_bob(g, model)
        assert b"Zanzibar" in path.read_bytes() + path.with_name(path.name + "-wal").read_bytes()
        result = CliRunner().invoke(
            app, ["forget", "--user", "alice", "--yes", "--json", "--store", str(path)]
        )
        assert result.exit_code == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["graph"] == {"episodes": 1, "entities": 3, "facts": 2, "compacted": True}
        assert report["memories"] == 1
        data = path.read_bytes() + (
            path.with_name(path.name + "-wal").read_bytes()
            if path.with_name(path.name + "-wal").exists()
            else b""
        )
        assert [s for s in SECRETS if s.encode() in data] == []
        assert b"quokkamugs" in data  # the scan does see text: Bob's graph is still there
        with sqlite3.connect(path) as conn:  # nor the group id (the user's id) in the version row
            assert conn.execute("SELECT group_id FROM graph_groups").fetchall() == [("bob",)]
        conn.close()
        assert g.search("xylophone Zanzibar", group_ids=["alice"]) == []


def test_forget_of_an_agent_scope_or_a_file_without_graph_leaves_the_graph_alone(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    path = tmp_path / "memory.db"
    with Memory(embedder=embedder, store_path=path) as memory:
        memory.add("Alice keeps a xylophone", user_id="alice", infer=False)
    result = CliRunner().invoke(app, ["forget", "--user", "alice", "--yes", "--json", "--store", str(path)])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["graph"] is None
    with sqlite3.connect(path) as conn:  # no graph tables were made to erase nothing
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name LIKE 'graph_%'").fetchone() == (0,)
    conn.close()
    with Graph(store=f"sqlite:///{path}", embedder=embedder) as graph:
        graph.add_fact("Alice Quorvath", "LIVES_IN", "Oslo", group_id="alice")
    result = CliRunner().invoke(
        app, ["forget", "--user", "alice", "--agent", "a1", "--yes", "--json", "--store", str(path)]
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["graph"] is None
    with Graph(store=f"sqlite:///{path}", embedder=embedder) as graph:
        assert graph.counts(["alice"]).facts == 1


@pytest.mark.parametrize("graph_url", ["postgres"], indirect=True)
def test_graph_forget_on_postgres_leaves_no_row_with_the_text(
    graph: Graph, model: ScriptedModel, graph_url: str
) -> None:
    import psycopg

    _alice_and_bob(graph, model)
    assert graph.forget("alice").compacted
    tables = [
        "azmem_graph_episodes", "azmem_graph_entities", "azmem_graph_facts", "azmem_graph_entity_names",
        "azmem_graph_groups", "azmem_graph_fact_episodes", "azmem_graph_mentions",
    ]  # fmt: skip
    with psycopg.connect(graph_url) as conn:
        text = " ".join(str(conn.execute(f"SELECT * FROM {t}").fetchall()) for t in tables)
    assert [s for s in SECRETS if s in text] == []
    assert "'alice'" not in text
    assert "quokkamugs" in text


def test_forget_scrubs_the_graphs_cached_llm_answers(
    tmp_path: Path, emulator: Emulator, model: ScriptedModel, embedder: LocalEmbedder
) -> None:
    cache = tmp_path / "cache.db"
    config = {
        **azure_config(emulator),
        "cache": {"enabled": True, "path": cache, "cache_sampled": True},
        "store": {"path": tmp_path / "memory.db"},
    }
    with Graph(config=config, embedder=embedder, clock=Clock()) as graph:
        _alice_and_bob(graph, model)
    assert b"Zanzibar" in cache.read_bytes()
    with Memory(config=config, embedder=embedder) as memory:  # answers tagged user_id=<group>
        assert memory.forget(user_id="alice").cache_entries >= 1
    data = cache.read_bytes() + (
        cache.with_name("cache.db-wal").read_bytes() if cache.with_name("cache.db-wal").exists() else b""
    )
    assert [s for s in SECRETS if s.encode() in data] == []


def test_forget_refuses_bad_input_with_typed_errors(tmp_path: Path) -> None:
    from azmem.errors import InvalidInputError, StoreError

    from .conftest import HashEmbedder

    url = f"sqlite:///{tmp_path / 'memory.db'}"
    with Graph(store=url, embedder=HashEmbedder()) as graph:
        graph.add_fact("Ann Lee", "LIVES_IN", "Oslo", group_id="ann")
        with pytest.raises(InvalidInputError):
            graph.forget("")
        with pytest.raises(InvalidInputError, match="compact"):
            graph.forget("ann", compact="yes")  # type: ignore[arg-type]
        assert graph.counts(["ann"]).facts == 1
        assert graph.forget("nobody").model_dump() == {
            "episodes": 0, "entities": 0, "facts": 0, "compacted": True,
        }  # fmt: skip
    with Graph(store=f"{url}?mode=ro", embedder=HashEmbedder()) as graph, pytest.raises(StoreError) as caught:
        graph.forget("ann")
    assert caught.value.code == "store_read_only"


def test_async_graph_forget(tmp_path: Path) -> None:
    import asyncio

    from azmem.graph import AsyncGraph

    from .conftest import HashEmbedder

    async def run() -> tuple[int, int]:
        async with AsyncGraph(store=f"sqlite:///{tmp_path / 'memory.db'}", embedder=HashEmbedder()) as graph:
            await graph.add_fact("Ann Lee", "LIVES_IN", "Zanzibar", group_id="ann")
            erased = await graph.forget("ann")
            return erased.facts, (await graph.counts(["ann"])).facts

    assert asyncio.run(run()) == (1, 0)
