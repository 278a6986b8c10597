"""What one write does to the graph, as data: built by the planner, applied by a store in one transaction.

Frozen dataclasses rather than pydantic models: they carry numpy vectors and never
cross a serialisation boundary (as `azmem.stores.models` does for ops).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from azmem.graph.errors import GraphConflictError
from azmem.graph.model import Entity, Episode, Fact

__all__ = ["Changes", "EntityUpdate", "Invalidation", "NewEntity", "NewFact", "Vector"]

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True)
class NewEntity:
    entity: Entity
    vector: Vector
    """The embedding of its name."""


@dataclass(frozen=True)
class EntityUpdate:
    """New values for an existing entity; None leaves a field as it is."""

    id: str
    name: str | None = None
    summary: str | None = None
    labels: list[str] | None = None
    attributes: dict[str, Any] | None = None
    aliases: list[str] | None = None
    vector: Vector | None = None
    """The new name's embedding, with ``name``."""


@dataclass(frozen=True)
class NewFact:
    fact: Fact
    vector: Vector


@dataclass(frozen=True)
class Invalidation:
    """An existing fact ended: true in the world until ``invalid_at``, known so since ``expired_at``."""

    fact_id: str
    invalid_at: datetime
    expired_at: datetime
    invalidated_by: str | None


@dataclass(frozen=True)
class Changes:
    """Everything an episode (or a triplet) adds and alters, for one group.

    ``expected_version`` is the group's version the plan was made against: the store
    refuses (`GraphConflictError`) if another writer moved it since, so a plan made on
    stale reads is never applied. None skips the check (operations that read nothing).
    """

    group_id: str
    expected_version: int | None = None
    episode: Episode | None = None
    new_entities: list[NewEntity] = field(default_factory=list)
    entity_updates: list[EntityUpdate] = field(default_factory=list)
    new_facts: list[NewFact] = field(default_factory=list)
    confirmations: list[tuple[str, str]] = field(default_factory=list)
    """(fact id, episode id): an existing fact the episode stated again."""
    invalidations: list[Invalidation] = field(default_factory=list)

    def check_version(self, found: int) -> None:
        """Refuse (`GraphConflictError`) if the group's version ``found`` is not the expected one."""
        if self.expected_version is not None and found != self.expected_version:
            raise GraphConflictError(
                f"group {self.group_id!r} changed while the episode was being resolved",
                details={"expected": self.expected_version, "found": found},
            )
