"""The server under load: concurrent clients, mixed add and search, against `azmem serve` and in process.

Usage::

    python bench/server_load.py [--clients 32] [--duration 60] [--search-share 0.5] [--prefill 1000]
    python bench/server_load.py --store postgresql [--pg-url postgresql://...]

* A store is pre-filled with ``--prefill`` memories of one user (so searches rank a real
  scope), and an API key bound to that user is created in it.
* Server: ``azmem serve`` runs as its own process on a loopback port; ``--clients``
  asyncio clients (httpx2, one connection each) loop for ``--duration`` seconds, each
  request an add (``infer=false``, one short message) or a search (hybrid, limit 10),
  drawn with probability ``--search-share``. Latency is measured at the client, so it
  includes HTTP, JSON, auth and the event loop.
* In process: the same mix for the same time from the same number of concurrent tasks
  on one ``AsyncMemory`` over a copy of the pre-filled store, embedding the way the
  server does (an ``AsyncBatchingEmbedder`` around the local model, unless batching is
  off): what the server costs is the ratio of the two request rates.
* The server's local embeddings are micro-batched (concurrent requests share one ONNX
  run); ``AZMEM_EMBEDDING_BATCH=0`` in the environment turns that off for an A/B run
  (also ``AZMEM_EMBEDDING_BATCH_WAIT_MS``, ``AZMEM_EMBEDDING_WORKERS`` and
  ``AZMEM_EMBEDDING_THREADS``, read by the server and the in-process run alike). How
  full the batches were is read from ``/v1/status`` after the run.
* ``--calibrate``: first measure the local model alone, one text per call against
  batches of 32, on this machine and its current load.
* The machine's load average is printed before and after each phase: on a shared
  machine, compare runs made under similar load only.

With ``--store postgresql`` both run on a PostgreSQL + pgvector database (a throwaway
server from ``tests/pg_server.py`` via ``bench/_pg.py``, or ``--pg-url``); this needs the
PostgreSQL store (``azmem.stores.postgres.PostgresStore``).

The last line is machine-readable:
``server_rps=... search_p95_ms=... add_p95_ms=... errors=... inprocess_ratio=... backend=...
batching=... texts_per_batch=... load1=... server_cpu_ms=... client_cpu_ms=...`` (0 for the ratio
with ``--server-only``).

CPU per request (Linux): the server process's and each of its threads' CPU time over the
client phase (``/proc``), and the clients' own, divided by the requests served. On a shared
machine this is steadier than the request rate, which follows the other jobs' load.
``--profile PATH`` also samples the server with py-spy (``pip install py-spy``) and
``bench/profile_summary.py PATH`` sums the samples by thread and part (py-spy's samples
count time on a thread, runnable or running, not CPU: under contention compare shares).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parent))

from azmem.embeddings import AsyncBatchingEmbedder, AsyncEmbedder, Embedder, LocalEmbedder
from azmem.memory import AsyncMemory, Memory
from azmem.server import ServerConfig
from azmem.server.keyring import open_key_ring

USER = "bench-user"
TOPICS = ("tea", "running", "Lisbon", "the cello", "peanuts", "Rust", "jazz", "sailing", "Kyoto", "chess")


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"add": [], "search": []})
    errors: int = 0

    def rate(self, seconds: float) -> float:
        return sum(len(v) for v in self.latencies.values()) / seconds

    def p(self, op: str, q: float) -> float:
        values = sorted(self.latencies[op])
        if not values:
            return float("nan")
        return values[min(len(values) - 1, round(q * (len(values) - 1)))] * 1000


def _text(rng: random.Random) -> str:
    return f"{USER} mentioned {rng.choice(TOPICS)} on day {rng.randrange(1000)} ({rng.random():.6f})"


async def _drive(
    clients: int,
    seconds: float,
    share: float,
    add: Callable[[str], Awaitable[bool]],
    search: Callable[[str], Awaitable[bool]],
) -> tuple[Tally, float]:
    tally = Tally()
    deadline = time.perf_counter() + seconds

    async def client(seed: int) -> None:
        rng = random.Random(seed)
        while time.perf_counter() < deadline:
            op = "search" if rng.random() < share else "add"
            started = time.perf_counter()
            ok = await (search(f"what about {rng.choice(TOPICS)}?") if op == "search" else add(_text(rng)))
            if ok:
                tally.latencies[op].append(time.perf_counter() - started)
            else:
                tally.errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return tally, time.perf_counter() - started


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def calibrate(seconds: float = 4.0) -> None:
    """The local model alone: texts/s embedding one text per call, against batches of 32."""
    embedder = LocalEmbedder()
    embedder.load()
    texts = [f"what about {t} on day {i}?" for i, t in enumerate(TOPICS * 4)][:32]

    def rate(batch: int) -> float:
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            for i in range(0, 32, batch):
                embedder.embed(texts[i : i + batch])
            done += 32
        return done / (time.perf_counter() - started)

    single, batched = rate(1), rate(32)
    print(
        f"local model: {single:.0f} texts/s one per call ({1000 / single:.2f} ms each), "
        f"{batched:.0f} texts/s in batches of 32 ({1000 / batched:.2f} ms each): x{batched / single:.1f} "
        f"({load()})"
    )
    # What the server pays: CPU (not wall) time per text on one onnxruntime thread, for this
    # bench's own texts (an add's message is ~3x a search's query in tokens), batched by 16.
    one = LocalEmbedder(threads=1)
    one.load()
    rng = random.Random(3)
    kinds = {
        "add": [_text(rng) for _ in range(16)],
        "search": [f"what about {rng.choice(TOPICS)}?" for _ in range(16)],
    }
    kinds["mixed"] = kinds["add"][:8] + kinds["search"][:8]
    costs = []
    for kind, texts in kinds.items():
        done, cpu0, wall0 = 0, time.process_time(), time.perf_counter()
        while time.perf_counter() - wall0 < seconds / 2:
            one.embed(texts)
            done += len(texts)
        costs.append(f"{kind} {(time.process_time() - cpu0) * 1000 / done:.2f}")
    print(f"local model, 1 thread, batches of 16, CPU ms per text: {', '.join(costs)} ({load()})")


async def batching_stats(url: str, key: str) -> dict[str, float] | None:
    """How full the server's embedding batches were (its /v1/status)."""
    async with httpx2.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}) as http:
        r = await http.get("/v1/status")
    found: dict[str, float] | None = r.json().get("embedding_batching") if r.status_code == 200 else None
    return found


