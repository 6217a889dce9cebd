"""Several processes writing one data dir in the default shared mode lose nothing and keep versions in order."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from debrief.server.embedding.hashed import HashEmbedder
from debrief.server.errors import Conflict
from debrief.server.settings import Settings
from debrief.server.store.experience_store import ExperienceStore
from debrief.server.store.history import replay

PROCESSES = 4
WRITES = 250
TASKS = 4
ROOT = Path(__file__).resolve().parents[3]


async def worker(data_dir: Path, index: int, writes: int, out: Path) -> None:
    """One process: ``TASKS`` concurrent tasks, each adding, updating and retiring its own experiences."""
    store = await ExperienceStore.open(Settings(data_dir=data_dir, chroma_mode="shared"), HashEmbedder())
    done: list[dict[str, Any]] = []

    async def task(number: int) -> None:
        rng = random.Random(index * 100 + number)
        mine: list[str] = []
        for step in range(number, writes, TASKS):
            tag = f"{index}x{number}x{step}"
            text = f"Worker lesson a{tag} b{tag} c{tag} holds."
            roll = rng.random()
            if mine and roll < 0.25:
                key = rng.choice(mine)
                result = await store.update(key, text)
                done.append({"kind": "update", "id": key, "text": text, "version": result.version})
            elif mine and roll < 0.4:
                key = mine.pop(rng.randrange(len(mine)))
                result = await store.retire(key, f"retired by {tag}")
                done.append({"kind": "retire", "id": key, "version": result.version})
            else:
                added = await store.add("shared", text)
                if not added.created:
                    raise Conflict(f"{text!r} was taken for a near-duplicate of {added.experience.text!r}")
                mine.append(added.experience.experience_id)
                done.append(
                    {"kind": "add", "id": added.experience.experience_id, "text": text, "version": added.version}
                )

    try:
        async with anyio.create_task_group() as group:
            for number in range(TASKS):
                group.start_soon(task, number)
    finally:
        await store.aclose()
    out.write_text(json.dumps(done))


def main() -> None:
    data_dir, index, writes, out = sys.argv[1:]
    anyio.run(worker, Path(data_dir), int(index), int(writes), Path(out))


@pytest.mark.slow
@pytest.mark.chroma_server
@pytest.mark.anyio
async def test_four_processes_writing_concurrently_lose_nothing_and_keep_versions_gapless(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    outs = [tmp_path / f"worker-{index}.json" for index in range(PROCESSES)]
    code = "from tests.server.store.test_store_processes import main; main()"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(data_dir), str(index), str(WRITES), str(out)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index, out in enumerate(outs)
    ]
    failures = []
    for process in processes:
        _, stderr = process.communicate(timeout=240)
        if process.returncode != 0:
            failures.append(stderr[-3000:])
    assert not failures, "\n\n".join(failures)
    writes = [write for out in outs for write in json.loads(out.read_text())]
    assert len(writes) == PROCESSES * WRITES

    # In-process mode opens only once every worker has detached and the last one stopped the shared host.
    store = await ExperienceStore.open(Settings(data_dir=data_dir, chroma_mode="in-process"), HashEmbedder())
    try:
        total = len(writes)
        history = await history_of(store, total)
        final = {e.experience_id: e for e in await all_experiences(store)}
    finally:
        await store.aclose()

    assert sorted(write["version"] for write in writes) == list(range(1, total + 1))
    assert [change.version for change in history] == list(range(1, total + 1))
    by_version = {write["version"]: write for write in writes}
    for change in history:
        write = by_version[change.version]
        assert change.kind == write["kind"]
        assert [edit.experience_id for edit in change.edits] == [write["id"]]
    states = replay(history)
    adds = [write for write in writes if write["kind"] == "add"]
    assert len(final) == len(states) == len(adds) == len({write["id"] for write in adds})
    assert len({experience.text for experience in final.values()}) == len(final)
    for key, state in states.items():
        assert (final[key].text, final[key].status) == (state.text, state.status)
    expected: dict[str, tuple[str, str]] = {}
    for write in sorted(writes, key=lambda w: w["version"]):
        text = write.get("text", expected.get(write["id"], ("", ""))[0])
        expected[write["id"]] = (text, "retired" if write["kind"] == "retire" else "active")
    assert {key: (e.text, e.status) for key, e in final.items()} == expected


async def history_of(store: ExperienceStore, total: int) -> list[Any]:
    changes: list[Any] = []
    while len(changes) < total:
        page = await store.history("shared", since_version=len(changes), limit=100)
        assert page, f"history stops at version {len(changes)} of {total}"
        changes.extend(page)
    return changes


async def all_experiences(store: ExperienceStore) -> list[Any]:
    found: list[Any] = []
    cursor = None
    while True:
        page = await store.list("shared", cursor=cursor, limit=100, status="all")
        found.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return found
