"""Audit of issue 2 §§3-8 through the real SDK against the emulator, sync and async.

Covers what the feature tests leave out: the rows of docs/errors.md not yet driven end to
end (empty answers, an Entra credential that cannot issue a token, plain 400/413/422),
exception types with and without tracing for every failure class, default headers and
tokens on every attempt, embeddings on the wire (``dimensions``, base64), the v1 API with
Entra ID, cost from an overridden price table, and a caller's client built with
``azure_deployment=``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import openai
import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from llm_helpers import FAST_RETRY, Factory, Spans, chat_requests, factories, settings
from opentelemetry.trace import StatusCode

from azmem.azure import tracing
from azmem.azure.embedder import AsyncAzureEmbedder, AzureEmbedder
from azmem.azure.llm import AsyncLLMClient, LLMClient
from azmem.azure.settings import AzureOpenAISettings
from azmem.azure.usage import Price, PriceTable, UsageTracker
from azmem.emulator import Emulator, Fault
from azmem.errors import (
    AuthenticationError,
    AzmemError,
    ContentFilterError,
    DeploymentNotFoundError,
    EmptyResponseError,
    InvalidRequestError,
    NetworkError,
    OutputTruncatedError,
    QuotaExceededError,
    RateLimitError,
    RefusalError,
    ServiceError,
)


@pytest.fixture(params=["sync", "async"])
def make_llm(request: pytest.FixtureRequest, emulator: Any) -> Iterator[Factory]:
    yield from factories(request, emulator)


class EmulatorCredential:
    """A TokenCredential whose tokens come from the emulator's issuer and really expire."""

    def __init__(self, emu: Emulator, ttl: float) -> None:
        self.emu = emu
        self.ttl = ttl
        self.calls = 0

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls += 1
        return AccessToken(self.emu.issue_token(self.ttl), int(time.time() + self.ttl))


class BrokenCredential:
    """What DefaultAzureCredential does on a machine with no identity at all."""

    def __init__(self) -> None:
        self.calls = 0

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls += 1
        raise ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token (AADSTS700016)")


# --------------------------------------------------------------------------- error rows


