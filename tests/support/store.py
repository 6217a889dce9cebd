"""Store states that only a crash leaves behind, made on purpose for tests."""

from __future__ import annotations

from datetime import UTC, datetime

from debrief.learner.library import Provenance
from debrief.server.store.experience_store import ExperienceStore
from debrief.server.store.models import Change, Edit, ExperienceState


async def claim_without_applying(
    store: ExperienceStore, namespace: str, version: int, experience_id: str, *, before: str, after: str
) -> None:
    """Claim ``version`` in ``namespace``'s change log for a text update, as a writer that died before applying it."""
    space = await store._space(namespace)
    assert space is not None
    orphan = Change(
        namespace=namespace,
        version=version,
        kind="update",
        reason="crashed writer",
        source=Provenance(kind="manual"),
        at=datetime.now(UTC),
        edits=[
            Edit(
                experience_id=experience_id,
                before=ExperienceState(text=before, status="active"),
                after=ExperienceState(text=after, status="active"),
            )
        ],
    )
    assert space.log.claim(orphan)
