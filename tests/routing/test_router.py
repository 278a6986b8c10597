"""The pure decision core: every routing, cooldown, breaker, fallback and limiter rule."""

from __future__ import annotations

import logging
from collections import Counter

import pytest
from routing_helpers import attempt, dep, make_router, server_error, throttled

from azmem.azure.routing import Attempt, GiveUp, NoDeploymentAvailableError, Requirements, Wait
from azmem.errors import (
    AuthenticationError,
    ContentFilterError,
    ContextLengthError,
    DeploymentNotFoundError,
    InvalidRequestError,
    QuotaExceededError,
    RateLimitError,
    ServiceError,
)


def test_a_single_deployment_is_just_used() -> None:
    router, _ = make_router({"chat": dep("only")})
    call = router.begin("chat")
    a = attempt(call)
    assert (a.model, a.deployment.name, a.number, a.probe) == ("chat", "only", 1, False)
    call.succeeded(a, latency=0.2, input_tokens=10, output_tokens=5)
    row = router.snapshot()[0]
    assert (row["successes"], row["input_tokens"], row["output_tokens"], row["latency_ms"]) == (
        1,
        10,
        5,
        200.0,
    )


def test_429_moves_the_request_to_another_deployment_at_once_without_waiting() -> None:
    router, clock = make_router(
        {"chat": [dep("a", weight=100), dep("b", weight=1)]},
    )
    router.config.pools["chat"]  # strategy quota_aware with no quotas -> weights decide
    call = router.begin("chat")
    first = attempt(call)
    call.failed(first, throttled(retry_after=6.0))
    second = attempt(call)
    assert second.deployment.name != first.deployment.name
    assert second.skipped == {f"chat/{first.deployment.name}": "cooling down for 6.0s"}
    assert clock.slept == []
    call.succeeded(second)
    # The throttled deployment stays cooling for the Retry-After for every other call too.
    later = router.begin("chat")
    assert attempt(later).deployment.name == second.deployment.name


def test_waits_only_when_all_are_cooling_and_for_the_earliest() -> None:
    router, clock = make_router({"chat": [dep("a"), dep("b")]})
    call = router.begin("chat")
    a1 = attempt(call)
    call.failed(a1, throttled(retry_after=8.0))
    a2 = attempt(call)
    call.failed(a2, throttled(retry_after=3.0))
    wait = call.next()
    assert isinstance(wait, Wait)
    assert wait.seconds == pytest.approx(3.0)
    assert wait.deployment == f"chat/{a2.deployment.name}"
    clock.advance(wait.seconds)
    a3 = attempt(call)
    assert a3.deployment.name == a2.deployment.name
    assert a3.number == 3


def test_server_errors_cool_adaptively_and_open_the_breaker() -> None:
    router, clock = make_router(
        {"chat": dep("only")},
        breaker={"failure_threshold": 2, "open_seconds": 10, "cooldown_base": 0.5},
        max_attempts=10,
    )
    call = router.begin("chat")
    call.failed(attempt(call), server_error())
    w = call.next()
    assert isinstance(w, Wait)
    assert w.seconds == pytest.approx(0.5)
    clock.advance(w.seconds)
    call.failed(attempt(call), server_error())
    w = call.next()
    assert isinstance(w, Wait)
    assert w.seconds == pytest.approx(10.0)
    assert "breaker open" in w.skipped["chat/only"]
    clock.advance(10.0)
    probe = attempt(call)
    assert probe.probe is True
    # While the probe is out, other calls do not pile onto the deployment.
    other = router.begin("chat")
    assert isinstance(other.next(), Wait)
    call.succeeded(probe)
    assert router.snapshot()[0]["breaker"] == "closed"
    assert isinstance(other.next(), Attempt)


