"""placeholder"""

from __future__ import annotations


def emulator() -> None:
    """Coming soon."""
