"""The LLM clients with router=: every attempt goes where the router says, through the real SDK."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pydantic import BaseModel
from routing_helpers import emu_pool, emu_router, statuses

from azmem.azure.llm import AsyncLLMClient, LLMClient
from azmem.azure.routing import Router
from azmem.azure.settings import AzmemSettings, AzureOpenAISettings
from azmem.azure.usage import UsageTracker
from azmem.emulator import Fault
from azmem.errors import InvalidInputError, RateLimitError


class City(BaseModel):
    name: str


def test_sync_client_fails_over_without_sleeping_and_tracks_usage_per_deployment(emulator: Any) -> None:
    router = emu_router(
        {"chat": emu_pool(emulator, "east", "west", east={"weight": 1000}, west={"weight": 0.001})}
    )
    usage = UsageTracker()
    with LLMClient(router=router, usage=usage) as llm:
        emulator.fault("east", Fault.rate_limit(retry_after=30, times=1))
        started = time.monotonic()
        result = llm.generate("hello")
        assert time.monotonic() - started < 2.0
        assert result.deployment == "west"
        assert llm.generate("again").deployment == "west"  # east cools for its Retry-After
        parsed = llm.generate("a city as json", response_model=City)
        assert isinstance(parsed.parsed, City)
    assert statuses(emulator, "east") == [429]
    assert usage.summary()["by_deployment"]["west"]["calls"] == 3


def test_model_size_small_uses_the_small_pool(emulator: Any) -> None:
    router = emu_router(
        {"chat": emu_pool(emulator, "big"), "chat-small": emu_pool(emulator, "mini", model="gpt-4o-mini")}
    )
    with LLMClient(router=router) as llm:
        assert llm.generate("hi").deployment == "big"
        assert llm.generate("hi", model_size="small").deployment == "mini"


def test_stream_opening_is_routed(emulator: Any) -> None:
    router = emu_router({"chat": emu_pool(emulator, "s1", "s2", s1={"weight": 1000}, s2={"weight": 0.001})})
    emulator.fault("s1", Fault.server_error(502, times=1))
    with LLMClient(router=router) as llm:
        text = "".join(llm.stream("tell me"))
    assert "s2" in text
    assert statuses(emulator, "s1") == [502]


async def test_async_client_routes_and_waits_only_when_all_are_cooling(emulator: Any) -> None:
    router = emu_router({"chat": emu_pool(emulator, "a", "b")})
    emulator.fault("a", Fault.rate_limit(retry_after_ms=200, times=1))
    emulator.fault("b", Fault.rate_limit(retry_after_ms=300, times=1))
    async with AsyncLLMClient(router=router) as llm:
        started = time.monotonic()
        result = await llm.generate("hello")
        waited = time.monotonic() - started
        chunks = [c async for c in llm.stream("more")]
    assert result.deployment in {"a", "b"}
    assert 0.2 <= waited < 2.0  # waited for the earliest deployment, once
    assert chunks


def test_final_error_keeps_its_type_and_lists_the_deployments(emulator: Any) -> None:
    router = emu_router({"chat": emu_pool(emulator, "x", "y")}, max_attempts=2)
    emulator.fault("x", Fault.rate_limit(retry_after=20))
    emulator.fault("y", Fault.rate_limit(retry_after=20))
    with LLMClient(router=router) as llm, pytest.raises(RateLimitError) as info:
        llm.generate("hello")
    assert set(info.value.details["routing"]["deployments"]) >= {"chat/x", "chat/y"}


def test_settings_routing_section_builds_a_shared_router(emulator: Any) -> None:
    pools = {"chat": emu_pool(emulator, "cfg1", "cfg2")}
    settings = AzmemSettings.load({"chat": {"api_key": "test-key"}, "routing": {"pools": pools}})
    with LLMClient(settings) as one, LLMClient(settings) as two:
        assert one.generate("hi").deployment in {"cfg1", "cfg2"}
        assert two.generate("hi").deployment in {"cfg1", "cfg2"}
        assert one._routing is not None
        assert two._routing is not None
        assert one._routing.router is two._routing.router is Router.shared({"pools": pools})


def test_pool_entries_inherit_the_role_key(emulator: Any) -> None:
    pool = [{"name": "k", "endpoint": emulator.endpoint, "deployment": "k", "model": "gpt-4o"}]
    from azmem.emulator import Deployment

    emulator.add_deployment(Deployment("k", model="gpt-4o"))
    router = emu_router({"chat": pool})
    with LLMClient(chat=AzureOpenAISettings(api_key="test-key"), router=router) as llm:
        assert llm.generate("hi").deployment == "k"


def test_client_and_router_together_are_refused(emulator: Any) -> None:
    import openai

    sdk = openai.OpenAI(base_url=f"{emulator.endpoint}/openai/v1/", api_key="test-key")
    router = emu_router({"chat": emu_pool(emulator, "z")})
    with pytest.raises(InvalidInputError, match="router"):
        LLMClient(chat=AzureOpenAISettings(deployment="z"), client=sdk, router=router)
    sdk.close()
