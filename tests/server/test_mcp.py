"""The MCP tools through the SDK's own client: in process, over stdio (`azmem mcp`), over HTTP with keys."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from azmem.emulator import Emulator
from azmem.server import ServerConfig
from azmem.server.graph_tools import GRAPH_TOOLS
from azmem.stores import SQLiteStore

from .conftest import AZMEM, ServeProcess, harness_for, seed_graph, start_serve, stop

TOOLS = {
    "add_memory",
    "search_memories",
    "list_memories",
    "get_memory",
    "update_memory",
    "delete_memory",
    "delete_all_memories",
    "forget",
    "memory_history",
    "get_status",
    *GRAPH_TOOLS,
}
#: Each tool's call reaching for bob (whose memory id is "MID", graph items "EPISODE" / "FACT");
#: get_status has no scope to reach for.
FOREIGN = {
    "add_memory": {"text": "x", "user_id": "bob", "infer": False},
    "search_memories": {"query": "x", "user_id": "bob"},
    "list_memories": {"user_id": "bob"},
    "get_memory": {"memory_id": "MID"},
    "update_memory": {"memory_id": "MID", "text": "hacked"},
    "delete_memory": {"memory_id": "MID"},
    "delete_all_memories": {"user_id": "bob"},
    "forget": {"user_id": "bob"},
    "memory_history": {"memory_id": "MID"},
    "add_episode": {"content": "x", "group_id": "bob"},
    "search_facts": {"query": "x", "group_ids": ["bob"]},
    "search_entities": {"query": "x", "group_ids": ["bob"]},
    "get_episodes": {"group_ids": ["bob"]},
    "delete_episode": {"episode_id": "EPISODE"},
    "get_fact": {"fact_id": "FACT"},
    "delete_fact": {"fact_id": "FACT"},
    "add_triplet": {"source": "a", "relation": "KNOWS", "target": "b", "group_id": "bob"},
    "clear_graph": {"group_id": "bob"},
}
SCOPE_ARGS = ("user_id", "group_id", "group_ids")


def _error(result: CallToolResult) -> str:
    assert result.is_error, result.structured_content
    return "\n".join(getattr(block, "text", "") for block in result.content)


async def _exercise(client: Client, user: str) -> None:
    """Every tool once, as an agent would use them, for the principal's default user."""
    listed = await client.list_tools()
    tools = {t.name: t for t in listed.tools}
    assert set(tools) == TOOLS
    assert set(tools["add_memory"].input_schema["properties"]) == {
        "text",
        "messages",
        "user_id",
        "agent_id",
        "run_id",
        "metadata",
        "infer",
    }
    assert {"query", "user_id", "agent_id", "run_id", "limit", "filters"} <= set(
        tools["search_memories"].input_schema["properties"]
    )
    for name, tool in tools.items():
        assert tool.output_schema is not None, name
        assert tool.description, name
        assert len(tool.description) > 40, name
        assert tool.annotations is not None
    assert tools["search_memories"].annotations.read_only_hint is True
    assert tools["delete_all_memories"].annotations.destructive_hint is True
    assert tools["update_memory"].annotations.idempotent_hint is True
    assert not tools["add_memory"].annotations.read_only_hint

    added = await client.call_tool("add_memory", {"text": f"{user} plays the oboe", "infer": False})
    assert not added.is_error, added.content
    mid = added.structured_content["results"][0]["id"]  # type: ignore[index]
    await client.call_tool(
        "add_memory",
        {
            "messages": [{"role": "user", "content": f"{user} lives in Oslo"}],
            "metadata": {"t": 1},
            "infer": False,
        },
    )
    found = (
        await client.call_tool("search_memories", {"query": "which instrument?", "limit": 1})
    ).structured_content
    assert found["results"][0]["id"] == mid
    assert found["results"][0]["user_id"] == user
    page = (await client.call_tool("list_memories", {"filters": {"t": 1}})).structured_content
    assert [m["memory"] for m in page["results"]] == [f"{user} lives in Oslo"]  # type: ignore[index]
    got = (await client.call_tool("get_memory", {"memory_id": mid})).structured_content
    assert got["memory"] == f"{user} plays the oboe"  # type: ignore[index]
    upd = await client.call_tool("update_memory", {"memory_id": mid, "text": f"{user} plays the bassoon"})
    assert upd.structured_content["memory"] == f"{user} plays the bassoon"  # type: ignore[index]
    hist = (await client.call_tool("memory_history", {"memory_id": mid})).structured_content
    assert [e["event"] for e in hist["results"]] == ["ADD", "UPDATE"]  # type: ignore[index]
    status = (await client.call_tool("get_status", {})).structured_content
    assert status["principal"]["user_ids"] == [user]
    assert status["dimension"] == 384
    gone = (await client.call_tool("delete_memory", {"memory_id": mid})).structured_content
    assert gone["event"] == "DELETE"  # type: ignore[index]
    text = _error(await client.call_tool("get_memory", {"memory_id": mid}))
    assert "memory_not_found" in text
    # Mistakes come back as tool errors a model can act on (code + suggestion), not crashes.
    text = _error(await client.call_tool("add_memory", {"infer": False}))
    assert "text or messages" in text
    text = _error(await client.call_tool("delete_all_memories", {}))
    assert "missing_scope" in text
    assert "Suggestion" in text
    text = _error(await client.call_tool("search_memories", {"query": "x", "limit": 0}))
    assert "invalid_input" in text
    deleted = (await client.call_tool("delete_all_memories", {"user_id": user})).structured_content
    assert deleted == {"deleted": 1}


