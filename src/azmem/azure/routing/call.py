"""One routed call: the state machine behind :meth:`Router.begin`.

It holds what one logical request has been through (attempts, the deployments it may no
longer use, the fallback pools it moved to, what happened where) and answers the driver's
:meth:`Call.next` from the router's shared state. All methods run under the router's lock
and do no I/O besides the limiter's ledger.
"""

from __future__ import annotations

import bisect
import itertools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from azmem.azure.metrics import record_limiter_full, record_retry, record_wait
from azmem.azure.routing.decisions import (
    Attempt,
    Decision,
    DeploymentStats,
    GiveUp,
    Requirements,
    Wait,
    _Entry,
)
from azmem.azure.routing.errors import NoDeploymentAvailableError
from azmem.azure.routing.limiter import Grant
from azmem.azure.routing.strategies import order_candidates
from azmem.errors import (
    AuthenticationError,
    AzmemError,
    ContentFilterError,
    ContextLengthError,
    DeploymentNotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
)

if TYPE_CHECKING:
    import random
    import threading

    from azmem.azure.routing.clock import Clock
    from azmem.azure.routing.estimate import EstimateCorrector
    from azmem.azure.routing.limiter import Ledger
    from azmem.azure.routing.pool import RoutingConfig
    from azmem.azure.routing.strategies import Candidate

__all__ = ["Call", "RouterState"]


class RouterState(Protocol):
    """What a call reads and updates of the router that began it (shared by every call).

    A protocol rather than the Router class, so this module does not import the router
    that imports it; :class:`azmem.azure.routing.router.Router` is the implementation.
    """

    config: RoutingConfig
    clock: Clock
    ledger: Ledger | None
    rng: random.Random
    corrector: EstimateCorrector
    lock: threading.RLock
    waiters: dict[str, dict[int, float]]
    stats_by_key: dict[str, DeploymentStats]

    def pool_entries(self, model: str) -> list[_Entry]: ...
    def reservation(self, req: Requirements) -> int: ...
    def candidates(self, entries: list[_Entry], now: float) -> list[Candidate]: ...
    def observe_headers(
        self, e: _Entry, st: DeploymentStats, headers: Mapping[str, str] | None, now: float
    ) -> None: ...


logger = logging.getLogger("azmem.routing")

_OUT_ERRORS = (AuthenticationError, PermissionDeniedError, DeploymentNotFoundError)


def _describe(error: AzmemError) -> str:
    parts = [type(error).__name__]
    if error.status_code:
        parts.append(str(error.status_code))
    if error.retry_after is not None:
        parts.append(f"retry after {error.retry_after:g}s")
    return " ".join(parts)


@dataclass
class _Trail:
    """What happened on each deployment during one call, for the final error."""

    events: dict[str, list[str]] = field(default_factory=dict)

    def add(self, label: str, text: str) -> None:
        events = self.events.setdefault(label, [])
        if not events or events[-1] != text:
            events.append(text)

    def summary(self) -> str:
        return "; ".join(f"{label}: {', '.join(ev)}" for label, ev in self.events.items())


