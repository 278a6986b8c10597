"""mem0ai 2.2.1 with azmem's providers, end to end against the emulator over real HTTP.

One mem0 config, two provider names: with ``"azmem"`` a placeholder key means Entra ID and
``Memory.add(infer=True)`` + ``search`` work; with mem0's own ``"azure_openai"`` the placeholder
goes to Azure as a key and the service answers 401, as issue 11 says.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mem0")

import openai
from mem0 import Memory
from mem0.configs.base import MemoryConfig
from mem0.utils.factory import EmbedderFactory
from pydantic import ValidationError

from azmem.emulator import Emulator
from azmem.errors import ConfigurationError, InvalidInputError
from azmem.integrations.mem0 import AzmemEmbedding, AzmemLLM, register

USER_SAYS = "I'm Alice. I drink green tea every morning, and I work as a nurse in Lyon."
FACTS = ["Alice drinks green tea every morning", "Alice works as a nurse in Lyon"]


def extraction_reply(request: dict[str, Any]) -> dict[str, Any]:
    """What a model answers to mem0's additive extraction prompt for USER_SAYS."""
    system, user = (m["content"] for m in request["messages"])
    assert request["response_format"] == {"type": "json_object"}
    assert "Memory Extractor" in system
    assert USER_SAYS in user
    return {"content": {"memory": [{"id": str(i), "text": fact} for i, fact in enumerate(FACTS)]}}


@pytest.fixture(autouse=True)
def _registered() -> None:
    register()


