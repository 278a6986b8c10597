"""What the router and a driver say to each other: requirements in, decisions out.

Plain frozen dataclasses, so the sync and async drivers, the embedders and the tests all
speak the same small vocabulary without importing the router's machinery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from azmem.azure.routing.health import Health
from azmem.azure.routing.limiter import Grant
from azmem.azure.routing.pool import DeploymentSpec
from azmem.azure.settings import Capabilities
from azmem.errors import AzmemError

__all__ = ["Attempt", "Decision", "DeploymentStats", "GiveUp", "Requirements", "Wait"]


@dataclass(frozen=True)
class Requirements:
    """What a request needs from a deployment, known before sending."""

    prompt_tokens: int = 0
    """Raw heuristic estimate (see :mod:`.estimate`); the router applies its learned correction."""
    max_output_tokens: int | None = None
    json_schema: bool = False
    """Prefer deployments with strict json_schema; if none has it, any will do (the LLM client
    falls back to json_object with the schema in the prompt)."""
    vision: bool = False
    context_tokens: int | None = None
    """What must fit one request's context window; default the whole reservation (prompt plus
    output budget). Embeddings set the largest single input: a call's inputs are batched."""


@dataclass(frozen=True)
class Attempt:
    model: str
    """The logical model (pool) this deployment belongs to; differs from the call's after a fallback."""
    deployment: DeploymentSpec
    number: int
    grant: Grant | None
    probe: bool
    skipped: Mapping[str, str]
    fallback: str | None = None
    """Which fallback brought the call to this pool ("general", "context_window", "content_filter")."""

    @property
    def label(self) -> str:
        return f"{self.model}/{self.deployment.name}"


@dataclass(frozen=True)
class Wait:
    seconds: float
    deployment: str
    """The deployment expected to recover first."""
    skipped: Mapping[str, str]


@dataclass(frozen=True)
class GiveUp:
    error: AzmemError


Decision = Attempt | Wait | GiveUp


@dataclass
class DeploymentStats:
    """Runtime facts about one Azure deployment, shared by every pool that lists it."""

    key: str
    health: Health
    inflight: int = 0
    latency: float | None = None
    successes: int = 0
    failures: int = 0
    throttles: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    server_remaining_tokens: int | None = None
    server_remaining_requests: int | None = None
    server_limit_tokens: int | None = None
    server_limit_requests: int | None = None
    server_seen_at: float = 0.0
    external_checked_at: float = float("-inf")
    last_error: str | None = None


@dataclass(frozen=True)
class _Entry:
    model: str
    spec: DeploymentSpec
    caps: Capabilities

    @property
    def label(self) -> str:
        return f"{self.model}/{self.spec.name}"
