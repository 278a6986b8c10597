"""Vector index latency and recall on real MiniLM embeddings (not timed in tests).

    python bench/vector_index.py [--sizes 10000,100000] [--queries 500] [--data DIR]

Embeds a varied memory-like corpus once with the local model (cached under
bench/.cache, ~10 minutes the first time on 2 cores), then for each index mode and size
measures single-query search latency (p50 / p95, ms) and recall@10 against exact
search. Also times two rejected numpy alternatives (float16 scan, PCA-128 scan, each
with the same exact re-rank) so the choice stays documented by numbers, a size sweep
for the ``auto`` threshold, and restricted (``allowed``) searches. The last line is
``key=value`` pairs for scripts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _corpus

from azmem.stores.sqlite.vectors import VectorIndex

K = 10
F32 = npt.NDArray[np.float32]
Searcher = Callable[[F32], npt.NDArray[np.int64]]


def exact_truth(corpus: F32, queries: F32, k: int) -> npt.NDArray[np.int64]:
    scores = queries @ corpus.T
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return top.astype(np.int64)


def measure(
    search: Searcher, queries: F32, truth: npt.NDArray[np.int64] | None
) -> tuple[float, float, float]:
    """(p50 ms, p95 ms, recall@k): one query at a time, as an agent's memory lookup is."""
    for q in queries[:20]:  # warm caches and lazily built structures
        search(q)
    times: list[float] = []
    hits = 0
    for i, q in enumerate(queries):
        start = time.perf_counter()
        got = search(q)
        times.append((time.perf_counter() - start) * 1e3)
        if truth is not None:
            hits += len(set(truth[i].tolist()) & set(got.tolist()))
    recall = hits / (truth.shape[0] * truth.shape[1]) if truth is not None else float("nan")
    return float(np.percentile(times, 50)), float(np.percentile(times, 95)), recall


def index_searcher(index: VectorIndex, k: int) -> Searcher:
    return lambda q: index.search(q, k)[0]


def restricted_searcher(index: VectorIndex, k: int, allowed: npt.NDArray[np.int64]) -> Searcher:
    return lambda q: index.search(q, k, allowed=allowed)[0]


def f16_searcher(corpus: F32, k: int, rerank: int) -> Searcher:
    """Rejected: numpy has no BLAS for float16, so the half-size scan is slower, not faster."""
    half = corpus.astype(np.float16)

    def search(q: F32) -> npt.NDArray[np.int64]:
        approx = half @ q.astype(np.float16)
        cand = np.argpartition(-approx, rerank - 1)[:rerank]
        exact = np.einsum("ij,j->i", corpus[cand], q)
        return cand[np.argsort(-exact)[:k]].astype(np.int64)

    return search


def pca_searcher(corpus: F32, k: int, rerank: int, dims: int = 128) -> Searcher:
    """Rejected: a 3x smaller float scan, still bandwidth-bound and lossy on 384-d MiniLM."""
    mean = corpus.mean(axis=0)
    _, _, vt = np.linalg.svd(corpus[:20_000] - mean, full_matrices=False)
    basis = np.ascontiguousarray(vt[:dims].T.astype(np.float32))
    reduced = np.ascontiguousarray((corpus - mean) @ basis)

    def search(q: F32) -> npt.NDArray[np.int64]:
        approx = np.einsum("ij,j->i", reduced, (q - mean) @ basis)
        cand = np.argpartition(-approx, rerank - 1)[:rerank]
        exact = np.einsum("ij,j->i", corpus[cand], q)
        return cand[np.argsort(-exact)[:k]].astype(np.int64)

    return search


def build(corpus: F32, **kwargs: object) -> tuple[VectorIndex, float]:
    start = time.perf_counter()
    index = VectorIndex(corpus.shape[1], **kwargs)  # type: ignore[arg-type]
    index.add(np.arange(corpus.shape[0], dtype=np.int64), corpus)
    if index.mode != "exact":
        index.search(corpus[0], K)  # builds the binary codes (lazily, on first quantized search)
    return index, time.perf_counter() - start