@pytest.fixture
def make_config(emulator: Emulator, tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """``make_config(provider, **azure_kwargs)``: a mem0 config for the emulator, key "<your-api-key>"."""
    token = emulator.issue_token(3600)

    def make(provider: str, **azure: Any) -> dict[str, Any]:
        # A sample-config key, and an Entra ID token provider (what azure-identity would supply;
        # the emulator accepts its own tokens). mem0's own AzureConfig drops the provider.
        shared = {
            "api_key": "<your-api-key>",
            "azure_endpoint": emulator.endpoint,
            "api_version": "2024-10-21",
            "azure_ad_token_provider": lambda: token,
            **azure,
        }
        return {
            "llm": {
                "provider": provider,
                "config": {
                    "model": "gpt-4o-mini",
                    "azure_kwargs": {"azure_deployment": "gpt-4o-mini", **shared},
                },
            },
            "embedder": {
                "provider": provider,
                "config": {
                    "model": "text-embedding-3-small",
                    "azure_kwargs": {"azure_deployment": "text-embedding-3-small", **shared},
                },
            },
            "vector_store": {
                "provider": "qdrant",
                "config": {
                    "path": str(tmp_path / "qdrant"),
                    "collection_name": "memories",
                    "embedding_model_dims": 1536,
                },
            },
            "history_db_path": str(tmp_path / "history.db"),
        }

    return make


@pytest.fixture
def memories() -> Iterator[Callable[[dict[str, Any]], Memory]]:
    """``memories(config)``: ``Memory.from_config``; its SQLite, local Qdrant and clients closed after."""
    built: list[Memory] = []

    def make(config: dict[str, Any]) -> Memory:
        memory = Memory.from_config(config)
        built.append(memory)
        return memory

    yield make
    for memory in built:
        memory.vector_store.client.close()
        memory.close()
        for part in (memory.llm, memory.embedding_model):
            if isinstance(part, AzmemLLM | AzmemEmbedding):
                part.close()


def test_add_with_inference_and_search_succeed_through_azmem(
    emulator: Emulator,
    make_config: Callable[..., dict[str, Any]],
    memories: Callable[[dict[str, Any]], Memory],
    word_vectors: Callable[..., None],
) -> None:
    word_vectors("text-embedding-3-small")
    emulator.script("gpt-4o-mini", extraction_reply)
    memory = memories(make_config("azmem"))

    added = memory.add(USER_SAYS, user_id="alice", infer=True)
    assert sorted(r["memory"] for r in added["results"]) == FACTS
    assert {r["event"] for r in added["results"]} == {"ADD"}

    found = memory.search("What does Alice drink in the morning?", filters={"user_id": "alice"})
    assert found["results"][0]["memory"] == FACTS[0]
    found = memory.search("Where does Alice work?", filters={"user_id": "alice"})
    assert found["results"][0]["memory"] == FACTS[1]

    # "<your-api-key>" was taken for what it is: no key was sent, every call used Entra ID.
    assert emulator.requests
    assert all(r.status == 200 for r in emulator.requests)
    assert all("api-key" not in r.headers for r in emulator.requests)
    assert all(r.headers["authorization"].startswith("Bearer emu-") for r in emulator.requests)


def test_the_same_add_fails_through_mem0s_own_azure_provider(
    emulator: Emulator,
    make_config: Callable[..., dict[str, Any]],
    memories: Callable[[dict[str, Any]], Memory],
    word_vectors: Callable[..., None],
) -> None:
    word_vectors("text-embedding-3-small")
    emulator.script("gpt-4o-mini", extraction_reply)
    memory = memories(make_config("azure_openai"))

    with pytest.raises(openai.AuthenticationError):
        memory.add(USER_SAYS, user_id="alice", infer=True)
    first = emulator.requests[0]
    assert (first.headers.get("api-key"), first.status) == ("<your-api-key>", 401)


def test_a_typo_in_azure_kwargs_is_an_error_not_a_silent_default(
    make_config: Callable[..., dict[str, Any]], memories: Callable[[dict[str, Any]], Memory]
) -> None:
    config = make_config("azmem")
    config["llm"]["config"]["azure_kwargs"]["azuer_deployment"] = "gpt-4o"
    with pytest.raises(ConfigurationError, match="did you mean 'azure_deployment'"):
        Memory.from_config(config)

    config["llm"]["provider"] = config["embedder"]["provider"] = "azure_openai"
    theirs = memories(config)  # mem0's own provider drops the key without a word
    assert theirs.llm.config.azure_kwargs.azure_deployment == "gpt-4o-mini"


def test_register_is_idempotent_and_leaves_other_providers_to_mem0() -> None:
    register()
    register()
    with pytest.raises(ValidationError, match="Unsupported LLM provider: bogus"):
        MemoryConfig(llm={"provider": "bogus", "config": {}})
    with pytest.raises(ValidationError, match="Unsupported embedding provider: bogus"):
        MemoryConfig(embedder={"provider": "bogus", "config": {}})
    assert MemoryConfig(llm={"provider": "azmem", "config": {"model": "m"}}).llm.provider == "azmem"


def test_llm_contract_tools_json_and_the_callers_words(emulator: Emulator) -> None:
    llm = AzmemLLM(
        {
            "api_key": emulator.api_key,
            "azure_kwargs": {"azure_endpoint": emulator.endpoint, "azure_deployment": "gpt-4o"},
        }
    )
    tool = {
        "type": "function",
        "function": {
            "name": "add_memory",
            "description": "Store a fact.",
            "parameters": {
                "type": "object",
                "properties": {"text": {"type": "string"}},
                "required": ["text"],
            },
        },
    }
    emulator.script(
        "gpt-4o",
        [
            {
                "content": None,
                "tool_calls": [{"name": "add_memory", "arguments": json.dumps({"text": "tea"})}],
            },
            {"content": {"facts": ["tea"]}},
        ],
    )
    answer = llm.generate_response([{"role": "user", "content": "Remember: tea."}], tools=[tool])
    assert answer == {"content": None, "tool_calls": [{"name": "add_memory", "arguments": {"text": "tea"}}]}
    # The top-level api_key is used (mem0 reads only azure_kwargs.api_key).
    assert emulator.last_request.headers["api-key"] == emulator.api_key

    said = "The assistant said: answer in json."
    text = llm.generate_response([{"role": "user", "content": said}], response_format={"type": "json_object"})
    assert json.loads(text) == {"facts": ["tea"]}
    sent = emulator.last_request.json
    assert sent["messages"][-1]["content"] == said  # mem0 rewrites "assistant" to "ai"; azmem does not
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"]) == (0.1, 0.1, 2000)  # mem0's defaults
    with pytest.raises(InvalidInputError):
        llm.generate_response([{"role": "user", "content": "x"}], response_format={"type": "yaml"})
    llm.close()


def test_embedder_sends_dimensions_only_where_the_model_takes_them(emulator: Emulator) -> None:
    azure = {"api_key": emulator.api_key, "azure_endpoint": emulator.endpoint}
    small = EmbedderFactory.create(
        "azmem",
        {
            "model": "text-embedding-3-small",
            "embedding_dims": 256,
            "azure_kwargs": {**azure, "azure_deployment": "text-embedding-3-small"},
        },
        None,
    )
    assert isinstance(small, AzmemEmbedding)
    assert len(small.embed("line one\nline two", "add")) == 256
    assert emulator.last_request.json["dimensions"] == 256
    assert emulator.last_request.json["input"] == ["line one line two"]  # as mem0 sends it

    ada = AzmemEmbedding(
        {
            "model": "text-embedding-ada-002",
            "embedding_dims": 1536,
            "azure_kwargs": {**azure, "azure_deployment": "text-embedding-ada-002"},
        }
    )
    assert [len(v) for v in ada.embed_batch(["a", "b"])] == [1536, 1536]
    assert "dimensions" not in emulator.last_request.json  # ada-002 answers 400 to it

    # No key, and azmem's own settings under "azmem": a credential of the caller's (here a
    # token provider) instead of DefaultAzureCredential.
    token = emulator.issue_token(600)
    entra = AzmemEmbedding(
        {
            "model": "text-embedding-3-small",
            "azure_kwargs": {
                "azure_endpoint": emulator.endpoint,
                "azure_deployment": "text-embedding-3-small",
            },
            "azmem": {"credential": lambda: token, "timeout": 10},
        }
    )
    entra.embed("hello")
    assert emulator.last_request.headers["authorization"] == f"Bearer {token}"
    entra.close()
    small.close()
    ada.close()
