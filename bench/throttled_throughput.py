"""Throughput under Azure OpenAI quotas: azmem's router vs one deployment vs the raw openai SDK.

A benchmark, not a test. Three emulated deployments of one model with per-deployment TPM
quotas (60k, 30k, 30k by default; a sliding one-minute window with a computed Retry-After,
like the service) and 50-300 ms latency serve a burst of chat requests at a fixed
concurrency, through:

  (a) azmem with routing: one AsyncLLMClient over a pool of the three deployments;
  (b) azmem with one deployment (the 60k one) and its retry policy only;
  (c) the raw openai SDK with its default retries (2), requests spread round-robin over the
      three deployments (what a user without a router would do).

Scenario two repeats (a) and (c) while the largest deployment answers 503 for 30 s in the
middle of the run.

The theoretical minimum is what an ideal client that knows every quota could do against a
sliding window that starts empty: it may admit one window's worth of tokens at once, then
must wait for admitted tokens to leave the window (60 s later), so
``T_min = 60 * full_windows + rest / rate`` (never less than ``requests / rate``), where
``rate`` is how fast requests can be pushed at all: concurrency / mean latency on an ideal
machine, capped by what this machine measurably sustains (a calibration run of the raw SDK
against a quota-free deployment of the same emulator, done first). The ratio reported is
total time / T_min; the ideal-machine minimum is printed too.

The emulator runs in a child process so the server's work does not share the client's GIL.
The last line is key=value pairs for scripts:
``routed_failed=... routed_ratio=... outage_failed=... sdk_failed=...``.

    python bench/throttled_throughput.py                  # ~6 minutes
    python bench/throttled_throughput.py --requests 500   # quicker, smaller
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import multiprocessing
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

KEY = "bench-key"
API_VERSION = "2024-10-21"
WINDOW = 60.0


# --------------------------------------------------------------------------- the emulator, in a child process


def _serve(conn: Connection, deployments: list[dict[str, Any]]) -> None:
    from azmem.emulator import Deployment, Emulator

    emu = Emulator(api_keys=(KEY,), deployments=[Deployment(**d) for d in deployments])
    conn.send(emu.start())
    while True:
        cmd, *args = conn.recv()
        if cmd == "outage":
            emu.set_outage(args[0], args[1])
            conn.send("ok")
        elif cmd == "reset":
            emu.reset()
            conn.send("ok")
        elif cmd == "statuses":
            conn.send(dict(Counter((r.deployment, r.status) for r in emu.requests)))
        elif cmd == "stop":
            emu.stop()
            conn.send("ok")
            return


class EmulatorProcess:
    def __init__(self, deployments: list[dict[str, Any]]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, deployments), daemon=True)
        self._proc.start()
        self.endpoint: str = self._conn.recv()

    def call(self, *cmd: Any) -> Any:
        self._conn.send(cmd)
        return self._conn.recv()

    def stop(self) -> None:
        self.call("stop")
        self._proc.join(10)


# --------------------------------------------------------------------------- workload


@dataclass
class Result:
    name: str
    completed: int = 0
    failed: int = 0
    seconds: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    served: Counter[Any] = field(default_factory=Counter)
    done_at: list[float] = field(default_factory=list)

    def timeline(self) -> str:
        """Completion times at a few quantiles: where the waves of a window start and end."""
        times = sorted(self.done_at)
        if not times:
            return ""
        marks = (0.1, 0.25, 0.5, 0.6, 0.65, 0.7, 0.75, 0.9, 1.0)
        return " ".join(f"{int(q * 100)}%={times[max(0, math.ceil(q * len(times)) - 1)]:.1f}s" for q in marks)


def prompt(i: int, chars: int) -> str:
    base = f"Request {i}: summarise what the user said about their travel plans and food preferences. "
    return (base * (chars // len(base) + 1))[:chars]


async def run(
    name: str,
    send: Callable[[int], Awaitable[None]],
    *,
    requests: int,
    concurrency: int,
    emulator: EmulatorProcess,
    outage: tuple[str, float, float] | None = None,
) -> Result:
    result = Result(name)
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            try:
                await send(i)
                result.completed += 1
                result.done_at.append(time.monotonic() - started)
            except Exception as exc:
                result.failed += 1
                result.errors[type(exc).__name__] += 1

    async def break_one() -> None:
        assert outage is not None
        deployment, start, length = outage
        await asyncio.sleep(start)
        await asyncio.to_thread(emulator.call, "outage", deployment, True)
        await asyncio.sleep(length)
        await asyncio.to_thread(emulator.call, "outage", deployment, False)

    started = time.monotonic()
    breaker = asyncio.create_task(break_one()) if outage else None
    await asyncio.gather(*(one(i) for i in range(requests)))
    result.seconds = time.monotonic() - started
    if breaker is not None and not breaker.done():
        breaker.cancel()
        await asyncio.to_thread(emulator.call, "outage", outage[0] if outage else "", False)
    result.served = Counter(emulator.call("statuses"))
    emulator.call("reset")
    return result


def theoretical_minimum(requests: int, tokens_per_request: int, tpms: list[int], rate: float) -> float:
    """The earliest finish for a client limited only by the quotas and a request rate.

    A sliding window that starts empty admits one window's worth at once; every later wave
    can only start as the previous one's grants leave the window, 60 s after they were
    admitted, so waves are paced at the same rate as the first. ``rate`` (requests/s) is how
    fast requests can be pushed at all: concurrency / mean latency for an ideal machine, or
    what this machine measurably sustains.
    """
    per_window = sum(t // tokens_per_request for t in tpms)
    full_windows = math.ceil(requests / per_window) - 1
    rest = requests - full_windows * per_window
    return max(WINDOW * full_windows + rest / rate, requests / rate)


async def calibrate(
    endpoint: str, deployment: str, max_tokens: int, chars: int, concurrency: int, n: int
) -> float:
    """Requests/s the raw SDK sustains against the emulator with no quota: this machine's ceiling."""
    import openai

    client = openai.AsyncAzureOpenAI(azure_endpoint=endpoint, api_key=KEY, api_version=API_VERSION)
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            await client.chat.completions.create(
                model=deployment,
                messages=[{"role": "user", "content": prompt(i, chars)}],
                max_tokens=max_tokens,
            )

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.monotonic() - started
    await client.close()
    return n / elapsed


