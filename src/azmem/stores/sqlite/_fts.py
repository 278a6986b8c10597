"""Turn the query's words into a safe FTS5 MATCH expression.

The user's text is never parsed as FTS5 syntax: quotes, `AND`/`OR`/`NOT`/`NEAR`,
`*`, `^`, column filters and parentheses would either raise or change the meaning.
Instead the words (``azmem.stores.terms``) are each quoted as a plain string and ORed
so that BM25 ranks memories by how many (and how rare) query words they contain.
"""

from __future__ import annotations


def or_expression(terms: list[str]) -> str:
    """Each term as a quoted FTS5 string (never syntax), ORed."""
    return " OR ".join(f'"{t}"' for t in terms)
