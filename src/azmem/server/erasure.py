"""Erasure on the server: ``POST /v1/forget`` and the MCP ``forget`` tool, one operation for both.

What ``azmem forget`` does on the machine, for operators who cannot shell into it. The
checks come first, before anything is read:

1. a writable key (a read-only one gets 403 ``read_only_key``);
2. the scope named explicitly (422 ``missing_scope`` otherwise: no default applies to
   an erasure) and inside the key's binding: a key bound to users, agents or runs
   erases only there (403 ``scope_denied`` for any other id, as every route answers),
   an unbound key erases any scope;
3. for a scope that is a user alone, the key must reach that user's graph group too.
   `Principal.scope` already guarantees it (such a scope leaves the key no agent or
   run binding to fill in), so this is a second look, not a new rule.

Then `azmem.graph.erasure.aforget_everywhere`: the memories' half, then the graph group
(the rule "a user alone also erases graph group = user id" lives there, shared with the
CLI). The server's graph is used when it has one open; otherwise it is opened only when
the store holds a graph, so erasing in a store without one never creates its tables.

Compaction is always on (an erasure leaves no bytes behind); on SQLite it holds the
store's write lock for as long as a VACUUM of the file takes.
"""

from __future__ import annotations

import asyncio

from azmem.graph import GraphErasure
from azmem.graph.erasure import Erasure, aforget_everywhere, erased_group, may_hold_graph
from azmem.server.principal import Principal
from azmem.server.runtime import Services

__all__ = ["forget_scope"]


async def forget_scope(
    svc: Services,
    who: Principal,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
) -> Erasure:
    """Erase a scope's memories, history, cached answers, kept audit content; a user's graph group too."""
    who.require_write()
    scope = who.explicit_scope(user_id, agent_id, run_id, action="Erasing a scope", verb="erase")
    group = erased_group(scope)
    if group is not None:
        who.graph_group(group)
    return await aforget_everywhere(lambda: svc.memory.forget(**scope), lambda g: _forget_group(svc, g))


async def _forget_group(svc: Services, group: str) -> GraphErasure | None:
    """Erase graph group ``group``: None when the server has no graph open and its store holds none."""
    if svc.graph_ is None and not await asyncio.to_thread(may_hold_graph, svc.settings.store_url):
        return None
    return await (await svc.graph()).forget(group)
