"""A whole group's records in a stable order: what export and replay comparisons read."""

from __future__ import annotations

from dataclasses import dataclass, field

from azmem.graph.model import Entity, Episode, Fact

__all__ = ["Dump"]


@dataclass(frozen=True)
class Dump:
    episodes: list[Episode] = field(default_factory=list)
    """By reference time."""
    entities: list[Entity] = field(default_factory=list)
    """In creation order."""
    facts: list[Fact] = field(default_factory=list)
    """In creation order."""
