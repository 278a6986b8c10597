"""Graph ingestion cost, azmem vs graphiti-core 0.31.2, and graph search latency at 10k facts.

Usage::

    python bench/graph_ingest.py [--episodes 50] [--latency 0.05] [--facts 10000] [--queries 200]
                                 [--skip-graphiti] [--fts-baseline]

* Ingestion: the same episodes (a cast of people changing jobs, homes and partners,
  named by full name, first name and nickname) go through ``azmem.graph.Graph`` (SQLite,
  local embedder) and through graphiti-core 0.31.2 (its ``AzureOpenAILLMClient`` and
  ``AzureOpenAIEmbedderClient`` on the emulator, its Kuzu driver in a temporary
  directory), one system after the other, against ONE emulator whose chat deployments
  add the same latency to every call.
* Same answers: one scripted model answers both. Each system's extraction call(s) get
  the same entities and facts for an episode (in each system's schema); azmem's
  resolution call is answered by the rules a careful model would follow (same
  referent, functional relations end each other); graphiti's extra calls get the
  cheapest valid answer (no duplicate, no contradiction, no summary update, except
  that a first name or nickname is resolved to the full name), which can only
  *lower* graphiti's token count: the comparison is conservative.
* Counting: every chat request is counted where it arrives (the emulator's callback),
  with prompt tokens estimated by the emulator's own estimator over exactly what was
  sent (messages + schema) and completion tokens over the answer; the answer carries
  that usage, so both clients see the numbers counted here.
* Search: a 10k-fact group (synthetic entities and sentences, random unit vectors
  standing in for embeddings) filled through the store layer; latency is
  ``Graph.search`` end to end (query embedding by the local model included), the
  store's three retrievers alone, and the query's embedding alone.

Last line: ``azmem_calls_per_episode=… graphiti_calls_per_episode=… azmem_tokens_per_episode=…
graphiti_tokens_per_episode=… search_p95_ms_10k=…``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from azmem.emulator import Deployment, Emulator
from azmem.emulator.tokens import estimate_messages, estimate_text
from azmem.graph import Graph
from azmem.graph.names import normalize

# graphiti-core sends usage analytics to PostHog unless told not to: loopback only here.
os.environ["GRAPHITI_TELEMETRY_ENABLED"] = "false"

CHAT, SMALL, EMBED = "gpt-4o", "gpt-4o-mini", "text-embedding-3-small"
START = datetime(2023, 1, 2, tzinfo=UTC)

# --------------------------------------------------------------------------- the episodes

PEOPLE = [
    ("Alexandra Chen", "Alex", "Lexi"),
    ("Samuel Rivera", "Sam", "Sammy"),
    ("Priya Nair", "Priya", "Pri"),
    ("Jonathan Okafor", "Jon", "Jonno"),
    ("Margarethe Lind", "Greta", "Maggie"),
]
COMPANIES = ["Acme Corp", "Globex", "Initech", "Umbrella Health", "Stark Analytics", "Wayne Logistics"]
CITIES = ["Berlin", "Lisbon", "Porto", "Oslo", "Toronto", "Madrid"]
HOBBIES = ["climbing", "pottery", "chess", "sailing", "Japanese", "the cello"]


@dataclass
class Episode:
    text: str
    when: datetime
    entities: list[dict[str, Any]]
    facts: list[dict[str, Any]]


def _entity(name: str, aliases: tuple[str, ...] = (), summary: str = "") -> dict[str, Any]:
    return {"name": name, "type": "Entity", "aliases": list(aliases), "summary": summary, "attributes": []}


def _fact(
    source: str, relation: str, target: str, text: str, valid: datetime | None = None
) -> dict[str, Any]:
    return {
        "source": source,
        "target": target,
        "relation": relation,
        "fact": text,
        "valid_at": valid.date().isoformat() if valid else None,
        "invalid_at": None,
        "attributes": [],
    }


def episodes(n: int) -> list[Episode]:
    """A deterministic life story of five people; every person is introduced before anything else."""
    rng = random.Random(7)
    out: list[Episode] = []
    job = {p[0]: COMPANIES[i % len(COMPANIES)] for i, p in enumerate(PEOPLE)}
    home = {p[0]: CITIES[i % len(CITIES)] for i, p in enumerate(PEOPLE)}
    for i in range(n):
        when = START + timedelta(days=9 * i)
        full, first, nick = PEOPLE[i % len(PEOPLE)]
        other = PEOPLE[(i + 1 + rng.randrange(len(PEOPLE) - 1)) % len(PEOPLE)][0]
        said = rng.choice([full, first, nick])
        if i < len(PEOPLE):
            text = f"Hi, I'm {full} ({nick} to friends). I work at {job[full]} and live in {home[full]}."
            ents = [_entity(full, (nick, first), "A person."), _entity(job[full]), _entity(home[full])]
            facts = [
                _fact(full, "WORKS_AT", job[full], f"{full} works at {job[full]}.", when),
                _fact(full, "LIVES_IN", home[full], f"{full} lives in {home[full]}.", when),
            ]
        else:
            kind = rng.choice(["job", "move", "hobby", "friend", "partner", "office"])
            if kind == "job":
                job[full] = rng.choice([c for c in COMPANIES if c != job[full]])
                text = f"{said} joined {job[full]} last week (note {i})."
                ents = [_entity(said), _entity(job[full])]
                facts = [
                    _fact(
                        said, "WORKS_AT", job[full], f"{full} works at {job[full]}.", when - timedelta(days=7)
                    )
                ]
            elif kind == "move":
                home[full] = rng.choice([c for c in CITIES if c != home[full]])
                text = f"{said} just moved to {home[full]} (note {i})."
                ents = [_entity(said), _entity(home[full])]
                facts = [_fact(said, "LIVES_IN", home[full], f"{full} lives in {home[full]}.", when)]
            elif kind == "hobby":
                hobby = rng.choice(HOBBIES)
                text = f"{said} started learning {hobby} (note {i})."
                ents = [_entity(said), _entity(hobby)]
                facts = [_fact(said, "LEARNS", hobby, f"{full} is learning {hobby}.", when)]
            elif kind == "friend":
                text = f"{said} had coffee with {other} in {home[full]} (note {i})."
                ents = [_entity(said), _entity(other), _entity(home[full])]
                facts = [_fact(said, "FRIENDS_WITH", other, f"{full} is friends with {other}.", when)]
            elif kind == "partner":
                text = f"{said} is now dating {other} (note {i})."
                ents = [_entity(said), _entity(other)]
                facts = [_fact(said, "DATING", other, f"{full} is dating {other}.", when)]
            else:
                city = rng.choice(CITIES)
                text = f"{job[full]}, where {said} works, opened an office in {city} (note {i})."
                ents = [_entity(job[full]), _entity(said), _entity(city)]
                facts = [
                    _fact(job[full], "HAS_OFFICE_IN", city, f"{job[full]} has an office in {city}.", when)
                ]
        out.append(Episode(text, when, ents, facts))
    return out


ALIASES = {normalize(a): normalize(p[0]) for p in PEOPLE for a in p[1:]}
FUNCTIONAL = {"WORKS_AT", "LIVES_IN", "DATING"}


def same(a: str, b: str) -> bool:
    na, nb = normalize(a), normalize(b)
    return ALIASES.get(na, na) == ALIASES.get(nb, nb)


# --------------------------------------------------------------------------- the scripted model


@dataclass
class Counter:
    calls: int = 0
    prompt: int = 0
    completion: int = 0
    by_schema: dict[str, int] = field(default_factory=dict)


class Model:
    """Answers both systems' chat requests; counts every call and its tokens."""

    def __init__(self, story: list[Episode]) -> None:
        self.story = story
        self.count = Counter()
        self.lock = threading.Lock()
        self.unknown: set[str] = set()

    def reset(self) -> Counter:
        with self.lock:
            done, self.count = self.count, Counter()
        return done

    def current(self, prompt: str) -> Episode:
        present = [i for i, ep in enumerate(self.story) if ep.text in prompt]
        return self.story[max(present)] if present else Episode("", START, [], [])

    def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        response_format = request.get("response_format") or {}
        schema = (response_format.get("json_schema") or {}).get("name", "text")
        prompt = "\n".join(str(m.get("content", "")) for m in request["messages"])
        answer = json.dumps(self.answer(schema, prompt))
        usage_in = estimate_messages(request["messages"], response_format or None)
        usage_out = estimate_text(answer)
        with self.lock:
            self.count.calls += 1
            self.count.prompt += usage_in
            self.count.completion += usage_out
            self.count.by_schema[schema] = self.count.by_schema.get(schema, 0) + 1
        return {
            "content": answer,
            "usage": {
                "prompt_tokens": usage_in,
                "completion_tokens": usage_out,
                "total_tokens": usage_in + usage_out,
            },
        }

    def answer(self, schema: str, prompt: str) -> dict[str, Any]:
        ep = self.current(prompt)
        if schema == "Extraction":  # azmem, call 1
            return {"entities": ep.entities, "facts": ep.facts}
        if schema == "Resolution":  # azmem, call 2
            return azmem_resolution(prompt)
        if schema == "ExtractedEntities":
            return {"extracted_entities": [{"name": e["name"], "entity_type_id": 0, "episode_indices": [0]}
                                           for e in ep.entities]}  # fmt: skip
        if schema == "ExtractedEdges":
            return {"edges": [{"source_entity_name": f["source"], "target_entity_name": f["target"],
                               "relation_type": f["relation"], "fact": f["fact"],
                               "valid_at": f"{f['valid_at']}T00:00:00Z" if f["valid_at"] else None,
                               "invalid_at": None, "episode_indices": [0]} for f in ep.facts]}  # fmt: skip
        if schema == "NodeResolutions":
            return graphiti_node_resolutions(prompt)
        if schema == "EdgeDuplicate":
            return {"duplicate_facts": [], "contradicted_facts": []}
        if schema == "SummarizedEntities":
            return {"summaries": []}
        if schema == "EdgeTimestamps":
            return {"valid_at": None, "invalid_at": None}
        if schema == "BatchEdgeTimestamps":
            return {"timestamps": []}
        self.unknown.add(schema)
        return {}


