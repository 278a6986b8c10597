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

# NLTK's English stop-word list: its 153 words without an apostrophe (the split never
# yields one), written here rather than depended on. It holds the fragments the split leaves
# of possessives and contractions ("Jon's" -> "jon", "s"; "didn't" -> "didn", "t"), which
# are in a large share of memories: on the LoCoMo-derived bench corpus "s" is in 1,921 of
# 10,000 memories and 62 of 300 questions, each of which scored it for next to nothing.
_STOPWORDS_TEXT = """a about above after again against ain all am an and any are aren as at be because been
before being below between both but by can couldn d did didn do does doesn doing don down during each
few for from further had hadn has hasn have haven having he her here hers herself him himself his how i
if in into is isn it its itself just ll m ma me mightn more most mustn my myself needn no nor not now o
of off on once only or other our ours ourselves out over own re s same shan she should shouldn so some
such t than that the their theirs them themselves then there these they this those through to too
under until up ve very was wasn we were weren what when where which while who whom why will with won
wouldn y you your yours yourself yourselves"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())


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
