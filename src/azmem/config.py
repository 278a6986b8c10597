"""App-wide settings every layer shares: where azmem keeps its files, which store, the cache.

The ground floor, beside :mod:`azmem.errors`: the store, the local embedder and the
Azure layer all read these, so they live below all of them. The Azure-specific
settings (deployments, auth, retries) build on this in ``azmem.azure.settings``.

Store URLs::

    sqlite:///relative/or/absolute.db     sqlite:////abs/path.db  (SQLAlchemy spelling)
    sqlite:///path.db?mode=ro             open read-only (a backup, a replica, a read-only mount)
    postgresql://user@host:5432/db        PostgreSQL + pgvector (``pip install 'azmem[postgres]'``)

A bare path is a SQLite file.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from azmem.errors import ConfigurationError

__all__ = [
    "STORE_ENV",
    "AuditSettings",
    "CacheSettings",
    "StoreSettings",
    "TelemetrySettings",
    "create_private_file",
    "default_home",
    "default_limiter_path",
    "expand_user",
    "read_config_file",
    "sqlite_path",
    "sqlite_url",
]

STORE_ENV = "AZMEM_STORE"
"""The variable that names the store (a URL or a SQLite path), above the config file."""


def default_home() -> Path:
    """``AZMEM_HOME`` if set, else the platform's user data directory for azmem."""
    env = os.environ.get("AZMEM_HOME")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("azmem", appauthor=False))


def default_limiter_path() -> Path:
    """The client-side rate limiter's ledger (shared by the processes of one machine)."""
    return default_home() / "limiter.sqlite3"


def expand_user(value: Path | None) -> Path | None:
    """``~/x`` -> ``/home/me/x``: a path from a config file or a variable is never shell-expanded."""
    return None if value is None else value.expanduser()


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL (or a bare path), None for another backend."""
    if "://" not in url:
        return Path(url).expanduser()
    scheme, _, rest = url.partition("://")
    if scheme != "sqlite":
        return None
    path = rest.split("?", 1)[0]
    return Path(path[1:] if path.startswith("/") else path).expanduser()


def sqlite_url(path: Path | str, *, read_only: bool = False) -> str:
    """The store URL of a SQLite file."""
    url = f"sqlite:///{Path(path).expanduser()}"
    return url + "?mode=ro" if read_only else url


class CacheSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    """Off by default: a cached answer is surprising unless asked for."""
    path: Path | None = None
    """Defaults to ``<home>/cache.db``."""
    url: str | None = Field(default=None, repr=False)
    """A PostgreSQL URL to share the cache between app instances, or ``store`` for the
    PostgreSQL store's own database; unset: the SQLite file at ``path``."""
    ttl_seconds: float | None = Field(default=7 * 24 * 3600, gt=0)
    cache_sampled: bool = False
    """Also cache sampled chat calls (temperature unset or above 0, reasoning models). Off: a
    sampled call is asked afresh each time, since a stored answer would pass one draw off as
    the answer; on: repeated prompts are served one stored draw (rehearsals, tests)."""

    @field_validator("path")
    @classmethod
    def _expand_path(cls, v: Path | None) -> Path | None:
        return expand_user(v)


