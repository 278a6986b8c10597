"""A scripted model for the emulator: extraction answers per episode, resolution by fixed rules.

`ScriptedModel` is installed with ``emulator.script(deployment, model)``: the emulator
calls it with each request's JSON. Extraction requests (schema ``Extraction``) are
answered with the extraction registered for a marker found in the current episode;
resolution requests (schema ``Resolution``) are answered by reading the prompt the way
a careful model would, with rules a test can state:

* an ambiguous entity is the candidate its name is an alias of (``aliases``);
* a new fact duplicates a current candidate with the same relation between the same
  entities;
* it contradicts candidates with the same subject and a *functional* relation (one
  value at a time: LIVES_IN, WORKS_AT) but another object, and candidates it
  *supersedes* (ENGAGED_TO ends DATING).

So the tests check the engine's bookkeeping against answers that do not depend on
the order or number of candidates it chose to show.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from azmem.emulator import Fault
from azmem.graph.names import normalize

_ENTITY = re.compile(r'^N(\d+): "([^"]*)".*— maybe (.*)$')
_EXISTING_ENTITY = re.compile(r'^E(\d+): "([^"]*)"')
_NEW_FACT = re.compile(r'^F(\d+): (.*?) -(\w+)-> (.*?): "(.*)" \[(.*?)\] — compare (.*)$')
_OLD_FACT = re.compile(r'^X(\d+): (.*?) -(\w+)-> (.*?): "(.*)" \[(.*?)\]$')


def entity(
    name: str, type: str = "Entity", aliases: Iterable[str] = (), summary: str = "", **attributes: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "type": type,
        "aliases": list(aliases),
        "summary": summary,
        "attributes": [{"key": k, "value": str(v)} for k, v in attributes.items()],
    }


def fact(
    source: str,
    relation: str,
    target: str,
    text: str,
    valid_at: str | None = None,
    invalid_at: str | None = None,
) -> dict[str, Any]:
    return {
        "source": source,
        "target": target,
        "relation": relation,
        "fact": text,
        "valid_at": valid_at,
        "invalid_at": invalid_at,
        "attributes": [],
    }


@dataclass
class ScriptedModel:
    extractions: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Marker found in the current episode -> the extraction to answer."""
    aliases: dict[str, str] = field(default_factory=dict)
    """Normalised name -> normalised name of the entity it denotes."""
    functional: set[str] = field(default_factory=lambda: {"LIVES_IN", "WORKS_AT"})
    supersedes: dict[str, set[str]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    """"extract" / "resolve", one per request answered."""
    prompts: list[str] = field(default_factory=list)
    """The user message of each resolution request."""

    failing: set[str] = field(default_factory=set)
    """Markers whose extraction is answered with a 400 (a non-retryable failure)."""

    def on(self, marker: str, entities: list[dict[str, Any]], facts: list[dict[str, Any]] = ()) -> None:  # type: ignore[assignment]
        self.extractions[marker] = {"entities": entities, "facts": list(facts)}

    def __call__(self, request: Mapping[str, Any]) -> str | Fault:
        schema = request["response_format"]["json_schema"]["name"]
        user = next(m["content"] for m in request["messages"] if m["role"] == "user")
        if schema == "Extraction":
            self.calls.append("extract")
            current = user.split("Current episode:\n", 1)[1]
            if any(marker in current for marker in self.failing):
                return Fault(status=400, message="scripted failure")
            for marker, answer in self.extractions.items():
                if marker in current:
                    return json.dumps(answer)
            return json.dumps({"entities": [], "facts": []})
        self.calls.append("resolve")
        self.prompts.append(user)
        return json.dumps(self.resolve(user))

    # -- the rules ---------------------------------------------------------------------
    def _same(self, a: str, b: str) -> bool:
        na, nb = normalize(a), normalize(b)
        return self.aliases.get(na, na) == self.aliases.get(nb, nb)

    def resolve(self, prompt: str) -> dict[str, Any]:
        lines = prompt.splitlines()
        existing = {int(m[1]): m[2] for line in lines if (m := _EXISTING_ENTITY.match(line))}
        olds = {int(m[1]): m.groups()[1:] for line in lines if (m := _OLD_FACT.match(line))}
        entities, facts = [], []
        for line in lines:
            if m := _ENTITY.match(line):
                options = [int(x) for x in re.findall(r"E(\d+)", m[3])]
                same = next((e for e in options if self._same(m[2], existing[e])), None)
                entities.append({"entity": int(m[1]), "same_as": same})
            elif m := _NEW_FACT.match(line):
                number, source, relation, target, _, _, options = m.groups()
                dup, contradicts = None, []
                for x in (int(v) for v in re.findall(r"X(\d+)", options)):
                    o_source, o_relation, o_target, _, o_when = olds[x]
                    current = o_when.endswith("→ now")
                    same_pair = self._same(source, o_source) and self._same(target, o_target)
                    if same_pair and relation == o_relation and current and dup is None:
                        dup = x
                    elif self._same(source, o_source) and (
                        (relation == o_relation and relation in self.functional and not same_pair)
                        or o_relation in self.supersedes.get(relation, set())
                    ):
                        contradicts.append(x)
                facts.append({"fact": int(number), "duplicate_of": dup, "contradicts": contradicts})
        return {"entities": entities, "facts": facts}
