"""`AsyncBatchingEmbedder`: concurrent ``aembed`` calls share one ``embed`` call of a blocking embedder.

Why: a server embeds one short text per request (the query of a search, the message
of an add). Run one by one, every text pays the model's per-call cost (tokenizer,
session launch, thread hand-offs) and 32 concurrent requests become 32 concurrent
inference runs fighting over two cores. Coalesced, they become one ONNX batch that
costs far less than the 32 singles, and at most ``workers`` inference runs at a time.

How a text travels:

1. ``aembed(texts)`` puts the caller's texts in the current batch of its event loop
   and awaits a future.
2. The batch is sent to a worker thread when it holds ``max_batch`` texts, or
   ``max_wait`` seconds after its first text arrived, whichever comes first; while
   every worker is busy it simply keeps filling, and goes as soon as one frees up
   (under load batches form by themselves, without waiting on the clock).
3. The worker runs the wrapped embedder's ``embed`` over every text of the batch, once
   per run of texts of similar length (`length_groups`: padding to the longest text of a
   call is paid by every text in it), and each caller gets the rows of its own texts, in
   its own order.

Errors reach only the callers they belong to: when a batch of several callers fails,
each caller's texts are embedded again on their own, so one caller's bad input fails
that caller alone, and a fault of the model itself fails each of them with its error.
A caller that is cancelled simply does not get its rows.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from azmem.embeddings.protocol import Embedder, check_texts
from azmem.embeddings.rows import check_rows
from azmem.errors import ConfigurationError

__all__ = ["DEFAULT_MAX_BATCH", "DEFAULT_MAX_WAIT", "AsyncBatchingEmbedder", "BatchingStats", "length_groups"]

Vectors = npt.NDArray[np.float32]

#: Texts per coalesced call: the local model's sweet spot is 16-32 texts per ONNX run, and
#: `LocalEmbedder.embed` splits a larger call into runs of its own ``batch_size`` anyway.
DEFAULT_MAX_BATCH = 64
#: How long the first text of an idle embedder waits for company: short next to one
#: inference (~3-5 ms on 2 cores), long enough for requests arriving together to meet.
DEFAULT_MAX_WAIT = 0.002
#: A batch is split into runs of similar length (`length_groups`): a text over this many
#: times the run's shortest starts a new run...
LENGTH_RATIO = 2.0
#: ...once the run holds this many texts.
MIN_GROUP = 4


@dataclass
class BatchingStats:
    """What the batching achieved so far (for benchmarks and ``/v1/status``-like reports)."""

    calls: int = 0
    """``aembed`` calls answered (or failed)."""
    texts: int = 0
    batches: int = 0
    """``embed`` calls made on the wrapped embedder for coalesced batches (retries excluded)."""
    retries: int = 0
    """Batches that failed and were re-run caller by caller."""
    largest: int = 0
    """The most texts one batch held."""

    @property
    def texts_per_batch(self) -> float:
        return self.texts / self.batches if self.batches else 0.0


@dataclass
class _Request:
    texts: list[str]
    future: asyncio.Future[Vectors]


@dataclass
class _Lane:
    """One event loop's pending batch: futures belong to a loop, so each loop batches on its own.

    Its methods run on that loop's thread (``aembed``, the timer, the batch task), so the
    loop is always ``asyncio.get_running_loop()``; the lane holds no reference to it, which
    lets a finished loop (``asyncio.run`` returned) drop out of the embedder's lanes.
    """

    pending: deque[_Request] = field(default_factory=deque)
    pending_texts: int = 0
    in_flight: int = 0
    timer: asyncio.TimerHandle | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class AsyncBatchingEmbedder:
    """Wraps a blocking :class:`Embedder` so that concurrent ``aembed`` calls share its ``embed`` calls.

    ``max_batch``: at most this many texts per coalesced call (a single caller with more
    is embedded on its own, in one call). ``max_wait``: seconds the first text of an idle
    embedder waits for others (0: go at once; batches then form only while a worker is
    busy). ``workers``: inference runs at a time; 1 suits a 2-core machine, whose other
    core serves HTTP and the store.

    Both embedder protocols: ``aembed`` batches; ``embed`` is the wrapped call, unbatched,
    for blocking callers. ``name`` and ``dimension`` are the wrapped embedder's, so a store
    bound to it accepts this wrapper. ``close`` stops the worker threads; the wrapped
    embedder is not closed (it may be shared).
    """

    def __init__(
        self,
        embedder: Embedder,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_wait: float = DEFAULT_MAX_WAIT,
        workers: int = 1,
    ) -> None:
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ConfigurationError(f"max_batch must be an integer >= 1, got {max_batch!r}")
        if not 0 <= max_wait <= 1:
            raise ConfigurationError(f"max_wait must be within 0..1 seconds, got {max_wait!r}")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigurationError(f"workers must be an integer >= 1, got {workers!r}")
        self.inner = embedder
        #: The wrapped embedder's identity, which the store records with every vector.
        self.name: str = embedder.name
        self.dimension: int = embedder.dimension
        self.max_batch = max_batch
        self.max_wait = float(max_wait)
        self.workers = workers
        self.stats = BatchingStats()
        self._lanes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Lane] = weakref.WeakKeyDictionary()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"AsyncBatchingEmbedder({self.inner!r}, max_batch={self.max_batch}, "
            f"max_wait={self.max_wait}, workers={self.workers})"
        )

    @property
    def pending(self) -> int:
        """Texts waiting for their batch to be sent (every event loop): a queue length to watch."""
        return sum(lane.pending_texts for lane in list(self._lanes.values()))

    def load(self) -> None:
        """Load the wrapped model now, when it can be loaded ahead (server start-up)."""
        load = getattr(self.inner, "load", None)
        if callable(load):
            load()

    def embed(self, texts: Sequence[str]) -> Vectors:
        """The wrapped embedder's own call, unbatched: blocking callers have no one to share with."""
        return self.inner.embed(texts)

    # -- the batched path -----------------------------------------------------------------

    async def aembed(self, texts: Sequence[str]) -> Vectors:
        """Same contract as :meth:`Embedder.embed`; the call is shared with concurrent callers."""
        if self._closed:
            raise ConfigurationError(
                "This AsyncBatchingEmbedder is closed.", suggestion="Create a new one for further embedding."
            )
        items = check_texts(texts, "aembed")  # here, so a wrong type fails its caller, not a batch
        if not items:
            return np.empty((0, self.dimension), dtype=np.float32)
        loop = asyncio.get_running_loop()
        if len(items) >= self.max_batch:  # a batch on its own: nothing to gain from waiting
            self._count(1, len(items))
            result: Vectors = await loop.run_in_executor(self._pool(), self._embed_one, items)
            return result
        lane = self._lanes.get(loop)
        if lane is None:
            lane = self._lanes[loop] = _Lane()
        request = _Request(items, loop.create_future())
        lane.pending.append(request)
        lane.pending_texts += len(items)
        self._kick(lane)
        return await request.future

    def _kick(self, lane: _Lane) -> None:
        """Send the pending batch now if it is full (or no wait is wanted), else make sure a timer will."""
        if not lane.pending or lane.in_flight >= self.workers:
            return  # a finishing worker sends it
        if lane.pending_texts >= self.max_batch or self.max_wait == 0:
            self._dispatch(lane)
        elif lane.timer is None:
            lane.timer = asyncio.get_running_loop().call_later(self.max_wait, self._on_timer, lane)

    def _on_timer(self, lane: _Lane) -> None:
        lane.timer = None
        if lane.pending and lane.in_flight < self.workers:
            self._dispatch(lane)

    def _dispatch(self, lane: _Lane) -> None:
        if lane.timer is not None:
            lane.timer.cancel()
            lane.timer = None
        batch: list[_Request] = []
        count = 0
        while lane.pending and (not batch or count + len(lane.pending[0].texts) <= self.max_batch):
            request = lane.pending.popleft()
            lane.pending_texts -= len(request.texts)
            if request.future.done():  # cancelled while waiting: nothing to compute
                continue
            batch.append(request)
            count += len(request.texts)
        if not batch:
            return
        self._count(len(batch), count)
        lane.in_flight += 1
        task = asyncio.get_running_loop().create_task(self._run(lane, batch))
        lane.tasks.add(task)
        task.add_done_callback(lane.tasks.discard)

    def _count(self, calls: int, texts: int) -> None:
        self.stats.calls += calls
        self.stats.texts += texts
        self.stats.batches += 1
        self.stats.largest = max(self.stats.largest, texts)

    async def _run(self, lane: _Lane, batch: list[_Request]) -> None:
        outcomes: list[Vectors | BaseException]
        try:
            outcomes, retried = await asyncio.get_running_loop().run_in_executor(
                self._pool(), self._embed_many, [r.texts for r in batch]
            )
        except Exception as exc:  # the pool itself refused (closed meanwhile)
            outcomes, retried = [exc] * len(batch), False
        except BaseException:  # this task was cancelled (the loop is shutting down): so are its callers
            for request in batch:
                request.future.cancel()
            raise
        finally:
            lane.in_flight -= 1
        self.stats.retries += retried
        for request, outcome in zip(batch, outcomes, strict=True):
            if request.future.done():
                continue
            if isinstance(outcome, BaseException):
                request.future.set_exception(outcome)
            else:
                request.future.set_result(outcome)
        # Whatever arrived meanwhile has waited for a worker already: it goes at once (each
        # round takes at least one request off the list; after close the pool fails them).
        while lane.pending and lane.in_flight < self.workers:
            self._dispatch(lane)

    # -- on the worker thread -------------------------------------------------------------

    def _embed_one(self, texts: list[str]) -> Vectors:
        return check_rows(self.inner.embed(texts), len(texts))

    def _embed_many(self, requests: list[list[str]]) -> tuple[list[Vectors | BaseException], bool]:
        """``embed`` over every caller's texts (a call per length run), split back per caller;
        per caller again on failure.

        Returns each caller's rows (or error), and whether the batch had to be re-run caller by caller.
        """
        flat = [text for texts in requests for text in texts]
        try:
            vectors = np.empty((len(flat), self.dimension), dtype=np.float32)
            for group in length_groups(flat):
                vectors[group] = check_rows(self.inner.embed([flat[i] for i in group]), len(group))
        except Exception as exc:
            if len(requests) == 1:
                return [exc], False
            return [self._alone(texts) for texts in requests], True
        out: list[Vectors | BaseException] = []
        start = 0
        for texts in requests:
            out.append(vectors[start : start + len(texts)].copy())  # a caller may write to its rows
            start += len(texts)
        return out, False

    def _alone(self, texts: list[str]) -> Vectors | BaseException:
        try:
            return self._embed_one(texts)
        except Exception as exc:
            return exc

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._executor_lock:
            if self._closed:
                raise ConfigurationError("This AsyncBatchingEmbedder is closed.")
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self.workers, thread_name_prefix="azmem-embed"
                )
            return self._executor

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the worker threads once the batches already sent finish; idempotent."""
        with self._executor_lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)

    async def aclose(self) -> None:
        """:meth:`close`, after failing the callers still waiting for a batch to be sent."""
        for lane in list(self._lanes.values()):
            if lane.timer is not None:
                lane.timer.cancel()
                lane.timer = None
            for request in lane.pending:
                if not request.future.done():
                    request.future.set_exception(ConfigurationError("The embedder was closed."))
            lane.pending.clear()
            lane.pending_texts = 0
        self.close()


def length_groups(texts: Sequence[str]) -> list[list[int]]:
    """The batch's text indices in runs of similar length, each run one ``embed`` call.

    Why: a model call pads every text to the longest of the call, and its cost grows
    with that length, so a search query of 6 tokens batched with messages of 20 costs
    as much as a message. Under a mixed server load (measured: 8 adds + 8 searches,
    one onnxruntime thread) one call cost 4.2 ms of CPU per text, two calls by length
    3.2 ms. A new run starts when a text is over :data:`LENGTH_RATIO` times the run's
    shortest and the run already holds :data:`MIN_GROUP` texts (a call has a fixed
    cost too: ~2 ms, so tiny runs are not worth it). Characters stand for tokens.
    """
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    groups: list[list[int]] = []
    for i in order:
        if groups and (
            len(groups[-1]) < MIN_GROUP or len(texts[i]) <= LENGTH_RATIO * max(1, len(texts[groups[-1][0]]))
        ):
            groups[-1].append(i)
        else:
            groups.append([i])
    return [sorted(group) for group in groups]  # each call in arrival order
