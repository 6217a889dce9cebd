"""The library seam: what the learner needs from wherever experiences are kept."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from debrief.learner.operations import Operation
from debrief.learner.words import experience_text_problem, normalize_experience_text


@dataclass(frozen=True, kw_only=True)
class LibraryEntry:
    """An active experience as the learner sees it."""

    experience_id: str
    text: str


class Provenance(BaseModel):
    """Where a library change came from."""

    kind: Literal["manual", "learned", "outcome", "import", "rollback", "evaluation"] = Field(
        description="What made the change: a person or client (manual), a learning run, recorded outcomes, "
        "an import, a rollback, or an evaluation (pruning by measured effect)."
    )
    run_id: str | None = Field(default=None, description="Learning run that made the change, if any.")
    step: int | None = Field(default=None, description="Step of that run, if any.")
    groups: list[str] = Field(default_factory=list, description="Problem or task keys whose groups led to it.")
    outcome_ids: list[str] = Field(default_factory=list, description="Recorded outcomes that led to it.")


@dataclass(frozen=True, kw_only=True)
class AppliedOperation:
    """An operation the library carried out, with the ids it touched."""

    operation: Operation
    experience_ids: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class RejectedOperation:
    """An operation the library refused, and why."""

    operation: Operation
    reason: str


@dataclass(frozen=True, kw_only=True)
class ApplyResult:
    """What :meth:`Library.apply` did. ``version`` is the library version after the change."""

    version: int
    applied: tuple[AppliedOperation, ...] = ()
    rejected: tuple[RejectedOperation, ...] = ()


class Library(Protocol):
    """An experience library the learner reads and edits.

    ``apply`` validates each operation on its own: bad ones are rejected with a reason, good ones are
    applied together as one new library version.
    """

    async def entries(self) -> Sequence[LibraryEntry]:
        """All active experiences, oldest first."""
        ...

    async def relevant(self, task: str, k: int) -> Sequence[LibraryEntry]:
        """The ``k`` active experiences most relevant to ``task``."""
        ...

    async def apply(self, operations: Sequence[Operation], *, provenance: Provenance, reason: str) -> ApplyResult:
        """Apply operations as one change and return the new version."""
        ...


@dataclass(frozen=True, kw_only=True)
class ExperienceCredit:
    """Evidence from group contrasts: uses of one experience in better (helpful) and worse (harmful) attempts."""

    experience_id: str
    helpful: int
    harmful: int
    groups: tuple[str, ...] = ()
    """Problems whose groups gave the evidence."""


@runtime_checkable
class CreditSink(Protocol):
    """Optional for a :class:`Library`: take per-experience credit from a learning step into its counters."""

    async def credit(self, credits: Sequence[ExperienceCredit], *, provenance: Provenance) -> None:
        """Add ``credits`` to the experiences' helpful/harmful counters, recording ``provenance``."""
        ...


@runtime_checkable
class AppliedLookup(Protocol):
    """Optional for a :class:`Library`: find the change a learning run's step made.

    A run that crashed between ``apply`` and saving its checkpoint asks this on resume, so that the step is
    applied once. Libraries without it are judged from their ``entries()`` instead.
    """

    async def applied_version(self, run_id: str, step: int) -> int | None:
        """The version made by a change with provenance ``run_id`` and ``step``, or ``None`` if there is none."""
        ...


@dataclass
class InMemoryLibrary:
    """A :class:`Library` in a dict, for tests and for learning without a store.

    Relevance is word overlap: enough to exercise retrieval paths without embeddings.
    """

    version: int = 0
    _entries: dict[str, str] = field(default_factory=dict)
    _next_id: int = 0
    changes: list[tuple[int, Provenance, str, ApplyResult]] = field(default_factory=list)
    counters: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Helpful and harmful counts per experience, from :meth:`credit`."""
    credited: list[tuple[ExperienceCredit, Provenance]] = field(default_factory=list)

    async def entries(self) -> Sequence[LibraryEntry]:
        """All active experiences, oldest first."""
        return [LibraryEntry(experience_id=key, text=text) for key, text in self._entries.items()]

    async def relevant(self, task: str, k: int) -> Sequence[LibraryEntry]:
        """The ``k`` entries sharing the most words with ``task``."""
        words = set(task.lower().split())
        ranked = sorted(self._entries.items(), key=lambda item: -len(words & set(item[1].lower().split())))
        return [LibraryEntry(experience_id=key, text=text) for key, text in ranked[:k]]

    async def applied_version(self, run_id: str, step: int) -> int | None:
        """The version a change of ``run_id`` at ``step`` made, if one did (:class:`AppliedLookup`)."""
        for version, provenance, _, _ in self.changes:
            if provenance.run_id == run_id and provenance.step == step:
                return version
        return None

    async def credit(self, credits: Sequence[ExperienceCredit], *, provenance: Provenance) -> None:
        """Add credit to the in-memory counters (:class:`CreditSink`)."""
        for item in credits:
            helpful, harmful = self.counters.get(item.experience_id, (0, 0))
            self.counters[item.experience_id] = (helpful + item.helpful, harmful + item.harmful)
            self.credited.append((item, provenance))

    def add_text(self, text: str) -> str:
        """Add an experience directly (test set-up) and return its id."""
        self._next_id += 1
        key = f"E{self._next_id}"
        self._entries[key] = normalize_experience_text(text)
        return key

    async def apply(self, operations: Sequence[Operation], *, provenance: Provenance, reason: str) -> ApplyResult:
        """Apply the valid operations as one version; reject the rest with reasons."""
        applied: list[AppliedOperation] = []
        rejected: list[RejectedOperation] = []
        for operation in operations:
            problem = self._problem(operation)
            if problem is not None:
                rejected.append(RejectedOperation(operation=operation, reason=problem))
                continue
            if operation.op == "add":
                ids: tuple[str, ...] = (self.add_text(operation.text),)
            elif operation.op == "modify":
                self._entries[operation.experience_id] = normalize_experience_text(operation.text)
                ids = (operation.experience_id,)
            elif operation.op == "merge":
                for key in operation.experience_ids:
                    del self._entries[key]
                ids = (self.add_text(operation.text), *operation.experience_ids)
            else:
                del self._entries[operation.experience_id]
                ids = (operation.experience_id,)
            applied.append(AppliedOperation(operation=operation, experience_ids=ids))
        if applied:
            self.version += 1
        result = ApplyResult(version=self.version, applied=tuple(applied), rejected=tuple(rejected))
        if applied:
            self.changes.append((self.version, provenance, reason, result))
        return result

    def _problem(self, operation: Operation) -> str | None:
        if operation.op == "delete":
            return None if operation.experience_id in self._entries else f"unknown id {operation.experience_id!r}"
        if operation.op == "modify" and operation.experience_id not in self._entries:
            return f"unknown id {operation.experience_id!r}"
        if operation.op == "merge":
            missing = [key for key in operation.experience_ids if key not in self._entries]
            if missing:
                return f"unknown ids {missing!r}"
            if len(set(operation.experience_ids)) != len(operation.experience_ids):
                return "merge names the same id twice"
        return experience_text_problem(operation.text)