async def test_in_process_tools_with_the_servers_default_user(tmp_path: Path) -> None:
    config = ServerConfig(auth=False, user_ids=("alex",))
    async with harness_for(tmp_path / "m.db", config) as h, Client(h.app.state.mcp) as client:
        await _exercise(client, "alex")
        denied = _error(await client.call_tool("search_memories", {"query": "x", "user_id": "bob"}))
        assert "scope_denied" in denied
        assert "403" in denied


# -- stdio ------------------------------------------------------------------------------------------


def _stdio(store: Path, *args: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=AZMEM,
        args=["mcp", "--store", str(store), *args],
        env={"PATH": os.environ.get("PATH", ""), "AZMEM_HOME": str(store.parent / "home")},
    )


async def test_stdio_server_spawned_by_the_sdk_client(tmp_path: Path) -> None:
    store = tmp_path / "m.db"
    async with Client(_stdio(store, "--user", "alex")) as client:
        await _exercise(client, "alex")
        denied = _error(await client.call_tool("list_memories", {"user_id": "bob"}))
        assert "scope_denied" in denied
    async with Client(_stdio(store, "--user", "alex", "--read-only")) as client:
        assert "read_only" in _error(await client.call_tool("add_memory", {"text": "x"}))


def test_stdio_stdout_carries_only_json_rpc(tmp_path: Path) -> None:
    """Raw JSON-RPC over the pipes, debug logging on: every stdout line is a JSON-RPC message."""
    requests = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "add_memory", "arguments": {"text": "alex likes tea", "infer": False}},
        },
    ]
    with (tmp_path / "err").open("wb") as err:
        proc = subprocess.Popen(
            [AZMEM, "mcp", "--user", "alex", "--store", str(tmp_path / "m.db"), "--log-level", "debug"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            env={**os.environ, "AZMEM_HOME": str(tmp_path / "home")},
        )
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write("".join(json.dumps(r) + "\n" for r in requests).encode())
    proc.stdin.flush()
    replies: list[dict[str, Any]] = []
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 60
        while {1, 2, 3} - {r.get("id") for r in replies} and time.monotonic() < deadline:
            if sel.select(timeout=1):
                line = proc.stdout.readline()
                if not line:
                    break
                replies.append(json.loads(line))  # every line parses: nothing but JSON-RPC
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0
    rest = proc.stdout.read().decode()
    proc.stdout.close()
    assert all(json.loads(line)["jsonrpc"] == "2.0" for line in rest.splitlines())
    assert all(r.get("jsonrpc") == "2.0" for r in replies)
    by_id = {r["id"]: r for r in replies if "id" in r}
    assert by_id[3]["result"]["structuredContent"]["results"][0]["memory"] == "alex likes tea"
    assert len(by_id[2]["result"]["tools"]) == len(TOOLS)
    assert "DEBUG" in (tmp_path / "err").read_text()  # the logs went to stderr


# -- streamable HTTP with keys -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def http_server(
    tmp_path_factory: pytest.TempPathFactory, emulator_session: Emulator
) -> Iterator[tuple[ServeProcess, dict[str, str], dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("mcp-http")
    store = tmp / "memory.db"
    graph = seed_graph(store, emulator_session, "bob")
    with SQLiteStore(store) as s:
        secrets = {
            "alice": s.keys.create("alice", user_ids=["alice"]).secret,
            "alice-ro": s.keys.create("alice-ro", user_ids=["alice"], read_only=True).secret,
            "admin": s.keys.create("admin").secret,
        }
    process = start_serve(tmp, store=store, env={"AZMEM_HOME": str(tmp / "home")})
    r = httpx2.post(
        f"{process.url}/v1/memories",
        json={"text": "bob's secret", "user_id": "bob", "infer": False},
        headers={"Authorization": f"Bearer {secrets['admin']}"},
    )
    try:
        yield (
            process,
            secrets,
            {"MID": r.json()["results"][0]["id"], "EPISODE": graph["episode_id"], "FACT": graph["fact_id"]},
        )
    finally:
        stop(process)


@asynccontextmanager
async def http_client(url: str, secret: str | None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
    ):
        yield client


async def test_http_tools_with_a_key(
    http_server: tuple[ServeProcess, dict[str, str], dict[str, str]],
) -> None:
    process, secrets, _ = http_server
    async with http_client(process.url, secrets["alice"]) as client:
        await _exercise(client, "alice")
    async with http_client(process.url, secrets["alice-ro"]) as client:
        assert "read_only_key" in _error(await client.call_tool("add_memory", {"text": "x"}))
        assert not (await client.call_tool("list_memories", {})).is_error
    assert "key=alice" in process.stderr()  # the access log names the key, never the secret
    assert secrets["alice"] not in process.stderr()


@pytest.mark.parametrize("tool", sorted(FOREIGN))
async def test_http_tools_refuse_another_users_scope(
    http_server: tuple[ServeProcess, dict[str, str], dict[str, str]], tool: str
) -> None:
    process, secrets, bob = http_server
    args = {k: bob.get(v, v) if isinstance(v, str) else v for k, v in FOREIGN[tool].items()}
    async with http_client(process.url, secrets["alice"]) as client:
        text = _error(await client.call_tool(tool, args))
    if any(arg in args for arg in SCOPE_ARGS):
        assert "scope_denied" in text, text
    else:  # by id: bob's memory or graph item is not there for alice
        assert "memory_not_found" in text or "graph_item_not_found" in text, text
    admin = {"Authorization": f"Bearer {secrets['admin']}"}
    r = httpx2.get(f"{process.url}/v1/memories/{bob['MID']}", headers=admin)
    assert r.json()["memory"] == "bob's secret"
    r = httpx2.get(f"{process.url}/v1/graph/episodes", params={"group_id": "bob"}, headers=admin)
    assert [e["id"] for e in r.json()["results"]] == [bob["EPISODE"]]
    assert httpx2.get(f"{process.url}/v1/graph/facts/{bob['FACT']}", headers=admin).status_code == 200


async def test_http_mcp_without_a_valid_key_is_refused(
    http_server: tuple[ServeProcess, dict[str, str], dict[str, str]],
) -> None:
    process, secrets, _ = http_server
    init: dict[str, Any] = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream"}
    for auth in ({}, {"Authorization": "Bearer azm_0123456789ab_" + "A" * 43}):
        r = httpx2.post(f"{process.url}/mcp", json=init, headers={**headers, **auth})
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/problem+json"
    with pytest.raises(Exception):  # noqa: B017,PT011  # the SDK's client cannot even connect
        async with http_client(process.url, None):
            pass
    # A session opened with one key cannot be used with another.
    ok = httpx2.post(
        f"{process.url}/mcp", json=init, headers={**headers, "Authorization": f"Bearer {secrets['alice']}"}
    )
    session = ok.headers["mcp-session-id"]
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    r = httpx2.post(
        f"{process.url}/mcp",
        json=listing,
        headers={**headers, "Authorization": f"Bearer {secrets['admin']}", "mcp-session-id": session},
    )
    assert r.status_code == 404
