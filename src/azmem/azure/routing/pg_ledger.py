"""The limiter's ledger in PostgreSQL: N app instances on N machines share one TPM/RPM budget.

Each admission runs in one transaction holding a per-deployment advisory lock, so two
instances never both admit into the last slot of a window. Time is the database
server's clock (``clock_timestamp()``), the one clock every instance shares; to the
router, which plans with its own clock, grant times are handed back shifted onto it.
Needs ``pip install 'azmem[postgres]'``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from azmem.azure.pg import PgSession
from azmem.azure.routing.limiter import Entry, Grant, WindowView, admission_delay

__all__ = ["PostgresLedger"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS azmem_limiter_grants ("
    " id BIGSERIAL PRIMARY KEY, key TEXT NOT NULL, t DOUBLE PRECISION NOT NULL,"
    " tokens BIGINT NOT NULL, requests INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS azmem_limiter_grants_key_t ON azmem_limiter_grants (key, t)",
)
_SCHEMA_LOCK = 0x617A6D656D4C  # "azmemL": serialises the CREATE ... IF NOT EXISTS race
_NOW = "SELECT extract(epoch FROM clock_timestamp())::float8"


class PostgresLedger:
    """A :class:`~azmem.azure.routing.limiter.Ledger` whose grants live in one PostgreSQL table."""

    def __init__(
        self,
        url: str,
        window: float = 60.0,
        margin: float = 1.0,
        *,
        password: Callable[[], str] | None = None,
    ) -> None:
        self.url = url
        self.window = window + margin
        self._db = PgSession(url, what="the limiter's database", password=password)
        self._tx = self._db.tx
        with self._tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in _SCHEMA:
                cur.execute(statement)

    def close(self) -> None:
        self._db.close()

    # -- the Ledger protocol --------------------------------------------------------------------
    def acquire(
        self, key: str, tokens: int, *, tpm: int | None, rpm: int | None, now: float
    ) -> Grant | float:
        with self._tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("azmem-limiter:" + key,))
            server_now = self._prune(cur, key)
            used, oldest = self._window(cur, key, server_now, now, limit=None)
            delay = admission_delay(
                iter(oldest), now=now, window=self.window, tokens=tokens, tpm=tpm, rpm=rpm, used=used
            )
            if delay > 0:
                return delay
            cur.execute(
                "INSERT INTO azmem_limiter_grants (key, t, tokens, requests) "
                "VALUES (%s, %s, %s, 1) RETURNING id",
                (key, server_now, tokens),
            )
            return Grant(key, int(cur.fetchone()[0]), tokens)

    def _prune(self, cur: Any, key: str) -> float:
        cur.execute(_NOW)
        server_now = float(cur.fetchone()[0])
        cur.execute(
            "DELETE FROM azmem_limiter_grants WHERE key = %s AND t <= %s", (key, server_now - self.window)
        )
        return server_now

    def _window(
        self, cur: Any, key: str, server_now: float, now: float, *, limit: int | None
    ) -> tuple[tuple[int, int], list[Entry]]:
        cur.execute(
            "SELECT t, tokens, requests FROM azmem_limiter_grants WHERE key = %s AND t > %s ORDER BY t",
            (key, server_now - self.window),
        )
        shift = now - server_now
        entries = [Entry(float(t) + shift, int(tok), int(req)) for t, tok, req in cur.fetchall()]
        used = (sum(e.tokens for e in entries), sum(e.requests for e in entries))
        return used, entries if limit is None else entries[:limit]

    def settle(self, grant: Grant, tokens: int) -> None:
        with self._tx() as cur:
            cur.execute("UPDATE azmem_limiter_grants SET tokens = %s WHERE id = %s", (tokens, grant.id))

    def release(self, grant: Grant) -> None:
        with self._tx() as cur:
            cur.execute("DELETE FROM azmem_limiter_grants WHERE id = %s", (grant.id,))

    def used(self, key: str, *, now: float) -> tuple[int, int]:
        return self.used_many([key], now=now)[key]

    def used_many(self, keys: Sequence[str], *, now: float) -> dict[str, tuple[int, int]]:
        out = dict.fromkeys(keys, (0, 0))
        if not keys:
            return out
        with self._tx() as cur:
            cur.execute(
                "SELECT key, sum(tokens), sum(requests) FROM azmem_limiter_grants "
                "WHERE key = ANY(%s) AND t > extract(epoch FROM clock_timestamp())::float8 - %s GROUP BY key",
                (list(keys), self.window),
            )
            for key, tok, req in cur.fetchall():
                out[str(key)] = (int(tok), int(req))
        return out

    def record_external(self, key: str, tokens: int, requests: int, *, now: float) -> None:
        if tokens <= 0 and requests <= 0:
            return
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO azmem_limiter_grants (key, t, tokens, requests) "
                "VALUES (%s, extract(epoch FROM clock_timestamp())::float8, %s, %s)",
                (key, max(0, tokens), max(0, requests)),
            )

    def view(self, key: str, *, now: float, limit: int) -> WindowView:
        with self._tx() as cur:
            server_now = self._prune(cur, key)
            used, oldest = self._window(cur, key, server_now, now, limit=limit)
        return WindowView(used[0], used[1], oldest)
