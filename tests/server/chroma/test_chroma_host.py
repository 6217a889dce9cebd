"""The shared Chroma host after a kill during its start: the server is recorded first, and an orphan is adopted."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import anyio
import pytest

from debrief.server.chroma.host import (
    HOST_FILE,
    HOST_LOG,
    _launch,
    _record,
    _servers_on,
    _wait_heartbeat,
    find_chroma,
    heartbeat,
)
from debrief.server.embedding.hashed import HashEmbedder
from debrief.server.errors import StoreUnavailable
from debrief.server.settings import Settings
from debrief.server.store.experience_store import ExperienceStore

pytestmark = [pytest.mark.anyio, pytest.mark.chroma_server]

LESSON = "When a word problem mixes units, convert every quantity to one unit before doing any arithmetic."
OTHER = "When an answer must be an integer, check it by substituting it back into the original statement."


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_server_left_running_by_a_start_that_was_killed_is_adopted_not_doubled(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", chroma_mode="shared")
    settings.data_dir.mkdir(parents=True)
    # What a process killed between launching `chroma run` and writing its record leaves behind.
    orphan_port = free_port()
    orphan = _launch(find_chroma(), settings.data_dir / "chroma", orphan_port, settings.data_dir / HOST_LOG)
    with anyio.fail_after(120):
        assert await anyio.to_thread.run_sync(_wait_heartbeat, orphan_port, orphan, 60.0)
        assert not (settings.data_dir / HOST_FILE).exists()
        store = await ExperienceStore.open(settings, HashEmbedder())
        try:
            info = json.loads((settings.data_dir / HOST_FILE).read_text())
            servers = _servers_on(settings.data_dir / "chroma")
            await store.add("math", LESSON)
        finally:
            await store.aclose()
    assert (info["pid"], info["port"]) == (orphan, orphan_port)
    assert servers == [(orphan, orphan_port)]
    assert _servers_on(settings.data_dir / "chroma") == []


async def test_a_server_recorded_before_its_starter_was_killed_is_found_by_the_next_process(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", chroma_mode="shared")
    settings.data_dir.mkdir(parents=True)
    # The starter launched the server and recorded it, then died before the server answered.
    port = free_port()
    pid = _launch(find_chroma(), settings.data_dir / "chroma", port, settings.data_dir / HOST_LOG)
    _record(settings.data_dir, pid, port)
    with anyio.fail_after(120):
        store = await ExperienceStore.open(settings, HashEmbedder())
        try:
            info = json.loads((settings.data_dir / HOST_FILE).read_text())
            servers = _servers_on(settings.data_dir / "chroma")
            await store.add("math", LESSON)
        finally:
            await store.aclose()
    assert (info["pid"], info["port"]) == (pid, port)
    assert servers == [(pid, port)]
    assert not heartbeat(port)


async def test_when_the_shared_host_dies_the_next_call_restarts_it_and_the_store_goes_on(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", chroma_mode="shared")
    with anyio.fail_after(120):
        store = await ExperienceStore.open(settings, HashEmbedder())
        try:
            added = await store.add("math", LESSON)
            before = json.loads((settings.data_dir / HOST_FILE).read_text())
            os.kill(before["pid"], signal.SIGKILL)
            with pytest.raises(StoreUnavailable, match="had stopped and was restarted"):
                await store.get(added.experience.experience_id)
            after = json.loads((settings.data_dir / HOST_FILE).read_text())
            again = await store.get(added.experience.experience_id)
            second = await store.add("math", OTHER)
        finally:
            await store.aclose()
    assert after["port"] == before["port"] and after["pid"] != before["pid"]
    assert again.text == LESSON
    assert second.version == 2
    assert _servers_on(settings.data_dir / "chroma") == []
