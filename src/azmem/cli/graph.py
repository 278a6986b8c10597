"""``azmem graph add|search|entities|facts|timeline|export``: the temporal knowledge graph from a shell.

Thin faces over `azmem.graph.Graph`, on the same store as the memory commands
(``--store`` / ``AZMEM_STORE``). Times are ISO 8601 (``2024-03-01`` or
``2024-03-01T09:30:00+02:00``; no zone means UTC). Every command takes ``--json``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.table import Table
from rich.text import Text

from azmem.cli.options import CliState, ConfigOpt, JsonOpt, StoreOpt, state
from azmem.cli.output import InputFileError, fail, out_console, print_json, print_notice

if TYPE_CHECKING:
    from azmem.graph import Fact, Graph

__all__ = ["app"]

app = typer.Typer(
    name="graph",
    help="A temporal knowledge graph: episodes in, entities and facts with their times out.",
    no_args_is_help=True,
)

GroupOpt = Annotated[str, typer.Option("--group", "-g", help="The graph's group (tenant, user, project).")]
GroupsOpt = Annotated[
    list[str], typer.Option("--group", "-g", help="A group to search (repeatable).", show_default=False)
]
LimitOpt = Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="Most results to return.")]
AsOfOpt = Annotated[
    str | None,
    typer.Option("--as-of", help="World time: what was true then (ISO 8601).", show_default=False),
]
KnownAtOpt = Annotated[
    str | None,
    typer.Option(
        "--known-at", help="System time: what the graph believed then (ISO 8601).", show_default=False
    ),
]
HistoryOpt = Annotated[
    bool, typer.Option("--history", help="Also facts that had ended (or not begun) at that time.")
]


def parse_time(raw: str | None, option: str) -> datetime | None:
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.strip().replace("z", "Z"))
    except ValueError:
        raise InputFileError(
            f"{option} {raw!r} is not an ISO 8601 time.", suggestion=f"For example {option} 2024-03-01"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@contextmanager
def open_graph(st: CliState) -> Iterator[Graph]:
    """A `Graph` on the chosen config and store (imported here: ``azmem --help`` stays instant)."""
    from azmem.graph import Graph

    with Graph(config=st.config, store=st.store) as graph:  # no --store: the settings' store
        yield graph


def _date(value: datetime | None) -> str:
    return "" if value is None else value.date().isoformat()


def _day(value: datetime | None) -> str:
    if value is None:
        return ""
    return (
        value.date().isoformat() if value.time() == datetime.min.time() else value.strftime("%Y-%m-%d %H:%M")
    )


def facts_table(facts: Sequence[Fact], scores: Sequence[float] | None = None) -> Table:
    """One shape for every command that shows facts: the sentence and relation, then the four times.

    Times share one column, world over system, so the sentence keeps most of an 80-column terminal.
    """
    table = Table(expand=True, show_lines=True)
    if scores is not None:
        table.add_column("score", justify="right", style="cyan", no_wrap=True)
    table.add_column("fact", overflow="fold", ratio=1, min_width=30)
    table.add_column("valid (world) / known (system)", no_wrap=True)
    for i, f in enumerate(facts):
        cell = Text(f.fact)
        cell.append(f"\n{f.source_name} -{f.name}-> {f.target_name}", style="magenta")
        cell.append(f"\n{f.id}", style="dim")
        times = Text(f"{_day(f.valid_at) or '?'} → {_day(f.invalid_at) or 'now'}")
        if f.invalid_at is not None:
            times.stylize("red")
        times.append(f"\n{_date(f.created_at)} → {_date(f.expired_at) or 'now'}", style="dim")
        row: list[str | Text] = [] if scores is None else [f"{scores[i]:.4f}"]
        table.add_row(*row, cell, times)
    return table


def _read_content(text: list[str] | None) -> str:
    if text and text != ["-"]:
        return " ".join(text)
    if text == ["-"] or not sys.stdin.isatty():
        return sys.stdin.read().strip()
    raise fail(
        "Nothing to add.", suggestion='Pass the episode: azmem graph add "Alex moved to Lisbon" -g alex'
    )


@app.command("add")
def add(
    ctx: typer.Context,
    text: Annotated[
        list[str] | None, typer.Argument(metavar="TEXT", help="The episode ('-' or a pipe: read stdin).")
    ] = None,
    group: GroupOpt = "default",
    time: Annotated[
        str | None,
        typer.Option("--time", "-t", help="When it happened (ISO 8601; default now).", show_default=False),
    ] = None,
    source: Annotated[Literal["message", "text", "json"], typer.Option(help="What the text is.")] = "message",
    name: Annotated[str | None, typer.Option(help="The episode's name.", show_default=False)] = None,
    json_: JsonOpt = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Add an episode: extract its entities and facts, end the facts it contradicts (at most 2 LLM calls)."""
    content = _read_content(text)
    with open_graph(state(ctx, config, store)) as graph:
        result = graph.add_episode(
            content, group_id=group, reference_time=parse_time(time, "--time"), source=source, name=name
        )
    if json_:
        print_json(result)
        return
    out = out_console()
    added = ", ".join(e.name for e in result.entities_added) or "none"
    merged = ", ".join(f"{m.extracted_name} → {m.entity.name} ({m.reason})" for m in result.entities_merged)
    out.print(f"Episode {result.episode.id} ({result.llm_calls} LLM call{'s' * (result.llm_calls > 1)})")
    out.print(f"New entities: {added}" + (f"; recognised: {merged}" if merged else ""))
    if result.facts_added:
        out.print(facts_table(result.facts_added))
    for title, facts in (("Confirmed", result.facts_confirmed), ("Ended", result.facts_invalidated)):
        if facts:
            out.print(f"{title}:")
            out.print(facts_table(facts))


