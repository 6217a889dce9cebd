"""The current state of a namespace's experiences in Chroma, derived from its change log.

Per namespace there are three collections: ``…-active`` (active experiences with their vectors, the only
one retrieval queries), ``…-retired`` (retired ones, vectors kept so reactivation costs nothing) and
``…-log`` (the change log, see :mod:`debrief.server.store.history`). Retired experiences live apart because a
``where={"status": "active"}`` filter made queries 10-15x slower even with 99 % of items matching
(see notes/store.md). Everything here is synchronous: the store calls it from worker threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from debrief.learner.library import Provenance
from debrief.server.store.models import Change, Counters, Experience, ExperienceStatus

_PAGE = 5000
"""Records per paged read."""
_QUERY_BATCH = 500
"""Query vectors per request."""
_CHUNK = 1000
COUNTER_KEYS = ("retrieved", "helpful", "harmful")


def _escape(namespace: str) -> str:
    # Injective, and leaves no '.' so Chroma's rules (no '..', alphanumeric ends) always hold.
    return namespace.replace("_", "__").replace(".", "_d")


def collection_name(namespace: str, kind: str) -> str:
    """Chroma collection name of a namespace's ``active``, ``retired`` or ``log`` collection."""
    return f"dbf-{_escape(namespace)}-{kind}"


REGISTRY = "dbf-registry"
"""Collection listing namespaces (id = namespace) and how far their view has applied the log."""


@dataclass(kw_only=True)
class Record:
    """One experience as stored in the active or retired collection."""

    experience_id: str
    text: str
    metadata: dict[str, Any]
    embedding: list[float] | None = None

    @property
    def status(self) -> ExperienceStatus:
        """'active' or 'retired'."""
        return "active" if self.metadata["status"] == "active" else "retired"

    @property
    def version(self) -> int:
        """Version of the last change applied to this record."""
        return int(self.metadata["version"])

    @property
    def counters(self) -> Counters:
        """Usage counters."""
        return Counters(**{key: int(self.metadata.get(key, 0)) for key in COUNTER_KEYS})

    @property
    def order(self) -> tuple[int, int]:
        """Creation order within the namespace: (version that created it, position in that change)."""
        return int(self.metadata["created_version"]), int(self.metadata["seq"])

    def experience(self) -> Experience:
        """The wire model."""
        return Experience(
            experience_id=self.experience_id,
            namespace=str(self.metadata["namespace"]),
            text=self.text,
            status=self.status,
            created_at=datetime.fromisoformat(str(self.metadata["created_at"])),
            updated_at=datetime.fromisoformat(str(self.metadata["updated_at"])),
            source=Provenance.model_validate_json(str(self.metadata["source"])),
            counters=self.counters,
            version=self.version,
        )


@dataclass(kw_only=True)
class NewExperience:
    """What a change does not itself record about an experience it creates (set only on creation)."""

    source: Provenance | None = None
    counters: Counters = field(default_factory=Counters)


def _records(got: dict[str, Any], *, with_embeddings: bool) -> list[Record]:
    embeddings = got.get("embeddings") if with_embeddings else None
    return [
        Record(
            experience_id=key,
            text=document,
            metadata=dict(metadata),
            embedding=[float(x) for x in embeddings[index]] if embeddings is not None else None,
        )
        for index, (key, document, metadata) in enumerate(
            zip(got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True)
        )
    ]


