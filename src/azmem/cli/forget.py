"""``azmem forget --user U``: erase a user's (agent's, run's) data for good (docs/compliance.md).

A user's erasure also erases the knowledge-graph group named like the user; that rule is
`azmem.graph.erasure`'s (shared with ``POST /v1/forget``). This command only opens the
two halves: the memory first, closed before the graph's VACUUM, and the graph only when
the store holds one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from azmem.cli.options import AgentOpt, ConfigOpt, JsonOpt, RunOpt, Scope, StoreOpt, UserOpt, state
from azmem.cli.output import ExitCode, fail, out_console, print_json
from azmem.cli.runtime import open_memory, store_url

if TYPE_CHECKING:
    from azmem.cli.options import CliState
    from azmem.graph import GraphErasure
    from azmem.memory.erasure import ForgetResult

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
    from azmem.graph.erasure import forget_everywhere

    st = state(ctx, config, store)

    def forget_memories() -> ForgetResult:
        with open_memory(st) as memory:
            return memory.forget(**scope.kwargs(), compact=not no_compact)

    def forget_group(group: str) -> GraphErasure | None:
        return _forget_graph(st, group, compact=not no_compact)

    result = forget_everywhere(forget_memories, forget_group)
    graph = result.graph
    if json_:
        print_json(result.model_dump())
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


def _forget_graph(st: CliState, group: str, *, compact: bool) -> GraphErasure | None:
    """Erase graph group ``group``; None when the store has no graph (never creates one)."""
    from azmem.cli.graph import open_graph
    from azmem.graph.erasure import may_hold_graph

    if not may_hold_graph(store_url(st)):
        return None
    with open_graph(st) as graph:
        return graph.forget(group, compact=compact)
