from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest

from debrief.learner import Backends, FunctionBackend, InMemoryLibrary, LibraryEntry, Problem, make_verifier
from debrief.learner.evaluation import (
    Arm,
    EvalProgress,
    PairedEvaluator,
    fixed_library,
    library_arm,
    no_library,
    paired_evaluation,
)
from tests.learner.evaluation_world import BAD, GOOD, NEUTRAL, policy, problems

pytestmark = pytest.mark.anyio


def library(*texts: str) -> InMemoryLibrary:
    made = InMemoryLibrary()
    for text in texts:
        made.add_text(text)
    return made


def evaluator(backend: FunctionBackend, samples: int = 4, **options: object) -> PairedEvaluator:
    return PairedEvaluator(
        backends=Backends(policy=backend),
        verifier=make_verifier("exact"),
        samples=samples,
        **options,  # type: ignore[arg-type]
    )


async def test_a_helpful_lesson_is_better_and_a_harmful_one_worse_with_intervals_excluding_zero() -> None:
    backend = FunctionBackend(policy)
    with anyio.fail_after(60):
        report = await paired_evaluation(
            problems(30),
            backends=Backends(policy=backend),
            verifier=make_verifier("exact"),
            arms=[
                no_library(),
                library_arm(library(GOOD), injection="all", k=5, name="good"),
                library_arm(library(BAD), injection="all", k=5, name="bad"),
            ],
            samples=4,
        )
    good, bad = report.comparison("good", "without"), report.comparison("bad", "without")
    assert good.verdict == "better" and good.ci95[0] > 0 and good.mean_at_k > 0.3
    assert bad.verdict == "worse" and bad.ci95[1] < 0 and bad.mean_at_k < -0.1
    assert good.p_value < 0.01 and bad.p_value < 0.01
    assert report.arm("without").mean_at_k < report.arm("good").mean_at_k
    assert report.arm("good").experiences_shown_mean == 1.0 and report.arm("without").experiences_shown_mean == 0.0
    assert "paired bootstrap" in report.method and "seed 0" in report.method
    assert report.temperature == 0.3 and report.top_p == 0.95
    assert len(report.problems) == 30 and all(len(item.rewards["bad"]) == 4 for item in report.problems)


async def test_every_arm_samples_a_problem_with_the_same_seed_at_the_evaluation_temperature() -> None:
    backend = FunctionBackend(policy)
    with anyio.fail_after(30):
        await evaluator(backend).compare(
            problems(5), [no_library(), fixed_library([LibraryEntry(experience_id="g", text=GOOD)], name="with")]
        )
    seeds: dict[str, set[int | None]] = {}
    for call in backend.calls:
        seeds.setdefault(call.messages[-1].content, set()).add(call.seed)
        assert call.temperature == 0.3 and call.top_p == 0.95 and call.n == 4
    assert len(seeds) == 5 and all(len(found) == 1 for found in seeds.values())
    assert len(backend.calls) == 10


async def test_an_arm_showing_what_another_showed_reuses_its_attempts_and_differs_by_exactly_zero() -> None:
    backend = FunctionBackend(policy)
    entries = [LibraryEntry(experience_id="g", text=GOOD)]
    with anyio.fail_after(30):
        report = await evaluator(backend).compare(
            problems(6), [fixed_library(entries, name="a"), fixed_library(entries, name="b")]
        )
    same = report.comparison("b", "a")
    assert same.mean_at_k == 0.0 and same.ci95 == [0.0, 0.0] and same.verdict == "inconclusive"
    assert len(backend.calls) == 6
    assert report.arm("a").tokens.requests + report.arm("b").tokens.requests == 6


async def test_per_experience_effects_rank_the_helpful_lesson_first_and_the_harmful_one_last() -> None:
    backend = FunctionBackend(policy)
    shelf = library(GOOD, NEUTRAL, BAD)
    plans: list[tuple[int, int]] = []
    with anyio.fail_after(60):
        tester = evaluator(backend)
        arm = library_arm(shelf, injection="all", k=5)
        await tester.compare(problems(40), [no_library(), arm])
        before = len(backend.calls)
        report = await tester.experience_effects(
            problems(40), arm, chunk=8, min_problems=8, on_plan=lambda *plan: plans.append(plan)
        )
    texts = [effect.text for effect in report.effects]
    assert texts == [GOOD, NEUTRAL, BAD]
    good, neutral, bad = report.effects
    assert good.verdict == "better" and good.ci95[0] > 0 and good.delta_mean > 0.3
    assert bad.verdict == "worse" and bad.ci95[1] < 0
    assert neutral.delta_mean == 0.0 and neutral.verdict == "inconclusive"
    # Early stop: clear effects stop after a chunk or two; the neutral one needs every problem.
    assert good.stopped_early and good.problems_evaluated < good.problems_shown == 40
    assert not neutral.stopped_early and neutral.problems_evaluated == 40
    # The arm's own attempts were reused from compare(): only leave-one-out attempts were sampled.
    sampled = len(backend.calls) - before
    assert sampled == good.problems_evaluated + neutral.problems_evaluated + bad.problems_evaluated
    assert report.attempts_planned == 3 * 40 * 4 and report.attempts_made == sampled * 4
    assert plans == [(report.attempts_planned, report.tokens_estimate)] and report.tokens_estimate > 0
    assert report.tokens.requests == sampled and sum(effect.tokens.requests for effect in report.effects) == sampled


async def test_per_experience_effects_use_only_the_problems_where_an_experience_is_shown() -> None:
    backend = FunctionBackend(policy)
    chosen = problems(20)
    even = {problem.problem_id for problem in chosen[::2]}

    async def shown(problem: Problem) -> Sequence[LibraryEntry]:
        entries = [LibraryEntry(experience_id="n", text=NEUTRAL)]
        if problem.problem_id in even:
            entries.append(LibraryEntry(experience_id="g", text=GOOD))
        return entries

    with anyio.fail_after(60):
        report = await evaluator(backend).experience_effects(chosen, Arm(name="retrieved", shown=shown), chunk=20)
    by_id = {effect.experience_id: effect for effect in report.effects}
    assert by_id["g"].problems_shown == 10 and by_id["n"].problems_shown == 20
    assert {call.messages[-1].content for call in backend.calls if GOOD not in call.messages[0].content} >= {
        problem.question for problem in chosen if problem.problem_id in even
    }


async def test_progress_reports_attempts_done_against_the_expected_total() -> None:
    events: list[EvalProgress] = []
    backend = FunctionBackend(policy)
    with anyio.fail_after(30):
        await evaluator(backend, samples=2, on_progress=events.append).compare(
            problems(4), [no_library(), fixed_library([LibraryEntry(experience_id="b", text=BAD)], name="with")]
        )
    assert events[-1].attempts_done == events[-1].attempts_total == 16
    assert [event.attempts_done for event in events] == sorted(event.attempts_done for event in events)
    assert events[-1].tokens.requests == 8
