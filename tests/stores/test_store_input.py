"""Bad input to the store: each case is a clear InvalidInputError and the store is unchanged,
even when the bad op comes after valid ones in the same batch. On both backends."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pytest

from azmem.errors import InvalidInputError
from azmem.stores import AddOp, DeleteOp, MemoryRecord, MemoryStore, Scope, UpdateOp
from azmem.stores.validate import MAX_MEMORY_BYTES

from .conftest import StoreFactory
from .store_helpers import DIM, add, fake_embed, snapshot


@pytest.fixture(scope="module")
def shared(module_make_store: StoreFactory) -> MemoryStore:
    """One store for the tests that must leave it unchanged (a database per test is slow on PostgreSQL)."""
    s = module_make_store()
    add(s, "an existing memory", metadata={"k": 1})
    return s


@pytest.fixture
def store(make_store: StoreFactory) -> MemoryStore:
    s = make_store()
    add(s, "an existing memory", metadata={"k": 1})
    return s


def record(text: str = "fine text", **kw: Any) -> MemoryRecord:
    scope = kw.pop("scope", Scope(user_id="alice"))
    return MemoryRecord.new(text, scope, **kw)


def unchecked(**fields: Any) -> MemoryRecord:
    """A record that skipped pydantic validation, as a buggy caller could build: the store checks again."""
    return MemoryRecord.model_construct(**{**record().model_dump(), **fields})


def valid_add() -> AddOp:
    return AddOp(record("a valid memory in the same batch"), fake_embed("valid"))


BAD_ADDS: list[tuple[str, Any, str]] = [
    ("nul", lambda: AddOp(record("has a \x00 NUL"), fake_embed("x")), "NUL character at position 6"),
    ("surrogate", lambda: AddOp(record("bad \udc80 bytes"), fake_embed("x")), "lone surrogate at position 4"),
    ("huge", lambda: AddOp(record("x" * 1_000_000), fake_embed("x")), f"the limit is {MAX_MEMORY_BYTES:,}"),
    ("empty", lambda: AddOp(record(""), fake_embed("x")), "memory is empty"),
    ("blank", lambda: AddOp(record(" \n\t "), fake_embed("x")), "memory is empty"),
    ("no scope", lambda: AddOp(record(scope=Scope()), fake_embed("x")), "at least one of user_id"),
    ("int user", lambda: AddOp(record(scope=Scope(user_id=5)), fake_embed("x")), "user_id: Input should be"),  # type: ignore[arg-type]
    (
        "int user, unvalidated",
        lambda: AddOp(unchecked(user_id=5), fake_embed("x")),
        "user_id must be a string",
    ),
    (
        "int text, unvalidated",
        lambda: AddOp(unchecked(memory=b"x"), fake_embed("x")),
        "memory must be a string",
    ),
    (
        "nul user",
        lambda: AddOp(record(scope=Scope(user_id="a\x00")), fake_embed("x")),
        "user_id contains a NUL",
    ),
    ("long user", lambda: AddOp(record(scope=Scope(user_id="u" * 300)), fake_embed("x")), "longer than 256"),
    ("datetime meta", lambda: AddOp(record(metadata={"d": datetime(2024, 1, 1)}), fake_embed("x")), "JSON"),
    ("nan meta", lambda: AddOp(record(metadata={"f": float("nan")}), fake_embed("x")), "NaN"),
    ("int key", lambda: AddOp(record(metadata={1: "x"}), fake_embed("x")), "metadata.1.[key]"),
    (
        "int key, unvalidated",
        lambda: AddOp(unchecked(metadata={1: "x"}), fake_embed("x")),
        "keys must be strings",
    ),
    ("nul meta", lambda: AddOp(record(metadata={"k": ["ok", "a\x00"]}), fake_embed("x")), "NUL"),
    ("surrogate key", lambda: AddOp(record(metadata={"\ud800": 1}), fake_embed("x")), "surrogate"),
    ("big meta", lambda: AddOp(record(metadata={"k": "x" * 70_000}), fake_embed("x")), "larger than"),
    ("short vector", lambda: AddOp(record(), np.ones(DIM - 1)), f"dimension {DIM}"),
    ("matrix vector", lambda: AddOp(record(), np.ones((2, DIM))), f"dimension {DIM}"),
    ("zero vector", lambda: AddOp(record(), np.zeros(DIM)), "all zeros"),
    ("nan vector", lambda: AddOp(record(), np.full(DIM, np.nan)), "NaN"),
    ("text vector", lambda: AddOp(record(), ["a"] * DIM), "sequence of numbers"),
    ("no vector", lambda: AddOp(record(), None), "vector is required"),  # type: ignore[arg-type]
    ("not an op", lambda: "DELETE everything", "not a store operation"),
    ("update nul", lambda: UpdateOp("x", memory="a\x00", vector=fake_embed("a")), "NUL"),
    ("update naive time", lambda: UpdateOp("x", metadata={}, updated_at=datetime(2024, 1, 1)), "no timezone"),
    ("update bad meta", lambda: UpdateOp("x", metadata={"s": {1, 2}}), "JSON"),
    ("delete bad id", lambda: DeleteOp(5), "id must be a string"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("op_factory", "message"), [c[1:] for c in BAD_ADDS], ids=[c[0] for c in BAD_ADDS])
def test_bad_op_changes_nothing(shared: MemoryStore, op_factory: Any, message: str) -> None:
    before = snapshot(shared)
    with pytest.raises(InvalidInputError) as err:
        shared.apply([valid_add(), op_factory()])
    assert message in str(err.value)
    assert snapshot(shared) == before
    assert shared.check() == []


def test_apply_wants_a_sequence(store: MemoryStore) -> None:
    with pytest.raises(InvalidInputError, match="sequence"):
        store.apply(valid_add())  # type: ignore[arg-type]
    assert store.apply([]) == []


def test_naive_created_at_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="no timezone"):
        MemoryRecord.new("x", Scope(user_id="a"), created_at=datetime(2024, 1, 1))


def test_text_at_the_limit_is_accepted(store: MemoryStore) -> None:
    text = "é" * (MAX_MEMORY_BYTES // 2)  # two UTF-8 bytes each: exactly at the limit
    rec = record(text)
    store.apply([AddOp(rec, fake_embed("x"))])
    got = store.get(rec.id)
    assert got is not None
    assert got.memory == text


def test_unicode_round_trips_exactly(store: MemoryStore) -> None:
    text = "Zoë 🍕 日本語 \u200b tab\there \r\n newline; quotes ' \" `back`"
    meta = {"emoji": "🍕", "nested": {"list": [1, 2.5, None, True, "ß"]}, "empty": ""}
    rec = add(store, text, metadata=meta)
    got = store.get(rec.id)
    assert got is not None
    assert got.memory == text
    assert got.metadata == meta
    hits = store.search("日本語", None, Scope(user_id="alice"), mode="bm25")
    assert [h.record.id for h in hits] == [rec.id]


@pytest.mark.parametrize("bad", ["", "a\x00b", "\udc80", 5, None])
def test_read_calls_reject_bad_ids(shared: MemoryStore, bad: Any) -> None:
    with pytest.raises(InvalidInputError):
        shared.get(bad)
    with pytest.raises(InvalidInputError):
        shared.history(bad)


@pytest.mark.parametrize("limit", [0, -1, 10_001, True, 2.5, "10"])
def test_bad_limits(shared: MemoryStore, limit: Any) -> None:
    with pytest.raises(InvalidInputError, match="limit"):
        shared.list(Scope(), limit=limit)
