"""``azmem copy``: the command over real stores (SQLite here; PostgreSQL in tests/stores)."""

from __future__ import annotations

from pathlib import Path

from .conftest import Invoke, json_out


def test_copy_then_search_the_copy(cli: Invoke, store: Path, tmp_path: Path) -> None:
    for text in ("I drink green tea", "My sister lives in Porto", "I am allergic to peanuts"):
        assert cli("add", text, "--user", "alex", "--no-infer").exit_code == 0
    target = tmp_path / "copy.db"
    summary = json_out(cli("copy", str(store), f"sqlite:///{target}", "--json", with_store=False))
    assert summary["memories"] == 3
    assert summary["verified"] is True
    assert summary["inserted"] == 3 + summary["history"]
    hits = json_out(
        cli("search", "peanut allergy", "--user", "alex", "--json", "--store", str(target), with_store=False)
    )
    assert hits["results"][0]["memory"] == "I am allergic to peanuts"
    again = json_out(cli("copy", str(store), str(target), "--json", with_store=False))
    assert again["inserted"] == 0


def test_copy_onto_itself_is_refused(cli: Invoke, store: Path) -> None:
    assert cli("add", "x y z", "--user", "a", "--no-infer").exit_code == 0
    result = cli("copy", str(store), str(store), with_store=False)
    assert result.exit_code == 4
    assert "same store" in result.stderr


def test_copy_from_a_missing_store_fails_cleanly(cli: Invoke, tmp_path: Path) -> None:
    result = cli("copy", str(tmp_path / "nope.db"), str(tmp_path / "b.db"), with_store=False)
    assert result.exit_code == 6
    assert "does not exist" in result.stderr
    assert not (tmp_path / "b.db").exists()
