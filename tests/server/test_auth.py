"""Keys and scopes on every route: 401 without a valid key, 403 outside its binding, 403 for read-only writes.

One server for the module (its key ring, its memories, bob's graph); each route is a
parameter, so a route added to the app without a row here fails
`test_every_route_is_covered`. Graph routes name their group where memory routes name
their user (group_id = user id), and their by-id rows use bob's episode, entity and fact.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from azmem.emulator import Emulator
from azmem.errors import ConfigurationError
from azmem.server import ServerConfig, check_bind, is_loopback

from .conftest import Harness, harness_for, seed_graph
from .test_rest import assert_problem

module_loop = pytest.mark.asyncio(loop_scope="module")


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    request: dict[str, Any] = field(default_factory=dict)
    write: bool = False
    scoped: bool = True
    """Takes user_id (query or body): naming a foreign user is refused with 403 before any lookup."""

    def call(self, user: str, ids: dict[str, str]) -> dict[str, Any]:
        def fill(value: Any) -> Any:
            if value == "U":
                return user
            if isinstance(value, dict):
                return {k: fill(v) for k, v in value.items()}
            if isinstance(value, list):
                return [fill(v) for v in value]
            return value

        request = fill(self.request)
        if "content" in request:
            request["content"] = request["content"].replace("U", user).encode()
        return {"method": self.method, "url": self.path.format(**ids), **request}


_MSG = [{"role": "user", "content": "hello"}]
ROUTES = {
    "v1 add": Route(
        "POST", "/v1/memories", {"json": {"text": "x", "infer": False, "user_id": "U"}}, write=True
    ),
    "v1 list": Route("GET", "/v1/memories", {"params": {"user_id": "U"}}),
    "v1 get": Route("GET", "/v1/memories/{mid}", {"params": {"user_id": "U"}}),
    "v1 update": Route(
        "PATCH", "/v1/memories/{mid}", {"params": {"user_id": "U"}, "json": {"text": "y"}}, write=True
    ),
    "v1 delete": Route("DELETE", "/v1/memories/{mid}", {"params": {"user_id": "U"}}, write=True),
    "v1 delete all": Route("DELETE", "/v1/memories", {"params": {"user_id": "U"}}, write=True),
    "v1 forget": Route("POST", "/v1/forget", {"json": {"user_id": "U"}}, write=True),
    "v1 history": Route("GET", "/v1/memories/{mid}/history", {"params": {"user_id": "U"}}),
    "v1 search": Route("POST", "/v1/search", {"json": {"query": "x", "user_id": "U"}}),
    "v1 query": Route("POST", "/v1/query", {"json": {"question": "x", "user_id": "U"}}),
    "v1 import": Route(
        "POST", "/v1/import", {"content": json.dumps({"messages": _MSG, "user_id": "U"})}, write=True
    ),
    "v1 job": Route("GET", "/v1/jobs/{job}", scoped=False),
    "v1 status": Route("GET", "/v1/status", scoped=False),
    "mem0 add": Route(
        "POST", "/memories", {"json": {"messages": _MSG, "user_id": "U", "infer": False}}, write=True
    ),
    "mem0 list": Route("GET", "/memories", {"params": {"user_id": "U"}}),
    "mem0 get": Route("GET", "/memories/{mid}", scoped=False),
    "mem0 update": Route("PUT", "/memories/{mid}", {"json": {"text": "y"}}, write=True, scoped=False),
    "mem0 history": Route("GET", "/memories/{mid}/history", scoped=False),
    "mem0 delete": Route("DELETE", "/memories/{mid}", write=True, scoped=False),
    "mem0 delete all": Route("DELETE", "/memories", {"params": {"user_id": "U"}}, write=True),
    "mem0 search": Route("POST", "/search", {"json": {"query": "x", "user_id": "U"}}),
    "mem0 reset": Route("POST", "/reset", write=True, scoped=False),
    "graph add episode": Route(
        "POST", "/v1/graph/episodes", {"json": {"content": "x", "group_id": "U"}}, write=True
    ),
    "graph episodes": Route("GET", "/v1/graph/episodes", {"params": {"group_id": "U"}}),
    "graph delete episode": Route("DELETE", "/v1/graph/episodes/{episode_id}", write=True, scoped=False),
    "graph search": Route("POST", "/v1/graph/search", {"json": {"query": "x", "group_ids": ["U"]}}),
    "graph entity search": Route(
        "POST", "/v1/graph/entities/search", {"json": {"query": "x", "group_ids": ["U"]}}
    ),
    "graph entity": Route("GET", "/v1/graph/entities/{entity_id}", scoped=False),
    "graph timeline": Route("GET", "/v1/graph/entities/{entity_id}/timeline", scoped=False),
    "graph add fact": Route(
        "POST",
        "/v1/graph/facts",
        {"json": {"source": "a", "relation": "KNOWS", "target": "b", "group_id": "U"}},
        write=True,
    ),
    "graph facts": Route("GET", "/v1/graph/facts", {"params": {"group_id": "U"}}),
    "graph fact": Route("GET", "/v1/graph/facts/{fact_id}", scoped=False),
    "graph delete fact": Route("DELETE", "/v1/graph/facts/{fact_id}", write=True, scoped=False),
    "graph clear": Route("DELETE", "/v1/graph", {"params": {"group_id": "U"}}, write=True),
    "graph export": Route("GET", "/v1/graph/export", {"params": {"group_id": "U"}}),
}
WRITES = [name for name, r in ROUTES.items() if r.write]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(
    tmp_path_factory: pytest.TempPathFactory, emulator_session: Emulator
) -> AsyncIterator[tuple[Harness, dict[str, str]]]:
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if (
                name.startswith(("AZURE_", "LLM_AZURE", "EMBEDDING_AZURE", "OPENAI_"))
                or name == "AZMEM_CONFIG"
            ):
                mp.delenv(name)
        home = tmp_path_factory.mktemp("auth")
        mp.setenv("AZMEM_HOME", str(home / "home"))
        graph = seed_graph(home / "memory.db", emulator_session, "bob")  # the server itself has no chat
        async with harness_for(home / "memory.db") as h:
            ids = {"mid": await h.add("bob's secret", user_id="bob"), "job": "0" * 32, **graph}
            yield h, ids


def test_every_route_is_covered(server: tuple[Harness, dict[str, str]]) -> None:
    """Every operation of the OpenAPI document but the probes has a row in ROUTES."""
    harness, _ = server
    served = {
        (method.upper(), path)
        for path, ops in harness.app.openapi()["paths"].items()
        if path not in ("/healthz", "/readyz")
        for method in ops
    }
    covered = {
        (r.method, r.path.replace("{mid}", "{memory_id}").replace("{job}", "{job_id}"))
        for r in ROUTES.values()
    }
    assert served == covered


@module_loop
@pytest.mark.parametrize("name", list(ROUTES))
async def test_no_key_bad_key_and_malformed_header_get_401(
    server: tuple[Harness, dict[str, str]], name: str
) -> None:
    harness, ids = server
    call = ROUTES[name].call("alice", ids)
    for headers, code in (
        ({}, "auth_required"),
        ({"Authorization": "Bearer azm_0123456789ab_" + "A" * 43}, "invalid_key"),
        ({"Authorization": "Bearer " + harness.secrets["alice"][:-2]}, "invalid_key"),
        ({"Authorization": "Basic " + harness.secrets["alice"]}, "malformed_authorization"),
    ):
        r = await harness.client.request(**call, headers=headers)
        assert_problem(r, 401, code)
        assert r.headers["www-authenticate"].startswith("Bearer")


@module_loop
@pytest.mark.parametrize("name", list(ROUTES))
async def test_a_key_bound_to_alice_reaches_nothing_of_bob(
    server: tuple[Harness, dict[str, str]], name: str
) -> None:
    harness, ids = server
    route = ROUTES[name]
    r = await harness.client.request(**route.call("bob", ids), headers=harness.auth("alice"))
    if route.scoped:
        assert_problem(r, 403, "scope_denied")
    elif name == "mem0 reset":
        assert_problem(r, 403, "needs_unbound_key")
    elif name == "v1 status":
        assert r.status_code == 200
        assert r.json()["principal"]["user_ids"] == ["alice"]
    else:  # by id, without a scope to name: bob's memory (or job) is not there for alice
        assert r.status_code == 404, r.text
    # Bob's memory and graph are untouched whatever was tried.
    bob = await harness.client.get(f"/v1/memories/{ids['mid']}", headers=harness.auth("admin"))
    assert bob.status_code == 200
    assert bob.json()["memory"] == "bob's secret"
    episodes = await harness.client.get(
        "/v1/graph/episodes", params={"group_id": "bob"}, headers=harness.auth("admin")
    )
    assert [e["id"] for e in episodes.json()["results"]] == [ids["episode_id"]]
    fact = await harness.client.get(f"/v1/graph/facts/{ids['fact_id']}", headers=harness.auth("admin"))
    assert fact.status_code == 200


@module_loop
@pytest.mark.parametrize("name", [n for n, r in ROUTES.items() if r.scoped])
async def test_other_bindings_are_enforced_the_same_way(
    server: tuple[Harness, dict[str, str]], name: str
) -> None:
    harness, ids = server
    route = ROUTES[name]
    # A key for two users must say which one (no silent pick), and reaches neither bob.
    team = await harness.client.request(**route.call("bob", ids), headers=harness.auth("team"))
    assert_problem(team, 403, "scope_denied")
    # A key bound to an agent gets 403 for another agent.
    call = route.call("bob", ids)
    for part in ("params", "json"):
        if part in call and "user_id" in call[part]:
            call[part] = {**call[part], "agent_id": "other-bot"}
    if "content" in call:
        call["content"] = call["content"].replace(b'"user_id"', b'"agent_id": "other-bot", "user_id"')
    r = await harness.client.request(**call, headers=harness.auth("bot"))
    assert_problem(r, 403, "scope_denied")


@module_loop
@pytest.mark.parametrize("name", WRITES)
async def test_a_read_only_key_cannot_write(server: tuple[Harness, dict[str, str]], name: str) -> None:
    harness, ids = server
    own = {
        **ids,
        "mid": await harness.add("alice's note", key="alice"),
    }  # read-only is refused before lookups
    r = await harness.client.request(**ROUTES[name].call("alice", own), headers=harness.auth("alice-ro"))
    assert_problem(r, 403, "read_only_key")
    still = await harness.client.get(f"/v1/memories/{own['mid']}", headers=harness.auth("alice-ro"))
    assert still.status_code == 200  # ... while it still reads


@module_loop
async def test_the_team_key_must_name_one_of_its_users(server: tuple[Harness, dict[str, str]]) -> None:
    harness, _ = server
    r = await harness.client.post("/v1/search", json={"query": "x"}, headers=harness.auth("team"))
    body = assert_problem(r, 422, "missing_scope")
    assert "alice" in str(body["suggestion"])
    assert "carol" in str(body["suggestion"])
    r = await harness.client.post(
        "/v1/search", json={"query": "x", "user_id": "carol"}, headers=harness.auth("team")
    )
    assert r.status_code == 200


@module_loop
async def test_revocation_takes_effect(server: tuple[Harness, dict[str, str]]) -> None:
    harness, _ = server
    made = harness.ring.create("temp", user_ids=["alice"])
    headers = {"Authorization": f"Bearer {made.secret}"}
    assert (await harness.client.get("/v1/memories", headers=headers)).status_code == 200
    harness.ring.revoke("temp")
    assert_problem(await harness.client.get("/v1/memories", headers=headers), 401, "invalid_key")


@module_loop
async def test_a_key_over_its_rate_gets_429_with_retry_after(server: tuple[Harness, dict[str, str]]) -> None:
    harness, _ = server
    made = harness.ring.create("slow", user_ids=["alice"], rate_limit=2)
    headers = {"Authorization": f"Bearer {made.secret}"}
    for _ in range(2):
        assert (await harness.client.get("/v1/memories", headers=headers)).status_code == 200
    r = await harness.client.get("/v1/memories", headers=headers)
    body = assert_problem(r, 429, "key_rate_limited")
    assert int(r.headers["retry-after"]) >= 1
    assert body["retryable"] is True


@module_loop
async def test_public_paths_need_no_key(server: tuple[Harness, dict[str, str]]) -> None:
    harness, _ = server
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs"):
        assert (await harness.client.get(path)).status_code == 200, path


@module_loop
async def test_without_keys_only_this_machine_is_served(tmp_path_factory: pytest.TempPathFactory) -> None:
    home = tmp_path_factory.mktemp("noauth")
    config = ServerConfig(auth=False, user_ids=("alex",))
    async with harness_for(home / "memory.db", config) as h:
        r = await h.client.post("/v1/memories", json={"text": "alex likes jazz", "infer": False})
        assert r.status_code == 200
        listed = await h.client.get("/v1/memories")
        assert [m["user_id"] for m in listed.json()["results"]] == [
            "alex"
        ]  # the server's user is the default
        assert_problem(await h.client.get("/v1/memories", params={"user_id": "bob"}), 403, "scope_denied")
        # A page on another origin that resolves its name to 127.0.0.1 (DNS rebinding) is refused.
        evil = await h.client.get("/v1/memories", headers={"Host": "evil.example:8765"})
        assert_problem(evil, 403, "host_not_allowed")
        assert (await h.client.get("/v1/memories", headers={"Host": "localhost:8765"})).status_code == 200


def test_binding_without_keys_is_loopback_only() -> None:
    for host in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"):
        assert is_loopback(host)
        check_bind(host, auth=False)
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com"):
        assert not is_loopback(host)
        with pytest.raises(ConfigurationError) as err:
            check_bind(host, auth=False)
        assert err.value.code == "unsafe_bind"
        check_bind(host, auth=True)
