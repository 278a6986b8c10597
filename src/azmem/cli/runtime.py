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
    from azmem.azure.settings import AzmemSettings
    from azmem.memory import Memory

__all__ = ["load_settings", "open_memory", "store_overrides", "store_path", "store_url"]


def store_overrides(st: CliState) -> dict[str, Any]:
    """``--store`` as settings: it beats AZMEM_STORE and the config file."""
    return {} if st.store is None else {"store": {"url": st.store}}


def load_settings(st: CliState) -> AzmemSettings:
    from azmem.azure.settings import AzmemSettings

    return AzmemSettings.load(st.config, **store_overrides(st))


def store_url(st: CliState) -> str:
    """The store URL the command would open: ``--store``, else AZMEM_STORE / the config's store.

    The settings are loaded either way, so a bad config is reported before a missing store.
    """
    return load_settings(st).store_url


def store_path(st: CliState) -> Path | None:
    """The SQLite file the command would open, None for a PostgreSQL store."""
    from azmem.config import sqlite_path

    return sqlite_path(store_url(st))


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
        if path is not None and not path.is_file():
            raise InputFileError(
                f"No store at {path}.",
                suggestion="Check --store (or store.path in the config / AZMEM_HOME); "
                "`azmem add` or `azmem import` creates a store.",
            )
    if st.store is not None:
        overrides["store_url"] = st.store
    with Memory.from_config(st.config, **overrides) as memory:
        yield memory