_N = re.compile(r'^N(\d+): "([^"]*)".*— maybe (.*)$')
_E = re.compile(r'^E(\d+): "([^"]*)"')
_F = re.compile(r'^F(\d+): (.*?) -(\w+)-> (.*?): "(.*)" \[(.*?)\] — compare (.*)$')
_X = re.compile(r'^X(\d+): (.*?) -(\w+)-> (.*?): "(.*)" \[(.*?)\]$')


def azmem_resolution(prompt: str) -> dict[str, Any]:
    lines = prompt.splitlines()
    existing = {int(m[1]): m[2] for line in lines if (m := _E.match(line))}
    olds = {int(m[1]): m.groups()[1:] for line in lines if (m := _X.match(line))}
    entities, facts = [], []
    for line in lines:
        if m := _N.match(line):
            shown = [int(x) for x in re.findall(r"E(\d+)", m[3])]
            entities.append(
                {"entity": int(m[1]), "same_as": next((e for e in shown if same(m[2], existing[e])), None)}
            )
        elif m := _F.match(line):
            number, source, relation, target, _, _, options = m.groups()
            dup, contradicts = None, []
            for x in (int(v) for v in re.findall(r"X(\d+)", options)):
                o_source, o_relation, o_target, _, o_when = olds[x]
                pair = same(source, o_source) and same(target, o_target)
                if pair and relation == o_relation and o_when.endswith("→ now") and dup is None:
                    dup = x
                elif (
                    same(source, o_source) and relation == o_relation and relation in FUNCTIONAL and not pair
                ):
                    contradicts.append(x)
            facts.append({"fact": int(number), "duplicate_of": dup, "contradicts": contradicts})
    return {"entities": entities, "facts": facts}


