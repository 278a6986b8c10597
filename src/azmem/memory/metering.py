"""The metrics of a Memory operation, shared by both faces (`Memory` and `AsyncMemory`).

Each public method hands its flow to the face's ``_run``, which wraps the drive in
:func:`measure`: the operation's name is the flow's (``add_flow`` -> ``add``), so a new
operation is measured without touching this module, and the count comes from the result's
shape. Nothing of the memories themselves (text, ids, scope) reaches an attribute.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sized
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from azmem.azure.metrics import enabled, record_memory_operation, watch_store

if TYPE_CHECKING:
    from azmem.memory.base import MemoryBase

__all__ = ["Measure", "measure", "result_count", "store_backend"]

R = TypeVar("R")

_BACKENDS = {"SQLiteStore": "sqlite", "PostgresStore": "postgresql"}


def store_backend(store: object) -> str:
    """``sqlite``, ``postgresql``, or the class name of a store someone brought."""
    name = type(store).__name__
    return _BACKENDS.get(name, name.lower())


def result_count(result: object) -> int | None:
    """How many memories an operation returned or changed; None when it says nothing countable."""
    if isinstance(result, bool) or result is None:
        return None
    if isinstance(result, int):
        return result  # delete_all
    for field in ("results", "memories"):  # add, search, get_all / query
        items = getattr(result, field, None)
        if isinstance(items, Sized):
            return len(items)
    count = getattr(result, "count", None)  # reindex
    if isinstance(count, int):
        return count
    if isinstance(result, list):
        return len(result)  # history
    return 1  # get, update, delete: one memory


class Measure:
    """Handed to the driver: it passes the operation's result through :meth:`done`."""

    __slots__ = ("result",)

    def __init__(self) -> None:
        self.result: Any = None

    def done(self, result: R) -> R:
        self.result = result
        return result


@contextmanager
def measure(memory: MemoryBase, flow: object) -> Iterator[Measure]:
    """Time one operation and record it (``error.type`` when it raised); free without a MeterProvider."""
    if not enabled():
        yield Measure()
        return
    store = memory._store
    backend = store_backend(store)
    count = getattr(store, "count", None)
    if callable(count):
        watch_store(count, url=memory.store_url, backend=backend)
    operation = str(getattr(flow, "__name__", "operation")).removesuffix("_flow")
    m = Measure()
    started = time.perf_counter()
    try:
        yield m
    except BaseException as exc:
        record_memory_operation(
            operation=operation,
            backend=backend,
            seconds=time.perf_counter() - started,
            results=None,
            error=exc,
        )
        raise
    record_memory_operation(
        operation=operation,
        backend=backend,
        seconds=time.perf_counter() - started,
        results=result_count(m.result),
        error=None,
    )
