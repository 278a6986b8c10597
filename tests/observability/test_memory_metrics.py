"""Memory operations (add, search, delete, ...) measured through both faces, and the store size gauge.

Embeddings come from the emulator's embedding deployment (no model to load); the store is
a real SQLite file. No attribute may carry memory text, ids or scope.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from azmem.emulator import Emulator
from azmem.errors import MemoryNotFoundError
from azmem.memory import AsyncMemory, Memory

from .conftest import Metrics

DURATION = "azmem.memory.operation.duration"
RESULTS = "azmem.memory.operation.results"
SECRET_TEXT = "Alice keeps her spare key under the blue flowerpot"


def config(emulator: Emulator, tmp_path: Path) -> dict[str, Any]:
    return {
        "endpoint": emulator.endpoint,
        "api_key": "test-key",
        "embedding": "text-embedding-3-small",
        "retry": {"max_attempts": 2, "base_delay": 0.01, "max_delay": 0.02},
        "store": {"path": tmp_path / "memory.db"},
    }


@pytest.fixture
def memory(emulator: Emulator, tmp_path: Path) -> Iterator[Memory]:
    with Memory(config=config(emulator, tmp_path)) as m:
        yield m


def by_operation(metrics: Metrics, name: str) -> dict[str, Any]:
    return {p.attributes["azmem.memory.operation"]: p for p in metrics.points(name)}


def test_add_and_search_record_latency_and_result_counts(memory: Memory, metrics: Metrics) -> None:
    added = memory.add(SECRET_TEXT, user_id="alice", infer=False)
    memory.add("Alice likes green tea", user_id="alice", infer=False)
    found = memory.search("where is the key", user_id="alice", limit=5)
    assert len(added.results) == 1
    assert len(found.results) == 2

    durations = by_operation(metrics, DURATION)
    assert set(durations) == {"add", "search"}
    assert durations["add"].count == 2
    assert durations["search"].count == 1
    assert durations["add"].attributes == {"azmem.memory.operation": "add", "azmem.store.backend": "sqlite"}
    assert all(0 < p.value < 30 for p in durations.values())
    results = by_operation(metrics, RESULTS)
    assert (results["add"].value, results["add"].count) == (2, 2)  # one memory per add
    assert (results["search"].value, results["search"].count) == (2, 1)
    assert metrics.units[DURATION] == "s"
    assert metrics.units[RESULTS] == "{memory}"
    # The embeddings behind them are GenAI operations of their own.
    assert metrics.points("gen_ai.client.operation.duration", gen_ai__operation__name="embeddings")


def test_the_store_size_gauge_counts_the_memories(memory: Memory, metrics: Metrics) -> None:
    memory.add(SECRET_TEXT, user_id="alice", infer=False)
    memory.add("Bob owns a red bicycle", user_id="bob", infer=False)
    (size,) = metrics.points("azmem.memory.store.size")
    assert size.value == 2
    assert size.attributes["azmem.store.backend"] == "sqlite"
    assert len(size.attributes["azmem.store.id"]) == 12  # a hash: the path itself stays out
    memory.delete_all(user_id="bob")
    (size,) = metrics.points("azmem.memory.store.size")
    assert size.value == 1


def test_delete_and_a_failure_are_measured_with_error_type(memory: Memory, metrics: Metrics) -> None:
    event = memory.add(SECRET_TEXT, user_id="alice", infer=False).results[0]
    memory.delete(event.id)
    with pytest.raises(MemoryNotFoundError):
        memory.get(event.id)
    assert memory.delete_all(user_id="alice") == 0
    durations = by_operation(metrics, DURATION)
    assert set(durations) >= {"add", "delete", "get", "delete_all"}
    assert durations["get"].attributes["error.type"] == "MemoryNotFoundError"
    results = by_operation(metrics, RESULTS)
    assert "get" not in results  # a failed operation returned nothing to count
    assert (results["delete"].value, results["delete_all"].value) == (1, 0)


def test_the_async_face_is_measured_by_the_same_helper(
    emulator: Emulator, tmp_path: Path, metrics: Metrics
) -> None:
    async def run() -> None:
        async with AsyncMemory(config=config(emulator, tmp_path)) as m:
            await m.add(SECRET_TEXT, user_id="alice", infer=False)
            await m.search("key", user_id="alice")

    asyncio.run(run())
    durations = by_operation(metrics, DURATION)
    assert set(durations) == {"add", "search"}
    assert by_operation(metrics, RESULTS)["search"].value == 1


def test_no_attribute_carries_memory_content_or_scope(memory: Memory, metrics: Metrics) -> None:
    memory.add(SECRET_TEXT, user_id="alice", infer=False)
    memory.search("flowerpot", user_id="alice")
    values = [str(v) for points in metrics.collect().values() for p in points for v in p.attributes.values()]
    assert values
    assert not [v for v in values if "flowerpot" in v or "alice" in v or "memory.db" in v]
