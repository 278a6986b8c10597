"""``azmem keys create|list|revoke``: the API keys of ``azmem serve``, kept in the store's database.

A key is printed once, at creation: the store keeps only its hash. ``create`` binds it
to users / agents / runs (``--user`` etc., repeatable) or, explicitly, to every scope
(``--all-scopes``): a key reaching everyone's memories must never be made by omission.
"""

from __future__ import annotations

import sys
from contextlib import closing
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from azmem.cli.options import ConfigOpt, JsonOpt, StoreOpt, state
from azmem.cli.output import ExitCode, fail, out_console, print_json, print_notice
from azmem.cli.runtime import load_settings

__all__ = ["app"]

app = typer.Typer(
    name="keys",
    help="API keys for `azmem serve` (REST and MCP over HTTP), bound to users, agents or runs.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The key's name (who or what uses it).")]


def _row(key: Any) -> dict[str, Any]:
    data: dict[str, Any] = key.model_dump(mode="json")
    data["scopes"] = _scopes(key)
    return data


def _scopes(key: Any) -> str:
    parts = [
        *(f"user={u}" for u in key.user_ids),
        *(f"agent={a}" for a in key.agent_ids),
        *(f"run={r}" for r in key.run_ids),
    ]
    return ", ".join(parts) or "ALL scopes"


@app.command("create")
def create(
    ctx: typer.Context,
    name: NameArg,
    user: Annotated[
        list[str] | None, typer.Option("--user", "-u", help="A user id it may reach (repeatable).")
    ] = None,
    agent: Annotated[
        list[str] | None, typer.Option("--agent", "-a", help="An agent id (repeatable).")
    ] = None,
    run: Annotated[list[str] | None, typer.Option("--run", "-r", help="A run id (repeatable).")] = None,
    read_only: Annotated[bool, typer.Option("--read-only", help="Search, list and read only.")] = False,
    all_scopes: Annotated[
        bool, typer.Option("--all-scopes", help="Reach every user, agent and run (a service's key).")
    ] = False,
    rate_limit: Annotated[
        int | None, typer.Option("--rate-limit", min=1, help="At most this many requests per minute.")
    ] = None,
    json_: JsonOpt = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Create a key and print it once (only its hash is stored).

    The key's user / agent / run is the default scope of its requests, and the only
    scope they may reach: `azmem keys create alex-laptop --user alex`.
    """
    from azmem.server.keyring import key_ring_for

    bound = bool(user or agent or run)
    if bound == all_scopes:
        raise fail(
            "Say what the key may reach: --user / --agent / --run, or --all-scopes."
            if not bound
            else "--all-scopes cannot be combined with --user / --agent / --run.",
            suggestion="e.g. azmem keys create alex-laptop --user alex",
            code=ExitCode.USAGE,
        )
    settings = load_settings(state(ctx, config, store))
    with closing(key_ring_for(settings)) as ring:
        made = ring.create(
            name,
            user_ids=user or (),
            agent_ids=agent or (),
            run_ids=run or (),
            read_only=read_only,
            rate_limit=rate_limit,
        )
    if json_:
        print_json({**_row(made.key), "key": made.secret})
        return
    sys.stdout.write(made.secret + "\n")  # plain, so `KEY=$(azmem keys create ...)` captures exactly the key
    sys.stdout.flush()
    print_notice(
        f"Created key {made.key.name!r} ({_scopes(made.key)}{', read-only' if read_only else ''}). "
        "This is the only time it is shown: store it now. Clients send it as 'Authorization: Bearer <key>'."
    )


@app.command("list")
def list_(
    ctx: typer.Context,
    revoked: Annotated[bool, typer.Option("--revoked", help="Include revoked keys.")] = False,
    json_: JsonOpt = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """The store's keys: name, scopes, read-only, rate limit, creation (never the keys themselves)."""
    from azmem.server.keyring import key_ring_for

    settings = load_settings(state(ctx, config, store))
    with closing(key_ring_for(settings)) as ring:
        keys = ring.list(include_revoked=revoked)
    if json_:
        print_json({"keys": [_row(k) for k in keys]})
        return
    if not keys:
        print_notice("No API keys yet: `azmem keys create NAME --user ID` makes one.")
        return
    table = Table("name", "id", "scopes", "access", "rate/min", "created", *(["revoked"] if revoked else []))
    for k in keys:
        cells = [
            escape(k.name),
            k.id,
            escape(_scopes(k)),
            "read-only" if k.read_only else "read-write",
            str(k.rate_limit or "-"),
            k.created_at.strftime("%Y-%m-%d %H:%M"),
        ]
        if revoked:
            cells.append(k.revoked_at.strftime("%Y-%m-%d %H:%M") if k.revoked_at else "-")
        table.add_row(*cells)
    out_console().print(table)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    name: NameArg,
    json_: JsonOpt = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Revoke the active key of that name; running servers refuse it within their key cache time (10 s)."""
    from azmem.server.keyring import key_ring_for

    settings = load_settings(state(ctx, config, store))
    with closing(key_ring_for(settings)) as ring:
        key = ring.revoke(name)
    if json_:
        print_json(_row(key))
        return
    print_notice(f"Revoked key {key.name!r} ({key.id}).")
