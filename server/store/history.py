"""A namespace's append-only change log, kept in a Chroma collection, and replaying it into states.

Change ``v`` is stored under the id ``f"{v:012d}"`` with the :class:`~debrief.server.store.models.Change` JSON as its
document and a 1-d placeholder vector (the collection is never queried by similarity). Chroma's ``add``
ignores an id that already exists (first write wins), so a writer claims version ``v`` by adding that id
with a random nonce and reading it back: whoever's nonce is stored owns the version. The log therefore
stays gapless and strictly ordered even across hosts that share one Chroma server.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

from debrief.server.store.models import Change, ExperienceState

_CHUNK = 1000


def change_id(version: int) -> str:
    """Chroma id of the change that produced ``version``."""
    return f"{version:012d}"


class ChangeLog:
    """Synchronous access to one namespace's change-log collection (call it from a worker thread)."""

    def __init__(self, collection: Any) -> None:
        self._collection = collection

    def head(self) -> int:
        """The latest version: the log has exactly one record per version from 1 on."""
        return int(self._collection.count())

    def claim(self, change: Change) -> bool:
        """Try to store ``change`` as its version; ``False`` when another writer already owns that version."""
        record_id = change_id(change.version)
        nonce = secrets.token_hex(16)
        self._collection.add(
            ids=[record_id],
            embeddings=[[float(change.version)]],
            documents=[change.model_dump_json()],
            metadatas=[{"version": change.version, "nonce": nonce}],
        )
        stored = self._collection.get(ids=[record_id], include=["metadatas"])
        metadatas = stored["metadatas"] or []
        return bool(metadatas) and metadatas[0].get("nonce") == nonce

    def read(self, first: int, last: int) -> list[Change]:
        """Changes with versions ``first..last`` inclusive, ascending."""
        changes: list[Change] = []
        for start in range(first, last + 1, _CHUNK):
            ids = [change_id(version) for version in range(start, min(start + _CHUNK, last + 1))]
            got = self._collection.get(ids=ids, include=["documents"])
            changes.extend(Change.model_validate_json(document) for document in got["documents"] or [])
        changes.sort(key=lambda change: change.version)
        return changes


def replay(changes: Iterable[Change]) -> dict[str, ExperienceState]:
    """Every experience's state after ``changes``, in order of first appearance (creation order)."""
    states: dict[str, ExperienceState] = {}
    for change in changes:
        for edit in change.edits:
            states[edit.experience_id] = edit.after
    return states


def active_texts(states: dict[str, ExperienceState]) -> dict[str, str]:
    """The active library in ``states``: id to text, in creation order."""
    return {key: state.text for key, state in states.items() if state.status == "active"}
