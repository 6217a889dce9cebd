"""The store at the sizes its limits promise: a 10,000-item import in one call, and listings past Chroma's
single-read limits (tens of thousands of records)."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
import pytest

from debrief.server.store.experience_store import ExperienceStore
from debrief.server.store.models import ExportedExperience, LibraryExport

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

_WORDS = [f"w{index}" for index in range(4000)]


def library(count: int, offset: int = 0) -> LibraryExport:
    items = [
        ExportedExperience(
            experience_id=f"bulk:{offset + index:012x}",
            text=f"When {_WORDS[(offset + index) % 4000]} meets {_WORDS[(offset + index) // 4000 % 4000]} "
            f"in case {offset + index}, check the {_WORDS[(7 * (offset + index)) % 4000]} first.",
        )
        for index in range(count)
    ]
    return LibraryExport(namespace="bulk", version=1, exported_at=datetime.now(UTC), experiences=items)


async def test_an_import_of_the_full_10000_item_limit_is_accepted_in_one_call(any_store: ExperienceStore) -> None:
    with anyio.fail_after(240):
        change = await any_store.import_library("bulk", library(10_000), mode="merge")
    assert change is not None and len(change.edits) == 10_000
    exported = await any_store.export("bulk")
    assert len(exported.experiences) == 10_000
    page = await any_store.list("bulk", limit=100)
    assert len(page.items) == 100 and page.next_cursor is not None


async def test_an_import_into_a_filled_namespace_checks_every_item_for_near_copies(any_store: ExperienceStore) -> None:
    await any_store.add("bulk", "When in doubt, read the error message twice before changing any code.")
    with anyio.fail_after(240):
        change = await any_store.import_library("bulk", library(10_000), mode="merge")
    assert change is not None and len(change.edits) == 10_000


async def test_a_namespace_past_32k_experiences_still_lists_exports_and_imports(store: ExperienceStore) -> None:
    created = 0
    with anyio.fail_after(600):
        for chunk in range(4):
            change = await store.import_library("bulk", library(8_500, offset=chunk * 8_500), mode="merge")
            assert change is not None
            created += len(change.edits)
        assert created > 32_768  # one unpaged read of this many records fails inside Chroma
        exported = await store.export("bulk")
        assert len(exported.experiences) == created
        page = await store.list("bulk", limit=100)
        assert len(page.items) == 100
        assert len(await store.active("bulk")) == created
