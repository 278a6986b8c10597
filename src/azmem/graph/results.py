"""What the graph's operations return: plain pydantic models, JSON-ready for the faces."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from azmem.graph.model import Entity, Episode, Fact

__all__ = [
    "AddEpisodeResult",
    "DeleteEpisodeResult",
    "EntityHit",
    "EntityMerge",
    "FactHit",
    "GraphCounts",
]

MergeReason = Literal["name", "alias", "similar", "llm"]


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EntityMerge(_Result):
    """An extracted entity that turned out to be one already in the graph."""

    extracted_name: str
    entity: Entity
    """The existing entity, as updated by this episode (aliases, summary, labels)."""
    reason: MergeReason
    """How it was recognised: its name, one of its aliases, near-identical spelling and
    meaning, or the LLM's judgement of an ambiguous match."""


class AddEpisodeResult(_Result):
    """Everything one episode changed in the graph."""

    episode: Episode
    entities_added: list[Entity] = Field(default_factory=list)
    entities_merged: list[EntityMerge] = Field(default_factory=list)
    facts_added: list[Fact] = Field(default_factory=list)
    facts_confirmed: list[Fact] = Field(default_factory=list)
    """Existing facts this episode stated again: they now list it among their episodes."""
    facts_invalidated: list[Fact] = Field(default_factory=list)
    """Existing facts this episode ended, with their new ``invalid_at`` / ``expired_at``."""
    llm_calls: int = 0
    """1 or 2: extraction, plus resolution only when something was ambiguous."""


class FactHit(_Result):
    """A fact found by :meth:`Graph.search`, with why it ranked where it did."""

    fact: Fact
    score: float
    """The fused score (RRF, or MMR's), higher is better; comparable within one search only."""
    bm25_rank: int | None = None
    dense_rank: int | None = None
    graph_rank: int | None = None
    similarity: float | None = None
    """Cosine between query and fact, when the dense retriever found it."""
    distance: int | None = None
    """Hops from the nearest origin entity (the centre, or the entities the query names)."""


class EntityHit(_Result):
    entity: Entity
    score: float
    similarity: float | None = None


class DeleteEpisodeResult(_Result):
    """What removing an episode took with it, and what it gave back."""

    episode_id: str
    facts_deleted: list[str] = Field(default_factory=list)
    """Facts no other episode supported."""
    entities_deleted: list[str] = Field(default_factory=list)
    """Entities no other episode mentions and no remaining fact touches."""
    facts_restored: list[str] = Field(default_factory=list)
    """Facts this episode had ended: current again."""


class GraphCounts(_Result):
    episodes: int = 0
    entities: int = 0
    facts: int = 0


class GraphErasure(GraphCounts):
    """What `Graph.forget` erased (counts only: the erased text is gone)."""

    compacted: bool = True
    """SQLite: the file was rewritten so no freed page keeps the erased bytes (False when
    another connection kept the checkpoint or VACUUM from completing: run it again)."""
