"""Audit of issue 2 §8: spans must not leak into the caller's context from a generator (a stream).

A span made *current* inside a generator stays current in the caller's context at every
``yield``: the caller's own spans become children of azmem's, and an abandoned async
stream cannot detach its context ("Failed to detach context" errors from OpenTelemetry).
``llm_span(..., current=False)`` is the primitive streams need.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from llm_helpers import Factory, Spans, factories
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from azmem.azure.tracing import llm_span
from azmem.errors import RateLimitError


@pytest.fixture(params=["sync", "async"])
def make_llm(request: pytest.FixtureRequest, emulator: Any) -> Iterator[Factory]:
    yield from factories(request, emulator)


def _pieces(spans: Spans, *, current: bool) -> Iterator[str]:
    with llm_span(spans.tracer, "chat stream", {"gen_ai.operation.name": "chat"}, current=current):
        yield "a"
        yield "b"


def test_a_non_current_span_does_not_leak_into_the_callers_context() -> None:
    spans = Spans()
    stream = _pieces(spans, current=False)
    assert next(stream) == "a"
    assert not trace.get_current_span().get_span_context().is_valid, "the caller's context is untouched"
    with spans.tracer.start_as_current_span("caller work") as mine:
        assert mine.parent is None  # type: ignore[attr-defined]
    assert list(stream) == ["b"]
    names = [s.name for s in spans.finished]
    assert names == ["caller work", "chat stream"]


def test_a_current_span_is_current_inside_the_block() -> None:
    spans = Spans()
    with llm_span(spans.tracer, "call", {}) as span:
        assert trace.get_current_span().get_span_context() == span.get_span_context()
    assert not trace.get_current_span().get_span_context().is_valid


def test_a_non_current_span_records_and_reraises_the_same_exception() -> None:
    spans = Spans()
    error = RateLimitError("throttled", status_code=429)
    with pytest.raises(RateLimitError) as info, llm_span(spans.tracer, "call", {}, current=False):
        raise error
    assert info.value is error
    (span,) = spans.finished
    assert span.status.status_code == StatusCode.ERROR
    assert dict(span.attributes or {})["error.type"] == "RateLimitError"


def test_an_abandoned_async_stream_with_a_non_current_span_detaches_cleanly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    spans = Spans()

    async def pieces() -> AsyncIterator[str]:
        with llm_span(spans.tracer, "chat stream", {}, current=False):
            yield "a"
            yield "b"

    async def main() -> None:
        stream = pieces()
        async for _ in stream:
            break
        del stream  # abandoned: finalised by the loop, in another context
        gc.collect()
        await asyncio.sleep(0.05)

    caplog.set_level(logging.ERROR, logger="opentelemetry.context")
    asyncio.run(main())
    assert [r.getMessage() for r in caplog.records if r.name == "opentelemetry.context"] == []
    assert [s.name for s in spans.finished] == ["chat stream"]


def test_the_clients_stream_span_is_not_current_while_the_caller_iterates(make_llm: Factory) -> None:
    spans = Spans()
    llm = make_llm(tracer=spans.tracer)
    if make_llm.mode == "sync":
        stream = llm.client.stream("hello there")
        next(stream)
        leaked = trace.get_current_span().get_span_context().is_valid
        stream.close()
    else:
        runner = make_llm.runner
        assert runner is not None

        async def first() -> bool:
            agen = llm.client.stream("hello there")
            await agen.__anext__()
            inside = trace.get_current_span().get_span_context().is_valid
            await agen.aclose()
            return inside

        leaked = runner.run(first())
    assert not leaked
