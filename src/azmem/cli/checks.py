"""The checks ``azmem doctor`` and ``azmem status`` report: one line each, with its fix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Check", "Report", "Status"]

Status = Literal["ok", "warn", "fail", "skip"]


@dataclass
class Check:
    """One line of the report: what was checked, how it went, and the fix when it failed."""

    name: str
    status: Status
    detail: str
    fix: str | None = None
    role: str | None = None


class Report:
    """Collects checks, dropping repeats (two roles on one endpoint check it once)."""

    def __init__(self) -> None:
        self.checks: list[Check] = []
        self._seen: set[tuple[str, ...]] = set()

    def add(self, check: Check, *, key: tuple[str, ...] | None = None) -> None:
        key = (check.name, check.status, *(key or (check.detail,)))
        if key not in self._seen:
            self._seen.add(key)
            self.checks.append(check)
