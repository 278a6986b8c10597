"""Memory at scale: ingest throughput against the embedder's own, and search latency at 10k / 100k.

Usage::

    python bench/memory_scale.py [--ingest 3000] [--queries 300] [--sizes 10000,100000]
    python bench/memory_scale.py --store postgresql [--pg-url postgresql://...]

* Ingest: the same texts go through ``LocalEmbedder.embed`` (raw) and through
  ``Memory.add(infer=False)`` (embedding + one SQLite transaction with vectors, FTS and
  history), 64 messages per call, the two timed chunk by chunk *alternately* so that
  both see the same machine load; the store's cost is the ratio of the two rates.
* Search: stores of 10k and 100k memories (one user's scope: the worst case, nothing is
  excluded before ranking) are filled through the store layer with vectors embedded
  once and cached under ``bench/.cache/`` (by ``bench/_corpus.py``, shared with the
  vector-index bench). Latency is ``Memory.search`` end to end, query embedding
  included, for the default hybrid mode and for dense only (alternating query by
  query, so both see the same load); recall@10 compares the dense results with an
  exact numpy search over the same vectors.

With ``--store postgresql`` the same is measured on a PostgreSQL + pgvector store: a
throwaway PostgreSQL 18 server (``tests/pg_server.py``, with ``bench/_pg.py``'s settings) or
the server of ``--pg-url``, one fresh database per store. Each size is filled through the
store layer in one database (batched ``apply`` of AddOps with the cached vectors, 5,000 a
transaction; the store creates its HNSW index when the embedder is bound, so the fill
maintains it row by row unless ``--index-after-fill`` drops it first and rebuilds it once
at the end, as a bulk load would). ``--diagnose`` adds, per size, the store's search
without the query embedding and its round trips, an ``hnsw.ef_search`` sweep of the HNSW
statement alone (latency and recall) and its ``EXPLAIN (ANALYZE, BUFFERS)``.

The last line is machine-readable:
``search_p95_ms_100k=... recall_at_10_vs_exact=... ingest_per_s=... embed_per_s=... ingest_ratio=...
backend=sqlite|postgres``.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _corpus import CACHE_DIR, corpus_and_queries, embed_cached
from _pg import PgTarget

from azmem.embeddings import LocalEmbedder
from azmem.memory import Memory
from azmem.stores import AddOp, MemoryRecord, Scope, SQLiteStore, open_store
from azmem.stores.models import SearchMode

USER = "bench-user"
CHUNK = 64
FILL_BATCH = 5_000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


OpenMemory = Callable[[], contextlib.AbstractContextManager[Memory]]


@contextlib.contextmanager
def sqlite_memory(embedder: LocalEmbedder, path: Path | None = None) -> Iterator[Memory]:
    """A Memory on the SQLite store at `path` (a new temporary one when None)."""
    with contextlib.ExitStack() as stack:
        if path is None:
            path = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "m.db"
        yield stack.enter_context(Memory(embedder=embedder, store_path=path))


def bench_ingest(texts: list[str], embedder: LocalEmbedder, open_memory: OpenMemory) -> tuple[float, float]:
    chunks = [texts[i : i + CHUNK] for i in range(0, len(texts), CHUNK)]
    with open_memory() as memory:
        # warm-up: model load, first transaction, page cache
        embedder.embed(chunks[0])
        memory.add([{"content": t} for t in chunks[0]], user_id="warmup", infer=False)
        raw = ingest = 0.0
        for chunk in chunks:
            t0 = time.perf_counter()
            embedder.embed(chunk)
            t1 = time.perf_counter()
            memory.add([{"content": t} for t in chunk], user_id=USER, infer=False)
            t2 = time.perf_counter()
            raw += t1 - t0
            ingest += t2 - t1
        assert memory.get_all(user_id=USER, limit=1).results
    return len(texts) / ingest, len(texts) / raw


def filled_store(
    n: int, corpus: list[str], vectors: npt.NDArray[np.float32], embedder: LocalEmbedder
) -> Path:
    """A store of the first n corpus texts, built through the store layer once and cached."""
    path = CACHE_DIR / f"memory-scale-{n}.db"
    marker = path.with_suffix(".done")
    if marker.exists() and path.exists():
        return path
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
    store = SQLiteStore(path)
    try:
        store.open(embedder.name, embedder.dimension)
        scope = Scope(user_id=USER)
        started = time.perf_counter()
        for start in range(0, n, FILL_BATCH):
            ops = [
                AddOp(MemoryRecord.new(corpus[i], scope, id=f"m{i}"), vectors[i])
                for i in range(start, min(n, start + FILL_BATCH))
            ]
            store.apply(ops)
        print(f"[fill] {n} memories in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    finally:
        store.close()
    marker.write_text("ok")
    return path


def fill_postgres(
    pg: PgTarget,
    n: int,
    corpus: list[str],
    vectors: npt.NDArray[np.float32],
    embedder: LocalEmbedder,
    index_after_fill: bool,
) -> str:
    """A fresh database holding the first n corpus texts, filled through the store layer; its URL."""
    url = pg.database(f"azmem_scale_{n}")
    store = open_store(url)
    try:
        store.open(embedder.name, embedder.dimension)
        if index_after_fill:
            with pg_connection(url) as conn:
                conn.execute("DROP INDEX IF EXISTS azmem_memories_embedding")
        scope = Scope(user_id=USER)
        started = time.perf_counter()
        for start in range(0, n, FILL_BATCH):
            ops = [
                AddOp(MemoryRecord.new(corpus[i], scope, id=f"m{i}"), vectors[i])
                for i in range(start, min(n, start + FILL_BATCH))
            ]
            store.apply(ops)
            if start and start % 25_000 == 0:
                took = time.perf_counter() - started
                print(f"[fill] {start}/{n} in {took:.0f} s", file=sys.stderr, flush=True)
        filled = time.perf_counter() - started
    finally:
        store.close()
    built = 0.0
    with pg_connection(url) as conn:
        if index_after_fill:
            t0 = time.perf_counter()
            conn.execute(
                "CREATE INDEX azmem_memories_embedding ON azmem_memories "
                "USING hnsw (embedding vector_cosine_ops)"
            )
            built = time.perf_counter() - t0
        conn.execute("VACUUM ANALYZE azmem_memories, azmem_postings")
    print(
        f"[fill] {n} memories: inserts {filled:.1f} s"
        + (f", HNSW build after fill {built:.1f} s" if index_after_fill else " (HNSW maintained row by row)"),
        file=sys.stderr,
        flush=True,
    )
    return url


@contextlib.contextmanager
def pg_connection(url: str) -> Iterator[Any]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


def bench_search(
    open_memory: OpenMemory,
    queries: list[str],
    qvecs: npt.NDArray[np.float32],
    vectors: npt.NDArray[np.float32],
    embedder: LocalEmbedder,
) -> dict[str, float]:
    out: dict[str, float] = {}
    modes: tuple[SearchMode, ...] = ("hybrid", "dense")
    with open_memory() as memory:
        for mode in modes:
            for q in queries[:10]:  # warm-up: index mirrors built, caches hot
                memory.search(q, user_id=USER, limit=10, mode=mode)
        # The modes alternate query by query (in alternating order) so that both see the
        # same machine load; on a shared machine load drifts within seconds.
        lat: dict[str, list[float]] = {mode: [] for mode in modes}
        for i, q in enumerate(queries):
            for mode in modes if i % 2 == 0 else modes[::-1]:
                t0 = time.perf_counter()
                memory.search(q, user_id=USER, limit=10, mode=mode)
                lat[mode].append((time.perf_counter() - t0) * 1000)
        for mode in modes:
            out[f"{mode}_p50"] = statistics.median(lat[mode])
            out[f"{mode}_p95"] = percentile(lat[mode], 0.95)
        # recall of what Memory returns (dense) against exact search over the same vectors
        hits = 0
        for q, qv in zip(queries, qvecs, strict=True):
            got = {h.id for h in memory.search(q, user_id=USER, limit=10, mode="dense").results}
            exact = np.argpartition(-(vectors @ qv), 10)[:10]
            hits += len(got & {f"m{i}" for i in exact})
        out["recall"] = hits / (10 * len(queries))
    # the embedding share of a query, for reading the figures
    t0 = time.perf_counter()
    for q in queries[:100]:
        embedder.embed([q])
    out["embed_ms"] = (time.perf_counter() - t0) * 1000 / min(100, len(queries))
    return out


@contextlib.contextmanager
def counting_round_trips() -> Iterator[dict[str, int]]:
    """Count what psycopg sends: statements (Cursor.execute) and transactions (BEGIN + COMMIT each)."""
    import psycopg

    counts = {"statements": 0, "transactions": 0}
    execute, transaction = psycopg.Cursor.execute, psycopg.Connection.transaction

    def counted_execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts["statements"] += 1
        return execute(self, *args, **kwargs)

    def counted_transaction(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts["transactions"] += 1
        return transaction(self, *args, **kwargs)

    psycopg.Cursor.execute = counted_execute  # type: ignore[method-assign]
    psycopg.Connection.transaction = counted_transaction  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        psycopg.Cursor.execute = execute  # type: ignore[method-assign]
        psycopg.Connection.transaction = transaction  # type: ignore[method-assign]


def diagnose_postgres(
    url: str,
    queries: list[str],
    qvecs: npt.NDArray[np.float32],
    vectors: npt.NDArray[np.float32],
    embedder: LocalEmbedder,
) -> None:
    """Where a PostgreSQL search spends its time: the store alone, round trips, HNSW breadth, the plan."""
    n = len(vectors)
    truth = [{f"m{i}" for i in np.argpartition(-(vectors @ qv), 10)[:10]} for qv in qvecs]
    store = open_store(url)
    try:
        store.open(embedder.name, embedder.dimension)
        scope = Scope(user_id=USER)
        for mode in ("dense", "hybrid"):
            m: SearchMode = "dense" if mode == "dense" else "hybrid"
            for q, qv in zip(queries[:10], qvecs[:10], strict=True):
                store.search(q, qv, scope, limit=10, mode=m)
            lat = []
            for q, qv in zip(queries, qvecs, strict=True):
                t0 = time.perf_counter()
                store.search(q, qv, scope, limit=10, mode=m)
                lat.append((time.perf_counter() - t0) * 1000)
            with counting_round_trips() as counts:
                store.search(queries[0], qvecs[0], scope, limit=10, mode=m)
            stmts, txs = counts["statements"], counts["transactions"]
            print(
                f"[diagnose @{n}] store.search {mode:<6} (no query embedding): "
                f"p50 {statistics.median(lat):.2f} ms p95 {percentile(lat, 0.95):.2f} ms; "
                f"{stmts + 2 * txs} round trips ({stmts} statements, {txs} transaction)"
            )
    finally:
        store.close()
    with pg_connection(url) as conn:
        from pgvector.psycopg import register_vector

        register_vector(conn)
        sql = (
            "SELECT id FROM azmem_memories m WHERE m.user_id = %s AND m.embedding IS NOT NULL "
            "ORDER BY m.embedding <=> %s LIMIT 10"
        )
        for ef in (40, 100, 200, 400):
            lat, hits = [], 0
            for qv, t in zip(qvecs, truth, strict=True):
                t0 = time.perf_counter()
                with conn.transaction():
                    conn.execute(
                        "SELECT set_config('hnsw.ef_search', %s, true), "
                        "set_config('hnsw.iterative_scan', 'relaxed_order', true)",
                        [str(ef)],
                    )
                    got = {r[0] for r in conn.execute(sql, [USER, qv])}
                lat.append((time.perf_counter() - t0) * 1000)
                hits += len(got & t)
            print(
                f"[diagnose @{n}] HNSW top-10 SQL alone, ef_search={ef:<3}: "
                f"p50 {statistics.median(lat):.2f} ms p95 {percentile(lat, 0.95):.2f} ms "
                f"recall@10 {hits / (10 * len(truth)):.4f}"
            )
        with conn.transaction():
            conn.execute("SELECT set_config('hnsw.ef_search', '200', true)")
            conn.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
            plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, [USER, qvecs[0]]).fetchall()
        text = " | ".join(re.sub(r"'\[[^']*\]'::vector", "$q", r[0].strip()) for r in plan)
        print(f"[diagnose @{n}] plan (ef_search 200): {text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ingest", type=int, default=3000, help="texts for the ingest comparison")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg-url", help="PostgreSQL server to use (default: start a throwaway one)")
    parser.add_argument(
        "--index-after-fill",
        action="store_true",
        help="PostgreSQL: drop the HNSW index before the fill and build it once after (bulk-load style)",
    )
    parser.add_argument(
        "--diagnose",
        action="store_true",
        help="PostgreSQL: also time the store without the query embedding, count round trips, "
        "sweep hnsw.ef_search and print the plan, at each size",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with contextlib.ExitStack() as stack:
        pg = stack.enter_context(PgTarget(args.pg_url)) if args.store == "postgresql" else None
        run(args, sizes, pg)


def run(args: argparse.Namespace, sizes: list[int], pg: PgTarget | None) -> None:
    backend = "sqlite" if pg is None else "postgres"

    embedder = LocalEmbedder()
    embedder.load()
    corpus, queries = corpus_and_queries(max(sizes), args.queries)
    vectors = embed_cached(corpus, "corpus")

    if pg is not None:
        print(pg.describe())
        ingest_url = pg.database("azmem_scale_ingest")

        def open_ingest() -> contextlib.AbstractContextManager[Memory]:
            return Memory(embedder=embedder, store_url=ingest_url)

    else:

        def open_ingest() -> contextlib.AbstractContextManager[Memory]:
            return sqlite_memory(embedder)

    ingest_texts = corpus[-args.ingest :]
    ingest_per_s, embed_per_s = bench_ingest(ingest_texts, embedder, open_ingest)
    ratio = ingest_per_s / embed_per_s
    print(f"ingest: Memory.add {ingest_per_s:.0f}/s, raw embed {embed_per_s:.0f}/s, ratio {ratio:.3f}")

    qvecs = embedder.embed(queries)
    results: dict[int, dict[str, float]] = {}
    for n in sizes:
        if pg is None:
            path = filled_store(n, corpus, vectors, embedder)

            def open_search(path: Path = path) -> contextlib.AbstractContextManager[Memory]:
                return sqlite_memory(embedder, path)

        else:
            url = fill_postgres(pg, n, corpus, vectors, embedder, args.index_after_fill)

            def open_search(url: str = url) -> contextlib.AbstractContextManager[Memory]:
                return Memory(embedder=embedder, store_url=url)

        r = bench_search(open_search, queries, qvecs, vectors[:n], embedder)
        results[n] = r
        print(
            f"search @{n:>6}: hybrid p50 {r['hybrid_p50']:.1f} ms p95 {r['hybrid_p95']:.1f} ms | "
            f"dense p50 {r['dense_p50']:.1f} ms p95 {r['dense_p95']:.1f} ms | "
            f"recall@10 vs exact {r['recall']:.4f} | query embedding {r['embed_ms']:.1f} ms"
        )
        if pg is not None and args.diagnose:
            diagnose_postgres(url, queries, qvecs, vectors[:n], embedder)
    big = results[max(sizes)]
    print(
        f"search_p95_ms_100k={big['hybrid_p95']:.2f} recall_at_10_vs_exact={big['recall']:.4f} "
        f"ingest_per_s={ingest_per_s:.1f} embed_per_s={embed_per_s:.1f} ingest_ratio={ratio:.3f} "
        f"dense_p95_ms_100k={big['dense_p95']:.2f} search_p50_ms_100k={big['hybrid_p50']:.2f} "
        f"backend={backend}"
    )


if __name__ == "__main__":
    main()
