"""Chat completions through the real SDK: shapes, structured output, checks Azure makes, tools."""

from __future__ import annotations

import json
from typing import Any, Literal

import openai
import pytest
from emulator_helpers import MESSAGES, azure, raw, v1
from pydantic import BaseModel

from azmem.emulator import Deployment, Emulator, Fault


class Address(BaseModel):
    city: str
    postcode: int | None


class Fact(BaseModel):
    text: str
    kind: Literal["preference", "event", "relation"]
    confidence: float
    tags: list[str]
    addresses: list[Address]
    primary: Address | None
    verified: bool


class Facts(BaseModel):
    facts: list[Fact]


def test_body_has_azure_filter_results_and_fingerprint(emulator: Emulator) -> None:
    status, headers, body = raw(
        emulator,
        "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
        {"messages": MESSAGES},
    )
    assert status == 200
    assert headers["content-type"] == "application/json"
    reply = json.loads(body)
    assert reply["prompt_filter_results"][0]["prompt_index"] == 0
    prompt_results = reply["prompt_filter_results"][0]["content_filter_results"]
    assert prompt_results["jailbreak"] == {"filtered": False, "detected": False}
    assert prompt_results["hate"] == {"filtered": False, "severity": "safe"}
    choice = reply["choices"][0]
    assert choice["content_filter_results"]["protected_material_text"] == {
        "filtered": False,
        "detected": False,
    }
    assert choice["message"]["role"] == "assistant"
    assert reply["system_fingerprint"].startswith("fp_")
    assert reply["id"].startswith("chatcmpl-")


def test_parse_with_pydantic_model_validates_generated_instance(emulator: Emulator) -> None:
    with azure(emulator) as client:
        reply = client.chat.completions.parse(model="gpt-4o", messages=MESSAGES, response_format=Facts)
    parsed = reply.choices[0].message.parsed
    assert isinstance(parsed, Facts)
    assert parsed.facts[0].kind == "preference"
    sent = emulator.last_request.json["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["strict"] is True


def test_parse_over_v1_api(emulator: Emulator) -> None:
    with v1(emulator) as client:
        reply = client.chat.completions.parse(model="gpt-4o", messages=MESSAGES, response_format=Address)
    assert isinstance(reply.choices[0].message.parsed, Address)


def test_recursive_schema_terminates(emulator: Emulator) -> None:
    class Node(BaseModel):
        name: str
        children: list[Node]
        parent: Node | None

    with azure(emulator) as client:
        reply = client.chat.completions.parse(model="gpt-4o", messages=MESSAGES, response_format=Node)
    assert isinstance(reply.choices[0].message.parsed, Node)


@pytest.mark.parametrize("version", ["2024-06-01", "2024-07-01-preview", "2024-02-15-preview"])
def test_json_schema_rejected_before_2024_08_01_preview(emulator: Emulator, version: str) -> None:
    with azure(emulator, api_version=version) as client, pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.parse(model="gpt-4o", messages=MESSAGES, response_format=Address)
    assert info.value.code == "BadRequest"
    assert info.value.body == {
        "code": "BadRequest",
        "message": "response_format value as json_schema is enabled only for api versions "
        "2024-08-01-preview and later",
    }


@pytest.mark.parametrize("version", ["2024-08-01-preview", "2024-10-21", "2025-04-01-preview"])
def test_json_schema_accepted_from_2024_08_01_preview(emulator: Emulator, version: str) -> None:
    with azure(emulator, api_version=version) as client:
        reply = client.chat.completions.parse(model="gpt-4o", messages=MESSAGES, response_format=Address)
    assert reply.choices[0].message.parsed is not None


def test_non_strict_schema_is_refused_like_azure(emulator: Emulator) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    with azure(emulator) as client, pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gpt-4o",
            messages=MESSAGES,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "T", "schema": schema, "strict": True},
            },
        )
    assert "'additionalProperties' is required to be supplied and to be false" in str(info.value.body)


def test_json_object_needs_the_word_json(emulator: Emulator) -> None:
    with azure(emulator) as client:
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, response_format={"type": "json_object"}
            )
        ok = client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "Answer in JSON please"}],
            response_format={"type": "json_object"},
        )
    assert info.value.body == {
        "message": "'messages' must contain the word 'json' in some form, to use 'response_format' of "
        "type 'json_object'.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": None,
    }
    assert isinstance(json.loads(ok.choices[0].message.content or ""), dict)


