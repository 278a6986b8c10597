"""Cooldowns, the circuit breaker and taking a deployment out."""

from __future__ import annotations

import pytest

from azmem.azure.routing import BreakerPolicy, BreakerState, Health


def make(**kw: float) -> Health:
    return Health(
        BreakerPolicy(
            failure_threshold=3,
            open_seconds=10.0,
            max_open_seconds=25.0,
            cooldown_base=0.5,
            cooldown_max=4.0,
            **kw,
        )
    )  # type: ignore[arg-type]


def test_throttle_honours_retry_after_and_never_opens_the_breaker() -> None:
    h = make()
    for _ in range(5):
        assert h.on_throttle(100.0, retry_after=6.0) == 6.0
    assert h.breaker is BreakerState.CLOSED
    assert h.skip_reason(103.0) == "cooling down for 3.0s"
    assert h.ready_at(103.0) == pytest.approx(106.0)
    assert h.skip_reason(106.0) is None


def test_throttle_without_retry_after_backs_off_adaptively() -> None:
    h = make()
    delays = []
    now = 0.0
    for _ in range(5):
        delays.append(h.on_throttle(now, None))
        now += delays[-1]  # each 429 arrives after the previous cooldown ended
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0]
    h.on_success()
    assert h.on_throttle(now, None) == 0.5


def test_a_burst_of_429s_from_one_episode_backs_off_once() -> None:
    h = make()
    assert h.on_throttle(0.0, None) == 0.5
    for _ in range(30):
        assert h.on_throttle(0.1, None) == pytest.approx(0.4)
    assert h.skip_reason(0.5) is None


def test_breaker_opens_after_consecutive_failures_then_probes_once() -> None:
    h = make()
    h.on_failure(0.0, None)
    h.on_failure(0.0, None)
    assert h.breaker is BreakerState.CLOSED
    out = h.on_failure(0.0, None)
    assert h.breaker is BreakerState.OPEN
    assert out == 10.0
    assert h.skip_reason(5.0) == "breaker open for 5.0s"
    # After open_seconds: half-open, one probe allowed, the others wait for its verdict.
    assert h.skip_reason(10.0) is None
    assert h.breaker is BreakerState.HALF_OPEN
    assert h.on_start(10.0) is True
    assert h.skip_reason(10.0) == "breaker half-open, probe in flight"
    h.on_success()
    assert h.breaker is BreakerState.CLOSED
    assert h.skip_reason(10.0) is None
    assert h.on_start(10.0) is False


def test_failed_probe_reopens_for_twice_as_long_capped() -> None:
    h = make()
    for _ in range(3):
        h.on_failure(0.0, None)
    assert h.skip_reason(10.0) is None
    h.on_start(10.0)
    h.on_failure(10.0, None)
    assert h.breaker is BreakerState.OPEN
    assert h.open_until == pytest.approx(30.0)
    h.skip_reason(30.0)
    h.on_start(30.0)
    h.on_failure(30.0, None)
    assert h.open_until == pytest.approx(55.0)  # 40 capped at 25


def test_success_resets_the_failure_count() -> None:
    h = make()
    h.on_failure(0.0, None)
    h.on_failure(0.0, None)
    h.on_success()
    h.on_failure(0.0, None)
    assert h.breaker is BreakerState.CLOSED


def test_a_throttled_probe_proves_the_deployment_is_up() -> None:
    h = make()
    for _ in range(3):
        h.on_failure(0.0, None)
    h.skip_reason(10.0)
    h.on_start(10.0)
    h.on_throttle(10.0, 2.0)
    assert h.breaker is BreakerState.CLOSED
    assert h.skip_reason(11.0) == "cooling down for 1.0s"


def test_disabled_never_recovers_until_reset() -> None:
    h = make()
    h.disable("AuthenticationError (401)")
    assert h.skip_reason(1e9) == "out: AuthenticationError (401)"
    assert h.ready_at(0.0) is None
    h.reset()
    assert h.skip_reason(0.0) is None


def test_failures_from_requests_sent_before_the_breaker_opened_do_not_extend_it() -> None:
    h = make()
    for _ in range(3):
        h.on_failure(0.0, None)
    assert h.open_until == pytest.approx(10.0)
    for _ in range(60):  # the rest of an in-flight burst reporting the same outage
        assert h.on_failure(0.5, None) == pytest.approx(9.5)
    assert h.open_until == pytest.approx(10.0)
    assert h.cooldown_until < 10.0
    assert h.skip_reason(10.0) is None  # the probe goes out on time


def test_retry_after_on_a_server_error_is_honoured() -> None:
    h = make()
    assert h.on_failure(0.0, 7.0) == pytest.approx(7.0)
    assert h.skip_reason(6.0) == "cooling down for 1.0s"
