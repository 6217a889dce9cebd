"""JSON documents shared by every host of one Chroma server: outcome logs, run records, checkpoints, leases.

With ``DEBRIEF_CHROMA_URL`` several Debrief hosts share one Chroma, so what was kept in each host's data dir
(outcomes, learning-run records and their checkpoints) is kept here instead. A :class:`SharedDocuments` is one
collection of documents keyed by id, with a 1-d placeholder vector (it is never queried by similarity).
Chroma's ``add`` keeps the first write of an id, so :meth:`SharedDocuments.claim` lets exactly one host own an
id (the change log of the experience store relies on the same rule, see :mod:`debrief.server.store.history`).
"""

from __future__ import annotations

import secrets
from typing import Any

OUTCOME_LOG = "dbf-outcome-log"
"""The collection of every namespace's outcome lines, ``<namespace>/<seq:012d>``."""
JOBS = "dbf-jobs"
"""The collection of learning-run records, checkpoints and leases."""

Metadata = dict[str, str | int | float | bool]


class SharedDocuments:
    """Synchronous access to one document collection (call it from a worker thread)."""

    def __init__(self, client: Any, name: str) -> None:
        import chromadb.errors

        try:
            self._collection = client.get_collection(name, embedding_function=None)
        except chromadb.errors.NotFoundError:
            try:
                self._collection = client.create_collection(
                    name, metadata={"hnsw:space": "l2"}, embedding_function=None
                )
            except chromadb.errors.ChromaError:  # created meanwhile by another host
                self._collection = client.get_collection(name, embedding_function=None)

    def claim(self, key: str, document: str, metadata: Metadata) -> bool:
        """Store ``document`` under ``key`` unless the id exists; ``True`` when this call's write is the one kept."""
        nonce = secrets.token_hex(16)
        self._collection.add(
            ids=[key], embeddings=[[0.0]], documents=[document], metadatas=[{**metadata, "nonce": nonce}]
        )
        stored = self._collection.get(ids=[key], include=["metadatas"])
        metadatas = stored["metadatas"] or []
        return bool(metadatas) and metadatas[0].get("nonce") == nonce

    def put(self, key: str, document: str, metadata: Metadata) -> None:
        """Store or replace the document ``key`` (one record: readers see the old or the new one, never half)."""
        self._collection.upsert(ids=[key], embeddings=[[0.0]], documents=[document], metadatas=[metadata])

    def update_metadata(self, key: str, metadata: Metadata) -> None:
        """Replace the metadata of the existing document ``key``."""
        self._collection.update(ids=[key], metadatas=[metadata])

    def get(self, keys: list[str]) -> dict[str, tuple[str, Metadata]]:
        """The documents among ``keys`` that exist, with their metadata."""
        if not keys:
            return {}
        got = self._collection.get(ids=keys, include=["documents", "metadatas"])
        return {
            key: (document, dict(metadata or {}))
            for key, document, metadata in zip(got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True)
        }

    def find(self, where: dict[str, Any]) -> dict[str, tuple[str, Metadata]]:
        """Every document whose metadata matches ``where`` (a Chroma filter)."""
        found: dict[str, tuple[str, Metadata]] = {}
        offset, page = 0, 500
        while True:
            got = self._collection.get(where=where, include=["documents", "metadatas"], limit=page, offset=offset)
            ids = got["ids"]
            for key, document, metadata in zip(ids, got["documents"] or [], got["metadatas"] or [], strict=True):
                found[key] = (document, dict(metadata or {}))
            if len(ids) < page:
                return found
            offset += page
