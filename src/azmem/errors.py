"""The one exception tree of azmem, secret redaction, and the error -> exit code / HTTP status table.

::

    AzmemError
    ├── ConfigurationError            bad or missing settings (developer misuse, never retried)
    ├── InvalidInputError (ValueError)  bad arguments from the caller
    │   └── PayloadTooLargeError      a body or text over its size limit (HTTP 413)
    ├── MemoryNotFoundError           no such memory (or not in the caller's scope)
    ├── ScopeDeniedError              a key or binding reaching for another scope
    ├── AuthRequiredError             no API key, or one that is unknown or revoked (HTTP 401)
    ├── KeyRateLimitedError           an API key over its own request rate (HTTP 429)
    ├── StoreError                    the store cannot be opened, read or written
    │   ├── StoreUnavailableError     the database is down or restarting (retryable)
    │   ├── StoreAuthError            the database refused our credentials
    │   └── SchemaVersionError        the store was written by a newer azmem
    ├── EmbedderMismatchError         vectors made by another embedder
    │   (the service: Azure OpenAI, mapped from SDK errors in ``azmem.azure.errors``)
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
    └── StructuredOutputError         validation still failing after the re-ask budget

This module is the ground floor: every layer imports it and it imports no layer, so
the store and the local embedder raise from the same tree as the Azure client without
depending on it. Errors are caught by type all the way up (tracing re-raises the same
object), so every field a caller might branch on is an attribute (``code``,
``suggestion``, ``retryable``, ``retry_after``), and nothing a user might paste into an
issue carries a secret: messages and details go through :func:`redact`.
"""

from __future__ import annotations

import enum
import re
import threading
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

__all__ = [
    "REDACTED",
    "SECRET_KEY_NAMES",
    "AuthRequiredError",
    "AuthenticationError",
    "AzmemError",
    "ConfigurationError",
    "ConflictError",
    "ContentFilterError",
    "ContextLengthError",
    "DeploymentNotFoundError",
    "EmbedderMismatchError",
    "EmptyResponseError",
    "ExitCode",
    "InvalidInputError",
    "InvalidRequestError",
    "JsonSchemaUnsupportedError",
    "KeyRateLimitedError",
    "MemoryNotFoundError",
    "NetworkError",
    "OutputTruncatedError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "RateLimitError",
    "RefusalError",
    "SchemaVersionError",
    "ScopeDeniedError",
    "ServiceError",
    "StoreAuthError",
    "StoreError",
    "StoreUnavailableError",
    "StructuredOutputError",
    "TimeoutError",
    "exit_code_for",
    "http_status_for",
    "redact",
    "redact_value",
    "register_secret",
]


class _HasDebugInfo(Protocol):
    def debug_info(self) -> dict[str, Any]: ...


# --------------------------------------------------------------------------- redaction

_secrets_lock = threading.Lock()
_known_secrets: set[str] = set()

REDACTED = "***"
# Patterns catch secrets we were never told about (a key pasted into an endpoint, a token
# echoed in a service message). Exact registered values catch the rest.
_SECRET_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-._~+/]{8,}=*"),
    re.compile(
        r"(?i)((?<![a-z])(?:api[-_]?key|authorization|access[-_]?token|client[-_]?secret|token|sig|key)"
        r"[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;}]{8,}"
    ),
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
            text = text.replace(secret, REDACTED)
    for pattern in _SECRET_PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        else:
            text = pattern.sub(REDACTED, text)
    return text


SECRET_KEY_NAMES = re.compile(
    r"(?i)^(?:x-)?(api[-_]?key|authorization|(access[-_]?|refresh[-_]?|id[-_]?)?token|(client[-_]?)?secret"
    r"|password|credential|sig|ocp-apim-subscription-key)$"
)