def test_context_window_exceeded(emulator_factory: Any) -> None:
    emu = emulator_factory(deployments=[Deployment("small-ctx", model="gpt-4", context_window=100)])
    long = [{"role": "user", "content": "word " * 200}]
    with azure(emu) as client, pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="small-ctx", messages=long)
    assert info.value.code == "context_length_exceeded"
    body: Any = info.value.body
    assert body["type"] == "invalid_request_error"
    assert body["param"] == "messages"
    assert body["message"].startswith(
        "This model's maximum context length is 100 tokens. However, your messages"
    )


def test_context_window_counts_requested_completion(emulator_factory: Any) -> None:
    emu = emulator_factory(deployments=[Deployment("small-ctx", model="gpt-4", context_window=100)])
    with azure(emu) as client, pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="small-ctx", messages=MESSAGES, max_tokens=200)
    assert info.value.code == "context_length_exceeded"
    assert "in the completion" in str(info.value.body)


def test_reasoning_deployment_rejects_max_tokens_and_temperature(emulator: Emulator) -> None:
    with azure(emulator) as client:
        with pytest.raises(openai.BadRequestError) as max_tokens:
            client.chat.completions.create(model="o3-mini", messages=MESSAGES, max_tokens=50)
        with pytest.raises(openai.BadRequestError) as temperature:
            client.chat.completions.create(model="o3-mini", messages=MESSAGES, temperature=0.2)
        ok = client.chat.completions.create(
            model="o3-mini", messages=MESSAGES, max_completion_tokens=500, reasoning_effort="low"
        )
    assert max_tokens.value.code == "unsupported_parameter"
    assert max_tokens.value.param == "max_tokens"
    assert "Use 'max_completion_tokens' instead." in max_tokens.value.message
    assert temperature.value.code == "unsupported_value"
    assert ok.usage is not None
    assert ok.usage.completion_tokens_details is not None
    assert ok.usage.completion_tokens_details.reasoning_tokens == 16


def test_max_tokens_cuts_reply_with_finish_reason_length(emulator: Emulator) -> None:
    emulator.script("gpt-4o", "a long answer " * 50)
    with azure(emulator) as client:
        reply = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=5)
    assert reply.choices[0].finish_reason == "length"
    assert len(reply.choices[0].message.content or "") == 20


def test_scripted_tool_call_and_generated_tool_call(emulator: Emulator) -> None:
    tools: list[Any] = [
        {
            "type": "function",
            "function": {
                "name": "save_memory",
                "parameters": {
                    "type": "object",
                    "properties": {"text": {"type": "string"}, "priority": {"type": "integer"}},
                    "required": ["text", "priority"],
                    "additionalProperties": False,
                },
            },
        }
    ]
    emulator.script(
        "gpt-4o", [{"tool_calls": [{"name": "save_memory", "arguments": {"text": "x", "priority": 2}}]}]
    )
    with azure(emulator) as client:
        scripted = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=tools)
        generated = client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, tools=tools, tool_choice="required"
        )
        plain = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=tools)
    call = scripted.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert scripted.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "save_memory"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"text": "x", "priority": 2}  # type: ignore[union-attr]
    gen = generated.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert set(json.loads(gen.function.arguments)) == {"text", "priority"}  # type: ignore[union-attr]
    assert plain.choices[0].message.tool_calls is None


def test_callable_script_sees_the_request(emulator: Emulator) -> None:
    seen: list[Any] = []

    def respond(request: dict[str, Any]) -> Any:
        seen.append(request)
        return f"you said {request['messages'][-1]['content']}"

    emulator.script("gpt-4o", respond)
    with azure(emulator) as client:
        first = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        second = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "bye"}])
    assert first.choices[0].message.content == "you said Hello there"
    assert second.choices[0].message.content == "you said bye"
    assert len(seen) == 2


def test_refusal_and_full_body_replies(emulator: Emulator) -> None:
    full = {
        "id": "chatcmpl-fixed",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "verbatim"}}
        ],
    }
    emulator.script("gpt-4o", [{"refusal": "I can't help with that."}, full])
    with azure(emulator) as client:
        refused = client.chat.completions.parse(model="gpt-4o", messages=MESSAGES, response_format=Address)
        verbatim = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert refused.choices[0].message.refusal == "I can't help with that."
    assert refused.choices[0].message.parsed is None
    assert verbatim.id == "chatcmpl-fixed"
    assert verbatim.choices[0].message.content == "verbatim"


def test_script_fault_in_queue(emulator: Emulator) -> None:
    emulator.script("gpt-4o", [Fault(status=503), "after"])
    with azure(emulator) as client:
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        after = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert info.value.status_code == 503
    assert info.value.code == "ServiceUnavailable"
    assert after.choices[0].message.content == "after"