# --------------------------------------------------------------------------- the three clients


def routed_sender(
    endpoint: str, names: list[str], tpms: list[int], max_tokens: int, chars: int, limiter: Path
):
    from azmem.azure.llm import AsyncLLMClient
    from azmem.azure.routing import Router

    router = Router(
        {
            "pools": {
                "chat": [
                    {
                        "name": n,
                        "endpoint": endpoint,
                        "deployment": n,
                        "api_key": KEY,
                        "model": "gpt-4o",
                        "tpm": t,
                    }
                    for n, t in zip(names, tpms, strict=True)
                ]
            },
            "limiter": {"backend": "sqlite", "path": str(limiter)},
        }
    )
    client = AsyncLLMClient(router=router)

    async def send(i: int) -> None:
        await client.generate(prompt(i, chars), max_tokens=max_tokens)

    return send, client, router


def single_sender(endpoint: str, name: str, max_tokens: int, chars: int):
    from azmem.azure.llm import AsyncLLMClient
    from azmem.azure.settings import AzureOpenAISettings

    client = AsyncLLMClient(
        chat=AzureOpenAISettings(endpoint=endpoint, deployment=name, api_key=KEY, model="gpt-4o")
    )

    async def send(i: int) -> None:
        await client.generate(prompt(i, chars), max_tokens=max_tokens)

    return send, client


def sdk_sender(endpoint: str, names: list[str], max_tokens: int, chars: int):
    import openai

    client = openai.AsyncAzureOpenAI(azure_endpoint=endpoint, api_key=KEY, api_version=API_VERSION)

    async def send(i: int) -> None:
        await client.chat.completions.create(
            model=names[i % len(names)],
            messages=[{"role": "user", "content": prompt(i, chars)}],
            max_tokens=max_tokens,
        )

    return send, client


# --------------------------------------------------------------------------- main


def report(r: Result, t_min: float) -> str:
    ok = {k: v for k, v in sorted(r.served.items(), key=str)}
    return (
        f"{r.name:<34} completed={r.completed:>5} failed={r.failed:>5} time={r.seconds:7.1f}s "
        f"ratio={r.seconds / t_min:5.2f} errors={dict(r.errors)}"
        f"\n    server answers (deployment, status): {ok}"
        f"\n    completed by: {r.timeline()}"
    )


