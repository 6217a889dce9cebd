"""A gated learning run into the real store: validation problems, the gate, and keeping the best version."""

from __future__ import annotations

import anyio
import pytest

from debrief.learner import Backends, FunctionBackend, RunConfig, RunReport, make_verifier, run_learning
from debrief.learner.validation import ValidationSettings
from debrief.server.errors import InvalidInput
from debrief.server.learning.gated import GatedProblems, gated_problems, keep_version, validation_lines
from debrief.server.store.experience_store import ExperienceStore
from debrief.server.store.learner_library import StoreLibrary
from tests.learner.scripted import addition_problems
from tests.learner.two_lessons import BAD, GOOD, policy, proposes_both

pytestmark = pytest.mark.anyio


def gated(margin: float, *, keep_best: bool = False) -> GatedProblems:
    return gated_problems(
        addition_problems(20, seed=1),
        make_verifier("exact"),
        validation=None,
        fraction=0.4,
        settings=ValidationSettings(samples=4, margin=margin, keep_best=keep_best),
        seed=0,
    )


async def learn_good_then_bad(store: ExperienceStore, plan: GatedProblems) -> RunReport:
    """Step 0 proposes the good lesson, step 1 the bad one."""
    reflect = FunctionBackend(proposes_both((GOOD, BAD), one_at_a_time=True))
    with anyio.fail_after(60):
        return await run_learning(
            RunConfig(run_id="run-gated", epochs=2, batch_size=12, seed=5),
            backends=Backends(policy=FunctionBackend(policy), reflect=reflect, judge=reflect),
            library=StoreLibrary(store, "math"),
            problems=plan.train,
            verifier=make_verifier("exact"),
            gate=plan.gate,
        )


async def test_the_gate_in_a_store_run_keeps_the_good_lesson_and_records_the_rejected_one(
    store: ExperienceStore,
) -> None:
    plan = gated(0.0)
    assert len(plan.train) == 12 and plan.gate is not None and len(plan.gate.problems) == 8

    report = await learn_good_then_bad(store, plan)

    assert [item.text for item in await store.active("math")] == [GOOD]
    lines = validation_lines(report.steps)
    assert any(line.startswith("step 0 add") and "kept:" in line for line in lines)
    assert any(line.startswith("step 1 add") and "rejected by validation" in line for line in lines)
    kept = await keep_version(store, "math", report.steps, version_before=0, keep_best=False, run_id=report.run_id)
    assert kept is not None and kept.policy == "last" and kept.rolled_back_from is None


async def test_keep_best_rolls_back_to_the_library_with_the_best_validation_score(store: ExperienceStore) -> None:
    report = await learn_good_then_bad(store, gated(1.0, keep_best=True))
    assert sorted(item.text for item in await store.active("math")) == sorted([GOOD, BAD])
    ended_at = await store.version("math")

    kept = await keep_version(store, "math", report.steps, version_before=0, keep_best=True, run_id=report.run_id)

    assert kept is not None and kept.policy == "best" and kept.rolled_back_from == ended_at
    assert "after step 0" in kept.message
    assert [item.text for item in await store.active("math")] == [GOOD]
    [change] = await store.history("math", since_version=ended_at)
    assert change.kind == "rollback" and "keep the best library by validation" in change.reason


def test_validation_sources_are_checked_before_anything_runs() -> None:
    problems = addition_problems(6)
    settings = ValidationSettings()
    verifier = make_verifier("exact")

    assert gated_problems(problems, verifier, validation=None, fraction=None, settings=settings, seed=0).gate is None
    with pytest.raises(InvalidInput, match="not both"):
        gated_problems(problems, verifier, validation=problems[:2], fraction=0.5, settings=settings, seed=0)
    with pytest.raises(InvalidInput, match="also training problems"):
        gated_problems(problems, verifier, validation=problems[:2], fraction=None, settings=settings, seed=0)
    with pytest.raises(InvalidInput, match="between 0 and 1"):
        gated_problems(problems, verifier, validation=None, fraction=1.5, settings=settings, seed=0)