@pytest.mark.parametrize(
    "error",
    [
        AuthenticationError("bad key", status_code=401),
        DeploymentNotFoundError("no such deployment", status_code=404),
    ],
)
def test_auth_and_not_found_take_the_deployment_out_loudly(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    router, clock = make_router({"chat": [dep("a", weight=1000), dep("b", weight=0.001)]})
    call = router.begin("chat")
    first = attempt(call)
    with caplog.at_level(logging.ERROR, logger="azmem.routing"):
        call.failed(first, error)  # type: ignore[arg-type]
    assert f"chat/{first.deployment.name} taken out" in caplog.text
    second = attempt(call)
    assert second.deployment.name != first.deployment.name
    call.succeeded(second)
    clock.advance(10_000)
    rows = {r["name"]: r for r in router.snapshot()}
    assert rows[first.deployment.name]["state"] == "out"
    assert rows[first.deployment.name]["reason"].startswith("out: ")
    # Taken out for good: later calls never try it.
    for _ in range(20):
        c = router.begin("chat")
        a = attempt(c)
        assert a.deployment.name == second.deployment.name
        c.succeeded(a)


def test_when_every_deployment_is_out_the_call_fails_listing_each() -> None:
    router, _ = make_router({"chat": [dep("a"), dep("b")]})
    call = router.begin("chat")
    call.failed(attempt(call), AuthenticationError("bad key a", status_code=401))
    call.failed(attempt(call), AuthenticationError("bad key b", status_code=401))
    end = call.next()
    assert isinstance(end, GiveUp)
    assert isinstance(end.error, AuthenticationError)
    routing = end.error.details["routing"]["deployments"]
    assert set(routing) >= {"chat/a", "chat/b"}
    assert "Routing: chat/" in str(end.error)
    # A fresh call sends nothing and says why.
    fresh = router.begin("chat").next()
    assert isinstance(fresh, GiveUp)
    assert isinstance(fresh.error, NoDeploymentAvailableError)
    assert "every deployment is out" in str(fresh.error)


def test_final_error_keeps_the_type_and_lists_what_happened_on_each_deployment() -> None:
    router, clock = make_router({"chat": [dep("a"), dep("b")]}, max_attempts=3)
    call = router.begin("chat")
    seen = []
    for err in (throttled(1.0), server_error()):
        a = attempt(call)
        seen.append(a.deployment.name)
        call.failed(a, err)
    w = call.next()
    assert isinstance(w, Wait)
    clock.advance(w.seconds)
    a = attempt(call)
    call.failed(a, throttled(1.0))
    end = call.next()
    assert isinstance(end, GiveUp)
    assert isinstance(end.error, RateLimitError)
    deployments = end.error.details["routing"]["deployments"]
    assert "attempt 1 RateLimitError 429 retry after 1s, cooling 1.0s" in deployments[f"chat/{seen[0]}"]
    assert any("ServiceError 503" in e for e in deployments[f"chat/{seen[1]}"])
    assert deployments["call"] == ["attempt budget of 3 spent"]


def test_deadline_ends_the_call() -> None:
    router, _clock = make_router({"chat": dep("a")}, deadline=5.0)
    call = router.begin("chat")
    call.failed(attempt(call), throttled(retry_after=10.0))
    end = call.next()
    assert isinstance(end, GiveUp)
    assert isinstance(end.error, RateLimitError)
    assert "deadline" in str(end.error)


def test_a_quota_wall_on_every_deployment_fails_at_once_instead_of_waiting_a_day() -> None:
    router, clock = make_router({"chat": [dep("a"), dep("b")]})
    call = router.begin("chat")
    call.failed(attempt(call), QuotaExceededError("quota", status_code=429, retry_after=86400.0))
    call.failed(attempt(call), throttled(retry_after=86400.0))
    end = call.next()
    assert isinstance(end, GiveUp)
    assert isinstance(end.error, QuotaExceededError)
    assert end.error.retry_after == pytest.approx(86400.0)
    assert clock.slept == []


def test_priority_tiers_lower_tier_only_when_every_higher_one_is_cooling_or_full() -> None:
    router, clock = make_router({"chat": [dep("p0a"), dep("p0b"), dep("p1", priority=1)]})
    used = Counter()
    for _ in range(30):
        c = router.begin("chat")
        a = attempt(c)
        used[a.deployment.name] += 1
        c.succeeded(a)
    assert used["p1"] == 0
    call = router.begin("chat")
    first = attempt(call)
    call.failed(first, throttled(5.0))
    second = attempt(call)
    assert second.deployment.priority == 0
    call.failed(second, throttled(5.0))
    third = attempt(call)
    assert third.deployment.name == "p1"
    clock.advance(5.0)
    c = router.begin("chat")
    assert attempt(c).deployment.priority == 0


def test_limiter_full_tier_spills_to_the_next_and_then_waits_for_the_window() -> None:
    router, clock = make_router(
        {"chat": [dep("small", tpm=1000), dep("spare", priority=1, tpm=1000)]},
        limiter={"margin": 0.0, "completion_tokens": 0},
    )
    names = []
    for _ in range(4):
        call = router.begin("chat", Requirements(prompt_tokens=493))  # 500 with no correction, 493+0 reserved
        a = attempt(call)
        names.append(a.deployment.name)
    assert names == ["small", "small", "spare", "spare"]
    call = router.begin("chat", Requirements(prompt_tokens=493))
    w = call.next()
    assert isinstance(w, Wait)
    assert w.seconds == pytest.approx(60.0)
    assert "client-side TPM/RPM limit" in w.skipped["chat/small"]
    clock.advance(60.0)
    assert attempt(call).deployment.name == "small"


def test_settle_with_reported_usage_frees_the_over_reservation() -> None:
    router, _clock = make_router(
        {"chat": dep("a", tpm=1000)}, limiter={"margin": 0.0, "completion_tokens": 0}
    )
    call = router.begin("chat", Requirements(prompt_tokens=900))
    a = attempt(call)
    assert router.snapshot()[0]["window_tokens"] == 900
    call.succeeded(a, input_tokens=300, output_tokens=20)
    assert router.snapshot()[0]["window_tokens"] == 320
    # A 429 or a failure gives the whole reservation back.
    call2 = router.begin("chat", Requirements(prompt_tokens=600))
    call2.failed(attempt(call2), server_error())
    assert router.snapshot()[0]["window_tokens"] == 320


def test_reservation_counts_the_output_budget_like_the_service() -> None:
    router, _ = make_router({"chat": dep("a", tpm=10_000)}, limiter={"completion_tokens": 100})
    call = router.begin("chat", Requirements(prompt_tokens=50, max_output_tokens=400))
    attempt(call)
    call2 = router.begin("chat", Requirements(prompt_tokens=50))
    attempt(call2)
    assert router.snapshot()[0]["window_tokens"] == 450 + 150


def test_rate_limit_headers_charge_usage_from_elsewhere() -> None:
    router, _clock = make_router(
        {"chat": dep("a", tpm=10_000)}, limiter={"completion_tokens": 0, "margin": 0.0}
    )
    call = router.begin("chat", Requirements(prompt_tokens=100))
    a = attempt(call)
    # The service has counted 9,000 tokens: another machine shares this deployment.
    call.succeeded(
        a,
        input_tokens=100,
        output_tokens=0,
        headers={"x-ratelimit-remaining-tokens": "1000", "x-ratelimit-limit-tokens": "10000"},
    )
    assert router.snapshot()[0]["window_tokens"] == 9_000
    assert router.snapshot()[0]["server_remaining_tokens"] == 1000
    big = router.begin("chat", Requirements(prompt_tokens=2_000))
    assert isinstance(big.next(), Wait)


def test_capability_filtering_vision_context_and_json_schema() -> None:
    router, _ = make_router(
        {
            "chat": [
                dep("old", deployment="gpt-35-turbo", context_window=4096),
                dep("vis", deployment="gpt-4o", context_window=128_000),
                dep("novis", deployment="gpt-4o", vision=False, json_schema=True, context_window=16_000),
            ]
        }
    )
    for _ in range(10):
        c = router.begin("chat", Requirements(vision=True))
        a = attempt(c)
        assert a.deployment.name == "vis"
        c.succeeded(a)
    for _ in range(10):
        c = router.begin("chat", Requirements(json_schema=True))
        a = attempt(c)
        assert a.deployment.name in {"vis", "novis"}
        assert a.skipped.get("chat/old") == "no json_schema"
        c.succeeded(a)
    c = router.begin("chat", Requirements(prompt_tokens=50_000))
    a = attempt(c)
    assert a.deployment.name == "vis"
    assert "context window 4096" in a.skipped["chat/old"]
    end = router.begin("chat", Requirements(prompt_tokens=200_000)).next()
    assert isinstance(end, GiveUp)
    assert isinstance(end.error, ContextLengthError)


def test_json_schema_is_a_preference_when_no_deployment_has_it() -> None:
    router, _ = make_router({"chat": dep("old", deployment="gpt-35-turbo")})
    a = attempt(router.begin("chat", Requirements(json_schema=True)))
    assert a.deployment.name == "old"


def test_vision_with_no_capable_deployment_sends_nothing() -> None:
    router, _ = make_router({"chat": dep("old", deployment="gpt-35-turbo")})
    end = router.begin("chat", Requirements(vision=True)).next()
    assert isinstance(end, GiveUp)
    assert isinstance(end.error, NoDeploymentAvailableError)
    assert end.error.details["routing"]["deployments"]["chat/old"] == ["skipped (no vision)"]


def test_context_length_error_moves_to_a_larger_window_in_the_pool() -> None:
    router, _ = make_router(
        {
            "chat": [
                dep("small", context_window=8000, weight=1000),
                dep("large", context_window=128_000, weight=0.001),
            ]
        }
    )
    call = router.begin("chat", Requirements(prompt_tokens=100))
    first = attempt(call)
    assert first.deployment.name == "small"
    call.failed(first, ContextLengthError("too long", status_code=400))
    second = attempt(call)
    assert second.deployment.name == "large"


def test_context_window_fallback_to_another_model() -> None:
    router, _ = make_router(
        {
            "chat": dep("a", context_window=8000),
            "chat-long": dep("long", deployment="gpt-4.1", context_window=1_000_000),
        },
        fallbacks={"context_window": {"chat": ["chat-long"]}},
    )
    a = attempt(router.begin("chat", Requirements(prompt_tokens=20_000)))
    assert (a.model, a.deployment.name, a.fallback) == ("chat-long", "long", "context_window")
    call = router.begin("chat", Requirements(prompt_tokens=100))
    first = attempt(call)
    call.failed(first, ContextLengthError("too long", status_code=400))
    assert attempt(call).model == "chat-long"


def test_context_window_fallback_is_opt_in() -> None:
    router, _ = make_router(
        {"chat": dep("a", context_window=8000), "chat-long": dep("long", context_window=10**6)}
    )
    call = router.begin("chat", Requirements(prompt_tokens=100))
    call.failed(attempt(call), ContextLengthError("too long", status_code=400))
    end = call.next()
    assert isinstance(end, GiveUp)
    assert isinstance(end.error, ContextLengthError)


def test_content_filter_fallback_is_opt_in() -> None:
    pools = {"chat": dep("a"), "chat-alt": dep("alt")}
    router, _ = make_router(pools, fallbacks={"content_filter": {"chat": ["chat-alt"]}})
    call = router.begin("chat")
    call.failed(attempt(call), ContentFilterError("blocked", status_code=400))
    a = attempt(call)
    assert (a.model, a.fallback) == ("chat-alt", "content_filter")
    plain, _ = make_router(pools)
    call = plain.begin("chat")
    call.failed(attempt(call), ContentFilterError("blocked", status_code=400))
    end = call.next()
    assert isinstance(end, GiveUp)
    assert isinstance(end.error, ContentFilterError)


def test_general_fallback_when_every_deployment_is_unavailable() -> None:
    router, clock = make_router(
        {"chat": [dep("a"), dep("b")], "chat-small": dep("mini", deployment="gpt-4o-mini")},
        fallbacks={"general": {"chat": ["chat-small"]}, "general_after": 1.0},
    )
    call = router.begin("chat")
    call.failed(attempt(call), throttled(30.0))
    call.failed(attempt(call), server_error())  # cools 0.5 s: short waits are waited out...
    w = call.next()
    assert isinstance(w, Wait)
    clock.advance(w.seconds)
    call.failed(attempt(call), server_error())  # ...now 1 s: the fallback is worth it
    a = attempt(call)
    assert (a.model, a.deployment.name, a.fallback) == ("chat-small", "mini", "general")
    call.succeeded(a)


def test_general_fallback_when_every_deployment_is_out() -> None:
    router, _ = make_router(
        {"chat": dep("a"), "chat-small": dep("mini")}, fallbacks={"general": {"chat": ["chat-small"]}}
    )
    call = router.begin("chat")
    call.failed(attempt(call), DeploymentNotFoundError("gone", status_code=404))
    assert attempt(call).model == "chat-small"


def test_request_errors_end_the_call_at_once_and_leave_the_deployment_healthy() -> None:
    router, _ = make_router({"chat": [dep("a"), dep("b")]})
    call = router.begin("chat")
    call.failed(attempt(call), InvalidRequestError("bad parameter", status_code=400))
    end = call.next()
    assert isinstance(end, GiveUp)
    assert isinstance(end.error, InvalidRequestError)
    assert all(r["state"] == "available" for r in router.snapshot())


def test_default_budget_is_two_attempts_per_deployment_in_reach() -> None:
    router, clock = make_router({"chat": [dep("a"), dep("b"), dep("c")]})
    call = router.begin("chat")
    assert call.max_attempts == 6
    n = 0
    while isinstance(d := call.next(), Attempt | Wait):
        if isinstance(d, Wait):
            clock.advance(d.seconds)
            continue
        n += 1
        call.failed(d, ServiceError("x", status_code=500))
    assert n == 6


def test_abandoned_attempt_frees_the_probe_slot_and_reservation() -> None:
    router, clock = make_router(
        {"chat": dep("a", tpm=1000)}, breaker={"failure_threshold": 1, "open_seconds": 1}
    )
    call = router.begin("chat", Requirements(prompt_tokens=100))
    call.failed(attempt(call), server_error())
    clock.advance(1.0)
    probe = attempt(call)
    assert probe.probe
    call.abandoned(probe)
    assert router.snapshot()[0]["inflight"] == 0
    assert attempt(router.begin("chat")).probe


def test_status_lines_and_reset() -> None:
    router, _ = make_router({"chat": [dep("a", region="eastus", tpm=1000)]})
    call = router.begin("chat")
    call.failed(attempt(call), AuthenticationError("bad", status_code=401))
    line = router.status_lines()[0]
    assert line.startswith("chat/a [eastus p0] out")
    router.reset()
    assert router.snapshot()[0]["state"] == "available"


def test_unknown_pool_names_the_configured_ones() -> None:
    router, _ = make_router({"chat": dep("a")})
    with pytest.raises(NoDeploymentAvailableError, match="configured: chat"):
        router.begin("chta")


def test_waiters_are_spread_over_the_moments_grants_leave_the_window() -> None:
    router, clock = make_router({"chat": dep("a", tpm=300)}, limiter={"margin": 0.0, "completion_tokens": 0})
    for _ in range(3):
        attempt(router.begin("chat", Requirements(prompt_tokens=93)))  # 100 tokens each, at t0, t0+1, t0+2
        clock.advance(1.0)
    waiters = [router.begin("chat", Requirements(prompt_tokens=93)) for _ in range(3)]
    waits = [w.next() for w in waiters]
    assert all(isinstance(w, Wait) for w in waits)
    # Not all at the first expiry (a herd), but one per grant that leaves: t0+60, t0+61, t0+62.
    assert [round(w.seconds, 6) for w in waits] == [57.0, 58.0, 59.0]  # type: ignore[union-attr]
    clock.advance(57.0)
    assert isinstance(waiters[0].next(), Attempt)
    # A caller that gives up leaves the queue, so it does not delay the ones behind it.
    waiters[1].close()
    late = router.begin("chat", Requirements(prompt_tokens=93)).next()
    assert isinstance(late, Wait)
    assert late.seconds == pytest.approx(2.0)  # behind waiters[2] only: t0+62 -> now is t0+60
