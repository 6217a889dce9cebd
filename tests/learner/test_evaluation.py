from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest

from debrief.learner import Backends, FunctionBackend, LibraryEntry, Problem, make_verifier
from debrief.learner.evaluation import evaluate
from tests.learner.scripted import LESSON, addition_problems, policy

pytestmark = pytest.mark.anyio


async def test_evaluation_with_the_lesson_scores_higher_than_without() -> None:
    backend = FunctionBackend(policy)
    problems = addition_problems(20, seed=3)

    async def lesson(problem: Problem) -> Sequence[LibraryEntry]:
        return [LibraryEntry(experience_id="x:1", text=LESSON)]

    with anyio.fail_after(30):
        without = await evaluate(
            problems, backends=Backends(policy=backend), verifier=make_verifier("exact"), samples=4
        )
        with_lesson = await evaluate(
            problems,
            backends=Backends(policy=backend),
            verifier=make_verifier("exact"),
            samples=4,
            experiences_for=lesson,
        )
    assert without.samples_per_problem == 4 and len(without.problems) == 20
    assert all(len(result.rewards) == 4 for result in without.problems)
    assert without.mean_at_k < 0.5 < with_lesson.mean_at_k
    assert with_lesson.problems[0].experiences_shown == 1
    assert without.pass_at_k <= with_lesson.pass_at_k
    assert without.tokens.requests == 20 and without.tokens.prompt_tokens > 0
