"""Learning runs over MCP: background jobs with progress, cancel, restart and resume, queue and budgets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from debrief.server.embedding.embedder import Embedder
from debrief.server.settings import PriceSettings, RunSettings
from tests.learner.scripted import LESSON
from tests.support.mcp_calls import call, call_error
from tests.support.runs import Gate, ScriptedProvider, connect, finish, problems, settings_for, start

pytestmark = pytest.mark.anyio


async def test_a_started_run_returns_at_once_and_completes_while_the_client_polls(
    tmp_path: Path, test_embedder: Embedder
) -> None:
    settings = settings_for(tmp_path)
    gate = Gate(free=0)
    async with connect(settings, test_embedder, ScriptedProvider(settings, gate)) as client:
        started = await start(client, epochs=2)
        assert started["status"] in ("queued", "running")
        with anyio.fail_after(30):
            await gate.reached.wait()
        polled = await call(client, "get_learning_run", run_id=started["run_id"])
        assert polled["status"] == "running"
        gate.opened.set()
        record = await finish(client, started["run_id"])
        assert record["status"] == "succeeded"
        assert record["stop_reason"] == "finished"
        assert len(record["steps"]) == 4
        assert record["version_before"] == 0
        assert record["version_after"] >= 1
        assert record["progress"]["prompt_tokens"] > 0
        library = await call(client, "list_experiences", namespace="math")
        assert [item["text"] for item in library["items"]] == [LESSON]
        history = await call(client, "library_history", namespace="math")
        source = history["changes"][0]["source"]
        assert source["kind"] == "learned" and source["run_id"] == started["run_id"]
        listed = await call(client, "list_learning_runs", namespace="math")
        assert [run["run_id"] for run in listed["runs"]] == [started["run_id"]]


async def test_progress_notifications_arrive_in_order(tmp_path: Path, test_embedder: Embedder) -> None:
    settings = settings_for(tmp_path)
    gate = Gate(free=0)
    async with connect(settings, test_embedder, ScriptedProvider(settings, gate)) as client:
        started = await start(client, epochs=2)
        seen: list[tuple[float, float | None, str | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, total, message))
            gate.opened.set()

        with anyio.fail_after(60):
            result = await client.call_tool(
                "wait_learning_run",
                {"run_id": started["run_id"], "timeout_seconds": 50},
                progress_callback=on_progress,
            )
        record = result.structured_content
        assert record is not None and record["status"] == "succeeded"
        assert len(seen) >= 2
        done = [progress for progress, _, _ in seen]
        assert done == sorted(done)
        assert seen[-1][1] == 8 * 2 * 5
        assert record["progress"]["attempts_done"] == record["progress"]["attempts_total"] == 80


async def test_cancel_stops_between_steps_at_a_consistent_version(tmp_path: Path, test_embedder: Embedder) -> None:
    settings = settings_for(tmp_path)
    gate = Gate(free=4)
    async with connect(settings, test_embedder, ScriptedProvider(settings, gate)) as client:
        started = await start(client, epochs=2)
        with anyio.fail_after(30):
            await gate.reached.wait()
        cancelling = await call(client, "cancel_learning_run", run_id=started["run_id"])
        assert "cancel" in cancelling["progress"]["message"]
        gate.opened.set()
        record = await finish(client, started["run_id"])
        assert record["status"] == "cancelled"
        assert len(record["steps"]) == 2
        namespaces = await call(client, "list_namespaces")
        version = {item["namespace"]: item["version"] for item in namespaces["namespaces"]}["math"]
        applied = [step["library_version"] for step in record["steps"] if step["library_version"] is not None]
        assert record["version_after"] == version == applied[-1]


async def test_a_restarted_server_lists_an_interrupted_run_and_resumes_it(
    tmp_path: Path, test_embedder: Embedder
) -> None:
    settings = settings_for(tmp_path)
    gate = Gate(free=4)
    async with connect(settings, test_embedder, ScriptedProvider(settings, gate)) as client:
        started = await start(client, epochs=2)
        with anyio.fail_after(30):
            await gate.reached.wait()
    run_id = started["run_id"]
    second = ScriptedProvider(settings)
    async with connect(settings, test_embedder, second) as client:
        listed = await call(client, "list_learning_runs")
        assert [(run["run_id"], run["status"]) for run in listed["runs"]] == [(run_id, "interrupted")]
        before = await call(client, "get_learning_run", run_id=run_id)
        assert len(before["steps"]) == 1
        resumed = await call(client, "resume_learning_run", run_id=run_id)
        assert resumed["resumed"] == 1
        record = await finish(client, run_id)
        assert record["status"] == "succeeded"
        assert len(record["steps"]) == 4
        # Step 1 finished before the restart: only steps 2-4 ask the model (4 + 8 problems, one n=G request each).
        assert len(second.policy.calls) == 12
        again = await call_error(client, "resume_learning_run", run_id=run_id)
        assert "succeeded" in again


async def test_runs_beyond_the_concurrency_limit_wait_in_the_queue(tmp_path: Path, test_embedder: Embedder) -> None:
    settings = settings_for(tmp_path, runs=RunSettings(max_concurrent=1))
    gate = Gate(free=0)
    async with connect(settings, test_embedder, ScriptedProvider(settings, gate)) as client:
        first = await start(client)
        second = await start(client, namespace="other")
        with anyio.fail_after(30):
            await gate.reached.wait()
        assert (await call(client, "get_learning_run", run_id=first["run_id"]))["status"] == "running"
        assert (await call(client, "get_learning_run", run_id=second["run_id"]))["status"] == "queued"
        third = await start(client, namespace="third")
        await call(client, "cancel_learning_run", run_id=third["run_id"])
        assert (await finish(client, third["run_id"]))["status"] == "cancelled"
        assert (await call(client, "get_learning_run", run_id=first["run_id"]))["status"] == "running"
        gate.opened.set()
        assert (await finish(client, first["run_id"]))["status"] == "succeeded"
        assert (await finish(client, second["run_id"]))["status"] == "succeeded"
        assert (await call(client, "get_learning_run", run_id=third["run_id"]))["steps"] == []


async def test_a_token_budget_stops_the_run_between_steps_and_a_larger_one_finishes_it(
    tmp_path: Path, test_embedder: Embedder
) -> None:
    settings = settings_for(tmp_path)
    async with connect(settings, test_embedder, ScriptedProvider(settings)) as client:
        started = await start(client, epochs=3, budget_tokens=2_000)
        record = await finish(client, started["run_id"])
        assert record["stop_reason"] == "budget"
        assert 1 <= len(record["steps"]) < 6
        await call(client, "resume_learning_run", run_id=started["run_id"], budget_tokens=1_000_000)
        resumed = await finish(client, started["run_id"])
        assert resumed["stop_reason"] == "finished"
        assert len(resumed["steps"]) == 6


async def test_the_daily_spending_cap_stops_a_run_and_refuses_the_next(tmp_path: Path, test_embedder: Embedder) -> None:
    settings = settings_for(
        tmp_path,
        runs=RunSettings(daily_budget_usd=0.01),
        prices=PriceSettings(input_per_million=5.0, output_per_million=5.0),
    )
    async with connect(settings, test_embedder, ScriptedProvider(settings)) as client:
        # each request reserves its prompt + max_tokens x n first: small completions let some fit under the cap
        started = await start(client, epochs=3, max_tokens=64)
        record = await finish(client, started["run_id"])
        assert record["stop_reason"] == "budget"
        assert 0 < record["progress"]["cost_usd"] <= 0.01
        # the next run is refused, or stops without taking the day past its cap (requests reserve their worst case)
        result = await client.call_tool(
            "start_learning_run", {"namespace": "math", "problems": problems(2), "verifier": "exact"}
        )
        if result.is_error:
            assert "budget" in str(result.content)
        else:
            assert result.structured_content is not None
            second = await finish(client, result.structured_content["run_id"])
            assert second["stop_reason"] == "budget"
            assert record["progress"]["cost_usd"] + second["progress"]["cost_usd"] <= 0.01


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"data_path": "/etc/passwd", "problems": None}, "outside the allowed"),
        ({"data_path": "/etc/passwd"}, "either problems or data_path"),
        ({"problems": None}, "either problems or data_path"),
        ({"model": "gpt-secret"}, "not allowed"),
        ({"verifier": "os:system"}, "not available to clients"),
        ({"verifier": "nonsense"}, "not available to clients"),
        ({"budget_tokens": 10**12}, "over this server's limit"),
    ],
)
async def test_bad_run_requests_are_refused_before_anything_starts(
    tmp_path: Path, test_embedder: Embedder, arguments: dict[str, Any], expected: str
) -> None:
    settings = settings_for(tmp_path)
    async with connect(settings, test_embedder, ScriptedProvider(settings)) as client:
        request: dict[str, Any] = {"namespace": "math", "problems": problems(2), "verifier": "exact"}
        request.update(arguments)
        request = {key: value for key, value in request.items() if value is not None}
        message = await call_error(client, "start_learning_run", **request)
        assert expected in message
        assert (await call(client, "list_learning_runs"))["runs"] == []


async def test_a_data_file_in_the_dataset_directory_is_accepted(tmp_path: Path, test_embedder: Embedder) -> None:
    settings = settings_for(tmp_path)
    datasets = settings.data_dir / "datasets"
    datasets.mkdir(parents=True)
    lines = [f'{{"question": "{p["question"]}", "answer": "{p["answer"]}"}}' for p in problems(4)]
    (datasets / "train.jsonl").write_text("\n".join(lines) + "\n")
    async with connect(settings, test_embedder, ScriptedProvider(settings)) as client:
        started = await call(
            client,
            "start_learning_run",
            namespace="math",
            data_path=str(datasets / "train.jsonl"),
            verifier="exact",
            batch_size=4,
        )
        record = await finish(client, started["run_id"])
        assert record["status"] == "succeeded"
        assert record["steps"][0]["groups_seen"] == 4
