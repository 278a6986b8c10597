"""Per-deployment health: cooldowns, a circuit breaker, and taking a deployment out.

Three different facts, kept apart because they call for different reactions:

* throttled (429): the deployment works but is full. It cools down for the service's
  Retry-After (or an adaptive backoff) and does not count towards the breaker: a busy
  deployment is not a broken one.
* failing (5xx, timeouts, connection errors): it cools down briefly, and after
  ``failure_threshold`` consecutive failures the breaker opens. After ``open_seconds`` one
  probe request is let through (half-open); success closes the breaker, failure reopens it
  for twice as long (capped), so a region that is down costs one request per interval.
* misconfigured (401/403/404): retrying cannot help, so the deployment is taken out until
  the process restarts (or :meth:`Health.reset`), and the router logs it loudly.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from azmem.azure.metrics import record_breaker_transition, record_cooldown
from azmem.azure.routing.pool import BreakerPolicy

__all__ = ["BreakerState", "Health"]


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class Health:
    policy: BreakerPolicy
    breaker: BreakerState = BreakerState.CLOSED
    consecutive_failures: int = 0
    consecutive_throttles: int = 0
    cooldown_until: float = 0.0
    open_until: float = 0.0
    open_seconds: float = 0.0
    probe_in_flight: bool = False
    disabled: str | None = None
    name: str = ""
    """The Azure deployment name, for the metrics (``azmem.deployment``)."""
    route: str = ""
    """The pool entry's ``pool/name`` label, for the metrics (``azmem.route.deployment``)."""

    def _set_breaker(self, state: BreakerState) -> None:
        """Every breaker change goes through here, so each one is counted in the metrics."""
        if state is not self.breaker:
            record_breaker_transition(
                deployment=self.name, route=self.route, previous=self.breaker.value, state=state.value
            )
            self.breaker = state

    def _refresh(self, now: float) -> None:
        if self.breaker is BreakerState.OPEN and now >= self.open_until:
            self._set_breaker(BreakerState.HALF_OPEN)
            self.probe_in_flight = False

    def skip_reason(self, now: float) -> str | None:
        """None when a request may be sent now; otherwise why not, for spans and error summaries."""
        self._refresh(now)
        if self.disabled:
            return f"out: {self.disabled}"
        if self.breaker is BreakerState.OPEN:
            return f"breaker open for {self.open_until - now:.1f}s"
        if self.breaker is BreakerState.HALF_OPEN and self.probe_in_flight:
            return "breaker half-open, probe in flight"
        if now < self.cooldown_until:
            return f"cooling down for {self.cooldown_until - now:.1f}s"
        return None

    def ready_at(self, now: float) -> float | None:
        """When this deployment can take a request again; None if never (taken out).

        A half-open breaker with its probe in flight is reported as "soon" (one cooldown base)
        since the probe's outcome, not time, decides.
        """
        self._refresh(now)
        if self.disabled:
            return None
        at = max(now, self.cooldown_until)
        if self.breaker is BreakerState.OPEN:
            at = max(at, self.open_until)
        elif self.breaker is BreakerState.HALF_OPEN and self.probe_in_flight:
            at = max(at, now + max(self.policy.cooldown_base, 0.05))
        return at

    def on_start(self, now: float) -> bool:
        """Mark an attempt as started; True when it is the half-open probe."""
        self._refresh(now)
        if self.breaker is BreakerState.HALF_OPEN:
            self.probe_in_flight = True
            return True
        return False

    def on_success(self) -> None:
        self._set_breaker(BreakerState.CLOSED)
        self.consecutive_failures = 0
        self.consecutive_throttles = 0
        self.open_seconds = 0.0
        self.probe_in_flight = False

    def on_neutral(self) -> None:
        """The deployment answered, but the request was at fault (400s): it is alive."""
        if self.breaker is BreakerState.HALF_OPEN:
            self.on_success()
        self.consecutive_failures = 0

    def _backoff(self, n: int) -> float:
        return float(min(self.policy.cooldown_max, self.policy.cooldown_base * 2.0 ** max(0, n - 1)))

    def on_throttle(self, now: float, retry_after: float | None) -> float:
        """A 429: cool down for Retry-After, else an adaptive backoff. Returns the cooldown.

        Without a Retry-After, 429s that arrive while already cooling come from requests sent
        before the first one: the same episode, so they do not double the backoff again.
        """
        if self.breaker is BreakerState.HALF_OPEN:
            # The probe reached a live deployment: it is up, merely full.
            self._set_breaker(BreakerState.CLOSED)
            self.probe_in_flight = False
            self.consecutive_failures = 0
        if retry_after is None and now < self.cooldown_until:
            return self.cooldown_until - now
        self.consecutive_throttles += 1
        delay = retry_after if retry_after is not None else self._backoff(self.consecutive_throttles)
        self.cooldown_until = max(self.cooldown_until, now + delay)
        record_cooldown(deployment=self.name, route=self.route, seconds=delay, reason="throttle")
        return delay

    def on_failure(self, now: float, retry_after: float | None) -> float:
        """A 5xx, timeout or connection failure. Returns how long the deployment is out.

        Failures that arrive while the breaker is already open are requests sent before it
        opened, reporting the same outage: they neither count nor lengthen anything, or a
        burst of 60 in-flight requests would push the cooldown to its maximum and keep a
        recovered region out long after it came back.
        """
        self._refresh(now)
        if self.breaker is BreakerState.OPEN:
            return self.open_until - now
        if retry_after is not None:
            self.cooldown_until = max(self.cooldown_until, now + retry_after)
        self.consecutive_failures += 1
        if self.breaker is BreakerState.HALF_OPEN:
            longer = max(self.open_seconds, self.policy.open_seconds) * 2
            self._open(now, min(self.policy.max_open_seconds, longer))
        elif self.consecutive_failures >= self.policy.failure_threshold:
            self._open(now, self.policy.open_seconds)
        else:
            backoff = self._backoff(self.consecutive_failures) if retry_after is None else retry_after
            self.cooldown_until = max(self.cooldown_until, now + backoff)
        out = max(self.cooldown_until, self.open_until) - now
        record_cooldown(deployment=self.name, route=self.route, seconds=out, reason="failure")
        return out

    def _open(self, now: float, seconds: float) -> None:
        self._set_breaker(BreakerState.OPEN)
        self.open_seconds = seconds
        self.open_until = now + seconds
        self.probe_in_flight = False

    def on_abandoned(self) -> None:
        """The attempt ended without an answer about the deployment (cancelled): free the probe slot."""
        self.probe_in_flight = False

    def disable(self, reason: str) -> None:
        self.disabled = reason

    def reset(self) -> None:
        self._set_breaker(BreakerState.CLOSED)
        self.consecutive_failures = self.consecutive_throttles = 0
        self.cooldown_until = self.open_until = self.open_seconds = 0.0
        self.probe_in_flight = False
        self.disabled = None