def test_chat_on_embeddings_deployment_is_operation_not_supported(emulator: Emulator) -> None:
    with azure(emulator) as client, pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="text-embedding-3-small", messages=MESSAGES)
    assert info.value.code == "OperationNotSupported"


def test_n_choices_and_usage_sum(emulator: Emulator) -> None:
    emulator.script("gpt-4o", "same")
    with azure(emulator) as client:
        reply = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, n=3)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 3


def test_async_client(emulator: Emulator) -> None:
    import asyncio

    async def main() -> str | None:
        async with openai.AsyncAzureOpenAI(**emulator.client_kwargs()) as client:
            reply = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            return reply.choices[0].message.content

    assert asyncio.run(main()) == 'This is an emulated reply from gpt-4o. You said: "Hello there"'


def test_legacy_model_refuses_json_schema_and_images(emulator: Emulator) -> None:
    emulator.add_deployment(Deployment("old", model="gpt-35-turbo"))
    image: list[Any] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        }
    ]
    with azure(emulator) as client:
        with pytest.raises(openai.BadRequestError) as schema:
            client.chat.completions.parse(model="old", messages=MESSAGES, response_format=Address)
        with pytest.raises(openai.BadRequestError) as vision:
            client.chat.completions.create(model="old", messages=image)
        assert client.chat.completions.create(model="gpt-4o", messages=image).choices
    assert "'response_format' of type 'json_schema' is not supported with this model" in str(
        schema.value.body
    )
    assert vision.value.param == "messages.[0].content.[1].type"


def test_generated_instance_respects_formats_and_bounds(emulator: Emulator) -> None:
    import datetime
    import uuid

    from pydantic import Field

    class Event(BaseModel):
        when: datetime.datetime
        day: datetime.date
        id: uuid.UUID
        count: int = Field(ge=3)
        share: float = Field(gt=0, lt=1)

    with azure(emulator) as client:
        reply = client.chat.completions.parse(model="gpt-4o", messages=MESSAGES, response_format=Event)
    event = reply.choices[0].message.parsed
    assert event is not None
    assert event.count == 3


def test_dict_field_is_refused_in_strict_mode(emulator: Emulator) -> None:
    schema = {
        "type": "object",
        "properties": {"labels": {"type": "object", "additionalProperties": {"type": "string"}}},
        "required": ["labels"],
        "additionalProperties": False,
    }
    with azure(emulator) as client, pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gpt-4o",
            messages=MESSAGES,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "T", "schema": schema, "strict": True},
            },
        )
    assert "context=('properties', 'labels')" in str(info.value.body)


def test_completion_budget_above_model_maximum(emulator: Emulator) -> None:
    with azure(emulator) as client, pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=20_000)
    assert info.value.code == "invalid_value"
    assert info.value.param == "max_tokens"
    assert "This model supports at most 16384 completion tokens" in info.value.message


@pytest.mark.parametrize("budget", [5, 20, 64])
def test_a_reasoning_deployment_spends_its_budget_thinking_and_stops_at_length(
    emulator: Emulator, budget: int
) -> None:
    with openai.AzureOpenAI(**emulator.client_kwargs()) as client:
        reply = client.chat.completions.create(
            model="o3-mini",
            messages=[{"role": "user", "content": "Tell me a story"}],
            max_completion_tokens=budget,
        )
    assert reply.choices[0].finish_reason == "length"
    assert reply.choices[0].message.content == ""
    assert reply.usage is not None
    assert reply.usage.completion_tokens <= budget
    assert reply.usage.completion_tokens_details is not None
    assert reply.usage.completion_tokens_details.reasoning_tokens == budget


def test_a_reasoning_reply_is_cut_to_what_the_budget_leaves_after_reasoning(emulator: Emulator) -> None:
    with openai.AzureOpenAI(**emulator.client_kwargs()) as client:
        cut = client.chat.completions.create(
            model="o3-mini", messages=[{"role": "user", "content": "Hi"}], max_completion_tokens=70
        )
        whole = client.chat.completions.create(
            model="o3-mini", messages=[{"role": "user", "content": "Hi"}], max_completion_tokens=1000
        )
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage is not None
    assert cut.usage.completion_tokens <= 70
    assert whole.choices[0].finish_reason == "stop"
    assert whole.choices[0].message.content
    assert (cut.choices[0].message.content or "x") in whole.choices[0].message.content
