"""Reflection tasks: a mixed group of outcomes prepared for the client's own model to reflect on.

When no reflection model is configured, the chat model that recorded the outcomes is the strongest model at
hand. The server writes the group (task, attempts, grades, feedback: fenced as quoted data), the relevant library
slice under aliases and the method's questions into a task; the client answers with the learner's operation
objects. Tasks are JSON files under ``<data_dir>/reflection-tasks/`` (``open/`` and ``closed/``), moved with
``os.replace`` under a file lock, so every process on the data dir sees the same tasks and a restart loses none.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from debrief.learner.aliases import AliasMap, resolve_operation
from debrief.learner.fencing import DATA_RULE, fence
from debrief.learner.library import LibraryEntry
from debrief.learner.operations import Operation, OperationKind
from debrief.learner.prompts import EXPERIENCE_RULES, cut_to_budget
from debrief.learner.words import MAX_EXPERIENCE_WORDS, experience_text_problem
from debrief.server.chroma.locks import FileLock
from debrief.server.errors import Conflict, InvalidInput, NotFound
from debrief.server.settings import Settings

logger = logging.getLogger(__name__)

ReflectionMode = Literal["auto", "server", "client"]
TaskStatus = Literal["open", "submitted", "skipped", "expired", "superseded"]
ALLOWED_OPERATIONS: tuple[OperationKind, ...] = ("add", "modify", "merge", "delete")
SUCCESS = 0.5
"""A reward of at least this is a success (the same threshold as outcomes)."""
ATTEMPT_TOKENS = 1_500
"""About this many tokens of each attempt's account (and of its feedback) go into a task; the middle is cut."""
LIBRARY_SLICE = 20
"""Most experiences a task shows."""


def effective_mode(mode: ReflectionMode, *, endpoint_configured: bool) -> Literal["server", "client"]:
    """Who reflects: ``auto`` is the server when a model endpoint is configured, else the client.

    The embedded local model is too weak to write lessons, so only an explicit ``server`` uses it.
    """
    if mode == "auto":
        return "server" if endpoint_configured else "client"
    return mode


class TaskAttempt(BaseModel):
    """One recorded attempt as a task shows it."""

    outcome_id: str
    account: str
    reward: float | None = Field(description="None: not graded.")
    feedback: str | None = None


class ReflectionTask(BaseModel):
    """A prepared reflection, persisted until the client submits it, skips it, or it expires."""

    task_id: str
    namespace: str
    group_id: str
    outcome_ids: list[str]
    task: str
    status: TaskStatus = "open"
    created_at: datetime
    expires_at: datetime
    library_version: int = Field(description="Library version the slice was read at.")
    aliases: dict[str, str] = Field(description="Alias shown in the text (G0, G1, ...) -> stable experience id.")
    max_operations: int
    text: str
    closed_at: datetime | None = None
    result_version: int | None = None
    analysis: str | None = None
    note: str | None = Field(default=None, description="Why it was skipped, or which task superseded it.")


# ---- the text a client reads -------------------------------------------------------------------------------


def _verdict(reward: float | None) -> str:
    if reward is None:
        return "not graded (judge it yourself)"
    word = "SUCCESS" if reward >= SUCCESS else "FAILURE"
    return f"graded {word}" if reward in (0.0, 1.0) else f"graded {word} (score {reward:g} of 1)"


def task_text(
    *,
    task_id: str,
    namespace: str,
    task: str,
    attempts: Sequence[TaskAttempt],
    aliases: AliasMap,
    max_operations: int,
) -> str:
    """The prepared reflection: the group as quoted data, the library slice, the method's questions, the answer."""
    parts = [
        f"Reflection task {task_id} (namespace {namespace!r}): learn from {len(attempts)} recorded attempts at one "
        "task. Debrief keeps a library of short lessons (experiences) that are retrieved before similar tasks. "
        f"Compare the attempts below and decide how the library should change. {DATA_RULE}",
        fence("the task", task),
    ]
    for number, attempt in enumerate(attempts, start=1):
        block = fence(f"Attempt {number}, {_verdict(attempt.reward)}", cut_to_budget(attempt.account, ATTEMPT_TOKENS))
        if attempt.feedback:
            block += "\n" + fence(f"Feedback on attempt {number}", cut_to_budget(attempt.feedback, ATTEMPT_TOKENS))
        parts.append(block)
    library = aliases.render()
    parts.append(
        "Experiences in the library that bear on this task (refer to them by alias):\n"
        + fence("library experiences", library)
        if library
        else "The library has no experiences that bear on this task yet."
    )
    ungraded = any(attempt.reward is None for attempt in attempts)
    parts.append(
        "Answer these, briefly:\n"
        + (
            "0. Some attempts are not graded: which attempts are better, judging by their accounts?\n"
            if ungraded
            else ""
        )
        + "1. What separated the better attempts from the worse ones?\n"
        "2. Which existing experiences were missing, too weak, or misleading here?\n"
        f"3. Which edits to the library follow? At most {max_operations}. {EXPERIENCE_RULES} An experience must be "
        "general: it should help with other tasks of this kind, not only this one. Never put secrets or personal "
        "data in one."
    )
    parts.append(
        f'Then call submit_reflection with task_id "{task_id}", your answers in a few sentences as analysis, and '
        'operations: {"op": "add", "text": ...}, {"op": "modify", "experience_id": "G0", "text": ...}, '
        '{"op": "merge", "experience_ids": ["G0", "G1"], "text": ...} or {"op": "delete", "experience_id": "G2"} '
        f"(aliases as shown above; each text one sentence of at most {MAX_EXPERIENCE_WORDS} words). Submit an "
        "empty list when there is nothing general to learn, or call skip_reflection_task."
    )
    return "\n\n".join(parts)


