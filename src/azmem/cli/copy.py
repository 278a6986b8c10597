"""``azmem copy FROM TO``: move a whole store between backends, with a progress bar."""

from __future__ import annotations

from contextlib import closing
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from azmem.cli.options import JsonOpt
from azmem.cli.output import err_console, out_console, print_json

__all__ = ["copy"]

_LABELS = {"memories": "Copying memories", "history": "Copying history", "verify": "Verifying"}


def copy(
    source: Annotated[
        str, typer.Argument(help="The store to copy: sqlite:///file.db, postgresql://..., or a path.")
    ],
    target: Annotated[str, typer.Argument(help="Where to copy it (created if missing; should be empty).")],
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, max=10_000, help="Rows per transaction.")
    ] = 500,
    json_: JsonOpt = False,
) -> None:
    """Copy every memory (with its vector) and its history into another store, then verify.

    SQLite -> PostgreSQL and back. Interrupted? Run the same command again: it resumes,
    skipping what is already copied. The end compares counts and a checksum of both stores.
    """
    from azmem.errors import InvalidInputError
    from azmem.stores.copy import copy_store
    from azmem.stores.factory import open_store, redact_url

    if source == target:
        raise InvalidInputError("FROM and TO are the same store.", suggestion="Copy into another store.")
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console(),
        transient=json_,
    )
    tasks: dict[str, TaskID] = {}

    def report(phase: str, done: int, total: int | None) -> None:
        if phase not in tasks:
            tasks[phase] = progress.add_task(_LABELS[phase], total=total)
        progress.update(tasks[phase], completed=done, total=total if total is not None else done)

    with closing(open_store(source, read_only=True)) as src, closing(open_store(target)) as dst, progress:
        result = copy_store(src, dst, batch_size=batch_size, progress=report)
    summary = {
        "source": redact_url(source),
        "target": redact_url(target),
        "memories": result.memories,
        "history": result.history,
        "inserted": result.inserted,
        "checksum": result.target_checksum,
        "verified": result.verified,
    }
    if json_:
        print_json(summary)
        return
    out_console().print(
        f"Copied to {summary['target']}: {result.memories} memories, {result.history} history events "
        f"({result.inserted} written now); checksum {result.target_checksum[:16]}… matches the source."
    )