class Call:
    """One logical request's journey across deployments (and fallback models)."""

    def __init__(self, router: RouterState, model: str, requirements: Requirements) -> None:
        self.router = router
        self.requested_model = model
        self.model = model
        self.requirements = requirements
        self.started = router.clock.now()
        self.attempts = 0
        self.trail = _Trail()
        self.visited: list[str] = [model]
        self.fallback: str | None = None
        self._excluded: dict[str, str] = {}  # label -> why, for this call only
        self._min_context = 0
        self._last_error: AzmemError | None = None
        self._fatal: AzmemError | None = None
        self._waiting: str | None = None
        self._last_entry: _Entry | None = None  # of the attempt before, for the retry metric
        cfg = router.config
        reach = len(router.pool_entries(model)) + sum(
            len(router.pool_entries(m))
            for table in (cfg.fallbacks.general, cfg.fallbacks.context_window, cfg.fallbacks.content_filter)
            for m in table.get(model, [])
        )
        self.max_attempts = cfg.max_attempts or max(4, 2 * reach)
        self.reservation = router.reservation(requirements)

    # ------------------------------------------------------------------ deciding

    def next(self) -> Decision:
        r = self.router
        with r.lock:
            if self._waiting is not None:
                r.waiters.get(self._waiting, {}).pop(id(self), None)
                self._waiting = None
            if self._fatal is not None:
                return GiveUp(self._finish(self._fatal))
            now = r.clock.now()
            if self.attempts >= self.max_attempts:
                return self._give_up(f"attempt budget of {self.max_attempts} spent")
            if r.config.deadline is not None and now - self.started >= r.config.deadline:
                return self._give_up(f"deadline of {r.config.deadline:g}s passed")
            while True:
                decision = self._decide_in_pool(now)
                if decision is not None:
                    return decision

    def _switch(self, kind: str, *, reason: str) -> bool:
        table: dict[str, list[str]] = getattr(self.router.config.fallbacks, kind)
        for target in table.get(self.model, []):
            if target not in self.visited:
                logger.warning(
                    "routing: falling back from '%s' to '%s' (%s: %s)", self.model, target, kind, reason
                )
                self.trail.add(self.model, f"fallback to '{target}' ({kind}: {reason})")
                self.visited.append(target)
                self.model = target
                self.fallback = kind
                return True
        return False

    def _decide_in_pool(self, now: float) -> Decision | None:
        """A decision for the current pool, or None after switching to a fallback pool."""
        r = self.router
        req = self.requirements
        entries = r.pool_entries(self.model)
        skipped: dict[str, str] = {}
        own = req.context_tokens if req.context_tokens is not None else self.reservation
        needed_context = max(self._min_context, own)
        capable: list[_Entry] = []
        for e in entries:
            why = self._excluded.get(e.label)
            if why is None and req.vision and not e.caps.vision:
                why = "no vision"
            if why is None and e.caps.context_window < needed_context:
                why = f"context window {e.caps.context_window} < {needed_context} tokens needed"
            if why is None:
                capable.append(e)
            else:
                skipped[e.label] = why
        if req.json_schema and any(e.caps.json_schema for e in capable):
            for e in capable:
                if not e.caps.json_schema:
                    skipped[e.label] = "no json_schema"
            capable = [e for e in capable if e.caps.json_schema]
        if not capable:
            for label, why in skipped.items():
                self.trail.add(label, f"skipped ({why})")
            too_small = any("context window" in why for why in skipped.values())
            if too_small and self._switch("context_window", reason="prompt larger than every context window"):
                return None
            if self._switch("general", reason="no deployment fits the request"):
                return None
            if too_small:
                return GiveUp(
                    self._finish(
                        self._last_error
                        if isinstance(self._last_error, ContextLengthError)
                        else ContextLengthError(
                            f"The request (about {needed_context} tokens with its output budget) is larger "
                            f"than the context window of every deployment of '{self.model}'.",
                            error_code="context_length_exceeded",
                        )
                    )
                )
            return self._give_up("no deployment has the capabilities the request needs")

        earliest: tuple[float, str] | None = None
        full: list[_Entry] = []
        for tier in sorted({e.spec.priority for e in capable}):
            usable: list[_Entry] = []
            for e in (e for e in capable if e.spec.priority == tier):
                st = r.stats_by_key[e.spec.limiter_key]
                why = st.health.skip_reason(now)
                if why is None:
                    usable.append(e)
                    continue
                skipped[e.label] = why
                ready = st.health.ready_at(now)
                if ready is not None and (earliest is None or ready < earliest[0]):
                    earliest = (ready, e.label)
            by_name = {e.spec.name: e for e in usable}
            strategy = r.config.pools[self.model].strategy
            for cand in order_candidates(strategy, r.candidates(usable, now), r.rng):
                e = by_name[cand.name]
                grant: Grant | None = None
                if r.ledger is not None and (e.spec.tpm or e.spec.rpm):
                    got = r.ledger.acquire(
                        e.spec.limiter_key, self.reservation, tpm=e.spec.tpm, rpm=e.spec.rpm, now=now
                    )
                    if not isinstance(got, Grant):
                        skipped[e.label] = f"full for {got:.1f}s (client-side TPM/RPM limit)"
                        full.append(e)
                        record_limiter_full(deployment=e.spec.deployment_name, route=e.label)
                        continue
                    grant = got
                return self._start(e, grant, skipped, now)

        limited = False
        if full:
            slot = self._queue_slot(full, now)
            limited = earliest is None or slot <= earliest
            earliest = slot if earliest is None else min(earliest, slot)
        if earliest is None:
            for label, why in skipped.items():
                self.trail.add(label, f"skipped ({why})")
            if self._switch("general", reason="every deployment is out"):
                return None
            return self._give_up("every deployment is out")
        wait = earliest[0] - now
        fallbacks = r.config.fallbacks
        if wait >= fallbacks.general_after and self._switch(
            "general", reason=f"all deployments cooling or full for at least {wait:.1f}s"
        ):
            return None
        if wait > r.config.max_wait:
            for label, why in skipped.items():
                self.trail.add(label, f"skipped ({why})")
            return self._give_up(
                f"the earliest deployment recovers in {wait:.0f}s, beyond max_wait={r.config.max_wait:g}s",
                retry_after=wait,
            )
        if r.config.deadline is not None and now + wait - self.started > r.config.deadline:
            return self._give_up(f"waiting {wait:.1f}s would pass the deadline of {r.config.deadline:g}s")
        r.waiters.setdefault(self.model, {})[id(self)] = earliest[0]
        self._waiting = self.model
        record_wait(
            pool=self.model, route=earliest[1], seconds=wait, reason="limiter" if limited else "cooldown"
        )
        return Wait(wait, earliest[1], skipped)

    def _queue_slot(self, full: list[_Entry], now: float) -> tuple[float, str]:
        """When this call's turn comes on the full deployments, counting the calls already waiting.

        Every waiter told "the earliest grant leaves at t" would wake at t together, one would
        get the slot and the rest would ask again, over and over: a herd that burns the CPU
        the requests themselves need. Planning with the queue ahead spreads the wake-ups over
        the moments grants actually leave the window.
        """
        r = self.router
        assert r.ledger is not None
        waiting = r.waiters.get(self.model, {})
        ahead = sum(1 for cid, at in waiting.items() if cid != id(self) and at >= now - 1.0)
        need = ahead + 1
        window = r.ledger.window
        plans = []
        for e in full:
            view = r.ledger.view(e.spec.limiter_key, now=now, limit=4 * need + 64)
            expiries = [g.t + window for g in view.oldest]
            freed_tokens = list(itertools.accumulate((g.tokens for g in view.oldest), initial=0))
            freed_requests = list(itertools.accumulate((g.requests for g in view.oldest), initial=0))
            plans.append((e, view, expiries, freed_tokens, freed_requests))

        def fitting(at: float) -> int:
            total = 0
            for e, view, expiries, freed_tokens, freed_requests in plans:
                j = bisect.bisect_right(expiries, at)
                by_tokens = (
                    need
                    if not e.spec.tpm
                    else ((e.spec.tpm - view.used_tokens + freed_tokens[j]) // max(self.reservation, 1))
                )
                by_requests = need if not e.spec.rpm else e.spec.rpm - view.used_requests + freed_requests[j]
                total += max(0, min(by_tokens, by_requests))
            return total

        for at, label in sorted((t, p[0].label) for p in plans for t in p[2]):
            if fitting(at) >= need:
                return (max(at, now), label)
        return (now + window, full[0].label)

    def close(self) -> None:
        """Leave the wait queue (the driver calls this when the call ends, however it ends)."""
        if self._waiting is not None:
            with self.router.lock:
                self.router.waiters.get(self._waiting, {}).pop(id(self), None)
            self._waiting = None

    def _start(self, e: _Entry, grant: Grant | None, skipped: dict[str, str], now: float) -> Attempt:
        st = self.router.stats_by_key[e.spec.limiter_key]
        probe = st.health.on_start(now)
        st.inflight += 1
        before = self._last_entry
        if before is not None:  # an attempt before this one failed: a retry
            last = self._last_error
            record_retry(
                deployment=before.spec.deployment_name,
                route=before.label,
                pool=self.model,
                error=type(last).__name__ if last is not None else None,
            )
        self._last_entry = e
        self.attempts += 1
        skipped.pop(e.label, None)
        return Attempt(self.model, e.spec, self.attempts, grant, probe, skipped, self.fallback)

    # ------------------------------------------------------------------ outcomes

    def _entry(self, attempt: Attempt) -> tuple[_Entry, DeploymentStats]:
        entries = self.router.pool_entries(attempt.model)
        entry = next(e for e in entries if e.spec.name == attempt.deployment.name)
        return entry, self.router.stats_by_key[attempt.deployment.limiter_key]

    def succeeded(
        self,
        attempt: Attempt,
        *,
        latency: float | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        r = self.router
        with r.lock:
            e, st = self._entry(attempt)
            now = r.clock.now()
            st.inflight -= 1
            st.successes += 1
            st.health.on_success()
            if latency is not None:
                a = r.config.latency_alpha
                st.latency = latency if st.latency is None else st.latency + a * (latency - st.latency)
            if input_tokens is not None:
                st.input_tokens += input_tokens
                r.corrector.observe(self.requirements.prompt_tokens, input_tokens)
            st.output_tokens += output_tokens or 0
            if attempt.grant is not None and r.ledger is not None and input_tokens is not None:
                # What the service counted: the prompt and the output budget it had to reserve.
                budget = self.requirements.max_output_tokens
                counted = input_tokens + (budget if budget is not None else (output_tokens or 0))
                r.ledger.settle(attempt.grant, counted)
            r.observe_headers(e, st, headers, now)
            self.trail.add(attempt.label, f"attempt {attempt.number} ok")

    def failed(
        self, attempt: Attempt, error: AzmemError, *, headers: Mapping[str, str] | None = None
    ) -> None:
        r = self.router
        with r.lock:
            e, st = self._entry(attempt)
            now = r.clock.now()
            st.inflight -= 1
            st.last_error = _describe(error)
            if attempt.grant is not None and r.ledger is not None:
                r.ledger.release(attempt.grant)
            self._last_error = error
            text = f"attempt {attempt.number} {_describe(error)}"
            if isinstance(error, RateLimitError | QuotaExceededError):
                st.throttles += 1
                cool = st.health.on_throttle(now, error.retry_after)
                text += f", cooling {cool:.1f}s"
                r.observe_headers(e, st, headers, now)
            elif isinstance(error, _OUT_ERRORS):
                st.failures += 1
                hint = error.suggestion or error.message
                reason = f"{type(error).__name__} ({error.status_code or '-'}): {hint}"
                st.health.disable(reason)
                logger.error(
                    "routing: deployment %s taken out of pool '%s' until restart: %s",
                    attempt.label,
                    attempt.model,
                    error.message,
                )
                text += ", taken out"
            elif error.retryable:
                st.failures += 1
                cool = st.health.on_failure(now, error.retry_after)
                text += f", out for {cool:.1f}s" + (
                    f" (breaker {st.health.breaker})" if st.health.breaker != "closed" else ""
                )
            elif isinstance(error, ContextLengthError):
                st.health.on_neutral()
                self._min_context = max(self._min_context, e.caps.context_window + 1)
                self._excluded[e.label] = "prompt longer than its context window"
            elif isinstance(error, ContentFilterError):
                st.health.on_neutral()
                self.trail.add(attempt.label, text)
                if not self._switch("content_filter", reason="content filter rejected the request"):
                    self._fatal = error
                return
            else:
                st.health.on_neutral()
                self._fatal = error
            self.trail.add(attempt.label, text)

    def abandoned(self, attempt: Attempt) -> None:
        """The attempt ended without an outcome (cancelled, or a bug outside azmem's errors)."""
        r = self.router
        with r.lock:
            _, st = self._entry(attempt)
            st.inflight -= 1
            st.health.on_abandoned()
            if attempt.grant is not None and r.ledger is not None:
                r.ledger.release(attempt.grant)

    # ------------------------------------------------------------------ ending

    def _finish(self, error: AzmemError) -> AzmemError:
        summary = self.trail.summary()
        error.details["routing"] = {
            "model": self.requested_model,
            "models_tried": list(self.visited),
            "attempts": self.attempts,
            "deployments": {label: list(ev) for label, ev in self.trail.events.items()},
        }
        if summary and "Routing:" not in error.message:
            error.message = f"{error.message}\nRouting: {summary}"
        return error

    def _give_up(self, why: str, *, retry_after: float | None = None) -> GiveUp:
        """The last service error (type kept, so callers can catch it), or our own when none was sent."""
        self.trail.add("call", why)
        last = self._last_error
        err: AzmemError
        if last is not None and retry_after is not None and isinstance(last, RateLimitError):
            err = QuotaExceededError(
                f"Every deployment of '{self.requested_model}' is throttled: {why}.",
                retry_after=retry_after,
                error_code=last.error_code,
                status_code=last.status_code,
                debug_info=last.debug_info,
            )
        elif last is not None:
            err = last
        else:
            err = NoDeploymentAvailableError(
                f"No deployment of '{self.requested_model}' could take the request: {why}.",
                error_code="no_deployment_available",
                retry_after=retry_after,
            )
        return GiveUp(self._finish(err))
