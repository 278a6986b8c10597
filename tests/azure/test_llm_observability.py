"""Spans, usage, the response cache, Entra tokens, a caller's own SDK client, the v1 API, and
secrets kept out of everything a user might paste into an issue (sync and async)."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from azure.core.credentials import AccessToken
from llm_helpers import API_KEY, FAST_RETRY, Factory, Spans, chat_requests, factories, settings
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import BaseModel

from azmem.azure.cache import ResponseCache
from azmem.azure.llm import AsyncLLMClient, LLMClient
from azmem.azure.usage import UsageTracker
from azmem.emulator import Emulator, Fault
from azmem.errors import AuthenticationError, QuotaExceededError


@pytest.fixture(params=["sync", "async"])
def make_llm(request: pytest.FixtureRequest, emulator: Any) -> Iterator[Factory]:
    yield from factories(request, emulator)


class Person(BaseModel):
    name: str
    age: int


class Pet(BaseModel):
    name: str
    legs: int


# --------------------------------------------------------------------------- spans


def test_span_follows_genai_conventions(make_llm: Factory) -> None:
    spans = Spans()
    make_llm(tracer=spans.tracer).generate("hi", max_tokens=40, prompt_name="extract", group_id="g1")
    span = spans.only()
    attrs = dict(span.attributes or {})
    assert span.name == "chat gpt-4o"
    assert span.kind == SpanKind.CLIENT
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "gpt-4o"
    assert attrs["gen_ai.response.model"] == "gpt-4o"
    assert attrs["gen_ai.usage.input_tokens"] > 0
    assert attrs["gen_ai.usage.output_tokens"] > 0
    assert attrs["llm.provider"] == "azure"
    assert attrs["model.size"] == "medium"
    assert attrs["max_tokens"] == 40
    assert attrs["prompt.name"] == "extract"
    assert attrs["cache.enabled"] is False
    assert attrs["cache.hit"] is False
    assert attrs["azmem.attempts"] == 1


def test_span_records_each_retry(make_llm: Factory) -> None:
    spans = Spans()
    make_llm.emu.fault("gpt-4o", Fault.rate_limit(retry_after_ms=5, times=2))
    make_llm(tracer=spans.tracer).generate("hi")
    span = spans.only()
    retries = [e for e in span.events if e.name == "azmem.retry"]
    assert [dict(e.attributes or {})["attempt"] for e in retries] == [1, 2]
    assert dict(retries[0].attributes or {})["error"] == "RateLimitError"
    assert dict(span.attributes or {})["azmem.attempts"] == 3


def test_tracing_never_changes_the_exception_type(make_llm: Factory) -> None:
    spans = Spans()
    make_llm.emu.fault("gpt-4o", Fault.quota_wall())
    with pytest.raises(QuotaExceededError):
        make_llm(tracer=spans.tracer).generate("hi")
    span = spans.only()
    assert span.status.status_code == StatusCode.ERROR
    assert dict(span.attributes or {})["error.type"] == "QuotaExceededError"


def test_stream_has_a_span_with_usage(make_llm: Factory) -> None:
    spans = Spans()
    make_llm(tracer=spans.tracer).stream("hi")
    attrs = dict(spans.only().attributes or {})
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.usage.output_tokens"] > 0


# --------------------------------------------------------------------------- usage


def test_usage_is_aggregated_per_prompt_group_and_deployment(make_llm: Factory) -> None:
    usage = UsageTracker()
    llm = make_llm(usage=usage, small="gpt-4o-mini")
    a = llm.generate("one", prompt_name="extract", group_id="alice")
    b = llm.generate("two", prompt_name="extract", group_id="bob", model_size="small")
    llm.generate("three", prompt_name="decide", group_id="alice")
    summary = usage.summary()
    assert summary["total"]["calls"] == 3
    assert summary["by_prompt_name"]["extract"]["calls"] == 2
    assert summary["by_prompt_name"]["extract"]["input_tokens"] == a.usage.input_tokens + b.usage.input_tokens
    assert summary["by_group_id"]["alice"]["calls"] == 2
    assert set(summary["by_deployment"]) == {"gpt-4o", "gpt-4o-mini"}


# --------------------------------------------------------------------------- cache

_VARIANTS: list[dict[str, Any]] = [
    {},
    {"max_tokens": 51},
    {"temperature": 0.2},
    {"top_p": 0.5},
    {"seed": 3},
    {"stop": ["END"]},
    {"json": True},
    {"response_model": Person},
    {"response_model": Pet},
    {"tools": [Pet]},
    {"tools": [Pet], "tool_choice": "auto"},
    {"model_size": "small"},
    {"messages": "hello, again"},
    {"messages": [{"role": "system", "content": "terse"}, {"role": "user", "content": "hello"}]},
]


def test_cache_key_differs_by_every_parameter_and_hits_repeat(make_llm: Factory, tmp_path: Path) -> None:
    emu = make_llm.emu
    usage = UsageTracker()
    spans = Spans()
    cache = ResponseCache(tmp_path / "cache.db")
    llm = make_llm(cache=cache, usage=usage, tracer=spans.tracer, small="gpt-4o-mini", cache_sampled=True)

    def call(variant: dict[str, Any]) -> Any:
        kw = dict(variant)
        messages = kw.pop("messages", "hello")
        return llm.generate(messages, max_tokens=kw.pop("max_tokens", 50), **kw)

    first = []
    for i, variant in enumerate(_VARIANTS):
        first.append(call(variant))
        assert len(chat_requests(emu)) == i + 1, f"variant {variant} was served from another's cache entry"
    for variant, original in zip(_VARIANTS, first, strict=True):
        again = call(variant)
        assert again.cached
        assert again.usage.cached
        assert (again.text, again.data, again.parsed, again.tool_calls) == (
            original.text,
            original.data,
            original.parsed,
            original.tool_calls,
        )
    assert len(chat_requests(emu)) == len(_VARIANTS)
    assert usage.summary()["total"]["cached_calls"] == len(_VARIANTS)
    hits = [dict(s.attributes or {})["cache.hit"] for s in spans.finished]
    assert hits == [False] * len(_VARIANTS) + [True] * len(_VARIANTS)
    cache.close()


def test_prompt_name_does_not_split_the_cache(make_llm: Factory, tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache.db")
    llm = make_llm(cache=cache, cache_sampled=True)
    llm.generate("hello", prompt_name="a")
    assert llm.generate("hello", prompt_name="b").cached
    assert len(chat_requests(make_llm.emu)) == 1
    cache.close()


# --------------------------------------------------------------------------- auth


class EmulatorCredential:
    """A TokenCredential whose tokens come from the emulator's issuer and expire for real."""

    def __init__(self, emu: Emulator, ttl: float) -> None:
        self.emu = emu
        self.ttl = ttl
        self.issued: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        token = self.emu.issue_token(self.ttl)
        self.issued.append(token)
        return AccessToken(token, int(time.time() + self.ttl))


