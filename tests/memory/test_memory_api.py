"""Memory API behaviour on the zero-configuration default (local embeddings + SQLite)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from azmem.embeddings import LocalEmbedder
from azmem.errors import ConfigurationError, EmbedderMismatchError, InvalidInputError, MemoryNotFoundError
from azmem.memory import Memory
from azmem.memory.steps import NO_CHAT_NOTICE, NO_CHAT_QUERY_NOTE


def test_add_verbatim_keeps_role_timestamp_and_skips_system(memory: Memory) -> None:
    result = memory.add(
        [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "I adopted a cat named Miso.", "timestamp": "2024-03-02T10:00:00Z"},
            {"role": "assistant", "content": "Congratulations on Miso!", "name": "bot"},
        ],
        user_id="alice",
        metadata={"source": "chat"},
    )
    assert [e.event for e in result.results] == ["ADD", "ADD"]
    first = memory.get(result.results[0].id)
    assert first.memory == "I adopted a cat named Miso."
    assert first.metadata == {"source": "chat", "role": "user", "timestamp": "2024-03-02T10:00:00+00:00"}
    assert first.user_id == "alice"
    assert first.role == "user"
    second = memory.get(result.results[1].id)
    assert second.metadata["role"] == "assistant"
    assert "timestamp" not in second.metadata
    assert second.actor_id == "bot"


def test_infer_defaults_to_false_without_chat_with_one_notice(
    memory: Memory, caplog: pytest.LogCaptureFixture
) -> None:
    assert memory.can_infer is False
    with caplog.at_level(logging.WARNING, logger="azmem.memory"):
        memory.add("I like green tea", user_id="u")
        memory.add("I live in Oslo", user_id="u")
    notices = [r for r in caplog.records if r.getMessage() == NO_CHAT_NOTICE]
    assert len(notices) == 1
    assert len(memory.get_all(user_id="u").results) == 2
    with pytest.raises(InvalidInputError, match="chat deployment"):
        memory.add("x", user_id="u", infer=True)


def test_search_returns_scored_items_with_scope_best_first(memory: Memory) -> None:
    memory.add(
        [
            {"role": "user", "content": "My sister Ana lives in Lisbon."},
            {"role": "user", "content": "I am allergic to peanuts."},
            {"role": "user", "content": "I play the violin on weekends."},
        ],
        user_id="alice",
        agent_id="helper",
    )
    found = memory.search("which food allergy", user_id="alice", limit=2)
    assert len(found.results) == 2
    top = found.results[0]
    assert top.memory == "I am allergic to peanuts."
    assert top.score is not None
    assert top.similarity is not None
    assert found.results[0].score >= found.results[1].score  # type: ignore[operator]
    assert (top.user_id, top.agent_id, top.run_id) == ("alice", "helper", None)
    assert top.created_at.tzinfo is not None
    assert top.updated_at >= top.created_at
    # mem0-style access and dump
    as_dict = found.to_dict()
    assert as_dict["results"][0]["memory"] == top.memory
    assert isinstance(as_dict["results"][0]["created_at"], str)
    assert found["results"][0]["memory"] == top.memory
    # threshold is a minimum cosine: an impossible one leaves nothing
    assert memory.search("which food allergy", user_id="alice", threshold=0.99).results == []
    # each mode works on its own
    assert memory.search("peanuts", user_id="alice", mode="bm25").results[0].memory == top.memory
    assert memory.search("nut allergy", user_id="alice", mode="dense").results[0].memory == top.memory


def test_get_all_pages_newest_first(memory: Memory) -> None:
    for i in range(5):
        memory.add(f"note number {i}", user_id="pager")
    seen: list[str] = []
    cursor = None
    while True:
        page = memory.get_all(user_id="pager", limit=2, cursor=cursor)
        seen.extend(item.memory for item in page.results)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [f"note number {i}" for i in reversed(range(5))]


def test_update_delete_history(memory: Memory) -> None:
    mid = memory.add("I work as a nurse", user_id="bob").results[0].id
    updated = memory.update(mid, text="I work as a surgeon")
    assert updated.memory == "I work as a surgeon"
    assert updated.updated_at > updated.created_at
    assert memory.search("surgeon job", user_id="bob", mode="bm25").results[0].id == mid  # re-indexed
    with_meta = memory.update(mid, metadata={"verified": True})
    assert with_meta.metadata == {"verified": True}
    assert with_meta.memory == "I work as a surgeon"
    deleted = memory.delete(mid)
    assert deleted.event == "DELETE"
    assert deleted.memory == "I work as a surgeon"
    with pytest.raises(MemoryNotFoundError):
        memory.get(mid)
    with pytest.raises(MemoryNotFoundError):
        memory.delete(mid)
    with pytest.raises(MemoryNotFoundError):
        memory.update(mid, text="again")
    history = memory.history(mid)
    assert [h.event for h in history] == ["ADD", "UPDATE", "UPDATE", "DELETE"]
    assert (history[1].old_memory, history[1].new_memory) == ("I work as a nurse", "I work as a surgeon")
    assert all(h.created_at.tzinfo is not None for h in history)
    assert memory.history("no-such-id") == []


def test_update_without_change_is_not_a_history_event(memory: Memory) -> None:
    mid = memory.add("I like jazz", user_id="c").results[0].id
    same = memory.update(mid, text="I like jazz")
    assert same.memory == "I like jazz"
    assert [h.event for h in memory.history(mid)] == ["ADD"]
    with pytest.raises(InvalidInputError, match="text, metadata or both"):
        memory.update(mid)


def test_scoped_get_update_delete_refuse_other_scopes(memory: Memory) -> None:
    mid = memory.add("secret of alice", user_id="alice").results[0].id
    assert memory.get(mid, user_id="alice").id == mid
    with pytest.raises(MemoryNotFoundError):
        memory.get(mid, user_id="mallory")
    with pytest.raises(MemoryNotFoundError):
        memory.update(mid, text="hacked", user_id="mallory")
    with pytest.raises(MemoryNotFoundError):
        memory.delete(mid, user_id="mallory")
    assert memory.get(mid).memory == "secret of alice"


def test_delete_all_only_touches_its_scope_and_reset_clears(memory: Memory) -> None:
    memory.add([{"content": "a1"}, {"content": "a2"}], user_id="a")
    memory.add("b1", user_id="b")
    memory.add("a-run", user_id="a", run_id="r1")
    assert memory.delete_all(user_id="a", run_id="r1") == 1
    assert len(memory.get_all(user_id="a").results) == 2
    assert memory.delete_all(user_id="a") == 2
    assert [m.memory for m in memory.get_all(user_id="b").results] == ["b1"]
    with pytest.raises(InvalidInputError, match="user_id, agent_id or run_id"):
        memory.delete_all()
    memory.reset()
    assert memory.get_all(user_id="b").results == []


def test_query_without_chat_returns_retrieved_memories_and_says_so(memory: Memory) -> None:
    memory.add("My dentist appointment is on 3 June 2025", user_id="q")
    answer = memory.query("When is the dentist?", user_id="q")
    assert answer.answer is None
    assert answer.answered is False
    assert answer.note == NO_CHAT_QUERY_NOTE
    assert answer.memories[0].memory.startswith("My dentist")


def test_closed_memory_refuses_calls(local_embedder: LocalEmbedder, tmp_path: Path) -> None:
    m = Memory(embedder=local_embedder, store_path=tmp_path / "m.db")
    m.close()
    m.close()  # idempotent
    with pytest.raises(ConfigurationError, match="closed"):
        m.get_all(user_id="x")


def test_from_config_mem0_prompt_keys_and_store_path(local_embedder: LocalEmbedder, tmp_path: Path) -> None:
    path = tmp_path / "nested" / "store.db"
    with Memory.from_config(
        {"custom_fact_extraction_prompt": "Extract only food preferences."},
        store_path=path,
        embedder=local_embedder,
    ) as m:
        assert m.prompts.extract.system == "Extract only food preferences."
        assert m.prompts.extract.version == "custom"
        assert m.prompts.reconcile.version == "1"
        m.add("hello", user_id="z")
    assert path.exists()
    with pytest.raises(ConfigurationError):
        Memory.from_config({"chta": "gpt-4o"}, store_path=path)  # typos are errors, not ignored


class _ShortMiniLM(LocalEmbedder):
    """The same model cut at 32 tokens: a genuinely different embedder for reindex tests."""

    name = "local:all-MiniLM-L6-v2-int8-32"

    def __init__(self) -> None:
        super().__init__(max_length=32)


def test_switching_embedder_needs_reindex(local_embedder: LocalEmbedder, tmp_path: Path) -> None:
    path = tmp_path / "switch.db"
    with Memory(embedder=local_embedder, store_path=path) as m:
        ids = [
            e.id
            for e in m.add([{"content": "I love sailing"}, {"content": "I hate rain"}], user_id="s").results
        ]
    with Memory(embedder=_ShortMiniLM(), store_path=path) as m:
        assert len(m.get_all(user_id="s").results) == 2  # reads without vectors still work
        with pytest.raises(EmbedderMismatchError):
            m.search("boats", user_id="s")
        with pytest.raises(EmbedderMismatchError):
            m.add("more", user_id="s")
        result = m.reindex()
        assert (result.count, result.embedder, result.previous_embedder) == (
            2,
            "local:all-MiniLM-L6-v2-int8-32",
            "local:all-MiniLM-L6-v2-int8",
        )
        assert m.search("boats", user_id="s").results[0].id == ids[0]


def test_timestamps_accept_datetime_epoch_and_naive(memory: Memory) -> None:
    when = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
    r = memory.add(
        [
            {"content": "one", "timestamp": when},
            {"content": "two", "timestamp": when.timestamp()},
            {"content": "three", "timestamp": "2023-05-08T13:56:00"},
        ],
        user_id="t",
    )
    assert {e.metadata["timestamp"] for e in r.results} == {"2023-05-08T13:56:00+00:00"}
