"""Subprocess side of the crash and concurrency tests: `python store_worker.py COMMAND PATH ...`.

Runs as a plain script (its own directory is on sys.path), so it imports the helpers
directly rather than as part of the test package.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
from store_helpers import fake_embed, open_store

from azmem.stores import AddOp, DeleteOp, MemoryRecord, Scope, SQLiteStore, UpdateOp

BATCH = 40


def token(batch: int, i: int) -> str:
    return f"tok{batch}x{i}"


def crash_writer(path: str, seed: int) -> None:
    """Write forever: batches of adds (each batch tagged so its atomicity can be checked),
    updates that keep each memory's unique token, deletes, and scoped bulk deletes."""
    rng = random.Random(seed)
    store = open_store(path)
    live = [r.id for batch in store.iter_all() for r in batch]
    n = seed * 1_000_000
    while True:
        n += 1
        roll = rng.random()
        if roll < 0.6 or len(live) < BATCH:
            ops = []
            for i in range(BATCH):
                text = f"{token(n, i)} memory about alpha beta gamma delta {i % 7}"
                rec = MemoryRecord.new(
                    text, Scope(user_id=f"u{i % 3}", run_id=f"r{n % 5}"), metadata={"batch": n, "size": BATCH}
                )
                ops.append(AddOp(rec, fake_embed(text)))
            store.apply(ops)
            live += [op.record.id for op in ops]
        elif roll < 0.85:
            ops2: list[UpdateOp | DeleteOp] = []
            for mid in rng.sample(live, 10):
                rec2 = store.get(mid)
                assert rec2 is not None
                text = f"{rec2.memory.split()[0]} updated {n} epsilon zeta"
                ops2.append(
                    UpdateOp(mid, memory=text, vector=fake_embed(text), metadata={**rec2.metadata, "u": n})
                )
            doomed = rng.sample(live, 5)
            ops2 += [DeleteOp(mid) for mid in doomed if mid not in {o.id for o in ops2}]
            store.apply(ops2)
            gone = {o.id for o in ops2 if isinstance(o, DeleteOp)}
            live = [m for m in live if m not in gone]
        else:
            store.delete_all(Scope(user_id=f"u{n % 3}", run_id=f"r{n % 5}"))
            live = [r.id for batch in store.iter_all() for r in batch]
        print(f"commit {n}", flush=True)


def reindex_and_hang(path: str) -> None:
    """Start a reindex to dimension 8 and stop inside its transaction, after half the vectors,
    waiting to be killed: a deterministic kill in the middle of the biggest write there is."""
    store = SQLiteStore(path)
    total = store.count()

    def vectors() -> Iterator[tuple[str, npt.NDArray[np.float32]]]:
        done = 0
        for batch in store.iter_all(16):
            for rec in batch:
                yield rec.id, fake_embed(rec.memory, 8)
                done += 1
                if done == total // 2:
                    print("halfway", flush=True)
                    sys.stdin.readline()  # never answered: the parent kills us here

    store.replace_vectors("fake:other-8", 8, vectors())


def writer(path: str, user: str, count: int, go_file: str) -> None:
    store = open_store(path)
    while not Path(go_file).exists():  # start together with the other writer
        time.sleep(0.005)
    for start in range(0, count, 5):
        ops = []
        for i in range(start, min(start + 5, count)):
            text = f"{user} item {i} token{user}{i}"
            ops.append(AddOp(MemoryRecord.new(text, Scope(user_id=user)), fake_embed(text)))
        store.apply(ops)
    store.close()
    print("done", flush=True)


def reader(path: str) -> None:
    """Answer `search WORDS` lines on stdin with one JSON line of results per mode."""
    store = open_store(path)
    print("ready", flush=True)
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "quit":
            break
        out = {
            mode: [h.record.memory for h in store.search(arg, fake_embed(arg), Scope(), mode=mode)]
            for mode in ("hybrid", "dense", "bm25")
        }
        out["count"] = store.count()  # type: ignore[assignment]
        print(json.dumps(out), flush=True)
    store.close()


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "crash-writer":
        crash_writer(args[0], int(args[1]))
    elif command == "writer":
        writer(args[0], args[1], int(args[2]), args[3])
    elif command == "reindex-and-hang":
        reindex_and_hang(args[0])
    elif command == "reader":
        reader(args[0])
    else:
        raise SystemExit(f"unknown command {command}")