def test_token_credential_refreshes_expiring_tokens(make_llm: Factory) -> None:
    emu = make_llm.emu
    credential = EmulatorCredential(emu, ttl=0.5)
    llm = make_llm(chat=settings(emu, api_key=None, credential=credential))
    assert llm.generate("one").text
    time.sleep(0.6)  # the first token is now expired at the emulator
    assert llm.generate("two").text
    auth = [r.headers["authorization"] for r in chat_requests(emu)]
    assert len(set(auth)) == 2
    assert all(a.startswith("Bearer emu-") for a in auth)
    assert "api-key" not in chat_requests(emu)[0].headers


def test_a_fixed_token_that_expired_is_an_authentication_error(make_llm: Factory) -> None:
    emu = make_llm.emu
    token = emu.issue_token(0.3)
    llm = make_llm(chat=settings(emu, api_key=None, credential=lambda: token))
    assert llm.generate("one").text
    time.sleep(0.4)
    with pytest.raises(AuthenticationError) as info:
        llm.generate("two")
    assert len(chat_requests(emu)) == 2  # not retried
    assert token not in str(info.value)


# --------------------------------------------------------------------------- own SDK clients, v1


@pytest.mark.parametrize("api", ["dated", "v1"])
def test_wraps_a_callers_sdk_client_and_leaves_it_open(make_llm: Factory, api: str) -> None:
    emu = make_llm.emu
    cfg = settings(emu, api_mode=api)
    v1_url = f"{emu.endpoint}/openai/v1/"
    dated: dict[str, Any] = {"azure_endpoint": emu.endpoint, "api_key": API_KEY, "api_version": "2024-10-21"}
    own: Any
    if make_llm.mode == "sync":
        own = openai.OpenAI(base_url=v1_url, api_key=API_KEY) if api == "v1" else openai.AzureOpenAI(**dated)
        llm = LLMClient(chat=cfg, client=own, retry=FAST_RETRY)
        assert llm.generate("hi", response_model=Person).parsed
        llm.close()
        assert not own.is_closed()
        own.close()
    else:
        own = (
            openai.AsyncOpenAI(base_url=v1_url, api_key=API_KEY)
            if api == "v1"
            else openai.AsyncAzureOpenAI(**dated)
        )
        runner = make_llm.runner
        assert runner is not None
        allm = AsyncLLMClient(chat=cfg, client=own, retry=FAST_RETRY)
        assert runner.run(allm.generate("hi", response_model=Person)).parsed
        runner.run(allm.aclose())
        assert not own.is_closed()
        runner.run(own.close())
    (sent,) = chat_requests(emu)
    assert sent.path == (
        "/openai/v1/chat/completions" if api == "v1" else "/openai/deployments/gpt-4o/chat/completions"
    )