def graphiti_node_resolutions(prompt: str) -> dict[str, Any]:
    new = re.findall(r'"id":\s*(\d+),\s*"name":\s*"([^"]*)"', prompt)
    candidates = re.findall(r'"candidate_id":\s*(\d+),\s*"name":\s*"([^"]*)"', prompt)
    out = []
    for number, name in new:
        match = next((int(c) for c, cname in candidates if same(name, cname)), -1)
        out.append({"id": int(number), "name": name, "duplicate_candidate_id": match})
    return {"entity_resolutions": out}


# --------------------------------------------------------------------------- the two systems


@dataclass
class Row:
    calls: int
    tokens: int
    seconds: float


def run_azmem(emu: Emulator, model: Model, story: list[Episode], tmp: Path) -> tuple[list[Row], Graph]:
    from azmem.embeddings import LocalEmbedder

    embedder = LocalEmbedder()
    embedder.load()
    config = {"endpoint": emu.endpoint, "api_key": "test-key", "chat": CHAT, "small_chat": SMALL}
    graph = Graph(config=config, embedder=embedder, store=f"sqlite:///{tmp / 'azmem.db'}")
    rows = []
    for ep in story:
        model.reset()
        began = time.perf_counter()
        graph.add_episode(ep.text, group_id="bench", reference_time=ep.when)
        spent = time.perf_counter() - began
        c = model.reset()
        rows.append(Row(c.calls, c.prompt + c.completion, spent))
    return rows, graph


