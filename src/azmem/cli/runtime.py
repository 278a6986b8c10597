"""Building the library objects a command needs from the CLI's options.

One place decides how ``--config`` and ``--store`` reach the library, so every command
opens the same store the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from azmem.cli.options import CliState

if TYPE_CHECKING:
    from azmem.memory import Memory

__all__ = ["open_memory"]


@contextmanager
def open_memory(st: CliState, **_: Any) -> Iterator[Memory]:
    """A ``Memory`` on the chosen config and store, closed when the command is done."""
    from azmem.memory import Memory

    overrides: dict[str, Any] = {}
    if st.store is not None:
        overrides["store_path"] = st.store
    memory = Memory.from_config(st.config, **overrides)  # type: ignore[attr-defined]
    try:
        yield memory
    finally:
        memory.close()
