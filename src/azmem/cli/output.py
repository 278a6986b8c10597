"""Everything the CLI prints: tables for people, JSON for scripts, errors for both.

Two rules hold for every command and are enforced here rather than in each command:

* with ``--json`` stdout carries exactly one JSON document and nothing else (progress
  bars, notices and errors go to stderr), so ``azmem ... --json | jq`` always works;
* an error never shows a traceback: the user gets the message, the suggestion that
  fixes it, and an exit code that tells a script which kind of problem it was.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from azmem.errors import ExitCode, exit_code_for

__all__ = [
    "DEBUG_ENV",
    "ExitCode",
    "InputFileError",
    "describe_error",
    "err_console",
    "exit_code_for",
    "memories_table",
    "out_console",
    "print_error",
    "print_json",
    "print_notice",
    "to_jsonable",
]

#: Set to 1 to let unexpected exceptions through with their traceback (for bug reports).
DEBUG_ENV = "AZMEM_DEBUG"


class InputFileError(Exception):
    """A file given on the command line cannot be used (missing, unreadable, malformed).

    Carries the same ``message`` / ``suggestion`` pair as ``AzmemError`` so it is
    rendered the same way; it lives here because it is a CLI concern (the library takes
    Python objects, not files).
    """

    def __init__(self, message: str, *, suggestion: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.suggestion = suggestion


def out_console() -> Console:
    """A console on the *current* ``sys.stdout``.

    Built per call rather than once at import: test runners swap ``sys.stdout``, and a
    console bound at import time would keep writing to the old stream.
    """
    return Console(file=sys.stdout, highlight=False, soft_wrap=False)


def err_console() -> Console:
    """A console on the current ``sys.stderr`` (see :func:`out_console`).

    Soft-wrapped: messages hold paths, ids and commands to copy, which a hard line
    break in the middle would spoil; the terminal wraps long lines by itself.
    """
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


# --------------------------------------------------------------------------- JSON


def to_jsonable(value: Any) -> Any:
    """Turn library objects (pydantic models, dataclasses, datetimes, numpy scalars) into JSON values.

    The CLI prints whatever the library returns; converting here means a new field on a
    result shows up in ``--json`` output without touching the commands.
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        return to_jsonable(model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, Iterable) and not isinstance(value, bytes | bytearray):
        return [to_jsonable(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return to_jsonable(item())
    return str(value)


def print_json(data: Any) -> None:
    """Write one JSON document to stdout, bypassing rich so nothing is wrapped or styled."""
    sys.stdout.write(json.dumps(to_jsonable(data), ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------- tables


def _field(record: Any, name: str) -> Any:
    if isinstance(record, Mapping):
        return record.get(name)
    return getattr(record, name, None)


def _short_time(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, str) and len(value) >= 16 and value[10] == "T":
        return value[:10] + " " + value[11:16]
    return "" if value is None else str(value)


def scope_text(record: Any) -> str:
    """``user=alex agent=travel``: the scope ids a record carries, compactly."""
    parts = []
    for key, label in (("user_id", "user"), ("agent_id", "agent"), ("run_id", "run")):
        value = _field(record, key)
        if value:
            parts.append(f"{label}={value}")
    return " ".join(parts)


def memories_table(records: Sequence[Any], *, title: str | None = None, show_score: bool = False) -> Table:
    """One table shape for every command that lists memories, so output looks the same everywhere.

    The id and scope go on dim lines under the text rather than in columns of their
    own: the id must be shown whole and unbroken (``get`` and ``delete`` take it), and
    a 36-character column would squeeze the text to nothing on an 80-column terminal.
    """
    table = Table(title=title, title_justify="left", expand=True)
    if show_score:
        table.add_column("score", justify="right", style="cyan", no_wrap=True)
    table.add_column("memory", overflow="fold", ratio=1, min_width=38)
    table.add_column("updated (UTC)", style="dim", no_wrap=True)
    for record in records:
        row: list[str | Text] = []
        if show_score:
            score = _field(record, "score")
            row.append("" if score is None else f"{float(score):.3f}")
        cell = Text(str(_field(record, "memory") or ""))
        cell.append("\n" + str(_field(record, "id") or ""), style="dim")
        scope = scope_text(record)
        if scope:
            cell.append("\n" + scope, style="magenta")
        updated = _field(record, "updated_at") or _field(record, "created_at")
        row += [cell, _short_time(updated)]
        table.add_row(*row)
    return table


def print_notice(message: str) -> None:
    """A side remark for people (stderr), never mixed into ``--json`` output."""
    err_console().print(f"[dim]{escape(message)}[/dim]")


# --------------------------------------------------------------------------- errors

#: The library's suggestions name Python arguments; on the command line they are options.
_CLI_WORDING: tuple[tuple[str, str], ...] = (
    ("pass infer=False to store the messages verbatim", "pass --no-infer to store the text verbatim"),
    ("(infer=False)", "(--no-infer)"),
    ("infer=False", "--no-infer"),
    ("infer=True", "--infer"),
    ("raise max_reasks", "retry"),
    ("Pass user_id='...' (or agent_id / run_id)", "Pass --user ID (or --agent ID / --run ID)"),
    ("pass user_id='...' (or agent_id / run_id)", "pass --user ID (or --agent ID / --run ID)"),
    ("pass api_key=...", "set api_key in the config file"),
    ("or api_key=...", "or api_key in the config file"),
    ("use auth='entra'", "set auth: entra in the config file"),
)


def cli_wording(text: str | None) -> str | None:
    """A library message in command-line terms (``--no-infer`` rather than ``infer=False``)."""
    if not text:
        return text
    for python, cli in _CLI_WORDING:
        text = text.replace(python, cli)
    return text


def describe_error(exc: BaseException) -> dict[str, Any]:
    """The error as data: for ``--json`` consumers and for tests, never including secrets.

    ``debug_info`` is included because the error tree guarantees it is secret-free
    (request ids, region, deployment, endpoint), and it is what a support ticket needs.
    """
    info: dict[str, Any] = {
        "type": type(exc).__name__,
        "message": cli_wording(getattr(exc, "message", None) or str(exc)),
        "suggestion": cli_wording(getattr(exc, "suggestion", None)),
        "error_code": getattr(exc, "error_code", None),
        "exit_code": int(exit_code_for(exc)),
    }
    debug = getattr(exc, "debug_info", None)
    if isinstance(debug, Mapping) and debug:
        info["debug_info"] = to_jsonable(debug)
    return info


def print_error(exc: BaseException) -> None:
    """Print an error for a person: the message in red, the fix under it, ids for support."""
    console = err_console()
    info = describe_error(exc)
    if info["exit_code"] == ExitCode.INTERNAL:
        console.print(
            f"[bold red]Error:[/bold red] unexpected {escape(info['type'])}: {escape(info['message'])}"
        )
        console.print(
            f"[yellow]This is a bug in azmem. Re-run with {DEBUG_ENV}=1 to see the traceback, "
            "and include it in a bug report.[/yellow]"
        )
        return
    console.print(f"[bold red]Error:[/bold red] {escape(str(info['message']))}")
    if info["suggestion"]:
        console.print(f"[yellow]Fix:[/yellow] {escape(str(info['suggestion']))}")
    debug = info.get("debug_info") or {}
    ids = {k: v for k, v in debug.items() if k in {"request_id", "apim_request_id", "x_request_id", "region"}}
    if ids:
        console.print("[dim]" + escape(" ".join(f"{k}={v}" for k, v in ids.items())) + "[/dim]")


def debug_enabled() -> bool:
    """Whether the user asked for tracebacks (``AZMEM_DEBUG=1``)."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in {"", "0", "false", "no"}


def fail(message: str, *, suggestion: str | None = None, code: ExitCode = ExitCode.INPUT) -> typer.Exit:
    """Print a CLI-level error (bad combination of options, ...) and return the Exit to raise."""
    console = err_console()
    console.print(f"[bold red]Error:[/bold red] {escape(message)}")
    if suggestion:
        console.print(f"[yellow]Fix:[/yellow] {escape(suggestion)}")
    return typer.Exit(int(code))
