"""Request bodies and list answers of the graph's REST routes and MCP tools.

Answers are the graph's own records and results (`Episode`, `Fact`, `FactHit`,
`AddEpisodeResult`, ...), lists wrapped in ``{"results": [...]}`` as the memory routes
do. Requests describe shapes and types only: the value rules (limits, id sizes,
content size, time filters) stay the graph's, so REST, MCP and Python refuse the same
things the same way.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from azmem.graph import EntityHit, Episode, EpisodeSource, Fact, FactHit, SearchFilters

__all__ = [
    "EntityHitList",
    "EntitySearchRequest",
    "EpisodeList",
    "EpisodeRequest",
    "FactDeleted",
    "FactHitList",
    "FactList",
    "FactSearchRequest",
    "Reranker",
    "TripletRequest",
]

Reranker = Literal["rrf", "mmr", "distance"]

GROUP = "The graph group (group_id = user id). Defaults to the API key's user when it is bound to one."
GROUPS = "Graph groups to read (group_id = user id). Default: every user the API key is bound to."


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EpisodeRequest(_Body):
    """One episode: its entities and facts are extracted by the chat deployment (at most two calls)."""

    content: str = Field(description="The episode: a message ('speaker: text'), a text or a JSON document.")
    group_id: str | None = Field(None, description=GROUP, examples=["alice"])
    reference_time: AwareDatetime | None = Field(
        None, description="When it happened (ISO 8601 with a zone): relative dates resolve against it."
    )
    source: EpisodeSource = Field("message", description="message, text or json.")
    name: str | None = Field(None, description="A name for the episode (default: derived from it).")
    source_description: str = Field("", description="Where it came from (free text).")


class FactSearchRequest(_Body):
    query: str = Field(description="What to look for, in plain words.")
    group_ids: list[str] | None = Field(None, description=GROUPS)
    as_of: AwareDatetime | None = Field(None, description="Facts true in the world at this time.")
    known_at: AwareDatetime | None = Field(None, description="As the graph believed at this time.")
    center_entity: str | None = Field(None, description="An entity id: rank facts near it higher.")
    filters: SearchFilters | None = Field(None, description="Relation names, entity labels, date conditions.")
    limit: int = Field(10, description="At most this many facts (1..1000).")
    reranker: Reranker = Field("rrf", description="rrf (default), mmr (diverse) or distance (from center).")


class EntitySearchRequest(_Body):
    query: str = Field(description="A name, alias or description.")
    group_ids: list[str] | None = Field(None, description=GROUPS)
    known_at: AwareDatetime | None = Field(None, description="As the graph knew them at this time.")
    labels: list[str] | None = Field(None, description="Only entities with one of these labels.")
    limit: int = Field(10, description="At most this many entities (1..1000).")


class TripletRequest(_Body):
    """A known fact, added without the LLM (Graphiti's ``add_triplet``)."""

    source: str = Field(description="The subject entity's name (matched by name or alias, else created).")
    relation: str = Field(description="The relation, e.g. WORKS_AT.")
    target: str = Field(description="The object entity's name.")
    fact: str | None = Field(None, description="The fact as a sentence (default: built from the triplet).")
    group_id: str | None = Field(None, description=GROUP)
    valid_at: AwareDatetime | None = Field(None, description="Since when it is true in the world.")
    invalid_at: AwareDatetime | None = Field(None, description="When it stopped being true.")
    invalidates: list[str] = Field(default_factory=list, description="Ids of facts of the group it ends.")


class EpisodeList(BaseModel):
    results: list[Episode] = Field(default_factory=list)


class FactList(BaseModel):
    results: list[Fact] = Field(default_factory=list)


class FactHitList(BaseModel):
    """Facts best first, each with its score and the ranks that made it."""

    results: list[FactHit] = Field(default_factory=list)


class EntityHitList(BaseModel):
    results: list[EntityHit] = Field(default_factory=list)


class FactDeleted(BaseModel):
    id: str = Field(description="The deleted fact's id.")
    deleted: bool = True
