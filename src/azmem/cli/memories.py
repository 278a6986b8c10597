"""The memory commands: add, search, list, get, history, delete, reindex.

Each one is a thin face over one ``Memory`` method: parse options, call, render. The
library owns validation (empty text, missing scope, bad filters) and its errors carry
the fix, so the commands do not second-guess it.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, Literal

import typer
from rich.table import Table
from rich.text import Text

from azmem.cli.options import AgentOpt, ConfigOpt, JsonOpt, RunOpt, Scope, StoreOpt, UserOpt, state
from azmem.cli.output import (
    ExitCode,
    InputFileError,
    fail,
    memories_table,
    out_console,
    print_json,
    print_notice,
    to_jsonable,
)
from azmem.cli.runtime import open_memory

__all__ = [
    "add",
    "delete",
    "get",
    "history",
    "list_",
    "parse_filters",
    "parse_metadata",
    "query",
    "reindex",
    "search",
]


FilterOpt = Annotated[
    str | None,
    typer.Option(
        "--filter",
        "-f",
        help='Metadata filter as JSON, e.g. \'{"topic": "food"}\' or \'{"AND": [{"n": {"gte": 2}}]}\'.',
        show_default=False,
    ),
]
MemoryIdArg = Annotated[str, typer.Argument(metavar="ID", help="The memory's id.")]


def parse_filters(raw: str | None) -> dict[str, Any] | None:
    """Decode ``--filter``: JSON is the only syntax, so any filter the library accepts can be typed."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputFileError(
            f"--filter is not valid JSON: {exc.msg} at position {exc.pos}.",
            suggestion='Quote the whole filter for the shell, e.g. --filter \'{"topic": "food"}\'.',
        ) from None
    if not isinstance(value, dict):
        raise InputFileError(
            "--filter must be a JSON object.", suggestion='For example --filter \'{"topic": "food"}\'.'
        )
    return value


def parse_metadata(pairs: list[str] | None) -> dict[str, Any] | None:
    """Turn ``--meta key=value`` pairs into a dict; values that parse as JSON keep their type.

    ``--meta n=2`` stores the number 2 (so ``{"n": {"gte": 2}}`` filters work) while
    ``--meta topic=food`` stores the string, without making people quote JSON.
    """
    if not pairs:
        return None
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise InputFileError(
                f"--meta {pair!r} is not KEY=VALUE.", suggestion="Write it as --meta topic=food (repeatable)."
            )
        key = key.strip()
        _check_meta_key(key)
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key] = value
    return out


def _check_meta_key(key: str) -> None:
    """A ``--meta`` key must be one ``--filter`` can address and that azmem does not set itself."""
    from azmem.errors import InvalidInputError
    from azmem.stores.filters import FIELDS, parse_filters

    reserved = {*FIELDS, "timestamp", "metadata"}
    if key in reserved:
        raise InputFileError(
            f"--meta {key}=... uses a reserved key: {key!r} is set by azmem or is a memory field.",
            suggestion=f"Use another key name (reserved: {', '.join(sorted(reserved))}).",
        )
    problem = "'.' separates nested keys in --filter" if "." in key else None
    if problem is None:
        try:
            parse_filters({key: 1})
        except InvalidInputError:
            problem = "--filter could not address it"
    if problem is not None:
        raise InputFileError(
            f"--meta key {key!r} is not a valid metadata key: {problem}.",
            suggestion="Use letters, digits, '_', '-' and spaces (at most 128 characters), "
            "e.g. --meta topic=food.",
        )


def require_scope(scope: Scope, command: str) -> None:
    """Memories belong to a user, agent or run: say so in CLI terms, not the library's Python terms."""
    if scope.is_empty():
        raise fail(
            f"azmem {command} needs a scope: whose memories?",
            suggestion=f"Add --user ID (or --agent ID / --run ID), e.g. azmem {command} ... --user alex",
            code=ExitCode.INPUT,
        )


def _read_text(text: list[str] | None) -> str:
    """The memory text from the arguments, or from stdin when it is ``-`` or piped in."""
    if text and text != ["-"]:
        return " ".join(text)
    if text == ["-"] or not sys.stdin.isatty():
        return sys.stdin.read().strip()  # `echo ... |` adds a newline that is not part of the memory
    raise fail(
        "Nothing to add.", suggestion='Pass the text: azmem add "I like tea" --user alex (or pipe it in).'
    )


_EVENT_STYLE = {"ADD": "green", "UPDATE": "yellow", "DELETE": "red", "NONE": "dim"}