async def against_server(url: str, key: str, args: argparse.Namespace) -> tuple[Tally, float]:
    limits = httpx2.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx2.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60, limits=limits
    ) as http:

        async def add(text: str) -> bool:
            try:
                r = await http.post("/v1/memories", json={"text": text, "infer": False})
            except httpx2.HTTPError:
                return False
            return r.status_code == 200

        async def search(query: str) -> bool:
            try:
                r = await http.post("/v1/search", json={"query": query, "limit": 10})
            except httpx2.HTTPError:
                return False
            return r.status_code == 200

        return await _drive(args.clients, args.duration, args.search_share, add, search)


def server_like_embedder() -> Embedder | AsyncEmbedder:
    """The local model the way `azmem serve` builds it (same environment knobs)."""
    plan = ServerConfig().embedding_plan()
    local = LocalEmbedder(threads=plan.threads)
    if plan.batch_size == 0:
        return local
    return AsyncBatchingEmbedder(local, max_batch=plan.batch_size, max_wait=plan.wait, workers=plan.workers)


async def in_process(store_url: str, args: argparse.Namespace) -> tuple[Tally, float]:
    embedder = server_like_embedder()
    async with AsyncMemory(embedder=embedder, store_url=store_url) as memory:

        async def add(text: str) -> bool:
            await memory.add(text, user_id=USER, infer=False)
            return True

        async def search(query: str) -> bool:
            await memory.search(query, user_id=USER, limit=10)
            return True

        try:
            return await _drive(args.clients, args.duration, args.search_share, add, search)
        finally:
            if isinstance(embedder, AsyncBatchingEmbedder):
                await embedder.aclose()


