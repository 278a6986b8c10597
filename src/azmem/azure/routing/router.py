"""The routing decision core: pure, I/O-free, shared by the sync and async clients.

A call is a small state machine (:class:`Call`). The driver asks :meth:`Call.next` what to
do and gets one of three answers:

* :class:`Attempt`: send now to this deployment (a limiter reservation is already held);
* :class:`Wait`: nothing can take the request now; sleep this long, then ask again (the
  earliest deployment to recover is named);
* :class:`GiveUp`: raise this error (it lists what happened on every deployment).

and reports each attempt's outcome with :meth:`Call.succeeded` or :meth:`Call.failed`. A
retryable failure cools the deployment down and the next :meth:`Call.next` picks another
one at once; waiting happens only when every deployment is cooling or full. Time comes
from an injected clock, so every rule is testable without sleeping.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azmem.azure.errors import (
    AuthenticationError,
    AzmemError,
    ContentFilterError,
    ContextLengthError,
    DeploymentNotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
)
from azmem.azure.routing.clock import Clock, SystemClock
from azmem.azure.routing.errors import NoDeploymentAvailableError
from azmem.azure.routing.estimate import EstimateCorrector
from azmem.azure.routing.health import Health
from azmem.azure.routing.limiter import Grant, Ledger, MemoryLedger, SQLiteLedger
from azmem.azure.routing.pool import DeploymentSpec, RoutingConfig
from azmem.azure.routing.strategies import Candidate, order_candidates
from azmem.azure.settings import Capabilities

__all__ = [
    "Attempt",
    "Call",
    "DeploymentStats",
    "GiveUp",
    "Requirements",
    "Router",
    "Wait",
    "default_capabilities_for",
]

logger = logging.getLogger("azmem.routing")

_OUT_ERRORS = (AuthenticationError, PermissionDeniedError, DeploymentNotFoundError)


@dataclass(frozen=True)
class Requirements:
    """What a request needs from a deployment, known before sending."""

    prompt_tokens: int = 0
    """Raw heuristic estimate (see :mod:`.estimate`); the router applies its learned correction."""
    max_output_tokens: int | None = None
    json_schema: bool = False
    """Prefer deployments with strict json_schema; if none has it, any will do (the LLM client
    falls back to json_object with the schema in the prompt)."""
    vision: bool = False
    context_tokens: int | None = None
    """What must fit one request's context window; default the whole reservation (prompt plus
    output budget). Embeddings set the largest single input: a call's inputs are batched."""


@dataclass(frozen=True)
class Attempt:
    model: str
    """The logical model (pool) this deployment belongs to; differs from the call's after a fallback."""
    deployment: DeploymentSpec
    number: int
    grant: Grant | None
    probe: bool
    skipped: Mapping[str, str]
    fallback: str | None = None
    """Which fallback brought the call to this pool ("general", "context_window", "content_filter")."""

    @property
    def label(self) -> str:
        return f"{self.model}/{self.deployment.name}"


@dataclass(frozen=True)
class Wait:
    seconds: float
    deployment: str
    """The deployment expected to recover first."""
    skipped: Mapping[str, str]


@dataclass(frozen=True)
class GiveUp:
    error: AzmemError


Decision = Attempt | Wait | GiveUp


@dataclass
class DeploymentStats:
    """Runtime facts about one Azure deployment, shared by every pool that lists it."""

    key: str
    health: Health
    inflight: int = 0
    latency: float | None = None
    successes: int = 0
    failures: int = 0
    throttles: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    server_remaining_tokens: int | None = None
    server_remaining_requests: int | None = None
    server_limit_tokens: int | None = None
    server_limit_requests: int | None = None
    server_seen_at: float = 0.0
    external_checked_at: float = float("-inf")
    last_error: str | None = None


@dataclass(frozen=True)
class _Entry:
    model: str
    spec: DeploymentSpec
    caps: Capabilities

    @property
    def label(self) -> str:
        return f"{self.model}/{self.spec.name}"


def default_capabilities_for(spec: DeploymentSpec) -> Capabilities:
    """Name-based defaults from the settings layer, then the pool entry's own overrides."""
    from azmem.azure.settings import AzureOpenAISettings

    settings = AzureOpenAISettings.model_validate(spec.settings)
    caps = settings.resolved_capabilities()
    overrides = {
        k: getattr(spec, k)
        for k in ("json_schema", "vision", "context_window", "reasoning")
        if getattr(spec, k) is not None
    }
    return caps.model_copy(update=overrides)


