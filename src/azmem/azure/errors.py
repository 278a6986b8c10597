"""The single place Azure OpenAI / SDK failures are translated into azmem's error tree.

The tree itself (and redaction) is :mod:`azmem.errors`, the ground floor every layer
shares; this module only knows what the service and the ``openai`` SDK send back:
status codes, error bodies, content-filter verdicts, the SDK's own exception types.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from azmem.errors import (
    REDACTED,
    SECRET_KEY_NAMES,
    AuthenticationError,
    AzmemError,
    ConfigurationError,
    ConflictError,
    ContentFilterError,
    ContextLengthError,
    DeploymentNotFoundError,
    InvalidRequestError,
    JsonSchemaUnsupportedError,
    NetworkError,
    OutputTruncatedError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    ServiceError,
    TimeoutError,
    redact,
    redact_value,
)

from .error_hints import EMBEDDING_INPUT_TOO_LONG_HINT, auth_hint, invalid_request_hint, not_found_hint
from .headers import debug_headers, parse_retry_after

__all__ = [
    "RequestContext",
    "is_credential_error",
    "is_sdk_auth_setup_error",
    "map_sdk_error",
]

# --------------------------------------------------------------------------- context


@dataclass(frozen=True)
class RequestContext:
    """What we were doing when an error happened; feeds messages and debug_info."""

    operation: str
    deployment: str
    endpoint: str
    api_version: str | None
    attempt: int = 1
    auth: str | None = None
    """"api_key" or "entra", so a 401 can say which credential to fix."""

    def debug_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "operation": self.operation,
            "deployment": self.deployment,
            "endpoint": _strip_query(self.endpoint),
            "attempt": self.attempt,
        }
        if self.api_version:
            info["api_version"] = self.api_version
        if self.auth:
            info["auth"] = self.auth
        return info


def _strip_query(url: str) -> str:
    return url.split("?", 1)[0]


# --------------------------------------------------------------------------- mapping


def _body_dict(body: object) -> dict[str, Any]:
    if isinstance(body, Mapping):
        inner = body.get("error")
        if isinstance(inner, Mapping):
            return dict(inner)
        return dict(body)
    return {}


_STATED_WAIT = re.compile(r"retry after (\d+(?:\.\d+)?) seconds?", re.I)
_CONTEXT_LENGTH = re.compile(r"maximum context length|context_length_exceeded|too many tokens", re.I)
_JSON_SCHEMA = re.compile(r"json_schema.*(api version|not supported|enabled only)", re.I | re.S)
_OUTPUT_LIMIT = re.compile(r"supports at most (\d+) completion tokens", re.I)


def map_sdk_error(exc: BaseException, ctx: RequestContext) -> AzmemError:
    """Translate an openai SDK (or azure-identity) exception into our tree.

    The only place that knows the SDK's exception classes. An AzmemError passes through
    with the attempt number refreshed; anything unrecognised becomes a plain AzmemError
    so callers still catch one root type (the original stays on ``__cause__`` when the
    caller raises ``from exc``).
    """
    import openai  # local: keeps `azmem.azure.errors` importable by layers that never call Azure

    if isinstance(exc, AzmemError):
        # Raised by our own code inside the SDK call (a token provider): give it the context.
        for key, value in ctx.debug_info().items():
            exc.debug_info.setdefault(key, value)
        exc.debug_info["attempt"] = ctx.attempt
        return exc
    _scrub(exc)

    info = ctx.debug_info()
    where = f"deployment '{ctx.deployment}' at {_strip_query(ctx.endpoint)}"

    if isinstance(exc, openai.APITimeoutError):
        return TimeoutError(f"The {ctx.operation} request to {where} timed out.", debug_info=info)
    if isinstance(exc, openai.APIConnectionError):
        return _connection_error(exc, ctx, info)
    if isinstance(exc, openai.APIStatusError):
        return _map_status(exc, ctx, info, where)
    if isinstance(exc, openai.ContentFilterFinishReasonError):
        results: Mapping[str, Any] | None = None
        completion = exc.completion
        if completion is not None and completion.choices:
            extra = completion.choices[0].model_extra or {}
            results = extra.get("content_filter_results")
        return ContentFilterError.from_results(results, source="output", ctx=ctx)
    if isinstance(exc, openai.LengthFinishReasonError):
        return OutputTruncatedError(
            f"The model's output from {where} was cut off at the token limit (finish_reason 'length').",
            error_code="length",
            debug_info=info,
        )
    if isinstance(exc, openai.APIResponseValidationError):
        return ServiceError(
            f"Azure OpenAI returned a response azmem could not read ({where}).",
            status_code=exc.status_code,
            debug_info={**info, **debug_headers(exc.response.headers)},
        )
    if isinstance(exc, openai.APIError):  # e.g. an error event in the middle of a stream
        return ServiceError(f"Azure OpenAI reported an error for {where}: {exc.message}", debug_info=info)
    if isinstance(exc, openai.OpenAIError):
        return ConfigurationError(
            f"The openai SDK rejected the client configuration: {exc}",
            debug_info=info,
            suggestion="Check endpoint, api_version and credentials in the azmem settings.",
        )
    if is_sdk_auth_setup_error(exc):
        return ConfigurationError(
            f"The openai client could not set up authentication for {where}: {type(exc).__name__}: {exc}",
            debug_info=info,
            suggestion=(
                "Check the credentials of the client passed as client=: its azure_ad_token_provider "
                "or api_key callable must return a non-empty token or key, or one of api_key, "
                "azure_ad_token or azure_ad_token_provider must be set."
            ),
        )
    if is_credential_error(exc):
        return AuthenticationError(
            f"Microsoft Entra ID could not issue a token for {_strip_query(ctx.endpoint)}: {exc}",
            debug_info=info,
            suggestion=(
                "Sign in (`az login`), or configure a managed identity / service principal "
                "(AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_CLIENT_SECRET), or set an API key."
            ),
        )
    return AzmemError(f"{type(exc).__name__}: {exc}", debug_info=info)


def _scrub(exc: BaseException) -> None:
    """Redact the original exception in place: it stays on ``__cause__`` and tracebacks print it.

    Its message and args, the parsed ``body`` (a service may echo a key back), and the
    ``response`` / ``request`` it keeps: the response text is redacted and the request's
    ``api-key`` / ``Authorization`` headers are masked.
    """
    try:
        exc.args = tuple(redact(a) if isinstance(a, str) else a for a in exc.args)
        message = getattr(exc, "message", None)
        if isinstance(message, str):
            exc.message = redact(message)  # type: ignore[attr-defined]
        if getattr(exc, "body", None) is not None:
            exc.body = redact_value(exc.body)  # type: ignore[attr-defined]
        response = getattr(exc, "response", None)
        if response is not None:
            exc.response = _redacted_response(response)  # type: ignore[attr-defined]
        request = getattr(exc, "request", None)
        if request is not None:
            exc.request = _redacted_request(request)  # type: ignore[attr-defined]
    except Exception:  # some exception types refuse attribute writes; the mapped error is clean anyway
        pass


def _redacted_request(request: Any) -> Any:
    import httpx2 as httpx

    if not isinstance(request, httpx.Request):
        return request
    headers = [(k, REDACTED if SECRET_KEY_NAMES.search(k) else redact(v)) for k, v in request.headers.items()]
    return httpx.Request(request.method, redact(str(request.url)), headers=headers)


def _redacted_response(response: Any) -> Any:
    """A copy of an httpx response with the body redacted (the original may echo a secret)."""
    import httpx2 as httpx

    if not isinstance(response, httpx.Response):
        return response
    try:
        text = response.text
    except Exception:  # a stream never read: there is no body to leak
        return response
    headers = [
        (k, v) for k, v in response.headers.items() if k.lower() not in {"content-encoding", "content-length"}
    ]
    try:
        request: Any = _redacted_request(response.request)
    except RuntimeError:  # no request attached
        request = None
    return httpx.Response(
        response.status_code, headers=headers, content=redact(text).encode("utf-8"), request=request
    )


# Where the openai SDK sets up a request's auth (an Azure AD token provider, an api_key
# callable, the headers check); a ValueError/TypeError raised *there* is a configuration
# problem of the client, not a bug of ours. Judged by the raising frame, never the message.
_SDK_AUTH_MODULES = ("openai.lib.azure", "openai._client", "openai.lib._client_auth")


def is_sdk_auth_setup_error(exc: BaseException) -> bool:
    """A ValueError/TypeError raised by the openai SDK's own auth-setup code."""
    if not isinstance(exc, ValueError | TypeError):
        return False
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    module = tb.tb_frame.f_globals.get("__name__", "")
    return isinstance(module, str) and module in _SDK_AUTH_MODULES