# ---- checking a submission ---------------------------------------------------------------------------------


def check_submission(
    task: ReflectionTask, operations: Sequence[Operation], *, active_ids: set[str], max_text_bytes: int
) -> list[Operation]:
    """The operations with aliases resolved to stable ids, or :class:`InvalidInput` saying exactly what to fix.

    ``active_ids`` are the namespace's active experiences now: an experience retired since the task was prepared
    can no longer be modified, merged or deleted.
    """
    if len(operations) > task.max_operations:
        raise InvalidInput(
            f"{len(operations)} operations submitted; task {task.task_id!r} allows at most {task.max_operations}: "
            "keep the most important ones"
        )
    shown = AliasMap.of([LibraryEntry(experience_id=key, text="") for key in task.aliases.values()])
    known = ", ".join(task.aliases) or "none: the task showed no experiences, so only 'add' is possible"
    resolved: list[Operation] = []
    named: dict[str, int] = {}
    for number, operation in enumerate(operations, start=1):
        where = f"operation {number} ({operation.op})"
        if operation.op != "delete":
            problem = experience_text_problem(operation.text)
            if problem is not None:
                raise InvalidInput(f"{where}: {problem}; nothing was written")
            size = len(operation.text.encode())
            if size > max_text_bytes:
                raise InvalidInput(f"{where}: the text is {size} bytes; the limit is {max_text_bytes}")
        result = resolve_operation(operation, shown)
        if isinstance(result, str):
            raise InvalidInput(f"{where}: {result}; use the aliases the task showed ({known}); nothing was written")
        ids = [result.experience_id] if result.op in ("modify", "delete") else []
        if result.op == "merge":
            ids = list(result.experience_ids)
            if len(set(ids)) != len(ids):
                raise InvalidInput(f"{where}: merge names the same experience twice; nothing was written")
        for key in ids:
            alias = shown.alias(key) or key
            if key not in active_ids:
                raise InvalidInput(
                    f"{where}: {alias} was retired after the task was prepared; drop that operation (nothing was "
                    "written)"
                )
            if key in named:
                raise InvalidInput(
                    f"{where}: {alias} is already named by operation {named[key]}; one operation per experience "
                    "(nothing was written)"
                )
            named[key] = number
        resolved.append(result)
    return resolved


# ---- storage ----------------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


