"""Error rendering and exit codes: the contract scripts rely on (see docs/cli.md)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import typer
from pydantic import BaseModel
from typer.testing import CliRunner

from azmem import errors
from azmem.cli.app import AzmemGroup
from azmem.cli.output import DEBUG_ENV, ExitCode, InputFileError, describe_error, exit_code_for, to_jsonable
from azmem.embeddings.local import EmbeddingModelError

from .conftest import Invoke, no_traceback


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (errors.ConfigurationError("x"), ExitCode.CONFIG),
        (errors.AuthenticationError("x"), ExitCode.CONFIG),
        (errors.PermissionDeniedError("x"), ExitCode.CONFIG),
        (errors.DeploymentNotFoundError("x"), ExitCode.CONFIG),
        (errors.EmbedderMismatchError("x"), ExitCode.CONFIG),
        (EmbeddingModelError("x"), ExitCode.CONFIG),
        (errors.InvalidInputError("x"), ExitCode.INPUT),
        (errors.MemoryNotFoundError("x"), ExitCode.INPUT),
        (errors.ContentFilterError("x"), ExitCode.INPUT),
        (errors.ContextLengthError("x"), ExitCode.INPUT),
        (InputFileError("x"), ExitCode.INPUT),
        (errors.RateLimitError("x"), ExitCode.SERVICE),
        (errors.QuotaExceededError("x"), ExitCode.SERVICE),
        (errors.NetworkError("x"), ExitCode.SERVICE),
        (errors.TimeoutError("x"), ExitCode.SERVICE),
        (errors.ServiceError("x"), ExitCode.SERVICE),
        (errors.InvalidRequestError("x"), ExitCode.SERVICE),
        (errors.StructuredOutputError("x"), ExitCode.SERVICE),
        (errors.StoreError("x"), ExitCode.STORE),
        (RuntimeError("x"), ExitCode.INTERNAL),
        (KeyError("x"), ExitCode.INTERNAL),
    ],
)
def test_exit_codes_follow_the_error_tree(exc: BaseException, code: ExitCode) -> None:
    assert exit_code_for(exc) is code


def test_every_class_in_the_error_tree_has_a_user_facing_code() -> None:
    """A new error class must land in a documented bucket, never in "internal error"."""
    classes = [
        obj for obj in vars(errors).values() if isinstance(obj, type) and issubclass(obj, errors.AzmemError)
    ]
    assert len(classes) > 15
    for cls in classes:
        exc = cls.__new__(cls)
        assert exit_code_for(exc) is not ExitCode.INTERNAL, cls


def test_describe_error_carries_message_suggestion_and_code() -> None:
    exc = errors.DeploymentNotFoundError(
        "Deployment 'gpt-x' not found", suggestion="Check the name.", debug_info={"apim-request-id": "abc"}
    )
    info = describe_error(exc)
    assert info["type"] == "DeploymentNotFoundError"
    assert info["message"] == "Deployment 'gpt-x' not found"
    assert info["suggestion"] == "Check the name."
    assert info["exit_code"] == 3
    assert info["debug_info"] == {"apim-request-id": "abc"}


def test_to_jsonable_handles_library_values() -> None:
    class Item(BaseModel):
        when: dt.datetime
        where: Path

    when = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
    data = {"items": (Item(when=when, where=Path("/x")),), "n": 1, "none": None}
    assert to_jsonable(data) == {
        "items": [{"when": "2025-03-01T12:00:00Z", "where": "/x"}],
        "n": 1,
        "none": None,
    }


def _app_raising(exc: BaseException) -> typer.Typer:
    """A one-command app on azmem's group class: the real error path, with a chosen exception."""
    app = typer.Typer(cls=AzmemGroup)

    @app.command()
    def boom() -> None:
        raise exc

    @app.command()
    def other() -> None:  # two commands, so typer keeps the group
        pass

    return app


def test_user_error_prints_message_and_fix_without_traceback() -> None:
    app = _app_raising(errors.ConfigurationError("Unknown setting 'x'.", suggestion="Rename it."))
    result = CliRunner().invoke(app, ["boom"])
    assert result.exit_code == 3
    assert result.stdout == ""
    assert "Error: Unknown setting 'x'." in result.stderr
    assert "Fix: Rename it." in result.stderr
    no_traceback(result)


def test_unexpected_error_is_reported_as_a_bug_without_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    result = CliRunner().invoke(_app_raising(RuntimeError("kaboom")), ["boom"])
    assert result.exit_code == 70
    assert "unexpected RuntimeError: kaboom" in result.stderr
    assert DEBUG_ENV in result.stderr
    no_traceback(result)


def test_debug_env_lets_the_traceback_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEBUG_ENV, "1")
    result = CliRunner().invoke(_app_raising(RuntimeError("kaboom")), ["boom"])
    assert isinstance(result.exception, RuntimeError)


def test_library_suggestions_are_shown_in_command_line_terms() -> None:
    err = errors.ConfigurationError(
        "No chat deployment.", suggestion="Configure one, or pass infer=False to store the messages verbatim."
    )
    assert (
        describe_error(err)["suggestion"] == "Configure one, or pass --no-infer to store the text verbatim."
    )
    reasks = errors.StructuredOutputError(
        "Invalid.", suggestion="Simplify the response model, raise max_reasks, or ..."
    )
    assert "max_reasks" not in describe_error(reasks)["suggestion"]


def test_limit_help_shows_its_range(cli: Invoke) -> None:
    for command in ("search", "list", "query"):
        result = cli(command, "--help", with_store=False)
        assert "1<=x<=1000" in result.stdout, command
    assert cli("list", "--user", "a", "--limit", "1001").exit_code == 2
