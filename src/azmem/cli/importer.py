"""``azmem import``: load conversations from JSON / JSONL files into memory.

The whole input is parsed and checked before the first write, so a malformed line 900
does not leave 899 lines imported. Each chunk of messages is then one add (one
transaction): if Azure fails half-way, what was imported stays consistent and the error
says how far it got.

Imports are safe to re-run (after a failure, a kill, or on a file that has grown): every
message has a stable id in its scope (:mod:`azmem.memory.imports`), so a re-run adds only
what is missing and reports how many messages it skipped. Verbatim imports skip message by
message; inferred ones skip each chunk whose memories are already stored, without calling
the model.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from azmem.cli.conversations import Conversation, load_conversations, parse_conversations
from azmem.cli.memories import parse_metadata
from azmem.cli.options import AgentOpt, ConfigOpt, JsonOpt, RunOpt, Scope, StoreOpt, UserOpt, state
from azmem.cli.output import ExitCode, err_console, fail, out_console, print_json, print_notice
from azmem.cli.runtime import open_memory

if TYPE_CHECKING:
    from azmem.memory import Memory

__all__ = ["ImportStats", "import_", "import_conversations"]


class ImportStats:
    """Counts kept while importing, reported at the end (or when an error stops the import)."""

    def __init__(self) -> None:
        from azmem.memory.imports import ImportTally  # the engine loads on use: `azmem --help` stays quick

        self.tally = ImportTally()
        self.started = time.perf_counter()

    @property
    def conversations(self) -> int:
        return self.tally.conversations

    @property
    def messages(self) -> int:
        return self.tally.messages

    @property
    def skipped(self) -> int:
        """Messages already in the store (an earlier run imported them) or repeated in the input."""
        return self.tally.skipped

    @property
    def events(self) -> Counter[str]:
        return self.tally.events

    def as_dict(self) -> dict[str, Any]:
        return {
            "conversations": self.tally.conversations,
            "messages": self.tally.messages,
            "skipped": self.tally.skipped,
            "events": self.tally.event_counts(),
            "seconds": round(time.perf_counter() - self.started, 3),
        }


def import_conversations(
    memory: Memory,
    conversations: list[Conversation],
    *,
    scope: Scope,
    metadata: dict[str, Any] | None,
    infer: bool | None,
    batch_size: int,
    on_progress: Callable[[int], None] | None = None,
    stats: ImportStats | None = None,
) -> ImportStats:
    """Add every conversation in chunks of ``batch_size`` messages, in file order.

    Scope ids given on the command line win over the file's (an explicit choice beats a
    default, as with settings); metadata is merged, the command line's keys winning.
    The loop itself is the library's (`azmem.memory.imports`), shared with the server.
    """
    from azmem.errors import InvalidInputError
    from azmem.memory.imports import ImportConversation
    from azmem.memory.imports import import_conversations as run
    from azmem.memory.inputs import check_metadata, make_scope

    stats = stats or ImportStats()
    todo: list[ImportConversation] = []
    for conv in conversations:  # all checked before the first write
        full = scope.over(conv.scope())
        if full.is_empty():
            raise fail(
                f"{conv.where}: no user, agent or run id for this conversation.",
                suggestion="Pass --user ID (or --agent / --run), or set user_id in the file.",
                code=ExitCode.INPUT,
            )
        try:  # the engine's own checks, so that they fail here rather than half-way
            make_scope(full.user_id, full.agent_id, full.run_id)
            meta = check_metadata({**conv.metadata, **(metadata or {})})
        except InvalidInputError as exc:
            raise fail(
                f"{conv.where}: {exc.message}", suggestion=exc.suggestion, code=ExitCode.INPUT
            ) from None
        ids = cast(dict[str, str], full.kwargs())  # a TypedDict of str values: only the ids given
        todo.append(ImportConversation(conv.messages, ids, meta))
    run(memory, todo, infer=infer, batch_size=batch_size, tally=stats.tally, on_chunk=on_progress)
    return stats


def import_(
    ctx: typer.Context,
    files: Annotated[
        list[Path],
        typer.Argument(
            help="JSON or JSONL conversation files ('-' reads stdin).", show_default=False, metavar="FILE"
        ),
    ],
    user: UserOpt = None,
    agent: AgentOpt = None,
    run: RunOpt = None,
    meta: Annotated[
        list[str] | None,
        typer.Option(
            "--meta", "-m", help="Metadata KEY=VALUE added to every memory (repeatable).", show_default=False
        ),
    ] = None,
    infer: Annotated[
        bool | None,
        typer.Option(
            "--infer/--no-infer",
            help="Extract facts with the chat deployment, or store each message verbatim. "
            "Default: infer when a chat deployment is configured.",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Messages per add (one transaction, one LLM round).")
    ] = 20,  # azmem.memory.imports.DEFAULT_CHUNK_MESSAGES, the server's default too
    json_: JsonOpt = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Import conversations from JSON / JSONL files.

    A file holds one conversation {"messages": [...], "user_id": ...}, a list of them,
    or a bare list of messages {"role": ..., "content": ..., "timestamp": ...}; a JSONL
    file holds one conversation or one message per line. --user/--agent/--run override
    the ids in the file.
    """
    conversations: list[Conversation] = []
    for path in files:
        if str(path) == "-":
            conversations += parse_conversations(sys.stdin.read(), "<stdin>")
        else:
            conversations += load_conversations(path)
    metadata = parse_metadata(meta)
    scope = Scope(user, agent, run)
    total = sum(len(c.messages) for c in conversations)
    if total == 0:
        print_notice("No messages to import.")
        if json_:
            print_json(ImportStats().as_dict())
        return

    stats = ImportStats()
    progress = Progress(
        TextColumn("[bold]Importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("messages"),
        TimeElapsedColumn(),
        console=err_console(),
        transient=False,
    )
    with open_memory(state(ctx, config, store)) as memory, progress:
        task = progress.add_task("import", total=total)
        try:
            import_conversations(
                memory,
                conversations,
                scope=scope,
                metadata=metadata,
                infer=infer,
                batch_size=batch_size,
                on_progress=lambda n: progress.advance(task, n),
                stats=stats,
            )
        except Exception:
            progress.stop()
            print_notice(f"Imported {stats.messages} of {total} messages before the error below.")
            raise
    if json_:
        print_json(stats.as_dict())
        return
    summary = stats.as_dict()
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("conversations", str(summary["conversations"]))
    table.add_row("messages", str(summary["messages"]))
    for kind, count in summary["events"].items():
        if count:
            table.add_row(f"memories {kind.lower()}{'d' if kind != 'ADD' else 'ed'}", str(count))
    if summary["skipped"]:
        table.add_row("messages skipped (already imported)", str(summary["skipped"]))
    table.add_row("seconds", f"{summary['seconds']:.1f}")
    out_console().print(table)
