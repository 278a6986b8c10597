"""Ordering the usable deployments of one tier: which to try first.

A strategy returns an order rather than one winner because the limiter may still refuse the
first choice (another process took the last tokens); the router then takes the next one
without asking again.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from azmem.azure.routing.pool import Strategy

__all__ = ["Candidate", "order_candidates"]

LATENCY_BUFFER = 0.10
"""Deployments within 10% of the fastest count as equally fast, so one is not hammered for a
few milliseconds of advantage (the same idea as LiteLLM's lowest_latency_buffer)."""


@dataclass(frozen=True)
class Candidate:
    name: str
    weight: float
    inflight: int = 0
    latency: float | None = None
    """EWMA of successful-request latency, seconds; None before the first sample."""
    remaining_tokens: float | None = None
    """Tokens left in the current window (local ledger or the service's header); None if unknown."""
    remaining_requests: float | None = None


def _weighted_shuffle(items: Sequence[Candidate], rng: random.Random) -> list[Candidate]:
    """Sampling without replacement proportional to weight (Efraimidis-Spirakis keys)."""
    keyed = [(rng.random() ** (1.0 / max(c.weight, 1e-9)), c) for c in items]
    return [c for _, c in sorted(keyed, key=lambda kc: kc[0], reverse=True)]


def order_candidates(
    strategy: Strategy, candidates: Sequence[Candidate], rng: random.Random
) -> list[Candidate]:
    if len(candidates) <= 1:
        return list(candidates)
    shuffled = _weighted_shuffle(candidates, rng)  # the tie-breaker for every strategy
    if strategy == "weighted_random":
        return shuffled
    if strategy == "least_outstanding":
        return sorted(shuffled, key=lambda c: c.inflight / max(c.weight, 1e-9))
    if strategy == "latency":
        unexplored = [c for c in shuffled if c.latency is None]
        known = [c for c in shuffled if c.latency is not None]
        if not known:
            return unexplored
        best = min(c.latency for c in known if c.latency is not None)
        fast = [c for c in known if c.latency is not None and c.latency <= best * (1 + LATENCY_BUFFER)]
        slow = sorted((c for c in known if c not in fast), key=lambda c: c.latency or 0.0)
        return unexplored + fast + slow

    # quota_aware: most headroom first. Unknown headroom ranks by weight after the known ones
    # with room, so a deployment without quota data is used but not preferred blindly.
    def headroom(c: Candidate) -> tuple[int, float]:
        if c.remaining_tokens is None and c.remaining_requests is None:
            return (1, 0.0)
        tokens = c.remaining_tokens if c.remaining_tokens is not None else float("inf")
        requests = c.remaining_requests if c.remaining_requests is not None else float("inf")
        if requests <= 0:
            return (2, 0.0)
        return (0, -tokens if tokens != float("inf") else -requests)

    return sorted(shuffled, key=headroom)
