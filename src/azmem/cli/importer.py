"""placeholder"""

from __future__ import annotations


def import_() -> None:
    """Coming soon."""
