"""The versioned experience store: experiences in Chroma, every change recorded, any version restorable.

Each namespace has its own collections (see :mod:`debrief.server.store.namespace_view`) and an append-only change
log (see :mod:`debrief.server.store.history`), the source of truth: every change claims the next version in the
log first, then updates the collections. Writes are serialized across processes by an exclusive ``flock`` on
``<data_dir>/write.lock``, held only while one write runs; before writing, a store replays any logged change
its collections are missing (a writer that crashed between the two steps), so the log never disagrees with
what is read for long.

Retrieval score: ``similarity + 0.1 * (helpful - harmful) / (helpful + harmful + 2)``, so usage moves an
experience by at most 0.1, and only after several outcomes.
"""

from __future__ import annotations

import builtins
import functools
import math
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from debrief.learner.library import ApplyResult, Provenance
from debrief.learner.operations import Operation
from debrief.learner.words import experience_text_problem, normalize_experience_text
from debrief.server.chroma.client import connect
from debrief.server.errors import Conflict, InvalidInput
from debrief.server.settings import Settings
from debrief.server.store.history import active_texts, replay
from debrief.server.store.models import (
    Change,
    Counters,
    Edit,
    Experience,
    ExperienceState,
    ExportedExperience,
    LibraryExport,
    NamespaceInfo,
    ScoredExperience,
)
from debrief.server.store.namespace_view import REGISTRY, NewExperience, Record
from debrief.server.store.planning import plan_import, plan_operations, plan_rollback
from debrief.server.store.writer import Plan, Space, StoreCore

if TYPE_CHECKING:
    from debrief.server.embedding.embedder import Embedder

USAGE_WEIGHT = 0.1
"""How far usage can move a retrieval score (see the module docstring)."""


class AddResult(BaseModel):
    """What adding an experience did."""

    experience: Experience = Field(description="The new experience, or the existing near-duplicate.")
    created: bool = Field(description="False when a near-duplicate was already active and was returned instead.")
    similarity: float | None = Field(description="Cosine similarity to that near-duplicate, when one was found.")
    version: int = Field(description="Library version after the call.")


class ChangeResult(BaseModel):
    """An experience after a change, and the library version it produced."""

    experience: Experience
    version: int = Field(description="Library version after the call.")


class ExperiencePage(BaseModel):
    """One page of a listing, oldest first."""

    items: list[Experience]
    next_cursor: str | None = Field(description="Pass it back as cursor for the next page; None at the end.")


def usage_score(similarity: float, counters: Counters) -> float:
    """Retrieval score: similarity nudged by helpful/harmful outcomes, by at most ``USAGE_WEIGHT``."""
    votes = counters.helpful - counters.harmful
    return similarity + USAGE_WEIGHT * votes / (counters.helpful + counters.harmful + 2)


def flagged(counters: Counters) -> bool:
    """Whether an experience needs review: it hurt more often than it helped, at least twice."""
    return counters.harmful > counters.helpful and counters.harmful >= 2


