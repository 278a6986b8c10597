"""The public surface of ``azmem.azure``: sorted, complete, resolvable, and lazy."""

from __future__ import annotations

import subprocess
import sys

import pytest

import azmem.azure as azure


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert azure.__all__ == sorted(azure.__all__)
    for name in azure.__all__:
        assert getattr(azure, name) is not None, name


def test_exports_are_the_defining_modules_objects() -> None:
    from azmem.azure.llm import LLMClient
    from azmem.errors import RateLimitError

    assert azure.LLMClient is LLMClient
    assert azure.RateLimitError is RateLimitError


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        _ = azure.NoSuchThing  # type: ignore[attr-defined]


def test_the_error_tree_imports_without_the_openai_sdk() -> None:
    code = "import sys, azmem.azure.errors; print('openai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
