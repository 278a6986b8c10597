"""Audit of issue 2 §6: docs/errors.md agrees with the code, and the rows the other tests reach only
through a stub are driven through the emulator and the LLM client (sync and async)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llm_helpers import Factory, chat_requests, factories, settings

from azmem import errors as E

DOCS = Path(__file__).resolve().parents[2] / "docs" / "errors.md"


@pytest.fixture(params=["sync", "async"])
def make_llm(request: pytest.FixtureRequest, emulator: Any) -> Iterator[Factory]:
    yield from factories(request, emulator)


def _status_table() -> list[tuple[str, str, str]]:
    """(status, class name, retried) for each row of the status -> class table."""
    rows = []
    in_table = False
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        if line.startswith("| status |"):
            in_table = True
            continue
        if in_table and not line.startswith("|"):
            break
        if in_table and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            name = re.match(r"`(\w+)`", cells[2])
            assert name, line
            rows.append((cells[0], name.group(1), cells[3]))
    return rows


def test_the_error_table_names_real_classes_and_their_retry_rule() -> None:
    rows = _status_table()
    assert len(rows) >= 25
    for status, name, retried in rows:
        cls = getattr(E, name, None)
        assert isinstance(cls, type), name
        assert issubclass(cls, E.AzmemError), name
        assert cls.retryable is retried.startswith("yes"), f"{status} {name}: docs say retried={retried!r}"


def test_every_class_of_the_tree_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    classes = [
        name
        for name in E.__all__
        if isinstance(getattr(E, name), type) and issubclass(getattr(E, name), E.AzmemError)
    ]
    missing = [name for name in classes if not re.search(rf"[`.]{name}`", text)]
    assert missing == []


def test_a_principal_without_a_role_is_an_authentication_error_with_the_role_to_grant(
    make_llm: Factory,
) -> None:
    emu = make_llm.emu
    token = emu.issue_token(3600, authorized=False)
    llm = make_llm(chat=settings(emu, api_key=None, credential=lambda: token))
    with pytest.raises(E.AuthenticationError) as info:
        llm.generate("hi")
    assert "Cognitive Services OpenAI User" in (info.value.suggestion or "")
    assert info.value.status_code == 401
    assert len(chat_requests(emu)) == 1, "not retried"
    assert token not in str(info.value)


def test_resource_not_found_names_endpoint_api_version_and_mode(make_llm: Factory) -> None:
    """A 404 without DeploymentNotFound (the path is wrong, e.g. a base URL with an extra segment)."""
    emu = make_llm.emu
    llm = make_llm(chat=settings(emu, endpoint=f"{emu.endpoint}/extra"))
    with pytest.raises(E.DeploymentNotFoundError) as info:
        llm.generate("hi")
    suggestion = info.value.suggestion or ""
    assert f"{emu.endpoint}/extra" in suggestion
    assert "api_version" in suggestion
    assert "api_mode" in suggestion
    assert info.value.error_code == "404"
    assert [(r.path, r.status) for r in emu.requests] == [
        ("/extra/openai/deployments/gpt-4o/chat/completions", 404)
    ], "not retried"