def add(
    ctx: typer.Context,
    text: Annotated[
        list[str] | None,
        typer.Argument(metavar="TEXT", help="What to remember ('-' or a pipe: read stdin)."),
    ] = None,
    user: UserOpt = None,
    agent: AgentOpt = None,
    run: RunOpt = None,
    meta: Annotated[
        list[str] | None,
        typer.Option("--meta", "-m", help="Metadata KEY=VALUE (repeatable).", show_default=False),
    ] = None,
    role: Annotated[
        Literal["user", "assistant", "system"], typer.Option(help="Who said it (kept in the metadata).")
    ] = "user",
    infer: Annotated[
        bool | None,
        typer.Option(
            "--infer/--no-infer",
            help="Extract facts with the chat deployment, or store the text verbatim. "
            "Default: infer when a chat deployment is configured.",
            show_default=False,
        ),
    ] = None,
    json_: JsonOpt = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Remember something for a user, agent or run."""
    scope = Scope(user, agent, run)
    require_scope(scope, "add")
    content = _read_text(text)
    metadata = parse_metadata(meta)
    with open_memory(state(ctx, config, store)) as memory:
        result = memory.add(
            [{"role": role, "content": content}], metadata=metadata, infer=infer, **scope.kwargs()
        )
    if json_:
        print_json(result)
        return
    events = list(result.results)
    if not events and role == "system":
        print_notice(
            "Nothing stored: a system message is an instruction to the assistant, not something to "
            "remember. Use --role user (or assistant) for what was said."
        )
        return
    if not events:
        print_notice("Nothing new to remember: the memories already cover it.")
        return
    table = Table(expand=True)
    table.add_column("event", no_wrap=True)
    table.add_column("memory", overflow="fold", ratio=1)
    for event in events:
        cell = Text(event.memory)
        if event.previous_memory and event.event == "UPDATE":
            cell.append(f"\n(was: {event.previous_memory})", style="yellow")
        cell.append(f"\n{event.id}", style="dim")
        table.add_row(Text(event.event, style=_EVENT_STYLE.get(event.event, "")), cell)
    out_console().print(table)


def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(metavar="QUERY", help="What to look for, in plain words.")],
    user: UserOpt = None,
    agent: AgentOpt = None,
    run: RunOpt = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=1000, help="Most results to return.")
    ] = 10,
    threshold: Annotated[
        float | None, typer.Option(help="Minimum cosine similarity of a result.", show_default=False)
    ] = None,
    filter_: FilterOpt = None,
    mode: Annotated[
        Literal["hybrid", "dense", "bm25"],
        typer.Option(help="hybrid: meaning + keywords; dense: meaning only; bm25: keywords only."),
    ] = "hybrid",
    json_: JsonOpt = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Find the memories most relevant to a query (hybrid: meaning and keywords)."""
    scope = Scope(user, agent, run)
    require_scope(scope, "search")
    filters = parse_filters(filter_)
    with open_memory(state(ctx, config, store), must_exist=True) as memory:
        result = memory.search(
            query, filters=filters, limit=limit, threshold=threshold, mode=mode, **scope.kwargs()
        )
    if json_:
        print_json(result)
        return
    if not result.results:
        print_notice("No matching memories.")
        return
    out_console().print(memories_table(result.results, show_score=True))


def query(
    ctx: typer.Context,
    question: Annotated[
        str, typer.Argument(metavar="QUESTION", help="A question about the scope's memories.")
    ],
    user: UserOpt = None,
    agent: AgentOpt = None,
    run: RunOpt = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=1000, help="Memories retrieved for the answer.")
    ] = 10,
    filter_: FilterOpt = None,
    json_: JsonOpt = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Answer a question from the memories, citing the ones used (needs a chat deployment).

    Without a chat deployment it shows the memories it would have answered from.
    """
    scope = Scope(user, agent, run)
    require_scope(scope, "query")
    filters = parse_filters(filter_)
    with open_memory(state(ctx, config, store), must_exist=True) as memory:
        result = memory.query(question, filters=filters, limit=limit, **scope.kwargs())
    if json_:
        print_json(result)
        return
    console = out_console()
    if result.answer is not None:
        console.print(Text(result.answer))
    if result.note:
        print_notice(result.note)
    cited = set(result.cited_ids)
    shown = [m for m in result.memories if m.id in cited] if cited else list(result.memories)
    if shown:
        title = "based on" if cited else "retrieved"
        console.print(memories_table(shown, title=title, show_score=True))


def list_(
    ctx: typer.Context,
    user: UserOpt = None,
    agent: AgentOpt = None,
    run: RunOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="Most memories to show.")] = 50,
    cursor: Annotated[
        str | None, typer.Option(help="Continue from a previous page's next_cursor.", show_default=False)
    ] = None,
    filter_: FilterOpt = None,
    json_: JsonOpt = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """List memories, newest first (one page; --cursor for the next)."""
    scope = Scope(user, agent, run)
    require_scope(scope, "list")
    filters = parse_filters(filter_)
    with open_memory(state(ctx, config, store), must_exist=True) as memory:
        page = memory.get_all(filters=filters, limit=limit, cursor=cursor, **scope.kwargs())
    if json_:
        print_json(page)
        return
    if not page.results:
        print_notice("No memories in this scope.")
        return
    out_console().print(memories_table(page.results))
    if page.next_cursor:
        print_notice(f"More: azmem list --cursor {page.next_cursor} (with the same scope and filter)")


def get(
    ctx: typer.Context,
    memory_id: MemoryIdArg,
    json_: JsonOpt = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Show one memory with its metadata."""
    with open_memory(state(ctx, config, store), must_exist=True) as memory:
        item = memory.get(memory_id)
    if json_:
        print_json(item)
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in to_jsonable(item).items():
        if value in (None, {}, []) or key == "hash":  # the hash is for machines (dedup), not people
            continue
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value)
        table.add_row(key, Text(shown))
    out_console().print(table)