async def _graphiti(emu: Emulator, model: Model, story: list[Episode], tmp: Path) -> list[Row]:
    from graphiti_core import Graphiti
    from graphiti_core.cross_encoder.openai_reranker_client import OpenAIRerankerClient
    from graphiti_core.driver.kuzu_driver import KuzuDriver
    from graphiti_core.embedder.azure_openai import AzureOpenAIEmbedderClient
    from graphiti_core.llm_client.azure_openai_client import AzureOpenAILLMClient
    from graphiti_core.llm_client.config import LLMConfig
    from openai import AsyncAzureOpenAI

    class FixedAzureClient(AzureOpenAILLMClient):
        """0.31.2's Azure client returns a bare dict where its base class unpacks (dict, in, out):
        every structured call fails. The requests are left exactly as graphiti sends them."""

        def _handle_structured_response(self, response: Any) -> Any:
            parsed = super()._handle_structured_response(response)
            usage = getattr(response, "usage", None)
            return parsed, getattr(usage, "prompt_tokens", 0), getattr(usage, "completion_tokens", 0)

    client = AsyncAzureOpenAI(azure_endpoint=emu.endpoint, api_key="test-key", api_version="2024-10-21")
    llm = FixedAzureClient(client, config=LLMConfig(model=CHAT, small_model=SMALL))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        driver = KuzuDriver(db=str(tmp / "graphiti.kuzu"))
    # 0.31.2's Kuzu driver lacks the `_database` that add_episode(group_id=...) compares the group
    # with (it would then clone the driver per group); one group, one database: say so.
    driver._database = "bench"
    graphiti = Graphiti(
        graph_driver=driver,
        llm_client=llm,
        embedder=AzureOpenAIEmbedderClient(client, model=EMBED),
        cross_encoder=OpenAIRerankerClient(client=client, config=LLMConfig(model=SMALL)),
    )
    await graphiti.build_indices_and_constraints()
    # ... which is a no-op on Kuzu in 0.31.2, while its searches need the full-text indexes.
    from graphiti_core.driver.driver import GraphProvider
    from graphiti_core.graph_queries import get_fulltext_indices

    for query in get_fulltext_indices(GraphProvider.KUZU):
        await driver.execute_query(query)
    rows = []
    for i, ep in enumerate(story):
        model.reset()
        began = time.perf_counter()
        await graphiti.add_episode(
            name=f"episode {i}", episode_body=ep.text, source_description="bench", reference_time=ep.when,
            group_id="bench",
        )  # fmt: skip
        spent = time.perf_counter() - began
        c = model.reset()
        rows.append(Row(c.calls, c.prompt + c.completion, spent))
    await graphiti.close()
    return rows


# --------------------------------------------------------------------------- search at 10k


