"""``azmem forget --user U``: erase a user's (agent's, run's) data for good (docs/compliance.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from azmem.cli.options import AgentOpt, ConfigOpt, JsonOpt, RunOpt, Scope, StoreOpt, UserOpt, state
from azmem.cli.output import ExitCode, fail, out_console, print_json
from azmem.cli.runtime import open_memory

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
    with open_memory(state(ctx, config, store)) as memory:
        result = memory.forget(**scope.kwargs(), compact=not no_compact)
    if json_:
        print_json(result)
        return
    who = " ".join(f"{k}={v}" for k, v in result.scope.items())
    lines = [
        f"Erased {who}: {result.memories} memor{'y' if result.memories == 1 else 'ies'}, "
        f"{result.history} history event{'' if result.history == 1 else 's'}, "
        f"{result.cache_entries} cached entr{'y' if result.cache_entries == 1 else 'ies'}."
    ]
    if result.audit_content:
        lines.append(f"Blanked the kept content of {result.audit_content} audit records.")
    if not no_compact and not result.compacted:
        lines.append(
            "[yellow]The store file could not be fully compacted (another process had it open): "
            "run `azmem forget` again when it is idle.[/yellow]"
        )
    out_console().print("\n".join(lines))
