"""The Responses API as Azure serves it, checked with the raw openai SDK's ``responses`` resource.

Every answer is also validated against the SDK's own pydantic types (``Response``,
``ResponseStreamEvent``) with full validation, not the SDK's lenient construction, so a
field the emulator leaves out or misspells fails here instead of in a user's code.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest
from emulator_helpers import raw, v1
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import BaseModel, TypeAdapter

from azmem.emulator import Deployment, Emulator, Fault

VERSION = "2025-04-01-preview"
_EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


def dated(emu: Emulator, **kw: Any) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(**{**emu.client_kwargs(VERSION), **kw})


def strict(body: bytes | str) -> Response:
    """The body validated field by field against the SDK's type."""
    return Response.model_validate(json.loads(body))


class Person(BaseModel):
    name: str
    age: int


def test_text_on_dated_and_v1_routes(emulator: Emulator) -> None:
    with dated(emulator) as client:
        answer = client.responses.with_raw_response.create(model="gpt-4o", input="Hello there")
    with v1(emulator) as client:
        on_v1 = client.responses.create(model="gpt-4o", input=[{"role": "user", "content": "Hello there"}])
    response = strict(answer.http_response.text)
    assert answer.headers["apim-request-id"]
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert response.model == "gpt-4o"
    assert response.output_text == on_v1.output_text
    assert response.output_text.startswith("This is an emulated reply from gpt-4o.")
    (message,) = response.output
    assert message.type == "message"
    assert response.usage is not None
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert response.usage.output_tokens_details.reasoning_tokens == 0
    assert [(r.path, r.query.get("api-version"), r.deployment) for r in emulator.requests] == [
        ("/openai/responses", VERSION, "gpt-4o"),
        ("/openai/v1/responses", None, "gpt-4o"),
    ]


def test_reasoning_items_summary_and_reasoning_tokens(emulator: Emulator) -> None:
    with dated(emulator) as client:
        low = client.responses.create(model="o3-mini", input="Think", reasoning={"effort": "low"})
        high = client.responses.with_raw_response.create(
            model="o3-mini", input="Think", reasoning={"effort": "high", "summary": "auto"}
        )
    response = strict(high.http_response.text)
    reasoning, message = response.output
    assert reasoning.type == "reasoning"
    assert message.type == "message"
    assert reasoning.summary[0].text.startswith("Emulated reasoning summary from o3-mini")
    assert not low.output[0].summary  # type: ignore[union-attr]
    assert response.usage is not None
    assert low.usage is not None
    assert (
        response.usage.output_tokens_details.reasoning_tokens
        > low.usage.output_tokens_details.reasoning_tokens
    )
    assert response.reasoning is not None
    assert response.reasoning.effort == "high"


def test_strict_structured_output_parses(emulator: Emulator) -> None:
    with dated(emulator) as client:
        parsed = client.responses.parse(model="gpt-4o", input="Alice is 30.", text_format=Person)
    assert isinstance(parsed.output_parsed, Person)
    sent = emulator.last_request.json["text"]["format"]
    assert sent["type"] == "json_schema"
    assert sent["strict"] is True


