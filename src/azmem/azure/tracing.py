"""OpenTelemetry spans for LLM and embedding calls, through ``opentelemetry-api`` only.

Without an SDK installed by the application every span is a no-op. Attribute names follow
the GenAI semantic conventions (``gen_ai.*``) plus the names Graphiti users already chart
(``llm.provider``, ``model.size``, ``cache.hit``, ``prompt.name``).

Each span of one deployment call also feeds that call's GenAI metrics (duration, tokens:
:mod:`azmem.azure.metrics`), so metrics and spans never disagree.

The one rule that matters: an exception raised inside :func:`llm_span` leaves it as the
very same object. Graphiti's span helper turned every error into ``RuntimeError``, so its
callers could no longer catch a rate limit by type.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from azmem.azure.metrics import CallMeter, start_call
from azmem.errors import AzmemError, redact

__all__ = [
    "TRACER_NAME",
    "activate",
    "get_tracer",
    "llm_span",
    "sanitize_attributes",
    "server_attributes",
    "set_tracer",
]

TRACER_NAME = "azmem"

_tracer: Tracer | None = None

_SECRET_ATTR = ("api_key", "api-key", "authorization", "token", "secret", "password", "credential")
_ALLOWED_TOKEN_ATTRS = ("usage.input_tokens", "usage.output_tokens", "max_tokens", "tokens")


def set_tracer(tracer: Tracer | None) -> None:
    """Use ``tracer`` for every azmem span from now on (``None`` restores the global provider's)."""
    global _tracer
    _tracer = tracer


def get_tracer(tracer: Tracer | None = None) -> Tracer:
    """The tracer to use: the one passed, else the one set with :func:`set_tracer`, else the global one.

    The global tracer is looked up at call time, so an application that installs its
    TracerProvider after importing azmem still gets our spans.
    """
    if tracer is not None:
        return tracer
    if _tracer is not None:
        return _tracer
    return trace.get_tracer(TRACER_NAME)


def _is_secret_name(name: str) -> bool:
    lowered = name.lower()
    if any(lowered.endswith(ok) for ok in _ALLOWED_TOKEN_ATTRS):
        return False
    return any(word in lowered for word in _SECRET_ATTR)


def _clean(value: Any) -> Any:
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        items = [_clean(v) for v in value if v is not None]
        kinds = {type(v) for v in items}
        if len(kinds) <= 1:
            return items
        return [str(v) for v in items]
    return redact(str(value))


def sanitize_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes OpenTelemetry accepts, with secrets removed and ``None`` dropped.

    Keys that name a secret (api_key, authorization, token, ...) are dropped whole;
    string values are scrubbed of registered secrets and bearer/JWT shapes.
    """
    out: dict[str, Any] = {}
    for name, value in attributes.items():
        if value is None or _is_secret_name(name):
            continue
        out[name] = _clean(value)
    return out


def server_attributes(endpoint: str | None) -> dict[str, Any]:
    """``server.address`` / ``server.port`` of an endpoint URL (host and port only, never a path or query)."""
    if not endpoint:
        return {}
    try:
        parts = urlsplit(endpoint)
        port = parts.port or (443 if parts.scheme == "https" else 80 if parts.scheme == "http" else None)
    except ValueError:
        return {}
    if not parts.hostname:
        return {}
    return {"server.address": parts.hostname, "server.port": port}


class _SafeSpan:
    """A thin proxy that sanitises whatever callers set on the span later.

    With a meter (an SDK MeterProvider is installed) it also hands the attributes to the
    call's metrics, and says it is recording even when no tracer provider is: the flows
    only set tokens on a recording span, and the metrics need them.
    """

    def __init__(self, span: Span, meter: CallMeter | None = None) -> None:
        self._span = span
        self._meter = meter

    def set_attribute(self, key: str, value: Any) -> None:
        if self._meter is not None:
            self._meter.observe(key, value)
        cleaned = sanitize_attributes({key: value})
        if key in cleaned:
            self._span.set_attribute(key, cleaned[key])

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        if self._meter is not None:
            for key, value in attributes.items():
                self._meter.observe(key, value)
        self._span.set_attributes(sanitize_attributes(attributes))

    def is_recording(self) -> bool:
        return self._meter is not None or self._span.is_recording()

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None) -> None:
        self._span.add_event(name, sanitize_attributes(attributes or {}))

    def record_exception(
        self, exception: BaseException, attributes: Mapping[str, Any] | None = None, **_: Any
    ) -> None:
        # Not the SDK's record_exception: its stack trace and message are not scrubbed.
        event = {
            "exception.type": f"{type(exception).__module__}.{type(exception).__qualname__}",
            "exception.message": redact(str(exception))[:2000],
            **dict(attributes or {}),
        }
        self._span.add_event("exception", sanitize_attributes(event))

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if isinstance(status, Status):
            status = Status(status.status_code, redact(status.description or "") or None)
            self._span.set_status(status)
        else:
            self._span.set_status(status, redact(description) if description else None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._span, name)


@contextmanager
def llm_span(
    tracer: Tracer | None, name: str, attributes: Mapping[str, Any] | None = None, *, current: bool = True
) -> Iterator[Any]:
    """A span around one LLM or embedding call that records, and re-raises, any exception as is.

    Yields a span-like object whose ``set_attribute`` / ``add_event`` sanitise values.
    ``llm.provider=azure`` and ``gen_ai.system=az.ai.openai`` are always set. The span
    is closed on exit even when the caller never consumes the rest of a generator.

    ``current=False`` leaves the OpenTelemetry context alone: what a *generator* (a
    stream) must use, because a span made current there stays current in the caller's
    context at every ``yield`` (the caller's own spans become its children) and cannot be
    detached when the generator is finalised in another context.
    """
    base: dict[str, Any] = {
        "gen_ai.system": "az.ai.openai",
        "gen_ai.provider.name": "azure.ai.openai",
        "llm.provider": "azure",
    }
    base.update(attributes or {})
    options: dict[str, Any] = {
        "kind": trace.SpanKind.CLIENT,
        "attributes": sanitize_attributes(base),
        "record_exception": False,
        "set_status_on_exception": False,
    }
    resolved = get_tracer(tracer)
    meter = start_call(base)  # the call's GenAI metrics; None without a MeterProvider
    if current:
        with resolved.start_as_current_span(name, **options) as span:
            try:
                yield _SafeSpan(span, meter)
            except BaseException as exc:
                _record_error(span, exc)
                _finish(meter, exc)
                raise  # the same object, never wrapped
            _finish(meter, None)
        return
    span = resolved.start_span(name, **{k: v for k, v in options.items() if k != "set_status_on_exception"})
    try:
        yield _SafeSpan(span, meter)
    except BaseException as exc:
        _record_error(span, exc)
        _finish(meter, exc)
        raise  # the same object, never wrapped
    finally:
        _finish(meter, None)
        span.end()


def _finish(meter: CallMeter | None, exc: BaseException | None) -> None:
    if meter is not None:
        # A caller that stopped reading a stream early did not see the call fail.
        meter.finish(None if isinstance(exc, GeneratorExit) else exc)


def activate(span: Any) -> AbstractContextManager[Any]:
    """Make a span from :func:`llm_span` (``current=False``) current for one ``with`` block.

    What a stream does around its opening request, between no ``yield``s: the SDK's own
    instrumentation then nests under it, yet the caller never sees it as current. Errors
    are left to :func:`llm_span` to record; any other span-like object (a no-op) is a no-op.
    """
    if isinstance(span, _SafeSpan):
        return trace.use_span(
            span._span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        )
    return nullcontext(span)


def _record_error(span: Span, exc: BaseException) -> None:
    if isinstance(exc, GeneratorExit):
        return  # the caller stopped early; that is not a failure
    try:
        attrs: dict[str, Any] = {
            "exception.type": f"{type(exc).__module__}.{type(exc).__qualname__}",
            "exception.message": redact(str(exc))[:2000],
        }
        span.add_event("exception", attrs)
        span.set_attribute("error.type", type(exc).__name__)
        if isinstance(exc, AzmemError):
            if exc.status_code is not None:
                span.set_attribute("http.response.status_code", exc.status_code)
            if exc.error_code:
                span.set_attribute("azmem.error_code", exc.error_code)
            request_id = exc.debug_info.get("apim-request-id") or exc.debug_info.get("x-request-id")
            if request_id:
                span.set_attribute("azmem.request_id", str(request_id))
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}"))
    except Exception:  # a broken exporter must not replace the caller's exception
        pass
