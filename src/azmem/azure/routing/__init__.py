"""Routing and resilience across Azure OpenAI deployments.

Pools of deployments per logical model, load-balancing strategies, cooldowns and a circuit
breaker per deployment, client-side TPM/RPM limiting shared across processes, and opt-in
fallbacks between logical models. The decision core (:class:`Router` / :class:`Call`) is
pure and shared by the sync and async clients. See docs/routing.md.
"""

from azmem.azure.routing.clock import Clock, ManualClock, SystemClock
from azmem.azure.routing.errors import NoDeploymentAvailableError
from azmem.azure.routing.estimate import EstimateCorrector, estimate_prompt_tokens
from azmem.azure.routing.health import BreakerState, Health
from azmem.azure.routing.limiter import Grant, MemoryLedger, SQLiteLedger
from azmem.azure.routing.pool import (
    BreakerPolicy,
    DeploymentSpec,
    FallbackSpec,
    LimiterSpec,
    PoolSpec,
    RoutingConfig,
)
from azmem.azure.routing.router import Attempt, Call, GiveUp, Requirements, Router, Wait

__all__ = [
    "Attempt",
    "BreakerPolicy",
    "BreakerState",
    "Call",
    "Clock",
    "DeploymentSpec",
    "EstimateCorrector",
    "FallbackSpec",
    "GiveUp",
    "Grant",
    "Health",
    "LimiterSpec",
    "ManualClock",
    "MemoryLedger",
    "NoDeploymentAvailableError",
    "PoolSpec",
    "Requirements",
    "Router",
    "RoutingConfig",
    "SQLiteLedger",
    "SystemClock",
    "Wait",
    "estimate_prompt_tokens",
]