def test_tools_and_function_call_output_round_trip(emulator: Emulator) -> None:
    tool = {
        "type": "function",
        "name": "weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    }
    with dated(emulator) as client:
        first = client.responses.with_raw_response.create(
            model="gpt-4o",
            input="Weather in Oslo?",
            tools=[tool],
            tool_choice="required",  # type: ignore[list-item]
        )
        response = strict(first.http_response.text)
        (call,) = response.output
        assert call.type == "function_call"
        assert call.name == "weather"
        assert json.loads(call.arguments) == {"city": "Weather in Oslo?"}  # drawn from the request
        emulator.script("gpt-4o", "It is sunny.")
        second = client.responses.create(
            model="gpt-4o",
            input=[
                {"role": "user", "content": "Weather in Oslo?"},
                {
                    "type": "function_call",
                    "call_id": call.call_id,
                    "name": "weather",
                    "arguments": call.arguments,
                },
                {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
            ],
            tools=[tool],  # type: ignore[list-item]
        )
    assert second.output_text == "It is sunny."


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({"model": "gpt-4o"}, "input", "Missing required parameter: 'input'."),
        (
            {"model": "gpt-4o", "input": [{"role": "tool", "content": "x"}]},
            "input[0].role",
            "Invalid value: 'tool'.",
        ),
        (
            {"model": "gpt-4o", "input": "x", "tools": [{"type": "function", "function": {"name": "f"}}]},
            "tools[0].name",
            "Missing required parameter: 'tools[0].name'.",
        ),
        (
            {"model": "gpt-4o", "input": "x", "max_output_tokens": 5},
            "max_output_tokens",
            "Expected a value >= 16",
        ),
        (
            {"model": "o3-mini", "input": "x", "temperature": 0.2},
            "temperature",
            "'temperature' is not supported",
        ),
        (
            {"model": "gpt-4o", "input": "x", "reasoning": {"effort": "low"}},
            "reasoning.effort",
            "not supported",
        ),
        (
            {"model": "gpt-4o", "input": "hi", "text": {"format": {"type": "json_object"}}},
            "input",
            "word 'json'",
        ),
        (
            {
                "model": "gpt-4o",
                "input": "x",
                "text": {
                    "format": {
                        "type": "json_schema",
                        "name": "p",
                        "strict": True,
                        "schema": {"type": "object"},
                    }
                },
            },
            "text.format.schema",
            "'additionalProperties' is required",
        ),
        (
            {"model": "gpt-4o", "input": [{"type": "function_call_output", "call_id": "c1", "output": "x"}]},
            "input",
            "No tool call found for function call output with call_id c1.",
        ),
    ],
    ids=[
        "no-input",
        "tool-role",
        "chat-shaped-tool",
        "tiny-budget",
        "temp-on-o3",
        "effort-on-4o",
        "json-word",
        "loose-schema",
        "orphan-output",
    ],
)
def test_requests_azure_rejects(emulator: Emulator, body: dict[str, Any], param: str, message: str) -> None:
    with dated(emulator) as client, pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(**body)
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["param"] == param
    assert message in error["message"]


def test_route_level_errors(emulator: Emulator) -> None:
    with (
        openai.AzureOpenAI(**emulator.client_kwargs("2024-10-21")) as old,
        pytest.raises(openai.BadRequestError) as e,
    ):
        old.responses.create(model="gpt-4o", input="x")
    assert e.value.code == "BadRequest"
    assert "2025-03-01-preview and later" in str(e.value.message)
    with dated(emulator) as client:
        with pytest.raises(openai.NotFoundError) as missing:
            client.responses.create(model="nope", input="x")
        assert missing.value.code == "DeploymentNotFound"
        with pytest.raises(openai.BadRequestError) as embed:
            client.responses.create(model="text-embedding-3-small", input="x")
        assert embed.value.code == "OperationNotSupported"
    with dated(emulator, api_key="wrong") as client, pytest.raises(openai.AuthenticationError):
        client.responses.create(model="gpt-4o", input="x")
    status, _, _ = raw(emulator, "/openai/responses", {"model": "gpt-4o", "input": "x"})
    assert status == 404  # no api-version on a dated route


def test_legacy_models_do_not_serve_responses(emulator_factory: Any) -> None:
    emu = emulator_factory(deployments=[Deployment("old", model="gpt-35-turbo")])
    with dated(emu) as client, pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="old", input="x")
    assert caught.value.code == "OperationNotSupported"


