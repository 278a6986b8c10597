"""The response cache's two decisions: which calls it may answer, and where its I/O runs.

* Sampled calls (temperature unset, i.e. the service's 1, or above 0; reasoning models) are
  asked afresh unless ``cache_sampled`` says to cache them: a stored draw is not the answer.
* The async client's lookups run in a worker thread: SQLite and PostgreSQL block, and the
  event loop must keep serving other tasks meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llm_helpers import FAST_RETRY, Factory, Spans, chat_requests, factories, settings

from azmem.azure.cache import ResponseCache
from azmem.azure.llm import AsyncLLMClient, LLMClient
from azmem.azure.settings import AzmemSettings


@pytest.fixture(params=["sync", "async"])
def make_llm(request: pytest.FixtureRequest, emulator: Any) -> Iterator[Factory]:
    yield from factories(request, emulator)


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[ResponseCache]:
    with ResponseCache(tmp_path / "cache.db") as c:
        yield c


@pytest.mark.parametrize(
    ("deployment", "params"),
    [("gpt-4o", {}), ("gpt-4o", {"temperature": 0.7}), ("o3-mini", {})],
    ids=["unset-temperature", "temperature-0.7", "reasoning-model"],
)
def test_sampled_calls_are_asked_afresh(
    make_llm: Factory, cache: ResponseCache, deployment: str, params: dict[str, Any]
) -> None:
    spans = Spans()
    llm = make_llm(deployment, cache=cache, tracer=spans.tracer)
    first = llm.generate("hello", **params)
    second = llm.generate("hello", **params)
    assert not first.cached
    assert not second.cached
    assert len(chat_requests(make_llm.emu)) == 2
    assert len(cache) == 0
    assert all(dict(s.attributes or {})["azmem.cache.bypass"] == "sampled" for s in spans.finished)


def test_temperature_zero_is_cached(make_llm: Factory, cache: ResponseCache) -> None:
    llm = make_llm(cache=cache)
    assert not llm.generate("hello", temperature=0).cached
    assert llm.generate("hello", temperature=0).cached
    assert len(chat_requests(make_llm.emu)) == 1


def test_cache_sampled_is_the_explicit_choice(make_llm: Factory, cache: ResponseCache) -> None:
    llm = make_llm(cache=cache, cache_sampled=True)
    llm.generate("hello", temperature=0.7)
    assert llm.generate("hello", temperature=0.7).cached
    assert len(chat_requests(make_llm.emu)) == 1


def test_the_setting_reaches_the_client(emulator: Any, tmp_path: Path) -> None:
    def calls(**cache_settings: Any) -> int:
        emulator.reset()
        config = AzmemSettings.load(
            endpoint=emulator.endpoint,
            api_key="test-key",
            chat="gpt-4o",
            home=tmp_path,
            cache={"enabled": True, "path": tmp_path / f"c{len(cache_settings)}.db", **cache_settings},
        )
        with LLMClient(config) as llm:
            llm.generate("hello")
            llm.generate("hello")
        return len(chat_requests(emulator))

    assert calls() == 2
    assert calls(cache_sampled=True) == 1


class _SlowCache(ResponseCache):
    """A cache whose lookups take as long as a busy database's."""

    DELAY = 0.3

    def get(self, key: str) -> Any | None:
        time.sleep(self.DELAY)
        return super().get(key)

    def set(self, key: str, value: Any, *, namespace: str = "", ttl_seconds: float | None = None) -> None:
        time.sleep(self.DELAY)
        super().set(key, value, namespace=namespace, ttl_seconds=ttl_seconds)


def test_the_async_client_keeps_the_event_loop_serving(emulator: Any, tmp_path: Path) -> None:
    slow = _SlowCache(tmp_path / "slow.db")

    async def main() -> tuple[int, float]:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        async with AsyncLLMClient(chat=settings(emulator), cache=slow, retry=FAST_RETRY) as llm:
            task = asyncio.create_task(ticker())
            started = time.monotonic()
            await llm.generate("hello", temperature=0)  # miss: one get, one set
            await llm.generate("hello", temperature=0)  # hit: one get
            elapsed = time.monotonic() - started
            stop.set()
            await task
        return ticks, elapsed

    ticks, elapsed = asyncio.run(main())
    slow.close()
    assert elapsed >= 3 * _SlowCache.DELAY
    # On the loop, the three 0.3 s lookups would have frozen the ticker (about 0 ticks
    # during them); in a worker thread it ticks every 10 ms throughout.
    assert ticks >= 0.5 * (3 * _SlowCache.DELAY) / 0.01, ticks