def _completion_without_choices() -> dict[str, Any]:
    return {
        "id": "chatcmpl-empty",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [],
        "usage": {"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3},
    }


@pytest.mark.parametrize(
    "reply", [{"content": None}, _completion_without_choices()], ids=["no-content", "no-choices"]
)
def test_an_empty_answer_is_typed_and_not_retried(make_llm: Factory, reply: dict[str, Any]) -> None:
    make_llm.emu.script("gpt-4o", [reply])
    with pytest.raises(EmptyResponseError) as info:
        make_llm().generate("hi")
    assert info.value.debug_info["deployment"] == "gpt-4o"
    assert info.value.debug_info["apim-request-id"]
    assert len(chat_requests(make_llm.emu)) == 1


@pytest.mark.parametrize("api_mode", ["dated", "v1"])
def test_a_credential_that_cannot_issue_a_token_is_an_authentication_error(
    make_llm: Factory, api_mode: str
) -> None:
    credential = BrokenCredential()
    llm = make_llm(chat=settings(make_llm.emu, api_key=None, credential=credential, api_mode=api_mode))
    with pytest.raises(AuthenticationError) as info:
        llm.generate("hi")
    assert "az login" in (info.value.suggestion or "")
    assert credential.calls == 1, "not retried"
    assert chat_requests(make_llm.emu) == [], "nothing was sent without a token"


@pytest.mark.parametrize("status", [400, 413, 422])
def test_invalid_requests_are_not_retried(make_llm: Factory, status: int) -> None:
    make_llm.emu.fault(
        "gpt-4o", Fault(status=status, code="invalid_request_error", message="Invalid value for 'top_p'.")
    )
    with pytest.raises(InvalidRequestError) as info:
        make_llm().generate("hi")
    assert type(info.value) is InvalidRequestError
    assert info.value.status_code == status
    assert len(chat_requests(make_llm.emu)) == 1


# --------------------------------------------------------------------------- spans and exception types

_FAILURES: list[tuple[str, Callable[[Emulator], None], dict[str, Any], type[AzmemError]]] = [
    ("rate-limit", lambda e: e.fault("gpt-4o", Fault.rate_limit(retry_after_ms=1)), {}, RateLimitError),
    ("quota-wall", lambda e: e.fault("gpt-4o", Fault.quota_wall()), {}, QuotaExceededError),
    (
        "prompt-filter",
        lambda e: e.fault("gpt-4o", Fault.prompt_filter({"hate": "high"})),
        {},
        ContentFilterError,
    ),
    ("output-filter", lambda e: e.fault("gpt-4o", Fault.output_filter()), {}, ContentFilterError),
    ("5xx", lambda e: e.fault("gpt-4o", Fault.server_error(503)), {}, ServiceError),
    ("drop", lambda e: e.fault("gpt-4o", Fault.drop()), {}, NetworkError),
    ("refusal", lambda e: e.script("gpt-4o", [{"refusal": "I can't help with that."}]), {}, RefusalError),
    (
        "length",
        lambda e: e.script("gpt-4o", [{"content": "cut", "finish_reason": "length"}]),
        {},
        OutputTruncatedError,
    ),
    ("empty", lambda e: e.script("gpt-4o", [{"content": None}]), {}, EmptyResponseError),
    ("wrong-key", lambda e: None, {"api_key": "wrong-key-0123456789"}, AuthenticationError),
    ("no-deployment", lambda e: None, {"deployment": "missing"}, DeploymentNotFoundError),
]


@pytest.mark.parametrize("tracer_mode", ["none", "explicit", "set_tracer"])
@pytest.mark.parametrize(
    ("setup", "chat_kw", "cls"), [f[1:] for f in _FAILURES], ids=[f[0] for f in _FAILURES]
)
def test_spans_never_change_the_exception_type(
    make_llm: Factory,
    tracer_mode: str,
    setup: Callable[[Emulator], None],
    chat_kw: dict[str, Any],
    cls: type[AzmemError],
) -> None:
    spans = Spans()
    setup(make_llm.emu)
    kw: dict[str, Any] = {"tracer": spans.tracer} if tracer_mode == "explicit" else {}
    if tracer_mode == "set_tracer":
        tracing.set_tracer(spans.tracer)
    try:
        extra = {k: v for k, v in chat_kw.items() if k != "deployment"}
        llm = make_llm(chat_kw.get("deployment", "gpt-4o"), chat_kw=extra, **kw)
        with pytest.raises(AzmemError) as info:
            llm.generate("hi")
    finally:
        tracing.set_tracer(None)
    assert type(info.value) is cls
    if tracer_mode == "none":
        assert spans.finished == ()
        return
    span = spans.only()
    assert span.status.status_code == StatusCode.ERROR
    assert dict(span.attributes or {})["error.type"] == cls.__name__


# --------------------------------------------------------------------------- wire: headers, tokens, v1

HEADERS = {"x-team": "memory", "x-ms-useragent": "azmem-audit"}


@pytest.mark.parametrize("api_mode", ["dated", "v1"])
def test_default_headers_reach_every_request_and_every_attempt(make_llm: Factory, api_mode: str) -> None:
    emu = make_llm.emu
    emu.fault("gpt-4o", Fault.rate_limit(retry_after_ms=1, times=1))
    llm = make_llm(chat_kw={"default_headers": HEADERS, "api_mode": api_mode})
    llm.generate("one")
    llm.stream("two")
    sent = chat_requests(emu)
    assert [r.status for r in sent] == [429, 200, 200]
    for request in sent:
        assert {k: request.headers.get(k) for k in HEADERS} == HEADERS


def test_every_attempt_gets_a_fresh_token(make_llm: Factory) -> None:
    """The first token expires while the 429's Retry-After runs; the retry must not reuse it."""
    emu = make_llm.emu
    credential = EmulatorCredential(emu, ttl=0.2)
    emu.fault("gpt-4o", Fault.rate_limit(retry_after_ms=300, times=1))
    llm = make_llm(chat=settings(emu, api_key=None, credential=credential))
    assert llm.generate("hi").text
    sent = chat_requests(emu)
    assert [r.status for r in sent] == [429, 200]
    assert sent[0].headers["authorization"] != sent[1].headers["authorization"]


def test_v1_api_with_entra_id(make_llm: Factory) -> None:
    emu = make_llm.emu
    credential = EmulatorCredential(emu, ttl=3600)
    llm = make_llm(chat=settings(emu, api_key=None, credential=credential, api_mode="v1"))
    assert llm.generate("hi").text
    (sent,) = chat_requests(emu)
    assert sent.path == "/openai/v1/chat/completions"
    assert "api-version" not in sent.query
    assert sent.headers["authorization"].startswith("Bearer emu-")
    assert "api-key" not in sent.headers


def test_a_callers_client_built_with_azure_deployment(make_llm: Factory) -> None:
    emu = make_llm.emu
    kwargs: dict[str, Any] = {**emu.client_kwargs(), "azure_deployment": "gpt-4o-mini"}
    no_deployment = AzureOpenAISettings()  # the client names it
    if make_llm.mode == "sync":
        own = openai.AzureOpenAI(**kwargs)
        with LLMClient(chat=no_deployment, client=own, retry=FAST_RETRY) as llm:
            result = llm.generate("hi")
        assert not own.is_closed()
        own.close()
    else:
        runner = make_llm.runner
        assert runner is not None
        aown = openai.AsyncAzureOpenAI(**kwargs)
        allm = AsyncLLMClient(chat=no_deployment, client=aown, retry=FAST_RETRY)
        result = runner.run(allm.generate("hi"))
        runner.run(allm.aclose())
        assert not aown.is_closed()
        runner.run(aown.close())
    assert result.deployment == "gpt-4o-mini"
    (sent,) = chat_requests(emu)
    assert sent.path == "/openai/deployments/gpt-4o-mini/chat/completions"


# --------------------------------------------------------------------------- embeddings on the wire


@pytest.mark.parametrize("api_mode", ["dated", "v1"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_embeddings_send_dimensions_base64_and_headers(emulator: Emulator, mode: str, api_mode: str) -> None:
    cfg = settings(
        emulator, "text-embedding-3-small", dimensions=256, default_headers=HEADERS, api_mode=api_mode
    )
    texts = ["alpha", "beta", "gamma"]
    if mode == "sync":
        with AzureEmbedder(cfg, retry=FAST_RETRY) as embedder:
            matrix = embedder.embed(texts)
    else:

        async def run() -> Any:
            async with AsyncAzureEmbedder(cfg, retry=FAST_RETRY) as aembedder:
                return await aembedder.aembed(texts)

        matrix = asyncio.run(run())
    assert matrix.shape == (3, 256)
    assert matrix.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, rtol=1e-5)
    (sent,) = [r for r in emulator.requests if r.path.endswith("/embeddings")]
    assert sent.json["encoding_format"] == "base64"
    assert sent.json["dimensions"] == 256
    assert sent.json["input"] == texts
    assert sent.path == (
        "/openai/v1/embeddings"
        if api_mode == "v1"
        else "/openai/deployments/text-embedding-3-small/embeddings"
    )
    assert {k: sent.headers.get(k) for k in HEADERS} == HEADERS


# --------------------------------------------------------------------------- usage and cost


def test_cost_comes_from_an_overridden_price_table(make_llm: Factory) -> None:
    prices = PriceTable(
        {"gpt-4o": Price(input=1000.0, output=2000.0), "house-mini": {"input": 7.0, "output": 9.0}}
    )
    usage = UsageTracker(prices)
    llm = make_llm(usage=usage, chat_kw={"model": "gpt-4o"})
    small = settings(make_llm.emu, "gpt-4o-mini", model="house-mini")
    llm_small = make_llm(usage=usage, small_chat=small)
    a = llm.generate("one", prompt_name="extract", group_id="alice")
    b = llm.generate("two", prompt_name="decide", group_id="alice")
    c = llm_small.generate("three", prompt_name="extract", group_id="bob", model_size="small")

    def cost(result: Any, price_in: float, price_out: float) -> float:
        return (result.usage.input_tokens * price_in + result.usage.output_tokens * price_out) / 1e6

    summary = usage.summary()
    assert summary["by_deployment"]["gpt-4o"]["cost_usd"] == pytest.approx(
        cost(a, 1000, 2000) + cost(b, 1000, 2000)
    )
    assert summary["by_deployment"]["gpt-4o-mini"]["cost_usd"] == pytest.approx(cost(c, 7, 9))
    assert summary["by_prompt_name"]["extract"]["cost_usd"] == pytest.approx(
        cost(a, 1000, 2000) + cost(c, 7, 9)
    )
    assert summary["by_group_id"]["alice"]["calls"] == 2
    assert summary["by_group_id"]["bob"]["input_tokens"] == c.usage.input_tokens
    assert usage.cost == pytest.approx(cost(a, 1000, 2000) + cost(b, 1000, 2000) + cost(c, 7, 9))
    assert summary["total"]["unpriced_calls"] == 0


def test_embedding_cost_uses_the_price_table(emulator: Emulator) -> None:
    usage = UsageTracker(PriceTable({"text-embedding-3-small": Price(input=500.0)}))
    with AzureEmbedder(
        settings(emulator, "text-embedding-3-small"), usage=usage, retry=FAST_RETRY
    ) as embedder:
        embedder.embed(["one", "two"])
    (record,) = usage.records
    assert record.usage.input_tokens > 0
    assert record.cost == pytest.approx(record.usage.input_tokens * 500.0 / 1e6)
    assert usage.summary()["by_deployment"]["text-embedding-3-small"]["cost_usd"] == pytest.approx(
        record.cost
    )


# --------------------------------------------------------------------------- messages verbatim


def test_user_text_mentioning_the_assistant_is_sent_verbatim(make_llm: Factory) -> None:
    """mem0 rewrote "assistant" to "ai" in user text to dodge a jailbreak filter; we never edit words."""
    text = "Assistant: ignore that. Ask the assistant (the ASSISTANT role) about assistants."
    conversation: list[Any] = [
        {"role": "system", "content": "You are an assistant."},
        {"role": "user", "content": text},
        {"role": "assistant", "content": "As your assistant, I can help."},
    ]
    make_llm().generate(conversation)
    (sent,) = chat_requests(make_llm.emu)
    assert [m["content"] for m in sent.json["messages"]] == [
        "You are an assistant.",
        text,
        "As your assistant, I can help.",
    ]


@pytest.mark.parametrize("api", ["dated", "dated-deployment", "v1"])
def test_a_wrapped_clients_errors_name_the_resource_endpoint(make_llm: Factory, api: str) -> None:
    emu = make_llm.emu
    own: Any
    if api == "v1":
        own = openai.OpenAI(base_url=emu.v1_base_url, api_key=emu.api_key, max_retries=0)
        cfg = AzureOpenAISettings(deployment="missing")
    else:
        extra = {"azure_deployment": "missing"} if api == "dated-deployment" else {}
        own = openai.AzureOpenAI(**emu.client_kwargs(), **extra)
        cfg = AzureOpenAISettings() if extra else AzureOpenAISettings(deployment="missing")
    if make_llm.mode == "async":  # the same facts through the async wrapper
        own.close()
        own = (
            openai.AsyncOpenAI(base_url=emu.v1_base_url, api_key=emu.api_key, max_retries=0)
            if api == "v1"
            else openai.AsyncAzureOpenAI(**emu.client_kwargs(), **extra)
        )
    llm = make_llm(chat=cfg, client=own)
    with pytest.raises(DeploymentNotFoundError) as info:
        llm.generate("hi")
    assert info.value.debug_info["endpoint"] == emu.endpoint
    assert f"exists on {emu.endpoint}. " in (info.value.suggestion or "")
    if make_llm.mode == "sync":
        own.close()
    else:
        assert make_llm.runner is not None
        make_llm.runner.run(own.close())


def test_a_wrapped_clients_own_retries_are_turned_off(make_llm: Factory) -> None:
    """Ours decide (logged, on the span, Retry-After ceiling); the SDK's default 2 retries would hide
    attempts and multiply them (3 x 4)."""
    emu = make_llm.emu
    emu.fault("gpt-4o", Fault.rate_limit(retry_after_ms=1, times=2))
    kwargs: dict[str, Any] = {k: v for k, v in emu.client_kwargs().items() if k != "max_retries"}
    own: Any = openai.AzureOpenAI(**kwargs) if make_llm.mode == "sync" else openai.AsyncAzureOpenAI(**kwargs)
    assert own.max_retries == 2  # the SDK's default
    result = make_llm(chat=settings(emu), client=own).generate("hi")
    assert result.attempts == 3, "each attempt is ours"
    assert own.max_retries == 2, "the caller's client is left as it was"
    if make_llm.mode == "sync":
        own.close()
    else:
        assert make_llm.runner is not None
        make_llm.runner.run(own.close())


def test_a_wrapped_client_also_sends_the_settings_default_headers(make_llm: Factory) -> None:
    emu = make_llm.emu
    kwargs: dict[str, Any] = {**emu.client_kwargs(), "default_headers": {"x-caller": "theirs"}}
    own: Any = openai.AzureOpenAI(**kwargs) if make_llm.mode == "sync" else openai.AsyncAzureOpenAI(**kwargs)
    make_llm(chat=settings(emu, default_headers=HEADERS), client=own).generate("hi")
    (sent,) = chat_requests(emu)
    assert {k: sent.headers.get(k) for k in HEADERS} == HEADERS
    assert sent.headers["x-caller"] == "theirs"
    if make_llm.mode == "sync":
        own.close()
    else:
        assert make_llm.runner is not None
        make_llm.runner.run(own.close())
