"""Erasure over the server: ``POST /v1/forget`` and the MCP ``forget`` tool, with the real app and store.

What ``azmem forget`` does on the machine, checked through HTTP: the scope's memories and
history go (and, for a user alone, the user's graph group), who may ask (writable keys,
inside their binding), the refusals every route gives, and the audit record without text.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from typer.testing import CliRunner

from azmem.cli import app as cli
from azmem.embeddings import LocalEmbedder
from azmem.graph import Graph
from azmem.memory import Memory
from azmem.server import ServerConfig
from azmem.stores import SQLiteStore, open_store
from azmem.stores.audit_log import AuditQuery

from .conftest import Harness, harness_for, settings_for
from .test_rest import assert_problem

SECRETS = ["xylophone", "Zanzibar", "zanzibar", "Quorvath", "quorvath", "QX7741902", "qx7741902"]
ALICE_GRAPH = {"episodes": 0, "entities": 2, "facts": 1, "compacted": True}


def _file_bytes(path: Path) -> bytes:
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def _seed(path: Path) -> None:
    """Alice's and Bob's memories and graph groups, written with the library before a server opens it."""
    embedder = LocalEmbedder()
    with Memory(embedder=embedder, store_path=path) as memory:
        first = memory.add("Alice hides her xylophone in Zanzibar", user_id="alice", infer=False)
        memory.update(first.results[0].id, "Alice moved the xylophone to Quorvath")
        memory.add("Alice's passport is QX7741902", user_id="alice", infer=False)
        memory.add("Bob collects quokkamugs", user_id="bob", infer=False)
    with Graph(store=f"sqlite:///{path}", embedder=embedder) as graph:
        graph.add_fact("Alice Quorvath", "HAS_PASSPORT", "QX7741902", group_id="alice")
        graph.add_fact("Bob Stone", "COLLECTS", "quokkamugs", group_id="bob")


async def _memories(h: Harness, **scope: str) -> list[str]:
    r = await h.client.get("/v1/memories", params=scope, headers=h.auth("admin"))
    assert r.status_code == 200, r.text
    return [m["memory"] for m in r.json()["results"]]


async def _facts(h: Harness, group: str) -> list[str]:
    r = await h.client.get("/v1/graph/facts", params={"group_id": group}, headers=h.auth("admin"))
    assert r.status_code == 200, r.text
    return [f["target_name"] for f in r.json()["results"]]


async def _add_fact(h: Harness, group: str, target: str) -> None:
    r = await h.client.post(
        "/v1/graph/facts",
        json={"source": "Someone", "relation": "LIKES", "target": target, "group_id": group},
        headers=h.auth("admin"),
    )
    assert r.status_code == 200, r.text


async def test_a_users_memories_history_and_graph_group_go_and_no_byte_is_left(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    _seed(path)
    async with harness_for(path) as h:
        c = h.client
        mid = (await c.get("/v1/memories", headers=h.auth("alice"))).json()["results"][-1]["id"]
        history = await c.get(f"/v1/memories/{mid}/history", headers=h.auth("admin"))
        assert [e["event"] for e in history.json()["results"]] == ["ADD", "UPDATE"]
        assert await _facts(h, "alice") == ["QX7741902"]

        r = await c.post("/v1/forget", json={"user_id": "alice"}, headers=h.auth("alice"))
        assert r.status_code == 200, r.text
        assert r.json() == {
            "scope": {"user_id": "alice"},
            "memories": 2,
            "history": 3,
            "audit_content": 0,
            "cache_entries": 0,
            "compacted": True,
            "graph": ALICE_GRAPH,
        }
        assert await _memories(h, user_id="alice") == []
        history = await c.get(f"/v1/memories/{mid}/history", headers=h.auth("admin"))
        assert history.json()["results"] == []  # deleted memories' history is gone too
        hits = await c.post("/v1/search", json={"query": "xylophone passport"}, headers=h.auth("alice"))
        assert hits.json()["results"] == []
        assert await _facts(h, "alice") == []
        assert await _memories(h, user_id="bob") == ["Bob collects quokkamugs"]
        assert await _facts(h, "bob") == ["quokkamugs"]
    data = _file_bytes(path)
    assert [s for s in SECRETS if s.encode() in data] == []
    assert b"quokkamugs" in data  # the scan does see text: Bob's is still there


async def test_the_answer_is_what_azmem_forget_json_prints(tmp_path: Path) -> None:
    served, local = tmp_path / "served.db", tmp_path / "local.db"
    _seed(served)
    shutil.copy(served, local)
    async with harness_for(served) as h:
        r = await h.client.post("/v1/forget", json={"user_id": "alice"}, headers=h.auth("admin"))
        assert r.status_code == 200, r.text
    printed = CliRunner().invoke(cli, ["forget", "--user", "alice", "--yes", "--json", "--store", str(local)])
    assert printed.exit_code == 0, printed.stderr
    assert json.loads(printed.stdout) == r.json()
    assert r.json()["graph"] == ALICE_GRAPH


async def test_agent_and_run_scopes_leave_the_graph_alone(harness: Harness) -> None:
    h = harness
    await _add_fact(h, "alice", "tea")  # the server's graph is open from here on
    await h.add("alice's agent note", user_id="alice", agent_id="a1")
    await h.add("alice's run note", user_id="alice", run_id="r1")
    await h.add("alice's own note", user_id="alice")

    r = await h.client.post(
        "/v1/forget", json={"user_id": "alice", "agent_id": "a1"}, headers=h.auth("admin")
    )
    assert (r.json()["scope"], r.json()["memories"], r.json()["graph"]) == (
        {"user_id": "alice", "agent_id": "a1"},
        1,
        None,
    )
    r = await h.client.post("/v1/forget", json={"run_id": "r1"}, headers=h.auth("admin"))
    assert (r.json()["scope"], r.json()["memories"], r.json()["graph"]) == ({"run_id": "r1"}, 1, None)
    assert await _facts(h, "alice") == ["tea"]
    assert await _memories(h, user_id="alice") == ["alice's own note"]

    r = await h.client.post("/v1/forget", json={"user_id": "alice"}, headers=h.auth("admin"))
    assert r.json()["memories"] == 1
    assert r.json()["graph"] == {"episodes": 0, "entities": 2, "facts": 1, "compacted": True}
    assert await _facts(h, "alice") == []


async def test_a_store_without_a_graph_gets_none_and_no_graph_tables(
    harness: Harness, tmp_path: Path
) -> None:
    await harness.add("alice keeps bees", user_id="alice")
    r = await harness.client.post("/v1/forget", json={"user_id": "alice"}, headers=harness.auth("admin"))
    assert r.status_code == 200, r.text
    assert (r.json()["memories"], r.json()["graph"]) == (1, None)
    conn = sqlite3.connect(f"{(tmp_path / 'memory.db').as_uri()}?mode=ro", uri=True)
    try:  # nothing was created only to erase nothing in it
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name LIKE 'graph_%'").fetchone() == (0,)
    finally:
        conn.close()


async def test_a_read_only_key_is_refused_and_nothing_goes(harness: Harness) -> None:
    h = harness
    await h.add("alice keeps bees", key="alice")
    await _add_fact(h, "alice", "bees")
    r = await h.client.post("/v1/forget", json={"user_id": "alice"}, headers=h.auth("alice-ro"))
    assert_problem(r, 403, "read_only_key")
    assert await _memories(h, user_id="alice") == ["alice keeps bees"]
    assert await _facts(h, "alice") == ["bees"]


async def test_a_key_bound_to_another_user_is_refused_as_every_route_refuses(harness: Harness) -> None:
    h = harness
    await h.add("bob keeps goats", user_id="bob")
    await _add_fact(h, "bob", "goats")
    for key in ("alice", "team"):
        r = await h.client.post("/v1/forget", json={"user_id": "bob"}, headers=h.auth(key))
        body = assert_problem(r, 403, "scope_denied")
        listed = await h.client.get("/v1/memories", params={"user_id": "bob"}, headers=h.auth(key))
        assert body["detail"] == assert_problem(listed, 403, "scope_denied")["detail"]
    r = await h.client.post(
        "/v1/forget", json={"user_id": "alice", "agent_id": "bot"}, headers=h.auth("alice-ro")
    )
    assert_problem(r, 403, "read_only_key")  # read-only is refused before the scope is even looked at
    assert await _memories(h, user_id="bob") == ["bob keeps goats"]
    assert await _facts(h, "bob") == ["goats"]


async def test_a_bound_key_erases_only_inside_its_binding(harness: Harness) -> None:
    """A key bound to agent ``bot`` asking for user alice erases alice's memories with bot, no more."""
    h = harness
    await h.add("alice told bot a secret", user_id="alice", agent_id="bot")
    await h.add("alice's own note", user_id="alice")
    await _add_fact(h, "alice", "tea")
    r = await h.client.post("/v1/forget", json={"user_id": "alice"}, headers=h.auth("bot"))
    assert r.status_code == 200, r.text
    assert (r.json()["scope"], r.json()["memories"], r.json()["graph"]) == (
        {"user_id": "alice", "agent_id": "bot"},
        1,
        None,
    )
    assert await _memories(h, user_id="alice") == ["alice's own note"]
    assert await _facts(h, "alice") == ["tea"]


