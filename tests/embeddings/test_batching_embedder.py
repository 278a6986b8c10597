"""`AsyncBatchingEmbedder`: each caller gets exactly its own rows, whoever it shared a batch with.

Batches are made deterministic without clocks: the wrapped embedder can hold its first
call on an event, so every caller that arrives meanwhile is known to be waiting in the
next batch. No assertion depends on timing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from azmem.embeddings import AsyncBatchingEmbedder, AsyncEmbedder, Embedder, LocalEmbedder
from azmem.embeddings.batching import MIN_GROUP, length_groups
from azmem.errors import ConfigurationError
from azmem.memory import AsyncMemory

Vectors = npt.NDArray[np.float32]


class FakeEmbedder:
    """Deterministic per text (so a row's value says which text it is), with calls recorded.

    ``hold``: the first call waits for this event (set it to let the batch through).
    A text containing ``poison`` fails the whole call it is in, as a bad input would.
    ``broken``: every call fails, as a broken model would.
    """

    name = "test:fake8"
    dimension = 8

    def __init__(self, hold: threading.Event | None = None) -> None:
        self.calls: list[list[str]] = []
        self.hold = hold
        self.broken = False
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> Vectors:
        items = list(texts)
        with self._lock:
            self.calls.append(items)
            first = len(self.calls) == 1
        if first and self.hold is not None:
            assert self.hold.wait(30), "the test never released the first batch"
        if self.broken:
            raise RuntimeError("model exploded")
        if any("poison" in t for t in items):
            raise ValueError("poisoned input")
        return np.stack([_vector(t) for t in items]) if items else np.empty((0, 8), np.float32)


def _vector(text: str) -> Vectors:
    rng = np.random.default_rng(abs(hash(text)) % 2**32)
    v = rng.standard_normal(8).astype(np.float32)
    return (v / np.linalg.norm(v)).astype(np.float32)


async def _until(condition: object, rounds: int = 10_000) -> None:
    """Yield to the loop until ``condition()`` holds (a bounded number of rounds, no clock)."""
    for _ in range(rounds):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def _held(
    batching: AsyncBatchingEmbedder, fake: FakeEmbedder, requests: list[list[str]]
) -> list[asyncio.Task[Vectors]]:
    """A first caller occupies the worker; the given requests then queue up for the next batch."""
    first = asyncio.create_task(batching.aembed(["first"]))
    await _until(lambda: len(fake.calls) == 1)
    tasks = [asyncio.create_task(batching.aembed(texts)) for texts in requests]
    await _until(lambda: batching.pending == sum(len(t) for t in requests))
    tasks.insert(0, first)
    return tasks


def test_both_protocols_and_the_wrapped_identity() -> None:
    fake = FakeEmbedder()
    batching = AsyncBatchingEmbedder(fake)
    assert isinstance(batching, AsyncEmbedder)
    assert isinstance(batching, Embedder)
    assert (batching.name, batching.dimension) == (fake.name, fake.dimension)
    np.testing.assert_array_equal(batching.embed(["a", "b"]), fake.embed(["a", "b"]))
    for bad in ({"max_batch": 0}, {"max_wait": -1}, {"workers": 0}, {"max_batch": True}):
        with pytest.raises(ConfigurationError):
            AsyncBatchingEmbedder(fake, **bad)  # type: ignore[arg-type]


async def test_concurrent_callers_share_one_call_and_get_their_own_rows() -> None:
    hold = threading.Event()
    fake = FakeEmbedder(hold)
    batching = AsyncBatchingEmbedder(fake, max_batch=64, max_wait=0)
    requests = [[f"text {i}"] for i in range(20)] + [["multi a", "multi b", "multi c"], ["dup", "dup"]]
    tasks = await _held(batching, fake, requests)
    hold.set()
    results = await asyncio.gather(*tasks)
    # One call for the first caller, then one batch for everyone who arrived while it ran: in
    # arrival order, one call per run of similar length ("dup" never pads to "text 10").
    everyone = [t for texts in requests for t in texts]
    assert fake.calls[0] == ["first"]
    assert sorted(t for call in fake.calls[1:] for t in call) == sorted(everyone)
    assert [call for call in fake.calls[1:] if "dup" in call] == [
        [f"text {i}" for i in range(10)] + ["dup", "dup"]
    ]
    for call in fake.calls[1:]:
        assert call == sorted(call, key=everyone.index)
    for texts, rows in zip([["first"], *requests], results, strict=True):
        assert rows.dtype == np.float32
        np.testing.assert_array_equal(rows, np.stack([_vector(t) for t in texts]))
    assert batching.stats.batches == 2
    assert batching.stats.largest == 25
    rows = results[1]
    rows[:] = 0  # a caller owns its rows: no other caller's view changes
    np.testing.assert_array_equal(results[2], _vector("text 1")[None, :])
    await batching.aclose()


def test_a_batch_is_split_into_runs_of_similar_length() -> None:
    short = ["hi?", "why", "tea?", "cello", "jazz"]
    long = [f"{t} was mentioned by the user on day {i}" for i, t in enumerate(short)]
    mixed = [x for pair in zip(long, short, strict=True) for x in pair]
    groups = length_groups(mixed)
    assert sorted(i for g in groups for i in g) == list(range(len(mixed)))
    assert [[mixed[i] for i in g] for g in groups] == [short, long]  # arrival order inside a run
    # Similar lengths stay one call, and a run takes MIN_GROUP texts before it splits.
    assert length_groups(long) == [list(range(5))]
    assert length_groups(["a", "a much longer text than that", "b"]) == [[0, 1, 2]]
    assert len(length_groups(["x"] * MIN_GROUP + ["y" * 50])) == 2
    assert length_groups([]) == []


async def test_batches_respect_max_batch_and_large_calls_go_alone() -> None:
    hold = threading.Event()
    fake = FakeEmbedder(hold)
    batching = AsyncBatchingEmbedder(fake, max_batch=4, max_wait=0)
    tasks = await _held(batching, fake, [["a", "b"], ["c", "d", "e"], ["f"], ["g"]])
    hold.set()
    await asyncio.gather(*tasks)
    # The next request that would overflow starts the next batch; a request is never split.
    assert fake.calls == [["first"], ["a", "b"], ["c", "d", "e", "f"], ["g"]]
    big = [f"big {i}" for i in range(9)]
    np.testing.assert_array_equal(await batching.aembed(big), np.stack([_vector(t) for t in big]))
    assert fake.calls[-1] == big
    await batching.aclose()


async def test_a_bad_input_fails_only_its_caller() -> None:
    hold = threading.Event()
    fake = FakeEmbedder(hold)
    batching = AsyncBatchingEmbedder(fake, max_wait=0)
    tasks = await _held(batching, fake, [["fine 1"], ["poison pill", "innocent"], ["fine 2", "fine 3"]])
    hold.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[2], ValueError)
    for texts, rows in ((["fine 1"], results[1]), (["fine 2", "fine 3"], results[3])):
        np.testing.assert_array_equal(rows, np.stack([_vector(t) for t in texts]))  # type: ignore[arg-type]
    assert batching.stats.retries == 1  # the shared call failed once, then each caller went alone
    # A wrong type never joins a batch: its caller fails at once.
    with pytest.raises(TypeError):
        await batching.aembed(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        await batching.aembed("a string")
    assert (await batching.aembed([])).shape == (0, 8)
    await batching.aclose()


async def test_a_broken_model_fails_every_caller_with_its_error() -> None:
    hold = threading.Event()
    fake = FakeEmbedder(hold)
    fake.broken = True
    batching = AsyncBatchingEmbedder(fake, max_wait=0)
    tasks = await _held(batching, fake, [["a"], ["b"], ["c"]])
    hold.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) and "exploded" in str(r) for r in results)
    await batching.aclose()


async def test_a_cancelled_caller_does_not_disturb_the_others() -> None:
    hold = threading.Event()
    fake = FakeEmbedder(hold)
    batching = AsyncBatchingEmbedder(fake, max_wait=0)
    tasks = await _held(batching, fake, [["keep 1"], ["drop"], ["keep 2"]])
    tasks[2].cancel()
    hold.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[2], asyncio.CancelledError)
    np.testing.assert_array_equal(results[1], _vector("keep 1")[None, :])  # type: ignore[arg-type]
    np.testing.assert_array_equal(results[3], _vector("keep 2")[None, :])  # type: ignore[arg-type]
    assert "drop" not in fake.calls[1]  # cancelled before its batch went: never computed
    await batching.aclose()


async def test_the_timer_sends_a_lone_text_and_close_fails_the_waiting() -> None:
    fake = FakeEmbedder()
    batching = AsyncBatchingEmbedder(fake, max_wait=0.001)
    np.testing.assert_array_equal(await batching.aembed(["alone"]), _vector("alone")[None, :])
    hold = threading.Event()
    fake.hold, fake.calls = hold, []
    tasks = await _held(batching, fake, [["left behind"]])
    await batching.aclose()  # the running batch finishes; the one still waiting is failed
    hold.set()
    first, left = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(left, ConfigurationError)
    np.testing.assert_array_equal(first, _vector("first")[None, :])  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        await batching.aembed(["after close"])


async def test_a_second_worker_serves_while_the_first_is_busy() -> None:
    hold = threading.Event()
    fake = FakeEmbedder(hold)
    batching = AsyncBatchingEmbedder(fake, max_wait=0, workers=2)
    first = asyncio.create_task(batching.aembed(["slow"]))
    await _until(lambda: len(fake.calls) == 1)
    np.testing.assert_array_equal(await batching.aembed(["quick"]), _vector("quick")[None, :])
    assert not first.done()  # "quick" did not queue behind the held batch
    hold.set()
    np.testing.assert_array_equal(await first, _vector("slow")[None, :])
    await batching.aclose()


def test_each_event_loop_batches_on_its_own() -> None:
    fake = FakeEmbedder()
    batching = AsyncBatchingEmbedder(fake, max_wait=0)
    for _ in range(2):  # e.g. asyncio.run twice with one embedder
        rows = asyncio.run(batching.aembed(["again"]))
        np.testing.assert_array_equal(rows, _vector("again")[None, :])
    batching.close()


# -- with the real model -----------------------------------------------------------------------------

TEXTS = [
    "I love dogs",
    "tax law",
    "",
    "Caroline went to an LGBTQ support group yesterday and found it inspiring.",
    "Melanie is planning a camping trip with her kids next month.",
    "x",
]


@pytest.fixture(scope="module")
def local() -> LocalEmbedder:
    found = LocalEmbedder()
    found.load()
    return found


async def test_the_local_model_batched_gives_each_caller_its_vectors(local: LocalEmbedder) -> None:
    batching = AsyncBatchingEmbedder(local)
    requests = [[t] for t in TEXTS] * 4 + [TEXTS[:3], TEXTS[3:]]
    results = await asyncio.gather(*(batching.aembed(texts) for texts in requests))
    for texts, rows in zip(requests, results, strict=True):
        assert rows.shape == (len(texts), 384)
        # Padding to a batch's longest text leaves MiniLM's masked mean-pooled vectors unchanged
        # up to float rounding.
        np.testing.assert_allclose(rows, local.embed(texts), atol=1e-5)
    assert batching.stats.batches < len(requests)  # they did share calls
    await batching.aclose()


async def test_async_memory_searches_through_it(local: LocalEmbedder, tmp_path: Path) -> None:
    batching = AsyncBatchingEmbedder(local)
    async with AsyncMemory(embedder=batching, store_url=str(tmp_path / "m.db")) as memory:
        facts = ["Alex plays the cello", "Alex is allergic to peanuts", "Alex lives in Lisbon"]
        await asyncio.gather(*(memory.add(f, user_id="alex", infer=False) for f in facts))
        hits = await asyncio.gather(
            *(memory.search(q, user_id="alex", limit=1) for q in ("instrument", "allergy", "city"))
        )
    assert [h.results[0].memory for h in hits] == facts
    await batching.aclose()
