"""The one place SDK clients are built (mem0 copies this setup into three files that drifted).

Dated API: ``AzureOpenAI(azure_endpoint=..., api_version=...)`` WITHOUT
``azure_deployment``, so the base URL is ``{endpoint}/openai`` and the ``model=`` we send
(:meth:`AzureProvider.model_arg`, the deployment name) routes the request to
``/deployments/{model}/...``. One client per role, and a caller's own client built with
``azure_deployment=`` keeps working because then ``model`` no longer affects the URL.

v1 API: plain ``OpenAI(base_url="{endpoint}/openai/v1/")`` (``AzureOpenAI`` with that
base URL builds wrong paths); the key is the ``api_key``, or for Entra ID a token provider
is the ``api_key`` callable (sync for ``OpenAI``, async for ``AsyncOpenAI``), which the SDK
calls before every request.

SDK retries are always off (``max_retries=0``): :mod:`azmem.azure.retry` decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import threading
from typing import Any

import httpx2
import openai

from azmem.errors import ConfigurationError

from .auth import AuthPlan, plan_auth
from .errors import RequestContext
from .settings import AzureOpenAISettings, Capabilities

__all__ = ["AzureProvider"]


class _Client(httpx2.Client):
    """The SDK's defaults (limits, redirects) plus its safety net: close on garbage collection.

    Users who never call ``close()`` must not get ResourceWarnings for sockets; the SDK's own
    client does the same.
    """

    def __del__(self) -> None:
        if not self.is_closed:
            with contextlib.suppress(Exception):
                self.close()


class _AsyncClient(httpx2.AsyncClient):
    def __del__(self) -> None:
        if self.is_closed:
            return
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().create_task(self.aclose())


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One TLS context per process: loading the CA bundle costs ~50 ms per client otherwise.

    Built exactly as httpx2 builds its default (certifi, SSL_CERT_FILE/SSL_CERT_DIR honoured).
    """
    return httpx2.create_ssl_context()


