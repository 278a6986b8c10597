"""Adds that are safe to repeat, for imports that may be re-run.

An import killed half-way (a SIGKILL, a lost terminal) leaves the chunks it finished
committed, each whole (``add`` is one transaction); re-running it used to add those
chunks again. Here every source message gets a stable id, derived from what makes it
the same message — its scope, role, author name, timestamp and text, never its position
in a file or the chunk it fell in — so a re-run, with any batch size, finds what is
already stored and adds only the rest.

* Verbatim (``infer=False``): the message's id *is* the memory's id; a message whose id is
  stored, or repeated earlier in the same call, is skipped.
* Inferred: the model's facts are not one-to-one with messages, so the chunk is the unit.
  Its key (:func:`chunk_key`, from its messages' ids) goes into the metadata of the
  memories it adds or updates under :data:`IMPORT_KEY`; a chunk whose key is found in its
  scope is skipped without calling the model.

These are separate flows rather than options of ``add``, so ``add`` keeps its contract
(a fresh id per memory) and these functions stay the only place with a derived id.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from azmem.memory.inputs import InputMessage, check_metadata, make_scope, normalize_messages
from azmem.memory.results import AddResult, MemoryEvent
from azmem.memory.steps import Embed, Flow, OpenStore, StoreCall
from azmem.stores.models import AddOp, MemoryRecord, Op, Scope
from azmem.stores.protocol import MemoryStore

if TYPE_CHECKING:
    from azmem.memory.async_memory import AsyncMemory
    from azmem.memory.memory import Memory

__all__ = [
    "IMPORT_KEY",
    "ImportOutcome",
    "aimport_verbatim",
    "chunk_key",
    "import_verbatim",
    "import_verbatim_flow",
    "message_id",
]

IMPORT_KEY = "azmem_import"
"""Metadata key holding the chunk key of an inferred import, so a re-run can find the chunk."""

_NAMESPACE = uuid.UUID("5b0c6f0e-2f7a-5d1e-9c38-6a1f0f3e9b41")
"""Fixed forever: changing it would make every earlier import look new."""

_SKIPPED_ROLES = frozenset({"system", "developer"})
"""Instructions to the assistant, not something said: ``add`` stores none, so neither does an import."""


@dataclass(frozen=True)
class ImportOutcome:
    """What one idempotent add did: the memories it added, and the messages it left alone."""

    result: AddResult
    skipped: int
    """Messages already stored (by an earlier run), or repeated earlier in the same call."""


def message_id(scope: Scope, message: InputMessage) -> str:
    """The stable id of one source message in one scope (a UUID, like any memory id).

    JSON-encoded so no two different messages share a key string (no separator can be
    forged by the text); a missing timestamp or name is part of the key as ``null``.
    """
    key = json.dumps(
        [
            scope.user_id,
            scope.agent_id,
            scope.run_id,
            message.role,
            message.name,
            message.timestamp.isoformat() if message.timestamp is not None else None,
            message.content,
        ],
        ensure_ascii=False,
    )
    return str(uuid.uuid5(_NAMESPACE, key))


def chunk_key(
    messages: object, *, user_id: object = None, agent_id: object = None, run_id: object = None
) -> str:
    """The key of a chunk of messages for an inferred import: a digest of its messages' ids, in order."""
    scope = make_scope(user_id, agent_id, run_id)
    ids = [message_id(scope, m) for m in normalize_messages(messages)]
    return hashlib.sha256("\n".join(ids).encode("ascii")).hexdigest()[:32]


def import_verbatim_flow(
    messages: object,
    *,
    user_id: object = None,
    agent_id: object = None,
    run_id: object = None,
    metadata: object = None,
) -> Flow[ImportOutcome]:
    """``add(messages, infer=False)`` that skips messages already stored under their :func:`message_id`.

    Stores the same records ``add`` would (``role`` and ``timestamp`` in metadata), with the
    derived id; atomic like ``add``. Nothing is embedded when everything is skipped.
    """
    scope = make_scope(user_id, agent_id, run_id)
    msgs = normalize_messages(messages)
    md = check_metadata(metadata)
    kept = [m for m in msgs if m.role not in _SKIPPED_ROLES]
    ids = [message_id(scope, m) for m in kept]

    def stored(store: MemoryStore) -> set[str]:
        return {mid for mid in set(ids) if store.get(mid) is not None}

    present: set[str] = yield StoreCall(stored)
    records: list[MemoryRecord] = []
    seen = set(present)
    for m, mid in zip(kept, ids, strict=True):
        if mid in seen:
            continue
        seen.add(mid)
        meta: dict[str, Any] = {**md, "role": m.role}
        if m.timestamp is not None:
            meta["timestamp"] = m.timestamp.isoformat()
        records.append(
            MemoryRecord.new(m.content, scope, metadata=meta, id=mid, role=m.role, actor_id=m.name)
        )
    skipped = len(kept) - len(records)
    if not records:
        return ImportOutcome(AddResult(), skipped)
    vectors = np.asarray((yield Embed([r.memory for r in records])), dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(records):
        raise RuntimeError(f"embedder returned shape {vectors.shape} for {len(records)} texts")
    yield OpenStore()
    ops: list[Op] = [AddOp(r, v) for r, v in zip(records, vectors, strict=True)]
    yield StoreCall(lambda s: s.apply(ops))
    events = [MemoryEvent(id=r.id, memory=r.memory, event="ADD", metadata=r.metadata) for r in records]
    return ImportOutcome(AddResult(results=events), skipped)


def import_verbatim(
    memory: Memory,
    messages: Sequence[Mapping[str, Any]] | str,
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> ImportOutcome:
    """Run :func:`import_verbatim_flow` on a blocking ``Memory``: its store, embedder, metrics and
    audit trail, which records the operation as ``import_verbatim`` in the scope."""
    flow = import_verbatim_flow(
        messages, user_id=user_id, agent_id=agent_id, run_id=run_id, metadata=metadata
    )
    return memory._run(flow, Scope(user_id, agent_id, run_id))


async def aimport_verbatim(
    memory: AsyncMemory,
    messages: Sequence[Mapping[str, Any]] | str,
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> ImportOutcome:
    """The awaitable mirror of :func:`import_verbatim`."""
    flow = import_verbatim_flow(
        messages, user_id=user_id, agent_id=agent_id, run_id=run_id, metadata=metadata
    )
    return await memory._run(flow, Scope(user_id, agent_id, run_id))