class AuditSettings(BaseModel):
    """The audit trail every store keeps (docs/compliance.md): what goes in it, and for how long.

    Read by the memory engine from the settings' ``audit`` section when it has one, else
    from ``AZMEM_AUDIT__RETENTION_DAYS`` / ``AZMEM_AUDIT__INCLUDE_CONTENT`` /
    ``AZMEM_AUDIT__EMBEDDINGS`` (:meth:`from_env`).
    """

    model_config = ConfigDict(extra="forbid")

    retention_days: float | None = Field(default=None, gt=0)
    """Records older than this are pruned (an anchor keeps the rest verifiable); None keeps all."""
    include_content: bool = False
    """Keep the memory text of each change in its record. Off: records say who, what and which
    ids, never what a memory says. Erasure (`forget`) blanks kept content of the erased scope."""
    embeddings: bool = True
    """Record Azure OpenAI embedding calls too (with chat calls, which are always recorded)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AuditSettings:
        env = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        for key in ("retention_days", "include_content", "embeddings"):
            value = env.get(f"AZMEM_AUDIT__{key.upper()}")
            if value is not None and value.strip():
                raw[key] = value.strip()
        try:
            return cls.model_validate(raw)
        except ValueError as exc:
            raise ConfigurationError(
                f"Bad audit setting in the environment: {exc}",
                error_code="invalid_setting",
                suggestion="AZMEM_AUDIT__RETENTION_DAYS is a number of days (> 0); "
                "AZMEM_AUDIT__INCLUDE_CONTENT and AZMEM_AUDIT__EMBEDDINGS are true or false.",
            ) from None


class TelemetrySettings(BaseModel):
    """Where azmem sends its spans, metrics and logs (``pip install 'azmem[azure-monitor]'``)."""

    model_config = ConfigDict(extra="forbid")

    azure_monitor: SecretStr | None = None
    """An Application Insights connection string; ``APPLICATIONINSIGHTS_CONNECTION_STRING`` wins.
    Secret-typed: its InstrumentationKey stays out of reprs and dumps."""
    live_metrics: bool = False
    """Azure Monitor live metrics: a second, always-open connection to Microsoft, so off by default."""


class StoreSettings(BaseModel):
    """Which store: ``url`` (any backend), or ``path`` (a SQLite file, the older spelling).

    A bare string where a section is expected (``store: postgresql://...`` in a config
    file, ``AZMEM_STORE=...``) is the URL.
    """

    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    """``sqlite:///...`` or ``postgresql://...``; defaults to ``sqlite:///<home>/memory.db``."""
    path: Path | None = None
    """A SQLite file; the same as ``url: sqlite:///<path>``. A ``url`` from any source wins, so
    ``AZMEM_STORE`` or ``--store`` overrides a config file's ``store.path``."""
    read_only: bool = False
    """Open without writing anything (searches of a backup or a replica)."""
    pool_size: int = Field(default=10, gt=0)
    """Connections per process for a PostgreSQL store."""
    auth: Literal["auto", "password", "entra"] = "auto"
    """PostgreSQL sign-in: "entra" uses a Microsoft Entra ID access token as the password;
    "auto" does so for an Azure Database for PostgreSQL host whose URL has no password."""

    @model_validator(mode="before")
    @classmethod
    def _bare_url(cls, data: Any) -> Any:
        if isinstance(data, str | os.PathLike):
            return {"url": os.fspath(data)}
        return data

    @field_validator("path")
    @classmethod
    def _expand_path(cls, v: Path | None) -> Path | None:
        return expand_user(v)

    def resolved_url(self, home: Path) -> str:
        """The URL to open: ``url``, else ``path``, else the SQLite file in ``home``."""
        if self.url:
            url = self.url if "://" in self.url else sqlite_url(self.url)
        else:
            url = sqlite_url(self.path or home / "memory.db")
        if self.read_only and "mode=ro" not in url:
            url += ("&" if "?" in url else "?") + "mode=ro"
        return url


def read_config_file(path: Path) -> dict[str, Any]:
    """A YAML or TOML config file as a dict (``.toml`` by suffix, else YAML)."""
    path = path.expanduser()
    if not path.is_file():
        raise ConfigurationError(
            f"Config file {path} does not exist.",
            error_code="missing_config_file",
            suggestion="Fix the path passed as config= or in AZMEM_CONFIG.",
        )
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            data: Any = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
    except Exception as exc:
        raise ConfigurationError(
            f"Could not parse config file {path}: {exc}", error_code="bad_config_file"
        ) from exc
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"Config file {path} must hold a mapping at the top level.")
    return dict(data)


def create_private_file(path: Path) -> None:
    """Create a database file owner-only (0600) before SQLite opens it.

    Memories and cached answers hold users' conversations. SQLite gives its -wal and -shm
    files the database file's permissions, so they are owner-only too. An existing file
    is left as is.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)
