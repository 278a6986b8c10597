"""The inference pipeline (extract -> retrieve -> reconcile -> apply) against the emulator.

Replies are scripted; everything else is real: the SDK over HTTP, the client layer's
retries and structured-output validation, the local embedder and SQLite.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from azmem.embeddings import LocalEmbedder
from azmem.emulator import Emulator, Fault
from azmem.errors import EmbedderMismatchError, ServiceError, StructuredOutputError
from azmem.memory import Memory

from .conftest import CHAT, azure_config, chat_requests, decisions, facts


def _user_payload(request: dict[str, object]) -> str:
    messages = request["messages"]
    assert isinstance(messages, list)
    return str(messages[-1]["content"])


def _snapshot(m: Memory, user_id: str) -> list[tuple[str, str, list[str]]]:
    """Every memory of a scope with its history events: what "unchanged" is compared on."""
    return [
        (i.id, i.memory, [h.event for h in m.history(i.id)])
        for i in m.get_all(user_id=user_id, limit=1000).results
    ]


def test_add_extracts_and_adds_with_two_calls(azure_memory: Memory, emulator: Emulator) -> None:
    azure_memory.add("I'm a vegan", user_id="alice", infer=False)  # something similar to reconcile with
    emulator.script(
        CHAT,
        [
            facts("The user is vegetarian", "The user moved to Oslo on 7 May 2023"),
            decisions(
                (0, "ADD", None, "The user is vegetarian"),
                (1, "ADD", None, "The user moved to Oslo on 7 May 2023"),
            ),
        ],
    )
    result = azure_memory.add(
        [
            {
                "role": "user",
                "content": "I'm vegetarian. I moved to Oslo yesterday!",
                "timestamp": "2023-05-08T13:56:00Z",
            },
            {"role": "assistant", "content": "Welcome to Oslo!"},
        ],
        user_id="alice",
        metadata={"channel": "web"},
    )
    assert [(e.event, e.memory) for e in result.results] == [
        ("ADD", "The user is vegetarian"),
        ("ADD", "The user moved to Oslo on 7 May 2023"),
    ]
    stored = azure_memory.get(result.results[1].id)
    assert stored.metadata == {"channel": "web"}
    assert stored.user_id == "alice"

    requests = chat_requests(emulator)
    assert len(requests) == 2  # one extraction, one reconciliation, whatever the number of facts
    extract, reconcile = requests
    # the message timestamp reaches the extraction prompt, so "yesterday" can be resolved
    assert "[2023-05-08 13:56 UTC (Monday)] user: I'm vegetarian." in _user_payload(extract)
    assert "assistant: Welcome to Oslo!" in _user_payload(extract)
    # structured outputs: a strict JSON schema for each step
    assert extract["response_format"]["type"] == "json_schema"
    payload = json.loads(_user_payload(reconcile))
    assert [m["id"] for m in payload["existing_memories"]] == [0]
    assert payload["existing_memories"][0]["text"] == "I'm a vegan"
    assert [f["text"] for f in payload["new_facts"]] == [
        "The user is vegetarian",
        "The user moved to Oslo on 7 May 2023",
    ]


def test_update_delete_none_map_small_ids_back(azure_memory: Memory, emulator: Emulator) -> None:
    seeded = azure_memory.add(
        [
            {"content": "The user likes pizza"},
            {"content": "The user works as a nurse"},
            {"content": "The user has a dog named Rex"},
        ],
        user_id="bob",
        infer=False,
    ).results
    ids = {e.memory: e.id for e in seeded}

    def reconcile(body: dict[str, object]) -> str:
        payload = json.loads(_user_payload(body))
        shown = {m["text"]: m["id"] for m in payload["existing_memories"]}
        return decisions(
            (0, "UPDATE", shown["The user works as a nurse"], "The user works as a surgeon"),
            (1, "DELETE", shown["The user likes pizza"], ""),
            (2, "NONE", shown["The user has a dog named Rex"], ""),
            (3, "ADD", None, "The user plays chess"),
        )

    emulator.script(
        CHAT,
        [
            facts(
                "The user now works as a surgeon",
                "The user no longer likes pizza",
                "The user has a dog named Rex",
                "The user plays chess",
            )
        ],
    )
    replies = iter([reconcile])

    def responder(body: dict[str, object]) -> str:
        return next(replies)(body)

    emulator.script(CHAT, responder)
    result = azure_memory.add("New job! No more pizza for me. Rex says hi. Also, chess.", user_id="bob")

    events = {(e.event, e.memory, e.previous_memory) for e in result.results}
    assert events == {
        ("UPDATE", "The user works as a surgeon", "The user works as a nurse"),
        ("DELETE", "The user likes pizza", None),
        ("ADD", "The user plays chess", None),
    }  # NONE is not reported
    by_event = {e.event: e for e in result.results}
    assert by_event["UPDATE"].id == ids["The user works as a nurse"]
    assert by_event["DELETE"].id == ids["The user likes pizza"]
    left = {i.memory for i in azure_memory.get_all(user_id="bob").results}
    assert left == {"The user works as a surgeon", "The user has a dog named Rex", "The user plays chess"}
    assert [h.event for h in azure_memory.history(ids["The user works as a nurse"])] == ["ADD", "UPDATE"]
    # the model saw small integers, never the real ids
    reconcile_body = chat_requests(emulator)[-1]
    assert not any(real in _user_payload(reconcile_body) for real in ids.values())
    # the updated memory is findable by its new text
    assert azure_memory.search("surgeon", user_id="bob", mode="bm25").results[0].id == by_event["UPDATE"].id


def test_reconcile_failing_after_retries_leaves_store_unchanged(
    azure_memory: Memory, emulator: Emulator
) -> None:
    azure_memory.add([{"content": "The user likes tea"}], user_id="carol", infer=False)
    before = _snapshot(azure_memory, "carol")
    emulator.script(
        CHAT, [facts("The user likes coffee"), Fault(status=500), Fault(status=500), Fault(status=500)]
    )
    with pytest.raises(ServiceError) as info:
        azure_memory.add("Actually I prefer coffee now", user_id="carol")
    assert info.value.status_code == 500
    assert _snapshot(azure_memory, "carol") == before
    assert len(chat_requests(emulator)) == 3  # extract + reconcile tried max_attempts=2 times


def test_invented_ids_are_rejected_and_nothing_is_written(azure_memory: Memory, emulator: Emulator) -> None:
    azure_memory.add([{"content": "The user likes tea"}], user_id="dan", infer=False)
    before = _snapshot(azure_memory, "dan")
    invented = decisions((0, "UPDATE", 7, "The user likes green tea"))
    # the client re-asks on schema violations; the model keeps inventing: a typed error at the end
    emulator.script(CHAT, [facts("The user likes green tea"), invented, invented, invented, invented])
    with pytest.raises(StructuredOutputError):
        azure_memory.add("I like green tea", user_id="dan")
    assert _snapshot(azure_memory, "dan") == before
    # the schema itself restricts targets to the ids shown (one existing memory: id 0)
    reconcile = chat_requests(emulator)[1]
    schema = json.dumps(reconcile["response_format"])
    assert '"enum": [0]' in schema


def test_extraction_failure_is_typed_and_writes_nothing(azure_memory: Memory, emulator: Emulator) -> None:
    emulator.script(CHAT, [Fault(status=500), Fault(status=500)])
    with pytest.raises(ServiceError):
        azure_memory.add("I like tea", user_id="erin")
    assert azure_memory.get_all(user_id="erin").results == []


def test_empty_scope_needs_no_reconciliation(azure_memory: Memory, emulator: Emulator) -> None:
    emulator.script(CHAT, [facts("The user likes tea", "The user likes tea ", "The user lives in Oslo")])
    azure_memory.add("I like tea", user_id="other-user", infer=False)  # another scope is not "similar"
    result = azure_memory.add("I like tea. I live in Oslo.", user_id="k")
    assert [(e.event, e.memory) for e in result.results] == [
        ("ADD", "The user likes tea"),  # the repeated fact is dropped
        ("ADD", "The user lives in Oslo"),
    ]
    assert len(chat_requests(emulator)) == 1


def test_nothing_to_remember_makes_one_call(azure_memory: Memory, emulator: Emulator) -> None:
    emulator.script(CHAT, [json.dumps({"facts": []})])
    assert azure_memory.add("hi there!", user_id="f").results == []
    assert len(chat_requests(emulator)) == 1


def test_agent_facts_are_requested_when_agent_id_given(azure_memory: Memory, emulator: Emulator) -> None:
    emulator.script(
        CHAT,
        [
            facts("The agent is called Pip", subject="agent"),
            decisions((0, "ADD", None, "The agent is called Pip")),
        ],
    )
    result = azure_memory.add(
        [{"role": "user", "content": "I'll call you Pip"}, {"role": "assistant", "content": "Pip it is!"}],
        user_id="g",
        agent_id="assistant-1",
    )
    item = azure_memory.get(result.results[0].id)
    assert item.role == "assistant"
    assert item.agent_id == "assistant-1"
    system = chat_requests(emulator)[0]["messages"][0]["content"]
    assert "about the agent (the assistant) itself" in system


def test_query_answers_citing_memory_ids(azure_memory: Memory, emulator: Emulator) -> None:
    added = azure_memory.add(
        [{"content": "The user's dentist appointment is on 3 June 2025"}, {"content": "The user likes jazz"}],
        user_id="h",
        infer=False,
    ).results

    def answer(body: dict[str, object]) -> str:
        lines = _user_payload(body).splitlines()
        idx = next(int(line[1 : line.index("]")]) for line in lines if "dentist" in line)
        return json.dumps({"answer": "On 3 June 2025.", "used": [idx]})

    emulator.script(CHAT, answer)
    result = azure_memory.query("When is my dentist appointment?", user_id="h")
    assert result.answered is True
    assert result.answer == "On 3 June 2025."
    assert result.cited_ids == [added[0].id]
    assert {m.id for m in result.memories} == {a.id for a in added}


def test_prompt_names_and_scope_reach_usage(
    emulator: Emulator, local_embedder: LocalEmbedder, tmp_path: Path
) -> None:
    from azmem.azure.llm import LLMClient
    from azmem.azure.settings import AzmemSettings
    from azmem.azure.usage import UsageTracker

    settings = AzmemSettings.load(azure_config(emulator, tmp_path))
    usage = UsageTracker()
    with Memory(settings, embedder=local_embedder, llm=LLMClient(settings, usage=usage)) as m:
        m.add("I like coffee", user_id="i", infer=False)
        emulator.script(
            CHAT, [facts("The user likes tea"), decisions((0, "ADD", None, "The user likes tea"))]
        )
        m.add("I like tea", user_id="i")
    summary = usage.summary()
    assert set(summary["by_prompt_name"]) == {"memory.extract", "memory.reconcile"}
    assert set(summary["by_group_id"]) == {"user_id=i"}  # cost attributable per scope


def test_extraction_without_timestamps_uses_today(azure_memory: Memory, emulator: Emulator) -> None:
    emulator.script(CHAT, [json.dumps({"facts": []})])
    azure_memory.add("I went skiing yesterday", user_id="j")
    system = chat_requests(emulator)[0]["messages"][0]["content"]
    assert datetime.now(UTC).strftime("%Y-%m-%d") in system


def test_azure_embeddings_when_an_embedding_deployment_is_configured(
    emulator: Emulator, tmp_path: Path
) -> None:
    config = {**azure_config(emulator, tmp_path), "embedding": "text-embedding-3-small"}
    with Memory(config=config) as m:
        assert m.embedder.name == "azure:text-embedding-3-small"
        added = m.add([{"content": "I like tea"}, {"content": "I live in Oslo"}], user_id="z", infer=False)
        assert len(added.results) == 2
        assert m.search("tea", user_id="z").results
    embedding_calls = [r for r in emulator.requests if r.path.endswith("/embeddings")]
    assert embedding_calls  # vectors came from the deployment, not the local model
    assert embedding_calls[0].json["input"] == ["I like tea", "I live in Oslo"]  # one batch per add
    # the store recorded the Azure embedder: the local model cannot silently mix in
    with Memory(store_path=tmp_path / "memory.db") as local, pytest.raises(EmbedderMismatchError):
        local.search("tea", user_id="z")


async def test_async_memory_awaits_azure_embeddings(emulator: Emulator, tmp_path: Path) -> None:
    from azmem.azure.embedder import AsyncAzureEmbedder
    from azmem.memory import AsyncMemory

    config = {**azure_config(emulator, tmp_path), "embedding": "text-embedding-3-small"}
    async with AsyncMemory(config=config) as m:
        assert isinstance(m.embedder, AsyncAzureEmbedder)
        await m.add("I like tea", user_id="z", infer=False)
        assert (await m.search("tea", user_id="z")).results[0].memory == "I like tea"
