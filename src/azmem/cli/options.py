"""Options shared by several commands, declared once so their names and help never drift.

``--config`` and ``--store`` are accepted both before the command (``azmem --store x.db
list``) and after it (``azmem list --store x.db``): people type them in either place,
and refusing one of the two is the kind of friction a CLI should not have.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, TypedDict

import typer

__all__ = [
    "AgentOpt",
    "CliState",
    "ConfigOpt",
    "JsonOpt",
    "RunOpt",
    "Scope",
    "ScopeKwargs",
    "StoreOpt",
    "UserOpt",
    "state",
]

SCOPE_PANEL = "Scope"
GLOBAL_PANEL = "Configuration"

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file (YAML or TOML) with the Azure OpenAI settings.",
        dir_okay=False,
        rich_help_panel=GLOBAL_PANEL,
        show_default=False,
    ),
]
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        "-s",
        help="Store URL (sqlite:///file.db, postgresql://user@host/db) or a SQLite file "
        "(default: AZMEM_STORE, the config's store, else the user data directory).",
        rich_help_panel=GLOBAL_PANEL,
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
UserOpt = Annotated[
    str | None, typer.Option("--user", "-u", help="User id.", rich_help_panel=SCOPE_PANEL, show_default=False)
]
AgentOpt = Annotated[
    str | None,
    typer.Option("--agent", "-a", help="Agent id.", rich_help_panel=SCOPE_PANEL, show_default=False),
]
RunOpt = Annotated[
    str | None, typer.Option("--run", "-r", help="Run id.", rich_help_panel=SCOPE_PANEL, show_default=False)
]


@dataclass
class CliState:
    """What the top-level options set, for the commands to read through ``ctx.obj``."""

    config: Path | None = None
    store: str | None = None
    """A store URL or a SQLite path, as typed."""


class ScopeKwargs(TypedDict, total=False):
    """The scope as keyword arguments of ``Memory`` methods (typed, so mypy checks the spread)."""

    user_id: str
    agent_id: str
    run_id: str


@dataclass(frozen=True)
class Scope:
    """The ``--user/--agent/--run`` triple, passed on as the library's keyword arguments."""

    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None

    def kwargs(self) -> ScopeKwargs:
        """Only the ids that were given, so the library can tell "not passed" from an empty id."""
        out = ScopeKwargs()
        if self.user_id is not None:
            out["user_id"] = self.user_id
        if self.agent_id is not None:
            out["agent_id"] = self.agent_id
        if self.run_id is not None:
            out["run_id"] = self.run_id
        return out

    def over(self, base: Scope) -> Scope:
        """This scope's ids, falling back to ``base``'s where this one has none."""
        return Scope(
            self.user_id if self.user_id is not None else base.user_id,
            self.agent_id if self.agent_id is not None else base.agent_id,
            self.run_id if self.run_id is not None else base.run_id,
        )

    def is_empty(self) -> bool:
        return not self.kwargs()


def state(ctx: typer.Context, config: Path | None = None, store: str | None = None) -> CliState:
    """The effective ``--config``/``--store``: the command's own option wins over the global one."""
    root = ctx.find_root().obj
    base = root if isinstance(root, CliState) else CliState()
    return CliState(config=config or base.config, store=store or base.store)