async def test_a_scope_must_be_named_and_valid(harness: Harness) -> None:
    h = harness
    await h.add("alice keeps bees", key="alice")
    for key in ("admin", "alice"):  # no default applies, even for a key bound to one user
        body = assert_problem(
            await h.client.post("/v1/forget", json={}, headers=h.auth(key)), 422, "missing_scope"
        )
        assert "Erasing" in str(body["detail"])
    r = await h.client.post("/v1/forget", json={"agent_id": "x"}, headers=h.auth("team"))
    assert_problem(r, 422, "missing_scope")  # which of its two users?
    assert_problem(await h.client.post("/v1/forget", headers=h.auth("admin")), 422, "invalid_request")
    r = await h.client.post("/v1/forget", json={"user": "alice"}, headers=h.auth("admin"))
    assert_problem(r, 422, "invalid_request")
    r = await h.client.post("/v1/forget", json={"user_id": " alice"}, headers=h.auth("admin"))
    assert_problem(r, 422, "invalid_input")  # the library's rule
    assert_problem(await h.client.post("/v1/forget", json={"user_id": "alice"}), 401, "auth_required")
    assert await _memories(h, user_id="alice") == ["alice keeps bees"]


async def test_the_audit_trail_records_the_erasure_as_the_key_without_text(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    settings = settings_for(path, audit={"include_content": True})
    async with harness_for(path, settings=settings) as h:
        await h.add("Alice hides her xylophone in Zanzibar", key="alice")
        r = await h.client.post("/v1/forget", json={"user_id": "alice"}, headers=h.auth("alice"))
        assert r.status_code == 200, r.text
        assert r.json()["audit_content"] == 1  # the add's kept text, blanked
    store = open_store(path, read_only=True)
    try:
        log = store.audit_log  # type: ignore[attr-defined]
        [erasure] = list(log.records(AuditQuery(operation="forget")))
        everything = json.dumps([rec.model_dump(mode="json") for rec in log.records()])
        assert log.verify().ok
    finally:
        store.close()
    assert (erasure.principal, erasure.user_id) == ("key:alice", "alice")
    assert erasure.details == {"memories": 1, "history": 1, "audit_content": 1}
    assert erasure.content is None
    assert [s for s in SECRETS if s in everything] == []


async def test_the_mcp_forget_tool(tmp_path: Path) -> None:
    config = ServerConfig(auth=False, user_ids=("alex",))
    async with harness_for(tmp_path / "m.db", config) as h, Client(h.app.state.mcp) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert tools["forget"].annotations.destructive_hint is True  # type: ignore[union-attr]
        added = await client.call_tool("add_memory", {"text": "alex plays the oboe", "infer": False})
        assert not added.is_error, added.content
        missing = await client.call_tool("forget", {})
        assert missing.is_error
        assert "missing_scope" in str(missing.content)
        denied = await client.call_tool("forget", {"user_id": "bob"})
        assert denied.is_error
        assert "scope_denied" in str(denied.content)
        done = await client.call_tool("forget", {"user_id": "alex"})
        assert not done.is_error, done.content
        erased: Any = done.structured_content
        assert (erased["scope"], erased["memories"], erased["graph"]) == ({"user_id": "alex"}, 1, None)
        listed: Any = (await client.call_tool("list_memories", {})).structured_content
        assert listed["results"] == []
    read_only = ServerConfig(auth=False, user_ids=("alex",), read_only=True)
    async with harness_for(tmp_path / "ro.db", read_only) as h, Client(h.app.state.mcp) as client:
        refused = await client.call_tool("forget", {"user_id": "alex"})
        assert refused.is_error
        assert "read_only_key" in str(refused.content)


def test_azmem_serve_erases_over_a_loopback_socket(tmp_path: Path, serve_factory: Any) -> None:
    store = tmp_path / "memory.db"
    _seed(store)
    with SQLiteStore(store) as s:
        admin = s.keys.create("admin").secret
        alice = s.keys.create("alice", user_ids=["alice"]).secret
    process = serve_factory(store=store)
    refused = httpx2.post(
        f"{process.url}/v1/forget", json={"user_id": "bob"}, headers={"Authorization": f"Bearer {alice}"}
    )
    assert refused.status_code == 403
    r = httpx2.post(
        f"{process.url}/v1/forget", json={"user_id": "alice"}, headers={"Authorization": f"Bearer {alice}"}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["memories"], r.json()["graph"]) == (2, ALICE_GRAPH)
    left = httpx2.get(
        f"{process.url}/v1/memories", params={"user_id": "bob"}, headers={"Authorization": f"Bearer {admin}"}
    )
    assert [m["memory"] for m in left.json()["results"]] == ["Bob collects quokkamugs"]


async def test_forget_on_a_postgresql_store(pg_url: str, tmp_path: Path) -> None:
    """The same erasure on PostgreSQL: memories, history and the user's graph group, in its tables."""
    from azmem.azure.settings import AzmemSettings

    async with harness_for(
        tmp_path / "unused.db", settings=AzmemSettings.load(None, store={"url": pg_url})
    ) as h:
        await h.add("alice keeps bees", key="alice")
        await h.add("bob keeps goats", user_id="bob")
        await _add_fact(h, "alice", "bees")
        await _add_fact(h, "bob", "goats")
        r = await h.client.post("/v1/forget", json={"user_id": "alice"}, headers=h.auth("alice"))
        assert r.status_code == 200, r.text
        assert (r.json()["memories"], r.json()["history"], r.json()["compacted"]) == (1, 1, True)
        assert r.json()["graph"] == {"episodes": 0, "entities": 2, "facts": 1, "compacted": True}
        assert await _memories(h, user_id="alice") == []
        assert await _facts(h, "alice") == []
        assert await _memories(h, user_id="bob") == ["bob keeps goats"]
        assert await _facts(h, "bob") == ["goats"]
