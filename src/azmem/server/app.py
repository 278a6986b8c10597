"""`create_app`: one ASGI app with the REST API, the mem0-compatible routes, health, and MCP at /mcp.

Assembly only; each part lives in its own module:

* `gate` (request id, body limit, API key, rate, access log) wraps everything, /mcp too;
* `routes` (/v1), `graph_routes` (/v1/graph), `mem0` (mem0's paths), `health`
  (/healthz, /readyz, /v1/status);
* `mcp` (tools, the graph's from `graph_tools`) mounted at /mcp through the SDK's
  streamable-HTTP session manager;
* `problems` turns every failure into RFC 9457 problem details.

The lifespan starts the MCP session manager and loads the embedding model; at
shutdown (uvicorn's SIGTERM handling: stop accepting, finish in-flight requests) it
stops import jobs and closes the memory, graph, store and key ring this app opened.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from starlette.routing import Route

from azmem import __version__
from azmem.azure.settings import AzmemSettings
from azmem.azure.usage import UsageTracker
from azmem.graph import AsyncGraph
from azmem.memory import AsyncMemory
from azmem.server.config import ServerConfig
from azmem.server.gate import Gate
from azmem.server.graph_routes import graph_router
from azmem.server.health import health_router, status_router
from azmem.server.mcp import build_mcp
from azmem.server.mem0 import mem0_router
from azmem.server.problems import install_problem_handlers
from azmem.server.routes import v1_router
from azmem.server.runtime import build_services
from azmem.stores.keys import KeyRing

__all__ = ["create_app"]

log = logging.getLogger("azmem.server")

_DESCRIPTION = """\
Long-term memory for agents. Every route but the health probes needs
`Authorization: Bearer <key>` (keys: `azmem keys create NAME --user ID`); a key bound to
users / agents / runs reaches only those scopes, which are also its default scope.
Errors are RFC 9457 problem details (`application/problem+json`) with a `code` and a
`suggestion`. MCP (streamable HTTP) is served at `/mcp` with the same keys.

The temporal knowledge graph (`/v1/graph`) is partitioned in groups, and a group is a
user's graph: `group_id` = user id, so a key bound to users reaches their groups only.
Adding an episode needs a chat deployment (503 `no_chat_deployment` without one)."""


def create_app(
    memory: AsyncMemory | None = None,
    *,
    settings: AzmemSettings | None = None,
    config: ServerConfig | None = None,
    keys: KeyRing | None = None,
    usage: UsageTracker | None = None,
    graph: AsyncGraph | None = None,
) -> FastAPI:
    """The server's ASGI app.

    ``memory``: serve this `AsyncMemory` (the caller closes it); by default one is built
    from ``settings`` (default: the environment and ``AZMEM_CONFIG``) and closed at
    shutdown. ``keys``: the key ring to check keys against (default: the one in the
    store's database). ``usage``: the tracker behind ``/v1/status``' totals for a
    caller's memory (the app's own memory gets one). ``graph``: serve this `AsyncGraph`
    (the caller closes it); by default one is opened over the memory's store on the first
    graph request and closed at shutdown.
    """
    config = config or ServerConfig()
    services = build_services(memory, settings=settings, config=config, keys=keys, usage=usage, graph=graph)
    mcp_server = build_mcp(services)
    # Host checks are the gate's (with keys none are needed; without keys only loopback names pass).
    mcp_server.streamable_http_app(
        streamable_http_path="/mcp",
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        max_request_body_size=config.max_body_bytes,
    )
    session_manager = mcp_server.session_manager

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            async with session_manager.run():
                await services.warm_up()
                log.info("azmem server ready (store %s)", services.memory.store_url)
                yield
        finally:
            await services.aclose()
            log.info("azmem server stopped; store closed")

    app = FastAPI(
        title=config.title,
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "memories", "description": "Remember, list, change and forget memories."},
            {"name": "search", "description": "Find memories and answer from them."},
            {"name": "import", "description": "Bulk imports of conversations."},
            {
                "name": "graph",
                "description": "The temporal knowledge graph: episodes, entities, bi-temporal facts "
                "(group_id = user id).",
            },
            {"name": "status", "description": "What the server runs on and what it spent."},
            {"name": "health", "description": "Liveness and readiness probes (no key needed)."},
            {"name": "mem0-compatible", "description": "mem0's open-source REST server's routes and shapes."},
        ],
    )
    app.state.services = services
    app.state.mcp = mcp_server
    install_problem_handlers(app)
    app.include_router(health_router())
    app.include_router(status_router(auth=config.auth))
    app.include_router(v1_router(auth=config.auth))
    app.include_router(graph_router(auth=config.auth))
    app.include_router(mem0_router(auth=config.auth))
    app.router.routes.append(
        Route("/mcp", endpoint=StreamableHTTPASGIApp(session_manager), methods=["GET", "POST", "DELETE"])
    )

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    app.add_middleware(
        Gate, config=config, keys=lambda: services.keys, limiter=services.limiter, local=services.local
    )
    return app
