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
    headroom: float | None = None
    """Fraction of the quota left in the current window (the smaller of tokens and requests),
    from the local ledger or the service's headers; None when unknown (treated as untouched)."""


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

    # quota_aware: the largest fraction of quota left first, so usage stays proportional to
    # capacity; unknown counts as untouched, else a deployment never tried would never be.
    return sorted(shuffled, key=lambda c: -(1.0 if c.headroom is None else c.headroom))
