"""What makes two names the same, or worth asking about: the deterministic half of resolution.

``normalize`` decides identity: case, accents, punctuation and spacing do not count
("Acme Corp." is "acme corp"). ``related`` decides whether two different names are
worth asking the LLM about: every word of the shorter is a prefix of a word of the
longer ("Alex" / "Alexandra Chen", "Chen" / "Alexandra Chen"), or the spellings are
close ("Jon Smith" / "John Smith"). Neither needs the model, which is why most
episodes cost one call.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from difflib import SequenceMatcher

__all__ = ["name_keys", "normalize", "related", "spelling_similarity", "tokens"]

_NON_WORD = re.compile(r"[^\w]+")

#: Below this a prefix word is too short to suggest anything ("A." would match everyone).
MIN_PREFIX = 2
#: Spellings at least this close are worth a question even without a shared word.
CLOSE_SPELLING = 0.85


def normalize(name: str) -> str:
    """Case-, accent-, punctuation- and space-insensitive form of a name."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(_NON_WORD.sub(" ", plain).replace("_", " ").split())


def name_keys(name: str, aliases: Sequence[str]) -> list[str]:
    """The distinct normalized forms of an entity's name and aliases: what a lookup by name matches."""
    return sorted({n for n in (normalize(name), *(normalize(a) for a in aliases)) if n})


def tokens(name: str) -> list[str]:
    return normalize(name).split()


def spelling_similarity(a: str, b: str) -> float:
    return SequenceMatcher(None, normalize(a), normalize(b)).ratio()


def related(a: str, b: str) -> bool:
    """Whether two names might denote one entity, judged by their spelling alone."""
    ta, tb = tokens(a), tokens(b)
    if not ta or not tb:
        return False
    short, long = (ta, tb) if len(ta) <= len(tb) else (tb, ta)
    if all(len(w) >= MIN_PREFIX and any(o.startswith(w) or w.startswith(o) for o in long) for w in short):
        return True
    return spelling_similarity(a, b) >= CLOSE_SPELLING