class ExperienceStore(StoreCore):
    """Versioned experience libraries, one per namespace, in Chroma. Every public method is async."""

    @classmethod
    async def open(cls, settings: Settings, embedder: Embedder) -> ExperienceStore:
        """Connect to Chroma as ``settings`` say and check the store was built with this embedder."""
        connection = await connect(settings)
        store = cls(settings=settings, embedder=embedder, connection=connection)
        try:
            store._registry = await store._run(store._collection, REGISTRY, {"hnsw:space": "l2"}, True)
        except BaseException:
            await connection.aclose()
            raise
        return store

    @property
    def chroma_client(self) -> Any:
        """The Chroma client of this store (shared outcomes and runs sit beside the libraries with a chroma_url)."""
        return self._client

    async def aclose(self) -> None:
        """Release locks and the Chroma connection (the last process out stops a shared Chroma host)."""
        await self.settle()
        self._spaces.clear()
        await self._connection.aclose()

    # ---- single-experience edits -------------------------------------------------------------------

    async def add(
        self, namespace: str, text: str, *, note: str | None = None, source: Provenance | None = None
    ) -> AddResult:
        """Add an experience, or return the active near-duplicate (similarity above the dedup threshold)."""
        namespace = self._namespace(namespace)
        clean = self._text(text)
        reason = self._note(note, "note") or "added"
        vectors = await self._embed([clean])
        experience_id = f"{namespace}:{secrets.token_hex(6)}"
        duplicate: list[tuple[Record, float]] = []

        async def planner(space: Space) -> Plan | None:
            [near] = await self._run(space.view.nearest, [vectors[clean]], 1)
            if near and near[0][1] > self._settings.dedup_threshold:
                duplicate[:] = near[:1]
                return None
            edit = Edit(experience_id=experience_id, before=None, after=ExperienceState(text=clean, status="active"))
            return Plan(
                kind="add", reason=reason, source=source or Provenance(kind="manual"), edits=[edit], vectors=vectors
            )

        change, version = await self._write(namespace, planner)
        if change is None:
            record, similarity = duplicate[0]
            return AddResult(experience=record.experience(), created=False, similarity=similarity, version=version)
        return AddResult(experience=await self.get(experience_id), created=True, similarity=None, version=version)

    async def update(self, experience_id: str, text: str, *, note: str | None = None) -> ChangeResult:
        """Rewrite an active experience, keeping its id; the old text stays in the history."""
        namespace = self._experience_namespace(experience_id)
        clean = self._text(text)
        reason = self._note(note, "note") or "updated"
        vectors = await self._embed([clean])

        async def planner(space: Space) -> Plan | None:
            record = await self._record(space, experience_id)
            if record.status != "active":
                raise Conflict(f"experience {experience_id!r} is retired: add the text as a new experience instead")
            if record.text == clean:
                return None
            before = ExperienceState(text=record.text, status="active")
            edit = Edit(experience_id=experience_id, before=before, after=ExperienceState(text=clean, status="active"))
            return Plan(kind="update", reason=reason, source=Provenance(kind="manual"), edits=[edit], vectors=vectors)

        _, version = await self._write(namespace, planner, create=False)
        return ChangeResult(experience=await self.get(experience_id), version=version)

    async def retire(self, experience_id: str, reason: str, *, source: Provenance | None = None) -> ChangeResult:
        """Retire an active experience: it is no longer retrieved, but kept (and restorable by rollback).

        ``source`` says what retired it (default: a person or client).
        """
        namespace = self._experience_namespace(experience_id)
        why = self._note(reason, "reason", required=True) or ""

        async def planner(space: Space) -> Plan | None:
            record = await self._record(space, experience_id)
            if record.status != "active":
                raise Conflict(f"experience {experience_id!r} is already retired (since version {record.version})")
            before = ExperienceState(text=record.text, status="active")
            after = ExperienceState(text=record.text, status="retired")
            edit = Edit(experience_id=experience_id, before=before, after=after)
            return Plan(kind="retire", reason=why, source=source or Provenance(kind="manual"), edits=[edit])

        _, version = await self._write(namespace, planner, create=False)
        return ChangeResult(experience=await self.get(experience_id), version=version)

    # ---- reads -------------------------------------------------------------------------------------

    async def get(self, experience_id: str) -> Experience:
        """One experience, active or retired."""
        namespace = self._experience_namespace(experience_id)
        await self.settle()
        return (await self._record(await self._fresh(await self._space(namespace)), experience_id)).experience()

    async def list(
        self,
        namespace: str,
        *,
        cursor: str | None = None,
        limit: int = 50,
        status: Literal["active", "retired", "all"] = "active",
        flagged_only: bool = False,
    ) -> ExperiencePage:
        """A page of a namespace's experiences, oldest first."""
        namespace = self._namespace(namespace)
        limit = self._page_limit(limit)
        await self.settle()
        if status not in ("active", "retired", "all"):
            raise InvalidInput(f"status {status!r} is not valid: use 'active', 'retired' or 'all'")
        after = (0, -1)
        if cursor is not None:
            try:
                version, seq = (int(part) for part in cursor.split("."))
            except ValueError:
                raise InvalidInput(f"cursor {cursor!r} is not valid: pass back a next_cursor from list") from None
            after = (version, seq)
        space = await self._fresh(await self._space(namespace))
        if space is None:
            return ExperiencePage(items=[], next_cursor=None)
        records = await self._run(functools.partial(space.view.all, status, min_created_version=after[0]))
        chosen = [r for r in records if r.order > after and (not flagged_only or flagged(r.counters))]
        page = chosen[:limit]
        more = len(chosen) > limit
        next_cursor = f"{page[-1].order[0]}.{page[-1].order[1]}" if more else None
        return ExperiencePage(items=[r.experience() for r in page], next_cursor=next_cursor)

    async def retrieve(
        self, namespace: str, task: str, *, k: int = 5, min_score: float | None = None
    ) -> builtins.list[ScoredExperience]:
        """The ``k`` active experiences that best fit ``task``, best first; counts them as retrieved."""
        found = await self.relevant(namespace, task, k=k, min_score=min_score)
        if found:
            increments = {item.experience_id: {"retrieved": 1} for item in found}
            if not self._count_later(namespace, increments):
                await self._bump(namespace, increments)
            for item in found:
                item.counters.retrieved += 1
        return found

    async def relevant(
        self, namespace: str, task: str, *, k: int = 5, min_score: float | None = None
    ) -> builtins.list[ScoredExperience]:
        """Like :meth:`retrieve`, without counting a retrieval (for the learner's own lookups)."""
        namespace = self._namespace(namespace)
        if not task.strip():
            raise InvalidInput("task must not be empty: describe the task to find experiences for")
        size = len(task.encode())
        if size > self._limits.task_bytes:
            raise InvalidInput(f"task is {size} bytes; the limit is {self._limits.task_bytes}: summarize it")
        if not 1 <= k <= self._limits.retrieve_k:
            raise InvalidInput(f"k {k!r} is out of range: use 1 to {self._limits.retrieve_k}")
        if min_score is not None and not math.isfinite(min_score):
            raise InvalidInput(f"min_score {min_score!r} must be a finite number, for example 0.3")
        space = await self._fresh(await self._space(namespace))
        if space is None:
            return []
        vectors = await self._embed([task])
        [near] = await self._run(space.view.nearest, [vectors[task]], k + max(5, k))
        scored = [
            ScoredExperience(
                experience_id=record.experience_id,
                text=record.text,
                score=usage_score(similarity, record.counters),
                similarity=similarity,
                counters=record.counters,
            )
            for record, similarity in near
        ]
        scored.sort(key=lambda item: -item.score)
        return [item for item in scored if min_score is None or item.score >= min_score][:k]

    async def active(self, namespace: str) -> builtins.list[Experience]:
        """Every active experience of a namespace, oldest first (unpaged: for the learner)."""
        namespace = self._namespace(namespace)
        space = await self._fresh(await self._space(namespace))
        records = await self._run(space.view.all, "active") if space is not None else []
        return [record.experience() for record in records]

    async def version(self, namespace: str) -> int:
        """The namespace's current library version (0 before its first change)."""
        namespace = self._namespace(namespace)
        space = await self._space(namespace)
        return await self._run(space.log.head) if space is not None else 0

    async def namespaces(self) -> builtins.list[NamespaceInfo]:
        """Every namespace with its library version and sizes."""
        got = await self._run(functools.partial(self._registry.get, include=["metadatas"]))
        infos: list[NamespaceInfo] = []
        for name in sorted(str(meta["namespace"]) for meta in got["metadatas"] or []):
            space = await self._space(name)
            if space is None:
                continue
            version = await self._run(space.log.head)
            active = await self._run(space.view.active.count) if space.view.active is not None else 0
            retired = await self._run(space.view.retired.count) if space.view.retired is not None else 0
            infos.append(NamespaceInfo(namespace=name, version=version, active=active, retired=retired))
        return infos

    async def record_usage(self, experience_ids: Sequence[str], *, helpful: bool) -> builtins.list[str]:
        """Count an outcome for each experience: helpful or harmful; returns the ids counted (unknown ids are not)."""
        by_namespace: dict[str, dict[str, dict[str, int]]] = {}
        for experience_id in experience_ids:
            namespace = self._experience_namespace(experience_id)
            by_namespace.setdefault(namespace, {})[experience_id] = {"helpful" if helpful else "harmful": 1}
        counted: builtins.list[str] = []
        for namespace, increments in by_namespace.items():
            counted += await self._bump(namespace, increments)
        return counted

    async def add_counts(self, namespace: str, counts: dict[str, tuple[int, int]]) -> builtins.list[str]:
        """Add ``(helpful, harmful)`` counts to experiences of ``namespace`` (a learning step's credit)."""
        increments = {key: {"helpful": helpful, "harmful": harmful} for key, (helpful, harmful) in counts.items()}
        return await self._bump(namespace, increments) if increments else []

    # ---- history -----------------------------------------------------------------------------------

    async def history(self, namespace: str, *, since_version: int = 0, limit: int = 100) -> builtins.list[Change]:
        """Changes with version above ``since_version``, oldest first."""
        namespace = self._namespace(namespace)
        limit = self._page_limit(limit)
        if since_version < 0:
            raise InvalidInput(f"since_version {since_version!r} must be 0 or more")
        space = await self._space(namespace)
        if space is None:
            return []
        head = await self._run(space.log.head)
        last = min(head, since_version + limit)
        return await self._run(space.log.read, since_version + 1, last) if last > since_version else []

    async def library_at(self, namespace: str, version: int) -> builtins.list[ExportedExperience]:
        """The active library as it was at ``version`` (oldest first), with today's counters and sources."""
        namespace = self._namespace(namespace)
        space, _ = await self._checked_version(namespace, version)
        if space is None:
            return []
        texts = active_texts(await self._states(space, version))
        records = await self._run(space.view.fetch, builtins.list(texts))
        return [
            ExportedExperience(
                experience_id=key,
                text=text,
                counters=records[key].counters if key in records else Counters(),
                source=records[key].experience().source if key in records else None,
            )
            for key, text in texts.items()
        ]

    async def rollback(self, namespace: str, version: int, *, reason: str) -> Change:
        """Make the active library exactly what it was at ``version``, as a new change that keeps every id."""
        namespace = self._namespace(namespace)
        why = self._note(reason, "reason", required=True) or ""
        _, head = await self._checked_version(namespace, version)
        if version == head:
            raise Conflict(f"namespace {namespace!r} is already at version {version}: nothing to roll back")

        async def planner(space: Space) -> Plan | None:
            head = await self._run(space.log.head)
            if version == head:
                raise Conflict(f"namespace {namespace!r} is already at version {version}: nothing to roll back")
            changes = await self._run(space.log.read, 1, head)
            target = replay(c for c in changes if c.version <= version)
            edits = plan_rollback(replay(changes), target)
            if not edits:
                raise Conflict(
                    f"the active library of {namespace!r} at version {head} already equals version {version}"
                )
            return Plan(kind="rollback", reason=why, source=Provenance(kind="rollback"), edits=edits)

        change, _ = await self._write(namespace, planner, create=False)
        assert change is not None
        return change

    # ---- bulk: export, import, learner operations -------------------------------------------------

    async def export(self, namespace: str) -> LibraryExport:
        """Every experience of a namespace, active and retired, as portable JSON."""
        namespace = self._namespace(namespace)
        await self.settle()
        space = await self._fresh(await self._space(namespace))
        records = await self._run(space.view.all, "all") if space is not None else []
        version = await self._run(space.log.head) if space is not None else 0
        return LibraryExport(
            namespace=namespace,
            version=version,
            exported_at=datetime.now(UTC),
            experiences=[
                ExportedExperience(
                    experience_id=r.experience_id,
                    text=r.text,
                    status=r.status,
                    counters=r.counters,
                    source=r.experience().source,
                )
                for r in records
            ],
        )

    async def import_library(
        self, namespace: str, data: LibraryExport, *, mode: Literal["merge", "replace"], trust_export: bool = False
    ) -> Change | None:
        """Import an export as one change: ``merge`` adds what is missing, ``replace`` makes it the library.

        An export file's claims are not trusted: new experiences get this import as their source and counters
        start at zero, so a forged record cannot outrank honest lessons. ``trust_export`` (an operator restoring
        their own backup) keeps the export's sources and counters.
        """
        namespace = self._namespace(namespace)
        if mode not in ("merge", "replace"):
            raise InvalidInput(f"mode {mode!r} is not valid: use 'merge' or 'replace'")
        if len(data.experiences) > self._limits.import_items:
            raise InvalidInput(
                f"the import has {len(data.experiences)} experiences; the limit is {self._limits.import_items}: "
                "split it"
            )
        items = [item for item in data.experiences if item.status == "active"]
        problems = []
        for item in items:
            try:
                self._text(item.text)
            except InvalidInput as error:
                problems.append(f"{item.experience_id!r}: {error}")
        if problems:
            raise InvalidInput(
                f"{len(problems)} imported experiences are not valid; fix them: " + "; ".join(problems[:5])
            )
        texts = [normalize_experience_text(item.text) for item in items]
        vectors = await self._embed(texts)
        reason = (
            f"{mode} import of {len(items)} active experiences, imported from an export of {data.namespace!r} "
            f"version {data.version} (exported {data.exported_at.isoformat()}); "
            + ("trusted: sources and counters kept" if trust_export else "sources replaced, counters reset")
        )

        async def planner(space: Space) -> Plan | None:
            states = await self._current_states(space)
            nearest: dict[str, tuple[str, float]] = {}
            if mode == "merge":
                nearest = await self._nearest(space, vectors)
            edits, created = plan_import(
                namespace,
                items,
                mode=mode,
                states=states,
                nearest=nearest,
                threshold=self._settings.dedup_threshold,
                new_id=lambda: f"{namespace}:{secrets.token_hex(6)}",
            )
            new = {
                c.experience_id: NewExperience(
                    source=c.item.source if trust_export else Provenance(kind="import"),
                    counters=c.item.counters if trust_export else Counters(),
                )
                for c in created
            }
            return Plan(
                kind="import", reason=reason, source=Provenance(kind="import"), edits=edits, vectors=vectors, new=new
            )

        change, _ = await self._write(namespace, planner)
        return change

    async def apply(
        self, namespace: str, operations: Sequence[Operation], *, provenance: Provenance, reason: str
    ) -> ApplyResult:
        """Apply learner operations as one ``learn`` change; invalid ones come back rejected with a reason."""
        namespace = self._namespace(namespace)
        why = self._note(reason, "reason", required=True) or ""
        texts = [
            normalize_experience_text(op.text)
            for op in operations
            if op.op != "delete" and experience_text_problem(op.text) is None
        ]
        vectors = await self._embed(texts)
        outcome: dict[str, Any] = {}

        async def planner(space: Space) -> Plan | None:
            named = {op.experience_id for op in operations if op.op in ("modify", "delete")}
            named |= {key for op in operations if op.op == "merge" for key in op.experience_ids}
            records = await self._run(space.view.fetch, sorted(named))
            states = {key: ExperienceState(text=r.text, status=r.status) for key, r in records.items()}
            nearest = await self._nearest(space, vectors)
            plan = plan_operations(
                namespace,
                operations,
                states=states,
                nearest=nearest,
                vectors=vectors,
                threshold=self._settings.dedup_threshold,
                new_id=lambda: f"{namespace}:{secrets.token_hex(6)}",
            )
            outcome["plan"] = plan
            return Plan(kind="learn", reason=why, source=provenance, edits=plan.edits, vectors=vectors)

        _, version = await self._write(namespace, planner)
        plan = outcome["plan"]
        return ApplyResult(version=version, applied=plan.applied_operations(), rejected=tuple(plan.rejected))
