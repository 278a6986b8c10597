"""graphiti-core 0.31.2 with azmem's providers, end to end against the emulator over real HTTP.

The same episode goes through Graphiti twice: with azmem's providers it is extracted, stored in an
embedded Kuzu graph and found again; with Graphiti's own ``AzureOpenAILLMClient`` it fails, while
the emulator answered every request with 200 — the failure is the client's, as issue 11 says.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("graphiti_core")
pytest.importorskip("kuzu")

import openai
from graphiti_core import Graphiti
from graphiti_core.cross_encoder.openai_reranker_client import OpenAIRerankerClient
from graphiti_core.driver.kuzu_driver import KuzuDriver
from graphiti_core.embedder.azure_openai import AzureOpenAIEmbedderClient
from graphiti_core.llm_client.azure_openai_client import AzureOpenAILLMClient
from graphiti_core.llm_client.config import LLMConfig, ModelSize
from graphiti_core.prompts.models import Message
from graphiti_core.search.search_config_recipes import EDGE_HYBRID_SEARCH_CROSS_ENCODER
from graphiti_core.tracer import create_tracer
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from peer_helpers import schema_name
from pydantic import BaseModel

from azmem.azure.llm import AsyncLLMClient
from azmem.azure.settings import AzmemSettings
from azmem.emulator import Emulator, Fault
from azmem.errors import InvalidInputError, RateLimitError
from azmem.integrations.graphiti import AzmemEmbedder, AzmemLLMClient, AzmemReranker

EPISODE = "Alice moved to the city of Paris in 2020. She works at Acme as an engineer."
REFERENCE_TIME = datetime(2024, 1, 1, tzinfo=UTC)
LIVES = "Alice has lived in the city of Paris since 2020"
WORKS = "Alice works at Acme as an engineer"

# What a model would answer to Graphiti's prompts for EPISODE, one reply per response model.
REPLIES: dict[str, dict[str, Any]] = {
    "ExtractedEntities": {
        "extracted_entities": [
            {"name": name, "entity_type_id": 0, "episode_indices": [0]} for name in ("Alice", "Paris", "Acme")
        ]
    },
    "ExtractedEdges": {
        "edges": [
            {
                "source_entity_name": "Alice",
                "target_entity_name": "Paris",
                "relation_type": "LIVES_IN",
                "fact": LIVES,
                "valid_at": "2020-01-01T00:00:00Z",
                "invalid_at": None,
                "episode_indices": [0],
            },
            {
                "source_entity_name": "Alice",
                "target_entity_name": "Acme",
                "relation_type": "WORKS_AT",
                "fact": WORKS,
                "valid_at": None,
                "invalid_at": None,
                "episode_indices": [0],
            },
        ]
    },
    "EdgeTimestamps": {"valid_at": None, "invalid_at": None},
    "SummarizedEntities": {
        "summaries": [
            {"name": "Alice", "summary": "Alice lives in Paris and works at Acme as an engineer."},
            {"name": "Acme", "summary": "Acme employs Alice as an engineer."},
        ]
    },
}


def graph_reply(request: dict[str, Any]) -> Any:
    """The scripted answer to one of Graphiti's structured prompts (found by its schema's name)."""
    name = schema_name(request)
    if name is None:
        return Fault(status=400, code="unexpected", message="the test scripts structured calls only")
    if name == "RelevanceJudgement":  # AzmemReranker: the passages about Paris answer the query
        passage = request["messages"][-1]["content"].split("<PASSAGE>")[1].split("</PASSAGE>")[0]
        relevant = "Paris" in passage
        return {"content": {"relevant": relevant, "confidence": 0.9 if relevant else 0.75}}
    return {"content": REPLIES[name]}


@pytest.fixture
def settings(emulator: Emulator) -> AzmemSettings:
    return AzmemSettings.load(
        endpoint=emulator.endpoint,
        api_key=emulator.api_key,
        chat="gpt-4o",
        small_chat="gpt-4o-mini",
        embedding="text-embedding-3-small",
        retry={"max_attempts": 2, "base_delay": 0.01, "max_delay": 0.02},
    )


@pytest.fixture
async def kuzu(tmp_path: Path) -> AsyncIterator[KuzuDriver]:
    with pytest.warns(DeprecationWarning, match="Kuzu"):
        driver = KuzuDriver(db=str(tmp_path / "graph.kuzu"))
    # graphiti-core 0.31.2: Graphiti.build_indices_and_constraints() is a no-op for Kuzu, so the
    # full-text indices its searches query are created through the driver's graph operations.
    await driver.graph_ops.build_indices_and_constraints(driver)
    yield driver
    await driver.close()


@pytest.fixture
async def closing() -> AsyncIterator[list[Any]]:
    """Objects with ``aclose()``/``close()`` to close when the test ends, passed or not."""
    objects: list[Any] = []
    yield objects
    for obj in reversed(objects):
        await (obj.aclose() if hasattr(obj, "aclose") else obj.close())


@pytest.fixture
def scripted_graph(emulator: Emulator, word_vectors: Callable[..., None]) -> None:
    word_vectors("text-embedding-3-small")
    emulator.script("gpt-4o", graph_reply)
    emulator.script("gpt-4o-mini", graph_reply)


def chat_calls(emulator: Emulator) -> list[tuple[str | None, str | None, int]]:
    return [
        (r.deployment, schema_name(r.json), r.status)
        for r in emulator.requests
        if r.path.endswith("/chat/completions")
    ]


async def test_add_episode_and_search_succeed_through_azmem(
    emulator: Emulator, settings: AzmemSettings, kuzu: KuzuDriver, scripted_graph: None, closing: list[Any]
) -> None:
    llm = AzmemLLMClient(settings=settings)
    embedder = AzmemEmbedder(settings=settings)
    closing += [llm, embedder]
    graphiti = Graphiti(
        graph_driver=kuzu, llm_client=llm, embedder=embedder, cross_encoder=AzmemReranker(llm)
    )
    result = await graphiti.add_episode(
        name="intro",
        episode_body=EPISODE,
        source_description="chat",
        reference_time=REFERENCE_TIME,
    )  # no group_id: graphiti-core 0.31.2's add_episode(group_id=...) reads a driver field Kuzu lacks
    assert {n.name for n in result.nodes} == {"Alice", "Paris", "Acme"}
    assert {e.fact for e in result.edges} == {LIVES, WORKS}
    lives = next(e for e in result.edges if e.fact == LIVES)
    assert lives.valid_at == datetime(2020, 1, 1, tzinfo=UTC)

    found = await graphiti.search("Which city has Alice lived in?")
    assert [e.fact for e in found][:1] == [LIVES]
    reranked = await graphiti.search_(
        "Which city has Alice lived in?", config=EDGE_HYBRID_SEARCH_CROSS_ENCODER
    )
    assert [e.fact for e in reranked.edges] == [LIVES, WORKS]
    assert reranked.edge_reranker_scores == [0.9, 0.25]

    # Every Graphiti prompt went out as strict structured output and was answered; medium prompts
    # went to the chat deployment, ModelSize.small ones to the small deployment.
    assert chat_calls(emulator) == [
        ("gpt-4o", "ExtractedEntities", 200),
        ("gpt-4o", "ExtractedEdges", 200),
        ("gpt-4o-mini", "EdgeTimestamps", 200),
        ("gpt-4o-mini", "RelevanceJudgement", 200),
        ("gpt-4o-mini", "RelevanceJudgement", 200),
    ]
    assert all(r.json["response_format"]["json_schema"]["strict"] for r in emulator.requests_for("gpt-4o"))
    assert llm.token_tracker.get_total_usage().input_tokens > 0


async def test_the_same_episode_fails_through_graphitis_own_azure_client(
    emulator: Emulator, kuzu: KuzuDriver, scripted_graph: None, closing: list[Any]
) -> None:
    azure_client = openai.AsyncAzureOpenAI(**emulator.client_kwargs())
    closing.append(azure_client)
    graphiti = Graphiti(
        graph_driver=kuzu,
        llm_client=AzureOpenAILLMClient(azure_client, LLMConfig(model="gpt-4o", small_model="gpt-4o-mini")),
        embedder=AzureOpenAIEmbedderClient(azure_client, model="text-embedding-3-small"),
        cross_encoder=OpenAIRerankerClient(client=azure_client),
    )
    # Its _handle_structured_response returns the dict where BaseOpenAIClient unpacks a 3-tuple.
    with pytest.raises(ValueError, match="unpack"):
        await graphiti.add_episode(
            name="intro", episode_body=EPISODE, source_description="chat", reference_time=REFERENCE_TIME
        )
    # The service answered every attempt; the client could not read a single answer.
    assert chat_calls(emulator) == [("gpt-4o", "ExtractedEntities", 200)] * 3


async def test_generate_response_keeps_graphitis_contract(
    emulator: Emulator, settings: AzmemSettings, closing: list[Any]
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel = provider.get_tracer("graphiti-tests")
    azmem_client = AsyncLLMClient(settings, tracer=otel)
    closing.append(azmem_client)
    llm = AzmemLLMClient(client=azmem_client)
    llm.set_tracer(create_tracer(otel))
    emulator.script("gpt-4o-mini", [{"content": REPLIES["SummarizedEntities"]}])
    messages = [
        Message(role="system", content="Summarize entities."),
        Message(role="user", content="Alice met Bob."),
        Message(role="assistant", content="Noted."),
        Message(role="user", content="Now summarize."),
    ]
    before = [m.model_copy() for m in messages]

    from graphiti_core.prompts.extract_nodes import SummarizedEntities

    answer = await llm.generate_response(
        messages,
        response_model=SummarizedEntities,
        max_tokens=500,
        model_size=ModelSize.small,
        prompt_name="extract_nodes.extract_summaries_batch",
        attribute_extraction=True,
    )
    assert answer == REPLIES["SummarizedEntities"]
    assert messages == before  # neither the schema, the language note nor the preamble were appended
    sent = emulator.last_request
    assert sent.deployment == "gpt-4o-mini"
    assert [m["role"] for m in sent.json["messages"]] == ["system", "user", "assistant", "user"]
    assert "ATTRIBUTE EXTRACTION" in sent.json["messages"][0]["content"]
    assert sent.json["response_format"]["json_schema"]["strict"] is True
    assert sent.json["max_tokens"] == 500
    usage = llm.token_tracker.get_usage()["extract_nodes.extract_summaries_batch"]
    assert usage.total_input_tokens > 0

    spans = {s.name: s for s in exporter.get_finished_spans()}
    outer = spans["graphiti.llm.generate"]
    assert dict(outer.attributes or {}) == {
        "llm.provider": "azure",
        "model.size": "small",
        "max_tokens": 500,
        "cache.enabled": False,
        "cache.hit": False,
        "prompt.name": "extract_nodes.extract_summaries_batch",
    }
    inner = spans["chat gpt-4o-mini"]  # azmem's own span, a child of Graphiti's
    assert inner.parent is not None
    assert outer.context is not None
    assert inner.parent.span_id == outer.context.span_id


async def test_errors_keep_their_type_inside_graphitis_opentelemetry_span(
    emulator: Emulator, settings: AzmemSettings, closing: list[Any]
) -> None:
    otel = TracerProvider().get_tracer("graphiti-tests")
    emulator.fault("gpt-4o", Fault.rate_limit(retry_after_ms=10))
    ours = AzmemLLMClient(settings=settings)
    closing.append(ours)
    ours.set_tracer(create_tracer(otel))
    with pytest.raises(RateLimitError):
        await ours.generate_response([Message(role="user", content="hi")])

    azure_client = openai.AsyncAzureOpenAI(**emulator.client_kwargs())
    closing.append(azure_client)
    theirs = AzureOpenAILLMClient(azure_client, LLMConfig(model="gpt-4o"))
    theirs.set_tracer(create_tracer(otel))
    # Graphiti's OpenTelemetryTracer catches the exception at its `yield` and yields again.
    with pytest.raises(RuntimeError, match=r"generator didn't stop after throw\(\)"):
        await theirs.generate_response([Message(role="user", content="hi")])


class Answer(BaseModel):
    answer: str


async def test_drop_in_for_azure_openai_llm_client_falls_back_on_older_api_versions(
    emulator: Emulator, closing: list[Any]
) -> None:
    # 2024-06-01 predates json_schema: the service answers such requests with 400.
    azure_client = openai.AsyncAzureOpenAI(**emulator.client_kwargs(api_version="2024-06-01"))
    closing.append(azure_client)
    emulator.script("gpt-4o", [{"content": {"answer": "yes"}}])
    ours = AzmemLLMClient(azure_client, LLMConfig(model="gpt-4o", small_model="gpt-4o-mini"))
    assert await ours.generate_response([Message(role="user", content="Is it?")], Answer) == {"answer": "yes"}
    assert emulator.last_request.json["response_format"] == {"type": "json_object"}

    theirs = AzureOpenAILLMClient(azure_client, LLMConfig(model="gpt-4o"))
    with pytest.raises(openai.BadRequestError):
        await theirs.generate_response([Message(role="user", content="Is it?")], Answer)
    assert emulator.last_request.status == 400


async def test_reasoning_deployments_get_chat_completions_without_max_tokens(
    emulator: Emulator, closing: list[Any]
) -> None:
    settings = AzmemSettings.load(endpoint=emulator.endpoint, api_key=emulator.api_key, chat="o3-mini")
    emulator.script("o3-mini", [{"content": {"answer": "yes"}}])
    ours = AzmemLLMClient(settings=settings)
    closing.append(ours)
    assert await ours.generate_response([Message(role="user", content="Is it?")], Answer) == {"answer": "yes"}
    sent = emulator.last_request.json
    assert "max_tokens" not in sent
    assert "temperature" not in sent
    assert sent["max_completion_tokens"] == ours.max_tokens

    # Graphiti's own client sends reasoning models to the Responses API, which Azure serves only
    # from api-version 2025-03-01-preview: on the GA version its users configure, a 400.
    azure_client = openai.AsyncAzureOpenAI(**emulator.client_kwargs())
    closing.append(azure_client)
    theirs = AzureOpenAILLMClient(azure_client, LLMConfig(model="o3-mini"))
    with pytest.raises(openai.BadRequestError, match="Responses API is enabled only for api-version"):
        await theirs.generate_response([Message(role="user", content="Is it?")], Answer)
    assert emulator.last_request.path == "/openai/responses"


async def test_embedder_batches_and_shortens_on_the_service(
    emulator: Emulator, settings: AzmemSettings, closing: list[Any]
) -> None:
    embedder = AzmemEmbedder(settings=settings)
    closing.append(embedder)
    assert len(await embedder.create(input_data=["Alice"])) == 1536
    vectors = await embedder.create_batch(["Alice", "Paris", "Acme"])
    assert [len(v) for v in vectors] == [1536] * 3
    assert len(emulator.requests_for("text-embedding-3-small")) == 2  # the batch is one request

    azure_client = openai.AsyncAzureOpenAI(**emulator.client_kwargs())
    closing.append(azure_client)
    short = AzmemEmbedder(azure_client, "text-embedding-3-small", dimensions=256)
    assert len(await short.create("Alice")) == 256
    assert emulator.last_request.json["dimensions"] == 256
    with pytest.raises(InvalidInputError):
        await short.create([1, 2, 3])


async def test_reranker_orders_passages_by_judged_relevance(
    emulator: Emulator, settings: AzmemSettings, closing: list[Any]
) -> None:
    def judge(request: dict[str, Any]) -> dict[str, Any]:
        passage = request["messages"][-1]["content"].split("<PASSAGE>")[1]
        relevant = "Paris" in passage
        return {"content": {"relevant": relevant, "confidence": 0.9 if relevant else 0.75}}

    emulator.script("gpt-4o-mini", judge)
    reranker = AzmemReranker(settings=settings)
    closing.append(reranker)
    ranked = await reranker.rank("Where does Alice live?", [WORKS, LIVES])
    assert ranked == [(LIVES, 0.9), (WORKS, 0.25)]
    assert {schema_name(r.json) for r in emulator.requests_for("gpt-4o-mini")} == {"RelevanceJudgement"}


async def test_graphiti_without_a_cross_encoder_needs_an_openai_key(
    settings: AzmemSettings, kuzu: KuzuDriver, closing: list[Any]
) -> None:
    # Why the docs pass AzmemReranker: Graphiti's default reranker is a bare AsyncOpenAI().
    llm = AzmemLLMClient(settings=settings)
    closing.append(llm)
    embedder = AzmemEmbedder(settings=settings)
    closing.append(embedder)
    with pytest.raises(openai.OpenAIError, match="api_key"):
        Graphiti(graph_driver=kuzu, llm_client=llm, embedder=embedder)


async def test_an_llm_config_names_endpoint_key_and_deployments(
    emulator: Emulator, closing: list[Any]
) -> None:
    config = LLMConfig(
        api_key=emulator.api_key, base_url=emulator.endpoint, model="gpt-4o", small_model="gpt-4o-mini"
    )
    llm = AzmemLLMClient(config=config)
    closing.append(llm)
    emulator.script("gpt-4o-mini", [{"content": {"answer": "small"}}])
    emulator.script("gpt-4o", [{"content": {"answer": "medium"}}])
    ask = [Message(role="user", content="Which?")]
    assert await llm.generate_response(ask, Answer, model_size=ModelSize.small) == {"answer": "small"}
    # Graphiti's LLMRuntime passes model=<id>: one of this client's deployments, or an error.
    assert await llm.generate_response(ask, Answer, model="gpt-4o") == {"answer": "medium"}
    with pytest.raises(InvalidInputError, match="gpt-5"):
        await llm.generate_response(ask, Answer, model="gpt-5")
    assert [r.deployment for r in emulator.requests] == ["gpt-4o-mini", "gpt-4o"]
