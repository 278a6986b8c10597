"""The GenAI semantic-convention instruments and azmem's client instruments, on real calls.

Every call goes through the real SDK to the emulator; the metrics are read back from the
OpenTelemetry SDK's in-memory reader. No tracer provider is installed: the metrics must
not depend on tracing being on.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

from azmem.azure.cache import ResponseCache
from azmem.azure.embedder import AzureEmbedder
from azmem.azure.llm import AsyncLLMClient, LLMClient
from azmem.azure.retry import RetryPolicy
from azmem.azure.settings import AzureOpenAISettings
from azmem.azure.usage import UsageTracker
from azmem.emulator import Emulator, Fault
from azmem.errors import ServiceError

from .conftest import Metrics

FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02, retry_after_ceiling=5.0)
TOKEN = "gen_ai.client.token.usage"
DURATION = "gen_ai.client.operation.duration"


def role(emulator: Emulator, deployment: str, **kw: Any) -> AzureOpenAISettings:
    return AzureOpenAISettings(endpoint=emulator.endpoint, deployment=deployment, api_key="test-key", **kw)


def server(emulator: Emulator) -> dict[str, Any]:
    host, port = emulator.endpoint.removeprefix("http://").split(":")
    return {"server.address": host, "server.port": int(port)}


def chat(emulator: Emulator, face: str, **kw: Any) -> Any:
    """One ``generate("hi")`` through the sync or the async client."""
    if face == "sync":
        with LLMClient(chat=role(emulator, "gpt-4o"), retry=FAST, **kw) as llm:
            return llm.generate("hi", max_tokens=40, group_id="team-a", prompt_name="extract")

    async def run() -> Any:
        async with AsyncLLMClient(chat=role(emulator, "gpt-4o"), retry=FAST, **kw) as llm:
            return await llm.generate("hi", max_tokens=40, group_id="team-a", prompt_name="extract")

    return asyncio.run(run())


def test_no_tracer_provider_is_installed_by_these_tests() -> None:
    # The GenAI metrics below come from the (non-recording) spans azmem makes when only a
    # MeterProvider is installed; a global TracerProvider would hide a regression there.
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider)


@pytest.mark.parametrize("face", ["sync", "async"])
def test_a_chat_call_records_genai_duration_and_token_usage(
    emulator: Emulator, metrics: Metrics, face: str
) -> None:
    result = chat(emulator, face)
    expected = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "azure.ai.openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": result.model,
        **server(emulator),
    }
    (duration,) = metrics.points(DURATION)
    assert duration.attributes == expected  # no error.type: it succeeded
    assert duration.count == 1
    assert 0 < duration.value < 30
    tokens = {p.attributes["gen_ai.token.type"]: p for p in metrics.points(TOKEN)}
    assert set(tokens) == {"input", "output"}
    assert tokens["input"].attributes == {**expected, "gen_ai.token.type": "input"}
    assert (tokens["input"].value, tokens["input"].count) == (result.usage.input_tokens, 1)
    assert (tokens["output"].value, tokens["output"].count) == (result.usage.output_tokens, 1)
    assert result.usage.input_tokens > 0
    assert result.usage.output_tokens > 0
    assert metrics.units[TOKEN] == "{token}"
    assert metrics.units[DURATION] == "s"


def test_an_embedding_call_records_input_tokens_only(emulator: Emulator, metrics: Metrics) -> None:
    usage = UsageTracker()
    with AzureEmbedder(role(emulator, "text-embedding-3-small"), retry=FAST, usage=usage) as embedder:
        vectors = embedder.embed(["the cat sat", "on the mat"])
    assert vectors.shape[0] == 2
    (duration,) = metrics.points(DURATION)
    assert duration.attributes == {
        "gen_ai.operation.name": "embeddings",
        "gen_ai.provider.name": "azure.ai.openai",
        "gen_ai.request.model": "text-embedding-3-small",
        **server(emulator),
    }
    (tokens,) = metrics.points(TOKEN)
    assert tokens.attributes["gen_ai.token.type"] == "input"
    assert tokens.value == usage.summary()["total"]["input_tokens"] > 0
    assert tokens.count == 1


def test_a_retry_after_a_429_is_one_throttle_one_retry_and_one_operation(
    emulator: Emulator, metrics: Metrics
) -> None:
    emulator.fault("gpt-4o", Fault.rate_limit(retry_after_ms=5, times=1))
    chat(emulator, "sync")
    assert [r.status for r in emulator.requests_for("gpt-4o")] == [429, 200]
    (throttle,) = metrics.points("azmem.client.throttles")
    assert throttle.attributes == {"azmem.deployment": "gpt-4o", "gen_ai.operation.name": "chat"}
    assert throttle.value == 1
    (retry,) = metrics.points("azmem.client.retries")
    assert retry.attributes == {
        "azmem.deployment": "gpt-4o",
        "gen_ai.operation.name": "chat",
        "error.type": "RateLimitError",
    }
    assert retry.value == 1
    # The caller saw one operation, which succeeded: one duration point without error.type.
    (duration,) = metrics.points(DURATION)
    assert duration.count == 1
    assert "error.type" not in duration.attributes


def test_a_failed_call_records_its_error_type_and_no_tokens(emulator: Emulator, metrics: Metrics) -> None:
    emulator.fault("gpt-4o", Fault.server_error(503))
    with pytest.raises(ServiceError):
        chat(emulator, "sync")
    (duration,) = metrics.points(DURATION)
    assert duration.attributes["error.type"] == "ServiceError"
    assert metrics.points(TOKEN) == []
    assert metrics.total("azmem.client.retries") == FAST.max_attempts - 1
    assert metrics.points("azmem.client.throttles") == []


def test_a_cache_hit_is_counted_and_sends_no_genai_operation(
    emulator: Emulator, metrics: Metrics, tmp_path: Path
) -> None:
    with ResponseCache(tmp_path / "cache.db") as cache:
        first = chat(emulator, "sync", cache=cache, cache_sampled=True)
        second = chat(emulator, "sync", cache=cache, cache_sampled=True)
    assert second.cached
    assert not first.cached
    assert len(emulator.requests_for("gpt-4o")) == 1
    lookups = {p.attributes["azmem.cache.result"]: p for p in metrics.points("azmem.cache.lookups")}
    assert {k: p.value for k, p in lookups.items()} == {"miss": 1, "hit": 1}
    assert lookups["hit"].attributes == {"azmem.cache.backend": "sqlite", "azmem.cache.result": "hit"}
    # Only the call that reached the service is a GenAI operation, and only its tokens count.
    (duration,) = metrics.points(DURATION)
    assert duration.count == 1
    tokens = {p.attributes["gen_ai.token.type"]: p for p in metrics.points(TOKEN)}
    assert tokens["input"].value == first.usage.input_tokens
    assert tokens["input"].count == 1


def test_cost_per_deployment_and_group_comes_from_the_usage_tracker(
    emulator: Emulator, metrics: Metrics
) -> None:
    usage = UsageTracker()
    result = chat(emulator, "sync", usage=usage)
    summary = usage.summary()
    (cost,) = metrics.points("azmem.client.cost")
    assert cost.attributes == {
        "azmem.deployment": "gpt-4o",
        "azmem.model": "gpt-4o",
        "azmem.group_id": "team-a",
        "azmem.prompt.name": "extract",
    }
    assert cost.value == pytest.approx(summary["total"]["cost_usd"])
    assert cost.value == pytest.approx(summary["by_group_id"]["team-a"]["cost_usd"])
    gpt_4o = (result.usage.input_tokens * 2.50 + result.usage.output_tokens * 10.00) / 1e6  # list prices
    assert cost.value == pytest.approx(gpt_4o)
    assert metrics.units["azmem.client.cost"] == "{USD}"


def test_nothing_is_recorded_without_a_meter_provider(emulator: Emulator) -> None:
    from azmem.azure import metrics as azmem_metrics

    assert not azmem_metrics.enabled()
    assert azmem_metrics.start_call({"gen_ai.request.model": "gpt-4o"}) is None
    chat(emulator, "sync")  # and nothing breaks


def test_a_stream_is_one_operation_with_its_tokens(emulator: Emulator, metrics: Metrics) -> None:
    usage = UsageTracker()
    with LLMClient(chat=role(emulator, "gpt-4o"), retry=FAST, usage=usage) as llm:
        text = "".join(llm.stream("tell me a story", max_tokens=30))
    assert text
    (duration,) = metrics.points(DURATION)
    assert duration.attributes["gen_ai.operation.name"] == "chat"
    assert duration.attributes["gen_ai.request.model"] == "gpt-4o"
    assert duration.count == 1
    tokens = {p.attributes["gen_ai.token.type"]: p.value for p in metrics.points(TOKEN)}
    total = usage.summary()["total"]
    assert tokens == {"input": total["input_tokens"], "output": total["output_tokens"]}
