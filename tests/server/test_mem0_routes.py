"""mem0's open-source REST server's routes, with the bodies mem0's server takes and the answers it gives."""

from __future__ import annotations

from .conftest import Harness
from .test_rest import assert_problem


async def test_a_mem0_client_only_changes_its_base_url(harness: Harness) -> None:
    c, h = harness.client, harness.auth("admin")
    # POST /memories: mem0's MemoryCreate (messages + ids + metadata).
    r = await c.post(
        "/memories",
        json={
            "messages": [
                {"role": "user", "content": "I'm vegetarian and I love Thai food"},
                {"role": "assistant", "content": "Noted!"},
            ],
            "user_id": "alice",
            "metadata": {"source": "onboarding"},
        },
        headers=h,
    )
    assert r.status_code == 200, r.text
    added = r.json()["results"]
    assert [e["event"] for e in added] == ["ADD", "ADD"]  # no chat deployment: stored verbatim
    mid = added[0]["id"]

    listed = (await c.get("/memories", params={"user_id": "alice"}, headers=h)).json()
    assert {m["memory"] for m in listed["results"]} == {"I'm vegetarian and I love Thai food", "Noted!"}
    one = (await c.get(f"/memories/{mid}", headers=h)).json()
    assert one["id"] == mid
    assert one["user_id"] == "alice"
    assert one["metadata"]["source"] == "onboarding"

    found = (
        await c.post("/search", json={"query": "what food do I like?", "user_id": "alice"}, headers=h)
    ).json()
    assert found["results"][0]["id"] == mid
    assert "score" in found["results"][0]
    filtered = await c.post(
        "/search", json={"query": "food", "user_id": "alice", "filters": {"role": "assistant"}}, headers=h
    )
    assert [m["memory"] for m in filtered.json()["results"]] == ["Noted!"]

    # PUT /memories/{id}: the new text as mem0 clients send it.
    for body in ({"text": "I'm vegan"}, {"data": "I'm vegan now"}, {"memory": "I'm vegan since 2024"}):
        r = await c.put(f"/memories/{mid}", json=body, headers=h)
        assert r.json() == {"message": "Memory updated successfully!"}
    history = (await c.get(f"/memories/{mid}/history", headers=h)).json()
    assert isinstance(history, list)
    assert [e["event"] for e in history] == [
        "ADD",
        "UPDATE",
        "UPDATE",
        "UPDATE",
    ]
    assert history[-1]["new_memory"] == "I'm vegan since 2024"

    assert (await c.delete(f"/memories/{mid}", headers=h)).json() == {
        "message": "Memory deleted successfully"
    }
    assert_problem(await c.get(f"/memories/{mid}", headers=h), 404, "memory_not_found")
    r = await c.delete("/memories", params={"user_id": "alice"}, headers=h)
    assert r.json() == {"message": "All relevant memories deleted"}
    assert (await c.get("/memories", params={"user_id": "alice"}, headers=h)).json()["results"] == []

    # Like mem0's server, a call without any identifier is refused (with a problem, not a bare detail).
    body = assert_problem(await c.get("/memories", headers=h), 422, "missing_scope")
    assert body["detail"]
    assert_problem(await c.put(f"/memories/{mid}", json={}, headers=h), 422, "invalid_request")


async def test_reset_needs_an_unbound_writable_key(harness: Harness) -> None:
    await harness.add("bob's", user_id="bob")
    await harness.add("alice's", key="alice")
    assert_problem(
        await harness.client.post("/reset", headers=harness.auth("alice")), 403, "needs_unbound_key"
    )
    r = await harness.client.post("/reset", headers=harness.auth("admin"))
    assert r.json() == {"message": "All memories reset"}
    for user in ("alice", "bob"):
        left = await harness.client.get("/memories", params={"user_id": user}, headers=harness.auth("admin"))
        assert left.json()["results"] == []


async def test_a_bound_key_defaults_to_its_user_on_mem0_routes(harness: Harness) -> None:
    c, h = harness.client, harness.auth("alice")
    r = await c.post(
        "/memories", json={"messages": [{"role": "user", "content": "I run marathons"}]}, headers=h
    )
    assert r.status_code == 200
    listed = (await c.get("/memories", headers=h)).json()["results"]
    assert [(m["memory"], m["user_id"]) for m in listed] == [("I run marathons", "alice")]
