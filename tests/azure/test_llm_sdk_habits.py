"""openai-SDK habits: its argument spellings, ``.choices``, and streams that say how they ended."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from llm_helpers import Factory, chat_requests, factories
from pydantic import BaseModel

from azmem.azure.llm import AsyncLLMClient, LLMClient
from azmem.azure.response import LLMResult
from azmem.errors import InvalidInputError, OutputTruncatedError


@pytest.fixture(params=["sync", "async"])
def make_llm(request: pytest.FixtureRequest, emulator: Any) -> Iterator[Factory]:
    yield from factories(request, emulator)


class Person(BaseModel):
    name: str
    age: int


def test_the_sdk_spellings_are_read_as_azmems(make_llm: Factory) -> None:
    llm = make_llm("gpt-4o", small="gpt-4o-mini")
    small = llm.generate("hi", model="gpt-4o-mini", max_completion_tokens=50)
    assert small.deployment == "gpt-4o-mini"
    assert chat_requests(make_llm.emu)[-1].json["max_tokens"] == 50
    as_json = llm.generate("hi", response_format={"type": "json_object"})
    assert isinstance(as_json.data, dict)
    parsed = llm.generate("Alice is 30", response_format=Person)
    assert isinstance(parsed.parsed, Person)
    assert llm.generate("hi", response_format={"type": "text"}, model="gpt-4o").text


def test_unclear_spellings_fail_with_azmems_word(make_llm: Factory) -> None:
    llm = make_llm("gpt-4o")
    with pytest.raises(InvalidInputError, match="model_size") as other:
        llm.generate("hi", model="gpt-35-turbo")
    assert "'gpt-4o'" in str(other.value)
    with pytest.raises(InvalidInputError, match="response_model="):
        llm.generate(
            "hi", response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}
        )
    with pytest.raises(InvalidInputError, match="max_tokens"):
        llm.generate("hi", max_tokens=10, max_completion_tokens=20)
    assert chat_requests(make_llm.emu) == []


def test_results_have_choices_like_a_chat_completion(make_llm: Factory) -> None:
    llm = make_llm("gpt-4o")
    make_llm.emu.script("gpt-4o", "Hello!")
    result = llm.generate("hi")
    (choice,) = result.choices
    assert choice.message.content == "Hello!"
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "stop"
    assert result.output_text == "Hello!"
    parsed = llm.generate("Alice is 30", response_model=Person)
    assert parsed.choices[0].message.parsed == parsed.parsed
    calls = llm.generate("use it", tools=[Person], tool_choice="required")
    (call,) = calls.choices[0].message.tool_calls or []
    assert call.function.name == "Person"
    assert calls.choices[0].finish_reason == "tool_calls"


def test_a_stream_yields_text_then_knows_how_it_ended(emulator: Any) -> None:
    from llm_helpers import settings

    emulator.script("gpt-4o", ["one two three", "again"])
    with LLMClient(chat=settings(emulator)) as llm:
        stream = llm.stream("hi")
        assert stream.finish_reason is None
        with pytest.raises(RuntimeError, match="not finished"):
            _ = stream.result
        assert list(stream) == ["one ", "two ", "three"]
        assert stream.done
        assert stream.text == "one two three"
        assert stream.finish_reason == "stop"
        assert stream.usage is not None
        assert stream.usage.output_tokens > 0
        result = stream.result
        assert isinstance(result, LLMResult)
        assert (result.text, result.deployment) == ("one two three", "gpt-4o")
        with llm.stream("hi") as early:  # closing early is allowed, as with the old generator
            assert next(early) == "again"
        assert not early.done

    async def main() -> tuple[list[str], Any]:
        emulator.script("gpt-4o", "four five")
        async with AsyncLLMClient(chat=settings(emulator)) as llm:
            stream = llm.stream("hi")
            pieces = [piece async for piece in stream]
            return pieces, stream

    pieces, stream = asyncio.run(main())
    assert pieces == ["four ", "five"]
    assert stream.finish_reason == "stop"
    assert stream.usage is not None


def test_a_truncated_stream_still_raises(emulator: Any) -> None:
    from llm_helpers import settings

    emulator.script("gpt-4o", "word " * 100)
    with LLMClient(chat=settings(emulator)) as llm:
        stream = llm.stream("hi", max_tokens=5)
        with pytest.raises(OutputTruncatedError):
            list(stream)
        assert stream.finish_reason == "length"
        assert not stream.done
