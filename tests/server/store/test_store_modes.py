"""Storage modes, locking between processes, embedder checks and recovery of a half-applied change."""

from __future__ import annotations

import json
import os
from pathlib import Path

import anyio
import pytest

from debrief.server.chroma.host import HOST_FILE, heartbeat
from debrief.server.embedding.hashed import HashEmbedder
from debrief.server.errors import StoreUnavailable
from debrief.server.settings import Settings
from debrief.server.store.experience_store import ExperienceStore
from debrief.server.store.history import ChangeLog
from tests.support.store import claim_without_applying

pytestmark = pytest.mark.anyio

UNITS = "When a word problem mixes units, convert every quantity to one unit before doing any arithmetic."
INTEGER = "When an answer must be an integer, check it by substituting it back into the original statement."


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.chroma_server
async def test_shared_mode_processes_attach_to_one_host_and_the_last_one_out_stops_it(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", chroma_mode="shared")
    embedder = HashEmbedder()
    with anyio.fail_after(120):
        first = await ExperienceStore.open(settings, embedder)
        second = await ExperienceStore.open(settings, embedder)
        info = json.loads((settings.data_dir / HOST_FILE).read_text())
        try:
            added = await first.add("math", UNITS)
            assert (await second.get(added.experience.experience_id)).text == UNITS
            assert (await second.add("math", INTEGER)).version == 2
        finally:
            await first.aclose()
        assert alive(info["pid"]) and heartbeat(info["port"])
        assert [e.text for e in (await second.list("math")).items] == [UNITS, INTEGER]
        await second.aclose()

    assert not alive(info["pid"])
    assert not (settings.data_dir / HOST_FILE).exists()
    assert (settings.data_dir / "chroma-host.log").exists()


@pytest.mark.chroma_server
async def test_shared_and_in_process_modes_exclude_each_other_with_a_clear_message(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    embedder = HashEmbedder()
    with anyio.fail_after(120):
        in_process = await ExperienceStore.open(Settings(data_dir=data_dir, chroma_mode="in-process"), embedder)
        try:
            await in_process.add("math", UNITS)
            with pytest.raises(StoreUnavailable, match="in use by another Debrief process.*chroma_mode='shared'"):
                await ExperienceStore.open(Settings(data_dir=data_dir, chroma_mode="in-process"), embedder)
            with pytest.raises(StoreUnavailable, match="held by a Debrief process in chroma_mode='in-process'"):
                await ExperienceStore.open(Settings(data_dir=data_dir, chroma_mode="shared"), embedder)
        finally:
            await in_process.aclose()

        shared = await ExperienceStore.open(Settings(data_dir=data_dir, chroma_mode="shared"), embedder)
        try:
            assert [e.text for e in (await shared.list("math")).items] == [UNITS]
            with pytest.raises(StoreUnavailable, match="in use by another Debrief process"):
                await ExperienceStore.open(Settings(data_dir=data_dir, chroma_mode="in-process"), embedder)
        finally:
            await shared.aclose()


async def test_a_store_built_with_another_embedder_is_refused(in_process_settings: Settings) -> None:
    store = await ExperienceStore.open(in_process_settings, HashEmbedder())
    await store.add("math", UNITS)
    await store.aclose()

    with pytest.raises(StoreUnavailable, match="built with embedder 'test-hashed-bag-of-words'.*not 'other'"):
        await ExperienceStore.open(in_process_settings, HashEmbedder(name="other"))
    with pytest.raises(StoreUnavailable, match="dimension 384"):
        await ExperienceStore.open(in_process_settings, HashEmbedder(dimension=8))


async def test_an_unreachable_chroma_url_says_so(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", chroma_url="http://127.0.0.1:9")

    with pytest.raises(StoreUnavailable, match="could not reach the Chroma server at 'http://127.0.0.1:9'"):
        await ExperienceStore.open(settings, HashEmbedder())


async def test_a_change_logged_but_not_applied_is_applied_by_the_next_write(store: ExperienceStore) -> None:
    key = (await store.add("math", UNITS)).experience.experience_id
    # A writer that died between claiming version 2 and updating the collections left only this behind.
    await claim_without_applying(store, "math", 2, key, before=UNITS, after=INTEGER)

    third = await store.add("code", "Run the linter before committing.")
    assert third.version == 1
    after = await store.add("math", "Draw a diagram first.")

    assert after.version == 3
    assert (await store.get(key)).text == INTEGER
    assert [c.version for c in await store.history("math")] == [1, 2, 3]


async def test_the_first_writer_of_a_version_wins_the_claim(store: ExperienceStore) -> None:
    await store.add("math", UNITS)
    space = await store._space("math")
    assert space is not None
    change = (await store.history("math"))[0]
    log = ChangeLog(space.log._collection)

    assert not log.claim(change.model_copy(update={"reason": "a rival on another host"}))
    assert (await store.history("math"))[0].reason == change.reason


async def test_concurrent_writes_in_one_process_get_consecutive_versions(store: ExperienceStore) -> None:
    async def add(index: int) -> None:
        await store.add("math", f"Remember k{index}a k{index}b k{index}c carefully.")

    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            for index in range(12):
                group.start_soon(add, index)

    assert [c.version for c in await store.history("math")] == list(range(1, 13))
    assert len((await store.list("math")).items) == 12
    assert os.path.exists(store._settings.data_dir / "write.lock")
