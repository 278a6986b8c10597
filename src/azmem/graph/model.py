"""The temporal knowledge graph's records: episodes, entities and bi-temporal facts.

The names follow Graphiti's (``EpisodicNode``, ``EntityNode``, ``EntityEdge``) so its
users map one to one; see docs/graph.md for the table.

Time, twice over. A fact is true in the world from ``valid_at`` to ``invalid_at``; the
system learned it at ``created_at`` and learned that it had ended at ``expired_at``. A
contradicted fact is never deleted: it gets ``invalid_at`` (when it stopped being true)
and ``expired_at`` (when we found out), so both "what was true on D" and "what did we
believe on D" stay answerable. ``expired_at`` is set exactly when ``invalid_at`` is
(a fact learned as already over is expired from the start), which is what lets
:func:`believed_invalid_at` reconstruct the belief at any past system time.

Every time is timezone-aware UTC: the stores compare them, and a naive datetime would
silently mean "whatever the local clock is".
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

__all__ = [
    "Entity",
    "Episode",
    "EpisodeSource",
    "Fact",
    "believed_invalid_at",
    "new_id",
    "utcnow",
    "world_order",
]

EpisodeSource: TypeAlias = Literal["message", "text", "json"]
"""What an episode's content is: chat lines ("speaker: text"), prose, or a JSON document."""

DEFAULT_LABEL = "Entity"
"""The label of an entity no custom type fits (Graphiti's base label)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]
"""An aware datetime, stored and returned in UTC."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Episode(_Record):
    """One unit of input: a message, a text or a JSON document, as it was given."""

    id: str
    group_id: str
    """The graph partition (tenant, user, project): nothing crosses groups."""
    name: str
    source: EpisodeSource
    source_description: str = ""
    content: str
    reference_time: UtcDatetime
    """When it happened (Graphiti's ``valid_at``): "last week" in the content is resolved against it."""
    created_at: UtcDatetime
    """When the graph ingested it."""
    entity_ids: list[str] = Field(default_factory=list)
    """The entities it mentions (Graphiti's MENTIONS edges)."""


class Entity(_Record):
    """A person, place, organisation, thing or idea; one node per real-world referent in a group."""

    id: str
    group_id: str
    name: str
    summary: str = ""
    """What the episodes said about it, newest last (bounded); the facts hold the details."""
    labels: list[str] = Field(default_factory=lambda: [DEFAULT_LABEL])
    """Its types: ``Entity`` plus any custom entity types it was recognised as."""
    attributes: dict[str, Any] = Field(default_factory=dict)
    """Values of the custom types' fields."""
    aliases: list[str] = Field(default_factory=list)
    """Other names it went by (first name, nickname, a former name); resolution matches them."""
    created_at: UtcDatetime
    name_embedding: list[float] | None = Field(default=None, repr=False)
    """Filled only when asked for (exports); searches use the store's copy."""


class Fact(_Record):
    """A relation between two entities, as a sentence, with its four times and its provenance."""

    id: str
    group_id: str
    source_id: str
    target_id: str
    name: str
    """The relation, SCREAMING_SNAKE_CASE (``WORKS_AT``)."""
    fact: str
    """The relation as one self-contained sentence."""
    attributes: dict[str, Any] = Field(default_factory=dict)
    episodes: list[str] = Field(default_factory=list)
    """The episodes that stated it (provenance); a fact none supports any more is removed."""
    valid_at: UtcDatetime | None = None
    """When it became true in the world (None: unknown, taken as "always")."""
    invalid_at: UtcDatetime | None = None
    """When it stopped being true in the world (None: still true, as far as known)."""
    created_at: UtcDatetime
    """When the system learned it."""
    expired_at: UtcDatetime | None = None
    """When the system learned that it had stopped being true (set with ``invalid_at``)."""
    invalidated_by: str | None = None
    """The episode whose news ended it (deleting that episode restores it)."""
    source_name: str = ""
    target_name: str = ""
    embedding: list[float] | None = Field(default=None, repr=False)
    """Filled only when asked for (exports)."""

    def believed_at(self, known_at: datetime) -> bool:
        """Whether the system knew this fact at system time ``known_at``."""
        return self.created_at <= known_at

    def is_valid_at(self, when: datetime, *, known_at: datetime | None = None) -> bool:
        """True in the world at ``when``, as the system believed at ``known_at`` (default: now)."""
        if known_at is not None and not self.believed_at(known_at):
            return False
        if self.valid_at is not None and self.valid_at > when:
            return False
        ended = believed_invalid_at(self, known_at)
        return ended is None or ended > when


def believed_invalid_at(fact: Fact, known_at: datetime | None) -> datetime | None:
    """``invalid_at`` as the system believed it at ``known_at`` (None: as believed now).

    Before ``expired_at`` the system did not yet know the fact had ended.
    """
    if known_at is None or (fact.expired_at is not None and fact.expired_at <= known_at):
        return fact.invalid_at
    return None


def world_order(fact: Fact) -> tuple[datetime, datetime, str]:
    """The sort key of world-time order: when it became true (else learned), then learned, then id."""
    return (fact.valid_at or fact.created_at, fact.created_at, fact.id)
