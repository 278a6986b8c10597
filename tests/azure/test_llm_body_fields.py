"""The fields azmem reads from an answer's JSON body, checked against the SDK's own reading.

azmem reads a completion (and a Responses answer) as the decoded JSON body rather than
through the SDK's object tree, which is many times dearer to build. Each test here scripts
one emulator answer, reads it once with the raw SDK and once with the client (sync and
async), and asserts the two agree on every field azmem uses: text, tool calls, finish
reason, model, usage with its cached and reasoning token details, the truncation details,
and what usage tracking and streams make of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from azure_stub_server import Reply, completion, stub_server
from llm_helpers import API_KEY, Factory, factories
from pydantic import BaseModel

from azmem.azure.llm import LLMClient
from azmem.azure.messages import ToolCall
from azmem.azure.retry import RetryPolicy
from azmem.azure.settings import AzureOpenAISettings
from azmem.azure.usage import UsageTracker
from azmem.errors import OutputTruncatedError, ServiceError

CHAT_VERSION = "2024-10-21"
RESPONSES_VERSION = "2025-04-01-preview"
RESPONSES_ON = {"capabilities": {"responses_api": True}, "api_version": RESPONSES_VERSION}

CHAT_USAGE = {
    "prompt_tokens": 120,
    "completion_tokens": 40,
    "total_tokens": 160,
    "prompt_tokens_details": {"audio_tokens": 0, "cached_tokens": 64},
    "completion_tokens_details": {
        "accepted_prediction_tokens": 0,
        "audio_tokens": 0,
        "reasoning_tokens": 30,
        "rejected_prediction_tokens": 0,
    },
}
RESPONSES_USAGE = {
    "input_tokens": 120,
    "input_tokens_details": {"cached_tokens": 64},
    "output_tokens": 40,
    "output_tokens_details": {"reasoning_tokens": 30},
    "total_tokens": 160,
}
EXPECTED_USAGE = (120, 40, 160, 64, 30)


class Person(BaseModel):
    name: str
    age: int


@pytest.fixture(params=["sync", "async"])
def make_llm(request: pytest.FixtureRequest, emulator: Any) -> Iterator[Factory]:
    yield from factories(request, emulator)


def _sdk(emu: Any, api_version: str) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(azure_endpoint=emu.endpoint, api_key=API_KEY, api_version=api_version)


def _ours(usage: Any) -> tuple[int, int, int, int, int]:
    return (
        usage.input_tokens,
        usage.output_tokens,
        usage.total_tokens,
        usage.cached_input_tokens,
        usage.reasoning_tokens,
    )


def _stream(llm: Any, mode: str, messages: str) -> tuple[list[str], Any]:
    stream = llm.client.stream(messages)
    if mode == "sync":
        return list(stream), stream

    async def collect() -> list[str]:
        return [piece async for piece in stream]

    return llm._runner.run(collect()), stream


def test_chat_text_model_usage_and_its_details(make_llm: Factory) -> None:
    reply = {"content": "It is blue.", "usage": CHAT_USAGE}
    make_llm.emu.script("gpt-4o", [reply, reply])
    with _sdk(make_llm.emu, CHAT_VERSION) as sdk:
        raw = sdk.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": "sky?"}]
        )
    expected = raw.parse()
    tracker = UsageTracker()
    result = make_llm(usage=tracker).generate("sky?")
    choice = expected.choices[0]
    assert result.text == choice.message.content == "It is blue."
    assert result.finish_reason == choice.finish_reason == "stop"
    assert result.model == expected.model
    assert result.model  # the emulator names the model, so an unread field cannot pass as None == None
    assert result.tool_calls == ()
    sdk_usage = expected.usage
    assert sdk_usage is not None
    assert sdk_usage.prompt_tokens_details is not None
    assert sdk_usage.completion_tokens_details is not None
    assert _ours(result.usage) == EXPECTED_USAGE
    assert _ours(result.usage) == (
        sdk_usage.prompt_tokens,
        sdk_usage.completion_tokens,
        sdk_usage.total_tokens,
        sdk_usage.prompt_tokens_details.cached_tokens,
        sdk_usage.completion_tokens_details.reasoning_tokens,
    )
    (record,) = tracker.records
    assert record.usage == result.usage
    assert tracker.summary()["total"]["cached_input_tokens"] == 64


def test_chat_tool_calls_read_as_the_sdk_reads_them(make_llm: Factory) -> None:
    calls = [
        {"id": "c1", "name": "lookup", "arguments": {"q": "x"}},
        {"id": "c2", "name": "weather", "arguments": {"city": "Oslo"}},
    ]
    make_llm.emu.script("gpt-4o", [{"tool_calls": calls}, {"tool_calls": calls}])
    tools: list[Any] = [
        {"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {}}}}
        for name in ("lookup", "weather")
    ]
    with _sdk(make_llm.emu, CHAT_VERSION) as sdk:
        expected = sdk.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "go"}], tools=tools
        )
    result = make_llm().generate("go", tools=tools)
    sdk_calls = expected.choices[0].message.tool_calls or []
    assert result.tool_calls == tuple(
        ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments)  # type: ignore[union-attr]
        for c in sdk_calls
    )
    assert [c.name for c in result.tool_calls] == ["lookup", "weather"]
    assert json.loads(result.tool_calls[1].arguments) == {"city": "Oslo"}
    assert result.finish_reason == expected.choices[0].finish_reason == "tool_calls"
    assert result.text is None


def test_truncation_reports_the_output_tokens_of_the_body(make_llm: Factory) -> None:
    make_llm.emu.script("gpt-4o", [{"content": "cut", "finish_reason": "length", "usage": CHAT_USAGE}])
    tracker = UsageTracker()
    with pytest.raises(OutputTruncatedError) as info:
        make_llm(usage=tracker).generate("long")
    assert info.value.details["output_tokens"] == 40
    (record,) = tracker.records  # the tokens were spent, so they are counted
    assert _ours(record.usage) == EXPECTED_USAGE


def test_structured_output_keeps_usage_details_and_the_parsed_model(make_llm: Factory) -> None:
    make_llm.emu.script("gpt-4o", [{"content": '{"name": "Ada", "age": 36}', "usage": CHAT_USAGE}])
    result = make_llm().generate("who?", response_model=Person)
    assert result.parsed == Person(name="Ada", age=36)
    assert result.data == {"name": "Ada", "age": 36}
    assert _ours(result.usage) == EXPECTED_USAGE
    assert result.model


def test_chat_stream_usage_details(make_llm: Factory) -> None:
    make_llm.emu.script("gpt-4o", [{"content": "one two", "usage": CHAT_USAGE}])
    pieces, stream = _stream(make_llm(), make_llm.mode, "count")
    assert "".join(pieces) == "one two"
    assert _ours(stream.usage) == EXPECTED_USAGE


def test_responses_text_model_and_usage_details(make_llm: Factory) -> None:
    reply = {"content": "It is blue.", "usage": RESPONSES_USAGE}
    make_llm.emu.script("gpt-4o", [reply, reply])
    with _sdk(make_llm.emu, RESPONSES_VERSION) as sdk:
        expected = sdk.responses.create(model="gpt-4o", input="sky?")
    result = make_llm(chat_kw=RESPONSES_ON).generate("sky?")
    assert result.text == expected.output_text == "It is blue."
    assert result.model == expected.model
    assert result.model
    sdk_usage = expected.usage
    assert sdk_usage is not None
    assert _ours(result.usage) == EXPECTED_USAGE
    assert _ours(result.usage) == (
        sdk_usage.input_tokens,
        sdk_usage.output_tokens,
        sdk_usage.total_tokens,
        sdk_usage.input_tokens_details.cached_tokens,
        sdk_usage.output_tokens_details.reasoning_tokens,
    )
    assert result.finish_reason == "stop"


def test_responses_tool_calls_read_as_the_sdk_reads_them(make_llm: Factory) -> None:
    calls = [{"id": "c1", "name": "lookup", "arguments": {"q": "x"}}]
    make_llm.emu.script("gpt-4o", [{"tool_calls": calls}, {"tool_calls": calls}])
    tool: Any = {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}
    with _sdk(make_llm.emu, RESPONSES_VERSION) as sdk:
        expected = sdk.responses.create(model="gpt-4o", input="go", tools=[tool])
    chat_tool = {"type": "function", "function": {"name": "lookup", "parameters": tool["parameters"]}}
    result = make_llm(chat_kw=RESPONSES_ON).generate("go", tools=[chat_tool])
    sdk_calls = [item for item in expected.output if item.type == "function_call"]
    assert result.tool_calls == tuple(
        ToolCall(id=c.call_id, name=c.name, arguments=c.arguments) for c in sdk_calls
    )
    assert len(result.tool_calls) == 1
    assert result.finish_reason == "tool_calls"


def test_responses_stream_usage_details(make_llm: Factory) -> None:
    make_llm.emu.script("gpt-4o", [{"content": "one two", "usage": RESPONSES_USAGE}])
    pieces, stream = _stream(make_llm(chat_kw=RESPONSES_ON), make_llm.mode, "count")
    assert "".join(pieces) == "one two"
    assert _ours(stream.usage) == EXPECTED_USAGE
    assert stream.finish_reason == "stop"


@pytest.mark.parametrize("body", [[completion("listed")], "just a string", None], ids=["list", "str", "null"])
def test_a_json_body_that_is_not_an_object_is_malformed(body: Any) -> None:
    """JSON, but no completion: a typed, retryable ServiceError, then the next attempt's answer."""
    with stub_server() as stub:
        stub.queue(Reply(body=body), Reply(body=completion("fine")))
        chat = AzureOpenAISettings(endpoint=stub.endpoint, deployment="gpt-4o", api_key=API_KEY)
        with LLMClient(chat=chat, retry=RetryPolicy(max_attempts=1)) as llm:
            with pytest.raises(ServiceError) as info:
                llm.generate("hi")
            assert info.value.error_code == "malformed_response"
            assert llm.generate("hi").text == "fine"
