"""The contract between the graph engine and its storage backends (SQLite, PostgreSQL).

A backend stores records and answers retrieval primitives; every decision (what is
the same entity, what contradicts what, how lists are fused) is the engine's, written
once above this line. The same test suite runs against each backend.

Guarantees every backend gives:

* ``apply`` is one transaction: the episode, its entities, facts, confirmations and
  invalidations are all written, or none is. It refuses with `GraphConflictError` when
  ``changes.expected_version`` is set and the group's version moved since.
* Every write to a group bumps its version (``group_version``).
* Reads never cross groups: every query names its groups.
* Nothing is ever physically deleted except by ``delete_episode``, ``delete_fact``,
  ``clear`` and ``forget``: invalidation only sets times.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from azmem.graph.changes import Changes, Vector
from azmem.graph.model import Entity, Episode, Fact
from azmem.graph.queries import EntityCandidates, EntityQuery, FactCandidates, FactQuery
from azmem.graph.results import DeleteEpisodeResult, GraphCounts, GraphErasure
from azmem.graph.store.dump import Dump

__all__ = ["Dump", "GraphStore"]


@runtime_checkable
class GraphStore(Protocol):
    url: str
    """Where it lives, without a password."""

    def open(self, embedder_name: str, dimension: int) -> None:
        """Bind the embedder; `EmbedderMismatchError` if the graph holds other vectors."""
        ...

    def close(self) -> None: ...

    # -- writes ------------------------------------------------------------------------
    def apply(self, changes: Changes) -> None: ...

    def delete_episode(self, episode_id: str) -> DeleteEpisodeResult | None:
        """Remove an episode and what only it supported; None if there is no such episode."""
        ...

    def delete_fact(self, fact_id: str) -> bool: ...

    def clear(self, group_id: str) -> GraphCounts:
        """Remove a whole group; returns what it held."""
        ...

    def forget(self, group_id: str, *, compact: bool = True) -> GraphErasure:
        """Erase a group for good (a GDPR erasure): its rows, its word-index entries and its
        version row (the group id is the user's id), leaving no copy in the store's files
        (``compact``: SQLite rewrites the file). A group forgotten and written again never
        reuses a version another process may have cached."""
        ...

    # -- reads -------------------------------------------------------------------------
    def group_version(self, group_id: str) -> int: ...

    def counts(self, group_ids: Sequence[str]) -> GraphCounts: ...

    def get_episodes(
        self, group_ids: Sequence[str], *, before: datetime | None = None, limit: int = 10
    ) -> list[Episode]:
        """The ``limit`` latest episodes by reference time (strictly before ``before``), oldest first."""
        ...

    def get_episode(self, episode_id: str) -> Episode | None: ...

    def get_entities(self, entity_ids: Sequence[str]) -> list[Entity]: ...

    def get_facts(self, fact_ids: Sequence[str]) -> list[Fact]: ...

    def entity_facts(self, entity_id: str) -> list[Fact]:
        """Every fact touching the entity, ended ones included, oldest first."""
        ...

    def entities_by_names(self, group_id: str, names: Sequence[str]) -> dict[str, list[Entity]]:
        """Entities whose normalised name or alias is one of ``names`` (already normalised)."""
        ...

    def search_entities(self, query: EntityQuery) -> EntityCandidates: ...

    def search_facts(self, query: FactQuery) -> FactCandidates: ...

    def similar_facts(
        self, group_id: str, vector: Vector, entity_ids: Sequence[str], limit: int
    ) -> list[tuple[Fact, float]]:
        """Facts touching any of ``entity_ids`` (ended ones too), most similar first, with their cosine."""
        ...

    def fact_vectors(self, fact_ids: Sequence[str]) -> dict[str, Vector]: ...

    def entity_vectors(self, entity_ids: Sequence[str]) -> dict[str, Vector]: ...

    def dump(self, group_ids: Sequence[str]) -> Dump:
        """Everything in the groups, in a stable order (for export and comparison)."""
        ...