def test_faults_and_scripts_work_as_for_chat(emulator: Emulator) -> None:
    emulator.fault("gpt-4o", Fault.rate_limit(retry_after=2, times=1))
    emulator.fault("gpt-4o", Fault.prompt_filter({"hate": "high"}, times=1))
    emulator.fault("gpt-4o", Fault.output_filter(times=1))
    emulator.script(
        "gpt-4o",
        [
            {"content": "scripted", "usage": None},
            lambda body: f"echo {body['input']}",
            {"content": "a b c d e f g h i j k l m n o p q r s t u v w x y z " * 10},
        ],
    )
    with dated(emulator) as client:
        with pytest.raises(openai.RateLimitError) as limited:
            client.responses.create(model="gpt-4o", input="x")
        assert "Responses_Create" in str(limited.value.message)
        assert limited.value.response.headers["retry-after"] == "2"
        with pytest.raises(openai.BadRequestError) as blocked:
            client.responses.create(model="gpt-4o", input="x")
        assert blocked.value.code == "content_filter"
        filtered = client.responses.with_raw_response.create(model="gpt-4o", input="x")
        assert client.responses.create(model="gpt-4o", input="x").output_text == "scripted"
        assert client.responses.create(model="gpt-4o", input="hey").output_text == "echo hey"
        cut = client.responses.create(model="gpt-4o", input="x", max_output_tokens=16)
    response = strict(filtered.http_response.text)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "content_filter"
    assert (response.model_extra or {})["content_filters"][0]["content_filter_results"]["violence"][
        "filtered"
    ]
    assert cut.status == "incomplete"
    assert cut.incomplete_details is not None
    assert cut.incomplete_details.reason == "max_output_tokens"


def _events(emu: Emulator, **kw: Any) -> list[Any]:
    with dated(emu) as client, client.responses.create(stream=True, **kw) as stream:
        return list(stream)


def test_stream_event_sequence(emulator: Emulator) -> None:
    emulator.script("o3-mini", {"content": "one two three", "reasoning_summary": "Thought briefly."})
    with dated(emulator) as client:
        answer = client.responses.with_raw_response.create(
            model="o3-mini", input="x", stream=True, reasoning={"summary": "auto"}
        )
        body = answer.http_response.read().decode()
    assert answer.headers["content-type"].startswith("text/event-stream")
    blocks = [b for b in body.split("\n\n") if b]
    events = []
    for block in blocks:
        name, data = block.split("\n")
        event = json.loads(data.removeprefix("data: "))
        assert name == f"event: {event['type']}"
        events.append(_EVENTS.validate_python(event))
    kinds = [e.type for e in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert "response.reasoning_summary_text.delta" in kinds
    assert kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    summary = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    assert (text, summary) == ("one two three", "Thought briefly.")
    final = events[-1].response
    assert final.usage.output_tokens_details.reasoning_tokens > 0
    assert final.output_text == "one two three"


def test_sdk_stream_helper_and_tool_call_events(emulator: Emulator) -> None:
    tool = {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}
    with dated(emulator) as client:
        with client.responses.stream(model="gpt-4o", input="Hello there") as stream:
            final = stream.get_final_response()
        assert final.output_text.startswith("This is an emulated reply")
        emulator.script("gpt-4o", {"tool_calls": [{"name": "f", "arguments": {"a": 1}}]})
        events = _events(emulator, model="gpt-4o", input="x", tools=[tool])
    kinds = [e.type for e in events]
    assert "response.function_call_arguments.delta" in kinds
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert json.loads(done.arguments) == {"a": 1}


def test_stream_faults(emulator: Emulator) -> None:
    emulator.fault("gpt-4o", Fault.stream_error(times=1))
    events = _events(emulator, model="gpt-4o", input="Hello there friend")
    assert events[-1].type == "error"
    assert events[-1].code == "server_error"
    emulator.fault("gpt-4o", Fault.stream_drop(times=1))
    with pytest.raises(openai.APIConnectionError):
        _events(emulator, model="gpt-4o", input="Hello there friend")
    emulator.fault("gpt-4o", Fault.output_filter(times=1))
    filtered = _events(emulator, model="gpt-4o", input="x")
    assert filtered[-1].type == "response.incomplete"


def test_async_sdk(emulator: Emulator) -> None:
    async def main() -> tuple[str, list[str]]:
        async with openai.AsyncAzureOpenAI(**emulator.client_kwargs(VERSION)) as client:
            reply = await client.responses.create(model="gpt-4o-mini", input="Hello there")
            stream = await client.responses.create(model="gpt-4o-mini", input="Hello there", stream=True)
            kinds = [event.type async for event in stream]
            return reply.output_text, kinds

    text, kinds = asyncio.run(main())
    assert text.startswith("This is an emulated reply from gpt-4o-mini.")
    assert kinds[-1] == "response.completed"
