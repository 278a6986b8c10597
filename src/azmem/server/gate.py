"""The one middleware every HTTP request passes: request id, size limit, API key, rate, access log.

Pure ASGI rather than a FastAPI dependency, so the MCP endpoint (an ASGI app of the
SDK's) is guarded by exactly the same code as the REST routes. In order:

1. a request id (the caller's ``X-Request-ID`` when it is plain, else a new one): set
   for logging, echoed in the response header, carried in every problem;
2. the body limit: a declared ``Content-Length`` over it is refused at once (413), an
   undeclared body is counted as it is read;
3. who is asking: the key in ``Authorization: Bearer`` (401 without a valid one), or
   the server's own principal when it runs without keys (then only for Host headers
   naming this machine: a DNS-rebinding page gets 403);
4. the key's own rate limit (429 with ``Retry-After``);
5. one access-log line: method, path (never the query string, which may hold filters
   over memory content), status, time, key name. No bodies, no keys.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import nullcontext
from time import perf_counter
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from azmem.errors import (
    AuthRequiredError,
    AzmemError,
    KeyRateLimitedError,
    PayloadTooLargeError,
    ScopeDeniedError,
)
from azmem.memory.audit import acting_as
from azmem.server.config import ServerConfig
from azmem.server.keyring import KeyVerifier, RateLimiter
from azmem.server.logs import REQUEST_ID_HEADER, new_request_id, request_id_var
from azmem.server.principal import Principal
from azmem.server.problems import problem_of, problem_response

__all__ = ["PUBLIC_PATHS", "Gate", "principal_of"]

#: Paths that answer without a key: probes and the API's description hold no memories.
PUBLIC_PATHS = frozenset(
    {"/", "/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
)
IMPORT_PATH = "/v1/import"
access_log = logging.getLogger("azmem.server.access")
log = logging.getLogger("azmem.server")


def principal_of(scope: Scope) -> Principal | None:
    """The principal the gate admitted for this request (None on public paths)."""
    found = scope.get("state", {}).get("azmem_principal")
    return found if isinstance(found, Principal) else None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class Gate:
    def __init__(
        self,
        app: ASGIApp,
        *,
        config: ServerConfig,
        keys: Callable[[], KeyVerifier | None],
        limiter: RateLimiter,
        local: Principal,
    ) -> None:
        """``keys`` is read per request: the key ring is opened in the app's lifespan, after this is built."""
        self.app = app
        self.config = config
        self._keys = keys
        self.limiter = limiter
        self.local = local

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = new_request_id(_header(scope, REQUEST_ID_HEADER.encode()))
        token = request_id_var.set(rid)
        state: dict[str, Any] = scope.setdefault("state", {})
        state["azmem_request_id"] = rid
        started = perf_counter()
        status: list[int] = []

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER.encode(), rid.encode())]
            await send(message)

        try:
            try:
                limit = self._limit(scope)
                who = await self._admit(scope)
            except AzmemError as exc:
                await self._refuse(exc, scope, receive, send_with_id)
                return
            # The audit trail names the API key, not the server process's OS user.
            with (
                acting_as(f"key:{who.name}") if who is not None and who.key_id is not None else nullcontext()
            ):
                await self.app(scope, self._counting(receive, limit), send_with_id)
        except Exception as exc:
            if status:  # the response had begun: nothing more can be said to this client
                raise
            log.error("unexpected error", exc_info=exc)
            await self._refuse(exc, scope, receive, send_with_id)
        finally:
            who = principal_of(scope)
            access_log.info(
                "%s %s %s %.1fms key=%s",
                scope.get("method", "-"),
                scope.get("path", "-"),
                status[0] if status else "-",
                (perf_counter() - started) * 1000,
                who.name if who is not None else "-",
            )
            request_id_var.reset(token)

    # -- the checks ---------------------------------------------------------------------

    def _limit(self, scope: Scope) -> int:
        limit = self.config.max_import_bytes if scope["path"] == IMPORT_PATH else self.config.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLargeError(
                f"The request body is {int(declared):,} bytes; the limit is {limit:,}."
            )
        return limit

    async def _admit(self, scope: Scope) -> Principal | None:
        path: str = scope["path"]
        if path in PUBLIC_PATHS:
            return None
        if not self.config.auth:
            self._check_host(scope)
            principal = self.local
        else:
            principal = await self._authenticate(scope)
            if principal.rate_limit is not None and principal.key_id is not None:
                wait = self.limiter.take(principal.key_id, principal.rate_limit)
                if wait is not None:
                    raise KeyRateLimitedError(
                        f"API key {principal.name!r} is over its limit of {principal.rate_limit} requests "
                        "per minute.",
                        retry_after=wait,
                    )
            if path == "/mcp" or path.startswith("/mcp/"):
                # The SDK binds each MCP session to the credential that opened it.
                scope["user"] = AuthenticatedUser(
                    AccessToken(token=principal.key_id or "", client_id=principal.key_id or "", scopes=[])
                )
        scope["state"]["azmem_principal"] = principal
        return principal

    async def _authenticate(self, scope: Scope) -> Principal:
        header = _header(scope, b"authorization")
        if header is None:
            raise AuthRequiredError("This server needs an API key: send 'Authorization: Bearer <key>'.")
        kind, _, secret = header.strip().partition(" ")
        if kind.lower() != "bearer" or not secret.strip():
            raise AuthRequiredError(
                "The Authorization header must be 'Bearer <key>'.", error_code="malformed_authorization"
            )
        verifier = self._keys()
        key = await verifier.verify(secret.strip()) if verifier is not None else None
        if key is None:
            raise AuthRequiredError(
                "The API key is not valid: unknown, revoked or mistyped.", error_code="invalid_key"
            )
        return Principal.of_key(key)

    def _check_host(self, scope: Scope) -> None:
        host = (_header(scope, b"host") or "").strip().lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name not in self.config.allowed_hosts:
            raise ScopeDeniedError(
                f"This server runs without API keys and answers only for this machine, "
                f"not Host {host[:80]!r}.",
                error_code="host_not_allowed",
                suggestion="Connect to 127.0.0.1 or localhost, or run the server with API keys.",
            )

    def _counting(self, receive: Receive, limit: int) -> Receive:
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLargeError(f"The request body is over the limit of {limit:,} bytes.")
            return message

        return counted

    async def _refuse(self, exc: BaseException, scope: Scope, receive: Receive, send: Send) -> None:
        problem = problem_of(
            exc, instance=scope.get("path"), request_id=scope["state"].get("azmem_request_id")
        )
        await problem_response(problem)(scope, receive, send)
