"""OpenTelemetry metrics of azmem, through ``opentelemetry-api`` only.

Like the spans of :mod:`azmem.azure.tracing`, every instrument is a no-op until the
application installs an SDK ``MeterProvider`` (or calls :func:`use_meter_provider`), and
every recording helper checks that first, so a process without one pays one ``isinstance``
per call. The recording helpers never raise: a broken exporter must not break a memory.

Two families (names, units and attributes are listed in docs/observability.md):

* the GenAI semantic-convention client instruments ``gen_ai.client.token.usage`` and
  ``gen_ai.client.operation.duration``, fed by the span of each LLM / embedding call
  (:class:`CallMeter`), so they describe exactly the calls the spans describe;
* azmem's own ``azmem.*`` instruments: retries and 429s, breaker transitions, cooldowns,
  routing waits, cache lookups, cost, memory operations and store size.

Attributes never carry a secret or memory content: deployment, model, endpoint host,
operation and error *type* names, the usage group and prompt name, and counts.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import (
    CallbackOptions,
    Counter,
    Histogram,
    MeterProvider,
    NoOpMeterProvider,
    ObservableGauge,
    Observation,
)
from opentelemetry.metrics import _internal as _metrics_api

__all__ = [
    "METER_NAME",
    "CallMeter",
    "Instruments",
    "enabled",
    "instruments",
    "record_breaker_transition",
    "record_cache_lookup",
    "record_cooldown",
    "record_cost",
    "record_failed_attempt",
    "record_limiter_full",
    "record_memory_operation",
    "record_retry",
    "record_wait",
    "start_call",
    "use_meter_provider",
    "watch_store",
]

METER_NAME = "azmem"

log = logging.getLogger("azmem.azure.metrics")

# Bucket boundaries the GenAI semantic conventions advise for their two histograms.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_MEMORY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_COUNT_BUCKETS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)

PROVIDER = "azure.ai.openai"
"""``gen_ai.provider.name`` of Azure OpenAI (it replaced the deprecated ``gen_ai.system``)."""

# What a call's span carries that its metrics keep (never prompts, never answers).
_CALL_KEYS = (
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "server.address",
    "server.port",
)

_UNKNOWN = object()
_PROVIDER_FROM_ENV = "OTEL_PYTHON_METER_PROVIDER" in os.environ
"""The variable names a provider for the API to load at its first use; read once, at import."""

try:  # the API's stand-in before an SDK is installed; private, hence the fallback
    from opentelemetry.metrics._internal import _ProxyMeterProvider

    _NO_SDK: tuple[type, ...] = (NoOpMeterProvider, _ProxyMeterProvider)
except ImportError:  # pragma: no cover - a future API that moved it
    _NO_SDK = (NoOpMeterProvider,)


@dataclass(frozen=True)
class Instruments:
    """Every instrument azmem records on, made once per meter provider."""

    token_usage: Histogram
    operation_duration: Histogram
    retries: Counter
    throttles: Counter
    breaker_transitions: Counter
    cooldown: Histogram
    wait: Histogram
    limiter_full: Counter
    cache_lookups: Counter
    cost: Counter
    memory_duration: Histogram
    memory_results: Histogram
    store_size: ObservableGauge


_override: MeterProvider | None = None
_made: tuple[object, Instruments] | None = None
_lock = threading.Lock()


def use_meter_provider(provider: MeterProvider | None) -> None:
    """Record azmem's metrics on ``provider`` instead of the global one (``None``: the global again).

    For tests (OpenTelemetry refuses to replace a global provider once set) and for
    applications that keep azmem's metrics apart from their own.
    """
    global _override, _made
    with _lock:
        _override, _made = provider, None


def _provider() -> MeterProvider:
    return _override if _override is not None else metrics.get_meter_provider()


def enabled() -> bool:
    """Whether an SDK meter provider would receive anything (checked per call: it may come later).

    While no provider is set, ``metrics.get_meter_provider()`` looks its environment variable
    up in ``os.environ`` on every call (a caught KeyError each time, a sizeable share of the
    client's per-call work); when the API's global is still unset and the variable was not set
    at start-up, the answer is known without that call. Anything that sets a provider, in code
    or by a later ``get_meter_provider()`` reading the variable, sets the global.
    """
    if _override is not None:
        return True
    if getattr(_metrics_api, "_METER_PROVIDER", _UNKNOWN) is None and not _PROVIDER_FROM_ENV:
        return False
    return not isinstance(metrics.get_meter_provider(), _NO_SDK)


def instruments() -> Instruments:
    """The instruments on the current provider, created on first use after a provider change."""
    global _made
    provider = _provider()
    made = _made
    if made is not None and made[0] is provider:
        return made[1]
    with _lock:
        if _made is None or _made[0] is not provider:
            _made = (provider, _create(provider.get_meter(METER_NAME, _version())))
        return _made[1]


def _version() -> str | None:
    try:
        from importlib.metadata import version

        return version("azmem")
    except Exception:
        return None


def _create(meter: metrics.Meter) -> Instruments:
    return Instruments(
        token_usage=meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        ),
        operation_duration=meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        ),
        retries=meter.create_counter(
            "azmem.client.retries", unit="{retry}", description="Requests sent again after a failed attempt."
        ),
        throttles=meter.create_counter(
            "azmem.client.throttles",
            unit="{response}",
            description="429 answers (rate limit or quota) from a deployment.",
        ),
        breaker_transitions=meter.create_counter(
            "azmem.routing.breaker.transitions",
            unit="{transition}",
            description="Circuit-breaker state changes of a routed deployment.",
        ),
        cooldown=meter.create_histogram(
            "azmem.routing.cooldown",
            unit="s",
            description="Cooldowns a routed deployment was put in after a 429 or a failure.",
            explicit_bucket_boundaries_advisory=_WAIT_BUCKETS,
        ),
        wait=meter.create_histogram(
            "azmem.routing.wait",
            unit="s",
            description="Time a routed call waited because every deployment was cooling or full.",
            explicit_bucket_boundaries_advisory=_WAIT_BUCKETS,
        ),
        limiter_full=meter.create_counter(
            "azmem.routing.limiter.full",
            unit="{request}",
            description="Requests the client-side TPM/RPM limiter kept off a deployment.",
        ),
        cache_lookups=meter.create_counter(
            "azmem.cache.lookups",
            unit="{lookup}",
            description="Response / embedding cache lookups, by result (hit or miss).",
        ),
        cost=meter.create_counter(
            "azmem.client.cost",
            unit="{USD}",
            description="Estimated cost of LLM and embedding calls, from the usage tracker's prices.",
        ),
        memory_duration=meter.create_histogram(
            "azmem.memory.operation.duration",
            unit="s",
            description="Duration of one Memory operation (add, search, delete, ...).",
            explicit_bucket_boundaries_advisory=_MEMORY_BUCKETS,
        ),
        memory_results=meter.create_histogram(
            "azmem.memory.operation.results",
            unit="{memory}",
            description="Memories one operation returned or changed.",
            explicit_bucket_boundaries_advisory=_COUNT_BUCKETS,
        ),
        store_size=meter.create_observable_gauge(
            "azmem.memory.store.size",
            callbacks=[_observe_stores],
            unit="{memory}",
            description="Memories in each store a Memory of this process has open.",
        ),
    )


def _safely(what: str, record: Callable[[Instruments], None]) -> None:
    """Record unless no SDK is installed; an exporter's failure is logged, never raised."""
    if not enabled():
        return
    try:
        record(instruments())
    except Exception:
        log.debug("could not record %s", what, exc_info=True)


def error_type(error: BaseException) -> str:
    """The low-cardinality ``error.type`` of an exception: its class name, as on the spans."""
    return type(error).__name__


# --------------------------------------------------------------------------- GenAI calls


class CallMeter:
    """What one LLM or embedding call's span saw, turned into the GenAI metrics when it ends.

    The span helper feeds it every attribute the flows set (tokens, response model, cache
    hit), so the metrics and the span of a call can never disagree. A call answered
    entirely from azmem's cache sent nothing: it is counted by ``azmem.cache.lookups``,
    not as a GenAI operation.
    """

    __slots__ = ("_attrs", "_cache_hit", "_done", "_input", "_output", "_started")

    def __init__(self, attributes: Mapping[str, Any]) -> None:
        self._started = time.perf_counter()
        self._attrs: dict[str, Any] = {k: attributes[k] for k in _CALL_KEYS if attributes.get(k) is not None}
        self._attrs.setdefault("gen_ai.provider.name", PROVIDER)
        self._input: int | None = None
        self._output: int | None = None
        self._cache_hit = bool(attributes.get("cache.hit"))
        self._done = False

    def observe(self, key: str, value: Any) -> None:
        """Note an attribute the flow set on the span (only the few the metrics use)."""
        if value is None:
            return
        if key == "gen_ai.usage.input_tokens":
            self._input = int(value)
        elif key == "gen_ai.usage.output_tokens":
            self._output = int(value)
        elif key == "cache.hit":
            self._cache_hit = bool(value)
        elif key in _CALL_KEYS:
            self._attrs[key] = value

    def finish(self, error: BaseException | None = None) -> None:
        """Record the duration (with ``error.type`` on failure) and the tokens; once."""
        if self._done:
            return
        self._done = True
        if self._cache_hit and error is None:
            return
        elapsed = time.perf_counter() - self._started
        attrs = dict(self._attrs)

        def record(ins: Instruments) -> None:
            duration_attrs = {**attrs, "error.type": error_type(error)} if error is not None else attrs
            ins.operation_duration.record(elapsed, duration_attrs)
            for kind, tokens in (("input", self._input), ("output", self._output)):
                if tokens is not None:
                    ins.token_usage.record(tokens, {**attrs, "gen_ai.token.type": kind})

        _safely("a GenAI call", record)


def start_call(attributes: Mapping[str, Any]) -> CallMeter | None:
    """A meter for one call's span, or None without an SDK or for a span that names no deployment.

    Only spans of one deployment call carry ``gen_ai.request.model`` when they start; a
    routed call's outer span does not, so its attempts are not counted twice.
    """
    if not enabled() or attributes.get("gen_ai.request.model") is None:
        return None
    return CallMeter(attributes)


# --------------------------------------------------------------------------- client, routing, cache


def record_failed_attempt(
    *, deployment: str, operation: str, error: BaseException, status: int | None, will_retry: bool
) -> None:
    """One failed attempt: a 429 counts as a throttle; a retry that follows counts as a retry."""

    def record(ins: Instruments) -> None:
        base = {"azmem.deployment": deployment, "gen_ai.operation.name": operation}
        if status == 429:
            ins.throttles.add(1, base)
        if will_retry:
            ins.retries.add(1, {**base, "error.type": error_type(error)})

    _safely("a failed attempt", record)


def _routed(deployment: str, route: str) -> dict[str, str]:
    """A pool entry: the Azure deployment name, and the entry's ``pool/name`` label (regions often
    share a deployment name, so the label tells them apart)."""
    return {"azmem.deployment": deployment, "azmem.route.deployment": route}


def record_retry(*, deployment: str, route: str, pool: str, error: str | None) -> None:
    """A routed call trying again (the same or another deployment) after ``route`` failed."""

    def record(ins: Instruments) -> None:
        attrs = {**_routed(deployment, route), "azmem.route.model": pool}
        if error:
            attrs["error.type"] = error
        ins.retries.add(1, attrs)

    _safely("a routed retry", record)


def record_breaker_transition(*, deployment: str, route: str, previous: str, state: str) -> None:
    _safely(
        "a breaker transition",
        lambda ins: ins.breaker_transitions.add(
            1,
            {**_routed(deployment, route), "azmem.breaker.state": state, "azmem.breaker.previous": previous},
        ),
    )


def record_cooldown(*, deployment: str, route: str, seconds: float, reason: str) -> None:
    """A deployment put to cool for ``seconds``; ``reason`` is ``throttle`` or ``failure``."""
    _safely(
        "a cooldown",
        lambda ins: ins.cooldown.record(
            max(seconds, 0.0), {**_routed(deployment, route), "azmem.cooldown.reason": reason}
        ),
    )


def record_wait(*, pool: str, route: str, seconds: float, reason: str) -> None:
    """A routed call told to wait for ``route`` (the entry expected to free up first); ``reason``
    is ``limiter`` (client-side TPM/RPM) or ``cooldown``."""
    _safely(
        "a routing wait",
        lambda ins: ins.wait.record(
            max(seconds, 0.0),
            {"azmem.route.model": pool, "azmem.route.deployment": route, "azmem.wait.reason": reason},
        ),
    )


def record_limiter_full(*, deployment: str, route: str) -> None:
    _safely("a full limiter", lambda ins: ins.limiter_full.add(1, _routed(deployment, route)))


def record_cache_lookup(*, backend: str, hit: bool) -> None:
    _safely(
        "a cache lookup",
        lambda ins: ins.cache_lookups.add(
            1, {"azmem.cache.backend": backend, "azmem.cache.result": "hit" if hit else "miss"}
        ),
    )


def record_cost(
    *, deployment: str, model: str | None, group_id: str | None, prompt_name: str | None, cost: float
) -> None:
    """USD of one call as the usage tracker priced it, per deployment, model, group and prompt."""

    def record(ins: Instruments) -> None:
        attrs = {"azmem.deployment": deployment}
        for key, value in (
            ("azmem.model", model),
            ("azmem.group_id", group_id),
            ("azmem.prompt.name", prompt_name),
        ):
            if value:
                attrs[key] = value
        ins.cost.add(cost, attrs)

    _safely("a cost", record)


# --------------------------------------------------------------------------- memory


def record_memory_operation(
    *, operation: str, backend: str, seconds: float, results: int | None, error: BaseException | None
) -> None:
    """One Memory operation: its latency, and how many memories it returned or changed."""

    def record(ins: Instruments) -> None:
        attrs = {"azmem.memory.operation": operation, "azmem.store.backend": backend}
        ins.memory_duration.record(seconds, {**attrs, "error.type": error_type(error)} if error else attrs)
        if results is not None and error is None:
            ins.memory_results.record(results, attrs)

    _safely("a memory operation", record)


# Stores whose size the gauge reports: id -> (weak count method, attributes). Weak, so a store
# that is garbage collected simply stops being reported.
_stores: dict[str, tuple[weakref.WeakMethod[Callable[[], int]], dict[str, str]]] = {}
_stores_lock = threading.Lock()


def store_id(url: str) -> str:
    """A short stable id for a store URL (already without its password): names it, reveals nothing."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:12]


def watch_store(count: Callable[[], int], *, url: str, backend: str) -> None:
    """Report ``count()`` (a store's bound ``count`` method) as ``azmem.memory.store.size``.

    Keyed by the store's URL, so two Memory objects on one store are one series.
    """
    if not enabled():
        return
    key = store_id(url)
    with _stores_lock:
        known = _stores.get(key)
        if known is not None and known[0]() is not None:
            return
        try:
            ref = weakref.WeakMethod(count)
        except TypeError:  # not a bound method of a weak-referenceable store: not reported
            return
        _stores[key] = (ref, {"azmem.store.backend": backend, "azmem.store.id": key})


def _observe_stores(options: CallbackOptions) -> Iterable[Observation]:
    with _stores_lock:
        items = list(_stores.items())
    out = []
    for key, (ref, attrs) in items:
        count = ref()
        if count is None:
            with _stores_lock:
                _stores.pop(key, None)
            continue
        try:
            out.append(Observation(int(count()), attrs))
        except Exception:  # closed, or the database is away: no figure this time
            log.debug("could not count store %s", key, exc_info=True)
    return out
