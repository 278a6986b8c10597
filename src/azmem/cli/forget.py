"""``azmem forget --user U``: erase a user's (agent's, run's) data for good (docs/compliance.md).

A user's erasure also erases the knowledge-graph group named like the user (``group_id``
= user id, as the server binds keys to groups): `Memory.forget` cannot reach the graph
(the memory layer sits below it), so this command, which may import both, does both.
An agent or run scope leaves the graph alone: a group is a whole user's graph.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from azmem.cli.options import AgentOpt, ConfigOpt, JsonOpt, RunOpt, Scope, StoreOpt, UserOpt, state
from azmem.cli.output import ExitCode, fail, out_console, print_json
from azmem.cli.runtime import open_memory, store_path

if TYPE_CHECKING:
    from azmem.cli.options import CliState
    from azmem.graph import GraphErasure

__all__ = ["forget"]


def forget(
    ctx: typer.Context,
    user: UserOpt = None,
    agent: AgentOpt = None,
    run: RunOpt = None,
    no_compact: Annotated[
        bool,
        typer.Option("--no-compact", help="Skip rewriting the store file (VACUUM); erased bytes may linger."),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_: JsonOpt = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Erase every memory, history entry and cached LLM answer of a user, agent or run.

    With --user alone, the user's knowledge-graph group (group_id = the user id) goes too.

    Unlike `delete --all`, nothing is kept: history text goes too, and the store file is
    rewritten so the text cannot be recovered from it. The audit trail records the
    erasure (who, when, how many), never the erased text.
    """
    scope = Scope(user, agent, run)
    if scope.is_empty():
        raise fail(
            "Say whose data to erase: --user, --agent and/or --run.",
            suggestion="azmem forget --user alex",
            code=ExitCode.USAGE,
        )
    if not yes:
        what = " ".join(f"{k}={v}" for k, v in scope.kwargs().items())
        typer.confirm(f"Erase every trace of {what}? This cannot be undone.", abort=True, err=True)
    st = state(ctx, config, store)
    with open_memory(st) as memory:
        result = memory.forget(**scope.kwargs(), compact=not no_compact)
    graph = _forget_graph(st, user, compact=not no_compact) if user and not (agent or run) else None
    if json_:
        print_json({**result.model_dump(), "graph": None if graph is None else graph.model_dump()})
        return
    who = " ".join(f"{k}={v}" for k, v in result.scope.items())
    lines = [
        f"Erased {who}: {result.memories} memor{'y' if result.memories == 1 else 'ies'}, "
        f"{result.history} history event{'' if result.history == 1 else 's'}, "
        f"{result.cache_entries} cached entr{'y' if result.cache_entries == 1 else 'ies'}."
    ]
    if graph is not None:
        lines.append(
            f"Erased graph group {user}: {graph.episodes} episodes, {graph.entities} entities, "
            f"{graph.facts} facts."
        )
    if result.audit_content:
        lines.append(f"Blanked the kept content of {result.audit_content} audit records.")
    if not no_compact and not (result.compacted and (graph is None or graph.compacted)):
        lines.append(
            "[yellow]The store file could not be fully compacted (another process had it open): "
            "run `azmem forget` again when it is idle.[/yellow]"
        )
    out_console().print("\n".join(lines))


def _forget_graph(st: CliState, user: str, *, compact: bool) -> GraphErasure | None:
    """Erase graph group ``user``; None when the SQLite file has no graph (never creates one)."""
    from azmem.cli.graph import open_graph
    from azmem.graph.store.sqlite_connection import holds_graph

    path = store_path(st)
    if path is not None and (str(path) == ":memory:" or not holds_graph(path)):
        return None
    with open_graph(st) as graph:
        return graph.forget(user, compact=compact)
