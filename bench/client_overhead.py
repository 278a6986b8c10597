"""What azmem's LLM client costs on top of the raw openai SDK (a benchmark, not a test).

The same chat request goes through ``openai.AzureOpenAI`` directly and through
``azmem.azure.LLMClient`` against the local emulator, alternating call by call in one run
so both see the same machine state. The emulator runs in its own process so its work
does not share our GIL. Reported:

* median latency per call at concurrency 1 (sync clients) and the ratio azmem/raw;
* throughput at concurrency 64 (async clients, ``asyncio.gather`` over one client each),
  rounds alternating, median of rounds, and the ratio azmem/raw.

Targets (issue 11): cpu_ratio <= 1.02 (client CPU per call, this thread: the least noisy
view on a shared machine), latency_ratio <= 1.03, throughput_ratio >= 0.97. The last line
is ``latency_ratio=... throughput_ratio=... cpu_ratio=...`` for scripts.

``--async-cpu N`` first measures the async clients' process CPU per call over N sequential
calls each (blocks of 100, alternating), the view used for A/B comparisons of a change.

    python bench/client_overhead.py [--calls 400] [--concurrency 64] [--rounds 11] [--per-round 512]
                                    [--async-cpu 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import openai

from azmem.azure import AsyncLLMClient, AzureOpenAISettings, LLMClient, RetryPolicy

API_KEY = "test-key"
API_VERSION = "2024-10-21"
DEPLOYMENT = "gpt-4o"
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "Name one colour of the rainbow."},
]
MAX_TOKENS = 64


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def emulator_process() -> Iterator[str]:
    """The emulator in a child process; yields its endpoint."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "azmem.emulator", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                request = urllib.request.Request(
                    f"{endpoint}/openai/models?api-version={API_VERSION}", headers={"api-key": API_KEY}
                )
                urllib.request.urlopen(request, timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the emulator did not start") from None
                time.sleep(0.05)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(10)


def _settings(endpoint: str) -> AzureOpenAISettings:
    return AzureOpenAISettings(
        endpoint=endpoint, deployment=DEPLOYMENT, api_key=API_KEY, api_version=API_VERSION
    )


def bench_latency(endpoint: str, calls: int) -> dict[str, float]:
    """Median wall and CPU seconds per call for each client, alternating call by call after a warm-up.

    CPU time (this thread's) is reported too: on a loaded machine wall time carries the
    noise of everything else running, while the client's own CPU cost is what azmem adds.
    """
    raw = openai.AzureOpenAI(azure_endpoint=endpoint, api_key=API_KEY, api_version=API_VERSION, max_retries=0)
    llm = LLMClient(chat=_settings(endpoint), retry=RetryPolicy())

    def raw_call() -> None:
        out = raw.chat.completions.create(model=DEPLOYMENT, messages=MESSAGES, max_tokens=MAX_TOKENS)  # type: ignore[arg-type]
        assert out.choices[0].message.content

    def azmem_call() -> None:
        assert llm.generate(MESSAGES, max_tokens=MAX_TOKENS).text

    for _ in range(50):
        raw_call()
        azmem_call()
    wall: dict[str, list[float]] = {"raw": [], "azmem": []}
    cpu: dict[str, list[float]] = {"raw": [], "azmem": []}
    for i in range(calls):
        pair: list[tuple[str, Callable[[], None]]] = [("raw", raw_call), ("azmem", azmem_call)]
        if i % 2:
            pair.reverse()
        for name, fn in pair:
            cpu_started = time.thread_time()
            started = time.perf_counter()
            fn()
            wall[name].append(time.perf_counter() - started)
            cpu[name].append(time.thread_time() - cpu_started)
    raw.close()
    llm.close()
    out = {f"{k}_wall": statistics.median(v) for k, v in wall.items()}
    out.update({f"{k}_cpu": statistics.median(v) for k, v in cpu.items()})
    return out


async def bench_async_cpu(endpoint: str, calls: int, block: int = 100) -> tuple[float, float]:
    """Process CPU seconds per call (raw, azmem) of sequential async calls, in alternating blocks.

    Process CPU (``time.process_time``), so that work a client moved to a worker thread would
    count too; blocks of calls rather than single calls, so the clock's resolution does not matter.
    """
    raw = openai.AsyncAzureOpenAI(
        azure_endpoint=endpoint, api_key=API_KEY, api_version=API_VERSION, max_retries=0
    )
    llm = AsyncLLMClient(chat=_settings(endpoint), retry=RetryPolicy(max_attempts=1))

    async def raw_call() -> None:
        out = await raw.chat.completions.create(model=DEPLOYMENT, messages=MESSAGES, max_tokens=MAX_TOKENS)  # type: ignore[arg-type]
        assert out.choices[0].message.content

    async def azmem_call() -> None:
        assert (await llm.generate(MESSAGES, max_tokens=MAX_TOKENS)).text

    for _ in range(100):
        await raw_call()
        await azmem_call()
    spent = {"raw": 0.0, "azmem": 0.0}
    for i in range(max(1, calls // block)):
        order: list[tuple[str, Callable[[], Awaitable[None]]]] = [("raw", raw_call), ("azmem", azmem_call)]
        if i % 2:
            order.reverse()
        for name, fn in order:
            started = time.process_time()
            for _ in range(block):
                await fn()
            spent[name] += time.process_time() - started
    await raw.close()
    await llm.aclose()
    done = max(1, calls // block) * block
    return spent["raw"] / done, spent["azmem"] / done


async def _throughput_round(
    call: Callable[[], Awaitable[None]], concurrency: int, total: int, errors: list[BaseException]
) -> float:
    """Successful requests per second; a failure is counted, not retried (neither client retries)."""
    remaining = total
    ok = 0

    async def worker() -> None:
        nonlocal remaining, ok
        while remaining > 0:
            remaining -= 1
            try:
                await call()
                ok += 1
            except Exception as exc:  # reported at the end; one failure must not end the run
                errors.append(exc)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok / (time.perf_counter() - started)


async def bench_throughput(
    endpoint: str, concurrency: int, rounds: int, per_round: int
) -> tuple[float, float, int, int]:
    """Median requests per second over alternating rounds, and failures (raw, azmem)."""
    raw = openai.AsyncAzureOpenAI(
        azure_endpoint=endpoint, api_key=API_KEY, api_version=API_VERSION, max_retries=0
    )
    # Same conditions on both sides: the SDK's retries are off, so ours are off too.
    llm = AsyncLLMClient(chat=_settings(endpoint), retry=RetryPolicy(max_attempts=1))

    async def raw_call() -> None:
        out = await raw.chat.completions.create(model=DEPLOYMENT, messages=MESSAGES, max_tokens=MAX_TOKENS)  # type: ignore[arg-type]
        assert out.choices[0].message.content

    async def azmem_call() -> None:
        assert (await llm.generate(MESSAGES, max_tokens=MAX_TOKENS)).text

    warmup: list[BaseException] = []
    await _throughput_round(raw_call, concurrency, concurrency * 2, warmup)
    await _throughput_round(azmem_call, concurrency, concurrency * 2, warmup)
    raw_rates: list[float] = []
    azmem_rates: list[float] = []
    raw_errors: list[BaseException] = []
    azmem_errors: list[BaseException] = []
    for i in range(rounds):
        order = [(raw_rates, raw_call, raw_errors), (azmem_rates, azmem_call, azmem_errors)]
        if i % 2:
            order.reverse()
        for sink, fn, errors in order:
            sink.append(await _throughput_round(fn, concurrency, per_round, errors))
    await raw.close()
    await llm.aclose()
    for name, errors in (("raw", raw_errors), ("azmem", azmem_errors)):
        if errors:
            first = errors[0]
            print(f"  {name} failures: {len(errors)}, first: {type(first).__name__}: {first!s:.200}")
    return statistics.median(raw_rates), statistics.median(azmem_rates), len(raw_errors), len(azmem_errors)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=400, help="calls per client at concurrency 1")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=11, help="throughput rounds per client (median)")
    parser.add_argument("--per-round", type=int, default=512, help="requests per throughput round")
    parser.add_argument(
        "--async-cpu", type=int, default=0, help="also: sequential async calls each for process CPU (0: skip)"
    )
    args = parser.parse_args(argv)
    with emulator_process() as endpoint:
        if args.async_cpu:
            raw_cpu, azmem_cpu = asyncio.run(bench_async_cpu(endpoint, args.async_cpu))
            print(
                f"async, sequential, {args.async_cpu} calls each (process CPU per call): raw openai "
                f"{raw_cpu * 1e6:.1f} us, azmem {azmem_cpu * 1e6:.1f} us, ratio {azmem_cpu / raw_cpu:.3f}"
            )
        lat = bench_latency(endpoint, args.calls)
        raw_rps, azmem_rps, raw_err, azmem_err = asyncio.run(
            bench_throughput(endpoint, args.concurrency, args.rounds, args.per_round)
        )
    latency_ratio = lat["azmem_wall"] / lat["raw_wall"]
    cpu_ratio = lat["azmem_cpu"] / lat["raw_cpu"]
    throughput_ratio = azmem_rps / raw_rps
    print(f"concurrency 1, {args.calls} calls each, alternating (median wall / client CPU per call):")
    print(f"  raw openai  {lat['raw_wall'] * 1e3:.3f} ms  cpu {lat['raw_cpu'] * 1e3:.3f} ms")
    print(
        f"  azmem       {lat['azmem_wall'] * 1e3:.3f} ms  cpu {lat['azmem_cpu'] * 1e3:.3f} ms"
        f"  (latency ratio {latency_ratio:.3f}, target <= 1.03; cpu ratio {cpu_ratio:.3f}, target <= 1.02)"
    )
    rounds = f"{args.rounds} rounds x {args.per_round} requests"
    print(f"concurrency {args.concurrency} (async), {rounds}, alternating, median round:")
    print(f"  raw openai  {raw_rps:.0f} req/s  ({raw_err} failed)")
    print(f"  azmem       {azmem_rps:.0f} req/s  ({azmem_err} failed)", end="")
    print(f"  (ratio {throughput_ratio:.3f}, target >= 0.97)")
    print(
        f"latency_ratio={latency_ratio:.3f} throughput_ratio={throughput_ratio:.3f} "
        f"cpu_ratio={cpu_ratio:.3f} "
        f"raw_ms={lat['raw_wall'] * 1e3:.3f} azmem_ms={lat['azmem_wall'] * 1e3:.3f} "
        f"raw_rps={raw_rps:.1f} azmem_rps={azmem_rps:.1f}"
    )


if __name__ == "__main__":
    main()
