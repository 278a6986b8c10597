"""`Graph`: the blocking face of the temporal knowledge graph.

Each method builds a flow (`azmem.graph.ingest`, `azmem.graph.flows`) and drives it
with blocking calls; `AsyncGraph` drives the same flows with awaits, so the two cannot
drift apart.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Concatenate, ParamSpec, Self

import numpy as np
import numpy.typing as npt

from azmem.azure.cache import tagged
from azmem.graph.base import BulkRun, GraphBase, chat_kwargs, chat_tags, face_method, group_of, parsed_reply
from azmem.graph.bulk import EpisodeInput, Progress
from azmem.graph.results import AddEpisodeResult
from azmem.graph.steps import Chat, Embed, Flow, OpenStore, R, Step, StoreCall

__all__ = ["Graph"]

P = ParamSpec("P")


def _blocking(
    build: Callable[Concatenate[GraphBase, P], Flow[R]], *, per_group: bool = False
) -> Callable[Concatenate[Graph, P], R]:
    """`Graph`'s method for a flow of `GraphBase`: drive it, under the group's lock if ``per_group``."""
    group = group_of(build) if per_group else None

    def method(self: Graph, /, *args: P.args, **kwargs: P.kwargs) -> R:
        if group is None:
            return self._run(build(self, *args, **kwargs))
        with self._lock(group(self, *args, **kwargs)):
            return self._run(build(self, *args, **kwargs))

    return face_method(method, build)


class Graph(GraphBase):
    """A temporal knowledge graph of episodes, entities and bi-temporal facts; SQLite by default.

    Build it like `Memory`: no arguments (settings from the environment), ``settings=``,
    ``config=`` or overrides (``store_url=``); inject ``embedder=``, ``store=`` (a
    `GraphStore` or a URL) and ``llm=`` (an `LLMClient`). ``entity_types`` /
    ``relation_types`` are pydantic models whose fields become attributes;
    ``model_sizes`` picks the deployment per LLM step (``{"extract": "medium",
    "resolve": "small"}`` by default); ``clock`` is the system time (tests, replays).

    Thread-safe; episodes of one group are applied one at a time, in call order.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # -- driver ----------------------------------------------------------------------
    def _run(self, flow: Flow[R]) -> R:
        self._check_open()
        try:
            step = next(flow)
            while True:
                try:
                    value = self._perform(step)
                except Exception as exc:  # the flow decides (a conflict is re-planned)
                    step = flow.throw(exc)
                    continue
                step = flow.send(value)
        except StopIteration as stop:
            result: R = stop.value
            return result
        finally:
            flow.close()

    def _perform(self, step: Step) -> Any:
        if isinstance(step, StoreCall):
            return step.fn(self._store)
        if isinstance(step, Embed):
            return self._embed(step.texts)
        if isinstance(step, Chat):
            with tagged(chat_tags(step)):
                return parsed_reply(step, self._client().generate(step.messages, **chat_kwargs(step)))
        if isinstance(step, OpenStore):
            self._bind()
            return None
        raise AssertionError(f"unknown step {step!r}")

    def _embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        embed = getattr(self.embedder, "embed", None)
        if embed is None:
            raise TypeError(f"{type(self.embedder).__name__} has no blocking embed(): use AsyncGraph with it")
        vectors: npt.NDArray[np.float32] = embed(texts)
        return vectors

    def _client(self) -> Any:
        if self._llm is None:
            from azmem.azure.llm import LLMClient

            self._llm = LLMClient(self.settings)
        return self._llm

    def _lock(self, group_id: object) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(str(group_id), threading.Lock())

    # -- writes ----------------------------------------------------------------------
    add_episode = _blocking(GraphBase._add_episode_flow, per_group=True)

    def add_episodes(
        self,
        episodes: Iterable[EpisodeInput | Mapping[str, Any]],
        *,
        progress: Progress | None = None,
        max_concurrency: int = 4,
    ) -> list[AddEpisodeResult]:
        """Add many episodes: in order within each group, up to ``max_concurrency`` groups at once.

        Returns the results in input order. If some fail, raises `BulkIngestError`
        once every group has stopped; its ``results`` say which were added.
        """
        bulk = BulkRun(episodes, progress)

        def run_group(indexes: list[int]) -> None:
            for i in indexes:
                try:
                    result = self.add_episode(**bulk.episode(i))
                except Exception as exc:
                    bulk.failed(i, exc)
                    return
                bulk.added(i, result)

        groups = bulk.groups
        if len(groups) <= 1 or max_concurrency <= 1:
            for indexes in groups:
                run_group(indexes)
        else:
            with ThreadPoolExecutor(
                max_workers=min(max_concurrency, len(groups)), thread_name_prefix="azmem-graph"
            ) as pool:
                list(pool.map(run_group, groups))
        return bulk.outcome()

    add_fact = _blocking(GraphBase._add_fact_flow, per_group=True)
    delete_episode = _blocking(GraphBase._delete_episode_flow)
    delete_fact = _blocking(GraphBase._delete_fact_flow)
    clear = _blocking(GraphBase._clear_flow, per_group=True)
    forget = _blocking(GraphBase._forget_flow, per_group=True)

    # -- reads -----------------------------------------------------------------------
    search = _blocking(GraphBase._search_flow)
    search_entities = _blocking(GraphBase._search_entities_flow)
    get_episodes = _blocking(GraphBase._get_episodes_flow)
    get_entity = _blocking(GraphBase._get_entity_flow)
    get_fact = _blocking(GraphBase._get_fact_flow)
    find_entity = _blocking(GraphBase._find_entity_flow)
    list_facts = _blocking(GraphBase._list_facts_flow)
    timeline = _blocking(GraphBase._timeline_flow)
    counts = _blocking(GraphBase._counts_flow)
    export = _blocking(GraphBase._export_flow)

    # -- lifecycle -------------------------------------------------------------------
    def close(self) -> None:
        """Close the store and the LLM client if this Graph created them. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._own_store:
            self._store.close()
        if self._own_llm and self._llm is not None:
            self._llm.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