def _ledger_for(config: RoutingConfig) -> Ledger | None:
    spec = config.limiter
    limited = any(d.tpm or d.rpm for pool in config.pools.values() for d in pool.deployments)
    if spec.backend == "off" or not limited:
        return None  # nothing to count, so no file in the user's data directory either
    if spec.backend == "memory":
        return MemoryLedger(spec.window, spec.margin)
    return SQLiteLedger(spec.path, spec.window, spec.margin)


def _header_int(headers: Mapping[str, str] | None, name: str) -> int | None:
    if not headers:
        return None
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = int(float(str(raw)))
    except ValueError:
        return None
    return value if value >= 0 else None


class Router:
    """Pools, per-deployment health and the limiter; hands out :class:`Call` objects.

    One router is meant to live for the process (or at least as long as the clients using
    it) so what it learns about cooldowns, latency and quota is shared by every call.
    """

    def __init__(
        self,
        config: RoutingConfig | Mapping[str, Any] | None = None,
        *,
        clock: Clock | None = None,
        ledger: Ledger | bool | None = True,
        rng: random.Random | None = None,
        capabilities: Callable[[DeploymentSpec], Capabilities] = default_capabilities_for,
    ) -> None:
        self.config = RoutingConfig.load(config) if not isinstance(config, RoutingConfig) else config
        self.clock: Clock = clock or SystemClock()
        self.ledger: Ledger | None = _ledger_for(self.config) if ledger is True else (ledger or None)
        self.rng = rng or random.Random()
        self.corrector = EstimateCorrector()
        self._lock = threading.RLock()
        self._entries: dict[str, list[_Entry]] = {}
        self._stats: dict[str, DeploymentStats] = {}
        self._waiters: dict[str, dict[int, float]] = {}  # pool -> {call id: planned wake-up}
        for model, pool in self.config.pools.items():
            entries = []
            for spec in pool.deployments:
                entries.append(_Entry(model, spec, capabilities(spec)))
                if spec.limiter_key not in self._stats:
                    self._stats[spec.limiter_key] = DeploymentStats(
                        spec.limiter_key, Health(self.config.breaker)
                    )
            self._entries[model] = entries

    @classmethod
    def shared(cls, config: RoutingConfig | Mapping[str, Any] | str | Path | None = None) -> Router:
        """The process-wide router for this configuration.

        Clients built from settings call this, so two clients (or a client and an embedder)
        configured with the same pools share one view of cooldowns, breakers and latency
        instead of each rediscovering a dead region.
        """
        loaded = RoutingConfig.load(config)
        key = loaded.model_dump_json()
        with _SHARED_LOCK:
            router = _SHARED.get(key)
            if router is None:
                router = _SHARED[key] = cls(loaded)
            return router

    # ------------------------------------------------------------------ public API

    @property
    def models(self) -> list[str]:
        return list(self._entries)

    def deployments(self, model: str) -> list[DeploymentSpec]:
        return [e.spec for e in self._pool(model)]

    def stats(self, spec: DeploymentSpec) -> DeploymentStats:
        return self._stats[spec.limiter_key]

    def begin(self, model: str, requirements: Requirements | None = None) -> Call:
        self._pool(model)
        return Call(self, model, requirements or Requirements())

    def reset(self, model: str | None = None) -> None:
        """Forget cooldowns, open breakers and taken-out deployments (after fixing configuration)."""
        with self._lock:
            for model_name, entries in self._entries.items():
                if model is None or model_name == model:
                    for e in entries:
                        self._stats[e.spec.limiter_key].health.reset()

    def snapshot(self) -> list[dict[str, Any]]:
        """One JSON-safe row per deployment of each pool, for `azmem status` / `azmem doctor`."""
        now = self.clock.now()
        rows = []
        with self._lock:
            for model, entries in self._entries.items():
                strategy = self.config.pools[model].strategy
                for e in entries:
                    st = self._stats[e.spec.limiter_key]
                    reason = st.health.skip_reason(now)
                    used = self.ledger.used(e.spec.limiter_key, now=now) if self.ledger else (None, None)
                    rows.append(
                        {
                            "model": model,
                            "name": e.spec.name,
                            "strategy": strategy,
                            "endpoint": e.spec.settings.get("endpoint"),
                            "deployment": e.spec.settings.get("deployment"),
                            "region": e.spec.region,
                            "priority": e.spec.priority,
                            "weight": self._weight(e.spec),
                            "tpm": e.spec.tpm,
                            "rpm": e.spec.rpm,
                            "capabilities": e.caps.model_dump(),
                            "state": "out"
                            if st.health.disabled
                            else ("available" if reason is None else "cooling"),
                            "breaker": str(st.health.breaker),
                            "reason": reason,
                            "cooldown_remaining": max(0.0, (st.health.ready_at(now) or now) - now),
                            "inflight": st.inflight,
                            "latency_ms": None if st.latency is None else round(st.latency * 1000, 1),
                            "window_tokens": used[0],
                            "window_requests": used[1],
                            "server_remaining_tokens": st.server_remaining_tokens,
                            "server_remaining_requests": st.server_remaining_requests,
                            "successes": st.successes,
                            "failures": st.failures,
                            "throttles": st.throttles,
                            "input_tokens": st.input_tokens,
                            "output_tokens": st.output_tokens,
                            "last_error": st.last_error,
                        }
                    )
        return rows

    def status_lines(self) -> list[str]:
        """``azmem status``: one line per deployment."""
        lines = []
        for r in self.snapshot():
            quota = (
                f"{r['window_tokens']}/{r['tpm']} TPM" if r["tpm"] and r["window_tokens"] is not None else "-"
            )
            latency = f"{r['latency_ms']:.0f}ms" if r["latency_ms"] is not None else "-"
            lines.append(
                f"{r['model']}/{r['name']} [{r['region'] or '-'} p{r['priority']}] {r['state']}"
                f"{' (' + r['reason'] + ')' if r['reason'] else ''} breaker={r['breaker']} "
                f"ok={r['successes']} fail={r['failures']} 429={r['throttles']} inflight={r['inflight']} "
                f"latency={latency} window={quota}"
            )
        return lines

    # ------------------------------------------------------------------ internals

    def _pool(self, model: str) -> list[_Entry]:
        try:
            return self._entries[model]
        except KeyError:
            raise NoDeploymentAvailableError(
                f"No deployment pool named '{model}'; configured: {', '.join(self._entries) or 'none'}.",
                error_code="unknown_pool",
            ) from None

    @staticmethod
    def _weight(spec: DeploymentSpec) -> float:
        if spec.weight is not None:
            return spec.weight
        return float(spec.tpm) if spec.tpm else 1.0

    def _reservation(self, req: Requirements) -> int:
        completion = req.max_output_tokens
        if completion is None:
            completion = self.config.limiter.completion_tokens
        return self.corrector.correct(req.prompt_tokens) + completion

    def _candidates(self, entries: list[_Entry], now: float) -> list[Candidate]:
        limited = [e.spec.limiter_key for e in entries if e.spec.tpm or e.spec.rpm]
        used = self.ledger.used_many(limited, now=now) if self.ledger is not None and limited else {}
        return [self._candidate(e, now, used.get(e.spec.limiter_key)) for e in entries]

    def _candidate(self, e: _Entry, now: float, used: tuple[int, int] | None) -> Candidate:
        st = self._stats[e.spec.limiter_key]
        fractions: list[float] = []
        if used is not None:
            used_tokens, used_requests = used
            if e.spec.tpm:
                fractions.append(1.0 - used_tokens / e.spec.tpm)
            if e.spec.rpm:
                fractions.append(1.0 - used_requests / e.spec.rpm)
        elif st.server_seen_at and now - st.server_seen_at < self.config.limiter.window:
            for remaining, limit in (
                (st.server_remaining_tokens, st.server_limit_tokens),
                (st.server_remaining_requests, st.server_limit_requests),
            ):
                if remaining is not None and limit:
                    fractions.append(remaining / limit)
        return Candidate(
            name=e.spec.name,
            weight=self._weight(e.spec),
            inflight=st.inflight,
            latency=st.latency,
            headroom=max(0.0, min(fractions)) if fractions else None,
        )

    def _observe_headers(
        self, e: _Entry, st: DeploymentStats, headers: Mapping[str, str] | None, now: float
    ) -> None:
        """Take the service's view of remaining quota; charge the ledger for usage we did not send.

        The service's count can only exceed ours through traffic from elsewhere (another
        machine on the same deployment) or an underestimate; either way the ledger should
        carry it, or we would keep sending into 429s.
        """
        remaining_tokens = _header_int(headers, "x-ratelimit-remaining-tokens")
        remaining_requests = _header_int(headers, "x-ratelimit-remaining-requests")
        if remaining_tokens is None and remaining_requests is None:
            return
        limit_tokens = _header_int(headers, "x-ratelimit-limit-tokens") or e.spec.tpm
        limit_requests = _header_int(headers, "x-ratelimit-limit-requests") or e.spec.rpm
        st.server_remaining_tokens = remaining_tokens
        st.server_remaining_requests = remaining_requests
        st.server_limit_tokens = limit_tokens
        st.server_limit_requests = limit_requests
        st.server_seen_at = now
        if self.ledger is None or now - st.external_checked_at < 1.0:
            return  # once a second is plenty to notice traffic from elsewhere, and it costs a read
        st.external_checked_at = now
        used_tokens, used_requests = self.ledger.used(e.spec.limiter_key, now=now)
        extra_tokens = extra_requests = 0
        if limit_tokens and remaining_tokens is not None:
            gap = (limit_tokens - remaining_tokens) - used_tokens
            if gap > 0.05 * limit_tokens:
                extra_tokens = gap
        if limit_requests and remaining_requests is not None:
            gap = (limit_requests - remaining_requests) - used_requests
            if gap > max(1, 0.05 * limit_requests):
                extra_requests = gap
        if extra_tokens or extra_requests:
            self.ledger.record_external(e.spec.limiter_key, extra_tokens, extra_requests, now=now)


