"""Bad input: each case raises a clear InvalidInputError and leaves the store exactly as it was."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from azmem.errors import InvalidInputError
from azmem.memory import Memory

Call = Callable[[Memory], Any]

MB = 1024 * 1024

ADD_CASES: list[tuple[str, Call, str]] = [
    ("empty string", lambda m: m.add("", user_id="u"), "empty"),
    ("blank string", lambda m: m.add("   \n", user_id="u"), "empty"),
    ("empty list", lambda m: m.add([], user_id="u"), "empty"),
    ("1 MB message", lambda m: m.add("x" * MB, user_id="u"), "limit"),
    ("1 MB in a list", lambda m: m.add([{"content": "ok"}, {"content": "y" * MB}], user_id="u"), "limit"),
    ("invalid UTF-8 bytes", lambda m: m.add(b"caf\xe9 \xff", user_id="u"), "UTF-8"),
    ("lone surrogate", lambda m: m.add("bad \udcff text", user_id="u"), "surrogate"),
    ("NUL byte", lambda m: m.add("nul\x00byte", user_id="u"), "NUL"),
    ("NUL in metadata", lambda m: m.add("ok", user_id="u", metadata={"k": "a\x00b"}), "NUL"),
    ("no scope", lambda m: m.add("hello"), "user_id, agent_id or run_id"),
    ("blank scope", lambda m: m.add("hello", user_id=" "), "empty"),
    ("padded scope", lambda m: m.add("hello", user_id="alice "), "whitespace"),
    ("int content", lambda m: m.add([{"role": "user", "content": 42}], user_id="u"), "string"),
    ("int messages", lambda m: m.add(42, user_id="u"), "messages must be"),
    ("message not dict", lambda m: m.add(["hi"], user_id="u"), "must be a dict"),
    ("unknown role", lambda m: m.add([{"role": "robot", "content": "hi"}], user_id="u"), "role"),
    ("no content", lambda m: m.add([{"role": "user"}], user_id="u"), "content"),
    ("int user_id", lambda m: m.add("hi", user_id=7), "string"),
    ("metadata list", lambda m: m.add("hi", user_id="u", metadata=["a"]), "dict"),
    ("metadata NaN", lambda m: m.add("hi", user_id="u", metadata={"x": float("nan")}), "NaN"),
    ("metadata object", lambda m: m.add("hi", user_id="u", metadata={"x": object()}), "JSON"),
    ("infer string", lambda m: m.add("hi", user_id="u", infer="yes"), "infer"),
    (
        "bad timestamp",
        lambda m: m.add([{"content": "hi", "timestamp": "last tuesday"}], user_id="u"),
        "ISO 8601",
    ),
    (
        "image part",
        lambda m: m.add([{"content": [{"type": "image_url", "url": "x"}]}], user_id="u"),
        "text part",
    ),
]

READ_CASES: list[tuple[str, Call, str]] = [
    ("unknown operator", lambda m: m.search("tea", user_id="u", filters={"k": {"approx": 1}}), "approx"),
    ("unknown operator in list", lambda m: m.get_all(user_id="u", filters={"k": {"$regex": "x"}}), "regex"),
    ("filters not dict", lambda m: m.search("tea", user_id="u", filters="k=1"), "dict"),
    ("limit zero", lambda m: m.search("tea", user_id="u", limit=0), "limit"),
    ("limit bool", lambda m: m.search("tea", user_id="u", limit=True), "integer"),
    ("limit str", lambda m: m.get_all(user_id="u", limit="10"), "integer"),
    ("threshold str", lambda m: m.search("tea", user_id="u", threshold="high"), "number"),
    ("threshold > 1", lambda m: m.search("tea", user_id="u", threshold=2), "cosine"),
    ("mode", lambda m: m.search("tea", user_id="u", mode="fuzzy"), "mode"),
    ("empty query", lambda m: m.search("", user_id="u"), "empty"),
    ("query NUL", lambda m: m.search("te\x00a", user_id="u"), "NUL"),
    ("search no scope", lambda m: m.search("tea"), "user_id, agent_id or run_id"),
    ("get_all no scope", lambda m: m.get_all(), "user_id, agent_id or run_id"),
    ("bad cursor", lambda m: m.get_all(user_id="u", cursor="not-a-cursor"), "cursor"),
    ("cursor int", lambda m: m.get_all(user_id="u", cursor=3), "cursor"),
    ("get id int", lambda m: m.get(123), "string"),
    ("get empty id", lambda m: m.get(""), "empty"),
    ("update 1 MB", lambda m: m.update(_first_id(m), text="z" * MB), "limit"),
    ("update NUL", lambda m: m.update(_first_id(m), text="a\x00"), "NUL"),
    ("update metadata str", lambda m: m.update(_first_id(m), metadata="x"), "dict"),
    ("delete_all int scope", lambda m: m.delete_all(user_id=5), "string"),
]


def _first_id(m: Memory) -> str:
    return m.get_all(user_id="u").results[0].id


def _state(m: Memory) -> list[tuple[str, str, str | None, dict[str, Any], int]]:
    items = m.get_all(user_id="u", limit=1000).results
    return [(i.id, i.memory, i.user_id, i.metadata, len(m.history(i.id))) for i in items]


@pytest.fixture
def seeded(memory: Memory) -> Memory:
    memory.add([{"content": "I like tea"}, {"content": "I live in Oslo"}], user_id="u", metadata={"k": 1})
    return memory


@pytest.mark.parametrize(
    ("call", "match"),
    [(c, m) for _, c, m in ADD_CASES + READ_CASES],
    ids=[name for name, _, _ in ADD_CASES + READ_CASES],
)
def test_bad_input_is_a_clear_typed_error_and_changes_nothing(seeded: Memory, call: Call, match: str) -> None:
    before = _state(seeded)
    with pytest.raises(InvalidInputError, match=match) as info:
        call(seeded)
    assert info.value.message  # a sentence for the user, not a bare repr
    assert isinstance(info.value, ValueError)  # catchable as the builtin too
    assert _state(seeded) == before


def test_a_batch_with_one_bad_message_stores_none_of_them(seeded: Memory) -> None:
    before = _state(seeded)
    with pytest.raises(InvalidInputError, match=r"messages\[2\]"):
        seeded.add([{"content": "fine"}, {"content": "also fine"}, {"content": "bad\x00"}], user_id="u")
    assert _state(seeded) == before


def test_valid_utf8_bytes_and_text_parts_are_accepted(memory: Memory) -> None:
    r = memory.add(
        [{"content": "caf\u00e9".encode()}, {"content": [{"type": "text", "text": "part"}]}], user_id="u"
    )
    assert [e.memory for e in r.results] == ["caf\u00e9", "part"]


def test_caller_objects_are_not_mutated(memory: Memory) -> None:
    messages = [{"role": "user", "content": "I like tea", "timestamp": "2024-01-01T00:00:00Z"}]
    metadata = {"source": "x"}
    snapshot = (repr(messages), repr(metadata))
    memory.add(messages, user_id="u", metadata=metadata)
    assert (repr(messages), repr(metadata)) == snapshot
