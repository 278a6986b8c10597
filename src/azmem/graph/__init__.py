"""A temporal knowledge graph for agent memory: episodes, entities and bi-temporal facts.

Embedded on SQLite by default (the memory store's file), on PostgreSQL by the same
store URL; at most two LLM calls per episode. Graphiti's concepts, one to one; see
docs/graph.md.
"""

from azmem.graph.async_graph import AsyncGraph
from azmem.graph.bulk import BulkIngestError, EpisodeInput
from azmem.graph.errors import GraphConflictError, GraphItemNotFoundError
from azmem.graph.graph import Graph
from azmem.graph.model import Entity, Episode, EpisodeSource, Fact
from azmem.graph.prompts import GraphPrompts
from azmem.graph.queries import DateCondition, SearchFilters
from azmem.graph.results import (
    AddEpisodeResult,
    DeleteEpisodeResult,
    EntityHit,
    EntityMerge,
    FactHit,
    GraphCounts,
    GraphErasure,
)
from azmem.graph.store import GraphStore, open_graph_store

__all__ = [
    "AddEpisodeResult",
    "AsyncGraph",
    "BulkIngestError",
    "DateCondition",
    "DeleteEpisodeResult",
    "Entity",
    "EntityHit",
    "EntityMerge",
    "Episode",
    "EpisodeInput",
    "EpisodeSource",
    "Fact",
    "FactHit",
    "Graph",
    "GraphConflictError",
    "GraphCounts",
    "GraphErasure",
    "GraphItemNotFoundError",
    "GraphPrompts",
    "GraphStore",
    "SearchFilters",
    "open_graph_store",
]
