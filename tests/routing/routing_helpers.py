"""Builders shared by the routing tests: a router on a manual clock and errors like the mapper's."""

from __future__ import annotations

import random
from typing import Any

from azmem.azure.routing import Attempt, Call, ManualClock, MemoryLedger, Router, RoutingConfig
from azmem.errors import AzmemError, RateLimitError, ServiceError


def dep(name: str, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": name, "endpoint": f"https://{name}.example.com", "deployment": "gpt-4o"}
    base.update(kw)
    return base


def make_router(pools: dict[str, Any], **cfg: Any) -> tuple[Router, ManualClock]:
    clock = ManualClock()
    config = RoutingConfig.load({"pools": pools, **cfg})
    ledger = MemoryLedger(config.limiter.window, config.limiter.margin)
    router = Router(config, clock=clock, ledger=ledger, rng=random.Random(7))
    return router, clock


def attempt(call: Call) -> Attempt:
    d = call.next()
    assert isinstance(d, Attempt), d
    return d


def throttled(retry_after: float | None = None) -> AzmemError:
    return RateLimitError("Rate limited", status_code=429, retry_after=retry_after)


def server_error() -> AzmemError:
    return ServiceError("boom", status_code=503)


# --------------------------------------------------------------------------- against the emulator


def emu_pool(
    emulator: Any, *names: str, model: str = "gpt-4o", **per: dict[str, Any]
) -> list[dict[str, Any]]:
    """Add deployments to the emulator and describe them as a pool on its endpoint."""
    from azmem.emulator import Deployment

    pool = []
    for name in names:
        emulator.add_deployment(Deployment(name, model=model))
        entry: dict[str, Any] = {
            "name": name,
            "endpoint": emulator.endpoint,
            "deployment": name,
            "api_key": "test-key",
            "model": model,
        }
        entry.update(per.get(name, {}))
        pool.append(entry)
    return pool


def emu_router(pools: dict[str, Any], **cfg: Any) -> Router:
    cfg.setdefault("limiter", {"backend": "memory"})
    return Router(RoutingConfig.load({"pools": pools, **cfg}), rng=random.Random(11))


def statuses(emulator: Any, deployment: str) -> list[int | None]:
    return [r.status for r in emulator.requests_for(deployment)]
