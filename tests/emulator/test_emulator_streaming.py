"""Streaming as Azure sends it: a prompt-filter chunk first, deltas, a usage chunk, [DONE]."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from emulator_helpers import MESSAGES, azure, raw, v1

from azmem.emulator import Emulator, Fault


def _events(body: bytes) -> list[Any]:
    lines = [line for line in body.decode().split("\n\n") if line]
    assert all(line.startswith("data: ") for line in lines)
    return [line[len("data: ") :] for line in lines]


def test_raw_sse_sequence(emulator: Emulator) -> None:
    emulator.script("gpt-4o", "one two three")
    status, headers, body = raw(
        emulator,
        "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
        {"messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}},
    )
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    events = _events(body)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    first = chunks[0]
    assert first["id"] == ""
    assert first["choices"] == []
    assert first["prompt_filter_results"][0]["content_filter_results"]["jailbreak"]["detected"] is False
    assert chunks[1]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[1:-1] if c["choices"])
    assert text == "one two three"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] > 0


def test_sdk_stream_collects_text_and_usage(emulator: Emulator) -> None:
    emulator.script("gpt-4o", "streamed reply here")
    with azure(emulator) as client:
        chunks = list(
            client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
        )
    assert chunks[0].id == ""
    assert chunks[0].model_extra is not None
    assert "prompt_filter_results" in chunks[0].model_extra
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "streamed reply here"
    assert chunks[-1].usage is not None
    assert chunks[-1].choices == []


def test_sdk_stream_helper_over_v1(emulator: Emulator) -> None:
    with v1(emulator) as client, client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        final = stream.get_final_completion()
    assert (
        final.choices[0].message.content == 'This is an emulated reply from gpt-4o. You said: "Hello there"'
    )


def test_stream_output_filter(emulator: Emulator) -> None:
    emulator.fault("gpt-4o", Fault.output_filter({"sexual": "medium"}, times=1))
    with azure(emulator) as client:
        chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals[0].choices[0].finish_reason == "content_filter"


def test_stream_tool_call(emulator: Emulator) -> None:
    tools: list[Any] = [
        {
            "type": "function",
            "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    emulator.script("gpt-4o", {"tool_calls": [{"name": "lookup", "arguments": {"q": "x"}}]})
    with (
        azure(emulator) as client,
        client.chat.completions.stream(model="gpt-4o", messages=MESSAGES, tools=tools) as stream,
    ):
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "lookup"
    assert json.loads(call.function.arguments) == {"q": "x"}
    assert final.choices[0].finish_reason == "tool_calls"


def test_stream_errors_come_before_the_stream(emulator: Emulator) -> None:
    emulator.fault("gpt-4o", Fault.rate_limit(retry_after=1, times=1))
    with azure(emulator) as client, pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)


def test_mid_stream_error_event_raises_api_error(emulator: Emulator) -> None:
    emulator.script("gpt-4o", "one two three four five")
    emulator.fault("gpt-4o", Fault.stream_error(times=1))
    received: list[str] = []

    def consume(client: openai.AzureOpenAI) -> None:
        for chunk in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)

    with azure(emulator) as client, pytest.raises(openai.APIError) as info:
        consume(client)
    assert not isinstance(info.value, openai.APIStatusError)
    assert received == ["one "]


def test_mid_stream_drop_is_a_connection_failure(emulator: Emulator) -> None:
    emulator.fault("gpt-4o", Fault.stream_drop(times=1))
    with azure(emulator) as client, pytest.raises(openai.APIConnectionError):
        list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))


def test_stream_faults_on_non_streamed_calls(emulator: Emulator) -> None:
    emulator.fault("gpt-4o", Fault.stream_error(times=1))
    emulator.fault("gpt-4o", Fault.stream_drop(times=1))
    with azure(emulator) as client:
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        with pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
