"""One exception tree for all of azmem, and the single place SDK errors are translated into it.

::

    AzmemError
    ├── ConfigurationError            bad or missing settings (developer misuse, never retried)
    ├── AuthenticationError           401, or a credential that could not produce a token
    ├── PermissionDeniedError         403
    ├── DeploymentNotFoundError       404
    ├── InvalidRequestError           400 / 413 / 422
    │   ├── ContentFilterError        400 content_filter, or finish_reason "content_filter"
    │   ├── ContextLengthError        400 context_length_exceeded
    │   └── JsonSchemaUnsupportedError  400: json_schema needs api-version >= 2024-08-01-preview
    ├── RateLimitError                429 (retryable)
    ├── QuotaExceededError            429 whose Retry-After is beyond the policy ceiling
    ├── ConflictError                 409 (retryable)
    ├── ServiceError                  5xx (retryable), malformed bodies
    ├── NetworkError                  connection failures (retryable)
    │   └── TimeoutError              client timeouts and 408 (retryable)
    ├── RefusalError                  the model refused (message.refusal)
    ├── EmptyResponseError            no content and no tool calls
    ├── OutputTruncatedError          finish_reason "length"
    ├── StructuredOutputError         validation still failing after the re-ask budget
    ├── InvalidInputError (ValueError)  bad arguments from the caller
    ├── MemoryNotFoundError
    ├── StoreError
    └── EmbedderMismatchError

Errors are caught by type all the way up (tracing re-raises the same object), so every
field a caller might branch on is an attribute, and nothing a user might paste into an
issue carries a secret: messages and details go through :func:`redact`.
"""

from __future__ import annotations

import email.utils
import math
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "AuthenticationError",
    "AzmemError",
    "ConfigurationError",
    "ConflictError",
    "ContentFilterError",
    "ContextLengthError",
    "DeploymentNotFoundError",
    "EmbedderMismatchError",
    "EmptyResponseError",
    "InvalidInputError",
    "InvalidRequestError",
    "JsonSchemaUnsupportedError",
    "MemoryNotFoundError",
    "NetworkError",
    "OutputTruncatedError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "RateLimitError",
    "RefusalError",
    "RequestContext",
    "ServiceError",
    "StoreError",
    "StructuredOutputError",
    "TimeoutError",
    "debug_headers",
    "map_sdk_error",
    "parse_retry_after",
    "redact",
    "register_secret",
]

# --------------------------------------------------------------------------- redaction

_secrets_lock = threading.Lock()
_known_secrets: set[str] = set()

_REDACTED = "***"
# Patterns catch secrets we were never told about (a key pasted into an endpoint, a token
# echoed in a service message). Exact registered values catch the rest.
_SECRET_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-._~+/]{8,}=*"),
    re.compile(r"(?i)((?<![a-z])(?:api[-_]?key|authorization|access[-_]?token|client[-_]?secret|token|sig|key)"
               r"[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;}]{8,}"),
    re.compile(r"eyJ[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]*"),  # JWTs
)


def register_secret(value: str | None) -> None:
    """Remember a secret so that :func:`redact` removes it wherever it later shows up.

    Settings register every API key and client secret they load, and auth registers the
    tokens it hands out, so an exact value is scrubbed even when no pattern would match it.
    """
    if value and len(value.strip()) >= 6:
        with _secrets_lock:
            _known_secrets.add(value.strip())


def redact(text: str) -> str:
    """Remove secrets from text that may reach a user, a log or a span."""
    if not text:
        return text
    with _secrets_lock:
        known = sorted(_known_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, _REDACTED)
    for pattern in _SECRET_PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + _REDACTED, text)
        else:
            text = pattern.sub(_REDACTED, text)
    return text


_SECRET_KEYS = re.compile(
    r"(?i)^(?:x-)?(api[-_]?key|authorization|(access[-_]?|refresh[-_]?|id[-_]?)?token|(client[-_]?)?secret"
    r"|password|credential|sig|ocp-apim-subscription-key)$"
)