@app.command("search")
def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(metavar="QUERY", help="What to look for, in plain words.")],
    group: GroupsOpt,
    as_of: AsOfOpt = None,
    known_at: KnownAtOpt = None,
    center: Annotated[
        str | None, typer.Option("--center", help="Rank by closeness to this entity id.", show_default=False)
    ] = None,
    relation: Annotated[
        list[str] | None, typer.Option("--relation", "-r", help="Only this relation (repeatable).")
    ] = None,
    history: HistoryOpt = False,
    limit: LimitOpt = 10,
    json_: JsonOpt = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Find facts: keywords, meaning and graph distance, fused; --as-of / --known-at travel in time."""
    filters: dict[str, Any] = {"include_invalid": history}
    if relation:
        filters["relations"] = relation
    with open_graph(state(ctx, config, store)) as graph:
        hits = graph.search(
            query,
            group_ids=group,
            as_of=parse_time(as_of, "--as-of"),
            known_at=parse_time(known_at, "--known-at"),
            center_entity=center,
            filters=filters,
            limit=limit,
        )
    if json_:
        print_json(hits)
    elif not hits:
        print_notice("No matching facts.")
    else:
        out_console().print(facts_table([h.fact for h in hits], [h.score for h in hits]))


@app.command("entities")
def entities(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(metavar="QUERY", help="A name, alias or description.")],
    group: GroupsOpt,
    limit: LimitOpt = 10,
    json_: JsonOpt = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Find entities by name, alias, summary and meaning."""
    with open_graph(state(ctx, config, store)) as graph:
        hits = graph.search_entities(query, group_ids=group, limit=limit)
    if json_:
        print_json(hits)
        return
    if not hits:
        print_notice("No matching entities.")
        return
    table = Table(expand=True)
    table.add_column("entity", overflow="fold", ratio=1)
    table.add_column("labels", no_wrap=True)
    for hit in hits:
        e = hit.entity
        cell = Text(e.name)
        if e.aliases:
            cell.append(f" (also {', '.join(e.aliases)})", style="magenta")
        if e.summary:
            cell.append(f"\n{e.summary}")
        cell.append(f"\n{e.id}", style="dim")
        table.add_row(cell, ", ".join(lb for lb in e.labels if lb != "Entity"))
    out_console().print(table)


@app.command("facts")
def facts(
    ctx: typer.Context,
    group: GroupsOpt,
    as_of: AsOfOpt = None,
    known_at: KnownAtOpt = None,
    history: HistoryOpt = False,
    limit: LimitOpt = 100,
    json_: JsonOpt = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """List facts in world-time order: current ones, or as of a time, or the whole history."""
    with open_graph(state(ctx, config, store)) as graph:
        found = graph.list_facts(
            group,
            as_of=parse_time(as_of, "--as-of"),
            known_at=parse_time(known_at, "--known-at"),
            include_invalid=history,
            limit=limit,
        )
    if json_:
        print_json(found)
    elif not found:
        print_notice("No facts.")
    else:
        out_console().print(facts_table(found))


@app.command("timeline")
def timeline(
    ctx: typer.Context,
    entity: Annotated[str, typer.Argument(metavar="ENTITY", help="An entity's name, alias or id.")],
    group: GroupOpt = "default",
    known_at: KnownAtOpt = None,
    json_: JsonOpt = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Everything known about one entity, ended facts included, in world-time order."""
    from azmem.graph import GraphItemNotFoundError

    with open_graph(state(ctx, config, store)) as graph:
        try:
            found = graph.find_entity(entity, group_id=group)
        except GraphItemNotFoundError:
            found = graph.get_entity(entity)  # an id, or the not-found error for it
        history = graph.timeline(found.id, known_at=parse_time(known_at, "--known-at"))
    if json_:
        print_json({"entity": found, "facts": history})
        return
    out_console().print(f"{found.name}" + (f" (also {', '.join(found.aliases)})" if found.aliases else ""))
    if history:
        out_console().print(facts_table(history))
    else:
        print_notice("No facts about it yet.")


@app.command("export")
def export(
    ctx: typer.Context,
    group: GroupsOpt,
    format: Annotated[
        Literal["json", "graphml"], typer.Option("--format", "-f", help="Output format.")
    ] = "json",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file (default: stdout).", dir_okay=False),
    ] = None,
    embeddings: Annotated[
        bool, typer.Option("--embeddings", help="Include the vectors (JSON only).")
    ] = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Export groups as JSON (every record) or GraphML (Gephi, yEd, networkx)."""
    with open_graph(state(ctx, config, store)) as graph:
        text = graph.export(group, format=format, include_embeddings=embeddings)
    if output is None:
        sys.stdout.write(text + "\n")
        return
    output.write_text(text + "\n", encoding="utf-8")
    print_notice(f"Wrote {output}.")