def history(
    ctx: typer.Context,
    memory_id: MemoryIdArg,
    json_: JsonOpt = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Every change to one memory (ADD, UPDATE, DELETE), oldest first."""
    with open_memory(state(ctx, config, store), must_exist=True) as memory:
        entries = memory.history(memory_id)
    if json_:
        print_json({"results": entries})
        return
    if not entries:
        print_notice(f"No history for {memory_id}.")
        return
    table = Table()
    table.add_column("when (UTC)", style="dim", no_wrap=True)
    table.add_column("event", no_wrap=True)
    table.add_column("before", overflow="fold")
    table.add_column("after", overflow="fold")
    for entry in entries:
        table.add_row(
            entry.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            Text(entry.event, style=_EVENT_STYLE.get(entry.event, "")),
            Text(entry.old_memory or ""),
            Text(entry.new_memory or ""),
        )
    out_console().print(table)


def delete(
    ctx: typer.Context,
    memory_id: Annotated[
        str | None, typer.Argument(metavar="ID", help="The memory to delete.", show_default=False)
    ] = None,
    all_: Annotated[
        bool,
        typer.Option("--all", help="Delete every memory in the given scope (needs --user/--agent/--run)."),
    ] = False,
    user: UserOpt = None,
    agent: AgentOpt = None,
    run: RunOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_: JsonOpt = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Delete one memory by id, or all memories of a scope with --all."""
    scope = Scope(user, agent, run)
    if (memory_id is None) == (not all_):
        raise fail(
            "Give either a memory ID or --all with a scope.",
            suggestion="azmem delete ID, or azmem delete --all --user alex",
            code=ExitCode.USAGE,
        )
    if all_ and scope.is_empty():
        raise fail(
            "--all needs a scope, so that one typo cannot wipe every user's memories.",
            suggestion="Add --user, --agent or --run (or use the Python API's reset() to clear a store).",
            code=ExitCode.USAGE,
        )
    if memory_id is not None and not scope.is_empty():
        raise fail("A memory ID already names one memory: drop --user/--agent/--run.", code=ExitCode.USAGE)
    with open_memory(state(ctx, config, store)) as memory:
        if memory_id is not None:
            memory.delete(memory_id)
            outcome: dict[str, Any] = {"deleted": 1, "id": memory_id}
        else:
            if not yes:
                what = " ".join(f"{k}={v}" for k, v in scope.kwargs().items())
                typer.confirm(f"Delete every memory of {what}?", abort=True, err=True)
            count = memory.delete_all(**scope.kwargs())
            outcome = {"deleted": count, **scope.kwargs()}
    if json_:
        print_json(outcome)
    else:
        noun = "memory" if outcome["deleted"] == 1 else "memories"
        out_console().print(f"Deleted {outcome['deleted']} {noun}.")


def reindex(
    ctx: typer.Context,
    json_: JsonOpt = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Re-embed every memory with the embedder configured now (after changing embedders)."""
    with open_memory(state(ctx, config, store)) as memory:
        result = memory.reindex()
    if json_:
        print_json(result)
        return
    before = (
        f" (was {result.previous_embedder}, {result.previous_dimension} dimensions)"
        if result.previous_embedder and result.previous_embedder != result.embedder
        else ""
    )
    out_console().print(
        f"Re-embedded {result.count} memories with {result.embedder} ({result.dimension} dimensions){before}."
    )
