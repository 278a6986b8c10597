"""API key or Microsoft Entra ID, decided once per role.

Entra ID always goes through ``get_bearer_token_provider`` (the ``azure.identity.aio`` one
for async clients): it caches the token and refreshes it before expiry, and the SDK calls
it on every attempt. We never call ``credential.get_token(...)`` ourselves (the seed's
mistake: an AccessToken is neither callable nor a str, and a fixed token dies in an hour).

Placeholder keys (see :data:`PLACEHOLDER_PATTERNS`) count as "no key": the samples people
copy ship with ``your-api-key``, ``<your-key>`` or ``xxxx``, and sending those gives a 401
that hides the real intent (use Entra ID).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import SecretStr

from azmem.errors import AuthenticationError, ConfigurationError, redact, register_secret

from .errors import is_credential_error
from .placeholders import PLACEHOLDER_PATTERNS, is_placeholder_key, placeholder_shape
from .settings import AzmemSettings, AzureOpenAISettings

__all__ = [
    "PLACEHOLDER_PATTERNS",
    "POSTGRES_TOKEN_SCOPE",
    "AuthPlan",
    "is_placeholder_key",
    "plan_auth",
    "postgres_password",
    "postgres_token_provider",
    "wants_entra_for_postgres",
]

logger = logging.getLogger("azmem.azure.auth")

DEFAULT_AZURE_OPENAI_SCOPE = "https://cognitiveservices.azure.com/.default"

_logged: set[tuple[str, str | None]] = set()
_logged_lock = threading.Lock()


def _placeholder_reason(role: str, key: SecretStr) -> str:
    """E.g. "AZURE_OPENAI_API_KEY looks like a placeholder ('<your-api-key>' shape, value not shown)"."""
    raw = key.get_secret_value().strip()
    prefix = "EMBEDDING_AZURE_" if role == "embedding" else "LLM_AZURE_"
    origin = "the API key"
    for name in (prefix + "OPENAI_API_KEY", "AZURE_OPENAI_API_KEY"):
        value = os.environ.get(name)
        if value is not None and value.strip() == raw:
            origin = name
            break
    return f"{origin} looks like a placeholder ('{placeholder_shape(key)}' shape, value not shown)"


TokenProvider = Callable[[], str]
AsyncTokenProvider = Callable[[], Awaitable[str]]


@dataclass
class AuthPlan:
    """How one role authenticates; the provider turns this into SDK arguments.

    Credentials built here (not the user's own) are closed by :meth:`close` / :meth:`aclose`.
    """

    kind: Literal["api_key", "entra"]
    api_key: str | None = None
    scope: str = DEFAULT_AZURE_OPENAI_SCOPE
    source: str = ""
    """Human description ("api key", "DefaultAzureCredential", "your credential"), for logs."""
    reason: str = ""
    """Why Entra ID: "" (chosen), "no API key is set" or "the API key looks like a placeholder"."""
    _settings: AzureOpenAISettings | None = field(default=None, repr=False)
    _sync_credential: Any = field(default=None, repr=False)
    _async_credential: Any = field(default=None, repr=False)
    _owned: list[Any] = field(default_factory=list, repr=False)

    def sync_token_provider(self) -> TokenProvider:
        """A str-returning provider for sync clients (``get_bearer_token_provider``)."""
        user = self._settings.credential if self._settings else None
        if callable(user) and not _is_credential(user):
            if inspect.iscoroutinefunction(user):
                raise ConfigurationError(
                    "An async token provider cannot serve a sync client.",
                    error_code="async_credential_for_sync_client",
                    suggestion="Use AsyncLLMClient, or pass a sync callable / TokenCredential.",
                )
            return self._guarded(_checked_provider(user))
        from azure.identity import get_bearer_token_provider

        if self._sync_credential is None:
            if user is not None and _is_async_credential(user):
                raise ConfigurationError(
                    "An AsyncTokenCredential (azure.identity.aio) cannot serve a sync client.",
                    error_code="async_credential_for_sync_client",
                    suggestion="Pass the azure.identity (sync) credential, or use the async client.",
                )
            self._sync_credential = user if user is not None else self._build(asynchronous=False)
        return self._guarded(_checked_provider(get_bearer_token_provider(self._sync_credential, self.scope)))

    def async_token_provider(self) -> AsyncTokenProvider:
        """An awaitable provider for async clients (``azure.identity.aio.get_bearer_token_provider``).

        A sync credential or callable is accepted too: its provider caches the token, so the
        rare blocking refresh costs less than a thread hop on every request.
        """
        user = self._settings.credential if self._settings else None
        if callable(user) and not _is_credential(user):
            if inspect.iscoroutinefunction(user):
                return self._guarded_async(_checked_async_provider(user))
            return _as_async(self._guarded(_checked_provider(user)))
        if user is not None and not _is_async_credential(user):
            return _as_async(self.sync_token_provider())
        if user is None and not _has_async_transport():
            # azure.identity.aio needs aiohttp for its HTTP calls. Without it, use the sync
            # credential and keep its (rare, blocking) refreshes off the event loop.
            logger.debug("aiohttp is not installed; async Entra ID tokens come from the sync credential")
            return _in_thread(self.sync_token_provider())
        from azure.identity.aio import get_bearer_token_provider

        if self._async_credential is None:
            self._async_credential = user if user is not None else self._build(asynchronous=True)
        return self._guarded_async(
            _checked_async_provider(get_bearer_token_provider(self._async_credential, self.scope))
        )

    def _failure(self, exc: BaseException) -> AuthenticationError:
        """A credential that could not issue a token, explained with why Entra ID was used at all."""
        role = self._settings.role if self._settings else "chat"
        first = redact(str(exc)).strip().splitlines()
        detail = first[0] if first else type(exc).__name__
        fixes = (
            "sign in (`az login`), or configure a managed identity / service principal "
            "(AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_CLIENT_SECRET)"
        )
        failed = (
            f"Microsoft Entra ID ({self.source}) could not issue a token for scope {self.scope}: {detail}"
        )
        if self.reason:
            env = "EMBEDDING_AZURE_OPENAI_API_KEY" if role == "embedding" else "LLM_AZURE_OPENAI_API_KEY"
            key = "no API key is set"
            if not self.reason.startswith("no "):
                key = "the API key looks like a placeholder"
            suggestion = (
                f"For the {role} role {key}: set the real key ({env} or AZURE_OPENAI_API_KEY, "
                f"or api_key=...), or {fixes}."
            )
            why = self.reason[0].upper() + self.reason[1:]
            message = (
                f"{why}, so Microsoft Entra ID was tried: {self.source} could not issue a token "
                f"for scope {self.scope}: {detail}"
            )
        else:
            suggestion = f"Check the credential ({self.source}, scope {self.scope}): {fixes}."
            message = failed
        return AuthenticationError(
            message,
            error_code="entra_token_unavailable",
            suggestion=suggestion,
            details={"credential": self.source, "reason": self.reason or None},
        )

    def _guarded(self, provider: TokenProvider) -> TokenProvider:
        def call() -> str:
            try:
                return provider()
            except Exception as exc:
                if is_credential_error(exc):
                    raise self._failure(exc) from exc
                raise

        return call

    def _guarded_async(self, provider: AsyncTokenProvider) -> AsyncTokenProvider:
        async def call() -> str:
            try:
                return await provider()
            except Exception as exc:
                if is_credential_error(exc):
                    raise self._failure(exc) from exc
                raise

        return call

    def _build(self, *, asynchronous: bool) -> Any:
        settings = self._settings
        assert settings is not None
        if asynchronous:
            from azure.identity import aio as identity
        else:
            import azure.identity as identity  # type: ignore[no-redef]
        cred: Any
        if settings.tenant_id and settings.client_id and settings.client_secret:
            cred = identity.ClientSecretCredential(
                settings.tenant_id, settings.client_id, settings.client_secret.get_secret_value()
            )
        elif settings.use_managed_identity:
            cred = identity.ManagedIdentityCredential(client_id=settings.managed_identity_client_id)
        else:
            kwargs = {}
            if settings.managed_identity_client_id:
                kwargs["managed_identity_client_id"] = settings.managed_identity_client_id
            cred = identity.DefaultAzureCredential(**kwargs)
        self._owned.append(cred)
        return cred

    def close(self) -> None:
        for cred in self._owned:
            close = getattr(cred, "close", None)
            if close is not None and not inspect.iscoroutinefunction(close):
                close()

    async def aclose(self) -> None:
        for cred in self._owned:
            close = getattr(cred, "close", None)
            if close is None:
                continue
            result = close()
            if inspect.isawaitable(result):
                await result


def _has_async_transport() -> bool:
    import importlib.util

    return importlib.util.find_spec("aiohttp") is not None


def _in_thread(provider: TokenProvider) -> AsyncTokenProvider:
    async def call() -> str:
        return await asyncio.to_thread(provider)

    return call


def _is_credential(obj: Any) -> bool:
    return callable(getattr(obj, "get_token", None)) or callable(getattr(obj, "get_token_info", None))


def _is_async_credential(obj: Any) -> bool:
    get_token = getattr(obj, "get_token", None) or getattr(obj, "get_token_info", None)
    return get_token is not None and inspect.iscoroutinefunction(get_token)


_GET_TOKEN_MISTAKE = (
    "The token provider returned {kind}, not a str. This is the `credential.get_token(scope)` "
    "mistake: pass the credential itself (credential=DefaultAzureCredential()) and azmem wraps it "
    "with get_bearer_token_provider, or pass get_bearer_token_provider(credential, scope)."
)


def _check_token(token: Any) -> str:
    if isinstance(token, str) and token:
        register_secret(token)
        return token
    kind = type(token).__name__
    raise ConfigurationError(
        _GET_TOKEN_MISTAKE.format(kind=f"a {kind}" if token is not None else "None"),
        error_code="bad_token_provider",
    )


def _checked_provider(provider: Callable[[], Any]) -> TokenProvider:
    def call() -> str:
        return _check_token(provider())

    return call


def _checked_async_provider(provider: Callable[[], Awaitable[Any]]) -> AsyncTokenProvider:
    async def call() -> str:
        return _check_token(await provider())

    return call


def _as_async(provider: TokenProvider) -> AsyncTokenProvider:
    async def call() -> str:
        return provider()

    return call


def _validate_credential(credential: Any) -> None:
    if isinstance(credential, type):
        raise ConfigurationError(
            f"credential is the class {credential.__name__}, not an instance.",
            error_code="bad_token_provider",
            suggestion=f"Pass credential={credential.__name__}() (with parentheses).",
        )
    if credential is None or _is_credential(credential):
        return
    if hasattr(credential, "token") and hasattr(credential, "expires_on"):
        raise ConfigurationError(
            "credential is an AccessToken (the result of credential.get_token(...)), which expires in "
            "about an hour and cannot be refreshed.",
            error_code="bad_token_provider",
            suggestion="Pass the credential object itself, e.g. credential=DefaultAzureCredential().",
        )
    if isinstance(credential, str):
        raise ConfigurationError(
            "credential is a fixed token string, which expires in about an hour.",
            error_code="bad_token_provider",
            suggestion="Pass a TokenCredential, or a callable returning a fresh token "
            "(get_bearer_token_provider).",
        )
    if not callable(credential):
        raise ConfigurationError(
            "credential must be a TokenCredential or a token-provider callable, "
            f"not {type(credential).__name__}.",
            error_code="bad_token_provider",
        )


def plan_auth(settings: AzureOpenAISettings) -> AuthPlan:
    """Decide between the API key and Entra ID for one role.

    ``auth="auto"``: a passed ``credential`` or ``use_managed_identity`` means Entra ID;
    otherwise a real key; otherwise Entra ID, announced by one INFO line per role and
    endpoint so the switch is never silent. ``auth="api_key"`` with no real key is a
    ConfigurationError. Which credential: the one passed; else ClientSecretCredential when
    tenant_id, client_id and client_secret are set; else ManagedIdentityCredential
    (``managed_identity_client_id`` for a user-assigned identity) when
    ``use_managed_identity``; else DefaultAzureCredential.
    """
    _validate_credential(settings.credential)
    key = settings.api_key
    has_key = not is_placeholder_key(key)
    # An explicit credential or use_managed_identity is a deliberate choice of Entra ID; it
    # beats a key that may only come from a shared environment (as in Graphiti's
    # AZURE_OPENAI_USE_MANAGED_IDENTITY).
    entra_chosen = settings.credential is not None or settings.use_managed_identity
    if settings.auth == "api_key" or (settings.auth == "auto" and has_key and not entra_chosen):
        if not has_key:
            raise ConfigurationError(
                f"auth='api_key' but no usable API key is set for the {settings.role} role.",
                error_code="missing_api_key",
                suggestion=_key_hint(settings.role),
            )
        assert key is not None
        secret = key.get_secret_value().strip()
        register_secret(secret)
        return AuthPlan(kind="api_key", api_key=secret, source="api key", _settings=settings)

    source = (
        "your credential"
        if settings.credential is not None
        else "ClientSecretCredential"
        if settings.tenant_id and settings.client_id and settings.client_secret
        else "ManagedIdentityCredential"
        if settings.use_managed_identity
        else "DefaultAzureCredential"
    )
    why = ""
    if settings.auth == "auto" and not entra_chosen:
        why = "no API key is set" if key is None else _placeholder_reason(settings.role, key)
        marker = (settings.role, settings.endpoint)
        with _logged_lock:
            first = marker not in _logged
            _logged.add(marker)
        if first:
            logger.info(
                "azmem: %s for the %s deployment at %s; using Microsoft Entra ID (%s, scope %s).",
                why,
                settings.role,
                settings.endpoint,
                source,
                settings.token_scope,
            )
    return AuthPlan(kind="entra", scope=settings.token_scope, source=source, reason=why, _settings=settings)


def _key_hint(role: str) -> str:
    env = "EMBEDDING_AZURE_OPENAI_API_KEY" if role == "embedding" else "LLM_AZURE_OPENAI_API_KEY"
    return f"Set {env} or AZURE_OPENAI_API_KEY, pass api_key=..., or use auth='entra'."


# --------------------------------------------------------------------------- PostgreSQL

POSTGRES_TOKEN_SCOPE = "https://ossrdbms-aad.database.windows.net/.default"
"""The scope of Microsoft Entra ID tokens that Azure Database for PostgreSQL takes as passwords."""


def wants_entra_for_postgres(url: str, auth: str) -> bool:
    """Whether a PostgreSQL store signs in with an Entra ID token (``store.auth``)."""
    if auth != "auto":
        return auth == "entra"
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.password is None and (parts.hostname or "").endswith(".postgres.database.azure.com")


def postgres_password(settings: AzmemSettings, url: str) -> TokenProvider | None:
    """The password callable for a PostgreSQL store at ``url``: Entra ID tokens when the settings
    ask for them (``store.auth``, or an Azure host with no password in the URL), else None (the
    URL's own password). One rule for every place that opens the store."""
    if not wants_entra_for_postgres(url, settings.store.auth):
        return None
    return postgres_token_provider(settings)


def postgres_token_provider(settings: AzmemSettings) -> TokenProvider:
    """Tokens for Azure Database for PostgreSQL from the same credential machinery as the clients.

    The credential is the one the settings' chat (or embedding) role would use: a passed
    TokenCredential, a service principal, a managed identity, or DefaultAzureCredential.
    A bare token callable is scoped to Azure OpenAI, so it is not reused here. The
    provider caches the token and fetches a new one shortly before it expires, so each
    new pool connection gets a valid password.
    """
    base = settings.chat or settings.embedding or AzureOpenAISettings()
    credential = base.credential if _is_credential(base.credential) else None
    pg = base.model_copy(
        update={
            "auth": "entra",
            "token_scope": POSTGRES_TOKEN_SCOPE,
            "api_key": None,
            "credential": credential,
        }
    )
    return plan_auth(pg).sync_token_provider()
