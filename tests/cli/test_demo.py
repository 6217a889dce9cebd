"""`debrief demo` end to end with the model scripted at the backend seam: it measures, learns, measures again
with retrieved experiences, prints the library and tables, and serves a real stdio client."""

from __future__ import annotations

import random
import zlib
from pathlib import Path
from typing import Any

import anyio
import pytest
from rich.console import Console

from debrief.learner import Backends, FunctionBackend
from debrief.learner.backend import ChatRequest
from debrief.learner.evaluation import Comparison
from debrief.server.backends.provider import ModelProvider
from debrief.server.cli.demo import demo_parser, demo_problems, paired_verdict, run_demo
from debrief.server.cli.demo_tasks import generate_tasks
from debrief.server.errors import InvalidInput
from debrief.server.settings import Settings
from tests.learner.scripted import LESSON, reflector

pytestmark = pytest.mark.anyio


class DemoProvider(ModelProvider):
    """A policy that knows the demo's answers and gets them right far more often with the lesson in view."""

    def __init__(self, settings: Settings, answers: dict[str, str]) -> None:
        super().__init__(settings)
        self.answers = answers
        self.reflect = FunctionBackend(reflector(), model="reflect-model")

        def policy(request: ChatRequest, choice: int) -> str:
            question = request.messages[-1].content
            right = self.answers[question]
            rng = random.Random(zlib.crc32(question.encode()) + (request.seed or 0) + choice)
            p = 0.9 if LESSON in request.messages[0].content else 0.25
            return f"Answer: {right if rng.random() < p else int(right) + 1}"

        self.policy = FunctionBackend(policy, model="policy-model")

    async def backends(self, model: str | None = None) -> tuple[Backends, Any]:
        endpoint = type("Endpoint", (), {"model": "scripted", "base_url": "in-process", "local": False})()
        return Backends(policy=self.policy, reflect=self.reflect), endpoint


async def test_the_demo_learns_the_lesson_and_shows_the_gain_and_a_client_session(tmp_path: Path) -> None:
    args = demo_parser().parse_args(["--namespace", "demo-test", "--seed", "3"])
    split = generate_tasks(args.seed, args.train, args.heldout)
    answers = {task.question: task.answer for task in (*split.train, *split.heldout)}
    settings = Settings(data_dir=tmp_path / "data")
    console = Console(record=True, width=160)
    with anyio.fail_after(240):
        await run_demo(settings, args, console, provider=DemoProvider(settings, answers))
    text = console.export_text()
    assert "1. held-out accuracy without experiences" in text
    assert "the learned library (1 experiences)" in text
    assert LESSON in text
    assert "without experiences" in text and "with experiences" in text
    before, after = (
        float(line.split("│")[2])
        for line in text.splitlines()
        if "with experiences │" in line or "without experiences │" in line
    )
    assert after > before
    # The before/after is a paired evaluation with its 95% interval, and the demo says whether it is significant.
    verdict = next(line for line in text.splitlines() if "Mean@4 difference" in line)
    assert "95% CI [" in verdict and "paired bootstrap" in verdict
    low = float(verdict.split("95% CI [")[1].split(",")[0])
    assert low > 0 and "significant, the experiences helped" in text
    assert "connected over stdio" in text and "retrieve_experiences for:" in text
    assert f"store: {settings.data_dir}" in text


def test_the_demo_says_plainly_when_the_difference_is_not_significant() -> None:
    delta = Comparison(
        arm="with",
        baseline="without",
        problems=10,
        mean_at_k=0.05,
        ci95=[-0.1, 0.2],
        pass_at_k=0.0,
        pass_ci95=[0.0, 0.0],
        p_value=0.6,
        verdict="inconclusive",
    )

    text = paired_verdict(delta, 4, "paired bootstrap over problems")

    assert "Mean@4 difference +0.050, 95% CI [-0.100, +0.200]" in text
    assert "not significant, the interval includes zero" in text
    worse = paired_verdict(delta.model_copy(update={"ci95": [-0.3, -0.1], "verdict": "worse"}), 4, "m")
    assert "significant, the experiences hurt" in worse


def test_demo_data_splits_a_reasoning_gym_source_into_training_and_held_out_problems() -> None:
    args = demo_parser().parse_args(
        ["--data", "reasoning-gym:basic_arithmetic?size=30&seed=2", "--train", "12", "--heldout", "8"]
    )

    train, heldout, verifier, instructions = demo_problems(args)

    assert len(train) == 12 and len(heldout) == 8
    assert {p.problem_id for p in train}.isdisjoint({p.problem_id for p in heldout})
    assert verifier.name.startswith("reasoning-gym:basic_arithmetic") and "boxed" in instructions
    too_many = demo_parser().parse_args(["--data", "reasoning-gym:basic_arithmetic?size=5", "--train", "12"])
    with pytest.raises(InvalidInput, match="has 5 problems"):
        demo_problems(too_many)