def redact_value(value: Any, key: str | None = None) -> Any:
    """Redact a JSON-like value: strings through :func:`redact`, secret-named keys wholesale."""
    if key is not None and SECRET_KEY_NAMES.search(key) and value is not None and not isinstance(value, bool):
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {str(k): redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


# --------------------------------------------------------------------------- the tree


class AzmemError(Exception):
    """Root of every error azmem raises.

    ``retryable`` is a class-level fact used by :class:`azmem.azure.retry.RetryPolicy`;
    ``retry_after`` carries the service's own hint (seconds) when it sent one.
    """

    retryable: ClassVar[bool] = False
    default_suggestion: ClassVar[str | None] = None
    default_code: ClassVar[str] = "error"
    """The machine-readable code when the raiser gave none (``error_code=``)."""

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
        self.details: dict[str, Any] = redact_value(dict(details or {}))
        self.suggestion = redact(suggestion) if suggestion else self.default_suggestion
        self.debug_info: dict[str, Any] = redact_value(dict(debug_info or {}))
        self.status_code = status_code
        self.retry_after = retry_after
        super().__init__(self.message)

    @property
    def code(self) -> str:
        """A stable snake_case code for scripts, HTTP problem types and metrics."""
        return self.error_code or self.default_code

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
            "code": self.code,
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

    default_code = "configuration"


class AuthenticationError(AzmemError):
    default_code = "authentication_failed"
    default_suggestion = (
        "Check the API key for this endpoint (Azure portal > your resource > Keys and Endpoint), "
        "or remove it to use Microsoft Entra ID."
    )


class PermissionDeniedError(AzmemError):
    default_code = "permission_denied"
    default_suggestion = (
        "Grant the identity the 'Cognitive Services OpenAI User' role on the resource, and check "
        "its network rules (firewall, private endpoint)."
    )


class DeploymentNotFoundError(AzmemError):
    default_code = "deployment_not_found"
    default_suggestion = "Check the deployment name and the endpoint."


class InvalidRequestError(AzmemError):
    default_code = "invalid_request"
    default_suggestion = "Check the request parameters against the deployment's model and api_version."


class ContentFilterError(InvalidRequestError):
    """Azure's content filter blocked the prompt (HTTP 400) or the output (finish_reason).

    ``categories`` maps each category (hate, sexual, violence, self_harm, jailbreak,
    protected_material_text, ...) to the service's verdict, e.g. ``{"filtered": True,
    "severity": "high"}``.
    """

    default_code = "content_filter"

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
        ctx: _HasDebugInfo | None = None,
        status_code: int | None = None,
        debug_info: Mapping[str, Any] | None = None,
    ) -> ContentFilterError:
        """Build from a ``content_filter_result(s)`` mapping (error body or a choice)."""
        categories = _filter_categories(results)
        blocked = [k for k, v in categories.items() if v.get("filtered") or v.get("detected")]
        what = "prompt" if source == "prompt" else "model output"
        verdicts = (
            ", ".join(f"{k}={categories[k].get('severity', 'detected')}" for k in sorted(blocked))
            or "no category reported"
        )
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
    default_code = "context_length_exceeded"
    default_suggestion = (
        "Shorten the messages (fewer or smaller memories, a shorter history) or use a deployment "
        "whose model has a larger context window."
    )


class JsonSchemaUnsupportedError(InvalidRequestError):
    """The deployment or api-version rejects ``response_format: json_schema``.

    The LLM client catches this to fall back to json_object and remembers it per deployment.
    """

    default_code = "json_schema_unsupported"


class RateLimitError(AzmemError):
    default_code = "rate_limited"
    retryable = True
    default_suggestion = (
        "Transient throttling: azmem retries with backoff. If it persists, raise the deployment's "
        "tokens-per-minute quota or lower concurrency."
    )


class QuotaExceededError(AzmemError):
    default_code = "quota_exceeded"
    default_suggestion = (
        "The service asked to wait longer than the retry ceiling allows: the deployment's quota is "
        "exhausted. Raise the quota, use another deployment, or raise RetryPolicy.retry_after_ceiling."
    )


class ConflictError(AzmemError):
    default_code = "conflict"
    retryable = True
    default_suggestion = "A concurrent operation conflicted; azmem retries. If it persists, try again later."


class ServiceError(AzmemError):
    default_code = "service_error"
    retryable = True
    default_suggestion = "Azure OpenAI had a server-side problem; azmem retried. Try again later."


class NetworkError(AzmemError):
    default_code = "network_error"
    retryable = True
    default_suggestion = "Check the endpoint URL, DNS, proxy settings and the network path to Azure."


class TimeoutError(NetworkError):  # shadows the builtin on purpose: the contract name
    default_code = "timeout"
    retryable = True
    default_suggestion = (
        "The request timed out. Raise the timeout setting, lower max_tokens, or check the network path "
        "to the endpoint."
    )


AzmemTimeoutError = TimeoutError


