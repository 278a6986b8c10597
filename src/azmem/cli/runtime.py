"""Building the library objects a command needs from the CLI's options.

One place decides how ``--config`` and ``--store`` reach the library, so every command
opens the same store the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from azmem.cli.options import CliState
from azmem.cli.output import InputFileError

if TYPE_CHECKING:
    from azmem.memory import Memory

__all__ = ["open_memory", "store_path"]


def store_path(st: CliState) -> Path:
    """The store file the command would open: ``--store``, else the settings' ``store_path``.

    The settings are loaded either way, so a bad config is reported before a missing store.
    """
    from azmem.azure.settings import AzmemSettings

    overrides: dict[str, Any] = {} if st.store is None else {"store": {"path": st.store}}
    return AzmemSettings.load(st.config, **overrides).store_path


@contextmanager
def open_memory(st: CliState, *, must_exist: bool = False, **overrides: Any) -> Iterator[Memory]:
    """A ``Memory`` on the chosen config and store, closed when the command is done.

    ``must_exist``: the command only reads, so a missing store is a mistyped path, not
    something to create (with its parent directories) and report as empty.

    Imported here, not at module level, so that ``azmem --help`` and ``azmem emulator``
    never load the embedding model's dependencies.
    """
    from azmem.memory import Memory

    if must_exist:
        path = store_path(st)
        if not path.is_file():
            raise InputFileError(
                f"No store at {path}.",
                suggestion="Check --store (or store.path in the config / AZMEM_HOME); "
                "`azmem add` or `azmem import` creates a store.",
            )
    if st.store is not None:
        overrides["store_path"] = st.store
    with Memory.from_config(st.config, **overrides) as memory:
        yield memory
