"""What `azmem doctor` and the crash tests ask of a SQLite store: is the file consistent?

Each check names a way the file can go wrong that the others would miss: damaged pages
(`integrity_check`), an FTS5 index out of step with the rows, vectors of another size
than the bound embedder's, and memories whose ADD event is missing from history.
"""

from __future__ import annotations

import sqlite3

from azmem.stores.sqlite import binding

__all__ = ["problems"]


def problems(conn: sqlite3.Connection) -> list[str]:
    """Consistency problems found (empty when healthy)."""
    found: list[str] = []
    result = [r[0] for r in conn.execute("PRAGMA integrity_check")]
    if result != ["ok"]:
        found.extend(f"integrity_check: {r}" for r in result)
    try:
        conn.execute("INSERT INTO memories_fts (memories_fts, rank) VALUES ('integrity-check', 1)")
    except sqlite3.DatabaseError as exc:
        found.append(f"full-text index: {exc}")
    stored = binding.recorded(conn)
    if stored is not None:
        bad = conn.execute(
            "SELECT count(*) FROM memories WHERE length(vector) != ?", (stored[1] * 4,)
        ).fetchone()[0]
        if bad:
            found.append(f"{bad} memories have vectors of the wrong size")
    orphans = conn.execute(
        "SELECT count(*) FROM memories m WHERE NOT EXISTS "
        "(SELECT 1 FROM history h WHERE h.memory_id = m.id AND h.event = 'ADD')"
    ).fetchone()[0]
    if orphans:
        found.append(f"{orphans} memories have no ADD history event")
    return found
