"""After a writer died between logging a change and applying it, the next read already shows the change."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from debrief.learner.library import Provenance
from debrief.server.store.experience_store import ExperienceStore
from debrief.server.store.models import Change, Edit, ExperienceState

pytestmark = pytest.mark.anyio

UNITS = "When a word problem mixes units, convert every quantity to one unit before doing any arithmetic."
INTEGER = "When an answer must be an integer, check it by substituting it back into the original statement."


async def test_a_read_after_a_crashed_write_shows_the_logged_version_not_the_one_before(store: ExperienceStore) -> None:
    key = (await store.add("math", UNITS)).experience.experience_id
    assert (await store.get(key)).text == UNITS
    space = await store._space("math")
    assert space is not None
    # A writer (in any process) claimed version 2 in the log and died before updating the collections.
    orphan = Change(
        namespace="math",
        version=2,
        kind="update",
        reason="crashed writer",
        source=Provenance(kind="manual"),
        at=datetime.now(UTC),
        edits=[
            Edit(
                experience_id=key,
                before=ExperienceState(text=UNITS, status="active"),
                after=ExperienceState(text=INTEGER, status="active"),
            )
        ],
    )
    assert space.log.claim(orphan)

    assert await store.version("math") == 2
    assert (await store.get(key)).text == INTEGER
    assert [item.text for item in (await store.list("math")).items] == [INTEGER]
    assert [item.text for item in await store.relevant("math", "an integer answer", k=1)] == [INTEGER]