class ReflectionTaskBook:
    """Reflection tasks on disk, shared by every process on the data dir."""

    def __init__(self, settings: Settings, *, ttl: timedelta, max_operations: int) -> None:
        self._root = settings.data_dir / "reflection-tasks"
        self._ttl = ttl
        self.max_operations = max_operations

    def _dir(self, state: Literal["open", "closed"]) -> Path:
        return self._root / state

    def _file(self, state: Literal["open", "closed"], task_id: str) -> Path:
        return self._dir(state) / f"{task_id}.json"

    def _lock(self) -> FileLock:
        self._root.mkdir(parents=True, exist_ok=True)
        return FileLock(self._root / "tasks.lock")

    @staticmethod
    def _write(path: Path, task: ReflectionTask) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            handle.write(task.model_dump_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)

    @staticmethod
    def _read(path: Path) -> ReflectionTask | None:
        try:
            return ReflectionTask.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (ValidationError, json.JSONDecodeError, UnicodeDecodeError):
            logger.warning("skipping an unreadable reflection task %s", path)
            return None

    def _close(self, task: ReflectionTask, status: TaskStatus, **changes: object) -> ReflectionTask:
        closed = task.model_copy(update={"status": status, "closed_at": _now(), **changes})
        self._write(self._file("closed", task.task_id), closed)
        self._file("open", task.task_id).unlink(missing_ok=True)
        return closed

    def namespace_of(self, task_id: str) -> str | None:
        """The namespace of task ``task_id`` (open or closed), or ``None`` if there is no such task."""
        if not re.fullmatch(r"rt-[0-9a-f]{12}", task_id):
            return None
        task = self._read(self._file("open", task_id)) or self._read(self._file("closed", task_id))
        return None if task is None else task.namespace

    def _expire_and_list(self, namespace: str | None) -> list[ReflectionTask]:
        folder = self._dir("open")
        if not folder.is_dir():
            return []
        now = _now()
        tasks = []
        for path in folder.glob("*.json"):
            task = self._read(path)
            if task is None:
                continue
            if task.expires_at <= now:
                self._close(task, "expired")
                continue
            if namespace is None or task.namespace == namespace:
                tasks.append(task)
        tasks.sort(key=lambda item: (item.created_at, item.task_id))
        return tasks

    def create(
        self,
        *,
        namespace: str,
        group_id: str,
        task: str,
        attempts: Sequence[TaskAttempt],
        entries: Sequence[LibraryEntry],
        library_version: int,
    ) -> ReflectionTask:
        """Prepare and store a task for this group; an open task of the same group is superseded by it."""
        task_id = f"rt-{secrets.token_hex(6)}"
        aliases = AliasMap.of(entries)
        now = _now()
        prepared = ReflectionTask(
            task_id=task_id,
            namespace=namespace,
            group_id=group_id,
            outcome_ids=[attempt.outcome_id for attempt in attempts],
            task=task,
            created_at=now,
            expires_at=now + self._ttl,
            library_version=library_version,
            aliases={f"G{index}": entry.experience_id for index, entry in enumerate(aliases.entries)},
            max_operations=self.max_operations,
            text=task_text(
                task_id=task_id,
                namespace=namespace,
                task=task,
                attempts=attempts,
                aliases=aliases,
                max_operations=self.max_operations,
            ),
        )
        lock = self._lock()
        try:
            lock.acquire(exclusive=True, blocking=True)
            for older in self._expire_and_list(namespace):
                if older.group_id == group_id:
                    self._close(older, "superseded", note=f"superseded by {task_id}, which has newer outcomes")
            self._write(self._file("open", task_id), prepared)
        finally:
            lock.release()
        return prepared

    def oldest_open(
        self, namespace: str | None, readable: Callable[[str], bool] = lambda _: True
    ) -> tuple[ReflectionTask | None, int]:
        """The oldest open task (of ``namespace``, or of any ``readable`` one) and how many are open.

        Expired tasks are closed on the way.
        """
        lock = self._lock()
        try:
            lock.acquire(exclusive=True, blocking=True)
            tasks = [task for task in self._expire_and_list(namespace) if readable(task.namespace)]
        finally:
            lock.release()
        return (tasks[0] if tasks else None), len(tasks)

    def open_task(self, task_id: str) -> ReflectionTask:
        """The open task ``task_id``, or an error that says what became of it (call with the lock held)."""
        if not re.fullmatch(r"rt-[0-9a-f]{12}", task_id):
            raise InvalidInput(
                f"task_id {task_id!r} is not a reflection task id: pass the task_id get_reflection_task returned"
            )
        task = self._read(self._file("open", task_id))
        if task is not None:
            if task.expires_at <= _now():
                self._close(task, "expired")
                raise Conflict(f"reflection task {task_id!r} has expired; call get_reflection_task for a current one")
            return task
        closed = self._read(self._file("closed", task_id))
        if closed is None:
            raise NotFound(f"no reflection task {task_id!r}; call get_reflection_task for the open ones")
        if closed.status == "submitted":
            raise Conflict(
                f"reflection task {task_id!r} was already submitted (library version {closed.result_version}); "
                "nothing was written"
            )
        if closed.status == "superseded":
            raise Conflict(
                f"reflection task {task_id!r} was {closed.note}; call get_reflection_task and reflect on that"
            )
        raise Conflict(f"reflection task {task_id!r} was {closed.status}; call get_reflection_task for an open one")

    def hold(self) -> FileLock:
        """The book's lock, taken (blocking): hold it across checking, applying and closing one submission."""
        lock = self._lock()
        lock.acquire(exclusive=True, blocking=True)
        return lock

    def close(self, task: ReflectionTask, status: TaskStatus, **changes: object) -> ReflectionTask:
        """Move a task to closed with ``status`` (call with the lock held)."""
        return self._close(task, status, **changes)


class SubmittedReflection(BaseModel):
    """What submitting a reflection did to the library."""

    task_id: str
    namespace: str
    version: int | None = Field(description="Library version the change produced; null when nothing changed.")
    applied: list[Operation] = Field(description="Operations applied, with stable experience ids.")
    experience_ids: list[list[str]] = Field(description="Per applied operation, the experience ids it touched.")
    rejected: list[str] = Field(description="Operations the library refused, with reasons (e.g. a near-copy).")
    outcome_ids: list[str] = Field(description="The outcomes this reflection learned from (its provenance).")
