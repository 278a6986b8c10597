"""Spans: GenAI attributes, errors recorded but re-raised as the same object, no secrets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from azmem.azure import tracing
from azmem.azure.tracing import get_tracer, llm_span, sanitize_attributes, set_tracer
from azmem.errors import RateLimitError, register_secret


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer(exporter: InMemorySpanExporter) -> trace.Tracer:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test")


@pytest.fixture(autouse=True)
def _reset_module_tracer() -> Iterator[None]:
    yield
    set_tracer(None)


def _only(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = exporter.get_finished_spans()
    return span


ATTRS = {
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "gpt-4o-prod",
    "model.size": "medium",
    "max_tokens": 256,
    "cache.enabled": True,
    "cache.hit": False,
    "prompt.name": "extract_facts",
}


def test_span_carries_genai_and_graphiti_attributes(
    tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    with llm_span(tracer, "chat gpt-4o-prod", ATTRS) as span:
        span.set_attribute("gen_ai.response.model", "gpt-4o-2024-08-06")
        span.set_attribute("gen_ai.usage.input_tokens", 12)
        span.set_attribute("gen_ai.usage.output_tokens", 3)
        span.set_attribute("attempts", 2)
    done = _only(exporter)
    assert done.name == "chat gpt-4o-prod"
    assert done.kind == trace.SpanKind.CLIENT
    attrs = dict(done.attributes or {})
    for key, value in ATTRS.items():
        assert attrs[key] == value
    assert attrs["llm.provider"] == "azure"
    assert attrs["gen_ai.provider.name"] == "azure.ai.openai"
    assert attrs["gen_ai.system"] == "az.ai.openai"
    assert attrs["gen_ai.usage.input_tokens"] == 12
    assert attrs["gen_ai.usage.output_tokens"] == 3
    assert attrs["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert attrs["attempts"] == 2
    assert done.status.status_code == StatusCode.UNSET


@pytest.mark.parametrize(
    "error",
    [
        RateLimitError("slow down", status_code=429, retry_after=1.0, debug_info={"apim-request-id": "a-1"}),
        KeyError("k"),
        ValueError("v"),
    ],
    ids=["azmem", "keyerror", "valueerror"],
)
def test_exception_is_the_same_object_and_recorded(
    tracer: trace.Tracer, exporter: InMemorySpanExporter, error: BaseException
) -> None:
    with pytest.raises(type(error)) as info, llm_span(tracer, "chat", {}):
        raise error
    assert info.value is error, "never wrapped into another type (Graphiti's RuntimeError bug)"
    done = _only(exporter)
    assert done.status.status_code == StatusCode.ERROR
    attrs = dict(done.attributes or {})
    assert attrs["error.type"] == type(error).__name__
    events = [e for e in done.events if e.name == "exception"]
    assert len(events) == 1
    assert dict(events[0].attributes or {})["exception.type"].endswith(type(error).__qualname__)
    if isinstance(error, RateLimitError):
        assert attrs["http.response.status_code"] == 429
        assert attrs["azmem.request_id"] == "a-1"


async def test_async_code_inside_the_span_keeps_the_exception(
    tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    error = RateLimitError("x")

    async def failing() -> None:
        raise error

    with pytest.raises(RateLimitError) as info, llm_span(tracer, "chat", {}):
        await failing()
    assert info.value is error
    assert _only(exporter).status.status_code == StatusCode.ERROR


def test_generator_closed_early_is_not_an_error(tracer: trace.Tracer, exporter: InMemorySpanExporter) -> None:
    def stream() -> Iterator[str]:
        with llm_span(tracer, "chat stream", {}):
            yield "a"
            yield "b"

    gen = stream()
    assert next(gen) == "a"
    gen.close()
    assert _only(exporter).status.status_code == StatusCode.UNSET


def test_secrets_are_dropped_and_scrubbed(tracer: trace.Tracer, exporter: InMemorySpanExporter) -> None:
    key = "sk-TRACE-LEAK-CHECK-4242"
    register_secret(key)

    def leaky() -> None:
        with llm_span(tracer, "chat", {"api_key": key, "azure.api-key": key, "note": f"k={key}"}) as span:
            span.set_attribute("authorization", f"Bearer {key}")
            span.set_attribute("detail", f"sent {key} upstream")
            span.add_event("evt", {"token": key, "msg": key})
            raise RuntimeError(f"failed with {key}")

    with pytest.raises(RuntimeError):
        leaky()
    done = _only(exporter)
    blob = str(dict(done.attributes or {})) + str([dict(e.attributes or {}) for e in done.events])
    blob += str(done.status.description)
    assert key not in blob
    attrs = dict(done.attributes or {})
    assert "api_key" not in attrs
    assert "authorization" not in attrs
    assert attrs["detail"] == "sent *** upstream"


def test_sanitize_keeps_token_counts_and_drops_none() -> None:
    out = sanitize_attributes(
        {
            "gen_ai.usage.input_tokens": 5,
            "max_tokens": 9,
            "x": None,
            "list": [1, 2],
            "mixed": [1, "a"],
            "obj": object,
        }
    )
    assert out["gen_ai.usage.input_tokens"] == 5
    assert out["max_tokens"] == 9
    assert "x" not in out
    assert out["list"] == [1, 2]
    assert out["mixed"] == ["1", "a"]
    assert isinstance(out["obj"], str)


def test_set_tracer_and_explicit_tracer(tracer: trace.Tracer, exporter: InMemorySpanExporter) -> None:
    other = TracerProvider().get_tracer("other")
    assert get_tracer(other) is other
    set_tracer(tracer)
    assert get_tracer() is tracer
    assert get_tracer(other) is other, "an explicit tracer wins over the module one"
    with llm_span(None, "via module tracer", {}):
        pass
    assert _only(exporter).name == "via module tracer"
    set_tracer(None)
    assert tracing._tracer is None


def test_noop_without_an_sdk() -> None:
    """With only opentelemetry-api's default provider, spans cost nothing and still re-raise as is."""
    error = RateLimitError("x")

    def failing() -> None:
        with llm_span(trace.NoOpTracer(), "chat", {"a": 1}) as span:
            span.set_attribute("b", 2)
            raise error

    with pytest.raises(RateLimitError) as info:
        failing()
    assert info.value is error


def test_record_exception_and_status_through_the_span_are_scrubbed(
    tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    key = "sk-TRACE-RECORD-CHECK-777"
    register_secret(key)
    with llm_span(tracer, "chat", {}) as span:
        span.record_exception(ValueError(f"bad key {key}"))
        span.set_status(StatusCode.ERROR, f"failed with {key}")
    done = _only(exporter)
    (event,) = [e for e in done.events if e.name == "exception"]
    assert dict(event.attributes or {})["exception.message"] == "bad key ***"
    assert key not in str(done.status.description)
    assert done.status.status_code == StatusCode.ERROR
