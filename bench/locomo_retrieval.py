"""Evidence recall of Memory.search on LoCoMo: dense vs BM25 vs hybrid.

Usage::

    python bench/locomo_retrieval.py /work/shared/data/locomo [--store PATH]

Every turn of every conversation is added through ``Memory.add(infer=False)`` (one
call per session; the text stored is ``"<speaker>: <text>"``, with the image caption
appended for turns that share a photo; each conversation is its own ``user_id``).
Then every question that has evidence is searched in its conversation with each mode,
and we report evidence recall@1/@5/@10 (the share of the question's evidence turns
among the top k), by question category, and the size of the retrieved context
(top 10) in approximate tokens (characters / 4, OpenAI's rule of thumb).

The last line is machine-readable: ``hybrid_r10=... dense_r10=... bm25_r10=...``.
Not a test: it needs the LoCoMo data, which the package never depends on.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from azmem.memory import Memory

MODES = ("dense", "bm25", "hybrid")
KS = (1, 5, 10)
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}


def conversations(data_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """LoCoMo files: one conversation per file (flat keys) or the original list form."""
    out: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(data_dir.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        items = data if isinstance(data, list) else [data]
        for i, item in enumerate(items):
            conv = dict(item.get("conversation", item))
            conv["qa"] = item.get("qa", [])
            out.append((f"{path.stem}-{i}" if len(items) > 1 else path.stem, conv))
    return out


def sessions(conv: dict[str, Any]) -> list[tuple[datetime | None, list[dict[str, Any]]]]:
    numbers = sorted(
        int(k.split("_")[1])
        for k, v in conv.items()
        if k.startswith("session_") and isinstance(v, list) and v
    )
    out = []
    for n in numbers:
        raw = conv.get(f"session_{n}_date_time")
        when = None
        if isinstance(raw, str):
            try:
                when = datetime.strptime(raw.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)
            except ValueError:
                when = None
        out.append((when, conv[f"session_{n}"]))
    return out


def turn_text(turn: dict[str, Any]) -> str:
    text = f"{turn['speaker']}: {turn['text']}"
    if turn.get("blip_caption"):
        text += f" [shares a photo: {turn['blip_caption']}]"
    return text


def evidence_ids(qa: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for item in qa.get("evidence") or []:
        for part in str(item).replace(",", ";").split(";"):
            part = part.strip()
            if part:
                out.append(part)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--store", type=Path, default=None, help="SQLite file (default: a temporary one)")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory()
    store_path = args.store or Path(tmp.name) / "locomo.db"
    convs = conversations(args.data_dir)
    if not convs:
        sys.exit(f"no LoCoMo JSON files in {args.data_dir}")

    recall: dict[str, dict[int, list[float]]] = {m: {k: [] for k in KS} for m in MODES}
    by_cat: dict[str, dict[int, list[float]]] = {m: defaultdict(list) for m in MODES}
    tokens: dict[str, list[float]] = {m: [] for m in MODES}
    latency: dict[str, list[float]] = {m: [] for m in MODES}
    skipped = 0
    turns = 0
    with Memory(store_path=store_path) as memory:
        started = time.perf_counter()
        dia_of: dict[str, str] = {}
        for conv_id, conv in convs:
            for when, session in sessions(conv):
                messages = [
                    {"role": "user", "content": turn_text(t), **({"timestamp": when} if when else {})}
                    for t in session
                ]
                result = memory.add(messages, user_id=conv_id, infer=False)
                for event, turn in zip(result.results, session, strict=True):
                    dia_of[event.id] = turn["dia_id"]
                turns += len(session)
        ingest_s = time.perf_counter() - started
        print(f"ingested {turns} turns from {len(convs)} conversations in {ingest_s:.1f} s", file=sys.stderr)

        questions = 0
        for conv_id, conv in convs:
            known = {t["dia_id"] for _, s in sessions(conv) for t in s}
            for qa in conv["qa"]:
                evidence = {e for e in evidence_ids(qa) if e in known}
                if not evidence:
                    skipped += 1
                    continue
                questions += 1
                for mode in MODES:
                    t0 = time.perf_counter()
                    hits = memory.search(qa["question"], user_id=conv_id, limit=max(KS), mode=mode).results
                    latency[mode].append((time.perf_counter() - t0) * 1000)
                    ranked = [dia_of[h.id] for h in hits]
                    for k in KS:
                        found = len(evidence & set(ranked[:k])) / len(evidence)
                        recall[mode][k].append(found)
                        if k == 10:
                            by_cat[mode][qa.get("category", 0)].append(found)
                    tokens[mode].append(sum(len(h.memory) for h in hits) / 4)

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs) if xs else 0.0

    print(f"\nLoCoMo evidence recall ({questions} questions with evidence, {skipped} without; {turns} turns)")
    print(f"{'mode':8} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'ctx tokens@10':>14} {'p50 ms':>7} {'p95 ms':>7}")
    for mode in MODES:
        lat = sorted(latency[mode])
        p95 = lat[int(0.95 * (len(lat) - 1))] if lat else 0.0
        r1, r5, r10 = (mean(recall[mode][k]) for k in KS)
        p50 = statistics.median(lat) if lat else 0.0
        print(f"{mode:8} {r1:6.3f} {r5:6.3f} {r10:6.3f} {mean(tokens[mode]):14.0f} {p50:7.1f} {p95:7.1f}")
    print("\nrecall@10 by category")
    cats = sorted({c for m in MODES for c in by_cat[m]})
    print(f"{'category':16} {'n':>4} " + " ".join(f"{m:>7}" for m in MODES))
    for cat in cats:
        n = len(by_cat["hybrid"][cat])
        name = CATEGORIES.get(cat, str(cat))
        print(f"{name:16} {n:4d} " + " ".join(f"{mean(by_cat[m][cat]):7.3f}" for m in MODES))
    tmp.cleanup()
    print(
        f"hybrid_r10={mean(recall['hybrid'][10]):.4f} dense_r10={mean(recall['dense'][10]):.4f} "
        f"bm25_r10={mean(recall['bm25'][10]):.4f} hybrid_r5={mean(recall['hybrid'][5]):.4f} "
        f"hybrid_r1={mean(recall['hybrid'][1]):.4f} ctx_tokens_hybrid={mean(tokens['hybrid']):.0f} "
        f"questions={questions}"
    )


if __name__ == "__main__":
    main()
