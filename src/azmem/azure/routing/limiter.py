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
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from azmem.config import default_limiter_path

__all__ = [
    "Grant",
    "Ledger",
    "MemoryLedger",
    "SQLiteLedger",
    "WindowView",
    "admission_delay",
]


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
    entries: Iterable[Entry],
    *,
    now: float,
    window: float,
    tokens: int,
    tpm: int | None,
    rpm: int | None,
    count: int = 1,
    used: tuple[int, int] | None = None,
) -> float:
    """Seconds until ``count`` requests of ``tokens`` each fit the window (0.0: they fit now).

    ``entries`` are the grants still inside the window, oldest first; it is only read as far
    as needed, so a backend can pass a cursor. ``used`` (tokens, requests in the window) saves
    a pass when the caller already summed them. A request larger than the whole TPM quota fits
    only into an empty window (the service would count it anyway; never admitting it would
    hang the caller).
    """
    live: Iterable[Entry]
    if used is None:
        live = [e for e in entries if e.t > now - window]
        used_tokens = sum(e.tokens for e in live)
        used_requests = sum(e.requests for e in live)
    else:
        live = entries
        used_tokens, used_requests = used
    need = tokens * count
    excess_tokens = 0 if tpm is None else (used_tokens if tokens > tpm else used_tokens + need - tpm)
    excess_requests = 0 if rpm is None else used_requests + count - rpm
    if excess_tokens <= 0 and excess_requests <= 0:
        return 0.0
    freed_tokens = freed_requests = 0
    for entry in live:
        freed_tokens += entry.tokens
        freed_requests += entry.requests
        if freed_tokens >= excess_tokens and freed_requests >= excess_requests:
            return max(0.0, entry.t + window - now)
    return window  # more than the window holds; a safe bound


@dataclass(frozen=True)
class WindowView:
    """A deployment's window as the router plans waits with it: totals and the oldest grants."""

    used_tokens: int
    used_requests: int
    oldest: list[Entry]


class Ledger(Protocol):
    window: float
    """Seconds a grant counts: the service's window plus the safety margin."""

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

    def used_many(self, keys: Sequence[str], *, now: float) -> dict[str, tuple[int, int]]:
        """:meth:`used` for several deployments in one read (the router ranks a whole tier)."""
        ...

    def record_external(self, key: str, tokens: int, requests: int, *, now: float) -> None:
        """Usage the service reports that we did not send (other machines on the same quota)."""
        ...

    def view(self, key: str, *, now: float, limit: int) -> WindowView:
        """Totals of the window and its ``limit`` oldest grants, for planning waits."""
        ...


