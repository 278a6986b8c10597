"""Routing's instruments: breaker transitions, cooldowns, limiter waits and routed retries.

The router runs on a manual clock (no sleeping); the decisions are the router's own.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from azmem.azure.routing import Attempt, ManualClock, MemoryLedger, Requirements, Router, RoutingConfig, Wait
from azmem.azure.routing.health import Health
from azmem.azure.routing.pool import BreakerPolicy
from azmem.errors import RateLimitError, ServiceError

from .conftest import Metrics


def dep(name: str, **kw: Any) -> dict[str, Any]:
    # Two regions with the same Azure deployment name: the route label tells them apart.
    return {"name": name, "endpoint": f"https://{name}.example.com", "deployment": "gpt-4o", **kw}


def router(pools: dict[str, Any], **cfg: Any) -> tuple[Router, ManualClock]:
    clock = ManualClock()
    config = RoutingConfig.load({"pools": pools, **cfg})
    ledger = MemoryLedger(config.limiter.window, config.limiter.margin)
    return Router(config, clock=clock, ledger=ledger, rng=random.Random(7)), clock


def attempt(call: Any) -> Attempt:
    decision = call.next()
    assert isinstance(decision, Attempt), decision
    return decision


def test_breaker_transitions_and_failure_cooldowns(metrics: Metrics) -> None:
    health = Health(BreakerPolicy(failure_threshold=2, open_seconds=10), name="gpt-4o", route="chat/east")
    health.on_failure(0.0, None)  # a first failure: a short cooldown, breaker still closed
    health.on_failure(0.1, None)  # the second opens it
    assert health.skip_reason(20.0) is None  # open_seconds passed: half-open, a probe may go
    health.on_success()
    route = {"azmem.deployment": "gpt-4o", "azmem.route.deployment": "chat/east"}
    moves = {
        (p.attributes["azmem.breaker.previous"], p.attributes["azmem.breaker.state"]): p
        for p in metrics.points("azmem.routing.breaker.transitions")
    }
    assert {k: p.value for k, p in moves.items()} == {
        ("closed", "open"): 1,
        ("open", "half_open"): 1,
        ("half_open", "closed"): 1,
    }
    assert all(p.attributes.items() >= route.items() for p in moves.values())
    (cooldowns,) = metrics.points("azmem.routing.cooldown")
    assert cooldowns.attributes == {**route, "azmem.cooldown.reason": "failure"}
    assert cooldowns.count == 2
    assert cooldowns.value == pytest.approx(0.5 + 10.0)  # the first backoff, then the open breaker
    assert metrics.units["azmem.routing.cooldown"] == "s"


def test_a_429_cools_the_deployment_and_the_call_retries_on_another(metrics: Metrics) -> None:
    r, clock = router({"chat": [dep("east", weight=100), dep("west", weight=1)]})
    call = r.begin("chat")
    first = attempt(call)
    call.failed(first, RateLimitError("Rate limited", status_code=429, retry_after=6.0))
    second = attempt(call)
    assert second.deployment.name != first.deployment.name
    assert clock.slept == []
    (cooldown,) = metrics.points("azmem.routing.cooldown")
    assert cooldown.attributes == {
        "azmem.deployment": "gpt-4o",
        "azmem.route.deployment": first.label,
        "azmem.cooldown.reason": "throttle",
    }
    assert cooldown.value == 6.0
    (retry,) = metrics.points("azmem.client.retries")
    assert retry.attributes == {
        "azmem.deployment": "gpt-4o",
        "azmem.route.deployment": first.label,
        "azmem.route.model": "chat",
        "error.type": "RateLimitError",
    }


def test_a_full_limiter_is_counted_and_the_wait_says_why(metrics: Metrics) -> None:
    r, clock = router({"chat": dep("east", tpm=1000)}, limiter={"margin": 0.0, "completion_tokens": 0})
    for _ in range(2):
        attempt(r.begin("chat", Requirements(prompt_tokens=493)))
    call = r.begin("chat", Requirements(prompt_tokens=493))
    wait = call.next()
    assert isinstance(wait, Wait)
    (full,) = metrics.points("azmem.routing.limiter.full")
    assert full.attributes == {"azmem.deployment": "gpt-4o", "azmem.route.deployment": "chat/east"}
    (waited,) = metrics.points("azmem.routing.wait")
    assert waited.attributes == {
        "azmem.route.model": "chat",
        "azmem.route.deployment": "chat/east",
        "azmem.wait.reason": "limiter",
    }
    assert waited.value == pytest.approx(60.0)
    clock.advance(60.0)
    attempt(call)


def test_a_wait_for_a_cooling_deployment_says_cooldown(metrics: Metrics) -> None:
    r, _ = router({"chat": dep("east")})
    call = r.begin("chat")
    call.failed(attempt(call), ServiceError("boom", status_code=503))
    assert isinstance(call.next(), Wait)
    (waited,) = metrics.points("azmem.routing.wait")
    assert waited.attributes["azmem.wait.reason"] == "cooldown"
