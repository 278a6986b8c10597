"""The ``azmem`` command line (typer + rich). See docs/cli.md."""

from azmem.cli.app import app, main

__all__ = ["app", "main"]
