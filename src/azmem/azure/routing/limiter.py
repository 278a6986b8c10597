"""Client-side rate limiting per deployment: stay under TPM/RPM instead of bouncing off 429s.

Why a ledger and not a classic token bucket: Azure counts tokens and requests over a sliding
one-minute window. A bucket that holds a minute's quota and refills continuously admits up to
*twice* the quota within one sliding minute (a full bucket, then a minute of refill), which
the service answers with 429s. So each admitted request is written down with its time and
token reservation, and a new request is admitted only if the last ``window`` seconds plus it
fit the quota: the same bucket the service keeps, seen from our side. When it does not fit,
the ledger says exactly when it will (the moment enough old entries leave the window), which
is what lets the router wait for the earliest deployment instead of guessing.

Reservations are corrected after the response with the reported usage (:meth:`settle`) and
dropped when the request never counted (:meth:`release`, e.g. after a 429 or a connection
failure). Two backends share the arithmetic: in-memory (one process) and SQLite (all
processes on the machine; each admission is one ``BEGIN IMMEDIATE`` transaction).
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["Grant", "Ledger", "MemoryLedger", "SQLiteLedger", "admission_delay", "default_ledger_path"]


@dataclass(frozen=True)
class Grant:
    key: str
    id: int
    tokens: int


@dataclass(frozen=True)
class Entry:
    t: float
    tokens: int
    requests: int


def admission_delay(
    entries: Iterable[Entry], *, now: float, window: float, tokens: int, tpm: int | None, rpm: int | None
) -> float:
    """Seconds until a request of ``tokens`` fits the window (0.0: it fits now).

    ``entries`` are the grants still inside the window, oldest first. A request larger than
    the whole TPM quota fits only into an empty window (the service would count it anyway;
    never admitting it would hang the caller).
    """
    live = [e for e in entries if e.t > now - window]
    used_tokens = sum(e.tokens for e in live)
    used_requests = sum(e.requests for e in live)
    excess_tokens = 0 if tpm is None else (used_tokens if tokens > tpm else used_tokens + tokens - tpm)
    excess_requests = 0 if rpm is None else used_requests + 1 - rpm
    if excess_tokens <= 0 and excess_requests <= 0:
        return 0.0
    freed_tokens = freed_requests = 0
    for entry in live:
        freed_tokens += entry.tokens
        freed_requests += entry.requests
        if freed_tokens >= excess_tokens and freed_requests >= excess_requests:
            return max(0.0, entry.t + window - now)
    return window  # unreachable with consistent inputs; a safe bound


class Ledger(Protocol):
    def acquire(
        self, key: str, tokens: int, *, tpm: int | None, rpm: int | None, now: float
    ) -> Grant | float:
        """A grant if the request fits now, else the seconds until it will."""
        ...

    def settle(self, grant: Grant, tokens: int) -> None: ...

    def release(self, grant: Grant) -> None: ...

    def used(self, key: str, *, now: float) -> tuple[int, int]:
        """(tokens, requests) counted in the current window."""
        ...

    def record_external(self, key: str, tokens: int, requests: int, *, now: float) -> None:
        """Usage the service reports that we did not send (other machines on the same quota)."""
        ...


class MemoryLedger:
    """One process's ledger; the default in tests and when SQLite is turned off."""

    def __init__(self, window: float = 60.0, margin: float = 1.0) -> None:
        self.window = window + margin
        self._entries: dict[str, dict[int, Entry]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def _live(self, key: str, now: float) -> dict[int, Entry]:
        book = self._entries.setdefault(key, {})
        for gid in [gid for gid, e in book.items() if e.t <= now - self.window or e.t > now + 1.0]:
            del book[gid]
        return book

    def acquire(
        self, key: str, tokens: int, *, tpm: int | None, rpm: int | None, now: float
    ) -> Grant | float:
        with self._lock:
            book = self._live(key, now)
            delay = admission_delay(
                sorted(book.values(), key=lambda e: e.t),
                now=now,
                window=self.window,
                tokens=tokens,
                tpm=tpm,
                rpm=rpm,
            )
            if delay > 0:
                return delay
            gid = next(self._ids)
            book[gid] = Entry(now, tokens, 1)
            return Grant(key, gid, tokens)

    def settle(self, grant: Grant, tokens: int) -> None:
        with self._lock:
            entry = self._entries.get(grant.key, {}).get(grant.id)
            if entry is not None:
                self._entries[grant.key][grant.id] = Entry(entry.t, tokens, entry.requests)

    def release(self, grant: Grant) -> None:
        with self._lock:
            self._entries.get(grant.key, {}).pop(grant.id, None)

    def used(self, key: str, *, now: float) -> tuple[int, int]:
        with self._lock:
            book = self._live(key, now)
            return sum(e.tokens for e in book.values()), sum(e.requests for e in book.values())

    def record_external(self, key: str, tokens: int, requests: int, *, now: float) -> None:
        if tokens <= 0 and requests <= 0:
            return
        with self._lock:
            self._live(key, now)[next(self._ids)] = Entry(now, max(0, tokens), max(0, requests))


def default_ledger_path() -> Path:
    home = os.environ.get("AZMEM_HOME")
    if home:
        return Path(home) / "limiter.sqlite3"
    import platformdirs

    return Path(platformdirs.user_data_dir("azmem")) / "limiter.sqlite3"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS grants (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    t REAL NOT NULL,
    tokens INTEGER NOT NULL,
    requests INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS grants_key_t ON grants (key, t);
"""


class SQLiteLedger:
    """The ledger shared by every process on the machine using the same file.

    Timestamps come from the injected clock, which by default is ``time.monotonic`` (system
    wide). Entries stamped in the future (a file surviving a reboot) are dropped as stale.
    """

    def __init__(self, path: str | Path | None = None, window: float = 60.0, margin: float = 1.0) -> None:
        self.path = Path(path) if path is not None else default_ledger_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.window = window + margin
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _prune(self, key: str, now: float) -> None:
        self._db.execute(
            "DELETE FROM grants WHERE key = ? AND (t <= ? OR t > ?)", (key, now - self.window, now + 1.0)
        )

    def _entries(self, key: str) -> list[Entry]:
        rows = self._db.execute("SELECT t, tokens, requests FROM grants WHERE key = ? ORDER BY t", (key,))
        return [Entry(float(t), int(tok), int(req)) for t, tok, req in rows]

    def acquire(
        self, key: str, tokens: int, *, tpm: int | None, rpm: int | None, now: float
    ) -> Grant | float:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._prune(key, now)
                delay = admission_delay(
                    self._entries(key), now=now, window=self.window, tokens=tokens, tpm=tpm, rpm=rpm
                )
                if delay > 0:
                    self._db.execute("COMMIT")
                    return delay
                cur = self._db.execute(
                    "INSERT INTO grants (key, t, tokens, requests) VALUES (?, ?, ?, 1)", (key, now, tokens)
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return Grant(key, int(cur.lastrowid or 0), tokens)

    def settle(self, grant: Grant, tokens: int) -> None:
        with self._lock:
            self._db.execute("UPDATE grants SET tokens = ? WHERE id = ?", (tokens, grant.id))

    def release(self, grant: Grant) -> None:
        with self._lock:
            self._db.execute("DELETE FROM grants WHERE id = ?", (grant.id,))

    def used(self, key: str, *, now: float) -> tuple[int, int]:
        with self._lock:
            row = self._db.execute(
                "SELECT COALESCE(SUM(tokens), 0), COALESCE(SUM(requests), 0) FROM grants "
                "WHERE key = ? AND t > ? AND t <= ?",
                (key, now - self.window, now + 1.0),
            ).fetchone()
            return int(row[0]), int(row[1])

    def record_external(self, key: str, tokens: int, requests: int, *, now: float) -> None:
        if tokens <= 0 and requests <= 0:
            return
        with self._lock:
            self._db.execute(
                "INSERT INTO grants (key, t, tokens, requests) VALUES (?, ?, ?, ?)",
                (key, now, max(0, tokens), max(0, requests)),
            )
