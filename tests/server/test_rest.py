"""The /v1 REST API through httpx2 against the real app: shapes, scopes, pagination, problems, import jobs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from openapi_spec_validator import validate

from azmem.azure.settings import AzmemSettings
from azmem.emulator import Emulator, Fault
from azmem.errors import (
    AuthRequiredError,
    KeyRateLimitedError,
    MemoryNotFoundError,
    PayloadTooLargeError,
    ScopeDeniedError,
    http_status_for,
)
from azmem.server import ServerConfig

from .conftest import Harness, harness_for

PROBLEM = "application/problem+json"


def assert_problem(response: object, status: int, code: str) -> dict[str, object]:
    r = response
    assert r.status_code == status, r.text  # type: ignore[attr-defined]
    assert r.headers["content-type"] == PROBLEM  # type: ignore[attr-defined]
    body: dict[str, object] = r.json()  # type: ignore[attr-defined]
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:azmem:error:{code}"
    assert body["title"]
    assert body["detail"]
    assert body["request_id"] == r.headers["x-request-id"]
    return body


async def test_add_list_get_update_history_delete(harness: Harness) -> None:
    c, h = harness.client, harness.auth("alice")
    r = await c.post(
        "/v1/memories",
        json={"messages": [{"role": "user", "content": "I moved to Lisbon"}], "metadata": {"topic": "home"}},
        headers=h,
    )
    assert r.status_code == 200, r.text
    (event,) = r.json()["results"]
    assert event["event"] == "ADD"
    assert event["metadata"]["topic"] == "home"
    mid = event["id"]

    got = (await c.get(f"/v1/memories/{mid}", headers=h)).json()
    assert got["user_id"] == "alice"
    assert got["memory"] == "I moved to Lisbon"

    r = await c.patch(f"/v1/memories/{mid}", json={"text": "I moved to Porto"}, headers=h)
    assert r.status_code == 200
    assert r.json()["memory"] == "I moved to Porto"
    history = (await c.get(f"/v1/memories/{mid}/history", headers=h)).json()["results"]
    assert [e["event"] for e in history] == ["ADD", "UPDATE"]
    assert history[1]["old_memory"] == "I moved to Lisbon"

    hits = (await c.post("/v1/search", json={"query": "where do I live", "limit": 3}, headers=h)).json()
    assert hits["results"][0]["id"] == mid
    assert 0 < hits["results"][0]["score"] <= 1

    r = await c.delete(f"/v1/memories/{mid}", headers=h)
    assert r.status_code == 200
    assert r.json()["event"] == "DELETE"
    assert_problem(await c.get(f"/v1/memories/{mid}", headers=h), 404, "memory_not_found")


async def test_list_pages_filters_and_delete_all(harness: Harness) -> None:
    c, h = harness.client, harness.auth("alice")
    for i in range(5):
        await harness.add(f"fact number {i}", key="alice", metadata={"n": i})
    await harness.add("carol's fact", user_id="carol")
    page = (await c.get("/v1/memories", params={"limit": 2}, headers=h)).json()
    assert len(page["results"]) == 2
    assert page["next_cursor"]
    seen = [m["memory"] for m in page["results"]]
    while page["next_cursor"]:
        page = (
            await c.get("/v1/memories", params={"limit": 2, "cursor": page["next_cursor"]}, headers=h)
        ).json()
        seen += [m["memory"] for m in page["results"]]
    assert seen == [f"fact number {i}" for i in reversed(range(5))]
    filtered = (
        await c.get("/v1/memories", params={"filters": json.dumps({"n": {"gte": 3}})}, headers=h)
    ).json()
    assert {m["metadata"]["n"] for m in filtered["results"]} == {3, 4}
    assert_problem(await c.get("/v1/memories", params={"filters": "{nope"}, headers=h), 422, "invalid_input")
    assert_problem(
        await c.get("/v1/memories", params={"filters": json.dumps({"n": {"near": 1}})}, headers=h),
        422,
        "invalid_input",
    )

    # A bulk delete needs its scope named, even with a key bound to one user.
    assert_problem(await c.delete("/v1/memories", headers=h), 422, "missing_scope")
    r = await c.delete("/v1/memories", params={"user_id": "alice"}, headers=h)
    assert r.json() == {"deleted": 5}
    left = (await c.get("/v1/memories", params={"user_id": "carol"}, headers=harness.auth("admin"))).json()
    assert [m["memory"] for m in left["results"]] == ["carol's fact"]


async def test_problems_carry_code_suggestion_and_request_id(harness: Harness) -> None:
    c, h = harness.client, harness.auth("admin")
    body = assert_problem(await c.post("/v1/search", json={"query": "tea"}, headers=h), 422, "missing_scope")
    assert "user_id" in str(body["suggestion"])
    r = await c.post("/v1/memories", content=b'{"text": ', headers={**h, "content-type": "application/json"})
    assert_problem(r, 400, "malformed_body")
    body = assert_problem(
        await c.post("/v1/memories", json={"user_id": "a"}, headers=h), 422, "invalid_request"
    )
    assert body["errors"]  # which field, never the rejected value
    r = await c.post("/v1/memories", json={"text": "x", "messages": "y", "user_id": "a"}, headers=h)
    assert_problem(r, 422, "invalid_request")
    assert_problem(await c.get("/v1/nothing-here", headers=h), 404, "not_found")
    assert_problem(await c.put("/v1/search", headers=h), 405, "method_not_allowed")
    r = await c.post("/v1/search", json={"query": "t", "user_id": "a", "mode": "fuzzy"}, headers=h)
    assert_problem(r, 422, "invalid_request")
    r = await c.post("/v1/search", json={"query": "t", "user_id": "a", "limit": 0}, headers=h)
    assert_problem(r, 422, "invalid_input")  # the library's rule, not a copy of it
    # A caller's own request id is kept (and logged); an unsafe one is replaced.
    r = await c.get("/v1/memories/x", params={"user_id": "a"}, headers={**h, "X-Request-ID": "trace-42"})
    assert r.headers["x-request-id"] == "trace-42"
    assert r.json()["request_id"] == "trace-42"
    r = await c.get("/healthz", headers={"X-Request-ID": "bad id\twith tab"})
    assert r.headers["x-request-id"] != "bad id\twith tab"
    assert len(r.headers["x-request-id"]) == 32


async def test_size_limits_answer_413(tmp_path: Path) -> None:
    config = ServerConfig(max_body_bytes=64 * 1024, key_cache_seconds=0)
    async with harness_for(tmp_path / "m.db", config) as harness:
        c, h = harness.client, harness.auth("alice")
        big = {"text": "x" * (70 * 1024), "infer": False}
        assert_problem(await c.post("/v1/memories", json=big, headers=h), 413, "too_large")

        async def chunks() -> object:  # no Content-Length: counted while read
            yield b'{"text": "'
            for _ in range(80):
                yield b"y" * 1024
            yield b'"}'

        r = await c.post("/v1/memories", content=chunks(), headers={**h, "content-type": "application/json"})
        assert_problem(r, 413, "too_large")
        # A text over the library's own limit (64 KiB per memory) inside an acceptable body.
    async with harness_for(tmp_path / "m2.db") as harness:
        r = await harness.client.post(
            "/v1/memories", json={"text": "é" * 40_000, "infer": False}, headers=harness.auth("alice")
        )
        body = assert_problem(r, 413, "too_large")
        assert "limit" in str(body["detail"])


async def test_query_without_a_chat_deployment_says_why(harness: Harness) -> None:
    await harness.add("the cat is called Miso", key="alice")
    r = await harness.client.post(
        "/v1/query", json={"question": "what is my cat called?"}, headers=harness.auth("alice")
    )
    body = r.json()
    assert r.status_code == 200
    assert body["answer"] is None
    assert body["note"]
    assert body["memories"][0]["memory"] == "the cat is called Miso"


async def test_import_inline_then_as_a_job(tmp_path: Path) -> None:
    async with harness_for(
        tmp_path / "m.db", ServerConfig(inline_import_conversations=2, key_cache_seconds=0)
    ) as hs:
        c, h = hs.client, hs.auth("alice")
        lines = [
            {"role": "user", "content": "I play the cello"},
            {"role": "assistant", "content": "Nice!"},
            {"messages": [{"role": "user", "content": "I am allergic to nuts"}], "metadata": {"src": "chat"}},
        ]
        body = "\n".join(json.dumps(x) for x in lines).encode()
        r = await c.post("/v1/import", content=body, params={"infer": "false"}, headers=h)
        assert r.status_code == 200, r.text
        assert r.json() == {
            "conversations": 2,
            "messages": 3,
            "skipped": 0,
            "events": {"ADD": 3, "UPDATE": 0, "DELETE": 0},
        }

        # A foreign user id anywhere in the file: nothing at all is imported.
        bad = (
            body
            + b"\n"
            + json.dumps({"messages": [{"role": "user", "content": "x"}], "user_id": "bob"}).encode()
        )
        assert_problem(await c.post("/v1/import", content=bad, headers=h), 403, "scope_denied")
        broken = body + b"\n{not json"
        body_ = assert_problem(await c.post("/v1/import", content=broken, headers=h), 422, "invalid_input")
        assert "line 4" in str(body_["detail"])
        before = len((await c.get("/v1/memories", headers=h)).json()["results"])
        assert before == 3

        many = "\n".join(
            json.dumps({"messages": [{"role": "user", "content": f"fact {i}"}]}) for i in range(6)
        ).encode()
        r = await c.post("/v1/import", content=many, params={"infer": "false"}, headers=h)
        assert r.status_code == 202
        assert r.headers["location"] == f"/v1/jobs/{r.json()['id']}"
        for _ in range(200):
            job = (await c.get(r.headers["location"], headers=h)).json()
            if job["status"] != "running":
                break
            await asyncio.sleep(0.02)
        assert job["status"] == "done"
        assert job["done"] == job["total"] == 6
        assert job["report"]["events"]["ADD"] == 6
        # Another key cannot see the job.
        assert_problem(await c.get(r.headers["location"], headers=hs.auth("team")), 404, "job_not_found")


async def test_status_and_health(harness: Harness) -> None:
    c = harness.client
    assert (await c.get("/healthz")).json() == {"status": "ok"}
    ready = await c.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "store": "ok",
        "embedder": "ok",
        "azure": "skipped",
    }
    status = (await c.get("/v1/status", headers=harness.auth("alice"))).json()
    assert status["backend"] == "sqlite"
    assert status["dimension"] == 384
    assert status["infer"] is False
    assert status["principal"] == {
        "name": "alice",
        "read_only": False,
        "user_ids": ["alice"],
        "agent_ids": [],
        "run_ids": [],
        "rate_limit": None,
    }
    assert set(status["usage"]) == {"total"}  # a bound key sees no per-scope breakdown
    admin = (await c.get("/v1/status", headers=harness.auth("admin"))).json()
    assert "by_group_id" in admin["usage"]


async def test_readyz_fails_as_a_problem_when_the_store_is_gone(harness: Harness) -> None:
    await harness.app.state.services.memory.aclose()
    r = await harness.client.get("/readyz")
    body = assert_problem(r, 503, "not_ready")
    assert "store" in str(body["detail"])


async def test_openapi_document_is_valid_and_declares_errors(harness: Harness) -> None:
    doc = (await harness.client.get("/openapi.json")).json()
    validate(doc)
    assert doc["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            if path in ("/healthz",):
                continue
            statuses = set(op["responses"])
            if path != "/readyz":
                assert {"401", "403", "413", "422", "429", "500", "503"} <= statuses, (method, path)
                assert op.get("security") == [{"ApiKey": []}], (method, path)
                assert "HTTPValidationError" not in json.dumps(op)
            problem = op["responses"]["503"]["content"]["application/problem+json"]["schema"]
            assert problem == {"$ref": "#/components/schemas/Problem"}
            if "{memory_id}" in path:
                assert "404" in statuses
    assert (await harness.client.get("/docs")).status_code == 200


async def test_inference_on_azure_and_azure_throttling_as_429(emulator: Emulator, tmp_path: Path) -> None:
    """With a chat deployment (the emulator): add infers facts; a throttled call is a 429 with Retry-After."""
    config = {
        "endpoint": emulator.endpoint,
        "api_key": "test-key",
        "chat": "gpt-4o",
        "retry": {"max_attempts": 1},
        "store": {"url": str(tmp_path / "m.db")},
    }
    async with harness_for(tmp_path / "m.db", settings=AzmemSettings.load(config)) as hs:
        c, h = hs.client, hs.auth("alice")
        emulator.script("gpt-4o", [json.dumps({"facts": [{"text": "Is vegetarian", "subject": "user"}]})])
        r = await c.post("/v1/memories", json={"messages": "I'm vegetarian, by the way"}, headers=h)
        assert r.status_code == 200, r.text
        assert [(e["event"], e["memory"]) for e in r.json()["results"]] == [("ADD", "Is vegetarian")]

        emulator.fault("gpt-4o", Fault.rate_limit(retry_after=7, times=1))
        r = await c.post("/v1/query", json={"question": "what do I eat?"}, headers=h)
        body = assert_problem(r, 429, "429")  # the library's code: Azure's own error code
        assert r.headers["retry-after"] == "7"
        assert body["retryable"] is True
        usage = (await c.get("/v1/status", headers=hs.auth("admin"))).json()["usage"]
        assert usage["total"]["calls"] >= 1
        assert any(k.startswith("user_id=alice") for k in usage["by_group_id"])


async def test_the_server_on_a_postgresql_store(pg_url: str, tmp_path: Path) -> None:
    """The same routes and keys on PostgreSQL: keys in its azmem_api_keys table, memories in its store."""
    settings = AzmemSettings.load(None, store={"url": pg_url})
    async with harness_for(tmp_path / "unused.db", settings=settings) as hs:
        c = hs.client
        mid = await hs.add("alice keeps bees", key="alice")
        await hs.add("bob keeps goats", user_id="bob")
        hits = (await c.post("/v1/search", json={"query": "bees"}, headers=hs.auth("alice"))).json()[
            "results"
        ]
        assert [(m["id"], m["user_id"]) for m in hits] == [(mid, "alice")]
        r = await c.post("/v1/search", json={"query": "goats", "user_id": "bob"}, headers=hs.auth("alice"))
        assert_problem(r, 403, "scope_denied")
        assert (await c.get("/v1/status", headers=hs.auth("alice"))).json()["backend"] == "postgres"
        hs.ring.revoke("alice")
        assert_problem(await c.get("/v1/memories", headers=hs.auth("alice")), 401, "invalid_key")


def test_the_error_tree_gives_the_server_statuses() -> None:
    assert http_status_for(AuthRequiredError("x")) == 401
    assert http_status_for(ScopeDeniedError("x")) == 403
    assert http_status_for(MemoryNotFoundError("x")) == 404
    assert http_status_for(PayloadTooLargeError("x")) == 413
    assert http_status_for(KeyRateLimitedError("x")) == 429
