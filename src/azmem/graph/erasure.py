"""Erasing a scope everywhere: the memories' half and the graph's, joined by one rule.

`Memory.forget` erases a scope's memories, history, cached answers and kept audit
content, but cannot reach the knowledge graph: memory/ sits below graph/. The rule that
joins the two halves lives here, once, for every face that erases (``azmem forget``,
``POST /v1/forget``, the MCP ``forget`` tool):

    a scope that is a user alone also erases the graph group named like the user
    (``group_id`` = user id, as the server binds keys to groups); an agent or run
    scope leaves the graph alone, since a group is a whole user's graph with no agent
    or run inside it, and erasing it would take far more than was asked.

Why here: graph/ is the one engine layer that may import both memory/ and graph/
(tests/test_layers.py); the faces sit above it and may not hold a rule twice.

The drivers take the two halves as callables rather than a `Memory` and a `Graph`,
because each face opens them its own way: the CLI closes the memory's store before the
graph's VACUUM; the server keeps both open and opens its graph lazily. Neither creates
a graph only to find nothing in it (`may_hold_graph`). The group is read from the scope
the memories' half actually erased (validated by the engine), so both halves always
agree on whose data went.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from azmem.config import sqlite_path
from azmem.graph.results import GraphErasure
from azmem.graph.store.sqlite_connection import holds_graph
from azmem.memory.erasure import ForgetResult

__all__ = ["Erasure", "aforget_everywhere", "erased_group", "forget_everywhere", "may_hold_graph"]


class Erasure(ForgetResult):
    """What an erasure took: `ForgetResult`'s counts, and the graph group's (None: graph untouched)."""

    graph: GraphErasure | None = None


def erased_group(scope: Mapping[str, object]) -> str | None:
    """The graph group erased with ``scope``: the user's, when the scope is that user alone."""
    named = {k: v for k, v in scope.items() if v is not None}
    user = named.get("user_id")
    return user if isinstance(user, str) and named.keys() == {"user_id"} else None


def may_hold_graph(store_url: str) -> bool:
    """Whether the store may hold a graph to erase, looked at without creating one.

    False for an in-memory SQLite store or a SQLite file without the graph's tables
    (opening a graph store there would create them, to erase nothing); True otherwise
    (PostgreSQL: opening the graph is how to find out).
    """
    path = sqlite_path(store_url)
    if path is None:
        return True
    return str(path) != ":memory:" and holds_graph(path)


def forget_everywhere(
    forget_memories: Callable[[], ForgetResult],
    forget_group: Callable[[str], GraphErasure | None],
) -> Erasure:
    """Erase the memories' half, then the graph group the erased scope names (if any).

    ``forget_memories`` is ``Memory.forget`` bound to the scope; ``forget_group(group)``
    erases one graph group, or answers None when there is no graph.
    """
    result = forget_memories()
    group = erased_group(result.scope)
    return Erasure(**result.model_dump(), graph=None if group is None else forget_group(group))


async def aforget_everywhere(
    forget_memories: Callable[[], Awaitable[ForgetResult]],
    forget_group: Callable[[str], Awaitable[GraphErasure | None]],
) -> Erasure:
    """:func:`forget_everywhere` for `AsyncMemory` and `AsyncGraph`."""
    result = await forget_memories()
    group = erased_group(result.scope)
    return Erasure(**result.model_dump(), graph=None if group is None else await forget_group(group))