class MemoryLedger:
    """One process's ledger; the default in tests and when SQLite is turned off.

    Grants are kept in arrival order (the clock is monotonic) with running totals, so an
    admission costs the expired grants it drops, not a pass over the whole window.
    """

    def __init__(self, window: float = 60.0, margin: float = 1.0) -> None:
        self.window = window + margin
        self._books: dict[str, dict[int, Entry]] = {}
        self._totals: dict[str, list[int]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def _live(self, key: str, now: float) -> tuple[dict[int, Entry], list[int]]:
        book = self._books.setdefault(key, {})
        totals = self._totals.setdefault(key, [0, 0])
        while book:
            gid, first = next(iter(book.items()))
            if first.t > now - self.window and first.t <= now + 1.0:
                break
            del book[gid]
            totals[0] -= first.tokens
            totals[1] -= first.requests
        return book, totals

    def _add(self, key: str, entry: Entry) -> int:
        gid = next(self._ids)
        self._books[key][gid] = entry
        totals = self._totals[key]
        totals[0] += entry.tokens
        totals[1] += entry.requests
        return gid

    def acquire(
        self, key: str, tokens: int, *, tpm: int | None, rpm: int | None, now: float
    ) -> Grant | float:
        with self._lock:
            book, totals = self._live(key, now)
            delay = admission_delay(
                iter(book.values()),
                now=now,
                window=self.window,
                tokens=tokens,
                tpm=tpm,
                rpm=rpm,
                used=(totals[0], totals[1]),
            )
            if delay > 0:
                return delay
            return Grant(key, self._add(key, Entry(now, tokens, 1)), tokens)

    def settle(self, grant: Grant, tokens: int) -> None:
        with self._lock:
            entry = self._books.get(grant.key, {}).get(grant.id)
            if entry is not None:
                self._books[grant.key][grant.id] = Entry(entry.t, tokens, entry.requests)
                self._totals[grant.key][0] += tokens - entry.tokens

    def release(self, grant: Grant) -> None:
        with self._lock:
            entry = self._books.get(grant.key, {}).pop(grant.id, None)
            if entry is not None:
                self._totals[grant.key][0] -= entry.tokens
                self._totals[grant.key][1] -= entry.requests

    def used(self, key: str, *, now: float) -> tuple[int, int]:
        with self._lock:
            _, totals = self._live(key, now)
            return totals[0], totals[1]

    def used_many(self, keys: Sequence[str], *, now: float) -> dict[str, tuple[int, int]]:
        return {key: self.used(key, now=now) for key in keys}

    def record_external(self, key: str, tokens: int, requests: int, *, now: float) -> None:
        if tokens <= 0 and requests <= 0:
            return
        with self._lock:
            self._live(key, now)
            self._add(key, Entry(now, max(0, tokens), max(0, requests)))

    def view(self, key: str, *, now: float, limit: int) -> WindowView:
        with self._lock:
            book, totals = self._live(key, now)
            return WindowView(totals[0], totals[1], list(itertools.islice(book.values(), limit)))


_SCHEMA = """
CREATE TABLE IF NOT EXISTS grants (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    t REAL NOT NULL,
    tokens INTEGER NOT NULL,
    requests INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS grants_key_t ON grants (key, t);
CREATE TABLE IF NOT EXISTS totals (
    key TEXT PRIMARY KEY,
    tokens INTEGER NOT NULL,
    requests INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS grants_ai AFTER INSERT ON grants BEGIN
    INSERT INTO totals (key, tokens, requests) VALUES (new.key, new.tokens, new.requests)
    ON CONFLICT (key) DO UPDATE
        SET tokens = tokens + excluded.tokens, requests = requests + excluded.requests;
END;
CREATE TRIGGER IF NOT EXISTS grants_ad AFTER DELETE ON grants BEGIN
    UPDATE totals SET tokens = tokens - old.tokens, requests = requests - old.requests WHERE key = old.key;
END;
CREATE TRIGGER IF NOT EXISTS grants_au AFTER UPDATE OF tokens ON grants BEGIN
    UPDATE totals SET tokens = tokens + new.tokens - old.tokens WHERE key = new.key;
END;
"""


class SQLiteLedger:
    """The ledger shared by every process on the machine using the same file.

    Timestamps come from the injected clock, which by default is ``time.monotonic`` (system
    wide). Entries stamped in the future (a file surviving a reboot) are dropped as stale.
    Running totals per deployment are kept by triggers in the same transactions as the
    grants, so reading a window's use costs one row, not a pass over a minute of traffic.
    """

    def __init__(self, path: str | Path | None = None, window: float = 60.0, margin: float = 1.0) -> None:
        self.path = Path(path) if path is not None else default_limiter_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.window = window + margin
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)  # IF NOT EXISTS throughout: safe when processes race

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _prune(self, key: str, now: float) -> None:
        self._db.execute(
            "DELETE FROM grants WHERE key = ? AND (t <= ? OR t > ?)", (key, now - self.window, now + 1.0)
        )

    def _totals(self, key: str) -> tuple[int, int]:
        row = self._db.execute("SELECT tokens, requests FROM totals WHERE key = ?", (key,)).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def _oldest(self, key: str, limit: int = -1) -> Iterator[Entry]:
        rows = self._db.execute(
            "SELECT t, tokens, requests FROM grants WHERE key = ? ORDER BY t LIMIT ?", (key, limit)
        )
        return (Entry(float(t), int(tok), int(req)) for t, tok, req in rows)

    def acquire(
        self, key: str, tokens: int, *, tpm: int | None, rpm: int | None, now: float
    ) -> Grant | float:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._prune(key, now)
                used = self._totals(key)
                delay = admission_delay(
                    self._oldest(key), now=now, window=self.window, tokens=tokens, tpm=tpm, rpm=rpm, used=used
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

    def view(self, key: str, *, now: float, limit: int) -> WindowView:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._prune(key, now)
                used = self._totals(key)
                oldest = list(self._oldest(key, limit))
            finally:
                self._db.execute("COMMIT")
            return WindowView(used[0], used[1], oldest)

    def settle(self, grant: Grant, tokens: int) -> None:
        with self._lock:
            self._db.execute("UPDATE grants SET tokens = ? WHERE id = ?", (tokens, grant.id))

    def release(self, grant: Grant) -> None:
        with self._lock:
            self._db.execute("DELETE FROM grants WHERE id = ?", (grant.id,))

    def used(self, key: str, *, now: float) -> tuple[int, int]:
        return self.used_many([key], now=now)[key]

    def used_many(self, keys: Sequence[str], *, now: float) -> dict[str, tuple[int, int]]:
        """Running totals minus what has left the window since the last admission pruned it.

        Read-only (no write lock); the expired rows are the oldest few, found by the index.
        """
        out = dict.fromkeys(keys, (0, 0))
        if not keys:
            return out
        marks = ",".join("?" * len(keys))
        with self._lock:
            totals = self._db.execute(
                f"SELECT key, tokens, requests FROM totals WHERE key IN ({marks})", tuple(keys)
            ).fetchall()
            stale = self._db.execute(
                f"SELECT key, SUM(tokens), SUM(requests) FROM grants WHERE key IN ({marks}) AND t <= ? "
                "GROUP BY key",
                (*keys, now - self.window),
            ).fetchall()
        gone = {str(k): (int(t), int(r)) for k, t, r in stale}
        for key, tokens, requests in totals:
            minus = gone.get(str(key), (0, 0))
            out[str(key)] = (int(tokens) - minus[0], int(requests) - minus[1])
        return out

    def record_external(self, key: str, tokens: int, requests: int, *, now: float) -> None:
        if tokens <= 0 and requests <= 0:
            return
        with self._lock:
            self._db.execute(
                "INSERT INTO grants (key, t, tokens, requests) VALUES (?, ?, ?, ?)",
                (key, now, max(0, tokens), max(0, requests)),
            )
