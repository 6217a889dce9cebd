"""Evaluations over MCP: a background job with progress, figures with intervals, cancel, and clear refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from debrief.learner.backend import ChatRequest
from debrief.server.embedding.embedder import Embedder
from tests.learner import evaluation_world
from tests.learner.evaluation_world import BAD, GOOD, problems
from tests.support.mcp_calls import call, call_error
from tests.support.runs import ScriptedProvider, connect, settings_for

pytestmark = pytest.mark.anyio


def inline(count: int) -> list[dict[str, str]]:
    return [{"question": p.question, "answer": p.answer or "", "problem_id": p.problem_id} for p in problems(count)]


async def teach(client: Client, *texts: str) -> None:
    for text in texts:
        await call(client, "add_experience", namespace="math", text=text)


async def test_an_evaluation_job_reports_signs_intervals_and_per_experience_effects_with_progress(
    tmp_path: Path, test_embedder: Embedder
) -> None:
    settings = settings_for(tmp_path)
    provider = ScriptedProvider(settings, evaluation_world.policy)
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with connect(settings, test_embedder, provider) as client:
        await teach(client, GOOD, BAD)
        started = await call(
            client,
            "start_evaluation",
            namespace="math",
            problems=inline(24),
            verifier="exact",
            samples=4,
            controls=["random"],
            per_experience=True,
        )
        assert started["status"] in ("queued", "running") and started["evaluation_id"].startswith("eval-")
        with anyio.fail_after(120):
            while True:
                result = await client.call_tool(
                    "wait_evaluation",
                    {"evaluation_id": started["evaluation_id"], "timeout_seconds": 50},
                    progress_callback=on_progress,
                )
                record: dict[str, Any] | None = result.structured_content
                assert record is not None
                if record["status"] not in ("queued", "running"):
                    break
        listed = await call(client, "list_evaluations", namespace="math")
    assert record["status"] == "succeeded", record["error"]
    figures = record["result"]
    assert figures["delta"]["verdict"] == "better" and figures["delta"]["ci95"][0] > 0
    assert figures["with_library"]["mean_at_k"] > figures["without"]["mean_at_k"]
    assert figures["controls"][0]["name"] == "random" and figures["controls"][0]["beaten"]
    effects = figures["effects"]["effects"]
    assert [effect["text"] for effect in effects] == [GOOD, BAD]
    assert effects[0]["ci95"][0] > 0 and effects[1]["ci95"][1] < 0
    assert record["summary"][0].startswith("The library helps: Mean@4")
    assert any("1 help, 1 hurt" in line for line in record["summary"])
    assert record["library_version"] == 2 and record["progress"]["attempts_done"] > 0
    assert seen and [done for done, _, _ in seen] == sorted(done for done, _, _ in seen)
    assert [item["evaluation_id"] for item in listed["evaluations"]] == [started["evaluation_id"]]
    # The library is untouched and the record is kept on disk.
    assert (settings.data_dir / "evaluations" / started["evaluation_id"] / "record.json").is_file()


class Held:
    """Answers the first few attempts, then holds every other until the test is done."""

    def __init__(self) -> None:
        self.reached = anyio.Event()
        self.released = anyio.Event()

    async def __call__(self, request: ChatRequest, choice: int) -> str:
        self.reached.set()
        await self.released.wait()
        return evaluation_world.policy(request, choice)


async def test_cancel_stops_a_running_evaluation_at_once(tmp_path: Path, test_embedder: Embedder) -> None:
    settings = settings_for(tmp_path)
    held = Held()
    async with connect(settings, test_embedder, ScriptedProvider(settings, held)) as client:
        await teach(client, GOOD)
        started = await call(client, "start_evaluation", namespace="math", problems=inline(6), verifier="exact")
        with anyio.fail_after(30):
            await held.reached.wait()
        running = await call(client, "get_evaluation", evaluation_id=started["evaluation_id"])
        assert running["status"] == "running"
        await call(client, "cancel_evaluation", evaluation_id=started["evaluation_id"])
        with anyio.fail_after(30):
            record = await call(client, "wait_evaluation", evaluation_id=started["evaluation_id"], timeout_seconds=20)
        held.released.set()
    assert record["status"] == "cancelled" and record["result"] is None and record["finished_at"] is not None


async def test_bad_evaluation_requests_are_refused_with_what_to_fix(tmp_path: Path, test_embedder: Embedder) -> None:
    settings = settings_for(tmp_path)
    async with connect(settings, test_embedder, ScriptedProvider(settings, evaluation_world.policy)) as client:
        empty = await call_error(client, "start_evaluation", namespace="math", problems=inline(2), verifier="exact")
        assert "no library yet" in empty
        await teach(client, GOOD)
        both = await call_error(
            client, "start_evaluation", namespace="math", problems=inline(2), data_path="x.jsonl", verifier="exact"
        )
        assert "either problems or data_path" in both
        custom = await call_error(
            client, "start_evaluation", namespace="math", problems=inline(2), verifier="os:system"
        )
        assert "not available to clients" in custom
        too_many = await call_error(client, "start_evaluation", namespace="math", problems=inline(2), samples=33)
        assert "samples" in too_many
        outside = await call_error(client, "start_evaluation", namespace="math", data_path="/etc/passwd")
        assert "outside the allowed dataset directories" in outside
        unknown = await call_error(client, "get_evaluation", evaluation_id="eval-000000000000")
        assert "no evaluation" in unknown
