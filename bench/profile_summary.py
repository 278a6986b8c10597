"""Where a server's CPU went: py-spy's collapsed stacks (``--format raw``) summed by thread and by part.

Usage::

    python bench/server_load.py --duration 20 --server-only --profile /tmp/serve.prof
    python bench/profile_summary.py /tmp/serve.prof [--requests N]

Each sample is charged to the first part its stack meets walking from the innermost
frame outwards (so json inside pydantic counts as pydantic's, a store call inside the
audit wrapper as the store's). Idle samples (a thread waiting in ``select``, on a lock
or on a queue) are counted apart. With ``--requests`` (the requests served while
sampling) the busy share of each part is also given in milliseconds of one core per
request, at the sampling rate (``--rate``, 250 Hz by default in server_load.py).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

#: (part, pattern on "function (file:line)") — the first rule matching a frame wins, innermost frame first.
RULES: tuple[tuple[str, str], ...] = (
    ("idle", r"^(select|poll|epoll_wait|_wait_for_tstate_lock|wait) \((selectors|threading|queue)\.py"),
    ("idle", r"\(concurrent/futures/thread\.py:\d+\)$ IDLE"),
    ("embedding (onnx, tokenizer)", r"azmem/embeddings/local\.py|onnxruntime|tokenizers"),
    ("embedding batching", r"azmem/embeddings/batching\.py"),
    ("audit", r"azmem/memory/audit\.py|azmem/stores/audit|azmem/stores/sqlite/audit"),
    ("store (SQLite / PostgreSQL)", r"azmem/stores/|sqlite3|psycopg|pgvector"),
    ("pydantic (validation, dump)", r"pydantic"),
    ("json", r"json/"),
    ("auth gate, keys, rate", r"azmem/server/(gate|keyring|principal|logs)\.py|azmem/stores/keys"),
    ("logging", r"logging/"),
    ("azmem routes/deps", r"azmem/server/"),
    ("azmem memory flows", r"azmem/memory/"),
    ("fastapi routing/deps", r"fastapi/"),
    ("starlette", r"starlette/"),
    ("HTTP parsing (h11, uvicorn)", r"h11/|uvicorn/|httptools"),
    ("mcp sdk", r"mcp/"),
    ("anyio", r"anyio/"),
    ("thread hand-off", r"concurrent/futures/|threading\.py"),
    ("asyncio event loop", r"asyncio/|selectors\.py"),
)
_COMPILED = [(part, re.compile(pattern)) for part, pattern in RULES]
_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")


def classify(frames: list[str]) -> str:
    leaf = frames[-1] if frames else ""
    if re.match(r"^(select|poll|_wait_for_tstate_lock|wait|_worker|get|acquire) \(", leaf) and (
        "selectors.py" in leaf or "threading.py" in leaf or "queue.py" in leaf or "thread.py" in leaf
    ):
        return "idle"
    for frame in reversed(frames):
        for part, rx in _COMPILED:
            if part != "idle" and rx.search(frame):
                return part
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("path", type=Path)
    parser.add_argument("--requests", type=int, default=0)
    parser.add_argument("--rate", type=float, default=250.0)
    parser.add_argument("--top", type=int, default=0, help="Also print the N hottest leaf frames.")
    parser.add_argument("--thread", default=None, help="Only this thread (e.g. MainThread, azmem-store).")
    args = parser.parse_args()
    by_thread: Counter[str] = Counter()
    by_part: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for raw in args.path.read_text().splitlines():
        m = _LINE.match(raw)
        if m is None:
            continue
        frames = m["stack"].split(";")
        count = int(m["count"])
        thread = re.sub(r"^thread \(\d+\): ", "", frames[0])
        thread = re.sub(r"_\d+$", "", thread)
        if args.thread is not None and thread != args.thread:
            continue
        part = classify(frames[1:])
        if part == "idle":
            by_thread[f"{thread} (idle)"] += count
            continue
        by_thread[thread] += count
        by_part[part] += count
        leaves[frames[-1]] += count
    busy = sum(by_part.values())
    print(f"busy samples: {busy} ({busy / args.rate:.1f} s of one core at {args.rate:g} Hz)")
    print("by thread:")
    for thread, n in by_thread.most_common():
        print(f"  {thread:<40} {n:7d}")
    print("by part (busy samples):")
    for part, n in by_part.most_common():
        per = f"  {n / args.rate / args.requests * 1000:6.2f} ms/request" if args.requests else ""
        print(f"  {part:<32} {n:7d} {100 * n / max(busy, 1):5.1f} %{per}")
    for leaf, n in leaves.most_common(args.top):
        print(f"  {n:6d} {leaf}")


if __name__ == "__main__":
    main()
