"""Structured-output schemas for the LLM steps of the memory pipeline.

Every field is required and extra keys are forbidden because Azure's strict
structured outputs demand exactly that; optional values are ``X | None``.

Existing memories are shown to the model under small integer ids. The response
models for reconciliation and answering are built per call (`reconcile_model`,
`answer_model`) with those ids as an enum, so that (a) strict decoding cannot produce
an id that was not shown, and (b) if a model or a non-strict deployment does, pydantic
validation fails and the client's re-ask budget handles it, before anything is stored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    create_model,
    model_validator,
)

__all__ = [
    "Answer",
    "Decision",
    "ExtractedFact",
    "Extraction",
    "Reconciliation",
    "answer_model",
    "reconcile_model",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExtractedFact(_Strict):
    """One atomic, self-contained fact."""

    text: str = Field(description="The fact as one short sentence in the third person, with absolute dates.")
    subject: Literal["user", "agent"] = Field(
        description="Whom the fact is about: the user, or the agent (assistant) itself."
    )


class Extraction(_Strict):
    """Output of the ``memory.extract`` step."""

    facts: list[ExtractedFact]


class Decision(_Strict):
    """What to do with one new fact, relative to the existing memories shown."""

    fact: int = Field(description="Index of the new fact this decision is about.")
    event: Literal["ADD", "UPDATE", "DELETE", "NONE"]
    target: int | None = Field(
        description="Id of the existing memory updated, deleted or already covering the fact; null for ADD."
    )
    text: str = Field(
        description="The memory text to store: the new memory for ADD, the merged text for UPDATE; "
        "empty for DELETE and NONE."
    )

    @model_validator(mode="after")
    def _repair_event_target(self) -> Decision:
        """Make the event agree with the target instead of rejecting the answer.

        Strict decoding constrains each field on its own, so a schema-valid answer can
        still pair ADD with a target or UPDATE with none. Re-asking mostly reproduces the
        same pairing and then fails the whole ``add``; the intent is clear enough to
        repair: ADD ignores a target, an UPDATE without one adds, a DELETE without one
        does nothing. Empty ADD/UPDATE text falls back to the fact (``plan_changes``).
        """
        if self.event == "ADD" and self.target is not None:
            self.target = None
        elif self.event == "UPDATE" and self.target is None:
            self.event = "ADD"
        elif self.event == "DELETE" and self.target is None:
            self.event = "NONE"
        return self


class Reconciliation(_Strict):
    """Output of the ``memory.reconcile`` step: one decision per new fact."""

    decisions: list[Decision]


class Answer(_Strict):
    """Output of the ``memory.answer`` step of ``Memory.query``."""

    answer: str = Field(description="The answer, based only on the memories given.")
    used: list[int] = Field(description="Ids of the memories the answer relies on.")


def _id_type(n_ids: int) -> Any:
    """An integer restricted to 0..n-1: a JSON-schema enum for strict decoding, checked on validation.

    Written as an explicit ``enum`` (not ``Literal``, which pydantic renders as ``const``
    for a single value, a keyword strict structured outputs may not accept).
    """
    if n_ids == 0:
        return None
    allowed = list(range(n_ids))

    def check(value: int) -> int:
        if not 0 <= value < n_ids:
            raise ValueError(f"{value} is not one of the ids shown ({allowed[0]}..{allowed[-1]})")
        return value

    return Annotated[int, AfterValidator(check), WithJsonSchema({"type": "integer", "enum": allowed})]


def reconcile_model(n_facts: int, n_existing: int) -> type[Reconciliation]:
    """`Reconciliation` whose fact indexes and targets can only be the ones shown."""
    fact_t = _id_type(n_facts)
    target_t = _id_type(n_existing)
    decision = create_model(
        "Decision",
        __base__=Decision,
        fact=(fact_t, Field(description=Decision.model_fields["fact"].description)),
        target=(
            target_t | None if target_t is not None else None,
            Field(description=Decision.model_fields["target"].description),
        ),
    )
    decisions: Any = list.__class_getitem__(decision)
    model = create_model("Reconciliation", __base__=Reconciliation, decisions=(decisions, ...))
    return cast(type[Reconciliation], model)


def answer_model(n_memories: int) -> type[Answer]:
    """`Answer` whose cited ids can only be those of the memories shown."""
    id_t = _id_type(n_memories)
    if id_t is None:
        return Answer
    used: Any = list.__class_getitem__(id_t)
    model = create_model(
        "Answer",
        __base__=Answer,
        used=(used, Field(description=Answer.model_fields["used"].description)),
    )
    return cast(type[Answer], model)
