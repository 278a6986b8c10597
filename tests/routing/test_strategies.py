"""How each strategy orders the usable deployments of a tier."""

from __future__ import annotations

import random
from collections import Counter

from azmem.azure.routing.strategies import Candidate, order_candidates


def names(strategy: str, cands: list[Candidate], seed: int = 1) -> list[str]:
    return [c.name for c in order_candidates(strategy, cands, random.Random(seed))]  # type: ignore[arg-type]


def test_weighted_random_follows_weights() -> None:
    cands = [Candidate("a", 3.0), Candidate("b", 1.0)]
    rng = random.Random(3)
    firsts = Counter(order_candidates("weighted_random", cands, rng)[0].name for _ in range(4000))
    assert 0.70 < firsts["a"] / 4000 < 0.80


def test_least_outstanding_normalises_by_weight() -> None:
    cands = [Candidate("big", 2.0, inflight=3), Candidate("small", 1.0, inflight=2)]
    assert names("least_outstanding", cands)[0] == "big"  # 1.5 per unit of weight vs 2.0
    cands = [Candidate("big", 2.0, inflight=5), Candidate("small", 1.0, inflight=2)]
    assert names("least_outstanding", cands)[0] == "small"


def test_latency_explores_unmeasured_first_then_prefers_the_fastest() -> None:
    cands = [Candidate("slow", 1, latency=0.30), Candidate("fast", 1, latency=0.10), Candidate("new", 1)]
    assert names("latency", cands) == ["new", "fast", "slow"]


def test_latency_treats_near_ties_as_equal() -> None:
    cands = [
        Candidate("a", 1, latency=0.100),
        Candidate("b", 1, latency=0.105),
        Candidate("c", 1, latency=0.5),
    ]
    firsts = {names("latency", cands, seed)[0] for seed in range(40)}
    assert firsts == {"a", "b"}


def test_quota_aware_prefers_the_largest_fraction_left_and_treats_unknown_as_untouched() -> None:
    cands = [
        Candidate("low", 1, headroom=0.1),
        Candidate("high", 1, headroom=0.8),
        Candidate("empty", 1, headroom=0.0),
        Candidate("unknown", 1),
    ]
    assert names("quota_aware", cands) == ["unknown", "high", "low", "empty"]


def test_quota_aware_ties_follow_weights() -> None:
    cands = [Candidate("big", 2.0, headroom=1.0), Candidate("small", 1.0, headroom=1.0)]
    firsts = Counter(names("quota_aware", cands, seed)[0] for seed in range(3000))
    assert 0.6 < firsts["big"] / 3000 < 0.73
