"""HNSW's search breadth (``hnsw.ef_search``): the one the store was given, or one that
follows the store's size.

**Why it follows the size.** A fixed breadth loses recall as the graph grows, and one fit
for 100k memories spends at 10k nearly twice the time it needs there. Measured with the
store's own dense search (candidates re-ranked by exact cosine; the bench corpus, MiniLM
384-d, HNSW m 16 / ef_construction 64), recall@10 against exact search at ef_search
40 / 64 / 100 / 150 / 200:

* 10k memories: 0.992 / 0.997 / 0.997 / - / 0.998 (dense store.search p50 1.3 / 1.5 / 1.8 / - / 2.7 ms)
* 30k: 0.984 / 0.991 / 0.994 / 0.995 / 0.996
* 100k: 0.970 / 0.980 / 0.983 / 0.990 / 0.991

64 x sqrt(memories / 10k) keeps recall at or above 0.99 at all three (64, 111, 200). It
is at least 40 (pgvector's own default) and at most 200, the fixed default before: a
store past 100k memories that needs more recall sets `ef_search` itself.

**The size** is the memory count BM25 keeps (``azmem_lexical_stats``), read when the store
opens and then by every dense or hybrid search in its own statement (a sum over a table of
a few rows: no round trip of its own), so the search after a bulk load already uses the
breadth of the new size. The breadth changes only when the count calls for one more than
`step` (10 %) away from the current one (a count about 20 % larger or smaller), so a store
near a boundary does not flip back and forth; each change costs each pooled connection
one statement (`Connections.session`). Every instance of a shared store converges on the
same breadth without talking to the others.
"""

from __future__ import annotations

import math

__all__ = ["AUTO", "Breadth", "auto_ef_search"]

AUTO = (64, 10_000, 40, 200)  # breadth at the reference size, that size, the floor, the ceiling


def auto_ef_search(memories: int) -> int:
    """The breadth for an index of `memories` rows (see the module's docstring)."""
    base, at, low, high = AUTO
    return max(low, min(high, round(base * math.sqrt(max(0, memories) / at))))


class Breadth:
    """The store's ``hnsw.ef_search``: `fixed`, or `auto_ef_search` of the memory count
    observed, kept until the count calls for a breadth more than `step` away."""

    def __init__(self, fixed: int | None, step: float = 0.1) -> None:
        self.fixed = fixed
        self.step = step
        self._auto = auto_ef_search(0)

    def observe(self, memories: int) -> None:
        """The store's memory count, as a statement just read it."""
        ef = auto_ef_search(memories)
        if abs(ef - self._auto) > self.step * self._auto:
            self._auto = ef

    def current(self) -> int:
        return self.fixed if self.fixed is not None else self._auto

    def forget(self) -> None:
        """Start again from an empty store (after a reset)."""
        self._auto = auto_ef_search(0)