_SHARED: dict[str, Router] = {}
_SHARED_LOCK = threading.Lock()


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

    def __init__(self, router: Router, model: str, requirements: Requirements) -> None:
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
        cfg = router.config
        reach = len(router._pool(model)) + sum(
            len(router._pool(m))
            for table in (cfg.fallbacks.general, cfg.fallbacks.context_window, cfg.fallbacks.content_filter)
            for m in table.get(model, [])
        )
        self.max_attempts = cfg.max_attempts or max(4, 2 * reach)
        self.reservation = router._reservation(requirements)

    # ------------------------------------------------------------------ deciding

    def next(self) -> Decision:
        r = self.router
        with r._lock:
            if self._waiting is not None:
                r._waiters.get(self._waiting, {}).pop(id(self), None)
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
        entries = r._pool(self.model)
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
                st = r._stats[e.spec.limiter_key]
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
            for cand in order_candidates(strategy, r._candidates(usable, now), r.rng):
                e = by_name[cand.name]
                grant: Grant | None = None
                if r.ledger is not None and (e.spec.tpm or e.spec.rpm):
                    got = r.ledger.acquire(
                        e.spec.limiter_key, self.reservation, tpm=e.spec.tpm, rpm=e.spec.rpm, now=now
                    )
                    if not isinstance(got, Grant):
                        skipped[e.label] = f"full for {got:.1f}s (client-side TPM/RPM limit)"
                        full.append(e)
                        continue
                    grant = got
                return self._start(e, grant, skipped, now)

        if full:
            slot = self._queue_slot(full, now)
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
        r._waiters.setdefault(self.model, {})[id(self)] = earliest[0]
        self._waiting = self.model
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
        waiting = r._waiters.get(self.model, {})
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
            with self.router._lock:
                self.router._waiters.get(self._waiting, {}).pop(id(self), None)
            self._waiting = None

    def _start(self, e: _Entry, grant: Grant | None, skipped: dict[str, str], now: float) -> Attempt:
        st = self.router._stats[e.spec.limiter_key]
        probe = st.health.on_start(now)
        st.inflight += 1
        self.attempts += 1
        skipped.pop(e.label, None)
        return Attempt(self.model, e.spec, self.attempts, grant, probe, skipped, self.fallback)

    # ------------------------------------------------------------------ outcomes

    def _entry(self, attempt: Attempt) -> tuple[_Entry, DeploymentStats]:
        entry = next(e for e in self.router._pool(attempt.model) if e.spec.name == attempt.deployment.name)
        return entry, self.router._stats[attempt.deployment.limiter_key]

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
        with r._lock:
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
            r._observe_headers(e, st, headers, now)
            self.trail.add(attempt.label, f"attempt {attempt.number} ok")

    def failed(
        self, attempt: Attempt, error: AzmemError, *, headers: Mapping[str, str] | None = None
    ) -> None:
        r = self.router
        with r._lock:
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
                r._observe_headers(e, st, headers, now)
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
        with r._lock:
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
