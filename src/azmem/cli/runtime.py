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
def open_memory(st: CliState, **overrides: Any) -> Iterator[Memory]:
    """A ``Memory`` on the chosen config and store, closed when the command is done.

    Imported here, not at module level, so that ``azmem --help`` and ``azmem emulator``
    never load the embedding model's dependencies.
    """
    from azmem.memory import Memory

    if st.store is not None:
        overrides["store_path"] = st.store
    with Memory.from_config(st.config, **overrides) as memory:
        yield memory
