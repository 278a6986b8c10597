"""Varied, realistic memory-like texts for the vector benchmarks, and their cached MiniLM embeddings.

Random vectors flatter quantized search (their neighbours are well separated);
real memories are clustered (many facts about the same people and topics), which
is exactly where a coarse scan loses recall. So the corpus is LoCoMo sentences
with swapped names and dates, pairs of them, and templated personal facts, all
embedded with the real local model once and cached under ``bench/.cache``.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

CACHE_DIR = Path(__file__).resolve().parent / ".cache"
DEFAULT_LOCOMO = Path("/work/shared/data/locomo")
_CORPUS_VERSION = "v2"
_CHUNK = 5_000

# Word lists. Any change alters the generated texts and so invalidates the cached embeddings.


def _words(text: str, sep: str | None = None) -> list[str]:
    return text.split(sep)


_NAMES = _words(
    "Aiden Alice Amara Ana Andrei Anya Arjun Beatriz Ben Bilal Caroline Chen Chloe Daniel Dara Diego Elena "
    "Emeka Emma Farah Felix Fatima Gina Grace Hana Hassan Ines Isaac Ivan Jade Jon Jonas Julia Kai Kamala "
    "Kenji Lara Leo Lina Luca Maya Melanie Mateo Mei Mira Nadia Noah Nora Oliver Omar Priya Rafael Rosa "
    "Sam Sara Sofia Tariq Theo Uma Victor Wen Yara Yusuf Zoe"
)
_RELATIONS = _words(
    "sister brother mother father daughter son cousin aunt uncle grandmother best friend partner neighbour"
)
_PLACES = _words(
    "Lisbon|Berlin|Toronto|a small town near Lyon|Nairobi|Seoul|the countryside|Austin|Mumbai|Oslo|Melbourne|"
    "Cape Town|Chicago|Kyoto|Mexico City|the coast|Dublin|Sao Paulo|Helsinki|a cabin in the mountains",
    "|",
)
_JOBS = _words(
    "nurse|software engineer|teacher|chef|accountant|graphic designer|electrician|lawyer|pharmacist|"
    "data analyst|carpenter|journalist|dentist|pilot|social worker|architect|barista|veterinarian",
    "|",
)
_THINGS = _words(
    "spicy Thai food|jazz records|rock climbing|vintage cameras|sourdough baking|board games|"
    "marathon running|oil painting|science fiction novels|gardening|yoga|chess|k-pop|birdwatching|"
    "woodworking|salsa dancing|cold brew coffee|horror movies|sushi|knitting|photography|hiking trails|"
    "the violin|poetry|video games|tennis|pottery|camping|astronomy|vegan cooking",
    "|",
)
_ALLERGIES = _words("peanuts|shellfish|cats|pollen|gluten|penicillin|dairy|bee stings|dust|latex", "|")
_TIMES = _words(
    "next week|last summer|in March|this weekend|two years ago|in the spring|on her birthday|after work|"
    "every Sunday|in December|tomorrow|last month|since college|in 2022|later this year",
    "|",
)
_PLANS = _words(
    "visit|move to|take a trip to|run a half marathon in|open a bakery in|study abroad in|look for a job in|"
    "buy an apartment in|spend the holidays in|attend a conference in",
    "|",
)
_TEMPLATES = (
    "{n} loves {t}.",
    "{n} does not like {t} anymore.",
    "{n} is allergic to {a}.",
    "{n} works as a {j} in {p}.",
    "{n}'s {r} lives in {p}.",
    "{n}'s {r} is a {j}.",
    "{n} plans to {pl} {p} {tm}.",
    "{n} started {t} {tm} and enjoys it a lot.",
    "{n} wants to learn more about {t}.",
    "{n} and {n2} met in {p} {tm}.",
    "{n} recommended {t} to {n2}.",
    "The user prefers {t} over {t2}.",
    "User's favourite hobby is {t}.",
    "Remember that {n} cannot eat {a}.",
    "{n} moved to {p} {tm} to work as a {j}.",
    "{n}'s {r} gave {n} a gift related to {t} {tm}.",
)
_LOCOMO_NAMES = re.compile(r"\b(Caroline|Melanie|Mel|Jon|Gina|Caro)\b")


def locomo_sentences(data_dir: Path = DEFAULT_LOCOMO) -> tuple[list[str], list[str]]:
    """All distinct sentences of the LoCoMo files, and the QA questions (real queries)."""
    strings: set[str] = set()
    questions: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, str):
            if len(node) > 20:
                strings.add(node)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in sorted(data_dir.glob("*.json")):
        data = json.loads(path.read_text())
        questions.extend(q["question"] for q in data.get("qa", []) if isinstance(q.get("question"), str))
        walk({k: v for k, v in data.items() if k != "qa"})
    sentences: set[str] = set()
    for text in strings:
        for part in re.split(r"(?<=[.!?])\s+", text):
            part = part.strip()
            if len(part) > 15:
                sentences.add(part)
    return sorted(sentences), questions


def _templated(rng: random.Random) -> str:
    names = rng.sample(_NAMES, 2)
    things = rng.sample(_THINGS, 2)
    return rng.choice(_TEMPLATES).format(
        n=names[0],
        n2=names[1],
        t=things[0],
        t2=things[1],
        a=rng.choice(_ALLERGIES),
        j=rng.choice(_JOBS),
        p=rng.choice(_PLACES),
        r=rng.choice(_RELATIONS),
        tm=rng.choice(_TIMES),
        pl=rng.choice(_PLANS),
    )


def _variant(rng: random.Random, sentences: list[str]) -> str:
    roll = rng.random()
    if roll < 0.5:
        s = rng.choice(sentences)
        s = _LOCOMO_NAMES.sub(lambda _m: rng.choice(_NAMES), s)
        if rng.random() < 0.3:
            when = rng.choice(_TIMES)
            s = f"{when[0].upper()}{when[1:]}, {s}"
        return s
    if roll < 0.65:
        a, b = rng.sample(sentences, 2)
        return _LOCOMO_NAMES.sub(lambda _m: rng.choice(_NAMES), f"{a} {b}")
    return _templated(rng)


def generate_texts(n: int, seed: int, sentences: list[str], exclude: set[str] | None = None) -> list[str]:
    """``n`` distinct texts, deterministic for a given seed (so the cache stays valid)."""
    rng = random.Random(seed)
    seen: set[str] = set(exclude or ())
    out: list[str] = []
    for s in sentences:  # every original sentence once, so the real data is all there
        if len(out) >= n:
            break
        if s not in seen:
            seen.add(s)
            out.append(s)
    while len(out) < n:
        text = _variant(rng, sentences)
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def corpus_and_queries(
    n: int, n_queries: int, data_dir: Path = DEFAULT_LOCOMO
) -> tuple[list[str], list[str]]:
    """The corpus and a disjoint query set: real LoCoMo questions first, then held-out generated texts."""
    sentences, questions = locomo_sentences(data_dir)
    corpus = generate_texts(n, seed=1, sentences=sentences)
    queries = list(dict.fromkeys(questions))[:n_queries]
    if len(queries) < n_queries:
        queries += generate_texts(
            n_queries - len(queries), seed=2, sentences=sentences[::-1], exclude=set(corpus) | set(queries)
        )
    return corpus, queries


def embed_cached(texts: list[str], tag: str) -> npt.NDArray[np.float32]:
    """Embed with the real local model, caching in chunks so an interrupted run resumes."""
    from azmem.embeddings import LocalEmbedder

    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:12]
    final = CACHE_DIR / f"{tag}-{_CORPUS_VERSION}-{len(texts)}-{digest}.npy"
    if final.exists():
        cached: npt.NDArray[np.float32] = np.load(final)
        return cached
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    embedder = LocalEmbedder()
    parts: list[npt.NDArray[np.float32]] = []
    started = time.perf_counter()
    for start in range(0, len(texts), _CHUNK):
        chunk_path = CACHE_DIR / f"{tag}-{_CORPUS_VERSION}-{digest}-part{start // _CHUNK}.npy"
        if chunk_path.exists():
            parts.append(np.load(chunk_path))
            continue
        vectors = embedder.embed(texts[start : start + _CHUNK])
        np.save(chunk_path, vectors)
        parts.append(vectors)
        done = min(start + _CHUNK, len(texts))
        rate = done / max(time.perf_counter() - started, 1e-9)
        print(
            f"[embed {tag}] {done}/{len(texts)} ({rate:.0f}/s incl. cached parts)",
            file=sys.stderr,
            flush=True,
        )
    result = np.concatenate(parts) if parts else np.empty((0, embedder.dimension), np.float32)
    np.save(final, result)
    for start in range(0, len(texts), _CHUNK):
        (CACHE_DIR / f"{tag}-{_CORPUS_VERSION}-{digest}-part{start // _CHUNK}.npy").unlink(missing_ok=True)
    return result