def prefill(store_url: str, n: int) -> str:
    """Fill the store with n memories of USER and make a key bound to USER; returns the key."""
    rng = random.Random(7)
    with Memory(embedder=LocalEmbedder(), store_url=store_url) as memory:
        for start in range(0, n, 64):
            batch = [{"role": "user", "content": _text(rng)} for _ in range(min(64, n - start))]
            memory.add(batch, user_id=USER, infer=False)
    ring = open_key_ring(store_url)
    try:
        return ring.create(f"bench-{os.getpid()}", user_ids=[USER]).secret
    finally:
        ring.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(store_url: str, home: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    azmem = str(Path(sys.executable).with_name("azmem"))
    log = (home / "serve.log").open("wb")
    proc = subprocess.Popen(
        [azmem, "serve", "--port", str(port), "--store", store_url, "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env={**os.environ, "AZMEM_HOME": str(home)},
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx2.get(f"{url}/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx2.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"azmem serve did not start: {(home / 'serve.log').read_text()}")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of the process (Linux /proc)."""
    out: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def _thread_names(profile: str) -> dict[int, str]:
    """Thread id -> Python thread name, from py-spy's collapsed stacks."""
    import re

    names: dict[int, str] = {}
    try:
        text = Path(profile).read_text()
    except OSError:
        return names
    for m in re.finditer(r"^thread \((\d+)\): ([^;]+);", text, re.M):
        names[int(m[1])] = m[2]
    return names


def _own_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def profiler(pid: int, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    """py-spy sampling the server (every thread, GIL or not) while the clients run."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--format", "raw", "--threads", "--rate", "250",
         "--duration", str(int(args.duration) + 2), "--output", args.profile, "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def report(name: str, tally: Tally, seconds: float) -> None:
    print(
        f"{name:<11} {tally.rate(seconds):8.1f} req/s  "
        + "  ".join(
            f"{op} n={len(tally.latencies[op])} p50={tally.p(op, 0.5):.1f}ms p95={tally.p(op, 0.95):.1f}ms"
            for op in ("search", "add")
        )
        + f"  errors={tally.errors}"
    )


def run(args: argparse.Namespace, server_url: str, inproc_url: str, home: Path, backend: str) -> None:
    t0 = time.perf_counter()
    key = prefill(server_url, args.prefill)
    if inproc_url != server_url:
        prefill(inproc_url, args.prefill)
    print(f"prefilled {args.prefill} memories in {time.perf_counter() - t0:.1f}s ({backend})")
    plan = ServerConfig().embedding_plan()
    batching = f"{plan.batch_size}/{plan.wait * 1000:g}ms/{plan.workers}w" if plan.batch_size else "off"
    threads = plan.threads or os.environ.get("AZMEM_EMBEDDING_THREADS") or "default"
    batching += f"/t{threads}"
    print(f"local embeddings: {plan.describe()}")
    proc, url = serve(server_url, home)
    print(f"server phase: {load()}")
    spy = profiler(proc.pid, args) if args.profile else None
    cpu0, threads0, client0 = _cpu_seconds(proc.pid), _thread_cpu(proc.pid), _own_cpu()
    try:
        server_tally, server_s = asyncio.run(against_server(url, key, args))
        server_cpu, client_cpu = _cpu_seconds(proc.pid) - cpu0, _own_cpu() - client0
        threads1 = _thread_cpu(proc.pid)
        stats = asyncio.run(batching_stats(url, key))
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    load1 = os.getloadavg()[0]
    served = sum(len(v) for v in server_tally.latencies.values()) + server_tally.errors
    print(
        f"CPU per request: server {server_cpu / max(served, 1) * 1000:.2f} ms, "
        f"clients {client_cpu / max(served, 1) * 1000:.2f} ms ({server_cpu:.1f} s and {client_cpu:.1f} s "
        f"for {served} requests in {server_s:.1f} s)"
    )
    names = _thread_names(args.profile) if args.profile else {}
    spent = {tid: cpu - threads0.get(tid, 0.0) for tid, cpu in threads1.items()}
    for tid, cpu in sorted(spent.items(), key=lambda x: -x[1])[:8]:
        if cpu > 0.05:
            per = cpu / max(served, 1) * 1000
            print(f"  server thread {tid} {names.get(tid, '?'):<16} {per:6.2f} ms/request")
    if spy is not None:
        print(f"profile: python bench/profile_summary.py {args.profile} --requests {served}")
    if args.server_only:
        inproc_tally, inproc_s = Tally(), 1.0
    else:
        print(f"in-process phase: {load()}")
        inproc_tally, inproc_s = asyncio.run(in_process(inproc_url, args))
    print(f"done: {load()}")
    print(
        f"{args.clients} clients, {args.duration:g}s each, "
        f"search share {args.search_share:g}, cores={os.cpu_count()}"
    )
    report("server", server_tally, server_s)
    report("in-process", inproc_tally, inproc_s)
    per_batch = float(stats["texts_per_batch"]) if stats else 1.0
    if stats:
        print(
            f"server embedding batches: {stats['batches']:.0f} for {stats['texts']:.0f} texts "
            f"({per_batch:.1f} per batch, largest {stats['largest']:.0f}, retried {stats['retries']:.0f})"
        )
    ratio = server_tally.rate(server_s) / inproc_tally.rate(inproc_s) if inproc_tally.rate(inproc_s) else 0.0
    print(
        f"server_rps={server_tally.rate(server_s):.1f} search_p95_ms={server_tally.p('search', 0.95):.1f} "
        f"add_p95_ms={server_tally.p('add', 0.95):.1f} errors={server_tally.errors} "
        f"inprocess_ratio={ratio:.2f} backend={backend} batching={batching} "
        f"texts_per_batch={per_batch:.1f} load1={load1:.2f} "
        f"server_cpu_ms={server_cpu / max(served, 1) * 1000:.2f} "
        f"client_cpu_ms={client_cpu / max(served, 1) * 1000:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--search-share", type=float, default=0.5)
    parser.add_argument("--prefill", type=int, default=1000)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg-url", default=None)
    parser.add_argument("--calibrate", action="store_true", help="First time the local model alone.")
    parser.add_argument(
        "--profile",
        metavar="PATH",
        help="Sample the server with py-spy (pip install py-spy) during the client phase; "
        "collapsed stacks to PATH (summarise with bench/profile_summary.py).",
    )
    parser.add_argument("--server-only", action="store_true", help="Skip the in-process phase.")
    args = parser.parse_args()
    if args.calibrate:
        calibrate()
    home = Path(tempfile.mkdtemp(prefix="azmem-server-load-"))
    try:
        if args.store == "sqlite":
            run(args, f"sqlite:///{home / 'served.db'}", f"sqlite:///{home / 'inproc.db'}", home, "sqlite")
        else:
            from _pg import PgTarget

            with PgTarget(args.pg_url) as pg:
                print(pg.describe())
                run(
                    args,
                    pg.database("bench_server_load"),
                    pg.database("bench_server_load_inproc"),
                    home,
                    "postgres",
                )
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
