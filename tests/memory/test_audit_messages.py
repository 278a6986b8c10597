"""`Memory.add` takes the client layer's typed messages (azmem.azure.messages) as well as dicts and text.

Same rules as for dicts: system turns are not memories, a bad message rejects the whole
call with a typed error and no change; an assistant turn that only calls tools holds no
text and is skipped. Both faces, and the inference pipeline, see the same messages.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.chat import ChatCompletionMessage
from pydantic import BaseModel

from azmem.azure.messages import (
    AssistantMessage,
    ImagePart,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from azmem.embeddings import LocalEmbedder
from azmem.emulator import Emulator
from azmem.errors import InvalidInputError
from azmem.memory import AsyncMemory, Memory

from .conftest import CHAT, chat_requests, facts

CONVERSATION: list[Any] = [
    SystemMessage(content="You are a helpful assistant."),
    UserMessage(content="I adopted a cat named Miso.", name="alice"),
    AssistantMessage(content=None, tool_calls=(ToolCall(id="c1", name="lookup_breed"),)),
    ToolMessage(content="Miso is a Maine Coon.", tool_call_id="c1"),
    AssistantMessage(content="Congratulations on Miso!"),
    UserMessage(content=(TextPart(text="She is two"), TextPart(text="and loves boxes."))),
    {"role": "user", "content": "Dicts still work.", "timestamp": "2024-03-02T10:00:00Z"},
]

EXPECTED = [
    ("I adopted a cat named Miso.", "user", "alice"),
    ("Miso is a Maine Coon.", "tool", None),
    ("Congratulations on Miso!", "assistant", None),
    ("She is two\nand loves boxes.", "user", None),
    ("Dicts still work.", "user", None),
]


def _stored(m: Memory, ids: list[str]) -> list[tuple[str, str | None, str | None]]:
    return [(i.memory, i.role, i.actor_id) for i in (m.get(x) for x in ids)]


def test_typed_messages_are_stored_like_dicts(memory: Memory) -> None:
    result = memory.add(CONVERSATION, user_id="u", infer=False)
    assert _stored(memory, [e.id for e in result.results]) == EXPECTED
    assert [e.metadata["role"] for e in result.results] == ["user", "tool", "assistant", "user", "user"]
    # one typed message alone, and the SDK's own message model
    single = memory.add(UserMessage(content="I live in Oslo"), user_id="u", infer=False).results
    assert [e.memory for e in single] == ["I live in Oslo"]
    sdk = memory.add([ChatCompletionMessage(role="assistant", content="Noted: Oslo.")], user_id="u")
    assert [(e.memory, e.metadata["role"]) for e in sdk.results] == [("Noted: Oslo.", "assistant")]
    # a tool-calls-only turn (typed or OpenAI-shaped dict) has nothing to remember
    only_calls: list[Any] = [
        AssistantMessage(content=None, tool_calls=(ToolCall(id="c2", name="f"),)),
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c3", "function": {"name": "f"}}]},
    ]
    assert memory.add(only_calls, user_id="u").results == []
    assert memory.search("Maine Coon", user_id="u", mode="bm25").results[0].memory == "Miso is a Maine Coon."


class _NotAMessage(BaseModel):
    text: str = "hello"


BAD: list[tuple[str, Any, str]] = [
    ("image part", UserMessage(content=(ImagePart(url="https://x/cat.png"),)), r"messages\[1\].content\[0\]"),
    ("NUL", UserMessage(content="a\x00b"), r"messages\[1\].content contains a NUL"),
    ("blank", AssistantMessage(content="  "), r"messages\[1\].content is empty"),
    ("lone surrogate", ToolMessage(content="bad \udcff", tool_call_id="t"), "surrogate"),
    ("1 MB", UserMessage(content="x" * (1024 * 1024)), "limit"),
    ("not a message", _NotAMessage(), r"messages\[1\] is not a valid chat message"),
    ("empty assistant", AssistantMessage(content=None), r"messages\[1\].content"),
]


@pytest.mark.parametrize(("bad", "match"), [(b, m) for _, b, m in BAD], ids=[n for n, _, _ in BAD])
def test_a_bad_typed_message_rejects_the_call_and_changes_nothing(
    memory: Memory, bad: Any, match: str
) -> None:
    memory.add("I like tea", user_id="u")
    before = [(i.id, i.memory) for i in memory.get_all(user_id="u").results]
    with pytest.raises(InvalidInputError, match=match):
        memory.add([UserMessage(content="fine"), bad], user_id="u")
    assert [(i.id, i.memory) for i in memory.get_all(user_id="u").results] == before


async def test_async_face_takes_typed_messages_too(local_embedder: LocalEmbedder, tmp_path: Any) -> None:
    async with AsyncMemory(embedder=local_embedder, store_path=tmp_path / "a.db") as m:
        result = await m.add(CONVERSATION, user_id="u", infer=False)
        items = [await m.get(e.id) for e in result.results]
        assert [(i.memory, i.role, i.actor_id) for i in items] == EXPECTED


def test_typed_messages_reach_the_extraction_prompt(azure_memory: Memory, emulator: Emulator) -> None:
    emulator.script(CHAT, [facts("The user adopted a cat named Miso")])
    result = azure_memory.add(CONVERSATION, user_id="u")
    assert [e.memory for e in result.results] == ["The user adopted a cat named Miso"]
    (extract,) = chat_requests(emulator)
    lines = extract["messages"][-1]["content"].splitlines()
    assert lines == [
        "[no timestamp] user (alice): I adopted a cat named Miso.",
        "[no timestamp] tool: Miso is a Maine Coon.",
        "[no timestamp] assistant: Congratulations on Miso!",
        "[no timestamp] user: She is two",
        "    and loves boxes.",  # a further line is indented: it cannot pose as a turn
        "[2024-03-02 10:00 UTC (Saturday)] user: Dicts still work.",
    ]
    assert "You are a helpful assistant" not in json.dumps(extract["messages"])
