"""The checks every backend makes on a store operation, or a search, before it converts its values.

Ids, the scope of a new memory, and what an update must carry; a backend then checks
and converts the text, metadata, vector and times into its own column forms.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from azmem.errors import EmbedderMismatchError, InvalidInputError
from azmem.stores import validate as v
from azmem.stores.models import AddOp, DeleteOp, MemoryRecord, UpdateOp
from azmem.stores.terms import query_terms

__all__ = ["MAX_SEARCH_LIMIT", "check_op", "check_search", "embedder_mismatch", "search_inputs"]

MAX_SEARCH_LIMIT = 1000


def check_op(op: object) -> AddOp | UpdateOp | DeleteOp:
    """``op`` itself once its ids, scope and shape are valid; anything else raises `InvalidInputError`."""
    if isinstance(op, AddOp):
        rec = op.record
        if not isinstance(rec, MemoryRecord):
            raise InvalidInputError(f"AddOp.record must be a MemoryRecord, got {type(rec).__name__}")
        v.check_optional_id(rec.id, "id")
        v.check_scope(rec.scope, for_write=True)
        v.check_optional_id(rec.actor_id, "actor_id")
        v.check_optional_id(rec.role, "role")
        return op
    if isinstance(op, UpdateOp):
        v.check_optional_id(op.id, "id")
        v.check_optional_id(op.actor_id, "actor_id")
        v.check_optional_id(op.role, "role")
        if op.memory is None and op.metadata is None and op.vector is None:
            raise InvalidInputError(f"update of {op.id} changes nothing (no memory, metadata or vector)")
        if op.memory is not None and op.vector is None:
            raise InvalidInputError(
                f"update of {op.id} changes the text but carries no vector",
                suggestion="embed the new text and pass it as UpdateOp(vector=...)",
            )
        return op
    if isinstance(op, DeleteOp):
        v.check_optional_id(op.id, "id")
        v.check_optional_id(op.actor_id, "actor_id")
        return op
    raise InvalidInputError(f"not a store operation: {type(op).__name__}")


def check_search(mode: object, scope: object, limit: object, threshold: object) -> int:
    """The checks every search starts with, in this order; returns the limit."""
    if mode not in ("hybrid", "dense", "bm25"):
        raise InvalidInputError(f"unknown search mode {mode!r}", suggestion="use 'hybrid', 'dense' or 'bm25'")
    v.check_scope(scope, for_write=False)
    checked = v.check_limit(limit, "limit", maximum=MAX_SEARCH_LIMIT)
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int | float) or not math.isfinite(threshold)
    ):
        raise InvalidInputError(f"threshold must be a finite number, got {threshold!r}")
    return checked


def search_inputs(
    mode: str, query_text: object, query_vector: object, dimension: Callable[[], int]
) -> tuple[npt.NDArray[np.float32] | None, list[str] | None]:
    """The checked query vector (unless ``bm25``) and the query's words (unless ``dense``).

    ``dimension`` gives the store's bound dimension; it is asked only when the vector is used.
    """
    query: npt.NDArray[np.float32] | None = None
    if mode != "bm25":
        query = v.check_vector(query_vector, dimension(), "query_vector")
    terms: list[str] | None = None
    if mode != "dense":
        if not isinstance(query_text, str):
            raise InvalidInputError(f"{mode} search needs query_text (a string)")
        terms = query_terms(query_text)
    return query, terms


def embedder_mismatch(store: str, stored: tuple[str, int], wanted: tuple[str, int]) -> EmbedderMismatchError:
    """The error of a store (its path or URL) holding vectors of another embedder than `wanted`."""
    return EmbedderMismatchError(
        f"store {store} holds vectors from embedder {stored[0]!r} (dimension {stored[1]}), "
        f"but it is being used with {wanted[0]!r} (dimension {wanted[1]})",
        details={"store": store, "stored": list(stored), "requested": list(wanted)},
        suggestion="run `azmem reindex` to re-embed every memory with the new embedder, "
        "or configure the embedder the store was built with",
    )
