"""The search words of a query: the same notion of "word" for every backend.

Split like SQLite's unicode61 tokenizer (letters and digits; '_' separates), lower-cased,
deduplicated in order; common English function words are dropped unless nothing else
is left (they add little to BM25 and make every query touch most of the index).
"""

from __future__ import annotations

import re

__all__ = ["MAX_TERMS", "STOPWORDS", "query_terms"]

_WORD = re.compile(r"[^\W_]+")  # unicode61 separates on '_' as well
MAX_TERMS = 32
MAX_TERM_CHARS = 64

_STOPWORDS_TEXT = """a an and are as at be been but by did do does for from had has have he her his how i if
in into is it its me my no not of on or our she so than that the their them then there these they
this to was we were what when where which who whom why will with you your"""
# What the split leaves of possessives and contractions ("Jon's" -> "jon", "s"; "didn't" ->
# "didn", "t"; NLTK's English list, less its whole words). A fragment is in a large share of
# memories ("s": 1,921 of the 10,000 of the bench corpus, and 62 of its 300 questions), so
# scoring it cost a fifth of the index for nothing. NLTK's whole list was measured too and
# not taken: words like "about", "after" or "up" carry meaning in questions (LoCoMo hybrid
# recall@10 0.661 -> 0.656; with the fragments alone 0.663).
# Fragments that are also words or names ("won", "don", "ma", "o", "y") stay searchable.
_FRAGMENTS_TEXT = """s t d ll m re ve ain aren couldn didn doesn hadn hasn haven isn mightn mustn needn shan
shouldn wasn weren wouldn"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split() + _FRAGMENTS_TEXT.split())


def query_terms(text: str | None) -> list[str]:
    """The distinct search words of `text`, in order (stop words dropped unless nothing else is left)."""
    if not text:
        return []
    seen: dict[str, None] = {}
    for token in _WORD.findall(text):
        term = token[:MAX_TERM_CHARS].lower()
        if term not in seen:
            seen[term] = None
    terms = [t for t in seen if t not in STOPWORDS] or list(seen)
    return terms[:MAX_TERMS]
