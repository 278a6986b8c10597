"""The temporal knowledge graph on the server: /v1/graph and the graph MCP tools, with the emulator.

Extraction is answered by the graph suite's rule-based `ScriptedModel`, so these tests
check what the server adds (group = the key's user, writes need a writable key, chat
needed for episodes only, 404 outside the key's groups), not the engine again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mcp import Client
from mcp_types import CallToolResult

from azmem.azure.settings import AzmemSettings
from azmem.emulator import Emulator
from azmem.server import ServerConfig
from graph.graph_script import ScriptedModel, entity, fact

from .conftest import CHAT, SMALL, Harness, chat_config, harness_for, settings_for
from .test_rest import assert_problem

JAN, MAR = "2024-01-10T09:00:00Z", "2024-03-05T09:00:00Z"


def _jobs(model: ScriptedModel) -> None:
    model.on(
        "joined Acme",
        [entity("Dana Kim"), entity("Acme")],
        [fact("Dana Kim", "WORKS_AT", "Acme", "Dana Kim works at Acme.")],
    )
    model.on(
        "moved to Globex",
        [entity("Dana Kim"), entity("Globex")],
        [fact("Dana Kim", "WORKS_AT", "Globex", "Dana Kim works at Globex.")],
    )


@pytest.fixture
def model(emulator: Emulator) -> ScriptedModel:
    scripted = ScriptedModel()
    _jobs(scripted)
    emulator.script(CHAT, scripted)
    emulator.script(SMALL, scripted)
    return scripted


def _settings(path: Path, emulator: Emulator) -> AzmemSettings:
    return settings_for(path, **chat_config(emulator))


@pytest.fixture
async def chat_harness(tmp_path: Path, emulator: Emulator, model: ScriptedModel) -> AsyncIterator[Harness]:
    async with harness_for(tmp_path / "memory.db", settings=_settings(tmp_path / "memory.db", emulator)) as h:
        yield h


async def test_episodes_facts_and_time_through_rest(chat_harness: Harness, model: ScriptedModel) -> None:
    c, h = chat_harness.client, chat_harness.auth("alice")
    r = await c.post(
        "/v1/graph/episodes", json={"content": "Dana Kim joined Acme.", "reference_time": JAN}, headers=h
    )
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["episode"]["group_id"] == "alice"  # the key's user is the default group
    assert first["llm_calls"] == 1
    assert [e["name"] for e in first["entities_added"]] == ["Dana Kim", "Acme"]
    acme = first["facts_added"][0]

    r = await c.post(
        "/v1/graph/episodes",
        json={"content": "Dana Kim moved to Globex.", "reference_time": MAR, "group_id": "alice"},
        headers=h,
    )
    moved = r.json()
    assert [f["id"] for f in moved["facts_invalidated"]] == [acme["id"]]  # ended, not deleted
    assert model.calls == ["extract", "extract", "resolve"]

    now = (await c.post("/v1/graph/search", json={"query": "where does Dana work?"}, headers=h)).json()
    assert now["results"][0]["fact"]["fact"] == "Dana Kim works at Globex."
    then = await c.post(
        "/v1/graph/search",
        json={"query": "where does Dana work?", "as_of": "2024-02-01T00:00:00Z"},
        headers=h,
    )
    assert [hit["fact"]["id"] for hit in then.json()["results"]] == [acme["id"]]

    episodes = (await c.get("/v1/graph/episodes", headers=h)).json()["results"]
    assert [e["content"] for e in episodes] == ["Dana Kim joined Acme.", "Dana Kim moved to Globex."]
    found = (await c.post("/v1/graph/entities/search", json={"query": "Dana"}, headers=h)).json()
    dana = found["results"][0]["entity"]
    assert dana["name"] == "Dana Kim"
    assert (await c.get(f"/v1/graph/entities/{dana['id']}", headers=h)).json() == dana
    timeline = (await c.get(f"/v1/graph/entities/{dana['id']}/timeline", headers=h)).json()["results"]
    assert [f["target_name"] for f in timeline] == ["Acme", "Globex"]
    history = await c.get("/v1/graph/facts", params={"include_invalid": "true"}, headers=h)
    assert len(history.json()["results"]) == 2
    current = (await c.get("/v1/graph/facts", headers=h)).json()["results"]
    assert [f["target_name"] for f in current] == ["Globex"]

    # A triplet needs no LLM; a fact can be read and deleted by id.
    calls = len(model.calls)
    r = await c.post(
        "/v1/graph/facts", json={"source": "Dana Kim", "relation": "LIVES_IN", "target": "Porto"}, headers=h
    )
    assert r.status_code == 200, r.text
    lives = r.json()
    assert len(model.calls) == calls
    assert (await c.get(f"/v1/graph/facts/{lives['id']}", headers=h)).json()["fact"] == lives["fact"]
    assert (await c.delete(f"/v1/graph/facts/{lives['id']}", headers=h)).json() == {
        "id": lives["id"],
        "deleted": True,
    }
    assert_problem(await c.get(f"/v1/graph/facts/{lives['id']}", headers=h), 404, "graph_item_not_found")

    exported = await c.get("/v1/graph/export", params={"format": "graphml"}, headers=h)
    assert exported.headers["content-type"].startswith("application/graphml+xml")
    assert "Dana Kim" in exported.text
    assert (await c.get("/v1/graph/export", headers=h)).json()["episodes"]

    # Deleting the second episode restores the fact it had ended.
    r = await c.delete(f"/v1/graph/episodes/{moved['episode']['id']}", headers=h)
    assert r.json()["facts_restored"] == [acme["id"]]
    assert_problem(await c.delete("/v1/graph", headers=h), 422, "missing_scope")  # clearing names its group
    counts = (await c.delete("/v1/graph", params={"group_id": "alice"}, headers=h)).json()
    assert counts == {"episodes": 1, "entities": 3, "facts": 1}  # Porto stays: no episode supported it
    assert (await c.get("/v1/graph/episodes", headers=h)).json() == {"results": []}


async def test_groups_follow_the_keys_users(chat_harness: Harness) -> None:
    c = chat_harness.client
    admin, team = chat_harness.auth("admin"), chat_harness.auth("team")
    body = {"source": "Carol", "relation": "PLAYS", "target": "Cello"}
    # An --all-scopes key names the group; a key for two users names one of them to write.
    assert_problem(await c.post("/v1/graph/facts", json=body, headers=admin), 422, "missing_scope")
    r = await c.post("/v1/graph/facts", json=body, headers=team)
    assert "carol" in str(assert_problem(r, 422, "missing_scope")["suggestion"])
    r = await c.post("/v1/graph/facts", json={**body, "group_id": "carol"}, headers=team)
    carol_fact = r.json()
    assert carol_fact["group_id"] == "carol"
    # Reads default to every group of the key; each named group must be one of them.
    facts = (await c.get("/v1/graph/facts", headers=team)).json()["results"]
    assert [f["id"] for f in facts] == [carol_fact["id"]]
    assert_problem(await c.get("/v1/graph/facts", headers=admin), 422, "missing_scope")
    r = await c.get("/v1/graph/facts", params={"group_id": ["alice", "bob"]}, headers=team)
    assert_problem(r, 403, "scope_denied")
    # Alice's key does not see carol's fact, nor walk from carol's entity.
    alice = chat_harness.auth("alice")
    assert_problem(
        await c.get(f"/v1/graph/facts/{carol_fact['id']}", headers=alice), 404, "graph_item_not_found"
    )
    r = await c.post(
        "/v1/graph/search", json={"query": "cello", "center_entity": carol_fact["source_id"]}, headers=alice
    )
    assert_problem(r, 404, "graph_item_not_found")
    # A key bound to an agent reaches no group: a group is a whole user's graph.
    body = assert_problem(
        await c.get("/v1/graph/facts", headers=chat_harness.auth("bot")), 403, "scope_denied"
    )
    assert "group_id = user id" in str(body["suggestion"])
    # Naive times are refused with the field at fault (a graph time has a zone).
    r = await c.post(
        "/v1/graph/episodes", json={"content": "x", "reference_time": "2024-01-01T00:00"}, headers=alice
    )
    assert_problem(r, 422, "invalid_request")


async def test_without_a_chat_deployment_only_episodes_are_refused(tmp_path: Path) -> None:
    async with harness_for(tmp_path / "memory.db") as hs:
        c, h = hs.client, hs.auth("alice")
        body = assert_problem(
            await c.post("/v1/graph/episodes", json={"content": "Dana joined Acme."}, headers=h),
            503,
            "no_chat_deployment",
        )
        assert "/v1/graph/facts" in str(body["suggestion"])
        assert body["retryable"] is False
        r = await c.post(
            "/v1/graph/facts", json={"source": "Dana", "relation": "LIKES", "target": "Tea"}, headers=h
        )
        assert r.status_code == 200, r.text
        hits = (await c.post("/v1/graph/search", json={"query": "tea"}, headers=h)).json()["results"]
        assert [hit["fact"]["target_name"] for hit in hits] == ["Tea"]
        assert (await c.get("/v1/graph/episodes", headers=h)).json() == {"results": []}
        await hs.add("Dana likes green tea", key="alice")
        found = (await c.post("/v1/search", json={"query": "tea"}, headers=h)).json()["results"]
        assert [m["memory"] for m in found] == ["Dana likes green tea"]
        # A read-only key is refused before the missing deployment matters.
        r = await c.post("/v1/graph/episodes", json={"content": "x"}, headers=hs.auth("alice-ro"))
        assert_problem(r, 403, "read_only_key")


# -- MCP ---------------------------------------------------------------------------------------------


def _text(result: CallToolResult) -> str:
    assert result.is_error, result.structured_content
    return "\n".join(getattr(block, "text", "") for block in result.content)


async def test_graph_tools_for_the_servers_user(
    tmp_path: Path, emulator: Emulator, model: ScriptedModel
) -> None:
    config = ServerConfig(auth=False, user_ids=("alex",))
    settings = _settings(tmp_path / "m.db", emulator)
    async with harness_for(tmp_path / "m.db", config, settings) as h, Client(h.app.state.mcp) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert tools["search_facts"].annotations.read_only_hint is True  # type: ignore[union-attr]
        assert tools["clear_graph"].annotations.destructive_hint is True  # type: ignore[union-attr]
        added = await client.call_tool(
            "add_episode", {"content": "Dana Kim joined Acme.", "reference_time": JAN}
        )
        assert not added.is_error, added.content
        result = added.structured_content
        assert result["episode"]["group_id"] == "alex"  # type: ignore[index]
        fact_id = result["facts_added"][0]["id"]  # type: ignore[index]
        hits = (await client.call_tool("search_facts", {"query": "Dana's employer"})).structured_content
        assert hits["results"][0]["fact"]["id"] == fact_id  # type: ignore[index]
        people = (await client.call_tool("search_entities", {"query": "Dana"})).structured_content
        assert people["results"][0]["entity"]["name"] == "Dana Kim"  # type: ignore[index]
        episodes = (await client.call_tool("get_episodes", {})).structured_content
        assert [e["id"] for e in episodes["results"]] == [result["episode"]["id"]]  # type: ignore[index]
        got = (await client.call_tool("get_fact", {"fact_id": fact_id})).structured_content
        assert got["fact"] == "Dana Kim works at Acme."  # type: ignore[index]
        triplet = await client.call_tool(
            "add_triplet", {"source": "Dana Kim", "relation": "LIVES_IN", "target": "Porto"}
        )
        porto = triplet.structured_content["id"]  # type: ignore[index]
        gone = (await client.call_tool("delete_fact", {"fact_id": porto})).structured_content
        assert gone == {"id": porto, "deleted": True}
        assert "graph_item_not_found" in _text(await client.call_tool("get_fact", {"fact_id": porto}))
        deleted = await client.call_tool("delete_episode", {"episode_id": result["episode"]["id"]})  # type: ignore[index]
        assert deleted.structured_content["facts_deleted"] == [fact_id]  # type: ignore[index]
        assert "missing_scope" in _text(await client.call_tool("clear_graph", {}))
        cleared = (await client.call_tool("clear_graph", {"group_id": "alex"})).structured_content
        assert cleared == {"episodes": 0, "entities": 1, "facts": 0}  # Porto, which no episode named
        # Another user's group is refused, on reads and writes alike.
        denied = _text(await client.call_tool("search_facts", {"query": "x", "group_ids": ["bob"]}))
        assert "scope_denied" in denied
        assert "403" in denied
        assert "scope_denied" in _text(
            await client.call_tool("add_episode", {"content": "x", "group_id": "bob"})
        )


async def test_add_episode_tool_without_chat_says_so(tmp_path: Path) -> None:
    config = ServerConfig(auth=False, user_ids=("alex",))
    async with harness_for(tmp_path / "m.db", config) as h, Client(h.app.state.mcp) as client:
        text = _text(await client.call_tool("add_episode", {"content": "Dana joined Acme."}))
        assert "no_chat_deployment" in text
        assert "Suggestion" in text
        added = await client.call_tool(
            "add_triplet", {"source": "Dana", "relation": "LIKES", "target": "Tea"}
        )
        assert not added.is_error, added.content
        hits = (await client.call_tool("search_facts", {"query": "tea"})).structured_content
        assert len(hits["results"]) == 1  # type: ignore[index]


async def test_graph_routes_on_a_postgresql_store(pg_url: str, tmp_path: Path) -> None:
    """The graph's tables beside the memories in PostgreSQL; by-id checks read through its pool."""
    async with harness_for(
        tmp_path / "unused.db", settings=AzmemSettings.load(None, store={"url": pg_url})
    ) as hs:
        c, h = hs.client, hs.auth("alice")
        r = await c.post(
            "/v1/graph/facts", json={"source": "Alice", "relation": "KEEPS", "target": "Bees"}, headers=h
        )
        assert r.status_code == 200, r.text
        bees = r.json()
        hits = (await c.post("/v1/graph/search", json={"query": "bees"}, headers=h)).json()["results"]
        assert [hit["fact"]["id"] for hit in hits] == [bees["id"]]
        team = await c.get(f"/v1/graph/facts/{bees['id']}", headers=hs.auth("team"))
        assert team.json()["group_id"] == "alice"  # a key for alice and carol reaches alice's group
        r = await c.get(f"/v1/graph/facts/{bees['id']}", headers=hs.auth("bot"))
        assert_problem(r, 403, "scope_denied")
        r = await c.delete("/v1/graph/episodes/no-such-episode", headers=h)
        assert_problem(r, 404, "graph_item_not_found")
        assert (await c.get("/v1/status", headers=h)).json()["backend"] == "postgres"
