"""`Memory`: the blocking face of the memory engine.

Each method builds a flow from :mod:`azmem.memory.flows` and drives it with blocking
calls (local embedder, `LLMClient`, the store). The logic is in the flows; see
`AsyncMemory` for the same API awaited.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self, cast

import numpy as np
import numpy.typing as npt

from azmem.azure.messages import Message
from azmem.errors import EmbedderMismatchError, StructuredOutputError
from azmem.memory import audit
from azmem.memory import flows as core
from azmem.memory.audit import AuditedStore, AuditSession
from azmem.memory.base import ConfigInput, MemoryBase
from azmem.memory.erasure import ForgetResult, forget_result, scrub_caches
from azmem.memory.metering import measure
from azmem.memory.results import (
    AddResult,
    HistoryEntry,
    MemoryEvent,
    MemoryItem,
    MemoryList,
    QueryResult,
    ReindexResult,
    SearchResult,
)
from azmem.memory.steps import Chat, Embed, Flow, OpenStore, R, ScrubCaches, Step, StoreCall
from azmem.stores.models import Scope, SearchMode
from azmem.stores.protocol import MemoryStore

if TYPE_CHECKING:
    from azmem.azure.llm import LLMClient
    from azmem.azure.settings import AzmemSettings
    from azmem.embeddings.protocol import AsyncEmbedder, Embedder
    from azmem.memory.prompts import Prompt, Prompts

__all__ = ["Memory"]

#: What ``add`` accepts: text, a message (dict or typed, see `azmem.azure.messages`) or a list of them.
Messages = str | bytes | Mapping[str, Any] | Message | Sequence[Mapping[str, Any] | Message]


class Memory(MemoryBase):
    """Long-term memory for an agent: local embeddings + SQLite by default, Azure OpenAI when configured.

    Build it with no arguments (settings from the environment and ``AZMEM_CONFIG``),
    with ``settings=AzmemSettings(...)``, with ``config=`` (a dict, ours or mem0-shaped,
    or a YAML/TOML path), or with :meth:`from_config`. ``embedder=``, ``store=`` and
    ``llm=`` inject ready-made parts (they are then not closed by :meth:`close`);
    ``prompts=`` replaces pipeline prompts (see :mod:`azmem.memory.prompts`).

    Use it as a context manager, or call :meth:`close`, to release the store file.
    Every error is an :class:`azmem.errors.AzmemError` subclass; bad input
    raises ``InvalidInputError`` before anything is read or written.
    """

    def __init__(
        self,
        settings: AzmemSettings | None = None,
        *,
        config: ConfigInput = None,
        embedder: Embedder | AsyncEmbedder | None = None,
        store: MemoryStore | None = None,
        prompts: Prompts | Mapping[str, str | Prompt] | None = None,
        llm: LLMClient | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__(
            settings, config=config, embedder=embedder, store=store, prompts=prompts, llm=llm, **overrides
        )

    @classmethod
    def from_config(cls, config: ConfigInput = None, **overrides: Any) -> Self:
        """Build from a config dict (ours or mem0's ``{"llm": ..., "embedder": ...}``) or a YAML/TOML path.

        ``overrides`` are settings keys (``chat=``, ``store={"path": ...}``, or the
        ``store_path=`` shorthand) applied over the config.
        """
        return cls(config=config, **overrides)

    # -- driver ------------------------------------------------------------------------

    def _run(self, flow: Flow[R], scope: Scope | None = None) -> R:
        session = audit.start(self, flow, scope)
        with measure(self, flow) as op:
            try:
                result = self._drive(flow, session)
            except Exception as exc:
                audit.finish(self, session, exc)
                raise
            audit.finish(self, session, None)
            return op.done(result)

    def _drive(self, flow: Flow[R], session: AuditSession) -> R:
        self._check_open()
        try:
            step = next(flow)
            while True:
                step = flow.send(self._perform(step, session))
        except StopIteration as stop:
            result: R = stop.value
            return result
        except EmbedderMismatchError as exc:
            core.explain_mismatch(exc)
            raise
        finally:
            flow.close()

    def _perform(self, step: Step, session: AuditSession) -> Any:
        store = self._store
        if isinstance(step, StoreCall):
            return step.fn(cast(MemoryStore, AuditedStore(store, session)))
        if isinstance(step, Embed):
            with session.call("llm.embed", {"inputs": len(step.texts)}):
                return self._embed(step.texts)
        if isinstance(step, ScrubCaches):
            removed = scrub_caches(self, step.scope, step.texts)
            session.note("forget.cache", {"cache_entries": removed})
            return removed
        if isinstance(step, Chat):
            with session.call("llm.chat", {"prompt": step.prompt.name}) as call:
                result = self._client().generate(
                    step.messages,
                    response_model=step.response_model,
                    prompt_name=step.prompt.name,
                    group_id=step.group_id,
                )
                call.append(result)
            if result.parsed is None:
                raise StructuredOutputError(f"{step.prompt.name}: the model returned no structured output")
            return result.parsed
        if isinstance(step, OpenStore):
            if not self._opened:
                store.open(self.embedder.name, self.embedder.dimension)
                self._opened = True
            return None
        raise AssertionError(f"unknown step {step!r}")

    def _embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        embed = getattr(self.embedder, "embed", None)
        if embed is None:
            raise TypeError(
                f"{type(self.embedder).__name__} has no blocking embed(): use AsyncMemory with it"
            )
        vectors: npt.NDArray[np.float32] = embed(texts)
        return vectors

    def _client(self) -> Any:
        if self._llm is None:
            from azmem.azure.llm import LLMClient

            # A tracker of its own: it prices each call (what azmem.client.cost reports) and
            # hands each record to the audit trail.
            self._llm = LLMClient(self.settings, usage=self._usage_sink)
        return self._llm

    # -- API ---------------------------------------------------------------------------

    def add(
        self,
        messages: Messages,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        infer: bool | None = None,
    ) -> AddResult:
        """Remember a conversation (or one text) for a user, agent and/or run.

        ``messages``: a string (one user message), a ``{"role", "content"}`` dict, a typed
        message (``UserMessage``, ``AssistantMessage``, ... from `azmem.azure.messages`)
        or a list of them; a dict may carry ``name`` and ``timestamp`` (datetime, ISO
        8601 or Unix seconds), against which relative dates are resolved.

        ``infer=True`` extracts atomic facts with the chat deployment and reconciles them
        with similar existing memories (ADD / UPDATE / DELETE / NONE): at most two LLM
        calls whatever the number of facts (one when nothing similar is stored yet, so
        there is nothing to reconcile). ``infer=False`` stores each non-system message
        verbatim (``role`` and ``timestamp`` in metadata). ``None`` infers when a chat
        deployment is configured. Atomic: on any error nothing is stored.
        Returns the changes made (``NONE`` decisions are not listed).
        """
        return self._run(
            core.add_flow(
                self._state,
                messages,
                user_id=user_id,
                agent_id=agent_id,
                run_id=run_id,
                metadata=metadata,
                infer=infer,
            ),
            Scope(user_id, agent_id, run_id),
        )

    def search(
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        filters: Mapping[str, Any] | None = None,
        limit: int = 10,
        threshold: float | None = None,
        mode: SearchMode = "hybrid",
    ) -> SearchResult:
        """The memories of a scope most relevant to ``query``, best first.

        ``mode="hybrid"`` (default) fuses meaning (vectors) and keywords (BM25);
        ``"dense"`` and ``"bm25"`` use one of them. ``filters`` use the metadata filter
        language of :mod:`azmem.stores.filters` (eq, ne, in, nin, gt, gte, lt, lte,
        contains, icontains, AND / OR / NOT). ``threshold`` is a minimum cosine
        similarity between query and memory.
        """
        return self._run(
            core.search_flow(
                query,
                user_id=user_id,
                agent_id=agent_id,
                run_id=run_id,
                filters=filters,
                limit=limit,
                threshold=threshold,
                mode=mode,
            ),
            Scope(user_id, agent_id, run_id),
        )

    def query(
        self,
        question: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        filters: Mapping[str, Any] | None = None,
        limit: int = 10,
    ) -> QueryResult:
        """Answer a question from the scope's memories, citing the ids of those it used.

        Retrieves like :meth:`search`, then asks the chat deployment (one call). With no
        chat deployment configured it returns the retrieved memories, ``answer=None``
        and a ``note`` saying so.
        """
        return self._run(
            core.query_flow(
                self._state,
                question,
                user_id=user_id,
                agent_id=agent_id,
                run_id=run_id,
                filters=filters,
                limit=limit,
            ),
            Scope(user_id, agent_id, run_id),
        )

    def get(
        self,
        memory_id: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> MemoryItem:
        """One memory by id; ``MemoryNotFoundError`` if there is none (or it is outside the scope given)."""
        return self._run(
            core.get_flow(memory_id, user_id=user_id, agent_id=agent_id, run_id=run_id),
            Scope(user_id, agent_id, run_id),
        )

    def get_all(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        filters: Mapping[str, Any] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> MemoryList:
        """One page of a scope's memories, newest first; pass ``next_cursor`` back for the next page."""
        return self._run(
            core.get_all_flow(
                user_id=user_id, agent_id=agent_id, run_id=run_id, filters=filters, limit=limit, cursor=cursor
            ),
            Scope(user_id, agent_id, run_id),
        )

    def update(
        self,
        memory_id: str,
        text: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> MemoryItem:
        """Change a memory's text (re-embedded) and/or replace its whole metadata; recorded in its history.

        A scope, when given, must contain the memory (else ``MemoryNotFoundError``): a
        server can pass the caller's user_id so one user cannot edit another's memory.
        """
        return self._run(
            core.update_flow(memory_id, text, metadata, user_id=user_id, agent_id=agent_id, run_id=run_id),
            Scope(user_id, agent_id, run_id),
        )

    def delete(
        self,
        memory_id: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> MemoryEvent:
        """Delete one memory (its history is kept); ``MemoryNotFoundError`` if there is none (in scope)."""
        return self._run(
            core.delete_flow(memory_id, user_id=user_id, agent_id=agent_id, run_id=run_id),
            Scope(user_id, agent_id, run_id),
        )

    def delete_all(
        self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> int:
        """Delete every memory of a scope (at least one id required); returns how many."""
        return self._run(
            core.delete_all_flow(user_id=user_id, agent_id=agent_id, run_id=run_id),
            Scope(user_id, agent_id, run_id),
        )

    def forget(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        compact: bool = True,
    ) -> ForgetResult:
        """Erase a user's (agent's, run's) data for good, e.g. on a GDPR erasure request.

        In one store transaction: every memory the scope ever had (rows, vectors, full-text
        entries), the history of those memories (text included, also of memories deleted
        earlier) and audit content kept about them; then the response / embedding caches'
        entries of the scope or quoting its text. The audit trail keeps a record of the
        erasure (who, when, how many), never the erased text. ``compact`` rewrites the
        store's freed space (SQLite: checkpoint + VACUUM, which briefly holds the write lock)
        so that the erased bytes are gone from the file, not only unreachable.
        """
        report, cached = self._run(
            core.forget_flow(user_id=user_id, agent_id=agent_id, run_id=run_id, compact=compact),
            Scope(user_id, agent_id, run_id),
        )
        return forget_result(report, cached)

    def history(self, memory_id: str) -> list[HistoryEntry]:
        """Every ADD / UPDATE / DELETE of a memory, oldest first, with old and new text ([] if unknown)."""
        return self._run(core.history_flow(memory_id))

    def reset(self) -> None:
        """Delete every memory and all history in the store (every scope)."""
        self._run(core.reset_flow())

    def reindex(self) -> ReindexResult:
        """Re-embed every memory with the current embedder (after switching embedders: ``azmem reindex``)."""
        result = self._run(core.reindex_flow(self.embedder.name, lambda: self.embedder.dimension))
        self._opened = False
        return result

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Close the store and the LLM client if this Memory created them. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._own_store:
            self._store.close()
        if self._own_llm and self._llm is not None:
            self._llm.close()
        close = getattr(self.embedder, "close", None)
        if self._own_embedder and close is not None:
            close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
