"""Memory at scale: ingest throughput against the embedder's own, and search latency at 10k / 100k.

Usage::

    python bench/memory_scale.py [--ingest 3000] [--queries 300] [--sizes 10000,100000]

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

The last line is machine-readable:
``search_p95_ms_100k=... recall_at_10_vs_exact=... ingest_per_s=... embed_per_s=... ingest_ratio=...``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _corpus import CACHE_DIR, corpus_and_queries, embed_cached

from azmem.embeddings import LocalEmbedder
from azmem.memory import Memory
from azmem.stores import AddOp, MemoryRecord, Scope, SQLiteStore
from azmem.stores.models import SearchMode

USER = "bench-user"
CHUNK = 64
FILL_BATCH = 5_000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_ingest(texts: list[str], embedder: LocalEmbedder) -> tuple[float, float]:
    chunks = [texts[i : i + CHUNK] for i in range(0, len(texts), CHUNK)]
    with (
        tempfile.TemporaryDirectory() as tmp,
        Memory(embedder=embedder, store_path=Path(tmp) / "m.db") as memory,
    ):
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


def bench_search(
    path: Path,
    queries: list[str],
    qvecs: npt.NDArray[np.float32],
    vectors: npt.NDArray[np.float32],
    embedder: LocalEmbedder,
) -> dict[str, float]:
    out: dict[str, float] = {}
    modes: tuple[SearchMode, ...] = ("hybrid", "dense")
    with Memory(embedder=embedder, store_path=path) as memory:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ingest", type=int, default=3000, help="texts for the ingest comparison")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--sizes", default="10000,100000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    embedder = LocalEmbedder()
    embedder.load()
    corpus, queries = corpus_and_queries(max(sizes), args.queries)
    vectors = embed_cached(corpus, "corpus")

    ingest_texts = corpus[-args.ingest :]
    ingest_per_s, embed_per_s = bench_ingest(ingest_texts, embedder)
    ratio = ingest_per_s / embed_per_s
    print(f"ingest: Memory.add {ingest_per_s:.0f}/s, raw embed {embed_per_s:.0f}/s, ratio {ratio:.3f}")

    qvecs = embedder.embed(queries)
    results: dict[int, dict[str, float]] = {}
    for n in sizes:
        path = filled_store(n, corpus, vectors, embedder)
        r = bench_search(path, queries, qvecs, vectors[:n], embedder)
        results[n] = r
        print(
            f"search @{n:>6}: hybrid p50 {r['hybrid_p50']:.1f} ms p95 {r['hybrid_p95']:.1f} ms | "
            f"dense p50 {r['dense_p50']:.1f} ms p95 {r['dense_p95']:.1f} ms | "
            f"recall@10 vs exact {r['recall']:.4f} | query embedding {r['embed_ms']:.1f} ms"
        )
    big = results[max(sizes)]
    print(
        f"search_p95_ms_100k={big['hybrid_p95']:.2f} recall_at_10_vs_exact={big['recall']:.4f} "
        f"ingest_per_s={ingest_per_s:.1f} embed_per_s={embed_per_s:.1f} ingest_ratio={ratio:.3f} "
        f"dense_p95_ms_100k={big['dense_p95']:.2f} search_p50_ms_100k={big['hybrid_p50']:.2f}"
    )


if __name__ == "__main__":
    main()
