"""The engine's side: who (principal), every LLM call (deployment, tokens, cost, request id, outcome)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from azmem.emulator import Emulator, Fault
from azmem.errors import MemoryNotFoundError, ServiceError
from azmem.memory import AsyncMemory, Memory
from azmem.memory.audit import acting_as
from azmem.stores.audit import AuditEntry

from .conftest import FakeEmbedder, azure_config, facts


def _records(memory: Any) -> list[Any]:
    return list(memory._store.audit_log.records())


def test_llm_calls_and_the_change_are_recorded_as_the_principal(emulator: Emulator, tmp_path: Path) -> None:
    with Memory(config=azure_config(emulator, tmp_path)) as memory, acting_as("key:alpha"):
        emulator.script("gpt-4o", [facts("The user likes green tea")])
        memory.add("I like green tea", user_id="alice")
        emulator.script("gpt-4o", ['{"answer": "Green tea.", "used": [0]}'])
        memory.query("What do I drink?", user_id="alice")
        records = _records(memory)
    assert [(r.operation, r.details.get("prompt")) for r in records] == [
        ("llm.chat", "memory.extract"),
        ("llm.embed", None),
        ("add", None),
        ("llm.embed", None),
        ("llm.chat", "memory.answer"),
    ]
    assert {(r.principal, r.user_id, r.outcome) for r in records} == {("key:alpha", "alice", "ok")}
    chat = records[0].details
    assert chat["deployment"] == "gpt-4o"
    assert chat["request_id"]
    assert chat["input_tokens"] > 0
    assert chat["output_tokens"] > 0
    assert chat["cost_usd"] > 0
    embed = records[1].details
    assert (embed["deployment"], embed["inputs"]) == ("text-embedding-3-small", 1)
    assert embed["total_tokens"] > 0
    assert records[2].prev_hash == records[1].hash  # the calls went in with the change
    assert "green tea" not in str([r.model_dump() for r in records]).lower()


def test_a_failed_call_and_the_failed_change_are_recorded(emulator: Emulator, tmp_path: Path) -> None:
    with Memory(config=azure_config(emulator, tmp_path)) as memory:
        emulator.fault("gpt-4o", Fault(status=500, times=2))
        with pytest.raises(ServiceError):
            memory.add("I like green tea", user_id="bob")
        with pytest.raises(MemoryNotFoundError):
            memory.update("no-such-id", "x")
        records = _records(memory)
        assert memory.get_all(user_id="bob").results == []
    assert [(r.operation, r.outcome) for r in records] == [
        ("llm.chat", "error"),
        ("add", "error"),
        ("update", "error"),
    ]
    assert records[0].details["error"] == records[1].details["error"]
    assert records[0].details["deployment"] == "gpt-4o"
    assert records[0].details["status"] == 500
    assert records[2].details["error"] == "memory_not_found"


def test_reads_with_a_local_embedder_record_nothing(tmp_path: Path, embedder: FakeEmbedder) -> None:
    with Memory(embedder=embedder, store_path=tmp_path / "m.db") as memory:
        item = memory.add("a note", user_id="u", infer=False).results[0]
        memory.search("note", user_id="u")
        memory.get_all(user_id="u")
        memory.history(item.id)
        memory.get(item.id)
        assert [r.operation for r in _records(memory)] == ["add"]


def test_embedding_calls_can_be_left_out(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZMEM_AUDIT__EMBEDDINGS", "false")
    with Memory(config=azure_config(emulator, tmp_path)) as memory:
        memory.add("I like green tea", user_id="alice", infer=False)
        memory.search("tea", user_id="alice")
        assert [r.operation for r in _records(memory)] == ["add"]


def test_retention_prunes_after_a_write(
    tmp_path: Path, embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZMEM_AUDIT__RETENTION_DAYS", "30")
    with Memory(embedder=embedder, store_path=tmp_path / "m.db") as memory:
        old = datetime.now(UTC) - timedelta(days=31)
        memory._store.audit_log.append([AuditEntry("llm.chat", "os:x", at=old)])
        memory.add("a note", user_id="u", infer=False)
        assert [r.operation for r in _records(memory)] == ["add", "audit.prune"]
        assert memory._store.audit_log.verify().ok


def test_async_memory_records_its_principal(tmp_path: Path, embedder: FakeEmbedder) -> None:
    async def run() -> list[Any]:
        async with AsyncMemory(embedder=embedder, store_path=tmp_path / "m.db") as memory:
            with acting_as("key:beta"):
                item = (await memory.add("a note", user_id="u", infer=False)).results[0]
                await memory.delete(item.id)
            await memory.delete_all(user_id="u")
            return _records(memory)

    records = asyncio.run(run())
    assert [(r.operation, r.principal) for r in records] == [
        ("add", "key:beta"),
        ("delete", "key:beta"),
        ("delete_all", records[2].principal),
    ]
    assert records[2].principal.startswith("os:")


def test_a_read_only_store_records_nothing_and_still_answers(tmp_path: Path, embedder: FakeEmbedder) -> None:
    path = tmp_path / "m.db"
    with Memory(embedder=embedder, store_path=path) as memory:
        memory.add("a note", user_id="u", infer=False)
    with Memory(embedder=embedder, store_url=f"sqlite:///{path}?mode=ro") as memory:
        assert memory.search("note", user_id="u").results
        with pytest.raises(Exception, match="read-only"):
            memory.add("another", user_id="u", infer=False)
        assert [r.operation for r in _records(memory)] == ["add"]