def is_credential_error(exc: BaseException) -> bool:
    return any(
        cls.__name__ in {"ClientAuthenticationError", "CredentialUnavailableError"}
        and cls.__module__.startswith("azure.")
        for cls in type(exc).__mro__
    )


def _map_status(exc: Any, ctx: RequestContext, info: dict[str, Any], where: str) -> AzmemError:
    status: int = exc.status_code
    headers = exc.response.headers
    info.update(debug_headers(headers))
    info["status_code"] = status
    body = _body_dict(exc.body)
    code = str(body.get("code")) if body.get("code") is not None else None
    raw_inner = body.get("innererror")
    inner: dict[str, Any] = dict(raw_inner) if isinstance(raw_inner, Mapping) else {}
    service_message = str(body.get("message") or exc.message)
    details: dict[str, Any] = {k: body[k] for k in ("param", "type") if body.get(k) is not None}
    if inner:
        details["innererror_code"] = inner.get("code")
    retry_after = parse_retry_after(headers)
    common: dict[str, Any] = {
        "error_code": code,
        "details": details,
        "debug_info": info,
        "status_code": status,
        "retry_after": retry_after,
    }

    if status == 400 or code == "content_filter":
        if code == "content_filter" or inner.get("code") == "ResponsibleAIPolicyViolation":
            err = ContentFilterError.from_results(
                inner.get("content_filter_result") or inner.get("content_filter_results"),
                source="prompt",
                ctx=ctx,
                status_code=status,
                debug_info=info,
            )
            err.details.update(details)
            return err
        if code == "context_length_exceeded" or _CONTEXT_LENGTH.search(service_message):
            if ctx.operation == "embeddings":
                # The chat advice (shorter messages, a shorter history) means nothing here:
                # one input of the batch is over the model's per-input limit.
                return ContextLengthError(
                    f"An input is too long for {where}: {service_message}",
                    suggestion=EMBEDDING_INPUT_TOO_LONG_HINT,
                    **common,
                )
            return ContextLengthError(f"The request is too long for {where}: {service_message}", **common)
        if _JSON_SCHEMA.search(service_message):
            return JsonSchemaUnsupportedError(
                f"{where} rejected response_format json_schema: {service_message}",
                suggestion=(
                    f"Use api_version 2024-08-01-preview or later (now {ctx.api_version}), the v1 API, "
                    "or set capabilities.json_schema=false for this deployment."
                ),
                **common,
            )
        found = _OUTPUT_LIMIT.search(service_message)
        output_limit = int(found.group(1)) if found else None
        if output_limit is not None:
            common["details"] = {**common["details"], "output_token_limit": output_limit}
        return InvalidRequestError(
            f"Azure OpenAI rejected the {ctx.operation} request to {where}: {service_message}",
            suggestion=invalid_request_hint(
                body,
                service_message,
                deployment=ctx.deployment,
                api_version=ctx.api_version,
                output_limit=output_limit,
            ),
            **common,
        )
    if status == 401:
        return AuthenticationError(
            f"Azure OpenAI refused the credentials for {where}: {service_message}",
            suggestion=auth_hint(ctx.auth, _strip_query(ctx.endpoint), service_message),
            **common,
        )
    if status == 403:
        return PermissionDeniedError(f"Access to {where} is forbidden: {service_message}", **common)
    if status == 404:
        return DeploymentNotFoundError(
            f"Deployment '{ctx.deployment}' not found at {_strip_query(ctx.endpoint)}: {service_message}",
            suggestion=not_found_hint(code, ctx.deployment, _strip_query(ctx.endpoint), ctx.api_version),
            **common,
        )
    if status == 408:
        return TimeoutError(f"Azure OpenAI timed out serving {where}: {service_message}", **common)
    if status == 409:
        return ConflictError(f"Conflict from {where}: {service_message}", **common)
    if status == 413:
        return InvalidRequestError(
            f"The request to {where} is too large: {service_message}",
            suggestion="Send fewer or shorter inputs per request.",
            **common,
        )
    if status == 429:
        limits = {k: v for k, v in headers.items() if k.lower().startswith("x-ratelimit-")}
        if limits:
            common["details"] = {**common["details"], "ratelimit": limits}
        stated = _STATED_WAIT.search(service_message) if retry_after is None else None
        if stated:
            # No Retry-After header (field reports show 429s without one), but Azure's message
            # says how long: kept so the policy can still recognise a quota wall at once.
            common["details"] = {**common["details"], "stated_retry_after": float(stated.group(1))}
        if code in {"insufficient_quota", "QuotaExceeded"}:
            # Not the retry policy's quota wall (a Retry-After over its ceiling): the service
            # says the subscription's quota or credit is spent, whatever Retry-After it sent.
            return QuotaExceededError(
                f"Quota exhausted for {where}: {service_message}",
                suggestion=(
                    f"The quota or credit behind {_strip_query(ctx.endpoint)} is used up ({code}): this is "
                    "not throttling, and retrying will not help until it is restored (azmem does not "
                    "retry it). Check the Azure subscription's billing, spending limit and the "
                    "resource's quota (Azure AI Foundry > Quotas), or use a deployment on another "
                    "resource or subscription."
                ),
                **common,
            )
        return RateLimitError(f"Rate limited by {where}: {service_message}", **common)
    if status >= 500:
        return ServiceError(
            f"Azure OpenAI failed serving {where} (HTTP {status}): {service_message}", **common
        )
    return InvalidRequestError(
        f"Azure OpenAI rejected the {ctx.operation} request to {where} (HTTP {status}): {service_message}",
        **common,
    )