def fill(graph: Graph, n_facts: int) -> None:
    """A 10k-fact group through the store layer: synthetic names and sentences, random unit vectors."""
    from azmem.graph.changes import Changes, NewEntity, NewFact
    from azmem.graph.model import Entity, Fact, new_id

    rng = np.random.default_rng(3)
    dim = graph.embedder.dimension
    graph.store.open(graph.embedder.name, dim)

    def unit(k: int) -> Any:
        v = rng.standard_normal((k, dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    first = ["Ava", "Ben", "Chloe", "Dev", "Ema", "Finn", "Gia", "Hugo", "Ines", "Jude", "Kai", "Lena"]
    last = ["Moreau", "Silva", "Kowalski", "Tanaka", "Okoye", "Berg", "Rossi", "Haddad", "Novak", "Quinn"]
    now = datetime(2024, 1, 1, tzinfo=UTC)
    names = [f"{first[i % 12]} {last[(i // 12) % 10]} {i}" for i in range(max(200, n_facts // 10))]
    entities = [Entity(id=new_id(), group_id="search", name=n, created_at=now) for n in names]
    vectors = unit(len(entities))
    relations = ["WORKS_AT", "LIVES_IN", "KNOWS", "LEARNS", "MANAGES", "VISITED"]
    batch = 2000
    graph.store.apply(
        Changes("search", new_entities=[NewEntity(e, v) for e, v in zip(entities, vectors, strict=True)])
    )
    r = random.Random(5)
    for start in range(0, n_facts, batch):
        facts = []
        fact_vectors = unit(min(batch, n_facts - start))
        for k in range(len(fact_vectors)):
            a, b = r.sample(entities, 2)
            rel = r.choice(relations)
            valid = now - timedelta(days=r.randrange(2000))
            ended = valid + timedelta(days=r.randrange(30, 900)) if r.random() < 0.3 else None
            facts.append(NewFact(Fact(
                id=new_id(), group_id="search", source_id=a.id, target_id=b.id, name=rel,
                fact=f"{a.name} {rel.lower().replace('_', ' ')} {b.name}.", valid_at=valid, invalid_at=ended,
                created_at=now, expired_at=now if ended else None), fact_vectors[k]))  # fmt: skip
        graph.store.apply(Changes("search", new_facts=facts))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def measure_search(graph: Graph, n_queries: int) -> tuple[list[float], list[float], list[float]]:
    from azmem.graph.queries import FactQuery, TimeView
    from azmem.stores.terms import query_terms

    r = random.Random(11)
    dump_names = [e.name for e in graph.store.dump(["search"]).entities[:300]]
    queries = [f"where does {r.choice(dump_names).rsplit(' ', 1)[0]} work" for _ in range(n_queries)]
    queries += [f"who knows {r.choice(dump_names)}" for _ in range(n_queries // 4)]
    as_of = datetime(2022, 6, 1, tzinfo=UTC)
    for q in queries[:10]:  # warm the vector matrix and the embedder
        graph.search(q, group_ids=["search"])
    whole, store_only, embed_only = [], [], []
    vector = graph.embedder.embed(["warm"])[0]  # type: ignore[union-attr]
    for i, q in enumerate(queries):
        began = time.perf_counter()
        graph.embedder.embed([q])  # type: ignore[union-attr]
        embed_only.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        graph.search(q, group_ids=["search"], as_of=as_of if i % 2 else None)
        whole.append((time.perf_counter() - began) * 1000)
        view = TimeView(now=datetime.now(UTC), as_of=as_of if i % 2 else None)
        began = time.perf_counter()
        graph.store.search_facts(FactQuery(["search"], query_terms(q), vector, view, None, [], 2, 50))
        store_only.append((time.perf_counter() - began) * 1000)
    return whole, store_only, embed_only


def compare_fts(graph: Graph, n_queries: int) -> tuple[list[float], list[float]]:
    """Graph.search with the in-memory BM25 and with FTS5's ``bm25()`` (the SQLite store's
    fallback, forced), interleaved query by query so both see the same machine."""
    r = random.Random(13)
    names = [e.name for e in graph.store.dump(["search"]).entities[:300]]
    queries = [f"where does {r.choice(names).rsplit(' ', 1)[0]} work" for _ in range(n_queries)]
    store: Any = graph.store
    mirror = store._bm25_facts
    fts: Any = lambda *_: None  # noqa: E731  (None: "let FTS5 answer")
    timings: dict[bool, list[float]] = {True: [], False: []}
    for i, q in enumerate(queries):
        for use_fts in (i % 2 == 0, i % 2 == 1):
            store._bm25_facts = fts if use_fts else mirror
            began = time.perf_counter()
            graph.search(q, group_ids=["search"])
            timings[use_fts].append((time.perf_counter() - began) * 1000)
    store._bm25_facts = mirror
    return timings[False], timings[True]


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to every chat answer")
    parser.add_argument("--facts", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--skip-graphiti", action="store_true")
    parser.add_argument(
        "--fts-baseline",
        action="store_true",
        help="also time Graph.search with FTS5's bm25() (the previous path), interleaved (SQLite)",
    )
    args = parser.parse_args()

    story = episodes(args.episodes)
    model = Model(story)
    deployments = [
        Deployment(CHAT, latency=args.latency),
        Deployment(SMALL, latency=args.latency),
        Deployment(EMBED),
    ]
    with tempfile.TemporaryDirectory() as tmpdir, Emulator(deployments=deployments) as emu:
        tmp = Path(tmpdir)
        emu.script(CHAT, model)
        emu.script(SMALL, model)
        mine, graph = run_azmem(emu, model, story, tmp)
        theirs: list[Row] = []
        if not args.skip_graphiti:
            try:
                theirs = asyncio.run(_graphiti(emu, model, story, tmp))
            except ImportError as exc:
                print(f"graphiti-core is not installed ({exc}): pip install 'graphiti-core[kuzu]==0.31.2'")
        if model.unknown:
            print(
                f"note: unscripted graphiti schemas answered with {{}}: {sorted(model.unknown)}",
                file=sys.stderr,
            )

        table(mine, theirs)
        fill(graph, args.facts)
        whole, store_only, embed_only = measure_search(graph, args.queries)
        baseline = compare_fts(graph, args.queries) if args.fts_baseline else None
        graph.close()
    print(
        f"search over {args.facts} facts: Graph.search p50 {statistics.median(whole):.1f} ms, "
        f"p95 {percentile(whole, 95):.1f} ms; the store's retrievers alone p50 "
        f"{statistics.median(store_only):.1f} ms, p95 {percentile(store_only, 95):.1f} ms; "
        f"the query's embedding alone p50 {statistics.median(embed_only):.1f} ms, "
        f"p95 {percentile(embed_only, 95):.1f} ms"
    )
    if baseline is not None:
        mine_ms, fts_ms = baseline
        print(
            f"interleaved: Graph.search with the in-memory BM25 p50 {statistics.median(mine_ms):.1f} ms, "
            f"p95 {percentile(mine_ms, 95):.1f} ms; with FTS5's bm25() "
            f"p50 {statistics.median(fts_ms):.1f} ms, p95 {percentile(fts_ms, 95):.1f} ms"
        )
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"azmem_calls_per_episode={per(mine, 'calls'):.2f} "
        f"graphiti_calls_per_episode={per(theirs, 'calls'):.2f} "
        f"azmem_tokens_per_episode={per(mine, 'tokens'):.0f} "
        f"graphiti_tokens_per_episode={per(theirs, 'tokens'):.0f} "
        f"search_p95_ms_10k={percentile(whole, 95):.1f}"
    )


def per(rows: list[Row], attr: str) -> float:
    return sum(getattr(r, attr) for r in rows) / len(rows) if rows else float("nan")


def table(mine: list[Row], theirs: list[Row]) -> None:
    head = f"{'azmem calls':>11} {'tokens':>7} {'ms':>7}   {'graphiti calls':>14} {'tokens':>7} {'ms':>7}"
    print(f"{'#':>3} {head}")
    for i, row in enumerate(mine):
        other = theirs[i] if i < len(theirs) else None
        right = f"{other.calls:>14} {other.tokens:>7} {other.seconds * 1000:>7.0f}" if other else ""
        print(f"{i:>3} {row.calls:>11} {row.tokens:>7} {row.seconds * 1000:>7.0f}   {right}")
    print(
        f"per episode: azmem {per(mine, 'calls'):.2f} calls (max {max(r.calls for r in mine)}), "
        f"{per(mine, 'tokens'):.0f} tokens, {per(mine, 'seconds') * 1000:.0f} ms"
    )
    if theirs:
        print(
            f"per episode: graphiti {per(theirs, 'calls'):.2f} calls (max {max(r.calls for r in theirs)}), "
            f"{per(theirs, 'tokens'):.0f} tokens, {per(theirs, 'seconds') * 1000:.0f} ms; "
            f"tokens azmem/graphiti {per(mine, 'tokens') / per(theirs, 'tokens'):.2f}"
        )


if __name__ == "__main__":
    main()
