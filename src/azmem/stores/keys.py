"""API keys of azmem's server: how a key is made and checked, and what a stored one says.

A key reads ``azm_<id>_<secret>``: ``id`` (12 hex characters) names its row, ``secret``
is 32 random bytes (url-safe base64). The store keeps only ``sha256(key)``: a key is
shown once, at creation, and cannot be read back from the database. A check looks the
row up by ``id`` and compares hashes with :func:`hmac.compare_digest`, so neither the
database nor the time a comparison takes reveals a usable key. The secret has 256 bits
of entropy, so a fast hash is the right one: slow password hashes (bcrypt, argon2)
protect guessable secrets and would only slow down every request.

A key is *bound*: to user ids, agent ids and/or run ids (a request may only reach
those scopes), read-only or not, and optionally to a rate (requests per minute). A key
bound to nothing reaches every scope; ``azmem keys create`` asks for that explicitly.

`KeyRing` holds the rules; a backend only stores rows (`KeyTable`): SQLite in
``stores/sqlite/keys.py``, PostgreSQL in ``stores/postgres/keys.py``.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from azmem.errors import InvalidInputError
from azmem.stores.models import utcnow
from azmem.stores.validate import check_optional_id

__all__ = ["KEY_PREFIX", "ApiKey", "KeyRing", "KeyRow", "KeyTable", "NewKey", "hash_key", "parse_key"]

KEY_PREFIX = "azm_"
_KEY = re.compile(r"^azm_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_RATE_LIMIT = 1_000_000


class ApiKey(BaseModel):
    """A stored key as `azmem keys list` shows it: everything but the secret."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    user_ids: tuple[str, ...] = ()
    agent_ids: tuple[str, ...] = ()
    run_ids: tuple[str, ...] = ()
    read_only: bool = False
    rate_limit: int | None = None
    """Requests per minute this key may send (None: no limit of its own)."""
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def unbound(self) -> bool:
        """Bound to no user, agent or run: the key reaches every scope."""
        return not (self.user_ids or self.agent_ids or self.run_ids)


class NewKey(BaseModel):
    """What `KeyRing.create` returns: the stored key and its secret, which is never shown again."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: ApiKey
    secret: str


class KeyRow(BaseModel):
    """A row as a backend stores it: the key's fields and the hash of the secret."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: ApiKey
    key_hash: str


class KeyTable(Protocol):
    """What a backend provides: rows in, rows out. The rules are `KeyRing`'s."""

    def insert(self, row: KeyRow) -> None:
        """Store a new row; InvalidInputError ``key_exists`` when an active key has the name."""
        ...

    def by_id(self, key_id: str) -> KeyRow | None:
        """The row with this id (revoked or not), None when there is none (or no table yet)."""
        ...

    def all(self) -> builtins.list[ApiKey]:
        """Every key, revoked ones included, oldest first ([] when there is no table yet)."""
        ...

    def revoke(self, name: str, when: datetime) -> ApiKey | None:
        """Mark the active key of that name revoked; None when there is no active key of that name."""
        ...


def hash_key(key: str) -> str:
    """The stored form of a key: hex sha256 of its UTF-8 bytes."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_key(key: str) -> str | None:
    """The id part of a well-formed key, None for anything else (no lookup is worth making)."""
    found = _KEY.match(key)
    return found.group(1) if found else None


def _ids(values: Iterable[str], what: str) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        text = check_optional_id(value, what)
        assert text is not None
        if text != text.strip():
            raise InvalidInputError(f"{what} {text!r} has leading or trailing whitespace")
        if text not in out:
            out.append(text)
    return tuple(out)


def _name(value: object) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise InvalidInputError(
            f"key name {str(value)[:70]!r} is not valid",
            error_code="bad_key_name",
            suggestion="Use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.",
        )
    return value


class KeyRing:
    """Create, check, list and revoke API keys over one backend's `KeyTable`.

    ``on_close`` releases what the ring was opened with (a store opened only for its
    keys); a ring borrowed from a store (``store.keys``) closes nothing.
    """

    def __init__(self, table: KeyTable, *, on_close: Callable[[], None] | None = None) -> None:
        self.table = table
        self._on_close = on_close

    def create(
        self,
        name: str,
        *,
        user_ids: Iterable[str] = (),
        agent_ids: Iterable[str] = (),
        run_ids: Iterable[str] = (),
        read_only: bool = False,
        rate_limit: int | None = None,
    ) -> NewKey:
        """A new key, bound as given; its secret is in the result and nowhere else."""
        if rate_limit is not None and (
            isinstance(rate_limit, bool)
            or not isinstance(rate_limit, int)
            or not 1 <= rate_limit <= MAX_RATE_LIMIT
        ):
            raise InvalidInputError(f"rate_limit must be 1..{MAX_RATE_LIMIT:,} requests per minute")
        key_id = secrets.token_hex(6)
        secret = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        assert parse_key(secret) == key_id
        key = ApiKey(
            id=key_id,
            name=_name(name),
            user_ids=_ids(user_ids, "user_id"),
            agent_ids=_ids(agent_ids, "agent_id"),
            run_ids=_ids(run_ids, "run_id"),
            read_only=bool(read_only),
            rate_limit=rate_limit,
            created_at=utcnow(),
        )
        self.table.insert(KeyRow(key=key, key_hash=hash_key(secret)))
        return NewKey(key=key, secret=secret)

    def verify(self, secret: str) -> ApiKey | None:
        """The active key this secret is, None for a malformed, unknown or revoked one."""
        key_id = parse_key(secret)
        if key_id is None:
            return None
        row = self.table.by_id(key_id)
        if row is None or row.key.revoked_at is not None:
            return None
        return row.key if hmac.compare_digest(row.key_hash, hash_key(secret)) else None

    def list(self, *, include_revoked: bool = False) -> builtins.list[ApiKey]:
        keys = self.table.all()
        return keys if include_revoked else [k for k in keys if k.revoked_at is None]

    def revoke(self, name: str) -> ApiKey:
        """Revoke the active key of that name (a server stops accepting it within its cache time)."""
        revoked = self.table.revoke(_name(name), utcnow())
        if revoked is None:
            raise InvalidInputError(
                f"There is no active API key named {name!r}.",
                error_code="key_not_found",
                suggestion="`azmem keys list` shows the keys of this store.",
            )
        return revoked

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()
