"""``azmem demo``: the whole memory loop on a fresh machine, in about a second.

It imports a short conversation that ships inside the package, runs a few searches and
prints what came back. It runs on the embedded default only (local MiniLM embeddings +
SQLite, messages stored verbatim): no Azure account, no network, and the user's own
settings and store are left alone, so the first command anyone runs cannot fail on
their environment or touch their data.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from azmem.cli.conversations import Conversation, parse_conversations
from azmem.cli.importer import import_conversations
from azmem.cli.options import JsonOpt, Scope, StoreOpt, state
from azmem.cli.output import out_console, print_json
from azmem.config import sqlite_path

if TYPE_CHECKING:
    from azmem.memory import Memory

__all__ = ["DEMO_QUERIES", "DEMO_RUN_ID", "demo", "load_sample"]

SAMPLE = "data/sample_conversation.json"
#: Run id the demo's memories carry in a kept store, so re-running replaces them only.
DEMO_RUN_ID = "azmem-demo"
DEMO_QUERIES = (
    "allergic to anything?",
    "what is the dog called?",
    "when is the trip to Japan?",
    "job and programming languages",
    "birthday present for the sister",
    "usual coffee order",
)


def load_sample() -> Conversation:
    """The sample conversation shipped as package data (read through importlib, so it works from a wheel)."""
    text = resources.files("azmem").joinpath(SAMPLE).read_text(encoding="utf-8")
    (conversation,) = parse_conversations(text, SAMPLE)
    return conversation


@contextmanager
def _demo_memory(store: str | None) -> Iterator[Memory]:
    """A Memory on local embeddings only; in a temporary store unless one was asked for.

    Settings are built directly (not loaded from the environment and config file) so
    that Azure variables or a broken config of the user's never change the demo.
    """
    from azmem.azure.settings import AzmemSettings
    from azmem.config import StoreSettings
    from azmem.memory import Memory

    with tempfile.TemporaryDirectory(prefix="azmem-demo-") as tmp:
        url = store if store is not None else str(Path(tmp) / "demo.db")
        settings = AzmemSettings(embedder="local", store=StoreSettings(url=url), home=Path(tmp))
        with Memory(settings=settings) as memory:
            yield memory


def demo(
    ctx: typer.Context,
    store: StoreOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Results shown per search.")] = 3,
    query: Annotated[
        list[str] | None,
        typer.Option(
            "--query",
            "-q",
            help="Your own search instead of the built-in ones (repeatable).",
            show_default=False,
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Import a sample conversation into a local store and search it (no Azure, no network).

    The store is temporary unless --store is given; then the memories are kept (under
    run id "azmem-demo", replaced on each run) for you to try the other commands on.
    """
    kept = state(ctx, None, store).store
    conversation = load_sample()
    queries = tuple(query) if query else DEMO_QUERIES
    started = time.perf_counter()
    with _demo_memory(kept) as memory:
        scope = Scope(run_id=DEMO_RUN_ID).over(conversation.scope())
        if kept is not None:
            memory.delete_all(**scope.kwargs())
        stats = import_conversations(
            memory,
            [conversation],
            scope=scope,
            metadata=None,
            infer=False,
            batch_size=len(conversation.messages),
        )
        imported = time.perf_counter() - started
        searches: list[dict[str, Any]] = []
        for q in queries:
            t0 = time.perf_counter()
            result = memory.search(q, limit=limit, **scope.kwargs())
            searches.append(
                {"query": q, "ms": round((time.perf_counter() - t0) * 1000, 1), "results": result.results}
            )
        embedder = memory.embedder.name
        path = sqlite_path(memory.settings.store_url) or memory.store_url
    total = time.perf_counter() - started

    if json_:
        print_json(
            {
                "store": str(path) if kept is not None else None,
                "embedder": embedder,
                "conversations": stats.conversations,
                "messages": stats.messages,
                "memories_added": stats.events.get("ADD", 0),
                "import_seconds": round(imported, 3),
                "total_seconds": round(total, 3),
                "searches": searches,
            }
        )
        return

    console = out_console()
    user = conversation.user_id or "the user"
    console.print(
        f"[bold]azmem demo[/bold]: {stats.messages} messages of a chat with {escape(user)}, stored verbatim "
        f"with local embeddings ({escape(embedder)}) in SQLite; no Azure, no network. "
        f"Imported in {imported:.1f} s, model load included."
    )
    for item in searches:
        table = Table(title=f"[bold]search[/bold] {escape(json.dumps(item['query']))}", title_justify="left")
        table.add_column("score", justify="right", style="cyan", no_wrap=True)
        table.add_column("who", style="magenta", no_wrap=True)
        table.add_column("memory", overflow="fold")
        for hit in item["results"]:
            table.add_row(f"{hit.score or 0:.3f}", hit.role or "", Text(hit.memory))
        console.print()
        console.print(table)
    console.print()
    if kept is not None:
        console.print(
            f"Memories kept in {escape(str(path))}. Try: "
            f'[bold]azmem search "coffee" --user {escape(user)} --store {escape(str(path))}[/bold]'
        )
    console.print(
        'Next: [bold]azmem add "I prefer tea" --user me[/bold], then [bold]azmem search tea --user me[/bold];'
        " connect Azure OpenAI for fact extraction and check it with [bold]azmem doctor[/bold]."
    )
