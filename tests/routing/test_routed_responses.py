"""Responses API calls through routed pools: the same failover, limiter and usage as chat completions.

A deployment whose ``responses_api`` capability is on (here set in the pool entry) gets its
``generate``/``stream`` calls as ``POST /openai/responses``; routing must not care which wire
protocol an attempt speaks. All through the real openai SDK against the emulator over HTTP.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel
from routing_helpers import emu_pool, emu_router, statuses

from azmem.azure.llm import AsyncLLMClient, LLMClient
from azmem.azure.routing import Requirements, Wait
from azmem.azure.usage import UsageTracker
from azmem.emulator import Fault

RESPONSES = {"api_version": "2025-04-01-preview", "capabilities": {"responses_api": True}}


class City(BaseModel):
    name: str


def paths(emulator: Any, deployment: str) -> list[str]:
    return [r.path.rsplit("/", 1)[-1] for r in emulator.requests_for(deployment)]


def responses_pool(emulator: Any, *names: str, **per: dict[str, Any]) -> list[dict[str, Any]]:
    pool = emu_pool(emulator, *names)
    for entry in pool:
        entry.update({**RESPONSES, **per.get(entry["name"], {})})
    return pool


def test_429_fails_over_without_sleeping_and_the_limiter_counts_the_tokens(emulator: Any) -> None:
    router = emu_router(
        {"chat": responses_pool(emulator, "east", "west", east={"weight": 1000}, west={"weight": 0.001})}
    )
    usage = UsageTracker()
    emulator.fault("east", Fault.rate_limit(retry_after=30, times=1))
    with LLMClient(router=router, usage=usage) as llm:
        started = time.monotonic()
        first = llm.generate("hello", max_tokens=40)
        assert time.monotonic() - started < 2.0  # failover, not a 30 s sleep
        second = llm.generate("a city as json", response_model=City, max_tokens=40)
    assert (first.deployment, second.deployment) == ("west", "west")
    assert isinstance(second.parsed, City)
    assert statuses(emulator, "east") == [429]
    assert paths(emulator, "east") == ["responses"]
    assert paths(emulator, "west") == ["responses", "responses"]
    rows = {r["name"]: r for r in router.snapshot()}
    assert (rows["east"]["throttles"], rows["west"]["successes"]) == (1, 2)
    # The ledger is charged what the service reported for the Responses calls.
    expected = first.usage.input_tokens + second.usage.input_tokens
    assert rows["west"]["input_tokens"] == expected > 0
    assert usage.summary()["by_deployment"]["west"]["calls"] == 2


async def test_async_client_fails_over_on_a_server_error(emulator: Any) -> None:
    router = emu_router(
        {"chat": responses_pool(emulator, "r1", "r2", r1={"weight": 1000}, r2={"weight": 0.001})}
    )
    emulator.fault("r1", Fault.server_error(503, times=1))
    async with AsyncLLMClient(router=router) as llm:
        result = await llm.generate("hello")
    assert result.deployment == "r2"
    assert result.text
    assert statuses(emulator, "r1") == [503]
    assert paths(emulator, "r2") == ["responses"]


def test_stream_opening_is_routed_and_read_as_responses_events(emulator: Any) -> None:
    router = emu_router(
        {"chat": responses_pool(emulator, "st1", "st2", st1={"weight": 1000}, st2={"weight": 0.001})}
    )
    emulator.fault("st1", Fault.server_error(502, times=1))
    with LLMClient(router=router) as llm:
        stream = llm.stream("tell me")
        text = "".join(stream)
    assert text
    assert stream.result.deployment == "st2"
    assert stream.usage is not None
    assert stream.usage.output_tokens > 0
    assert statuses(emulator, "st1") == [502]
    assert paths(emulator, "st2") == ["responses"]


def test_a_mixed_pool_sends_each_deployment_its_own_wire_protocol(emulator: Any) -> None:
    pool = emu_pool(emulator, "old", "new", new={"priority": 1, **RESPONSES})
    router = emu_router({"chat": pool})
    with LLMClient(router=router) as llm:
        assert llm.generate("hi").deployment == "old"
        emulator.fault("old", Fault.server_error(500, times=1))
        assert llm.generate("hi").deployment == "new"  # failed over from chat to Responses
    assert statuses(emulator, "old") == [200, 500]
    assert paths(emulator, "old") == ["completions", "completions"]
    assert emulator.requests_for("new")[0].json["input"][0]["content"] == "hi"
    assert paths(emulator, "new") == ["responses"]


def test_limiter_keeps_responses_calls_under_the_emulated_quota(emulator: Any) -> None:
    pool = responses_pool(emulator, "q1", "q2", q1={"tpm": 400}, q2={"tpm": 400})
    emulator.deployment("q1").tpm = 400
    emulator.deployment("q2").tpm = 400
    router = emu_router({"chat": pool})
    with LLMClient(router=router) as llm:
        served = [llm.generate("x" * 200, max_tokens=60).deployment for _ in range(6)]
    assert sorted(served) == ["q1", "q1", "q1", "q2", "q2", "q2"]
    assert 429 not in statuses(emulator, "q1") + statuses(emulator, "q2")
    assert set(paths(emulator, "q1") + paths(emulator, "q2")) == {"responses"}
    # Both windows are full of Responses traffic: a seventh request waits instead of sending.
    assert isinstance(router.begin("chat", Requirements(prompt_tokens=60, max_output_tokens=60)).next(), Wait)
