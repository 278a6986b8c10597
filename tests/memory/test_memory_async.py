"""AsyncMemory gives the same results and errors as Memory for the same calls."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

import pytest

from azmem.embeddings import LocalEmbedder
from azmem.emulator import Emulator
from azmem.errors import AzmemError, InvalidInputError, MemoryNotFoundError
from azmem.memory import AsyncMemory, Memory

from .conftest import CHAT, azure_config, decisions, facts

_VOLATILE = {"id", "created_at", "updated_at", "hash", "memory_id", "next_cursor"}


def _normalise(value: Any, ids: dict[str, int]) -> Any:
    """Results without what legitimately differs between two runs (uuids, clocks, float noise)."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in {"id", "memory_id"} and isinstance(v, str):
                out[k] = ids.setdefault(v, len(ids))
            elif k in {"cited_ids"}:
                out[k] = [ids.setdefault(x, len(ids)) for x in v]
            elif k in {"score", "similarity"} and isinstance(v, float):
                out[k] = round(v, 4)
            elif k not in _VOLATILE:
                out[k] = _normalise(v, ids)
        return out
    if isinstance(value, list):
        return [_normalise(v, ids) for v in value]
    return value


# (method, args, kwargs); "$0" is replaced by the id of the first memory added.
SCENARIO: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("add", ("I like tea",), {"user_id": "u", "infer": False}),
    (
        "add",
        ([{"role": "user", "content": "I live in Oslo", "timestamp": 1700000000}],),
        {"user_id": "u", "infer": False},
    ),
    ("add", ("I moved to Bergen",), {"user_id": "u"}),  # inferred: scripted UPDATE of the Oslo memory
    ("search", ("where do I live",), {"user_id": "u", "limit": 5}),
    ("search", ("tea",), {"user_id": "u", "mode": "bm25", "filters": {"role": "user"}}),
    ("get_all", (), {"user_id": "u", "limit": 1}),
    ("update", ("$0", "I like green tea"), {}),
    ("get", ("$0",), {}),
    ("history", ("$0",), {}),
    ("query", ("What do I drink?",), {"user_id": "u"}),
    ("delete", ("$0",), {}),
    ("get", ("$0",), {}),  # MemoryNotFoundError
    ("search", ("",), {"user_id": "u"}),  # InvalidInputError
    ("delete_all", (), {"user_id": "u"}),
    ("get_all", (), {"user_id": "u"}),
]


def _script(emulator: Emulator) -> None:
    def reconcile(body: dict[str, Any]) -> str:
        import json

        payload = json.loads(body["messages"][-1]["content"])
        oslo = next(m["id"] for m in payload["existing_memories"] if "Oslo" in m["text"])
        return decisions((0, "UPDATE", oslo, "The user lives in Bergen"))

    answers = iter([facts("The user moved to Bergen"), reconcile, '{"answer": "Tea.", "used": [0]}'])
    emulator.script(CHAT, lambda body: (lambda r: r(body) if callable(r) else r)(next(answers)))


def _outcome(value: Any) -> Any:
    if isinstance(value, AzmemError):
        return ("error", type(value).__name__)
    return value


def _run_sync(m: Memory) -> list[Any]:
    out: list[Any] = []
    first: str | None = None
    for name, args, kwargs in SCENARIO:
        args = tuple(first if a == "$0" else a for a in args)
        try:
            result = getattr(m, name)(*args, **kwargs)
        except AzmemError as exc:
            result = exc
        if first is None and name == "add":
            first = result.results[0].id
        out.append(_outcome(result))
    return out


async def _run_async(m: AsyncMemory) -> list[Any]:
    out: list[Any] = []
    first: str | None = None
    for name, args, kwargs in SCENARIO:
        args = tuple(first if a == "$0" else a for a in args)
        try:
            result = await getattr(m, name)(*args, **kwargs)
        except AzmemError as exc:
            result = exc
        if first is None and name == "add":
            first = result.results[0].id
        out.append(_outcome(result))
    return out


def test_same_scenario_same_results(
    emulator: Emulator, local_embedder: LocalEmbedder, tmp_path: Path
) -> None:
    _script(emulator)
    with Memory(config=azure_config(emulator, tmp_path / "sync"), embedder=local_embedder) as m:
        sync_out = _run_sync(m)
    emulator.reset()
    _script(emulator)

    async def run() -> list[Any]:
        async with AsyncMemory(
            config=azure_config(emulator, tmp_path / "async"), embedder=local_embedder
        ) as am:
            return await _run_async(am)

    async_out = asyncio.run(run())
    assert ("error", "MemoryNotFoundError") in sync_out
    assert ("error", "InvalidInputError") in sync_out
    assert _normalise(async_out, {}) == _normalise(sync_out, {})


def test_public_methods_match() -> None:
    sync_api = {n for n in dir(Memory) if not n.startswith("_")}
    async_api = {n for n in dir(AsyncMemory) if not n.startswith("_")}
    assert sync_api - {"close"} == async_api - {"aclose"}
    for name in sync_api - {
        "close",
        "from_config",
        "prompts",
        "can_infer",
        "store_path",
        "store_url",
        "settings",
        "embedder",
    }:
        sync_sig = inspect.signature(getattr(Memory, name))
        async_fn = getattr(AsyncMemory, name)
        assert inspect.iscoroutinefunction(async_fn), name
        assert inspect.signature(async_fn).parameters.keys() == sync_sig.parameters.keys(), name


async def test_async_errors_are_the_same_types(local_embedder: LocalEmbedder, tmp_path: Path) -> None:
    async with AsyncMemory(embedder=local_embedder, store_path=tmp_path / "a.db") as m:
        with pytest.raises(InvalidInputError):
            await m.add("x" * (1024 * 1024), user_id="u")
        with pytest.raises(MemoryNotFoundError):
            await m.get("missing")
        added = await m.add("hello", user_id="u")
        # the event loop is not blocked while the store and the embedder work
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await m.add([{"content": f"memory number {i} about tea"} for i in range(64)], user_id="u")
        task.cancel()
        assert ticks > 1
        assert (await m.get(added.results[0].id)).memory == "hello"