async def main_async(args: argparse.Namespace) -> None:
    from azmem.emulator.tokens import estimate_messages

    # Retries and failovers are the point of the run; one log line each would drown the report.
    logging.getLogger("azmem").setLevel(logging.CRITICAL)

    names = ["d1", "d2", "d3"]
    tpms = [args.tpm1, args.tpm2, args.tpm3]
    lat = (args.min_latency, args.max_latency)
    deployments = [
        {"name": n, "model": "gpt-4o", "tpm": t, "latency": lat} for n, t in zip(names, tpms, strict=True)
    ]
    deployments.append({"name": "calibration", "model": "gpt-4o", "latency": lat})
    tokens = estimate_messages([{"role": "user", "content": prompt(0, args.chars)}]) + args.max_tokens
    ideal_rate = args.concurrency / (sum(lat) / 2)
    emulator = EmulatorProcess(deployments)
    ep = emulator.endpoint
    measured = await calibrate(
        ep, "calibration", args.max_tokens, args.chars, args.concurrency, min(args.requests, args.calibration)
    )
    emulator.call("reset")
    rate = min(measured, ideal_rate)
    t_ideal = theoretical_minimum(args.requests, tokens, tpms, ideal_rate)
    t_min = theoretical_minimum(args.requests, tokens, tpms, rate)
    print(
        f"{args.requests} requests x {tokens} tokens (prompt + max_tokens) = {args.requests * tokens} tokens;"
        " "
        f"quotas {tpms} TPM (sum {sum(tpms)}); latency {lat[0]}-{lat[1]} s; concurrency {args.concurrency}\n"
        f"this machine pushes {measured:.0f} requests/s with the raw SDK and no quota "
        f"(ideal: {ideal_rate:.0f}/s); theoretical minimum {t_min:.1f} s at that rate "
        f"({t_ideal:.1f} s on an ideal machine)",
        flush=True,
    )
    tmp = Path(tempfile.mkdtemp(prefix="azmem-bench-"))
    results: dict[str, Result] = {}
    outage = (names[0], args.outage_start, args.outage_seconds)
    common = {"requests": args.requests, "concurrency": args.concurrency, "emulator": emulator}
    try:
        plan: list[tuple[str, str, bool]] = [
            ("routed", "(a) azmem routed", False),
            ("single", "(b) azmem one deployment + retries", False),
            ("sdk", "(c) raw openai SDK, round-robin", False),
            ("routed_outage", "(a) azmem routed, 30 s outage", True),
            ("sdk_outage", "(c) raw openai SDK, 30 s outage", True),
        ]
        for key, label, with_outage in plan:
            if args.only and key not in args.only.split(","):
                continue
            closer: Callable[[], Awaitable[Any]] | None = None
            if key.startswith("routed"):
                send, client, router = routed_sender(
                    ep, names, tpms, args.max_tokens, args.chars, tmp / f"{key}.db"
                )
                closer = client.aclose
            elif key == "single":
                send, client = single_sender(ep, names[0], args.max_tokens, args.chars)
                closer = client.aclose
            else:
                send, sdk = sdk_sender(ep, names, args.max_tokens, args.chars)
                closer = sdk.close
            r = await run(label, send, outage=outage if with_outage else None, **common)
            if closer is not None:
                await closer()
            results[key] = r
            print(report(r, t_min), flush=True)
            if key.startswith("routed"):
                for line in router.status_lines():
                    print("    " + line)
    finally:
        emulator.stop()

    def val(key: str, attr: str) -> str:
        r = results.get(key)
        if r is None:
            return "na"
        return f"{r.seconds / t_min:.3f}" if attr == "ratio" else str(getattr(r, attr))

    print(
        f"routed_failed={val('routed', 'failed')} routed_ratio={val('routed', 'ratio')} "
        f"outage_failed={val('routed_outage', 'failed')} sdk_failed={val('sdk', 'failed')} "
        f"outage_ratio={val('routed_outage', 'ratio')} single_failed={val('single', 'failed')} "
        f"single_ratio={val('single', 'ratio')} sdk_ratio={val('sdk', 'ratio')} "
        f"sdk_outage_failed={val('sdk_outage', 'failed')} t_min={t_min:.1f} t_min_ideal={t_ideal:.1f} "
        f"machine_rps={measured:.0f}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--tpm1", type=int, default=60_000)
    p.add_argument("--tpm2", type=int, default=30_000)
    p.add_argument("--tpm3", type=int, default=30_000)
    p.add_argument("--min-latency", type=float, default=0.05)
    p.add_argument("--max-latency", type=float, default=0.30)
    p.add_argument(
        "--chars", type=int, default=240, help="prompt length in characters (about chars/4 tokens)"
    )
    p.add_argument("--max-tokens", type=int, default=30)
    p.add_argument("--outage-start", type=float, default=40.0)
    p.add_argument("--outage-seconds", type=float, default=30.0)
    p.add_argument("--calibration", type=int, default=600, help="requests in the no-quota calibration run")
    p.add_argument(
        "--only", default="", help="comma-separated subset: routed,single,sdk,routed_outage,sdk_outage"
    )
    asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    main()
