"""``azmem audit list|export|verify|prune``: the store's audit trail (docs/compliance.md).

Every change to memories and every LLM call is recorded in the store, each record
chained to the one before by its hash. ``verify`` walks the chain and names any record
edited, removed or moved since it was written (exit code 1 when it finds one), and prints
the chain's head: keep that line somewhere else (a ticket, a log, WORM storage) and pass
it back with ``--expect`` later, to prove that the trail was not rewritten wholesale.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from azmem.cli.options import AgentOpt, CliState, ConfigOpt, JsonOpt, RunOpt, StoreOpt, UserOpt, state
from azmem.cli.output import ExitCode, InputFileError, err_console, fail, out_console, print_json, scope_text
from azmem.cli.runtime import load_settings

if TYPE_CHECKING:
    from azmem.stores.audit_log import AuditQuery
    from azmem.stores.protocol import MemoryStore

__all__ = ["app", "parse_when"]

app = typer.Typer(
    name="audit",
    help="The audit trail: who changed which memories, and every LLM call, in a tamper-evident chain.",
    no_args_is_help=True,
)

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

SinceOpt = Annotated[
    str | None,
    typer.Option("--since", help="From this time: ISO 8601 (UTC unless it says) or an age, e.g. 7d, 12h."),
]
UntilOpt = Annotated[str | None, typer.Option("--until", help="Before this time (same forms as --since).")]
PrincipalOpt = Annotated[
    str | None, typer.Option("--principal", "-p", help="Who: key:<name>, os:<user>, entra:<id>...")
]
OperationOpt = Annotated[
    str | None,
    typer.Option(
        "--operation", "-o", help="What: add, update, delete, forget, llm.chat... (a trailing * matches)."
    ),
]
MemoryOpt = Annotated[str | None, typer.Option("--memory", "-m", help="Records naming this memory id.")]


def parse_when(text: str | None, what: str) -> datetime | None:
    """An ISO 8601 time (naive = UTC) or an age (``7d``, ``12h``, ``30m``) before now."""
    if text is None:
        return None
    found = _RELATIVE.match(text.strip())
    if found:
        return datetime.now(UTC) - timedelta(**{_UNITS[found.group(2)]: float(found.group(1))})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise fail(
            f"{what} {text!r} is neither an ISO 8601 time nor an age.",
            suggestion=f"For example {what} 2025-01-31, {what} 2025-01-31T12:00:00+01:00 or {what} 7d.",
            code=ExitCode.USAGE,
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _query(
    since: str | None,
    until: str | None,
    principal: str | None,
    user: str | None,
    agent: str | None,
    run: str | None,
    operation: str | None,
    memory: str | None,
) -> AuditQuery:
    from azmem.stores.audit_log import AuditQuery

    return AuditQuery(
        since=parse_when(since, "--since"),
        until=parse_when(until, "--until"),
        principal=principal,
        user_id=user,
        agent_id=agent,
        run_id=run,
        operation=operation,
        memory_id=memory,
    )


@contextmanager
def _open(st: CliState, *, write: bool) -> Iterator[MemoryStore]:
    """The configured store; read-only unless the command changes the trail (a store that was
    never written has no trail: a missing SQLite file is an error, not a new empty store)."""
    from azmem.config import sqlite_path
    from azmem.stores.factory import backend_of, open_store

    settings = load_settings(st)
    url = settings.store_url
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise InputFileError(
            f"No store at {path}.", suggestion="Check --store (or store.path in the config / AZMEM_HOME)."
        )
    password = None
    if backend_of(url) != "sqlite":
        from azmem.azure.auth import postgres_password

        password = postgres_password(settings, url)
    store = open_store(url, read_only=not write, password=password)
    try:
        yield store
    finally:
        store.close()


def _details_text(details: dict[str, Any]) -> str:
    keys = (
        "added",
        "updated",
        "deleted",
        "memories",
        "history",
        "deployment",
        "total_tokens",
        "cost_usd",
        "error",
    )
    parts = [f"{k}={details[k]}" for k in keys if details.get(k) is not None]
    return " ".join(parts)


@app.command("list")
def list_(
    ctx: typer.Context,
    since: SinceOpt = None,
    until: UntilOpt = None,
    principal: PrincipalOpt = None,
    user: UserOpt = None,
    agent: AgentOpt = None,
    run: RunOpt = None,
    operation: OperationOpt = None,
    memory: MemoryOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=100_000, help="At most this many.")] = 50,
    json_: JsonOpt = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """The newest records matching every filter given, newest first."""
    query = _query(since, until, principal, user, agent, run, operation, memory)
    with _open(state(ctx, config, store), write=False) as opened:
        records = opened.audit_log.list(query, limit=limit)
    if json_:
        print_json([r.model_dump(mode="json") for r in records])
        return
    if not records:
        out_console().print("No audit records match.")
        return
    table = Table(title="Audit trail (newest first)", title_justify="left", expand=True)
    table.add_column("seq", style="dim", no_wrap=True, justify="right")
    table.add_column("at (UTC)", no_wrap=True)
    table.add_column("who", overflow="fold", max_width=18)
    table.add_column("what", no_wrap=True)
    table.add_column("scope / details", overflow="fold", ratio=1, min_width=24)
    for r in records:
        said = " ".join(p for p in (scope_text(r), _details_text(r.details)) if p)
        if r.memory_ids:
            said += f" ids={len(r.memory_ids)}"
        said = escape(said) if r.outcome == "ok" else f"[red]{r.outcome}[/red] " + escape(said)
        table.add_row(
            str(r.seq), r.at.strftime("%Y-%m-%d %H:%M:%S"), escape(r.principal), escape(r.operation), said
        )
    out_console().print(table)


@app.command("export")
def export(
    ctx: typer.Context,
    output: Annotated[
        str, typer.Option("--output", "-O", help="The JSON Lines file to write ('-': standard output).")
    ] = "-",
    since: SinceOpt = None,
    until: UntilOpt = None,
    principal: PrincipalOpt = None,
    user: UserOpt = None,
    agent: AgentOpt = None,
    run: RunOpt = None,
    operation: OperationOpt = None,
    memory: MemoryOpt = None,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Write the matching records as JSON Lines, oldest first, hashes included."""
    query = _query(since, until, principal, user, agent, run, operation, memory)
    with _open(state(ctx, config, store), write=False) as opened:
        if output == "-":
            count = opened.audit_log.export(sys.stdout, query)
            sys.stdout.flush()
        else:
            with Path(output).expanduser().open("w", encoding="utf-8") as out:
                count = opened.audit_log.export(out, query)
    where = "standard output" if output == "-" else output
    err_console().print(f"Exported {count} audit record{'s' if count != 1 else ''} to {escape(where)}.")


