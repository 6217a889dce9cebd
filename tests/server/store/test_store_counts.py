"""Retrieval counts written in the background: none lost, merged under load, visible to the next read."""

from __future__ import annotations

import anyio
import pytest

from debrief.server.store.experience_store import ExperienceStore

pytestmark = pytest.mark.anyio


async def test_background_retrieval_counts_are_all_recorded_and_seen_by_the_next_read(store: ExperienceStore) -> None:
    first = await store.add("math", "When a word problem mixes units, convert them to one unit first.")
    second = await store.add("math", "When an answer must be an integer, substitute it back to check it.")
    async with anyio.create_task_group() as background:
        store.count_in_background(background)
        with anyio.fail_after(60):
            async with anyio.create_task_group() as clients:
                for _ in range(12):
                    clients.start_soon(lambda: store.retrieve("math", "units in a word problem", k=2))
            page = await store.list("math")
        background.cancel_scope.cancel()
    counts = {item.experience_id: item.counters.retrieved for item in page.items}
    assert counts == {first.experience.experience_id: 12, second.experience.experience_id: 12}