class AzureProvider:
    """Owns one role's endpoint, auth, API mode and the lifetime of its SDK clients."""

    def __init__(
        self,
        settings: AzureOpenAISettings,
        *,
        client: openai.OpenAI | None = None,
        async_client: openai.AsyncOpenAI | None = None,
    ) -> None:
        self.settings = settings
        self._owns_client = client is None
        self._owns_async_client = async_client is None
        self._lock = threading.Lock()
        self._auth: AuthPlan | None = None
        self._deployment = settings.deployment
        if client is None and async_client is None:
            settings.require()
            self._auth = plan_auth(settings)
        elif not self._deployment:
            # A client built with azure_deployment=... names it; otherwise `model=` needs it.
            wrapped = client if client is not None else async_client
            self._deployment = getattr(wrapped, "_azure_deployment", None)
            if not self._deployment:
                raise ConfigurationError(
                    "A wrapped SDK client needs the deployment name to send as `model`.",
                    error_code="missing_deployment",
                    suggestion="Pass AzureOpenAISettings(deployment='<name>') along with the client.",
                )
        # A caller's client keeps its connection pool and credentials, but never its own retries:
        # they would hide attempts from our logs and spans and multiply ours. `with_options` makes
        # a copy that shares the HTTP client, so the caller's object is left as it was; the
        # settings' default_headers are added to the client's own.
        self._client: openai.OpenAI | None = self._adopt(client)
        self._async_client: openai.AsyncOpenAI | None = self._adopt(async_client)

    def _adopt(self, client: Any) -> Any:
        if client is None:
            return None
        headers = dict(self.settings.default_headers)
        if client.max_retries == 0 and not headers:
            return client
        return client.with_options(max_retries=0, default_headers=headers or None)

    # -- facts ---------------------------------------------------------------------

    @property
    def deployment(self) -> str:
        return self._deployment or ""

    @property
    def endpoint(self) -> str:
        if self.settings.endpoint:
            return self.settings.endpoint
        wrapped = self._client or self._async_client
        if wrapped is None:
            return ""
        # The resource, as an `endpoint` setting would name it: a wrapped client's base URL
        # ends in /openai, /openai/v1 or /openai/deployments/<name>, which errors should not quote.
        url = str(wrapped.base_url).rstrip("/")
        cut = url.rfind("/openai")
        return url[:cut] if cut > 0 else url

    @property
    def api_version(self) -> str | None:
        return self.settings.api_version if self.settings.api_mode == "dated" else None

    @property
    def capabilities(self) -> Capabilities:
        return self.settings.resolved_capabilities()

    @property
    def auth_kind(self) -> str | None:
        return self._auth.kind if self._auth else None

    def model_arg(self) -> str:
        """The ``model=`` value: the deployment name, for both API modes."""
        return self.deployment

    def context(self, operation: str, attempt: int = 1) -> RequestContext:
        """A RequestContext for error mapping and logs."""
        return RequestContext(
            operation=operation,
            deployment=self.deployment,
            endpoint=self.endpoint,
            api_version=self.api_version,
            attempt=attempt,
            auth=self.auth_kind,
        )

    # -- clients -------------------------------------------------------------------

    def sync_client(self) -> openai.OpenAI:
        """The sync SDK client (``AzureOpenAI`` for dated, ``OpenAI`` for v1); built once, lazily."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._build_sync()
        return self._client

    def async_client(self) -> openai.AsyncOpenAI:
        """The async SDK client (``AsyncAzureOpenAI`` / ``AsyncOpenAI``); built once, lazily."""
        if self._async_client is None:
            with self._lock:
                if self._async_client is None:
                    self._async_client = self._build_async()
        return self._async_client

    def _timeout(self) -> httpx2.Timeout:
        s = self.settings
        return httpx2.Timeout(s.timeout, connect=s.connect_timeout)

    def _http_kwargs(
        self, transport: type[httpx2.HTTPTransport] | type[httpx2.AsyncHTTPTransport]
    ) -> dict[str, Any]:
        """Keyword arguments for the sync or async httpx client: timeouts, TLS, proxies."""
        proxy = self.settings.proxy
        kwargs: dict[str, Any] = {"timeout": self._timeout(), "verify": _ssl_context()}
        if isinstance(proxy, str):
            kwargs["proxy"] = proxy
        elif proxy:
            tls = _ssl_context()
            kwargs["mounts"] = {s: transport(proxy=url, verify=tls) for s, url in proxy.items()}
        return {"limits": openai.DEFAULT_CONNECTION_LIMITS, "follow_redirects": True, **kwargs}

    def _http_client(self) -> httpx2.Client:
        return _Client(**self._http_kwargs(httpx2.HTTPTransport))

    def _async_http_client(self) -> httpx2.AsyncClient:
        return _AsyncClient(**self._http_kwargs(httpx2.AsyncHTTPTransport))

    def _common(self) -> dict[str, Any]:
        return {
            "max_retries": 0,
            "timeout": self._timeout(),
            "default_headers": dict(self.settings.default_headers) or None,
        }

    def _sdk_kwargs(self, *, sync: bool) -> tuple[bool, dict[str, Any]]:
        """(v1 mode?, keyword arguments) for the sync or async SDK client built from settings."""
        s, auth = self.settings, self._auth
        if auth is None or s.endpoint is None:
            passed, wanted, pass_also = (
                ("an async", "sync", "client=") if sync else ("a sync", "async", "async_client=")
            )
            raise ConfigurationError(
                f"Only {passed} SDK client was passed to AzureProvider; there is no {wanted} client to use.",
                suggestion=f"Pass {pass_also} as well, or let azmem build both from settings.",
            )
        http_client = self._http_client() if sync else self._async_http_client()
        common = {**self._common(), "http_client": http_client}
        token_provider = auth.sync_token_provider if sync else auth.async_token_provider
        if s.api_mode == "v1":
            api_key: Any = auth.api_key if auth.kind == "api_key" else token_provider()
            return True, {"base_url": f"{s.endpoint}/openai/v1/", "api_key": api_key, **common}
        creds: dict[str, Any] = (
            {"api_key": auth.api_key}
            if auth.kind == "api_key"
            else {"azure_ad_token_provider": token_provider()}
        )
        return False, {"azure_endpoint": s.endpoint, "api_version": s.api_version, **creds, **common}

    def _build_sync(self) -> openai.OpenAI:
        v1, kwargs = self._sdk_kwargs(sync=True)
        return openai.OpenAI(**kwargs) if v1 else openai.AzureOpenAI(**kwargs)

    def _build_async(self) -> openai.AsyncOpenAI:
        v1, kwargs = self._sdk_kwargs(sync=False)
        return openai.AsyncOpenAI(**kwargs) if v1 else openai.AsyncAzureOpenAI(**kwargs)

    # -- lifetime ------------------------------------------------------------------

    def close(self) -> None:
        """Close the sync client and credentials this provider created (never a caller's)."""
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None
        if self._auth is not None:
            self._auth.close()

    async def aclose(self) -> None:
        """Close every client and credential this provider created (never a caller's)."""
        if self._owns_async_client and self._async_client is not None:
            await self._async_client.close()
            self._async_client = None
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None
        if self._auth is not None:
            await self._auth.aclose()

    def __enter__(self) -> AzureProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> AzureProvider:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return (
            f"AzureProvider(deployment={self.deployment!r}, endpoint={self.endpoint!r}, "
            f"api_mode={self.settings.api_mode!r}, auth={self.auth_kind!r})"
        )
