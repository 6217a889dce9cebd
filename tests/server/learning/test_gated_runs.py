"""Learning runs over MCP with the validation gate: verdicts in get_learning_run, keep-best, refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from debrief.learner import FunctionBackend
from debrief.server.embedding.embedder import Embedder
from debrief.server.settings import Settings
from tests.learner.two_lessons import BAD, GOOD, policy, proposes_both
from tests.support.mcp_calls import active_texts, call_error
from tests.support.runs import ScriptedProvider, connect, finish, problems, settings_for, start

pytestmark = pytest.mark.anyio


def provider(settings: Settings) -> ScriptedProvider:
    """Step 0 proposes the good lesson, step 1 the bad one."""
    scripted = ScriptedProvider(settings, policy_fn=policy)
    scripted.reflect = FunctionBackend(proposes_both((GOOD, BAD), one_at_a_time=True), model="reflect-model")
    return scripted


async def gated_run(tmp_path: Path, embedder: Embedder, **arguments: Any) -> tuple[dict[str, Any], list[str]]:
    settings = settings_for(tmp_path)
    async with connect(settings, embedder, provider(settings)) as client:
        started = await start(
            client,
            problems=problems(20),
            batch_size=12,
            epochs=2,
            validation_fraction=0.4,
            validation_samples=4,
            **arguments,
        )
        record = await finish(client, started["run_id"])
        return record, await active_texts(client, "math")


async def test_a_gated_run_keeps_the_good_lesson_and_its_record_shows_the_refused_one_with_figures(
    tmp_path: Path, test_embedder: Embedder
) -> None:
    record, active = await gated_run(tmp_path, test_embedder)

    assert record["status"] == "succeeded" and active == [GOOD]
    first, second = record["steps"]
    assert first["validation"]["edits"][0]["kept"] is True
    refused = second["validation"]["edits"][0]
    assert refused["kept"] is False and refused["delta"] < 0 and len(refused["ci95"]) == 2
    assert [item["kind"] for item in second["rejected"]] == ["validation"]
    assert second["tokens"]["validation"]["requests"] > 0
    assert record["kept"]["policy"] == "last"


async def test_keep_best_over_mcp_ends_on_the_best_library_and_says_so(tmp_path: Path, test_embedder: Embedder) -> None:
    record, active = await gated_run(tmp_path, test_embedder, validation_margin=1.0, keep_best=True)

    assert active == [GOOD]
    kept = record["kept"]
    assert kept["policy"] == "best" and kept["rolled_back_from"] is not None and "after step 0" in kept["message"]


async def test_keep_best_without_validation_is_refused_before_the_run_starts(
    tmp_path: Path, test_embedder: Embedder
) -> None:
    settings = settings_for(tmp_path)
    async with connect(settings, test_embedder, provider(settings)) as client:
        message = await call_error(client, "start_learning_run", namespace="math", problems=problems(4), keep_best=True)
        assert "keep_best needs validation problems" in message
        both = await call_error(
            client,
            "start_learning_run",
            namespace="math",
            problems=problems(4),
            validation_fraction=0.5,
            validation_problems=problems(2),
        )
        assert "not both" in both