class NamespaceView:
    """A namespace's active and retired collections (either may be ``None`` until first written)."""

    def __init__(self, active: Any, retired: Any) -> None:
        self.active = active
        self.retired = retired

    def fetch(self, ids: Sequence[str], *, with_embeddings: bool = False) -> dict[str, Record]:
        """The records with these ids; when one is in both collections (a move cut short) the newer wins."""
        include = ["documents", "metadatas", *(["embeddings"] if with_embeddings else [])]
        found: dict[str, Record] = {}
        for collection in (self.active, self.retired):
            if collection is None or not ids:
                continue
            for start in range(0, len(ids), _CHUNK):
                got = collection.get(ids=list(ids[start : start + _CHUNK]), include=include)
                for record in _records(got, with_embeddings=with_embeddings):
                    current = found.get(record.experience_id)
                    if current is None or record.version > current.version:
                        found[record.experience_id] = record
        return found

    def has_applied(self, change: Change) -> bool:
        """Whether every experience ``change`` edits is stored at its version or later."""
        records = self.fetch([edit.experience_id for edit in change.edits])
        return all(
            edit.experience_id in records and records[edit.experience_id].version >= change.version
            for edit in change.edits
        )

    def all(self, status: str, *, min_created_version: int = 0) -> list[Record]:
        """Every record with that status ('active', 'retired' or 'all'), in creation order."""
        collections = {"active": [self.active], "retired": [self.retired], "all": [self.active, self.retired]}
        where = {"created_version": {"$gte": min_created_version}} if min_created_version > 0 else None
        found: dict[str, Record] = {}
        for collection in collections[status]:
            if collection is None:
                continue
            # Paged: one unbounded get of more than ~32k records fails in Chroma's SQLite ("too many SQL variables").
            offset = 0
            while True:
                got = collection.get(where=where, include=["documents", "metadatas"], limit=_PAGE, offset=offset)
                records = _records(got, with_embeddings=False)
                for record in records:
                    current = found.get(record.experience_id)
                    if current is None or record.version > current.version:
                        found[record.experience_id] = record
                if len(records) < _PAGE:
                    break
                offset += _PAGE
        if status != "all":
            return sorted((r for r in found.values() if r.status == status), key=lambda r: r.order)
        return sorted(found.values(), key=lambda r: r.order)

    def nearest(self, vectors: Sequence[Sequence[float]], n: int) -> list[list[tuple[Record, float]]]:
        """For each vector, up to ``n`` active records with their cosine similarity, most similar first."""
        if self.active is None or not vectors:
            return [[] for _ in vectors]
        results: list[list[tuple[Record, float]]] = []
        # Batched: thousands of query vectors in one request exceed the Chroma server's payload limit.
        for start in range(0, len(vectors), _QUERY_BATCH):
            got = self.active.query(
                query_embeddings=[list(v) for v in vectors[start : start + _QUERY_BATCH]],
                n_results=n,
                include=["documents", "metadatas", "distances"],
            )
            for ids, documents, metadatas, distances in zip(
                got["ids"], got["documents"] or [], got["metadatas"] or [], got["distances"] or [], strict=True
            ):
                row = [
                    (Record(experience_id=key, text=text, metadata=dict(meta)), 1.0 - float(distance))
                    for key, text, meta, distance in zip(ids, documents, metadatas, distances, strict=True)
                ]
                results.append(row)
        return results

    def write(
        self,
        change: Change,
        vectors: dict[str, list[float]],
        new: dict[str, NewExperience] | None = None,
    ) -> set[str]:
        """Make the collections reflect ``change``. Idempotent: records already at its version are skipped.

        ``vectors`` maps text to vector. When it misses a text that no stored record has a vector for, nothing
        is written and those texts are returned: embed them and call again. Each record is written to its
        target collection before it is removed from the other, so a crash in between leaves a duplicate
        (resolved by version) rather than a loss.
        """
        new = new or {}
        records = self.fetch([edit.experience_id for edit in change.edits], with_embeddings=True)
        missing = {
            edit.after.text
            for edit in change.edits
            if edit.after.text not in vectors
            and (edit.experience_id not in records or records[edit.experience_id].text != edit.after.text)
        }
        if missing:
            return missing
        upserts: dict[str, list[Record]] = {"active": [], "retired": []}
        removals: dict[str, list[str]] = {"active": [], "retired": []}
        for seq, edit in enumerate(change.edits):
            record = records.get(edit.experience_id)
            if record is not None and record.version >= change.version:
                continue
            if record is None:
                extra = new.get(edit.experience_id, NewExperience())
                metadata: dict[str, Any] = {
                    "namespace": change.namespace,
                    "created_at": change.at.isoformat(),
                    "created_version": change.version,
                    "seq": seq,
                    "source": (extra.source or change.source).model_dump_json(),
                    **extra.counters.model_dump(),
                }
            else:
                metadata = dict(record.metadata)
            metadata.update(status=edit.after.status, updated_at=change.at.isoformat(), version=change.version)
            if record is not None and record.text == edit.after.text and record.embedding is not None:
                embedding = record.embedding
            else:
                embedding = vectors[edit.after.text]
            target = edit.after.status
            other = "retired" if target == "active" else "active"
            upserts[target].append(
                Record(experience_id=edit.experience_id, text=edit.after.text, metadata=metadata, embedding=embedding)
            )
            if record is not None:
                removals[other].append(edit.experience_id)
        for status, collection in (("active", self.active), ("retired", self.retired)):
            batch = upserts[status]
            for start in range(0, len(batch), _CHUNK):
                part = batch[start : start + _CHUNK]
                collection.upsert(
                    ids=[r.experience_id for r in part],
                    embeddings=[r.embedding for r in part],
                    documents=[r.text for r in part],
                    metadatas=[r.metadata for r in part],
                )
        for status, collection in (("active", self.active), ("retired", self.retired)):
            ids = removals[status]
            for start in range(0, len(ids), _CHUNK):
                collection.delete(ids=ids[start : start + _CHUNK])
        return set()

    def bump(self, increments: dict[str, dict[str, int]]) -> list[str]:
        """Add to usage counters: ``{experience_id: {"helpful": 1}}``; unknown ids are ignored.

        Returns the ids whose counters changed.
        """
        records = self.fetch(list(increments))
        for status, collection in (("active", self.active), ("retired", self.retired)):
            mine = [r for r in records.values() if r.status == status]
            if not mine or collection is None:
                continue
            collection.update(
                ids=[r.experience_id for r in mine],
                metadatas=[
                    {key: int(r.metadata.get(key, 0)) + n for key, n in increments[r.experience_id].items()}
                    for r in mine
                ],
            )
        return [experience_id for experience_id in increments if experience_id in records]
