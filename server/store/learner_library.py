"""The store seen through the learner's :class:`~debrief.learner.library.Library` protocol, for one namespace."""

from __future__ import annotations

from collections.abc import Sequence

from debrief.learner.library import ApplyResult, ExperienceCredit, LibraryEntry, Provenance
from debrief.learner.operations import Operation
from debrief.server.errors import InvalidInput
from debrief.server.store.experience_store import ExperienceStore
from debrief.server.store.models import check_namespace


class StoreLibrary:
    """One namespace of an :class:`~debrief.server.store.experience_store.ExperienceStore` as a learner library.

    Lookups made for the learner do not count as retrievals: the usage counters measure what clients use.
    """

    def __init__(self, store: ExperienceStore, namespace: str) -> None:
        try:
            self.namespace = check_namespace(namespace)
        except ValueError as error:
            raise InvalidInput(str(error)) from None
        self._store = store

    async def entries(self) -> Sequence[LibraryEntry]:
        """All active experiences, oldest first."""
        return [
            LibraryEntry(experience_id=e.experience_id, text=e.text) for e in await self._store.active(self.namespace)
        ]

    async def relevant(self, task: str, k: int) -> Sequence[LibraryEntry]:
        """The ``k`` active experiences most relevant to ``task``."""
        found = await self._store.relevant(self.namespace, task, k=k)
        return [LibraryEntry(experience_id=item.experience_id, text=item.text) for item in found]

    async def apply(self, operations: Sequence[Operation], *, provenance: Provenance, reason: str) -> ApplyResult:
        """Apply operations as one ``learn`` change and return the new version."""
        return await self._store.apply(self.namespace, operations, provenance=provenance, reason=reason)

    async def credit(self, credits: Sequence[ExperienceCredit], *, provenance: Provenance) -> None:
        """Add a step's group-contrast credit to the helpful/harmful counters (:class:`CreditSink`).

        The provenance (run, step, groups) stays with the step record in the run record; the counters hold sums.
        """
        await self._store.add_counts(
            self.namespace, {item.experience_id: (item.helpful, item.harmful) for item in credits}
        )

    async def applied_version(self, run_id: str, step: int) -> int | None:
        """The version a ``learn`` change of ``run_id`` at ``step`` made, if any (for resuming a run)."""
        since = 0
        while True:
            changes = await self._store.history(self.namespace, since_version=since, limit=100)
            for change in changes:
                if change.kind == "learn" and (change.source.run_id, change.source.step) == (run_id, step):
                    return change.version
            if not changes:
                return None
            since = changes[-1].version