def _redact_value(value: Any, key: str | None = None) -> Any:
    if key is not None and _SECRET_KEYS.search(key) and value is not None and not isinstance(value, bool):
        return _REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {str(k): _redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


# --------------------------------------------------------------------------- the tree


class AzmemError(Exception):
    """Root of every error azmem raises.

    ``retryable`` is a class-level fact used by :class:`azmem.azure.retry.RetryPolicy`;
    ``retry_after`` carries the service's own hint (seconds) when it sent one.
    """

    retryable: ClassVar[bool] = False
    default_suggestion: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        error_code: str | None = None,
        details: Mapping[str, Any] | None = None,
        suggestion: str | None = None,
        debug_info: Mapping[str, Any] | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = redact(message)
        self.error_code = error_code
        self.details: dict[str, Any] = _redact_value(dict(details or {}))
        self.suggestion = redact(suggestion) if suggestion else self.default_suggestion
        self.debug_info: dict[str, Any] = _redact_value(dict(debug_info or {}))
        self.status_code = status_code
        self.retry_after = retry_after
        super().__init__(self.message)

    def __str__(self) -> str:
        head = self.message
        if self.error_code:
            head = f"{head} [{self.error_code}]"
        if self.suggestion:
            head = f"{head}\nSuggestion: {self.suggestion}"
        return head

    def __repr__(self) -> str:
        return f"{type(self).__name__}(message={self.message!r}, error_code={self.error_code!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors do not survive the default pickling; errors cross
        # process boundaries (multiprocessing, job queues), so rebuild from state.
        return (_rebuild, (type(self), self.__dict__.copy()))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe view for CLIs and HTTP servers."""
        return {
            "type": type(self).__name__,
            "message": self.message,
            "error_code": self.error_code,
            "status_code": self.status_code,
            "suggestion": self.suggestion,
            "retryable": self.retryable,
            "retry_after": self.retry_after,
            "details": self.details,
            "debug_info": self.debug_info,
        }


def _rebuild(cls: type[AzmemError], state: dict[str, Any]) -> AzmemError:
    obj = cls.__new__(cls)
    Exception.__init__(obj, state.get("message", ""))
    obj.__dict__.update(state)
    return obj


class ConfigurationError(AzmemError):
    """Settings are missing, unknown or contradictory; fix the configuration, do not retry."""


class AuthenticationError(AzmemError):
    default_suggestion = (
        "Check the API key for this endpoint (Azure portal > your resource > Keys and Endpoint), "
        "or remove it to use Microsoft Entra ID."
    )


class PermissionDeniedError(AzmemError):
    default_suggestion = (
        "Grant the identity the 'Cognitive Services OpenAI User' role on the resource, and check "
        "its network rules (firewall, private endpoint)."
    )


class DeploymentNotFoundError(AzmemError):
    default_suggestion = "Check the deployment name and the endpoint."


class InvalidRequestError(AzmemError):
    default_suggestion = "Check the request parameters against the deployment's model and api_version."


class ContentFilterError(InvalidRequestError):
    """Azure's content filter blocked the prompt (HTTP 400) or the output (finish_reason).

    ``categories`` maps each category (hate, sexual, violence, self_harm, jailbreak,
    protected_material_text, ...) to the service's verdict, e.g. ``{"filtered": True,
    "severity": "high"}``.
    """

    def __init__(
        self,
        message: str,
        *,
        categories: Mapping[str, Mapping[str, Any]] | None = None,
        source: str = "prompt",
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.categories: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (categories or {}).items()}
        self.source = source

    @property
    def filtered_categories(self) -> list[str]:
        return sorted(k for k, v in self.categories.items() if v.get("filtered") or v.get("detected"))

    @property
    def severities(self) -> dict[str, str]:
        return {k: str(v["severity"]) for k, v in self.categories.items() if "severity" in v}

    @classmethod
    def from_results(
        cls,
        results: Mapping[str, Any] | None,
        *,
        source: str,
        ctx: RequestContext | None = None,
        status_code: int | None = None,
        debug_info: Mapping[str, Any] | None = None,
    ) -> ContentFilterError:
        """Build from a ``content_filter_result(s)`` mapping (error body or a choice)."""
        categories = _filter_categories(results)
        blocked = [k for k, v in categories.items() if v.get("filtered") or v.get("detected")]
        what = "prompt" if source == "prompt" else "model output"
        verdicts = ", ".join(
            f"{k}={categories[k].get('severity', 'detected')}" for k in sorted(blocked)
        ) or "no category reported"
        info = dict(ctx.debug_info() if ctx else {})
        info.update(debug_info or {})
        return cls(
            f"Azure OpenAI's content filter blocked the {what} ({verdicts}).",
            error_code="content_filter",
            categories=categories,
            source=source,
            status_code=status_code,
            debug_info=info,
            suggestion=(
                "Rephrase the input, or ask the resource owner to review the content filter "
                "configuration of this deployment. Retrying the same input will be blocked again."
            ),
        )


class ContextLengthError(InvalidRequestError):
    default_suggestion = (
        "Shorten the messages (fewer or smaller memories, a shorter history) or use a deployment "
        "whose model has a larger context window."
    )


class JsonSchemaUnsupportedError(InvalidRequestError):
    """The deployment or api-version rejects ``response_format: json_schema``.

    The LLM client catches this to fall back to json_object and remembers it per deployment.
    """


class RateLimitError(AzmemError):
    retryable = True
    default_suggestion = (
        "Transient throttling: azmem retries with backoff. If it persists, raise the deployment's "
        "tokens-per-minute quota or lower concurrency."
    )


class QuotaExceededError(AzmemError):
    default_suggestion = (
        "The service asked to wait longer than the retry ceiling allows: the deployment's quota is "
        "exhausted. Raise the quota, use another deployment, or raise RetryPolicy.retry_after_ceiling."
    )


class ConflictError(AzmemError):
    retryable = True
    default_suggestion = "A concurrent operation conflicted; azmem retries. If it persists, try again later."


class ServiceError(AzmemError):
    retryable = True
    default_suggestion = "Azure OpenAI had a server-side problem; azmem retried. Try again later."


class NetworkError(AzmemError):
    retryable = True
    default_suggestion = "Check the endpoint URL, DNS, proxy settings and the network path to Azure."


class TimeoutError(NetworkError):  # shadows the builtin on purpose: the contract name
    retryable = True
    default_suggestion = (
        "The request timed out. Raise the timeout setting, lower max_tokens, or check the network path "
        "to the endpoint."
    )


AzmemTimeoutError = TimeoutError


class RefusalError(AzmemError):
    def __init__(self, message: str, *, refusal: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.refusal = refusal


class EmptyResponseError(AzmemError):
    default_suggestion = "The model returned nothing; retry, or raise max_tokens for reasoning models."


class OutputTruncatedError(AzmemError):
    default_suggestion = "The model hit the token limit: raise max_tokens (or max_completion_tokens)."


class StructuredOutputError(AzmemError):
    pass


class InvalidInputError(AzmemError, ValueError):
    pass


class MemoryNotFoundError(AzmemError):
    pass


class StoreError(AzmemError):
    pass


class EmbedderMismatchError(AzmemError):
    pass


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


# --------------------------------------------------------------------------- headers

_DEBUG_HEADERS = ("apim-request-id", "x-request-id", "x-ms-region", "x-ms-client-request-id")


def debug_headers(headers: Mapping[str, str] | Any) -> dict[str, str]:
    """The request-id and region headers worth quoting to Azure support."""
    out: dict[str, str] = {}
    if headers is None:
        return out
    for name in _DEBUG_HEADERS:
        value = headers.get(name)
        if value:
            out[name] = str(value)
    return out


def parse_retry_after(headers: Mapping[str, str] | Any, *, now: float | None = None) -> float | None:
    """Seconds the service asked us to wait, or None when it gave no usable hint.

    ``retry-after-ms`` wins over ``retry-after``; the latter may be seconds or an HTTP date.
    Zero, negative, non-finite and unparsable values are "no hint" (field reports show
    ``-1`` and ``0``), which lets the policy fall back to its own backoff.
    """
    if headers is None:
        return None
    ms = _positive_float(headers.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000.0
    raw = headers.get("retry-after")
    if raw is None:
        return None
    seconds = _positive_float(raw)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(str(raw))
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    delta = when.timestamp() - (time.time() if now is None else now)
    return delta if delta > 0 else None


def _positive_float(raw: Any) -> float | None:
    if raw is None:
        return None
    try:
        value = float(str(raw).strip())
    except ValueError:
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    return value


# --------------------------------------------------------------------------- mapping


def _filter_categories(results: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, verdict in (results or {}).items():
        if isinstance(verdict, Mapping):
            out[str(name)] = {str(k): v for k, v in verdict.items() if k != "citation"}
    return out


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
        cause = exc.__cause__ or exc.__context__
        reason = f": {type(cause).__name__}: {cause}" if cause else ""
        return NetworkError(
            f"Could not connect to {_strip_query(ctx.endpoint)}{reason}",
            debug_info=info,
            suggestion="Check the endpoint URL, DNS, proxy settings and the network path "
            "(VPN, private endpoint).",
        )
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
            f"The openai client could not set up authentication for {where}: "
            f"{type(exc).__name__}: {exc}",
            debug_info=info,
            suggestion=(
                "Check the credentials of the client passed as client=: its azure_ad_token_provider "
                "or api_key callable must return a non-empty token or key, or one of api_key, "
                "azure_ad_token or azure_ad_token_provider must be set."
            ),
        )
    if _is_credential_error(exc):
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
            exc.body = _redact_value(exc.body)  # type: ignore[attr-defined]
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
    headers = [(k, _REDACTED if _SECRET_KEYS.search(k) else redact(v)) for k, v in request.headers.items()]
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


def _is_credential_error(exc: BaseException) -> bool:
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
        return InvalidRequestError(
            f"Azure OpenAI rejected the {ctx.operation} request to {where}: {service_message}",
            suggestion=_invalid_request_hint(body, service_message),
            **common,
        )
    if status == 401:
        return AuthenticationError(
            f"Azure OpenAI refused the credentials for {where}: {service_message}",
            suggestion=_auth_hint(ctx, service_message),
            **common,
        )
    if status == 403:
        return PermissionDeniedError(f"Access to {where} is forbidden: {service_message}", **common)
    if status == 404:
        if code == "DeploymentNotFound":
            hint = (
                f"No deployment named '{ctx.deployment}' exists on {_strip_query(ctx.endpoint)}. Check the "
                "deployment name (Azure AI Foundry > Deployments; it is the name you chose, not the model "
                "name) and that the endpoint is the right resource. A deployment created in the last "
                "5 minutes may not be ready yet."
            )
        else:
            hint = (
                f"{_strip_query(ctx.endpoint)} answered 404 for deployment '{ctx.deployment}'. Check the "
                "endpoint (https://<resource>.openai.azure.com), the api_version "
                f"({ctx.api_version or 'v1'}) and the api_mode ('dated' or 'v1')."
            )
        return DeploymentNotFoundError(
            f"Deployment '{ctx.deployment}' not found at {_strip_query(ctx.endpoint)}: {service_message}",
            suggestion=hint,
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
            return QuotaExceededError(f"Quota exhausted for {where}: {service_message}", **common)
        return RateLimitError(f"Rate limited by {where}: {service_message}", **common)
    if status >= 500:
        return ServiceError(
            f"Azure OpenAI failed serving {where} (HTTP {status}): {service_message}", **common
        )
    return InvalidRequestError(
        f"Azure OpenAI rejected the {ctx.operation} request to {where} (HTTP {status}): {service_message}",
        **common,
    )


def _auth_hint(ctx: RequestContext, message: str) -> str:
    if ctx.auth == "entra" or "token" in message.lower() or "principal" in message.lower():
        return (
            "The Entra ID token was rejected: check that the token scope is "
            "https://cognitiveservices.azure.com/.default (token_scope), that the identity has the "
            "'Cognitive Services OpenAI User' role on this resource, and that a token provider (not a "
            "fixed token) is used so tokens refresh."
        )
    return (
        f"The API key was rejected by {_strip_query(ctx.endpoint)}: copy key 1 or key 2 from Azure portal "
        "> your resource > Keys and Endpoint for THIS resource (set AZURE_OPENAI_API_KEY or api_key), or "
        "remove the key to use Microsoft Entra ID."
    )


def _invalid_request_hint(body: Mapping[str, Any], message: str) -> str:
    param = body.get("param")
    if "json" in message.lower() and "json_object" in message:
        return "With JSON mode, mention the word 'json' in the messages (azmem does this for you)."
    if "max_tokens" in message or "temperature" in message or "reasoning" in message.lower():
        return (
            "This looks like a reasoning model: set capabilities.reasoning=true for the deployment so "
            "azmem sends max_completion_tokens and no temperature."
        )
    if param:
        return f"Check the '{param}' parameter of the request."
    return "Check the request parameters against the deployment's model and api_version."