def test_no_op_tracers_cost_nothing_and_real_ones_record() -> None:
    from opentelemetry.trace import NoOpTracer

    from azmem.azure.flow import call_span

    built: list[str] = []

    def attrs() -> dict[str, Any]:
        built.append("x")
        return {"k": 1}

    with call_span(NoOpTracer(), "n", attrs) as span:
        assert not span.is_recording()
    assert built == []
    spans = Spans()
    with call_span(spans.tracer, "n", attrs) as span:
        assert span.is_recording()
    assert dict(spans.only().attributes or {})["k"] == 1


def test_v1_api_mode(make_llm: Factory) -> None:
    emu = make_llm.emu
    llm = make_llm(chat_kw={"api_mode": "v1"})
    assert llm.generate("hi", response_model=Person).parsed
    (sent,) = chat_requests(emu)
    assert sent.path == "/openai/v1/chat/completions"
    assert sent.json["model"] == "gpt-4o"
    assert "api-version" not in sent.query


# --------------------------------------------------------------------------- secrets


def test_secrets_never_reach_errors_logs_spans_or_cache(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    secret_key = "azmem-SECRET-key-7f3a9c1e55"
    caplog.set_level(logging.DEBUG)
    spans = Spans()
    cache = ResponseCache(tmp_path / "cache.db")
    with Emulator(api_keys=(secret_key,)) as emu:
        seen: list[str] = []
        token = emu.issue_token(3600)
        good = LLMClient(
            chat=settings(emu, api_key=secret_key),
            tracer=spans.tracer,
            cache=cache,
            retry=FAST_RETRY,
            cache_sampled=True,
        )
        bad = LLMClient(
            chat=settings(emu, api_key=secret_key + "-wrong"), tracer=spans.tracer, retry=FAST_RETRY
        )
        entra = LLMClient(
            chat=settings(emu, api_key=None, credential=lambda: token), tracer=spans.tracer, retry=FAST_RETRY
        )
        good.generate("hello")
        emu.fault("gpt-4o", Fault.rate_limit(retry_after_ms=1, times=1))
        good.generate("hello again", response_model=Person)
        entra.generate("via entra")
        try:
            bad.generate("denied")
        except AuthenticationError as exc:
            seen += [str(exc), repr(exc), str(exc.to_dict())]
        emu.fault("gpt-4o", Fault.quota_wall(times=1))
        try:
            entra.generate("quota")
        except QuotaExceededError as exc:
            seen += [str(exc), repr(exc), str(exc.to_dict()), str(exc.__cause__)]
        for client in (good, bad, entra):
            client.close()
    seen += [rec.getMessage() + str(getattr(rec, "azmem", "")) for rec in caplog.records]
    for span in spans.finished:
        seen.append(str(dict(span.attributes or {})))
        seen += [str(dict(e.attributes or {})) for e in span.events]
    cache.close()
    with sqlite3.connect(tmp_path / "cache.db") as db:
        for (table,) in db.execute("select name from sqlite_master where type='table'"):
            seen += [str(row) for row in db.execute(f"select * from {table}")]
    blob = "\n".join(seen)
    assert "Access denied" in blob or "401" in blob  # the failures were seen...
    assert secret_key not in blob  # ...but never the key
    assert token not in blob
