"""Issue 10 over MCP: generation settings reach the model, proposals' fates and credit show in the run record."""

from __future__ import annotations

from pathlib import Path

import pytest

from debrief.learner.backend import ChatRequest
from debrief.learner.errors import BackendError
from debrief.server.embedding.embedder import Embedder
from debrief.server.settings import ModelSettings, RunSettings
from tests.learner.scripted import LESSON, policy
from tests.support.mcp_calls import call
from tests.support.runs import ScriptedProvider, connect, finish, problems, settings_for, start

pytestmark = pytest.mark.anyio


async def test_generation_settings_given_to_start_learning_run_reach_every_rollout(
    tmp_path: Path, test_embedder: Embedder
) -> None:
    settings = settings_for(tmp_path, runs=RunSettings(request_timeout=30.0), models=ModelSettings(context_tokens=4096))
    provider = ScriptedProvider(settings)
    async with connect(settings, test_embedder, provider) as client:
        started = await start(
            client, max_tokens=900, top_p=0.8, temperature=0.5, placement="user", max_operations=2, batch_size=8
        )
        record = await finish(client, started["run_id"])

    assert record["status"] == "succeeded"
    rollouts = provider.policy.calls
    assert rollouts and {(call.max_tokens, call.top_p, call.temperature) for call in rollouts} == {(900, 0.8, 0.5)}
    assert "2 operation(s)" in provider.reflect.calls_for("advantage")[0].messages[-1].content


def citing(request: ChatRequest, choice: int) -> str:
    """The scripted policy; right attempts that were shown the lesson say they followed it (G0)."""
    text = policy(request, choice)
    shown = any(LESSON in message.content for message in request.messages)
    right = str(eval(request.messages[-1].content.split("What is ")[1].split("?")[0])) in text
    return f"Following G0, I carry.\n{text}" if shown and right else text


async def test_the_run_record_shows_every_proposals_fate_and_lands_credit_in_the_counters(
    tmp_path: Path, test_embedder: Embedder
) -> None:
    settings = settings_for(tmp_path)
    async with connect(settings, test_embedder, ScriptedProvider(settings, citing)) as client:
        first = await finish(client, (await start(client, batch_size=8, epochs=2))["run_id"])
        library = await call(client, "list_experiences", namespace="math")

    step = first["steps"][0]
    fates = {fate["disposition"] for fate in step["proposals"]}
    assert step["proposals"] and fates <= {"applied", "merged"} and "applied" in fates
    assert sum(step["disposition_counts"].values()) == len(step["proposals"])
    assert first["status"] == "succeeded" and first["failed_groups"] == [] and first["retried_requests"] == 0
    [lesson] = library["items"]
    assert lesson["text"] == LESSON
    credited = [step["credit"][lesson["experience_id"]] for step in first["steps"] if step["credit"]]
    better = sum(pair[0] for pair in credited)
    assert better > 0 and all(pair[1] == 0 for pair in credited)
    assert (lesson["counters"]["helpful"], lesson["counters"]["harmful"]) == (better, 0)


async def test_a_group_that_keeps_failing_makes_the_run_incomplete_not_succeeded(
    tmp_path: Path, test_embedder: Embedder
) -> None:
    doomed = problems(8)[2]["question"]

    def refusing(request: ChatRequest, choice: int) -> str:
        if doomed in request.messages[-1].content:
            raise BackendError("the model refuses this problem", status=400)
        return policy(request, choice)

    settings = settings_for(tmp_path)
    async with connect(settings, test_embedder, ScriptedProvider(settings, refusing)) as client:
        record = await finish(client, (await start(client, batch_size=8))["run_id"])
        assert record["status"] == "incomplete"
        assert record["failed_groups"] == [problems(8)[2]["problem_id"]]
        assert record["steps"][-1]["recovery"] is True
        resumed = await call(client, "resume_learning_run", run_id=record["run_id"])
        assert resumed["status"] in ("queued", "running")
