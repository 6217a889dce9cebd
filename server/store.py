"""The versioned experience store: experiences in Chroma, every change recorded, any version restorable.

Each namespace has its own collections (see :mod:`server.library_view`) and an append-only change log (see
:mod:`server.history`), the source of truth: every change claims the next version in the log first, then
updates the collections. Writes are serialized across processes by an exclusive ``flock`` on
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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio.to_thread
import httpx
from pydantic import BaseModel, Field

from learner.library import ApplyResult, Provenance
from learner.operations import Operation
from learner.words import experience_text_problem, normalize_experience_text
from server.chroma_client import ChromaConnection, connect
from server.errors import Conflict, InvalidInput, NotFound, StoreUnavailable
from server.history import ChangeLog, active_texts, replay
from server.library_view import REGISTRY, NamespaceView, NewExperience, Record, collection_name
from server.locks import WriteLock
from server.models import (
    Change,
    ChangeKind,
    Counters,
    Edit,
    Experience,
    ExperienceState,
    ExportedExperience,
    LibraryExport,
    NamespaceInfo,
    ScoredExperience,
    check_namespace,
)
from server.planning import id_namespace, plan_import, plan_operations, plan_rollback
from server.settings import Settings

if TYPE_CHECKING:
    from learner.library import Library
    from server.embedder import Embedder

T = TypeVar("T")
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


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(kw_only=True)
class _Plan:
    kind: ChangeKind
    reason: str
    source: Provenance
    edits: list[Edit]
    vectors: dict[str, list[float]] = field(default_factory=dict)
    new: dict[str, NewExperience] = field(default_factory=dict)


@dataclass
class _Space:
    namespace: str
    view: NamespaceView
    log: ChangeLog


Planner = Callable[[_Space], Awaitable[_Plan | None]]


class ExperienceStore:
    """Versioned experience libraries, one per namespace, in Chroma. Every public method is async."""

    def __init__(self, *, settings: Settings, embedder: Embedder, connection: ChromaConnection) -> None:
        self._settings = settings
        self._limits = settings.limits
        self._embedder = embedder
        self._connection = connection
        self._client: Any = connection.client
        self._write_lock = WriteLock(settings.data_dir / "write.lock")
        self._spaces: dict[str, _Space] = {}
        self._registry: Any = None
        self._registered: set[str] = set()

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

    async def aclose(self) -> None:
        """Release locks and the Chroma connection (the last process out stops a shared Chroma host)."""
        self._spaces.clear()
        await self._connection.aclose()

    # ---- validation -------------------------------------------------------------------------------

    def _namespace(self, namespace: str) -> str:
        try:
            return check_namespace(namespace)
        except ValueError as error:
            raise InvalidInput(str(error)) from None

    def _text(self, text: str) -> str:
        problem = experience_text_problem(text)
        if problem is not None:
            raise InvalidInput(f"experience text {_short(text)!r} is not accepted: {problem}")
        clean = normalize_experience_text(text)
        size = len(clean.encode())
        if size > self._limits.experience_bytes:
            raise InvalidInput(
                f"experience text {_short(clean)!r} is {size} bytes; the limit is {self._limits.experience_bytes}: "
                "shorten it"
            )
        return clean

    def _note(self, note: str | None, what: str, *, required: bool = False) -> str | None:
        if note is None or not note.strip():
            if required:
                raise InvalidInput(f"{what} must not be empty: say why, in a sentence")
            return None
        size = len(note.encode())
        if size > self._limits.note_bytes:
            raise InvalidInput(f"{what} {_short(note)!r} is {size} bytes; the limit is {self._limits.note_bytes}")
        return note.strip()

    def _experience_namespace(self, experience_id: str) -> str:
        namespace = id_namespace(experience_id)
        if namespace is None:
            raise InvalidInput(
                f"experience id {experience_id!r} is not valid: ids look like 'namespace:0123456789ab' "
                "(as returned by add, list or retrieve)"
            )
        return namespace

    def _page_limit(self, limit: int, what: str = "limit") -> int:
        if not 1 <= limit <= self._limits.page_size:
            raise InvalidInput(f"{what} {limit!r} is out of range: use 1 to {self._limits.page_size}")
        return limit

    # ---- chroma access (all synchronous Chroma calls go through _run) ------------------------------

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        try:
            return await anyio.to_thread.run_sync(functools.partial(function, *args))
        except httpx.TransportError as error:
            raise StoreUnavailable(
                f"the Chroma server at {self._connection.where} did not answer ({error!r}); check that it runs"
            ) from error

    def _collection(self, name: str, metadata: dict[str, Any], create: bool) -> Any:
        import chromadb.errors

        try:
            collection = self._client.get_collection(name, embedding_function=None)
        except chromadb.errors.NotFoundError:
            if not create:
                return None
            full = {**metadata, "embedder": self._embedder.name, "dimension": self._embedder.dimension}
            try:
                return self._client.create_collection(name, metadata=full, embedding_function=None)
            except chromadb.errors.ChromaError:  # created meanwhile by another process
                collection = self._client.get_collection(name, embedding_function=None)
        stored = collection.metadata or {}
        if (stored.get("embedder"), stored.get("dimension")) != (self._embedder.name, self._embedder.dimension):
            raise StoreUnavailable(
                f"the store at {self._connection.where} was built with embedder {stored.get('embedder')!r} "
                f"(dimension {stored.get('dimension')!r}), not {self._embedder.name!r} "
                f"(dimension {self._embedder.dimension}): configure that embedder, or use another data dir"
            )
        return collection

    def _space_sync(self, namespace: str, create: bool) -> _Space | None:
        cached = self._spaces.get(namespace)
        if cached is not None:
            return cached
        log = self._collection(collection_name(namespace, "log"), {"hnsw:space": "l2"}, create)
        if log is None:
            return None
        vectors = {"hnsw:space": "cosine"}
        active = self._collection(collection_name(namespace, "active"), vectors, create)
        retired = self._collection(collection_name(namespace, "retired"), vectors, create)
        space = _Space(namespace, NamespaceView(active, retired), ChangeLog(log))
        if active is not None and retired is not None:
            self._spaces[namespace] = space
        return space

    async def _space(self, namespace: str, *, create: bool = False) -> _Space | None:
        return await self._run(self._space_sync, namespace, create)

    def _register(self, namespace: str) -> None:
        self._registry.upsert(
            ids=[namespace], embeddings=[[0.0]], documents=[namespace], metadatas=[{"namespace": namespace}]
        )

    async def _embed(self, texts: Sequence[str]) -> dict[str, list[float]]:
        unique = list(dict.fromkeys(texts))
        if not unique:
            return {}
        vectors = await self._embedder.embed(unique)
        return {text: [float(x) for x in vector] for text, vector in zip(unique, vectors, strict=True)}

    # ---- the write path ----------------------------------------------------------------------------

    async def _apply_change(
        self, space: _Space, change: Change, vectors: dict[str, list[float]], new: dict[str, NewExperience]
    ) -> None:
        missing = await self._run(space.view.write, change, vectors, new)
        if missing:
            vectors = {**vectors, **await self._embed(sorted(missing))}
            missing = await self._run(space.view.write, change, vectors, new)
            assert not missing

    async def _catch_up(self, space: _Space) -> int:
        """Apply logged changes the collections miss (left by a writer that died); return the head version."""
        head = await self._run(space.log.head)
        first = head + 1
        while first > 1:
            [change] = await self._run(space.log.read, first - 1, first - 1)
            if await self._run(space.view.has_applied, change):
                break
            first -= 1
        if first <= head:
            for change in await self._run(space.log.read, first, head):
                await self._apply_change(space, change, {}, {})
        return head

    async def _write(self, namespace: str, planner: Planner, *, create: bool = True) -> tuple[Change | None, int]:
        """Plan and record one change under the write lock; ``(None, version)`` when there was nothing to do."""
        async with self._write_lock.hold():
            space = await self._space(namespace, create=create)
            if space is None:
                raise NotFound(f"namespace {namespace!r} has no experiences yet: add one first")
            head = await self._catch_up(space)
            while True:
                plan = await planner(space)
                if plan is None or not plan.edits:
                    return None, head
                change = Change(
                    namespace=namespace,
                    version=head + 1,
                    kind=plan.kind,
                    reason=plan.reason,
                    source=plan.source,
                    at=datetime.now(UTC),
                    edits=plan.edits,
                )
                if await self._run(space.log.claim, change):
                    break
                # Another host sharing this Chroma server took the version: catch up and plan again.
                head = await self._catch_up(space)
            if namespace not in self._registered:
                await self._run(self._register, namespace)
                self._registered.add(namespace)
            await self._apply_change(space, change, plan.vectors, plan.new)
            return change, change.version

    async def _record(self, space: _Space | None, experience_id: str) -> Record:
        records = await self._run(space.view.fetch, [experience_id]) if space is not None else {}
        record = records.get(experience_id)
        if record is None:
            raise NotFound(f"no experience {experience_id!r}: list the namespace to see the ids it has")
        return record

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

        async def planner(space: _Space) -> _Plan | None:
            [near] = await self._run(space.view.nearest, [vectors[clean]], 1)
            if near and near[0][1] > self._settings.dedup_threshold:
                duplicate[:] = near[:1]
                return None
            edit = Edit(experience_id=experience_id, before=None, after=ExperienceState(text=clean, status="active"))
            return _Plan(
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

        async def planner(space: _Space) -> _Plan | None:
            record = await self._record(space, experience_id)
            if record.status != "active":
                raise Conflict(f"experience {experience_id!r} is retired: add the text as a new experience instead")
            if record.text == clean:
                return None
            before = ExperienceState(text=record.text, status="active")
            edit = Edit(experience_id=experience_id, before=before, after=ExperienceState(text=clean, status="active"))
            return _Plan(kind="update", reason=reason, source=Provenance(kind="manual"), edits=[edit], vectors=vectors)

        _, version = await self._write(namespace, planner, create=False)
        return ChangeResult(experience=await self.get(experience_id), version=version)

    async def retire(self, experience_id: str, reason: str) -> ChangeResult:
        """Retire an active experience: it is no longer retrieved, but kept (and restorable by rollback)."""
        namespace = self._experience_namespace(experience_id)
        why = self._note(reason, "reason", required=True) or ""

        async def planner(space: _Space) -> _Plan | None:
            record = await self._record(space, experience_id)
            if record.status != "active":
                raise Conflict(f"experience {experience_id!r} is already retired (since version {record.version})")
            before = ExperienceState(text=record.text, status="active")
            after = ExperienceState(text=record.text, status="retired")
            edit = Edit(experience_id=experience_id, before=before, after=after)
            return _Plan(kind="retire", reason=why, source=Provenance(kind="manual"), edits=[edit])

        _, version = await self._write(namespace, planner, create=False)
        return ChangeResult(experience=await self.get(experience_id), version=version)

    # ---- reads -------------------------------------------------------------------------------------

    async def get(self, experience_id: str) -> Experience:
        """One experience, active or retired."""
        namespace = self._experience_namespace(experience_id)
        return (await self._record(await self._space(namespace), experience_id)).experience()

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
        if status not in ("active", "retired", "all"):
            raise InvalidInput(f"status {status!r} is not valid: use 'active', 'retired' or 'all'")
        after = (0, -1)
        if cursor is not None:
            try:
                version, seq = (int(part) for part in cursor.split("."))
            except ValueError:
                raise InvalidInput(f"cursor {cursor!r} is not valid: pass back a next_cursor from list") from None
            after = (version, seq)
        space = await self._space(namespace)
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
            await self._bump(namespace, {item.experience_id: {"retrieved": 1} for item in found})
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
        space = await self._space(namespace)
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
        space = await self._space(namespace)
        records = await self._run(space.view.all, "active") if space is not None else []
        return [record.experience() for record in records]

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

    async def _bump(self, namespace: str, increments: dict[str, dict[str, int]]) -> None:
        space = await self._space(namespace)
        if space is None:
            return
        async with self._write_lock.hold():
            await self._run(space.view.bump, increments)

    async def record_usage(self, experience_ids: Sequence[str], *, helpful: bool) -> None:
        """Count an outcome for each experience: helpful or harmful. Unknown ids are ignored."""
        by_namespace: dict[str, dict[str, dict[str, int]]] = {}
        for experience_id in experience_ids:
            namespace = self._experience_namespace(experience_id)
            by_namespace.setdefault(namespace, {})[experience_id] = {"helpful" if helpful else "harmful": 1}
        for namespace, increments in by_namespace.items():
            await self._bump(namespace, increments)

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

    async def _states(self, space: _Space, version: int) -> dict[str, ExperienceState]:
        return replay(await self._run(space.log.read, 1, version)) if version > 0 else {}

    async def _checked_version(self, namespace: str, version: int) -> tuple[_Space | None, int]:
        if version < 0:
            raise InvalidInput(f"version {version!r} must be 0 (the empty library) or more")
        space = await self._space(namespace)
        head = await self._run(space.log.head) if space is not None else 0
        if version > head:
            raise NotFound(f"namespace {namespace!r} is at version {head}; there is no version {version}")
        return space, head

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

        async def planner(space: _Space) -> _Plan | None:
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
            return _Plan(kind="rollback", reason=why, source=Provenance(kind="rollback"), edits=edits)

        change, _ = await self._write(namespace, planner, create=False)
        assert change is not None
        return change

    # ---- bulk: export, import, learner operations -------------------------------------------------

    async def export(self, namespace: str) -> LibraryExport:
        """Every experience of a namespace, active and retired, as portable JSON."""
        namespace = self._namespace(namespace)
        space = await self._space(namespace)
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
        self, namespace: str, data: LibraryExport, *, mode: Literal["merge", "replace"]
    ) -> Change | None:
        """Import an export as one change: ``merge`` adds what is missing, ``replace`` makes it the library."""
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
        reason = f"{mode} import of {len(items)} active experiences from {data.namespace!r} version {data.version}"

        async def planner(space: _Space) -> _Plan | None:
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
            new = {c.experience_id: NewExperience(source=c.item.source, counters=c.item.counters) for c in created}
            return _Plan(
                kind="import", reason=reason, source=Provenance(kind="import"), edits=edits, vectors=vectors, new=new
            )

        change, _ = await self._write(namespace, planner)
        return change

    async def _nearest(self, space: _Space, vectors: dict[str, builtins.list[float]]) -> dict[str, tuple[str, float]]:
        """For each text, the most similar active experience and its similarity."""
        texts = builtins.list(vectors)
        rows = await self._run(space.view.nearest, [vectors[text] for text in texts], 1)
        return {text: (row[0][0].experience_id, row[0][1]) for text, row in zip(texts, rows, strict=True) if row}

    async def _current_states(self, space: _Space) -> dict[str, ExperienceState]:
        records = await self._run(space.view.all, "all")
        return {r.experience_id: ExperienceState(text=r.text, status=r.status) for r in records}

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

        async def planner(space: _Space) -> _Plan | None:
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
            return _Plan(kind="learn", reason=why, source=provenance, edits=plan.edits, vectors=vectors)

        _, version = await self._write(namespace, planner)
        plan = outcome["plan"]
        return ApplyResult(version=version, applied=plan.applied_operations(), rejected=tuple(plan.rejected))

    def library(self, namespace: str) -> Library:
        """This namespace as the learner's :class:`~learner.library.Library`."""
        from server.store_library import StoreLibrary

        return StoreLibrary(self, self._namespace(namespace))
