"""Structured-output schemas of the two LLM calls of ingestion.

Every field is required and extra keys are forbidden, as Azure's strict structured
outputs demand. Where the answer must name something shown (an entity type, a
candidate), the schema is built per call with those as an enum (`extraction_model`,
`resolution_model`), so strict decoding cannot invent one and a non-strict deployment
that does fails validation, which the client's re-ask budget handles before anything
is written.

Dates are ISO 8601 strings: strict mode has no date format, so they are parsed here,
and an unparsable one is a validation error (re-asked), never a silent guess.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, cast

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, create_model

__all__ = [
    "Attribute",
    "EntityDecision",
    "ExtractedEntity",
    "ExtractedFact",
    "Extraction",
    "FactDecision",
    "Resolution",
    "extraction_model",
    "parse_date",
    "resolution_model",
]


def parse_date(value: str | None) -> str | None:
    """Check an ISO 8601 date or datetime (naive means UTC); returns it normalised or None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(
            f"{value!r} is not an ISO 8601 date such as 2024-03-01 or 2024-03-01T09:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat()


IsoDate = Annotated[str | None, AfterValidator(parse_date)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Attribute(_Strict):
    key: str = Field(description="The attribute's name, as listed for the type.")
    value: str = Field(description="Its value as text (numbers and dates as written in JSON).")


class ExtractedEntity(_Strict):
    name: str = Field(description="The entity's fullest proper name known from the episode and context.")
    type: str = Field(description="Its type: one of those listed, else Entity.")
    aliases: list[str] = Field(
        description="Other names the episode or context uses for it (first name, nickname, "
        "abbreviation, former name); empty if none."
    )
    summary: str = Field(description="One short sentence on who or what it is, from this episode.")
    attributes: list[Attribute] = Field(description="Values of its type's attributes stated in the episode.")


class ExtractedFact(_Strict):
    source: str = Field(description="The name of the subject entity, exactly as in entities.")
    target: str = Field(description="The name of the object entity, exactly as in entities.")
    relation: str = Field(description="The relation in SCREAMING_SNAKE_CASE, e.g. WORKS_AT, LIVES_IN.")
    fact: str = Field(description="The relation as one self-contained sentence with full names.")
    valid_at: IsoDate = Field(
        description="ISO 8601 date it became true, relative dates resolved against the reference "
        "time; null if the episode does not say."
    )
    invalid_at: IsoDate = Field(
        description="ISO 8601 date it stopped being true, if the episode says it has ended or will "
        "end; else null."
    )
    attributes: list[Attribute] = Field(description="Values of the relation type's attributes, if any.")


class Extraction(_Strict):
    """Output of the ``graph.extract`` call."""

    entities: list[ExtractedEntity]
    facts: list[ExtractedFact]


class EntityDecision(_Strict):
    entity: int = Field(description="The number of the new entity (N...).")
    same_as: int | None = Field(
        description="The number of the existing entity it is (E...), or null if none."
    )


class FactDecision(_Strict):
    fact: int = Field(description="The number of the new fact (F...).")
    duplicate_of: int | None = Field(
        description="The existing fact (X...) that states the same thing, or null."
    )
    contradicts: list[int] = Field(
        description="Existing facts (X...) that this new fact shows are no longer true, or never were."
    )


class Resolution(_Strict):
    """Output of the ``graph.resolve`` call: one decision per entity and per fact shown."""

    entities: list[EntityDecision] = Field(description="One decision per new entity shown; [] if none.")
    facts: list[FactDecision] = Field(description="One decision per new fact shown; [] if none.")


def _enum(values: list[str], fallback: str) -> Any:
    """A string restricted to ``values`` by the schema; outside strict decoding, others become ``fallback``.

    An unknown entity type is not worth a re-ask (a whole extraction again): the
    generic label is a safe reading of it.
    """
    allowed = list(values)

    def check(value: str) -> str:
        return value if value in allowed else fallback

    return Annotated[str, AfterValidator(check), WithJsonSchema({"type": "string", "enum": allowed})]


def _ids(ids: list[int]) -> Any:
    allowed = sorted(ids)

    def check(value: int) -> int:
        if value not in allowed:
            raise ValueError(f"{value} is not one of the numbers shown {allowed}")
        return value

    return Annotated[int, AfterValidator(check), WithJsonSchema({"type": "integer", "enum": allowed})]


def _list_of(item: Any) -> Any:
    return list.__class_getitem__(item)


def _model(name: str, base: type[BaseModel], fields: dict[str, Any]) -> Any:
    return create_model(name, __base__=base, **fields)


def _described(model: type[BaseModel], name: str, annotation: Any) -> tuple[Any, Any]:
    return annotation, Field(description=model.model_fields[name].description)


def extraction_model(labels: list[str]) -> type[Extraction]:
    """`Extraction` whose entity types can only be ``labels``."""
    entity = _model(
        "ExtractedEntity",
        ExtractedEntity,
        {"type": _described(ExtractedEntity, "type", _enum(labels, labels[0]))},
    )
    model = _model("Extraction", Extraction, {"entities": (_list_of(entity), ...)})
    return cast(type[Extraction], model)


def resolution_model(entities: dict[int, list[int]], facts: dict[int, list[int]]) -> type[Resolution]:
    """`Resolution` for the entities and facts shown: each may only name its own candidates' numbers.

    ``entities`` maps each new entity's number to its candidates' numbers; ``facts`` each
    new fact's number to its candidate facts'. A side with nothing to decide keeps the
    plain decision type (an enum cannot be empty); the prompt asks for [] there, and the
    planner ignores any number it did not show.
    """
    fields: dict[str, Any] = {}
    if entities:
        known = _ids(sorted({c for cs in entities.values() for c in cs}))
        entity_decision = _model(
            "EntityDecision",
            EntityDecision,
            {
                "entity": _described(EntityDecision, "entity", _ids(list(entities))),
                "same_as": _described(EntityDecision, "same_as", known | None),
            },
        )
        fields["entities"] = (_list_of(entity_decision), ...)
    if facts:
        shown = _ids(sorted({c for cs in facts.values() for c in cs}))
        fact_decision = _model(
            "FactDecision",
            FactDecision,
            {
                "fact": _described(FactDecision, "fact", _ids(list(facts))),
                "duplicate_of": _described(FactDecision, "duplicate_of", shown | None),
                "contradicts": _described(FactDecision, "contradicts", _list_of(shown)),
            },
        )
        fields["facts"] = (_list_of(fact_decision), ...)
    return cast(type[Resolution], _model("Resolution", Resolution, fields))
