"""A group's graph as JSON (everything, re-readable) or GraphML (for Gephi, yEd, networkx).

GraphML holds entities and episodes as nodes, facts as directed edges (source entity
to target entity) with their four times, and ``MENTIONS`` edges from each episode to
the entities it names, as Graphiti draws them. Lists and dicts are JSON strings there
(GraphML attributes are scalars).
"""

from __future__ import annotations

import json
from typing import Any
from xml.etree import ElementTree as ET

from azmem.graph.store.dump import Dump

__all__ = ["EXPORT_FORMAT", "to_graphml", "to_json"]

EXPORT_FORMAT = "azmem-graph/1"

_NS = "http://graphml.graphdrawing.org/xmlns"


def to_json(dump: Dump) -> str:
    def records(items: list[Any]) -> list[dict[str, Any]]:
        return [item.model_dump(mode="json", exclude_none=True) for item in items]

    body = {
        "format": EXPORT_FORMAT,
        "episodes": records(dump.episodes),
        "entities": records(dump.entities),
        "facts": records(dump.facts),
    }
    return json.dumps(body, ensure_ascii=False, indent=2)


_NODE_KEYS = (
    "kind",
    "name",
    "group_id",
    "summary",
    "labels",
    "aliases",
    "attributes",
    "source",
    "content",
    "reference_time",
    "created_at",
)
_EDGE_KEYS = (
    "relation",
    "fact",
    "attributes",
    "episodes",
    "valid_at",
    "invalid_at",
    "created_at",
    "expired_at",
)


def _text(value: Any) -> str:
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def to_graphml(dump: Dump) -> str:
    ET.register_namespace("", _NS)
    root = ET.Element(f"{{{_NS}}}graphml")
    for scope, keys in (("node", _NODE_KEYS), ("edge", _EDGE_KEYS)):
        for key in keys:
            ET.SubElement(
                root,
                f"{{{_NS}}}key",
                id=f"{scope}_{key}",
                attrib={"for": scope, "attr.name": key, "attr.type": "string"},
            )
    graph = ET.SubElement(root, f"{{{_NS}}}graph", id="azmem", edgedefault="directed")

    def element(parent: ET.Element, tag: str, scope: str, data: dict[str, Any], **attrs: str) -> None:
        node = ET.SubElement(parent, f"{{{_NS}}}{tag}", attrib=attrs)
        for key, value in data.items():
            if value is None or value == "" or value == [] or value == {}:
                continue
            ET.SubElement(node, f"{{{_NS}}}data", key=f"{scope}_{key}").text = _text(value)

    for e in dump.entities:
        element(
            graph,
            "node",
            "node",
            {
                "kind": "entity",
                "name": e.name,
                "group_id": e.group_id,
                "summary": e.summary,
                "labels": e.labels,
                "aliases": e.aliases,
                "attributes": e.attributes,
                "created_at": e.created_at,
            },
            id=e.id,
        )
    for ep in dump.episodes:
        element(
            graph,
            "node",
            "node",
            {
                "kind": "episode",
                "name": ep.name,
                "group_id": ep.group_id,
                "source": ep.source,
                "content": ep.content,
                "reference_time": ep.reference_time,
                "created_at": ep.created_at,
            },
            id=ep.id,
        )
    for f in dump.facts:
        element(
            graph,
            "edge",
            "edge",
            {
                "relation": f.name,
                "fact": f.fact,
                "attributes": f.attributes,
                "episodes": f.episodes,
                "valid_at": f.valid_at,
                "invalid_at": f.invalid_at,
                "created_at": f.created_at,
                "expired_at": f.expired_at,
            },
            id=f.id,
            source=f.source_id,
            target=f.target_id,
        )
    for ep in dump.episodes:
        for entity_id in ep.entity_ids:
            element(
                graph,
                "edge",
                "edge",
                {"relation": "MENTIONS"},
                id=f"{ep.id}:{entity_id}",
                source=ep.id,
                target=entity_id,
            )
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
