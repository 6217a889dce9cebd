"""Several Debrief hosts on one Chroma server (DEBRIEF_CHROMA_URL) share outcomes, runs, checkpoints and leases."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import chromadb
import pytest
from chromadb.config import Settings as ChromaSettings

from debrief.server.chroma.client import close_client
from debrief.server.embedding.embedder import Embedder, make_embedder
from debrief.server.errors import Conflict
from debrief.server.learning.shared_runs import SharedLease
from debrief.server.settings import Settings
from debrief.server.store.shared_docs import JOBS, SharedDocuments
from tests.learner.fake_openai import FakeOpenAI, serve
from tests.support.learn_command import learn_command, scripted
from tests.support.mcp_calls import call, call_error
from tests.support.runs import Gate, ScriptedProvider, connect, finish, start

pytestmark = pytest.mark.anyio


def host(tmp_path: Path, name: str, chroma_url: str) -> Settings:
    return Settings(data_dir=tmp_path / name, chroma_url=chroma_url)


async def all_outcomes(client: Any, namespace: str) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        arguments: dict[str, Any] = {"namespace": namespace, "limit": 20}
        if cursor is not None:
            arguments["cursor"] = cursor
        page = await call(client, "list_outcomes", **arguments)
        ids.extend(item["outcome_id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


async def test_concurrent_outcomes_on_two_hosts_are_all_listed_on_both_in_one_order(
    tmp_path: Path, test_embedder: Embedder, chroma_url: str
) -> None:
    first, second = host(tmp_path, "a", chroma_url), host(tmp_path, "b", chroma_url)
    recorded: list[str] = []
    async with (
        connect(first, test_embedder, ScriptedProvider(first)) as a,
        connect(second, test_embedder, ScriptedProvider(second)) as b,
    ):

        async def record(client: Any, index: int) -> None:
            result = await call(
                client,
                "record_outcome",
                namespace="math",
                task=f"What is {index} + {index}?",
                attempt=f"I said {2 * index}.",
                outcome="success",
                task_key=f"sum-{index}",
            )
            recorded.append(result["outcome"]["outcome_id"])

        with anyio.fail_after(120):
            async with anyio.create_task_group() as group:
                for index in range(30):
                    group.start_soon(record, a if index % 2 == 0 else b, index)
        on_a, on_b = await all_outcomes(a, "math"), await all_outcomes(b, "math")
        assert len(recorded) == 30
        assert sorted(on_a) == sorted(recorded)
        assert on_a == on_b  # one gapless log: both hosts list it in the same order

        # A task recorded on one host groups with the same task recorded on the other.
        there = await call(
            a, "record_outcome", namespace="math", task="t", attempt="x", outcome="success", task_key="k"
        )
        here = await call(b, "record_outcome", namespace="math", task="t", attempt="y", outcome="success", task_key="k")
        assert here["group_size"] == 2
        assert here["outcome"]["group_id"] == there["outcome"]["group_id"]


async def test_a_run_interrupted_on_one_host_is_resumed_on_another_without_repaying_finished_steps(
    tmp_path: Path, test_embedder: Embedder, chroma_url: str
) -> None:
    first, second = host(tmp_path, "a", chroma_url), host(tmp_path, "b", chroma_url)
    gate = Gate(free=4)  # step 1 (4 problems) finishes, step 2 waits on the model
    other = ScriptedProvider(second)
    async with connect(first, test_embedder, ScriptedProvider(first, gate)) as a:
        started = await start(a, epochs=2)
        run_id = started["run_id"]
        with anyio.fail_after(30):
            await gate.reached.wait()
        async with connect(second, test_embedder, ScriptedProvider(second)) as b:
            # Host B starting up leaves host A's live run alone, and cannot take it over.
            seen = await call(b, "get_learning_run", run_id=run_id)
            assert seen["status"] == "running"
            refused = await call_error(b, "resume_learning_run", run_id=run_id)
            assert "running" in refused
    # Host A is gone (stopped mid-run); host B lists the run and finishes it from A's checkpoint.
    async with connect(second, test_embedder, other) as b:
        listed = await call(b, "list_learning_runs")
        assert [(run["run_id"], run["status"]) for run in listed["runs"]] == [(run_id, "interrupted")]
        assert len((await call(b, "get_learning_run", run_id=run_id))["steps"]) == 1
        resumed = await call(b, "resume_learning_run", run_id=run_id)
        assert resumed["resumed"] == 1
        record = await finish(b, run_id)
        assert record["status"] == "succeeded"
        assert len(record["steps"]) == 4
        # Step 1 was paid for on host A: host B asks the model only for steps 2-4 (4 + 8 problems).
        assert len(other.policy.calls) == 12
        library = await call(b, "list_experiences", namespace="math")
        assert library["items"]


async def test_a_command_line_run_on_one_host_is_listed_by_a_server_on_another(tmp_path: Path, chroma_url: str) -> None:
    env = {
        **os.environ,
        "DEBRIEF_DATA_DIR": str(tmp_path / "a"),
        "DEBRIEF_CHROMA_URL": chroma_url,
        "OPENAI_API_KEY": "test-key-not-recorded",
    }
    async with serve(FakeOpenAI(reply=scripted)) as base_url:
        with anyio.fail_after(240):
            done = await anyio.run_process(learn_command(base_url), env=env, check=False, cwd=Path(__file__).parents[3])
    assert done.returncode == 0, done.stderr.decode()
    second = host(tmp_path, "b", chroma_url)
    async with connect(second, make_embedder(second), ScriptedProvider(second)) as b:
        listed = (await call(b, "list_learning_runs", namespace="math"))["runs"]
        assert [(run["status"], len(run["steps"])) for run in listed] == [("succeeded", 1)]
        assert listed[0]["command"].startswith("debrief learn --namespace math")
        assert not (tmp_path / "a" / "runs").exists()  # nothing of the run stays in host A's data dir


@pytest.fixture
def documents(chroma_url: str) -> Any:
    host, port = chroma_url.removeprefix("http://").split(":")
    client = chromadb.HttpClient(host=host, port=int(port), settings=ChromaSettings(anonymized_telemetry=False))
    try:
        yield SharedDocuments(client, JOBS)
    finally:
        close_client(client)


def test_a_run_lease_is_held_by_one_host_at_a_time(documents: SharedDocuments) -> None:
    first = SharedLease(documents, "run-0123456789ab").take()
    with pytest.raises(Conflict, match="being run by"):
        SharedLease(documents, "run-0123456789ab").take()
    first.release()
    second = SharedLease(documents, "run-0123456789ab").take()
    assert second.held
    second.renew()


def test_a_lease_left_by_a_dead_host_expires_and_its_holder_can_no_longer_save(documents: SharedDocuments) -> None:
    # The holder's host died: its lease is not renewed and runs out (here at once).
    stale = SharedLease(documents, "run-00000000000a", seconds=0).take()
    successor = SharedLease(documents, "run-00000000000a").take()
    assert successor.held
    with pytest.raises(Conflict, match="taken over"):
        stale.renew()
