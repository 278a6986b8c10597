"""The ``azmem`` application: one typer app, one flat list of commands.

Commands live in small modules that know nothing about this one; they are registered
here so the import graph stays a tree. Heavy imports (the SDK, the embedding model,
the store) happen inside the commands, so ``azmem --help`` answers at once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from azmem import __version__
from azmem.cli import (
    audit,
    copy,
    demo,
    doctor,
    emulator,
    forget,
    graph,
    importer,
    keys,
    memories,
    serve,
    status,
)
from azmem.cli.options import CliState, ConfigOpt, StoreOpt
from azmem.cli.output import ExitCode, debug_enabled, err_console, exit_code_for, print_error

__all__ = ["app", "main"]


#: Loggers of the Azure SDK that print to stderr on their own (DefaultAzureCredential's
#: whole credential chain, HTTP policies): the CLI reports the failure once, as an error.
_SDK_LOGGERS = ("azure.identity", "azure.core", "msal")


@contextlib.contextmanager
def _quiet_sdk_loggers() -> Iterator[None]:
    """Silence the Azure SDK's loggers while a command runs, unless AZMEM_DEBUG is set."""
    if debug_enabled():
        yield
        return
    loggers = [logging.getLogger(name) for name in _SDK_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _start_telemetry(ctx: Any) -> None:
    """Azure Monitor, once per process, when a connection string is configured (never fails a command)."""
    from azmem.azure.monitor import setup_for_cli

    setup_for_cli(ctx.params.get("config"), list(ctx.args))


class AzmemGroup(TyperGroup):
    """Turns every exception a command raises into a printed message and an exit code.

    Done once here instead of in each command (like httpx's single exception-mapping
    context manager), and inside ``invoke`` rather than in :func:`main` so that tests
    driving the app through ``CliRunner`` see exactly what users see.
    """

    def invoke(self, ctx: Any) -> Any:
        try:
            with _quiet_sdk_loggers():
                _start_telemetry(ctx)
                return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except KeyboardInterrupt:
            err_console().print("[yellow]Interrupted.[/yellow]")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except Exception as exc:
            if debug_enabled():
                raise
            print_error(exc)
            raise typer.Exit(int(exit_code_for(exc))) from None


app = typer.Typer(
    name="azmem",
    cls=AzmemGroup,
    help="Long-term memory for AI agents on Azure OpenAI.\n\nStart with **azmem demo**.",
    epilog="Exit codes: 0 ok, 1 doctor found problems, 2 bad command line, 3 configuration, "
    "4 input, 5 Azure OpenAI service, 6 store. Docs: docs/cli.md",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"azmem {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    config: ConfigOpt = None,
    store: StoreOpt = None,
    version: Annotated[
        bool,
        typer.Option("--version", help="Show the version and exit.", callback=_version, is_eager=True),
    ] = False,
) -> None:
    ctx.obj = CliState(config=config, store=store)


_MEMORY_PANEL = "Memories"
_SETUP_PANEL = "Set-up and tools"
_SERVER_PANEL = "Serving agents"

for _panel, _commands in (
    (
        _MEMORY_PANEL,
        (
            ("add", memories.add),
            ("search", memories.search),
            ("query", memories.query),
            ("list", memories.list_),
            ("get", memories.get),
            ("history", memories.history),
            ("delete", memories.delete),
            ("forget", forget.forget),
            ("import", importer.import_),
            ("reindex", memories.reindex),
        ),
    ),
    (
        _SETUP_PANEL,
        (
            ("copy", copy.copy),
            ("demo", demo.demo),
            ("doctor", doctor.doctor),
            ("emulator", emulator.emulator),
            ("status", status.status),
        ),
    ),
    (
        _SERVER_PANEL,
        (
            ("serve", serve.serve),
            ("mcp", serve.mcp),
        ),
    ),
):
    for _name, _command in _commands:
        app.command(_name, rich_help_panel=_panel)(_command)

app.add_typer(keys.app, name="keys", rich_help_panel=_SERVER_PANEL)
app.add_typer(graph.app, name="graph", rich_help_panel=_MEMORY_PANEL)
app.add_typer(audit.app, name="audit", rich_help_panel=_SETUP_PANEL)


def main() -> None:
    """Console-script entry point (``azmem = "azmem.cli:main"``)."""
    app()
