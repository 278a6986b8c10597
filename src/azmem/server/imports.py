"""``POST /v1/import``: a JSONL upload of conversations, small ones at once, large ones as a job.

The accepted lines are those of ``azmem import``'s JSONL: a conversation
(``{"messages": [...], "user_id": ..., "metadata": {...}}``) or a single message
(``{"role", "content", "timestamp"?}``; consecutive message lines form one
conversation). The whole upload is parsed and every scope checked against the key
before the first write, so a bad line 900 or a foreign user id imports nothing. Each
chunk is one ``add`` (one transaction): a job that fails half-way says how far it got.

Jobs live in this process (a restart forgets them) and are visible only to the key
that started them.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from azmem.errors import InvalidInputError, MemoryNotFoundError
from azmem.memory import AsyncMemory
from azmem.memory.inputs import check_metadata, normalize_messages
from azmem.memory.steps import MAX_ADD_BYTES
from azmem.server.principal import Principal, ScopeArgs
from azmem.server.problems import Problem, problem_of
from azmem.stores.models import utcnow

__all__ = ["Conversation", "ImportReport", "Job", "JobBoard", "parse_jsonl", "run_import"]

CHUNK_MESSAGES = 50
KEEP_FINISHED = 100
_SCOPE_KEYS = ("user_id", "agent_id", "run_id")


class ImportReport(BaseModel):
    conversations: int = 0
    messages: int = 0
    events: dict[str, int] = Field(default_factory=lambda: {"ADD": 0, "UPDATE": 0, "DELETE": 0})


class Job(BaseModel):
    """An import running in the background; poll ``GET /v1/jobs/{id}``."""

    id: str
    status: Literal["running", "done", "failed", "cancelled"] = "running"
    total: int = Field(description="Conversations to import.")
    done: int = Field(0, description="Conversations imported so far.")
    report: ImportReport = Field(default_factory=ImportReport)
    error: Problem | None = None
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


@dataclass
class Conversation:
    messages: list[dict[str, Any]]
    scope: ScopeArgs
    metadata: dict[str, Any] = field(default_factory=dict)


def _lines(body: bytes) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"the upload is not UTF-8 (byte {exc.start})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"line {number} is not JSON: {exc.msg}") from None
        if not isinstance(value, dict):
            raise InvalidInputError(f"line {number} must be a JSON object (a conversation or a message)")
        yield number, value


def parse_jsonl(
    body: bytes, principal: Principal, scope: dict[str, str | None], metadata: dict[str, Any] | None = None
) -> list[Conversation]:
    """Every conversation of the upload, checked (messages, scope, metadata) before anything is written.

    ``scope`` (the query's ids) wins over a line's own ids, as on the command line.
    """
    out: list[Conversation] = []
    loose: list[dict[str, Any]] = []

    def conversation(where: str, messages: object, own: dict[str, Any]) -> None:
        try:
            normalize_messages(messages)  # the library's message rules, reported with the line
            ids = {k: scope.get(k) or own.get(k) for k in _SCOPE_KEYS}
            args = principal.scope(ids["user_id"], ids["agent_id"], ids["run_id"])
            extra = check_metadata(own.get("metadata"))
        except InvalidInputError as exc:
            raise type(exc)(
                f"{where}: {exc.message}", error_code=exc.error_code, suggestion=exc.suggestion
            ) from None
        assert isinstance(messages, list)
        out.append(Conversation(list(messages), args, {**extra, **(metadata or {})}))

    last = 0
    for number, value in _lines(body):
        if "messages" in value:
            if loose:
                conversation(f"lines {last - len(loose) + 1}-{last}", loose, {})
                loose = []
            conversation(f"line {number}", value["messages"], value)
        else:
            loose.append(value)
            last = number
    if loose:
        conversation(f"lines {last - len(loose) + 1}-{last}", loose, {})
    if not out:
        raise InvalidInputError(
            "the upload holds no conversation", suggestion="send one JSON object per line"
        )
    return out


def _chunks(messages: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    size = 0
    for message in messages:
        n = len(str(message.get("content", "")).encode("utf-8", "surrogatepass"))
        if chunk and (len(chunk) >= CHUNK_MESSAGES or size + n > MAX_ADD_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(message)
        size += n
    if chunk:
        yield chunk


async def run_import(
    memory: AsyncMemory, conversations: list[Conversation], *, infer: bool | None, job: Job | None = None
) -> ImportReport:
    report = job.report if job is not None else ImportReport()
    for conv in conversations:
        for chunk in _chunks(conv.messages):
            result = await memory.add(chunk, metadata=conv.metadata or None, infer=infer, **conv.scope)
            report.messages += len(chunk)
            for event in result.results:
                if event.event in report.events:
                    report.events[event.event] += 1
        report.conversations += 1
        if job is not None:
            job.done += 1
    return report


class JobBoard:
    """The import jobs of this process: started, polled by their owner, cancelled at shutdown."""

    def __init__(self) -> None:
        self._jobs: dict[str, tuple[Job, str | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def start(
        self, memory: AsyncMemory, conversations: list[Conversation], *, infer: bool | None, owner: Principal
    ) -> Job:
        job = Job(id=uuid.uuid4().hex, total=len(conversations))
        self._jobs[job.id] = (job, owner.key_id)
        self._forget_old()

        async def work() -> None:
            try:
                await run_import(memory, conversations, infer=infer, job=job)
                job.status = "done"
            except asyncio.CancelledError:
                job.status = "cancelled"
                raise
            except Exception as exc:
                job.status = "failed"
                job.error = problem_of(exc, instance=f"/v1/jobs/{job.id}")
            finally:
                job.finished_at = utcnow()

        task = asyncio.get_running_loop().create_task(work(), name=f"azmem-import-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    def get(self, job_id: str, principal: Principal) -> Job:
        found = self._jobs.get(job_id)
        if found is None or found[1] != principal.key_id:
            raise MemoryNotFoundError(
                f"No import job {job_id[:40]!r} for this key.", error_code="job_not_found"
            )
        return found[0]

    def _forget_old(self) -> None:
        finished = [jid for jid, (job, _) in self._jobs.items() if job.finished_at is not None]
        for jid in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[jid]

    async def cancel_all(self) -> None:
        """Stop running imports (each chunk already written stays: every add is atomic)."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
