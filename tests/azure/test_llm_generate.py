"""generate(): text, JSON, structured output and its fallback, re-asks, refusals, limits, filters,
reasoning parameters, every message role, tools and vision, through the real SDK (sync and async)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from llm_helpers import Factory, chat_requests, factories
from pydantic import BaseModel, field_validator

from azmem.azure.messages import TextPart, ToolCall, UserMessage, image_part
from azmem.emulator import Deployment, Fault
from azmem.errors import (
    ContentFilterError,
    InvalidInputError,
    OutputTruncatedError,
    RefusalError,
    StructuredOutputError,
)


@pytest.fixture(params=["sync", "async"])
def make_llm(request: pytest.FixtureRequest, emulator: Any) -> Iterator[Factory]:
    yield from factories(request, emulator)


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


class Person(BaseModel):
    name: str
    age: int


class Evens(BaseModel):
    value: int

    @field_validator("value")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError("value must be even")
        return v


class Pet(BaseModel):
    """A pet."""

    name: str


class Weather(BaseModel):
    """Current weather for a city."""

    city: str


def test_plain_text(make_llm: Factory) -> None:
    emu = make_llm.emu
    emu.script("gpt-4o", ["Hello there."])
    result = make_llm().generate("Say hello", prompt_name="greet")
    assert result.text == "Hello there."
    assert result.data is None
    assert result.parsed is None
    assert result.finish_reason == "stop"
    assert result.deployment == "gpt-4o"
    assert result.request_id  # apim-request-id from the headers
    assert result.usage.input_tokens > 0
    assert result.usage.output_tokens > 0
    assert not result.cached
    (sent,) = chat_requests(emu)
    assert sent.json["messages"] == [{"role": "user", "content": "Say hello"}]
    assert "max_tokens" not in sent.json
    assert "temperature" not in sent.json
    assert "/deployments/gpt-4o/" in sent.path


def test_json_mode_adds_the_json_word_on_a_copy(make_llm: Factory) -> None:
    emu = make_llm.emu
    emu.script("gpt-4o", ['{"city": "Oslo", "temp": 3}'])
    messages: list[Any] = [
        {"role": "system", "content": "You extract facts."},
        {"role": "user", "content": "Oslo, 3C"},
    ]
    before = copy.deepcopy(messages)
    result = make_llm().generate(messages, json=True)
    assert result.data == {"city": "Oslo", "temp": 3}
    assert messages == before
    (sent,) = chat_requests(emu)
    assert sent.json["response_format"] == {"type": "json_object"}
    assert any("json" in str(m["content"]).lower() for m in sent.json["messages"])
    assert sent.json["messages"][0]["content"] == "You extract facts."


def test_structured_output_uses_strict_json_schema(make_llm: Factory) -> None:
    emu = make_llm.emu
    emu.script("gpt-4o", ['{"name": "Ann", "age": 41}'])
    result = make_llm().generate("Who?", response_model=Person)
    assert result.parsed == Person(name="Ann", age=41)
    assert result.data == {"name": "Ann", "age": 41}
    (sent,) = chat_requests(emu)
    fmt = sent.json["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"]["additionalProperties"] is False


def test_structured_output_against_the_emulators_generated_answer(make_llm: Factory) -> None:
    result = make_llm().generate("Who?", response_model=Person)
    assert isinstance(result.parsed, Person)


def test_old_api_version_400_falls_back_and_is_remembered(make_llm: Factory) -> None:
    emu = make_llm.emu
    # The capability claims json_schema, the api-version does not have it: the service's 400 decides.
    llm = make_llm(chat_kw={"api_version": "2024-06-01", "capabilities": {"json_schema": True}})
    emu.script("gpt-4o", ['{"name": "Bo", "age": 7}', '{"name": "Cy", "age": 9}'])
    messages: list[Any] = [{"role": "user", "content": "Who?"}]
    before = copy.deepcopy(messages)
    first = llm.generate(messages, response_model=Person)
    assert first.parsed == Person(name="Bo", age=7)
    sent = chat_requests(emu)
    assert [r.status for r in sent] == [400, 200]
    assert sent[0].json["response_format"]["type"] == "json_schema"
    assert sent[1].json["response_format"] == {"type": "json_object"}
    system = sent[1].json["messages"][0]
    assert system["role"] == "system"
    assert '"age"' in system["content"]
    assert "JSON schema" in system["content"]
    assert messages == before
    second = llm.generate(messages, response_model=Person)
    assert second.parsed == Person(name="Cy", age=9)
    assert len(chat_requests(emu)) == 3  # remembered: no second 400
    assert chat_requests(emu)[2].json["response_format"] == {"type": "json_object"}


def test_capability_without_json_schema_goes_straight_to_the_fallback(make_llm: Factory) -> None:
    emu = make_llm.emu
    llm = make_llm(chat_kw={"capabilities": {"json_schema": False}})
    emu.script("gpt-4o", ['{"name": "Di", "age": 2}'])
    assert llm.generate("Who?", response_model=Person).parsed == Person(name="Di", age=2)
    (sent,) = chat_requests(emu)
    assert sent.json["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize("json_schema", [True, False], ids=["json_schema", "fallback"])
def test_validation_failure_is_re_asked_on_a_copy(make_llm: Factory, json_schema: bool) -> None:
    emu = make_llm.emu
    llm = make_llm(chat_kw={"capabilities": {"json_schema": json_schema}})
    emu.script("gpt-4o", ['{"value": 3}', '{"value": 4}'])
    messages: list[Any] = [UserMessage(content="Pick an even number")]
    before = list(messages)
    result = llm.generate(messages, response_model=Evens)
    assert result.parsed == Evens(value=4)
    assert result.attempts == 2
    assert messages == before
    first, second = chat_requests(emu)
    assert len(second.json["messages"]) == len(first.json["messages"]) + 2
    assert second.json["messages"][-2] == {"role": "assistant", "content": '{"value": 3}'}
    assert "value must be even" in second.json["messages"][-1]["content"]


def test_re_ask_budget_is_configurable_and_then_fails_typed(make_llm: Factory) -> None:
    emu = make_llm.emu
    llm = make_llm(chat_kw={"capabilities": {"json_schema": False}})
    emu.script("gpt-4o", ["not json", '{"value": 1}', '{"value": 5}', '{"value": 7}'])
    with pytest.raises(StructuredOutputError, match="value must be even") as info:
        llm.generate("even please", response_model=Evens, max_reasks=1)
    assert info.value.details["reasks"] == 1
    assert len(chat_requests(emu)) == 2


def test_refusal(make_llm: Factory) -> None:
    make_llm.emu.script("gpt-4o", [{"refusal": "I can't help with that."}])
    with pytest.raises(RefusalError) as info:
        make_llm().generate("bad", response_model=Person)
    assert info.value.refusal == "I can't help with that."


def test_length_says_to_raise_max_tokens(make_llm: Factory) -> None:
    make_llm.emu.script("gpt-4o", ["word " * 200])
    with pytest.raises(OutputTruncatedError, match="max_tokens=5") as info:
        make_llm().generate("long", max_tokens=5)
    assert "max_tokens" in (info.value.suggestion or "")


def test_output_content_filter_carries_categories(make_llm: Factory) -> None:
    make_llm.emu.fault("gpt-4o", Fault.output_filter({"violence": "high"}, times=1))
    with pytest.raises(ContentFilterError) as info:
        make_llm().generate("story")
    assert info.value.source == "output"
    assert info.value.categories["violence"]["filtered"] is True
    assert info.value.categories["violence"]["severity"] == "high"
    assert len(chat_requests(make_llm.emu)) == 1


def test_prompt_content_filter_is_not_retried(make_llm: Factory) -> None:
    make_llm.emu.fault("gpt-4o", Fault.prompt_filter({"hate": "medium"}, jailbreak=True))
    with pytest.raises(ContentFilterError) as info:
        make_llm().generate("something")
    assert info.value.source == "prompt"
    assert "hate" in info.value.filtered_categories
    assert "jailbreak" in info.value.filtered_categories
    assert len(chat_requests(make_llm.emu)) == 1


def test_reasoning_deployment_gets_completion_tokens_and_effort_only(make_llm: Factory) -> None:
    emu = make_llm.emu
    result = make_llm("o3-mini").generate(
        "think", max_tokens=300, temperature=0.2, top_p=0.5, reasoning_effort="low"
    )
    assert result.text
    (sent,) = chat_requests(emu)
    assert sent.json["max_completion_tokens"] == 300
    assert sent.json["reasoning_effort"] == "low"
    for banned in ("max_tokens", "temperature", "top_p"):
        assert banned not in sent.json


def test_reasoning_is_decided_by_capability_not_name(make_llm: Factory) -> None:
    """A deployment named like a chat model but running o3-mini, marked reasoning in its settings."""
    emu = make_llm.emu
    emu.add_deployment(Deployment("prod-chat", model="o3-mini"))
    llm = make_llm("prod-chat", chat_kw={"capabilities": {"reasoning": True}})
    # (reasoning tokens come out of the budget: 50 would leave no room for the answer)
    assert llm.generate("hi", max_tokens=500, temperature=0.3).text
    (sent,) = chat_requests(emu)
    assert sent.json["max_completion_tokens"] == 500
    assert "max_tokens" not in sent.json
    assert "temperature" not in sent.json


def test_chat_deployment_gets_max_tokens_and_temperature_not_effort(make_llm: Factory) -> None:
    emu = make_llm.emu
    make_llm().generate("hi", max_tokens=64, temperature=0.1, reasoning_effort="high", seed=7, stop=["\n\n"])
    (sent,) = chat_requests(emu)
    assert sent.json["max_tokens"] == 64
    assert sent.json["temperature"] == 0.1
    assert sent.json["seed"] == 7
    assert sent.json["stop"] == ["\n\n"]
    assert "reasoning_effort" not in sent.json
    assert "max_completion_tokens" not in sent.json


def test_role_defaults_apply_and_calls_override(make_llm: Factory) -> None:
    emu = make_llm.emu
    llm = make_llm(chat_kw={"temperature": 0.7, "max_tokens": 99})
    llm.generate("a")
    llm.generate("b", temperature=0.0)
    first, second = chat_requests(emu)
    assert (first.json["temperature"], first.json["max_tokens"]) == (0.7, 99)
    assert second.json["temperature"] == 0.0


def test_all_roles_and_tool_messages_are_sent_verbatim(make_llm: Factory) -> None:
    emu = make_llm.emu
    conversation: list[Any] = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "weather in Oslo?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_9", "type": "function", "function": {"name": "Weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_9", "content": "sunny"},
        {"role": "assistant", "content": "It is sunny."},
        {"role": "user", "content": "thanks\u200b!"},
    ]
    before = copy.deepcopy(conversation)
    make_llm().generate(conversation)
    (sent,) = chat_requests(emu)
    assert [m["role"] for m in sent.json["messages"]] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]
    assert sent.json["messages"][2]["tool_calls"][0]["id"] == "call_9"
    assert sent.json["messages"][3]["tool_call_id"] == "call_9"
    assert sent.json["messages"][5]["content"] == "thanks!"  # cleaned on the wire
    assert conversation == before


def test_tool_calls_come_back_typed(make_llm: Factory) -> None:
    emu = make_llm.emu
    emu.script("gpt-4o", [{"tool_calls": "auto"}])  # arguments generated from our tool's schema
    result = make_llm().generate("Weather in Oslo?", tools=[Weather], tool_choice="required")
    (call,) = result.tool_calls
    assert isinstance(call, ToolCall)
    assert call.name == "Weather"
    assert Weather.model_validate(call.arguments_json())
    assert result.finish_reason == "tool_calls"
    (sent,) = chat_requests(emu)
    tool = sent.json["tools"][0]
    assert tool["function"]["name"] == "Weather"
    assert tool["function"]["strict"] is True
    assert tool["function"]["description"] == "Current weather for a city."
    assert sent.json["tool_choice"] == "required"


def test_scripted_tool_call_with_dict_tool(make_llm: Factory) -> None:
    emu = make_llm.emu
    emu.script("gpt-4o", [{"tool_calls": [{"id": "c1", "name": "lookup", "arguments": {"q": "x"}}]}])
    tool = {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
    }
    result = make_llm().generate("find x", tools=[tool])
    assert result.tool_calls == (ToolCall(id="c1", name="lookup", arguments=json.dumps({"q": "x"})),)
    assert result.text is None


def test_vision_parts_are_sent_as_data_urls(make_llm: Factory) -> None:
    emu = make_llm.emu
    message = UserMessage(content=(TextPart(text="What is this?"), image_part(PNG, detail="low")))
    make_llm().generate([message])
    (sent,) = chat_requests(emu)
    parts = sent.json["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "What is this?"}
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert parts[1]["image_url"]["detail"] == "low"


def test_model_size_small_uses_the_small_deployment(make_llm: Factory) -> None:
    emu = make_llm.emu
    llm = make_llm(small="gpt-4o-mini")
    assert llm.generate("hi", model_size="small").deployment == "gpt-4o-mini"
    assert llm.generate("hi").deployment == "gpt-4o"
    paths = [r.path for r in chat_requests(emu)]
    assert "/deployments/gpt-4o-mini/" in paths[0]
    assert "/deployments/gpt-4o/" in paths[1]


def test_streaming_text_and_usage(make_llm: Factory) -> None:
    from azmem.azure.usage import UsageTracker

    emu = make_llm.emu
    emu.script("gpt-4o", ["The quick brown fox jumps."])
    usage = UsageTracker()
    pieces = make_llm(usage=usage).stream("tell me", prompt_name="story")
    assert len(pieces) > 1
    assert "".join(pieces) == "The quick brown fox jumps."
    (sent,) = chat_requests(emu)
    assert sent.json["stream"] is True
    assert sent.json["stream_options"] == {"include_usage": True}
    summary = usage.summary()
    assert summary["by_prompt_name"]["story"]["output_tokens"] > 0


def test_streaming_output_filter_raises_typed(make_llm: Factory) -> None:
    make_llm.emu.fault("gpt-4o", Fault.output_filter({"sexual": "medium"}, times=1))
    with pytest.raises(ContentFilterError) as info:
        make_llm().stream("story")
    assert info.value.categories["sexual"]["severity"] == "medium"


def test_stream_truncation_is_reported(make_llm: Factory) -> None:
    make_llm.emu.script("gpt-4o", ["word " * 100])
    with pytest.raises(OutputTruncatedError):
        make_llm().stream("long", max_tokens=3)


def test_loose_tools_with_a_response_model_are_refused_before_sending(make_llm: Factory) -> None:
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    with pytest.raises(InvalidInputError, match="strict"):
        make_llm().generate("x", response_model=Person, tools=[tool])
    assert chat_requests(make_llm.emu) == []


def test_strict_tools_work_with_a_response_model(make_llm: Factory) -> None:
    result = make_llm().generate("x", response_model=Person, tools=[Weather])
    assert isinstance(result.parsed, Person)


def test_named_tool_choice_gets_a_generated_call(make_llm: Factory) -> None:
    choice = {"type": "function", "function": {"name": "Weather"}}
    result = make_llm().generate("Weather?", tools=[Pet, Weather], tool_choice=choice)
    (call,) = result.tool_calls
    assert call.name == "Weather"
    assert isinstance(Weather.model_validate(call.arguments_json()).city, str)
    assert chat_requests(make_llm.emu)[0].json["tool_choice"] == choice
