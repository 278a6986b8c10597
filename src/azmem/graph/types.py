"""Custom entity and relation types: pydantic models whose fields become attributes.

As in Graphiti, ``entity_types={"Person": Person}`` teaches extraction a label and its
attributes (the model's docstring describes the type, each field's description its
attribute). Unlike Graphiti, the attributes are extracted in the same call as the
entities (not one extra call per entity), as strict key/value pairs, then validated
here field by field: a value that does not fit its field is dropped, not guessed.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from azmem.errors import InvalidInputError
from azmem.graph.model import DEFAULT_LABEL

__all__ = ["PROTECTED_ATTRIBUTES", "TypeRegistry"]

#: Field names a custom type may not use: they are the records' own fields.
PROTECTED_ATTRIBUTES = frozenset(
    {
        "id",
        "uuid",
        "name",
        "group_id",
        "labels",
        "summary",
        "aliases",
        "attributes",
        "created_at",
        "name_embedding",
        "fact",
        "source_id",
        "target_id",
        "episodes",
        "valid_at",
        "invalid_at",
        "expired_at",
    }
)


def _check_types(kind: str, types: Mapping[str, type[BaseModel]] | None) -> dict[str, type[BaseModel]]:
    out: dict[str, type[BaseModel]] = {}
    for name, model in (types or {}).items():
        if not isinstance(name, str) or not name.isidentifier():
            raise InvalidInputError(f"{kind} type names must be identifiers, got {name!r}")
        if name == DEFAULT_LABEL:
            raise InvalidInputError(
                f"{DEFAULT_LABEL!r} is the built-in label; name the custom type otherwise"
            )
        if not (inspect.isclass(model) and issubclass(model, BaseModel)):
            raise InvalidInputError(f"{kind} type {name!r} must be a pydantic model class")
        clash = sorted(PROTECTED_ATTRIBUTES & set(model.model_fields))
        if clash:
            raise InvalidInputError(
                f"{kind} type {name!r} uses reserved field name(s) {', '.join(clash)}",
                suggestion="Rename those fields (e.g. prefix them): they are the graph's own fields.",
            )
        out[name] = model
    return out


@dataclass(frozen=True)
class TypeRegistry:
    """The custom types of one graph, and how to describe and validate them."""

    entity: dict[str, type[BaseModel]] = field(default_factory=dict)
    relation: dict[str, type[BaseModel]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        entity_types: Mapping[str, type[BaseModel]] | None = None,
        relation_types: Mapping[str, type[BaseModel]] | None = None,
    ) -> TypeRegistry:
        return cls(_check_types("entity", entity_types), _check_types("relation", relation_types))

    @property
    def entity_labels(self) -> list[str]:
        return [DEFAULT_LABEL, *self.entity]

    def describe(self) -> str:
        """The types as prompt text (empty when there are none)."""
        lines: list[str] = []
        if self.entity:
            lines.append("Entity types (use the best fitting, else Entity):")
            lines.extend(_describe(name, model) for name, model in self.entity.items())
        if self.relation:
            lines.append("Relation types (use these names when they fit):")
            lines.extend(_describe(name, model) for name, model in self.relation.items())
        return "\n".join(lines)

    def entity_attributes(self, label: str, pairs: Mapping[str, str]) -> dict[str, Any]:
        return _validate(self.entity.get(label), pairs)

    def relation_attributes(self, relation: str, pairs: Mapping[str, str]) -> dict[str, Any]:
        return _validate(self.relation.get(relation), pairs)


def _describe(name: str, model: type[BaseModel]) -> str:
    doc = inspect.cleandoc(model.__doc__ or "").split("\n\n")[0].replace("\n", " ")
    head = f"- {name}: {doc}" if doc else f"- {name}"
    attrs = [
        f"{key} ({_type_name(info.annotation)}){': ' + info.description if info.description else ''}"
        for key, info in model.model_fields.items()
    ]
    return head + (f"; attributes: {'; '.join(attrs)}" if attrs else "")


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _validate(model: type[BaseModel] | None, pairs: Mapping[str, str]) -> dict[str, Any]:
    """Each known field validated on its own; JSON text is tried first so "3" becomes 3."""
    if model is None:
        return {}
    out: dict[str, Any] = {}
    for key, raw in pairs.items():
        info = model.model_fields.get(key)
        if info is None or raw == "":
            continue
        adapter: TypeAdapter[Any] = TypeAdapter(info.annotation or Any)
        for candidate in _candidates(raw):
            try:
                out[key] = adapter.dump_python(adapter.validate_python(candidate), mode="json")
                break
            except ValidationError:
                continue
    return out


def _candidates(raw: str) -> list[Any]:
    try:
        return [json.loads(raw), raw]
    except ValueError:
        return [raw]
