"""Liveness, readiness and status: what an orchestrator and an operator ask a server.

* ``/healthz``: the process answers (no I/O; never fails while the loop runs).
* ``/readyz``: the store answers a read, the embedding model is loaded, and Azure OpenAI's
  endpoints answer when deployments are configured (checked at most every 30 s: a
  probe hit every second must not become a load on Azure). 503 problem otherwise.
* ``/v1/status``: what this server runs on (store, embedder, deployments and their
  routing state) and what it spent (token and cost totals since start). A key bound to
  a scope sees the totals only, not the per-scope breakdown, which names other scopes.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from typing import Any

import httpx2
from fastapi import APIRouter, Request, Security
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from azmem import __version__
from azmem.embeddings.batching import AsyncBatchingEmbedder
from azmem.errors import AzmemError, StoreUnavailableError
from azmem.server.deps import Svc, Who, bearer, services_of
from azmem.server.principal import Principal
from azmem.server.problems import COMMON, Problem, error_responses, problem_of, problem_response
from azmem.server.runtime import Services
from azmem.stores.factory import backend_of

__all__ = ["Readiness", "StatusReport", "build_status", "health_router", "status_router"]

AZURE_CHECK_TTL = 30.0
_PROBE_SCOPE = "azmem-readiness-probe"
log = logging.getLogger("azmem.server")


class Readiness(BaseModel):
    status: str = "ready"
    checks: dict[str, str] = Field(description="Each check's verdict: 'ok', 'skipped' or what failed.")


class StatusReport(BaseModel):
    version: str
    store: str = Field(description="The store's URL, without its password.")
    backend: str
    embedder: str
    dimension: int
    infer: bool = Field(description="Whether add() extracts facts with a chat deployment by default.")
    routing: bool
    deployments: list[dict[str, Any]]
    usage: dict[str, Any] | None = Field(
        None, description="Tokens and estimated cost since the server started."
    )
    principal: dict[str, Any] = Field(description="The key this request used and what it is bound to.")
    embedding_batching: dict[str, Any] | None = Field(
        None,
        description="How concurrent requests' texts were batched for the local model since start "
        "(calls, texts, batches, texts_per_batch, retries, largest, pending) and its set-up "
        "(max_batch, max_wait_ms, workers); null when not batching.",
    )


async def _check_store(svc: Services) -> str:
    try:
        await svc.memory.get_all(user_id=_PROBE_SCOPE, limit=1)
    except AzmemError as exc:
        return f"{exc.code}: {exc.message}"
    return "ok"


async def _check_embedder(svc: Services) -> str:
    try:
        if not svc.embedder_ready:
            await svc.warm_up()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "ok"


def _endpoints(svc: Services) -> list[str]:
    from azmem.azure.routing.router import Router

    s = svc.settings
    found = [cfg.endpoint for cfg in (s.chat, s.small_chat, s.embedding) if cfg is not None and cfg.endpoint]
    router = Router.from_settings(s)
    if router is not None:
        found.extend(str(row["endpoint"]) for row in router.snapshot() if row.get("endpoint"))
    return sorted(set(found))


async def _check_azure(svc: Services) -> str:
    cached = svc.azure_cache(AZURE_CHECK_TTL)  # only ever set when there are endpoints
    if cached is not None:
        return str(cached["verdict"])
    # A routing snapshot reads its ledger (SQLite or PostgreSQL): not on the event loop.
    endpoints = await asyncio.to_thread(_endpoints, svc)
    if not endpoints:
        return "skipped"
    verdict = "ok"
    async with httpx2.AsyncClient(timeout=3.0) as client:
        for endpoint in endpoints:
            try:
                await client.get(endpoint)  # any HTTP answer (even 401/404) means reachable
            except httpx2.HTTPError as exc:
                verdict = f"{endpoint} unreachable: {type(exc).__name__}"
                break
    svc.remember_azure({"verdict": verdict})
    return verdict


def health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Readiness: store, embedder and Azure OpenAI",
        responses={200: {"model": Readiness}, **error_responses(503)},
        response_model=Readiness,
    )
    async def readyz(request: Request) -> JSONResponse | Readiness:
        svc = services_of(request)
        store, embedder, azure = await asyncio.gather(
            _check_store(svc), _check_embedder(svc), _check_azure(svc)
        )
        checks = {"store": store, "embedder": embedder, "azure": azure}
        failed = {k: v for k, v in checks.items() if v not in ("ok", "skipped")}
        if not failed:
            return Readiness(checks=checks)
        problem: Problem = problem_of(
            StoreUnavailableError(
                "Not ready: " + "; ".join(f"{k}: {v}" for k, v in failed.items()), error_code="not_ready"
            ),
            instance="/readyz",
        )
        return problem_response(problem)  # type: ignore[return-value]  # a problem+json Response

    return router


def build_status(svc: Services, who: Principal) -> StatusReport:
    """The status as this principal may see it (REST ``/v1/status`` and the MCP ``get_status`` tool)."""
    from azmem.azure.routing.router import Router
    from azmem.azure.settings import single_deployments

    s = svc.settings
    memory = svc.memory
    router = Router.from_settings(s)
    deployments = router.snapshot() if router is not None else single_deployments(s)
    usage = svc.usage.summary() if svc.usage is not None else None
    if usage is not None and not who.unbound:
        usage = {"total": usage["total"]}
    batching = None
    if isinstance(memory.embedder, AsyncBatchingEmbedder):
        stats = memory.embedder.stats
        batching = {
            **asdict(stats),
            "texts_per_batch": round(stats.texts_per_batch, 2),
            "pending": memory.embedder.pending,
            "max_batch": memory.embedder.max_batch,
            "max_wait_ms": memory.embedder.max_wait * 1000,
            "workers": memory.embedder.workers,
        }
    return StatusReport(
        version=__version__,
        store=memory.store_url,
        backend=backend_of(s.store_url),
        embedder=str(getattr(memory.embedder, "name", type(memory.embedder).__name__)),
        dimension=int(memory.embedder.dimension),
        infer=memory.can_infer,
        routing=router is not None,
        deployments=deployments,
        usage=usage,
        embedding_batching=batching,
        principal={
            "name": who.name,
            "read_only": who.read_only,
            "user_ids": list(who.user_ids),
            "agent_ids": list(who.agent_ids),
            "run_ids": list(who.run_ids),
            "rate_limit": who.rate_limit,
        },
    )


def status_router(*, auth: bool) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["status"], dependencies=[Security(bearer)] if auth else [])

    @router.get("/status", responses=error_responses(*COMMON), summary="Store, deployments, usage and cost")
    async def status(svc: Svc, who: Who) -> StatusReport:
        # A routing ledger in SQLite or PostgreSQL is read for the snapshot: not on the event loop.
        return await asyncio.to_thread(build_status, svc, who)

    return router
