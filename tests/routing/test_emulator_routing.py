"""Routing through the real openai SDK against the emulator on loopback: failover, cooldowns,
the breaker, tiers, capabilities, taking deployments out, fallbacks and the final error."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from opentelemetry import trace
from pydantic import BaseModel
from routing_helpers import emu_pool, emu_router, statuses

from azmem.azure.chat import ChatEnv
from azmem.azure.flow import drive, drive_async
from azmem.azure.messages import normalize_messages
from azmem.azure.request import ChatOptions
from azmem.azure.response import LLMResult
from azmem.azure.retry import RetryPolicy
from azmem.azure.routing import NoDeploymentAvailableError, Router
from azmem.azure.routing.flow import RoutedChat
from azmem.azure.tracing import get_tracer
from azmem.azure.usage import UsageTracker
from azmem.emulator import Deployment, Fault
from azmem.errors import ContentFilterError, ServiceError


def generate(
    router: Router, text: str = "hello", usage: UsageTracker | None = None, tracer: Any = None, **opts: Any
) -> LLMResult[Any]:
    rc = RoutedChat(router)
    env = ChatEnv(policy=RetryPolicy(), tracer=get_tracer(tracer), usage=usage)
    flow, current = rc.generate(env, normalize_messages(text), ChatOptions(**opts))
    try:
        return drive(flow, rc.perform_sync(current))
    finally:
        rc.close()


def test_429_fails_over_at_once_and_the_throttled_deployment_cools_for_retry_after(emulator: Any) -> None:
    router = emu_router(
        {"chat": emu_pool(emulator, "east", "west", east={"weight": 1000}, west={"weight": 0.001})}
    )
    emulator.fault("east", Fault.rate_limit(retry_after=30, times=1))
    started = time.monotonic()
    result = generate(router)
    assert result.deployment == "west"
    assert time.monotonic() - started < 2.0  # no sleep for the 30 s Retry-After
    for _ in range(3):
        assert generate(router).deployment == "west"
    assert statuses(emulator, "east") == [429]


def test_waits_for_retry_after_only_when_every_deployment_is_cooling(emulator: Any) -> None:
    router = emu_router({"chat": emu_pool(emulator, "solo")})
    emulator.fault("solo", Fault.rate_limit(retry_after_ms=300, times=1))
    started = time.monotonic()
    assert generate(router).deployment == "solo"
    assert 0.3 <= time.monotonic() - started < 2.0
    assert statuses(emulator, "solo") == [429, 200]


@pytest.mark.parametrize("mode", ["503", "drop"])
def test_outage_fails_over_and_the_breaker_stops_traffic_to_the_dead_region(emulator: Any, mode: str) -> None:
    router = emu_router(
        {"chat": emu_pool(emulator, "down", "up")},
        breaker={"failure_threshold": 2, "open_seconds": 60, "cooldown_base": 0.01},
    )
    emulator.set_outage("down", mode=mode)  # type: ignore[arg-type]
    for _ in range(12):
        assert generate(router).deployment == "up"
    assert len(emulator.requests_for("down")) <= 2 if mode == "503" else True
    row = next(r for r in router.snapshot() if r["name"] == "down")
    assert row["breaker"] == "open"


def test_half_open_probe_brings_a_recovered_deployment_back(emulator: Any) -> None:
    router = emu_router(
        {"chat": emu_pool(emulator, "flaky", "steady", flaky={"priority": 0}, steady={"priority": 1})},
        breaker={"failure_threshold": 1, "open_seconds": 0.2, "cooldown_base": 0.01},
    )
    emulator.fault("flaky", Fault.server_error(500, times=1))
    assert generate(router).deployment == "steady"
    assert generate(router).deployment == "steady"  # breaker open
    time.sleep(0.25)
    assert generate(router).deployment == "flaky"  # the probe succeeds and closes the breaker
    assert next(r for r in router.snapshot() if r["name"] == "flaky")["breaker"] == "closed"


def test_priority_tiers(emulator: Any) -> None:
    router = emu_router({"chat": emu_pool(emulator, "primary", "backup", backup={"priority": 1})})
    assert {generate(router).deployment for _ in range(5)} == {"primary"}
    emulator.fault("primary", Fault.rate_limit(retry_after=20, times=1))
    assert generate(router).deployment == "backup"


class Answer(BaseModel):
    answer: str


def test_capability_filtering_vision_and_json_schema(emulator: Any) -> None:
    pool = emu_pool(emulator, "old", model="gpt-35-turbo") + emu_pool(emulator, "modern", model="gpt-4o")
    pool[0]["weight"] = 1000
    pool[0]["context_window"] = 16_000
    router = emu_router({"chat": pool})
    image = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "https://x.example/a.png"}},
            ],
        }
    ]
    rc = RoutedChat(router)
    env = ChatEnv(policy=RetryPolicy(), tracer=get_tracer())
    flow, cur = rc.generate(env, normalize_messages(image), ChatOptions())
    assert drive(flow, rc.perform_sync(cur)).deployment == "modern"
    structured = generate(router, "give me json", response_model=Answer)
    assert structured.deployment == "modern"
    assert isinstance(structured.parsed, Answer)
    assert generate(router).deployment == "old"  # plain text goes by weight


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        ({"api_key": "wrong-key-123456"}, "AuthenticationError"),
        ({"deployment": "no-such-deployment"}, "DeploymentNotFoundError"),
    ],
)
def test_auth_and_not_found_take_the_deployment_out_loudly(
    emulator: Any, caplog: pytest.LogCaptureFixture, broken: dict[str, str], expected: str
) -> None:
    pool = emu_pool(emulator, "bad", "good", bad={"weight": 1000, **broken}, good={"weight": 0.001})
    router = emu_router({"chat": pool})
    with caplog.at_level(logging.ERROR, logger="azmem.routing"):
        assert generate(router).deployment == "good"
    assert "chat/bad taken out" in caplog.text
    for _ in range(5):
        assert generate(router).deployment == "good"
    row = next(r for r in router.snapshot() if r["name"] == "bad")
    assert row["state"] == "out"
    assert row["reason"].startswith(f"out: {expected}")
    assert len([r for r in emulator.requests if r.status in (401, 404)]) == 1


def test_general_fallback_to_another_logical_model(emulator: Any) -> None:
    router = emu_router(
        {
            "chat": emu_pool(emulator, "big1", "big2"),
            "chat-small": emu_pool(emulator, "mini", model="gpt-4o-mini"),
        },
        fallbacks={"general": {"chat": ["chat-small"]}},
        breaker={"failure_threshold": 1, "open_seconds": 30},
    )
    emulator.set_outage("big1")
    emulator.set_outage("big2")
    assert generate(router).deployment == "mini"


def test_content_filter_fallback_is_opt_in(emulator: Any) -> None:
    pools = {"chat": emu_pool(emulator, "strict"), "chat-lenient": emu_pool(emulator, "lenient")}
    emulator.fault("strict", Fault.prompt_filter({"violence": "high"}))
    with pytest.raises(ContentFilterError):
        generate(emu_router(pools))
    router = emu_router(pools, fallbacks={"content_filter": {"chat": ["chat-lenient"]}})
    assert generate(router).deployment == "lenient"


def test_context_window_fallback_on_overflow(emulator: Any) -> None:
    emulator.add_deployment(Deployment("tiny", model="gpt-4o", context_window=300))
    pools = {
        "chat": [
            {
                "name": "tiny",
                "endpoint": emulator.endpoint,
                "deployment": "tiny",
                "api_key": "test-key",
                "context_window": 128_000,
            }
        ],  # misconfigured: the service's 400 corrects us
        "chat-long": emu_pool(emulator, "long", model="gpt-4.1"),
    }
    router = emu_router(pools, fallbacks={"context_window": {"chat": ["chat-long"]}})
    assert generate(router, "word " * 600).deployment == "long"
    assert statuses(emulator, "tiny") == [400]


def test_final_error_lists_what_happened_on_each_deployment(emulator: Any) -> None:
    router = emu_router(
        {"chat": emu_pool(emulator, "r1", "r2")}, max_attempts=3, breaker={"cooldown_base": 0.01}
    )
    emulator.set_outage("r1")
    emulator.set_outage("r2", mode="drop")
    with pytest.raises((ServiceError, Exception)) as info:
        generate(router)
    err = info.value
    routing = err.details["routing"]  # type: ignore[attr-defined]
    assert routing["attempts"] == 3
    assert any("ServiceError 503" in e for e in routing["deployments"]["chat/r1"])
    assert any("NetworkError" in e for e in routing["deployments"]["chat/r2"])
    assert "Routing: chat/r" in str(err)


def test_nothing_capable_raises_without_sending(emulator: Any) -> None:
    router = emu_router({"chat": emu_pool(emulator, "old", model="gpt-35-turbo")})
    image = [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.example/a.png"}}]}
    ]
    rc = RoutedChat(router)
    flow, cur = rc.generate(
        ChatEnv(policy=RetryPolicy(), tracer=get_tracer()),
        normalize_messages(image),
        ChatOptions(),
    )
    with pytest.raises(NoDeploymentAvailableError, match="no vision"):
        drive(flow, rc.perform_sync(cur))
    assert emulator.requests == []


def test_limiter_keeps_under_the_emulated_quota_and_reads_ratelimit_headers(emulator: Any) -> None:
    pool = emu_pool(emulator, "q1", "q2", q1={"tpm": 400}, q2={"tpm": 400})
    emulator.deployment("q1").tpm = 400
    emulator.deployment("q2").tpm = 400
    router = emu_router({"chat": pool})
    served = [generate(router, "x" * 200, max_tokens=60).deployment for _ in range(6)]
    assert sorted(served) == ["q1", "q1", "q1", "q2", "q2", "q2"]
    assert 429 not in statuses(emulator, "q1") + statuses(emulator, "q2")
    # A seventh request does not fit anywhere: the router waits for the window instead of sending.
    from azmem.azure.routing import Requirements, Wait

    assert isinstance(router.begin("chat", Requirements(prompt_tokens=60, max_output_tokens=60)).next(), Wait)
    rows = {r["name"]: r for r in router.snapshot()}
    assert rows["q1"]["server_remaining_tokens"] is not None


def test_usage_is_tracked_per_deployment(emulator: Any) -> None:
    router = emu_router({"chat": emu_pool(emulator, "u1", "u2", u1={"weight": 1000}, u2={"weight": 0.001})})
    usage = UsageTracker()
    generate(router, usage=usage)
    emulator.fault("u1", Fault.rate_limit(retry_after=5, times=1))
    generate(router, usage=usage)
    generate(router, usage=usage)
    rows = {r["name"]: r for r in router.snapshot()}
    assert (rows["u1"]["successes"], rows["u1"]["throttles"], rows["u2"]["successes"]) == (1, 1, 2)
    assert rows["u2"]["input_tokens"] > 0
    by_deployment = usage.summary()["by_deployment"]
    assert set(by_deployment) == {"u1", "u2"}
    assert by_deployment["u2"]["calls"] == 2


def test_spans_name_the_deployment_the_attempt_and_why_others_were_skipped(emulator: Any) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("routing-tests")
    router = emu_router({"chat": emu_pool(emulator, "s1", "s2", s1={"weight": 1000}, s2={"weight": 0.001})})
    emulator.fault("s1", Fault.rate_limit(retry_after=9, times=1))
    generate(router, tracer=tracer)
    finished = exporter.get_finished_spans()
    route = next(s for s in finished if s.name == "route chat")
    assert route.attributes is not None
    assert route.attributes["azmem.deployment"] == "chat/s2"
    assert route.attributes["azmem.route.attempts"] == 2
    attempts = [e for e in route.events if e.name == "azmem.route.attempt"]
    assert [(e.attributes or {})["deployment"] for e in attempts] == ["chat/s1", "chat/s2"]
    assert [(e.attributes or {})["attempt"] for e in attempts] == [1, 2]
    assert str((attempts[1].attributes or {})["skipped.chat/s1"]).startswith("cooling down for 9")
    failures = [e for e in route.events if e.name == "azmem.route.failure"]
    assert [(e.attributes or {})["error"] for e in failures] == ["RateLimitError"]
    # Each attempt has its own span under the route span, named after its deployment.
    assert route.context is not None
    children = [s for s in finished if s.parent is not None and s.parent.span_id == route.context.span_id]
    assert sorted(s.name for s in children) == ["chat s1", "chat s2"]


async def test_async_concurrent_calls_survive_an_outage(emulator: Any) -> None:
    router = emu_router(
        {"chat": emu_pool(emulator, "a1", "a2", "a3")},
        breaker={"failure_threshold": 2, "open_seconds": 30, "cooldown_base": 0.01},
    )
    emulator.set_outage("a2")
    rc = RoutedChat(router)
    env = ChatEnv(policy=RetryPolicy(), tracer=get_tracer())

    async def one(i: int) -> str:
        flow, cur = rc.generate(env, normalize_messages(f"q{i}"), ChatOptions())
        return (await drive_async(flow, rc.perform_async(cur))).deployment

    try:
        served = await asyncio.gather(*(one(i) for i in range(30)))
    finally:
        await rc.aclose()
    assert set(served) <= {"a1", "a3"}
    assert len(served) == 30


def test_stream_opening_fails_over_and_names_the_streaming_deployment(emulator: Any) -> None:
    router = emu_router(
        {"chat": emu_pool(emulator, "st1", "st2", st1={"weight": 1000}, st2={"weight": 0.001})}
    )
    emulator.fault("st1", Fault.server_error(503, times=1))
    rc = RoutedChat(router)
    env = ChatEnv(policy=RetryPolicy(), tracer=get_tracer())
    span = trace.INVALID_SPAN  # what a client passes when nothing records
    flow, current = rc.open_stream(env, normalize_messages("stream please"), ChatOptions(), span=span)
    sdk_stream, _headers = drive(flow, rc.perform_sync(current))
    try:
        text = "".join(chunk.choices[0].delta.content or "" for chunk in sdk_stream if chunk.choices)
    finally:
        sdk_stream.close()
        rc.close()
    assert current.attempt is not None
    assert current.attempt.deployment.name == "st2"
    assert "st2" in text
    assert statuses(emulator, "st1") == [503]
