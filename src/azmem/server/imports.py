"""``POST /v1/import``: a JSONL upload of conversations, small ones at once, large ones as a job.

The accepted lines are those of ``azmem import``'s JSONL: a conversation
(``{"messages": [...], "user_id": ..., "metadata": {...}}``) or a single message
(``{"role", "content", "timestamp"?}``; consecutive message lines form one
conversation). The whole upload is parsed and every scope checked against the key
before the first write, so a bad line 900 or a foreign user id imports nothing.

The import itself is the library's, as for ``azmem import`` (`azmem.memory.imports`):
chunks of ``batch_size`` messages, each one transaction, and safe to repeat. Re-posting
an upload (after a timeout, a failed job, or with lines appended) adds only what is
missing and reports the rest as ``skipped``: verbatim message by message, inferred
chunk by chunk without calling the model. A job that fails half-way says how far it got.

Jobs live in this process (a restart forgets them) and are visible only to the key
that started them.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal, cast

from pydantic import BaseModel, Field

from azmem.errors import InvalidInputError, MemoryNotFoundError
from azmem.memory import AsyncMemory
from azmem.memory.imports import (
    DEFAULT_CHUNK_MESSAGES,
    ImportConversation,
    ImportTally,
    aimport_conversations,
)
from azmem.memory.inputs import check_metadata, normalize_messages
from azmem.server.principal import Principal
from azmem.server.problems import Problem, problem_of
from azmem.stores.models import utcnow

__all__ = ["Conversation", "ImportReport", "Job", "JobBoard", "parse_jsonl", "run_import"]

#: The upload's conversations, checked: the library's import unit.
Conversation = ImportConversation
KEEP_FINISHED = 100
_SCOPE_KEYS = ("user_id", "agent_id", "run_id")


class ImportReport(BaseModel):
    conversations: int = 0
    messages: int = 0
    skipped: int = Field(
        0, description="Messages already stored (an earlier import of them) or repeated in the upload."
    )
    events: dict[str, int] = Field(default_factory=lambda: {"ADD": 0, "UPDATE": 0, "DELETE": 0})

    def copy_from(self, tally: ImportTally) -> None:
        self.conversations, self.messages, self.skipped = tally.conversations, tally.messages, tally.skipped
        self.events = tally.event_counts()


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
        out.append(Conversation(list(messages), cast(dict[str, str], args), {**extra, **(metadata or {})}))

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


async def run_import(
    memory: AsyncMemory,
    conversations: list[Conversation],
    *,
    infer: bool | None,
    batch_size: int = DEFAULT_CHUNK_MESSAGES,
    job: Job | None = None,
) -> ImportReport:
    """The library's idempotent import; a job's report and progress follow each chunk."""
    report = job.report if job is not None else ImportReport()
    tally = ImportTally()

    def progress(_: int) -> None:
        report.copy_from(tally)
        if job is not None:
            job.done = tally.conversations

    try:
        await aimport_conversations(
            memory, conversations, infer=infer, batch_size=batch_size, tally=tally, on_chunk=progress
        )
    finally:
        progress(0)
    return report


class JobBoard:
    """The import jobs of this process: started, polled by their owner, cancelled at shutdown."""

    def __init__(self) -> None:
        self._jobs: dict[str, tuple[Job, str | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def start(
        self,
        memory: AsyncMemory,
        conversations: list[Conversation],
        *,
        infer: bool | None,
        owner: Principal,
        batch_size: int = DEFAULT_CHUNK_MESSAGES,
    ) -> Job:
        job = Job(id=uuid.uuid4().hex, total=len(conversations))
        self._jobs[job.id] = (job, owner.key_id)
        self._forget_old()

        async def work() -> None:
            try:
                await run_import(memory, conversations, infer=infer, batch_size=batch_size, job=job)
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
