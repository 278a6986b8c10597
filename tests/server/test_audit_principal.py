"""The audit trail names the API key a request came with, over REST and over MCP-over-HTTP."""

from __future__ import annotations

from pathlib import Path

from azmem.stores import open_store

from .conftest import harness_for


async def test_rest_writes_are_recorded_as_the_key(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    async with harness_for(path) as h:
        mid = await h.add("I like green tea", key="alice", user_id="alice")
        r = await h.client.delete(f"/v1/memories/{mid}", headers=h.auth("admin"))
        assert r.status_code == 200, r.text
    store = open_store(path, read_only=True)
    records = {(r.operation, r.principal) for r in store.audit_log.list(limit=50)}  # type: ignore[attr-defined]
    store.close()
    assert ("add", "key:alice") in records
    assert ("delete", "key:admin") in records
    assert all(p.startswith("key:") for op, p in records if op in ("add", "delete"))