class RefusalError(AzmemError):
    default_code = "refusal"

    def __init__(self, message: str, *, refusal: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.refusal = refusal


class EmptyResponseError(AzmemError):
    default_code = "empty_response"
    default_suggestion = "The model returned nothing; retry, or raise max_tokens for reasoning models."


class OutputTruncatedError(AzmemError):
    default_code = "output_truncated"
    default_suggestion = "The model hit the token limit: raise max_tokens (or max_completion_tokens)."


class StructuredOutputError(AzmemError):
    default_code = "structured_output_invalid"


class InvalidInputError(AzmemError, ValueError):
    default_code = "invalid_input"


class PayloadTooLargeError(InvalidInputError):
    """A request body, a text or a batch over its size limit: split it, do not retry it as is."""

    default_code = "too_large"
    default_suggestion = "Split the content into several smaller requests."


class MemoryNotFoundError(AzmemError):
    default_code = "memory_not_found"


class StoreError(AzmemError):
    default_code = "store_error"


class EmbedderMismatchError(AzmemError):
    default_code = "embedder_mismatch"


class StoreUnavailableError(StoreError):
    """The database cannot be reached (down, restarting, network): safe to retry later."""

    retryable = True
    default_code = "store_unavailable"
    default_suggestion = "Check that the database server is running and reachable, then retry."


class StoreAuthError(StoreError):
    default_code = "store_auth_failed"
    default_suggestion = (
        "Check the user and password in the store URL, or the Microsoft Entra ID role mapped to it."
    )


class SchemaVersionError(StoreError):
    default_code = "schema_too_new"
    default_suggestion = "This store was written by a newer azmem: upgrade azmem (pip install -U azmem)."


class ScopeDeniedError(AzmemError):
    """The caller (an API key, a server binding) may not reach the scope it asked for."""

    default_code = "scope_denied"
    default_suggestion = "Use an API key bound to this user / agent / run, or ask the operator for one."


class AuthRequiredError(AzmemError):
    """A server request without a valid API key: none sent, malformed, unknown or revoked.

    Distinct from `AuthenticationError`, which is Azure refusing *our* credential: this
    one is azmem's own server refusing the caller's.
    """

    default_code = "auth_required"
    default_suggestion = (
        "Send 'Authorization: Bearer <key>' with a key from `azmem keys create NAME --user ID`; "
        "a revoked key stays refused."
    )


class KeyRateLimitedError(AzmemError):
    """An API key sent more requests than its own limit allows; ``retry_after`` says when to resume."""

    default_code = "key_rate_limited"
    retryable = True
    default_suggestion = "Slow down to the key's rate limit (see `azmem keys list`), or ask for a higher one."


def _filter_categories(results: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, verdict in (results or {}).items():
        if isinstance(verdict, Mapping):
            out[str(name)] = {str(k): v for k, v in verdict.items() if k != "citation"}
    return out


# --------------------------------------------------------------------------- exit codes and HTTP


class ExitCode(enum.IntEnum):
    """Process exit codes, stable so scripts can branch on the kind of failure.

    The split follows who has to act: the user's settings (CONFIG), the data the user
    passed (INPUT), the remote service (SERVICE: often worth retrying later), or the
    local store (STORE). ``2`` is click's own code for a malformed command line.
    """

    OK = 0
    CHECKS_FAILED = 1
    USAGE = 2
    CONFIG = 3
    INPUT = 4
    SERVICE = 5
    STORE = 6
    INTERNAL = 70
    INTERRUPTED = 130


#: The one table: error class -> (CLI exit code, HTTP status). The most specific class on
#: an error's MRO wins, so a subclass added later lands in its parent's row.
_TABLE: dict[type[BaseException], tuple[ExitCode, int]] = {
    AzmemError: (ExitCode.SERVICE, 500),
    ConfigurationError: (ExitCode.CONFIG, 500),
    AuthenticationError: (ExitCode.CONFIG, 503),
    PermissionDeniedError: (ExitCode.CONFIG, 503),
    DeploymentNotFoundError: (ExitCode.CONFIG, 503),
    EmbedderMismatchError: (ExitCode.CONFIG, 409),
    InvalidRequestError: (ExitCode.SERVICE, 502),
    InvalidInputError: (ExitCode.INPUT, 422),
    MemoryNotFoundError: (ExitCode.INPUT, 404),
    ContentFilterError: (ExitCode.INPUT, 422),
    ContextLengthError: (ExitCode.INPUT, 413),
    ScopeDeniedError: (ExitCode.INPUT, 403),
    PayloadTooLargeError: (ExitCode.INPUT, 413),
    AuthRequiredError: (ExitCode.CONFIG, 401),
    KeyRateLimitedError: (ExitCode.SERVICE, 429),
    RateLimitError: (ExitCode.SERVICE, 429),
    QuotaExceededError: (ExitCode.SERVICE, 429),
    ConflictError: (ExitCode.SERVICE, 409),
    ServiceError: (ExitCode.SERVICE, 503),
    NetworkError: (ExitCode.SERVICE, 503),
    RefusalError: (ExitCode.SERVICE, 502),
    EmptyResponseError: (ExitCode.SERVICE, 502),
    OutputTruncatedError: (ExitCode.SERVICE, 502),
    StructuredOutputError: (ExitCode.SERVICE, 502),
    StoreError: (ExitCode.STORE, 503),
    StoreAuthError: (ExitCode.CONFIG, 503),
    SchemaVersionError: (ExitCode.CONFIG, 503),
}

#: Errors raised outside the tree that still have a meaning (the CLI's unreadable files
#: and the local embedder's missing model), registered by class name, not imported.
_BY_NAME: dict[str, tuple[ExitCode, int]] = {
    "InputFileError": (ExitCode.INPUT, 422),
    "EmbeddingModelError": (ExitCode.CONFIG, 503),
}


def _row(exc: BaseException) -> tuple[ExitCode, int] | None:
    for cls in type(exc).__mro__:
        row = _TABLE.get(cls) or _BY_NAME.get(cls.__name__)
        if row is not None:
            return row
    return None


def exit_code_for(exc: BaseException) -> ExitCode:
    """The documented CLI exit code for an exception (INTERNAL for anything outside the tree)."""
    row = _row(exc)
    return row[0] if row else ExitCode.INTERNAL


def http_status_for(exc: BaseException) -> int:
    """The HTTP status a server answers with for an exception (500 outside the tree)."""
    row = _row(exc)
    return row[1] if row else 500
