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

import random
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from azmem.azure.routing.call import Call
from azmem.azure.routing.clock import Clock, SystemClock
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
from azmem.azure.routing.estimate import EstimateCorrector
from azmem.azure.routing.health import Health
from azmem.azure.routing.limiter import Ledger, MemoryLedger, SQLiteLedger
from azmem.azure.routing.pool import DeploymentSpec, RoutingConfig
from azmem.azure.routing.strategies import Candidate
from azmem.azure.settings import AzmemSettings, Capabilities
from azmem.errors import ConfigurationError

__all__ = [
    "Attempt",
    "Call",
    "Decision",
    "DeploymentStats",
    "GiveUp",
    "Requirements",
    "Router",
    "Wait",
    "default_capabilities_for",
]


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
    if spec.backend == "postgres":
        if not spec.url:
            raise ConfigurationError(
                "routing.limiter.backend 'postgres' needs a database.",
                error_code="missing_limiter_url",
                suggestion="Set routing.limiter.url, or use a PostgreSQL store (its database is used).",
            )
        from azmem.azure.routing.pg_ledger import PostgresLedger

        return PostgresLedger(spec.url, spec.window, spec.margin)
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
        config: RoutingConfig | Mapping[str, Any] | str | Path | None = None,
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
        self.lock = threading.RLock()
        self._entries: dict[str, list[_Entry]] = {}
        self.stats_by_key: dict[str, DeploymentStats] = {}
        self.waiters: dict[str, dict[int, float]] = {}  # pool -> {call id: planned wake-up}
        for model, pool in self.config.pools.items():
            entries = []
            for spec in pool.deployments:
                entry = _Entry(model, spec, capabilities(spec))
                entries.append(entry)
                if spec.limiter_key not in self.stats_by_key:
                    health = Health(self.config.breaker, name=spec.deployment_name, route=entry.label)
                    self.stats_by_key[spec.limiter_key] = DeploymentStats(spec.limiter_key, health)
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

    @classmethod
    def from_settings(cls, settings: AzmemSettings | None) -> Router | None:
        """The shared router for ``settings.routing``, or None when no routing is configured.

        The one place clients built from settings (the LLM client, Memory's embedder)
        decide whether to route, so they all share one router per configuration.
        """
        if settings is None or not settings.routing:
            return None
        routing = dict(settings.routing)
        limiter = routing.get("limiter")
        pg_store = settings.store_url.startswith(("postgresql://", "postgres://"))
        if (
            isinstance(limiter, dict)
            and limiter.get("backend") == "postgres"
            and not limiter.get("url")
            and (pg_store)
        ):
            routing["limiter"] = {**limiter, "url": settings.store_url}  # one database for both
        return cls.shared(routing)

    # ------------------------------------------------------------------ public API

    @property
    def models(self) -> list[str]:
        return list(self._entries)

    def deployments(self, model: str) -> list[DeploymentSpec]:
        return [e.spec for e in self.pool_entries(model)]

    def stats(self, spec: DeploymentSpec) -> DeploymentStats:
        return self.stats_by_key[spec.limiter_key]

    def begin(self, model: str, requirements: Requirements | None = None) -> Call:
        self.pool_entries(model)
        return Call(self, model, requirements or Requirements())

    def reset(self, model: str | None = None) -> None:
        """Forget cooldowns, open breakers and taken-out deployments (after fixing configuration)."""
        with self.lock:
            for model_name, entries in self._entries.items():
                if model is None or model_name == model:
                    for e in entries:
                        self.stats_by_key[e.spec.limiter_key].health.reset()

    def snapshot(self) -> list[dict[str, Any]]:
        """One JSON-safe row per deployment of each pool, for `azmem status` / `azmem doctor`."""
        now = self.clock.now()
        rows = []
        with self.lock:
            for model, entries in self._entries.items():
                strategy = self.config.pools[model].strategy
                for e in entries:
                    st = self.stats_by_key[e.spec.limiter_key]
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

    def pool_entries(self, model: str) -> list[_Entry]:
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

    def reservation(self, req: Requirements) -> int:
        completion = req.max_output_tokens
        if completion is None:
            completion = self.config.limiter.completion_tokens
        return self.corrector.correct(req.prompt_tokens) + completion

    def candidates(self, entries: list[_Entry], now: float) -> list[Candidate]:
        limited = [e.spec.limiter_key for e in entries if e.spec.tpm or e.spec.rpm]
        used = self.ledger.used_many(limited, now=now) if self.ledger is not None and limited else {}
        return [self._candidate(e, now, used.get(e.spec.limiter_key)) for e in entries]

    def _candidate(self, e: _Entry, now: float, used: tuple[int, int] | None) -> Candidate:
        st = self.stats_by_key[e.spec.limiter_key]
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

    def observe_headers(
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
