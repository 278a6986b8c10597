"""JSON Schema handling for structured outputs: the strict-mode checks Azure applies, and a
generator of an instance that validates against the schema.

The generator lets `chat.completions.parse(response_format=Model)` succeed against the emulator
with no scripting; the checks make a schema that Azure would refuse fail here too, so a client bug
shows up in tests rather than in production.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

MAX_DEPTH = 12


class SchemaError(ValueError):
    pass


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str):
        return schema
    if ref == "#":
        return root
    if not ref.startswith("#/"):
        raise SchemaError(f"unsupported $ref {ref!r}")
    node: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise SchemaError(f"unresolvable $ref {ref!r}")
        node = node[part]
    if not isinstance(node, dict):
        raise SchemaError(f"$ref {ref!r} is not a schema")
    return node


def check_strict(schema: Any, name: str) -> str | None:
    """The first strict-mode violation as Azure words it, or None when the schema is acceptable."""

    def walk(node: Any, context: tuple[str, ...]) -> str | None:
        if not isinstance(node, dict):
            return None
        ctx = "(" + ", ".join(repr(c) for c in context) + (",)" if len(context) == 1 else ")")
        types = node.get("type")
        is_object = types == "object" or (isinstance(types, list) and "object" in types)
        # Every object, with or without properties (a `dict[str, X]` field has none), must close
        # itself with additionalProperties false in strict mode.
        if is_object:
            if node.get("additionalProperties") is not False:
                return (
                    f"Invalid schema for response_format '{name}': In context={ctx}, "
                    "'additionalProperties' is required to be supplied and to be false."
                )
            props = node.get("properties") or {}
            required = node.get("required") or []
            missing = [p for p in props if p not in required]
            if missing:
                return (
                    f"Invalid schema for response_format '{name}': In context={ctx}, 'required' is required "
                    f"to be supplied and to be an array including every key in properties. "
                    f"Missing '{missing[0]}'."
                )
            for key, sub in props.items():
                found = walk(sub, (*context, "properties", key))
                if found:
                    return found
        for key in ("items",):
            if isinstance(node.get(key), dict):
                found = walk(node[key], (*context, key))
                if found:
                    return found
        for key in ("anyOf",):
            for i, sub in enumerate(node.get(key) or []):
                found = walk(sub, (*context, key, str(i)))
                if found:
                    return found
        for key in ("$defs", "definitions"):
            for sub_name, sub in (node.get(key) or {}).items():
                found = walk(sub, (*context, key, sub_name))
                if found:
                    return found
        return None

    return walk(schema, ())


def generate(
    schema: dict[str, Any],
    *,
    root: dict[str, Any] | None = None,
    name: str = "value",
    texts: Sequence[str] = (),
) -> Any:
    """A deterministic instance of `schema` (the subset strict structured outputs allow).

    With `texts` (the user's sentences, see `stand_ins`), strings take them in order and
    arrays get one item per text, so the answer echoes the request instead of saying
    "example ..."; an integer enum inside the i-th item takes its i-th value (an index into
    something the prompt listed), and arrays of such items stop at the enum's length.
    """
    return _Gen(root if root is not None else schema, tuple(texts)).gen(schema, name, 0, 0)


_ID_NAMES = ("id", "index")


class _Gen:
    def __init__(self, root: dict[str, Any], texts: tuple[str, ...]) -> None:
        self.root = root
        self.texts = texts

    def string(self, schema: dict[str, Any], name: str, index: int) -> str:
        formatted = _FORMATS.get(str(schema.get("format")))
        if formatted is not None:
            return formatted
        if self.texts and not name.lower().endswith(_ID_NAMES):
            return self.texts[index % len(self.texts)]
        if self.texts:
            return str(index)
        return f"example {name}"

    def count(self, items: Any, schema: dict[str, Any], depth: int) -> int:
        count = max(int(schema.get("minItems", 1)), 1)
        if depth > MAX_DEPTH // 2:
            return int(schema.get("minItems", 0))
        if self.texts:
            count = max(len(self.texts), int(schema.get("minItems", 0)))
            limit = self._enum_limit(items)
            if limit is not None:
                count = min(count, max(limit, int(schema.get("minItems", 0))))
        return count

    def _enum_limit(self, items: Any) -> int | None:
        """The shortest integer enum among an item's fields: how many distinct items it can index."""
        if not isinstance(items, dict):
            return None
        items = _resolve(items, self.root)
        if items.get("type") == "integer" and items.get("enum"):
            return len(items["enum"])
        limits = []
        for sub in (items.get("properties") or {}).values():
            options = [sub, *(sub.get("anyOf") or [])] if isinstance(sub, dict) else []
            for option in options:
                option = _resolve(option, self.root) if isinstance(option, dict) else option
                if isinstance(option, dict) and option.get("type") == "integer" and option.get("enum"):
                    limits.append(len(option["enum"]))
        return min(limits) if limits else None

    def gen(self, schema: Any, name: str, depth: int, index: int) -> Any:
        if schema is True or not isinstance(schema, dict):
            return f"example {name}"
        schema = _resolve(schema, self.root)
        if depth > MAX_DEPTH:
            return _shallow(schema)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            values = schema["enum"]
            if self.texts and schema.get("type") == "integer":
                return values[index % len(values)]
            return values[0]
        if "default" in schema and schema["default"] is not None:
            return schema["default"]
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                non_null = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
                # Deep recursion: prefer null to end the structure, else the first real option.
                if depth > MAX_DEPTH // 2 and len(non_null) < len(options):
                    return None
                return self.gen(non_null[0] if non_null else options[0], name, depth + 1, index)
        if isinstance(schema.get("allOf"), list) and schema["allOf"]:
            return self.gen(schema["allOf"][0], name, depth + 1, index)
        types = schema.get("type")
        if isinstance(types, list):
            non_null_types = [t for t in types if t != "null"]
            if not non_null_types or depth > MAX_DEPTH // 2:
                return None
            types = non_null_types[0]
        if types is None:
            types = "object" if "properties" in schema else "string"
        if types == "object":
            props = schema.get("properties") or {}
            return {key: self.gen(sub, key, depth + 1, index) for key, sub in props.items()}
        if types == "array":
            items = schema.get("items", {})
            return [self.gen(items, name, depth + 1, i) for i in range(self.count(items, schema, depth))]
        if types == "string":
            return self.string(schema, name, index)
        if types == "integer":
            return int(_number(schema, 1, integer=True))
        if types == "number":
            return float(_number(schema, 1.5, integer=False))
        if types == "boolean":
            return True
        if types == "null":
            return None
        return None


_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "12:00:00",
    "duration": "P1D",
    "email": "user@example.com",
    "hostname": "example.com",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "uri": "https://example.com/",
}


def _number(schema: dict[str, Any], default: float, *, integer: bool) -> float:
    """A value inside the schema's bounds (strict mode allows minimum/maximum and exclusive forms)."""
    lo = schema.get("minimum", schema.get("exclusiveMinimum"))
    lo_open = "minimum" not in schema and "exclusiveMinimum" in schema
    hi = schema.get("maximum", schema.get("exclusiveMaximum"))
    hi_open = "maximum" not in schema and "exclusiveMaximum" in schema
    if lo is not None:
        value = float(lo)
        if lo_open:
            value = math.floor(value) + 1 if integer else value
        if hi is not None and not integer:
            value = (float(lo) + float(hi)) / 2
        elif lo_open and not integer:
            value += 1
        return value
    if hi is not None:
        limit = float(hi) - 1 if hi_open else float(hi)
        return min(default, math.floor(limit) if integer else limit)
    return default


def _shallow(schema: dict[str, Any]) -> Any:
    types = schema.get("type")
    if isinstance(types, list) and "null" in types:
        return None
    empty: dict[str, Any] = {
        "object": {},
        "array": [],
        "string": "",
        "integer": 0,
        "number": 0.0,
        "boolean": False,
    }
    return empty.get(str(types))
