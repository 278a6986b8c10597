"""The app's surface: the command list, help, version; what a new user meets first."""

from __future__ import annotations

from typer.testing import CliRunner

from azmem import __version__
from azmem.cli import app

COMMANDS = (
    "add",
    "search",
    "query",
    "list",
    "get",
    "history",
    "delete",
    "import",
    "reindex",
    "demo",
    "doctor",
    "emulator",
)


def test_help_lists_every_command_and_the_exit_codes() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert f" {command} " in result.stdout, command
    assert "azmem demo" in result.stdout
    assert "Exit codes" in result.stdout


def test_every_command_has_help_with_json_where_it_prints_data() -> None:
    runner = CliRunner()
    for command in COMMANDS:
        result = runner.invoke(app, [command, "-h"])
        assert result.exit_code == 0, command
        assert "--json" in result.stdout, command


def test_version_and_bare_invocation() -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["--version"]).stdout == f"azmem {__version__}\n"
    bare = runner.invoke(app, [])
    assert bare.exit_code == 2  # a command is required: usage error, with the help shown
    assert "Usage" in bare.stdout + bare.stderr
