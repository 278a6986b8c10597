"""LLMClient / AsyncLLMClient on the Responses API, through the real SDK against the emulator.

The same calls as chat completions (text, strict structured output and its fallback,
re-asks, tools, reasoning, streams, usage, retries, typed errors), sent as
``POST /openai/responses`` when the deployment's ``responses_api`` capability is on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from llm_helpers import Factory, Spans, factories
from pydantic import BaseModel, field_validator

from azmem.azure.retry import RetryPolicy
from azmem.azure.settings import AzureOpenAISettings
from azmem.azure.usage import UsageTracker
from azmem.emulator import Deployment, Fault
from azmem.errors import (
    ContentFilterError,
    DeploymentNotFoundError,
    InvalidInputError,
    OutputTruncatedError,
    RateLimitError,
    RefusalError,
    ServiceError,
)

PREVIEW = {"api_version": "2025-04-01-preview"}
ON = {"capabilities": {"responses_api": True}, **PREVIEW}


@pytest.fixture(params=["sync", "async"])
def make_llm(request: pytest.FixtureRequest, emulator: Any) -> Iterator[Factory]:
    yield from factories(request, emulator)


class Person(BaseModel):
    name: str
    age: int


class Even(BaseModel):
    value: int

    @field_validator("value")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError("value must be even")
        return v


class Weather(BaseModel):
    """Current weather for a city."""

    city: str


def responses(emu: Any) -> list[Any]:
    return [r for r in emu.requests if r.path.endswith("/responses")]


def test_capability_defaults_follow_the_family_and_the_api_version() -> None:
    def caps(**kw: Any) -> bool:
        return AzureOpenAISettings(deployment="x", **kw).resolved_capabilities().responses_api

    assert caps(model="o3-mini", **PREVIEW)
    assert caps(model="gpt-5", api_mode="v1")
    assert not caps(model="o3-mini")  # 2024-10-21 does not serve the Responses API
    assert not caps(model="gpt-4o", **PREVIEW)  # not a reasoning family: chat completions
    assert caps(model="gpt-4o", **ON)
    assert not caps(model="o3-mini", capabilities={"responses_api": False}, **PREVIEW)


def test_reasoning_deployment_text_usage_and_summary(make_llm: Factory) -> None:
    usage = UsageTracker()
    spans = Spans()
    llm = make_llm("o3-mini", chat_kw=PREVIEW, usage=usage, tracer=spans.tracer)
    result = llm.generate("Hello there", reasoning_effort="high", reasoning_summary="auto", max_tokens=2000)
    assert result.text == 'This is an emulated reply from o3-mini. You said: "Hello there"'
    assert result.reasoning_summary is not None
    assert result.reasoning_summary.startswith("Emulated reasoning summary")
    assert result.usage.reasoning_tokens == 256
    assert result.usage.output_tokens > result.usage.reasoning_tokens
    assert result.finish_reason == "stop"
    (sent,) = responses(make_llm.emu)
    assert sent.path == "/openai/responses"
    assert sent.json["reasoning"] == {"effort": "high", "summary": "auto"}
    assert sent.json["max_output_tokens"] == 2000
    assert sent.json["store"] is False
    assert "temperature" not in sent.json
    assert sent.json["input"] == [{"role": "user", "content": "Hello there"}]
    record = usage.summary()["total"]
    assert record["output_tokens"] == result.usage.output_tokens
    assert record["cost_usd"] > 0
    attrs = dict(spans.only().attributes or {})
    assert attrs["azmem.api"] == "responses"
    assert attrs["gen_ai.usage.output_tokens"] == result.usage.output_tokens


def test_strict_structured_output_and_validation_reasks(make_llm: Factory) -> None:
    llm = make_llm("gpt-4o", chat_kw=ON)
    person = llm.generate("Alice is 30.", response_model=Person)
    assert isinstance(person.parsed, Person)
    fmt = responses(make_llm.emu)[-1].json["text"]["format"]
    assert fmt["type"] == "json_schema"
    assert fmt["strict"] is True
    assert fmt["name"] == "Person"
    assert fmt["schema"]["additionalProperties"] is False
    make_llm.emu.script("gpt-4o", [json.dumps({"value": 3}), json.dumps({"value": 4})])
    even = llm.generate("an even number", response_model=Even)
    assert even.parsed == Even(value=4)
    reask = responses(make_llm.emu)[-1].json["input"]
    assert reask[-2] == {"role": "assistant", "content": '{"value": 3}'}
    assert "value must be even" in reask[-1]["content"]


def test_json_schema_fallback_when_the_deployment_lacks_it(make_llm: Factory) -> None:
    emu = make_llm.emu
    emu.add_deployment(Deployment("plain", model="gpt-4o", json_schema=False))
    llm = make_llm("plain", chat_kw={"model": "gpt-4o", **ON})
    result = llm.generate("Alice is 30.", response_model=Person)
    assert isinstance(result.parsed, Person)
    first, second = responses(emu)
    assert first.status == 400
    assert second.json["text"]["format"] == {"type": "json_object"}
    assert "JSON schema" in second.json["input"][0]["content"]


def test_tools_round_trip(make_llm: Factory) -> None:
    llm = make_llm("gpt-4o", chat_kw=ON)
    asked = llm.generate("Weather in Oslo?", tools=[Weather], tool_choice="required")
    (call,) = asked.tool_calls
    assert call.name == "Weather"
    assert asked.finish_reason == "tool_calls"
    sent = responses(make_llm.emu)[-1].json
    assert sent["tools"][0]["name"] == "Weather"  # the flat Responses shape
    assert sent["tools"][0]["strict"] is True
    assert sent["tool_choice"] == "required"
    make_llm.emu.script("gpt-4o", "It is sunny in Oslo.")
    answer = llm.generate(
        [
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "role": "assistant",
                "tool_calls": [call],
            },
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
        tools=[Weather],
    )
    assert answer.text == "It is sunny in Oslo."
    items = responses(make_llm.emu)[-1].json["input"]
    assert items[1]["type"] == "function_call"
    assert items[2] == {"type": "function_call_output", "call_id": call.id, "output": "sunny"}


def test_v1_api(make_llm: Factory) -> None:
    llm = make_llm("o3-mini", chat_kw={"api_mode": "v1"})
    assert llm.generate("hi").text
    (sent,) = responses(make_llm.emu)
    assert sent.path == "/openai/v1/responses"
    assert sent.json["model"] == "o3-mini"


def test_retries_and_typed_errors(make_llm: Factory) -> None:
    emu = make_llm.emu
    llm = make_llm("gpt-4o", chat_kw=ON, retry=RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=0.02))
    emu.fault("gpt-4o", Fault.rate_limit(retry_after_ms=10, times=1))
    emu.fault("gpt-4o", Fault.server_error(503, times=1))
    emu.fault("gpt-4o", Fault.malformed(times=1))
    result = llm.generate("hi")
    assert result.attempts == 4
    emu.fault("gpt-4o", Fault.rate_limit(retry_after_ms=10))
    with pytest.raises(RateLimitError):
        llm.generate("hi")
    emu.clear_faults()
    with pytest.raises(DeploymentNotFoundError):
        make_llm("missing", chat_kw={"model": "o3-mini", **PREVIEW}).generate("hi")


def test_what_the_answer_can_end_with(make_llm: Factory) -> None:
    emu = make_llm.emu
    llm = make_llm("gpt-4o", chat_kw=ON)
    emu.script("gpt-4o", {"content": "word " * 200})
    with pytest.raises(OutputTruncatedError, match="max_output_tokens=16"):
        llm.generate("hi", max_tokens=16)
    emu.script("gpt-4o", {"refusal": "I cannot help with that."})
    with pytest.raises(RefusalError):
        llm.generate("hi")
    emu.fault("gpt-4o", Fault.output_filter({"violence": "high"}, times=1))
    with pytest.raises(ContentFilterError) as filtered:
        llm.generate("hi")
    assert filtered.value.filtered_categories == ["violence"]


def test_parameters_the_responses_api_does_not_take(make_llm: Factory) -> None:
    llm = make_llm("o3-mini", chat_kw=PREVIEW)
    with pytest.raises(InvalidInputError, match="stop"):
        llm.generate("hi", stop=["x"])
    summary_on_chat_model = make_llm("gpt-4o", chat_kw=ON)
    with pytest.raises(InvalidInputError, match="reasoning_summary"):
        summary_on_chat_model.generate("hi", reasoning_summary="auto")
    assert responses(make_llm.emu) == []


def _stream(llm: Any, mode: str, messages: str, **kw: Any) -> tuple[list[str], Any]:
    stream = llm.client.stream(messages, **kw)
    if mode == "sync":
        return list(stream), stream

    async def collect() -> list[str]:
        return [piece async for piece in stream]

    return llm._runner.run(collect()), stream


def test_streaming_events_become_text_usage_and_summary(make_llm: Factory) -> None:
    usage = UsageTracker()
    llm = make_llm("o3-mini", chat_kw=PREVIEW, usage=usage)
    make_llm.emu.script("o3-mini", {"content": "one two three", "reasoning_summary": "Brief."})
    pieces, stream = _stream(llm, make_llm.mode, "hi", reasoning_summary="auto")
    assert "".join(pieces) == "one two three"
    assert stream.done
    assert stream.finish_reason == "stop"
    assert stream.reasoning_summary == "Brief."
    assert stream.usage.reasoning_tokens > 0
    assert usage.summary()["total"]["output_tokens"] == stream.usage.output_tokens
    assert responses(make_llm.emu)[-1].json["stream"] is True


def test_a_stream_that_fails_midway_raises_a_typed_error(make_llm: Factory) -> None:
    emu = make_llm.emu
    llm = make_llm("gpt-4o", chat_kw=ON)
    emu.fault("gpt-4o", Fault.stream_error(times=1))
    with pytest.raises(ServiceError, match="stream"):
        _stream(llm, make_llm.mode, "Hello there my friend")
    emu.script("gpt-4o", {"content": "word " * 200})
    with pytest.raises(OutputTruncatedError):
        _stream(llm, make_llm.mode, "hi", max_tokens=16)
