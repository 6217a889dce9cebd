"""After a writer died between logging a change and applying it, the next read already shows the change."""

from __future__ import annotations

import pytest

from debrief.server.store.experience_store import ExperienceStore
from tests.support.store import claim_without_applying

pytestmark = pytest.mark.anyio

UNITS = "When a word problem mixes units, convert every quantity to one unit before doing any arithmetic."
INTEGER = "When an answer must be an integer, check it by substituting it back into the original statement."


async def test_a_read_after_a_crashed_write_shows_the_logged_version_not_the_one_before(store: ExperienceStore) -> None:
    key = (await store.add("math", UNITS)).experience.experience_id
    assert (await store.get(key)).text == UNITS
    # A writer (in any process) claimed version 2 in the log and died before updating the collections.
    await claim_without_applying(store, "math", 2, key, before=UNITS, after=INTEGER)

    assert await store.version("math") == 2
    assert (await store.get(key)).text == INTEGER
    assert [item.text for item in (await store.list("math")).items] == [INTEGER]
    assert [item.text for item in await store.relevant("math", "an integer answer", k=1)] == [INTEGER]