# --------------------------------------------------------------------------- connections

# httpx's exceptions under the SDK's APIConnectionError, by what they say about the connection.
# Named, not imported: this module stays importable without the HTTP stack.
_CONNECT_FAILURES = frozenset({"ConnectError", "ConnectTimeout", "ProxyError", "UnsupportedProtocol"})
_NO_ANSWER = re.compile(r"without sending a response|server disconnected", re.I)
# The modules of the openai SDK that read a response body as it streams in.
_STREAM_READERS = ("openai._streaming",)


def _raised_in(exc: BaseException, modules: tuple[str, ...]) -> bool:
    """Whether any frame of ``exc``'s traceback belongs to one of ``modules``."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__", "") in modules:
            return True
        tb = tb.tb_next
    return False


def _connection_error(exc: BaseException, ctx: RequestContext, info: dict[str, Any]) -> NetworkError:
    """A failed connection, told apart by the httpx exception the SDK wraps.

    "Could not connect" is only true when no connection was made (refused, DNS, proxy, TLS
    set-up): a server or proxy closing an open connection before answering, or a response
    (a stream above all) cut short, calls for different advice, and a user reading "could
    not connect" would check a URL that works. ``details["connection"]`` names the case.
    """
    endpoint = _strip_query(ctx.endpoint)
    cause = exc.__cause__ or exc.__context__
    name = type(cause).__name__ if cause is not None else ""
    reason = f": {name}: {cause}" if cause is not None else ""
    if _raised_in(exc, _STREAM_READERS):
        return NetworkError(
            f"The connection to {endpoint} was lost mid-stream: the {ctx.operation} stream from "
            f"deployment '{ctx.deployment}' broke off after it had started{reason}",
            error_code="stream_interrupted",
            details={"connection": "lost_mid_stream"},
            debug_info=info,
            suggestion=(
                "The server or a proxy on the way closed the stream before its end; the text already "
                "received is incomplete, and a stream is not retried once it has started. Call again; "
                "if it keeps happening, check proxies or load balancers with idle or response-size "
                "limits between you and Azure."
            ),
        )
    if cause is None or name in _CONNECT_FAILURES:
        return NetworkError(
            f"Could not connect to {endpoint}{reason}",
            error_code="connect_failed",
            details={"connection": "connect_failed"},
            debug_info=info,
            suggestion="Check the endpoint URL, DNS, proxy settings and the network path "
            "(VPN, private endpoint).",
        )
    if name == "WriteError":
        phase, what = "lost_while_sending", "dropped the connection while the request was being sent"
    elif _NO_ANSWER.search(str(cause)):
        phase, what = "lost_before_response", "closed the connection before answering"
    else:
        phase, what = "lost_mid_response", "closed the connection while the answer was being received"
    return NetworkError(
        f"The connection to {endpoint} was lost mid-request: the server {what} "
        f"({ctx.operation}, deployment '{ctx.deployment}'){reason}",
        error_code="connection_lost",
        details={"connection": phase},
        debug_info=info,
        suggestion=(
            "The endpoint was reached, then the server or a proxy on the way dropped the connection; "
            "usually transient, and azmem retries it. If it persists, check proxies, firewalls or load "
            "balancers that cut long or idle requests."
        ),
    )
