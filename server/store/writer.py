"""The machinery under the experience store: validation, Chroma access and the write path.

A write runs under :class:`~debrief.server.chroma.locks.WriteLock`: catch up on logged changes the collections miss,
plan, claim the next version in the change log (retrying after catching up if another host took it), then update
the collections. All synchronous Chroma calls go through :meth:`StoreCore._run`, in a worker thread.
"""

from __future__ import annotations

import builtins
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread
import httpx
from anyio.abc import TaskGroup

from debrief.learner.library import Provenance
from debrief.learner.words import experience_text_problem, normalize_experience_text
from debrief.server.chroma.client import ChromaConnection
from debrief.server.chroma.locks import WriteLock
from debrief.server.errors import InvalidInput, NotFound, StoreUnavailable
from debrief.server.settings import Settings
from debrief.server.store.history import ChangeLog, replay
from debrief.server.store.models import (
    Change,
    ChangeKind,
    Edit,
    ExperienceState,
    check_namespace,
)
from debrief.server.store.namespace_view import NamespaceView, NewExperience, Record, collection_name
from debrief.server.store.planning import id_namespace

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from debrief.server.embedding.embedder import Embedder

T = TypeVar("T")


def shorten(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters for an error message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(kw_only=True)
class Plan:
    """One change a planner wants recorded, with vectors and creation details for new experiences."""

    kind: ChangeKind
    reason: str
    source: Provenance
    edits: list[Edit]
    vectors: dict[str, list[float]] = field(default_factory=dict)
    new: dict[str, NewExperience] = field(default_factory=dict)


@dataclass
class Space:
    """A namespace's collections: its current view and its change log."""

    namespace: str
    view: NamespaceView
    log: ChangeLog


Planner = Callable[[Space], Awaitable[Plan | None]]


class StoreCore:
    """State and internals shared by the store's public methods."""

    def __init__(self, *, settings: Settings, embedder: Embedder, connection: ChromaConnection) -> None:
        self._settings = settings
        self._limits = settings.limits
        self._embedder = embedder
        self._connection = connection
        self._client: Any = connection.client
        self._write_lock = WriteLock(settings.data_dir / "write.lock")
        self._spaces: dict[str, Space] = {}
        self._verified: dict[str, int] = {}
        """Per namespace, the newest logged version this process has seen applied (reads check past it)."""
        self._registry: Any = None
        self._registered: set[str] = set()
        self._background: TaskGroup | None = None
        self._pending_counts: dict[str, dict[str, dict[str, int]]] = {}
        self._flushing: set[str] = set()
        self._counting = 0
        self._counted = anyio.Event()
        self._counted.set()

    def count_in_background(self, task_group: TaskGroup) -> None:
        """Record retrieval counts after answering, in ``task_group`` (the server's), off the request's path.

        Reads that report counters (get, list, export) first wait for counts still being written, so a client
        always sees its own retrievals counted.
        """
        self._background = task_group

    def _count_later(self, namespace: str, increments: dict[str, dict[str, int]]) -> bool:
        if self._background is None:
            return False
        pending = self._pending_counts.setdefault(namespace, {})
        for experience_id, counts in increments.items():
            merged = pending.setdefault(experience_id, {})
            for key, amount in counts.items():
                merged[key] = merged.get(key, 0) + amount
        if namespace not in self._flushing:
            self._flushing.add(namespace)
            if self._counting == 0:
                self._counted = anyio.Event()
            self._counting += 1
            self._background.start_soon(self._flush_counts, namespace)
        return True

    async def _flush_counts(self, namespace: str) -> None:
        # Counts that arrive while one write runs are merged and written together by the next one.
        try:
            while pending := self._pending_counts.pop(namespace, None):
                try:
                    await self._bump(namespace, pending)
                except Exception:  # a lost usage count must not take the server down
                    logger.exception("could not record retrieval counts in %r", namespace)
        finally:
            self._flushing.discard(namespace)
            self._counting -= 1
            if self._counting == 0:
                self._counted.set()

    async def settle(self) -> None:
        """Wait until retrieval counts written in the background are stored."""
        await self._counted.wait()

    def _namespace(self, namespace: str) -> str:
        try:
            return check_namespace(namespace)
        except ValueError as error:
            raise InvalidInput(str(error)) from None

    def _text(self, text: str) -> str:
        problem = experience_text_problem(text)
        if problem is not None:
            raise InvalidInput(f"experience text {shorten(text)!r} is not accepted: {problem}")
        clean = normalize_experience_text(text)
        size = len(clean.encode())
        if size > self._limits.experience_bytes:
            raise InvalidInput(
                f"experience text {shorten(clean)!r} is {size} bytes; the limit is {self._limits.experience_bytes}: "
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
            raise InvalidInput(f"{what} {shorten(note)!r} is {size} bytes; the limit is {self._limits.note_bytes}")
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

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        try:
            return await anyio.to_thread.run_sync(functools.partial(function, *args))
        except httpx.TransportError as error:
            # The shared host died: restart it (the next call then works); this call is not retried, since it
            # may have been applied before the server went away.
            with anyio.CancelScope(shield=True):
                revived = await self._connection.revive()
            if revived:
                raise StoreUnavailable(
                    f"the shared Chroma server at {self._connection.where} had stopped and was restarted; retry the "
                    "call (a write that was cut off is completed from the change log by the next one)"
                ) from error
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

    def _space_sync(self, namespace: str, create: bool) -> Space | None:
        cached = self._spaces.get(namespace)
        if cached is not None:
            return cached
        log = self._collection(collection_name(namespace, "log"), {"hnsw:space": "l2"}, create)
        if log is None:
            return None
        vectors = {"hnsw:space": "cosine"}
        active = self._collection(collection_name(namespace, "active"), vectors, create)
        retired = self._collection(collection_name(namespace, "retired"), vectors, create)
        space = Space(namespace, NamespaceView(active, retired), ChangeLog(log))
        if active is not None and retired is not None:
            self._spaces[namespace] = space
        return space

    async def _space(self, namespace: str, *, create: bool = False) -> Space | None:
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

    async def _apply_change(
        self, space: Space, change: Change, vectors: dict[str, list[float]], new: dict[str, NewExperience]
    ) -> None:
        missing = await self._run(space.view.write, change, vectors, new)
        if missing:
            vectors = {**vectors, **await self._embed(sorted(missing))}
            missing = await self._run(space.view.write, change, vectors, new)
            assert not missing

    async def _catch_up(self, space: Space) -> int:
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

    async def _fresh(self, space: Space | None) -> Space | None:
        """``space``, with every logged change applied: a reader never sees a version's number with older content.

        A writer that died between logging a change and updating the collections left the change half-done; the
        first read after that completes it (under the write lock, as a write would). One count per read otherwise.
        """
        if space is None:
            return None
        head = await self._run(space.log.head)
        if head <= self._verified.get(space.namespace, 0):
            return space
        [change] = await self._run(space.log.read, head, head)
        if not await self._run(space.view.has_applied, change):
            async with self._write_lock.hold():
                head = await self._catch_up(space)
        self._verified[space.namespace] = max(head, self._verified.get(space.namespace, 0))
        return space

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

    async def _record(self, space: Space | None, experience_id: str) -> Record:
        records = await self._run(space.view.fetch, [experience_id]) if space is not None else {}
        record = records.get(experience_id)
        if record is None:
            raise NotFound(f"no experience {experience_id!r}: list the namespace to see the ids it has")
        return record

    async def _bump(self, namespace: str, increments: dict[str, dict[str, int]]) -> list[str]:
        space = await self._space(namespace)
        if space is None:
            return []
        async with self._write_lock.hold():
            return await self._run(space.view.bump, increments)

    async def _states(self, space: Space, version: int) -> dict[str, ExperienceState]:
        return replay(await self._run(space.log.read, 1, version)) if version > 0 else {}

    async def _checked_version(self, namespace: str, version: int) -> tuple[Space | None, int]:
        if version < 0:
            raise InvalidInput(f"version {version!r} must be 0 (the empty library) or more")
        space = await self._space(namespace)
        head = await self._run(space.log.head) if space is not None else 0
        if version > head:
            raise NotFound(f"namespace {namespace!r} is at version {head}; there is no version {version}")
        return space, head

    async def _nearest(self, space: Space, vectors: dict[str, builtins.list[float]]) -> dict[str, tuple[str, float]]:
        """For each text, the most similar active experience and its similarity."""
        texts = builtins.list(vectors)
        rows = await self._run(space.view.nearest, [vectors[text] for text in texts], 1)
        return {text: (row[0][0].experience_id, row[0][1]) for text, row in zip(texts, rows, strict=True) if row}

    async def _current_states(self, space: Space) -> dict[str, ExperienceState]:
        records = await self._run(space.view.all, "all")
        return {r.experience_id: ExperienceState(text=r.text, status=r.status) for r in records}
