"""Who is asking, and which scopes they may reach: the server's only scope rules.

Every request and tool call runs as a `Principal`: the API key it presented, or the
server's own principal when there are no keys (``--no-auth``, ``azmem mcp``). A
principal is bound to user / agent / run ids; for each kind of id it is bound to:

* an id the request names must be one of them, else `ScopeDeniedError` (403), on every
  route and tool alike, before anything is read;
* an id the request leaves out is filled in when the binding has exactly one, so the
  binding is the default scope and a request cannot widen itself by omission;
* with several and none named, a call that needs a scope is refused (422,
  ``missing_scope``), and a call by memory id checks the memory it found
  (:meth:`Principal.check_item`), answering 404 for a memory outside the binding, as
  the library does for one outside the requested scope.

What a valid scope is (non-empty, no whitespace, at most 256 characters...) stays the
library's rule (`azmem.memory.inputs.make_scope`): ids pass through to it unchanged.

Graph groups (``/v1/graph``, the graph tools) follow from the same binding, with one
rule: **a graph group is a user's graph, ``group_id`` = user id**. So

* a key bound to users reaches exactly the groups named like those users (403 for any
  other; the default group is its user when it has one; reads default to all of them);
* an unbound key (``--all-scopes``) reaches every group, and must name it;
* a key bound to agents or runs reaches no group at all (403): a group has no agent
  or run inside it, so handing such a key its user's whole graph would widen it;
* an episode, entity or fact outside the reachable groups is answered 404, like a
  memory outside the binding.

Keys need no new kind of binding for this, and a user's memories and graph are reached
by the same keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

from azmem.errors import InvalidInputError, MemoryNotFoundError, ScopeDeniedError
from azmem.graph.errors import GraphItemNotFoundError
from azmem.memory.results import MemoryItem
from azmem.stores.keys import ApiKey

__all__ = ["Principal", "ScopeArgs"]

_KINDS = (("user_id", "user_ids"), ("agent_id", "agent_ids"), ("run_id", "run_ids"))


class ScopeArgs(TypedDict, total=False):
    """The scope as `AsyncMemory` keyword arguments (only the ids that are set)."""

    user_id: str
    agent_id: str
    run_id: str


@dataclass(frozen=True)
class Principal:
    name: str
    """The key's name, or "local" for the server's own principal (logged with each request)."""
    key_id: str | None = None
    user_ids: tuple[str, ...] = ()
    agent_ids: tuple[str, ...] = ()
    run_ids: tuple[str, ...] = ()
    read_only: bool = False
    rate_limit: int | None = None

    @classmethod
    def of_key(cls, key: ApiKey) -> Principal:
        return cls(
            name=key.name,
            key_id=key.id,
            user_ids=key.user_ids,
            agent_ids=key.agent_ids,
            run_ids=key.run_ids,
            read_only=key.read_only,
            rate_limit=key.rate_limit,
        )

    @property
    def unbound(self) -> bool:
        return not (self.user_ids or self.agent_ids or self.run_ids)

    def _who(self) -> str:
        return "This server" if self.key_id is None else f"API key {self.name!r}"

    def scope(
        self,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        *,
        required: bool = True,
    ) -> ScopeArgs:
        """The scope a call runs in: the requested ids, checked and completed from the binding.

        ``required=False`` is for calls by memory id, where a scope only narrows the
        lookup; they must then pass what they found through :meth:`check_item`.
        """
        requested = {"user_id": user_id, "agent_id": agent_id, "run_id": run_id}
        out = ScopeArgs()
        for arg, field_name in _KINDS:
            allowed: tuple[str, ...] = getattr(self, field_name)
            value = requested[arg]
            if value is not None and allowed and value not in allowed:
                raise ScopeDeniedError(
                    f"{self._who()} may not reach {arg}={value[:80]!r}.",
                    details={"principal": self.name, "field": arg},
                )
            if value is None and len(allowed) == 1:
                value = allowed[0]
            if value is None and allowed and required:
                raise InvalidInputError(
                    f"{self._who()} reaches several {arg}s: name the one this call is for.",
                    error_code="missing_scope",
                    suggestion=f"Pass {arg} (one of {', '.join(allowed)}).",
                )
            if value is not None:
                out[arg] = value  # type: ignore[literal-required]  # arg is one of ScopeArgs' keys
        return out

    def explicit_scope(
        self,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        *,
        action: str = "Deleting all memories",
        verb: str = "delete",
    ) -> ScopeArgs:
        """Like :meth:`scope`, but the caller must name at least one id itself (bulk deletes, erasure).

        Deleting or erasing a whole scope is where a default would be dangerous: the
        caller has to say whose memories go. ``action`` and ``verb`` name the call in the refusal.
        """
        if user_id is None and agent_id is None and run_id is None:
            raise InvalidInputError(
                f"{action} needs an explicit scope: user_id, agent_id or run_id.",
                error_code="missing_scope",
                suggestion=f"Name whose memories to {verb}, e.g. user_id=...; no default applies here.",
            )
        return self.scope(user_id, agent_id, run_id)

    def check_item(self, item: MemoryItem) -> MemoryItem:
        """404 for a memory outside the binding (the same answer as for an unknown id)."""
        for arg, field_name in _KINDS:
            allowed: tuple[str, ...] = getattr(self, field_name)
            if allowed and getattr(item, arg) not in allowed:
                raise MemoryNotFoundError(f"No memory with id {item.id!r} in this scope.")
        return item

    def require_write(self) -> None:
        if self.read_only:
            raise ScopeDeniedError(
                f"{self._who()} is read-only.",
                error_code="read_only_key",
                suggestion="Use a key created without --read-only to add, change or delete memories.",
            )

    def require_unbound(self, what: str) -> None:
        """For calls that span every scope (reset, the per-scope usage breakdown)."""
        if not self.unbound:
            raise ScopeDeniedError(
                f"{self._who()} is bound to some scopes, and {what} spans every user, agent and run.",
                error_code="needs_unbound_key",
                suggestion="Use a key created with --all-scopes.",
            )

    # -- graph groups (see the module docstring: group_id = user id) ----------------------

    def graph_binding(self) -> tuple[str, ...] | None:
        """The groups this principal reaches: None for every group; refuses agent/run bindings."""
        if self.agent_ids or self.run_ids:
            raise ScopeDeniedError(
                f"{self._who()} is bound to agents or runs, and a graph group is a whole user's graph: "
                "it reaches no graph group.",
                details={"principal": self.name, "field": "group_id"},
                suggestion="Use a key bound to users only (`--user ID`): it reaches the graph group of "
                "each of its users (group_id = user id).",
            )
        return self.user_ids or None

    def _deny_group(self, group_id: str) -> ScopeDeniedError:
        return ScopeDeniedError(
            f"{self._who()} may not reach graph group_id={group_id[:80]!r}.",
            details={"principal": self.name, "field": "group_id"},
            suggestion="A key reaches the graph groups named like its users (group_id = user id).",
        )

    def graph_group(self, group_id: str | None = None) -> str:
        """The one group a graph write goes to: the named one, checked, or the binding's only user."""
        allowed = self.graph_binding()
        if group_id is not None:
            if allowed is not None and group_id not in allowed:
                raise self._deny_group(group_id)
            return group_id
        if allowed is not None and len(allowed) == 1:
            return allowed[0]
        raise InvalidInputError(
            f"{self._who()} reaches several graph groups: name the one this call is for."
            if allowed
            else "Name the graph group (group_id) this call is for.",
            error_code="missing_scope",
            suggestion=f"Pass group_id (one of {', '.join(allowed)})." if allowed else "Pass group_id.",
        )

    def explicit_graph_group(self, group_id: str | None) -> str:
        """Like :meth:`graph_group`, but the caller must name the group itself (clearing a graph)."""
        if group_id is None:
            raise InvalidInputError(
                "Clearing a graph needs its group named explicitly: group_id.",
                error_code="missing_scope",
                suggestion="Name whose graph to clear, e.g. group_id=...; no default applies here.",
            )
        return self.graph_group(group_id)

    def graph_groups(self, group_ids: Sequence[str] | None = None) -> list[str]:
        """The groups a graph read spans: the named ones, each checked, or every group of the binding."""
        allowed = self.graph_binding()
        if group_ids:
            for group_id in group_ids:
                if allowed is not None and group_id not in allowed:
                    raise self._deny_group(group_id)
            return list(dict.fromkeys(group_ids))
        if allowed is not None:
            return list(allowed)
        raise InvalidInputError(
            "Name the graph group(s) to read: group_ids.",
            error_code="missing_scope",
            suggestion="Pass group_ids (a key bound to users defaults to theirs).",
        )

    def check_graph_item(self, group_id: str, what: str, item_id: str) -> None:
        """404 for an episode, entity or fact outside the reachable groups (as for an unknown id)."""
        allowed = self.graph_binding()
        if allowed is not None and group_id not in allowed:
            raise GraphItemNotFoundError(f"no {what} {item_id!r} in the graph groups this key reaches")
