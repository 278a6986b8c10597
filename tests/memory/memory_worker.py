"""Subprocess side of the Memory-level crash and concurrency tests.

``python memory_worker.py crash PATH SEED``: add batches through ``Memory.add(infer=False)``
forever, printing ``commit N`` after each add returns, until killed.

``python memory_worker.py write PATH PREFIX BATCHES``: print ``ready`` once the model is
loaded, wait for a line on stdin, add BATCHES batches, print ``done``.

Every message carries a unique token (``<prefix>b<batch>m<i>``) so the parent can find each
memory by keyword, and its batch number in metadata so it can check all-or-nothing adds.
The real local embedder and the real SQLite store are used: nothing is faked.
"""

from __future__ import annotations

import sys

from azmem.embeddings import LocalEmbedder
from azmem.memory import Memory

BATCH = 20
USERS = 3
TOPICS = ["tea and biscuits", "sailing in Oslo", "a dog named Rex", "piano lessons", "the night shift"]


def token(prefix: str, batch: int, i: int) -> str:
    return f"{prefix}b{batch}m{i}"


def messages(prefix: str, batch: int) -> list[dict[str, object]]:
    return [
        {
            "role": "user" if i % 2 == 0 else "assistant",
            "content": f"{token(prefix, batch, i)} remembers {TOPICS[(batch + i) % len(TOPICS)]}",
            "timestamp": 1_700_000_000 + batch * 60 + i,
        }
        for i in range(BATCH)
    ]


def add_batch(memory: Memory, prefix: str, batch: int) -> None:
    memory.add(
        messages(prefix, batch),
        user_id=f"{prefix}{batch % USERS}",
        metadata={"batch": batch, "prefix": prefix},
        infer=False,
    )


def crash(path: str, seed: int) -> None:
    prefix = f"c{seed}x"
    with Memory(embedder=LocalEmbedder(threads=1), store_path=path) as memory:
        batch = 0
        while True:
            batch += 1
            add_batch(memory, prefix, batch)
            print(f"commit {batch}", flush=True)


def write(path: str, prefix: str, batches: int) -> None:
    embedder = LocalEmbedder(threads=1)
    embedder.load()
    with Memory(embedder=embedder, store_path=path) as memory:
        print("ready", flush=True)
        sys.stdin.readline()  # both writers start their first add (and bind the store) together
        for batch in range(1, batches + 1):
            add_batch(memory, prefix, batch)
    print("done", flush=True)


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "crash":
        crash(sys.argv[2], int(sys.argv[3]))
    elif command == "write":
        write(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        raise SystemExit(f"unknown command {command!r}")
