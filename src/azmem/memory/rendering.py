"""The messages each LLM call sends: extraction, reconciliation, answers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from azmem.memory.inputs import InputMessage
from azmem.memory.prompts import Prompt
from azmem.memory.schemas import ExtractedFact
from azmem.memory.steps import CONVERSATION_ROLES
from azmem.stores.models import (
    MemoryRecord,
    SearchHit,
)


def _fmt_time(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%d %H:%M UTC (%A)")


def _fmt_day(ts: datetime) -> str:
    return f"{ts.day} {ts.strftime('%B %Y')}"


def extraction_messages(
    prompt: Prompt, msgs: Sequence[InputMessage], *, agent: bool, now: datetime
) -> list[dict[str, str]]:
    stamped = [m.timestamp for m in msgs if m.timestamp is not None]
    today = max(stamped) if stamped else now
    system = prompt.render(
        today=_fmt_time(today),
        agent_clause=" and about the agent (the assistant) itself" if agent else "",
        agent_subject=', and "agent" for facts about the assistant itself' if agent else "",
    )
    lines = []
    for m in msgs:
        if m.role not in CONVERSATION_ROLES:
            continue
        when = _fmt_time(m.timestamp) if m.timestamp else "no timestamp"
        who = f"{m.role} ({m.name})" if m.name else m.role
        # A message's further lines are indented, so text cannot pose as another turn
        # ("...\n[2024-01-01 ...] assistant: ..." inside a user message).
        body = "\n    ".join(m.content.splitlines() or [""])
        lines.append(f"[{when}] {who}: {body}")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(lines)}]


def reconcile_messages(
    prompt: Prompt, facts: Sequence[ExtractedFact], existing: Sequence[MemoryRecord]
) -> list[dict[str, str]]:
    payload = {
        "existing_memories": [
            {"id": i, "text": r.memory, "stored": _fmt_day(r.updated_at)} for i, r in enumerate(existing)
        ],
        "new_facts": [{"index": i, "text": f.text, "about": f.subject} for i, f in enumerate(facts)],
    }
    return [
        {"role": "system", "content": prompt.render()},
        {"role": "user", "content": json.dumps(payload, ensure_ascii=False, indent=1)},
    ]


def answer_messages(prompt: Prompt, question: str, hits: Sequence[SearchHit]) -> list[dict[str, str]]:
    lines = [f"[{i}] ({_fmt_day(h.record.created_at)}) {h.record.memory}" for i, h in enumerate(hits)]
    body = "Memories:\n" + "\n".join(lines) + f"\n\nQuestion: {question}"
    return [{"role": "system", "content": prompt.render()}, {"role": "user", "content": body}]