def fmt_size(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--data", type=Path, default=_corpus.DEFAULT_LOCOMO)
    parser.add_argument(
        "--no-alternatives", action="store_true", help="skip the rejected float16 / PCA scans"
    )
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))

    texts, query_texts = _corpus.corpus_and_queries(max(sizes), args.queries, args.data)
    t0 = time.perf_counter()
    corpus_all = _corpus.embed_cached(texts, "corpus")
    queries = _corpus.embed_cached(query_texts, "queries")
    elapsed = time.perf_counter() - t0
    print(f"corpus {corpus_all.shape} queries {queries.shape} (loaded or embedded in {elapsed:.1f}s)")

    kv: dict[str, str] = {}
    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} cpus)")
    print(f"\n{'size':>6} {'mode':<28} {'build_s':>8} {'p50_ms':>8} {'p95_ms':>8} {'recall@k':>9}")
    for n in sizes:
        corpus = np.ascontiguousarray(corpus_all[:n])
        truth = exact_truth(corpus, queries, K)
        tag = fmt_size(n)
        configs: list[tuple[str, dict[str, object]]] = [
            ("exact", {"mode": "exact"}),
            ("quantized (rerank 200)", {"mode": "quantized", "rerank": 200}),
            ("quantized (rerank 400)", {"mode": "quantized"}),
            ("quantized (rerank 800)", {"mode": "quantized", "rerank": 800}),
            ("auto", {"mode": "auto"}),
        ]
        for label, kwargs in configs:
            index, build_s = build(corpus, **kwargs)
            p50, p95, recall = measure(index_searcher(index, K), queries, truth)
            print(f"{tag:>6} {label:<28} {build_s:8.2f} {p50:8.2f} {p95:8.2f} {recall:9.4f}")
            key = label.split(" ")[0] if "400" in label or " " not in label else None
            if key:
                kv[f"{key}_p50_ms_{tag}"] = f"{p50:.2f}"
                kv[f"{key}_p95_ms_{tag}"] = f"{p95:.2f}"
                kv[f"{key}_recall_{tag}"] = f"{recall:.4f}"
            del index
        if not args.no_alternatives:
            for label, searcher in (
                ("float16 scan + rerank 400", f16_searcher(corpus, K, 400)),
                ("pca128 scan + rerank 400", pca_searcher(corpus, K, 400)),
            ):
                p50, p95, recall = measure(searcher, queries[:100], truth[:100])
                print(f"{tag:>6} {label:<28} {'':>8} {p50:8.2f} {p95:8.2f} {recall:9.4f}")

        # Larger k, as the store asks for (hybrid depth 40, filtered over-fetch 200).
        index, _ = build(corpus, mode="auto")
        for k in (40, 200):
            p50, p95, recall = measure(index_searcher(index, k), queries, exact_truth(corpus, queries, k))
            label = f"auto, k={k}"
            print(f"{tag:>6} {label:<28} {'':>8} {p50:8.2f} {p95:8.2f} {recall:9.4f}")
            kv[f"auto_k{k}_p95_ms_{tag}"] = f"{p95:.2f}"
            kv[f"auto_k{k}_recall_{tag}"] = f"{recall:.4f}"
        del index

        # Restricted searches (scope / metadata filters resolved in SQL first).
        index, _ = build(corpus, mode="auto")
        rng = np.random.default_rng(0)
        for share in (0.01, 0.5):
            allowed = np.sort(rng.choice(n, int(n * share), replace=False)).astype(np.int64)
            sub_truth = allowed[exact_truth(corpus[allowed], queries, K)]
            p50, p95, recall = measure(restricted_searcher(index, K, allowed), queries, sub_truth)
            label = f"auto, allowed {share:.0%} ({allowed.size})"
            print(f"{tag:>6} {label:<28} {'':>8} {p50:8.2f} {p95:8.2f} {recall:9.4f}")
            kv[f"allowed{int(share * 100)}pct_p95_ms_{tag}"] = f"{p95:.2f}"
            kv[f"allowed{int(share * 100)}pct_recall_{tag}"] = f"{recall:.4f}"
        del index

    # Where does the binary scan start to pay? (sets auto_threshold)
    print("\nauto threshold sweep (200 queries, p50 ms): size exact quantized")
    sweep_queries = queries[:200]
    for n in (5_000, 10_000, 20_000, 50_000):
        if n > corpus_all.shape[0]:
            break
        corpus = np.ascontiguousarray(corpus_all[:n])
        exact_index, _ = build(corpus, mode="exact")
        quant_index, _ = build(corpus, mode="quantized")
        e50, _, _ = measure(index_searcher(exact_index, K), sweep_queries, None)
        q50, _, _ = measure(index_searcher(quant_index, K), sweep_queries, None)
        print(f"  {n:>7} {e50:8.2f} {q50:8.2f}")

    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    big = fmt_size(sizes[-1])
    kv["search_p95_ms_" + big] = kv[f"auto_p95_ms_{big}"]
    kv["recall_at_10_vs_exact"] = kv[f"auto_recall_{big}"]
    print(" ".join(f"{k}={v}" for k, v in kv.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