def _expected(text: str | None) -> tuple[int, str] | None:
    if text is None:
        return None
    seq, sep, digest = text.partition(":")
    if not sep or not seq.strip().isdigit() or not re.fullmatch(r"[0-9a-f]{64}", digest.strip()):
        raise fail(
            f"--expect {text!r} is not SEQ:HASH.",
            suggestion="Pass the head a previous `azmem audit verify` printed, e.g. --expect 1042:3f9a…",
            code=ExitCode.USAGE,
        )
    return int(seq), digest.strip()


@app.command("verify")
def verify(
    ctx: typer.Context,
    expect: Annotated[
        str | None,
        typer.Option("--expect", help="SEQ:HASH a previous verify printed (kept outside the store)."),
    ] = None,
    json_: JsonOpt = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Check every record against its hash and its place in the chain; exit 1 on any tampering."""
    anchor = _expected(expect)
    with _open(state(ctx, config, store), write=False) as opened:
        report = opened.audit_log.verify(expect=anchor)
    head = f"{report.last_seq}:{report.head_hash}" if report.last_seq is not None else None
    if json_:
        print_json(
            {
                "ok": report.ok,
                "records": report.records,
                "first_seq": report.first_seq,
                "last_seq": report.last_seq,
                "anchor_seq": report.anchor_seq,
                "head": head,
                "problems": [p.__dict__ for p in report.problems],
            }
        )
    elif report.ok:
        span = f" (seq {report.first_seq}-{report.last_seq})" if report.records else ""
        out_console().print(f"[green]Audit trail intact:[/green] {report.records} records{span}.")
        if head:
            out_console().print(f"Head: {head}\nKeep this line elsewhere; check it later with --expect.")
    else:
        console = err_console()
        console.print(f"[bold red]Audit trail tampered with:[/bold red] {len(report.problems)} problem(s).")
        for problem in report.problems[:50]:
            console.print(f"  [red]{problem.kind}[/red]: {escape(problem.message)}")
        if len(report.problems) > 50:
            console.print(f"  ... and {len(report.problems) - 50} more (--json lists them all).")
    if not report.ok:
        raise typer.Exit(int(ExitCode.CHECKS_FAILED))


@app.command("prune")
def prune(
    ctx: typer.Context,
    older_than: Annotated[
        float | None,
        typer.Option("--older-than", min=0.0, help="Days to keep (default: audit.retention_days)."),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_: JsonOpt = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Apply the retention: remove records older than N days; the chain stays verifiable."""
    from azmem.config import AuditSettings

    st = state(ctx, config, store)
    days = older_than
    if days is None:
        found = getattr(load_settings(st), "audit", None)
        days = (found if isinstance(found, AuditSettings) else AuditSettings.from_env()).retention_days
    if days is None:
        raise fail(
            "No retention given.",
            suggestion="Pass --older-than DAYS, or set audit.retention_days (AZMEM_AUDIT__RETENTION_DAYS).",
            code=ExitCode.USAGE,
        )
    if not yes:
        typer.confirm(f"Remove audit records older than {days:g} days?", abort=True, err=True)
    with _open(st, write=True) as opened:
        pruned = opened.audit_log.prune(timedelta(days=days))
    if json_:
        print_json({"pruned": pruned, "older_than_days": days})
    else:
        out_console().print(
            f"Pruned {pruned} audit record{'s' if pruned != 1 else ''} older than {days:g} days."
        )
