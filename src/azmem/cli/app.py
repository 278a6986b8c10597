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
from azmem.cli import demo, doctor, emulator, importer, memories, status
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


class AzmemGroup(TyperGroup):
    """Turns every exception a command raises into a printed message and an exit code.

    Done once here instead of in each command (like httpx's single exception-mapping
    context manager), and inside ``invoke`` rather than in :func:`main` so that tests
    driving the app through ``CliRunner`` see exactly what users see.
    """

    def invoke(self, ctx: Any) -> Any:
        try:
            with _quiet_sdk_loggers():
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

app.command("add", rich_help_panel=_MEMORY_PANEL)(memories.add)
app.command("search", rich_help_panel=_MEMORY_PANEL)(memories.search)
app.command("query", rich_help_panel=_MEMORY_PANEL)(memories.query)
app.command("list", rich_help_panel=_MEMORY_PANEL)(memories.list_)
app.command("get", rich_help_panel=_MEMORY_PANEL)(memories.get)
app.command("history", rich_help_panel=_MEMORY_PANEL)(memories.history)
app.command("delete", rich_help_panel=_MEMORY_PANEL)(memories.delete)
app.command("import", rich_help_panel=_MEMORY_PANEL)(importer.import_)
app.command("reindex", rich_help_panel=_MEMORY_PANEL)(memories.reindex)
app.command("demo", rich_help_panel=_SETUP_PANEL)(demo.demo)
app.command("doctor", rich_help_panel=_SETUP_PANEL)(doctor.doctor)
app.command("emulator", rich_help_panel=_SETUP_PANEL)(emulator.emulator)
app.command("status", rich_help_panel=_SETUP_PANEL)(status.status)


def main() -> None:
    """Console-script entry point (``azmem = "azmem.cli:main"``)."""
    app()
